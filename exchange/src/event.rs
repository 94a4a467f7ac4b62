//! The events that flow on every edge of a job.

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

/// A batch of `rows` rows of `schema` made of `columns`. Unlike
/// [`RecordBatch::try_new`], it keeps its rows when it has no column: a
/// `count(*)` over a join whose output keeps no column still counts them.
///
/// # Errors
/// When the columns do not fit the schema or have another length.
pub fn batch_of(
    schema: SchemaRef,
    columns: Vec<ArrayRef>,
    rows: usize,
) -> Result<RecordBatch, ArrowError> {
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

/// The rows of `batch` at `indices`, as arrow's `take_record_batch`, but
/// kept when `batch` has no column.
///
/// # Errors
/// When an index is out of bounds.
pub fn take_rows(batch: &RecordBatch, indices: &dyn Array) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| arrow::compute::take(c, indices, None))
        .collect::<Result<Vec<_>, _>>()?;
    batch_of(batch.schema(), columns, indices.len())
}

/// A checkpoint barrier: everything before it on a channel belongs to
/// checkpoint `id`, everything after it to a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// The checkpoint this barrier delimits.
    pub checkpoint_id: u64,
    /// When the coordinator triggered the checkpoint (ms since the epoch).
    pub timestamp_ms: i64,
}

/// Whether a channel's event time is moving. A channel whose producer has
/// nothing to send for a while (an idle source split) goes idle, so that
/// the consumer's watermark, the minimum over its channels, is not held
/// back by it; it is active again with its next record or watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkStatus {
    /// The producer has records or watermarks to send.
    Active,
    /// The producer has been quiet for its idle timeout: leave it out of
    /// the minimum until it is active again.
    Idle,
}

/// What flows on an edge. Within one process a batch moves as a
/// reference-counted [`RecordBatch`]; it is never copied or serialized.
#[derive(Debug, Clone)]
pub enum Event {
    /// A batch of records.
    Batch(RecordBatch),
    /// Event time has advanced to this timestamp (ms): no record with a
    /// smaller timestamp will follow on this channel.
    Watermark(i64),
    /// The producer's event time went idle or became active again.
    WatermarkStatus(WatermarkStatus),
    /// A checkpoint barrier.
    Barrier(Barrier),
    /// The producer has sent everything: nothing follows on this channel.
    EndOfPartition,
}

impl Event {
    /// Bytes of memory this event holds, as counted by backpressure.
    pub fn memory_size(&self) -> usize {
        match self {
            Event::Batch(batch) => batch.get_array_memory_size(),
            _ => 0,
        }
    }
}

/// Bytes of Arrow data a batch covers: the part of each buffer its rows use
/// (a slice counts only its own rows), not the capacity of the allocations
/// behind them.
pub fn batch_data_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|column| {
            column
                .to_data()
                .get_slice_memory_size()
                .unwrap_or_else(|_| column.get_array_memory_size())
        })
        .sum()
}
