//! What a task takes part in a checkpoint with: the positions of its
//! source splits, the state of its operators and what its sink prepared,
//! and how it gets them back when a job restarts from a checkpoint.
//!
//! State is columnar: an operator snapshots its state as record batches.
//! Keyed state leads with a [`KEY_GROUP_COLUMN`], the key group of each
//! row (the hash of its key modulo the job's max parallelism, as the hash
//! exchange computes it), so that a job restored at another parallelism
//! gives every subtask the rows of the key groups it owns
//! ([`key_group_range`]).

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use weir_exchange::checkpoint_store::StateFile;
use weir_exchange::event::Barrier;
use weir_exchange::hash::{hash_columns, key_group};

use crate::{Error, Result};

/// The column holding each row's key group in keyed operator state.
pub const KEY_GROUP_COLUMN: &str = "__key_group";

/// The position of one source split at a checkpoint: where it resumes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitPosition {
    /// The split.
    pub split: u32,
    /// Where it is, as the source records it.
    pub position: serde_json::Value,
}

/// One task's part of a completed checkpoint, as its metadata records it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskCheckpoint {
    /// The positions of its source's splits.
    pub splits: Vec<SplitPosition>,
    /// The state file of each operator of its chain (`None`: no state).
    pub operators: Vec<Option<StateFile>>,
    /// What its sink prepared to commit.
    pub committable: Option<serde_json::Value>,
    /// What the sink of its late records prepared to commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_committable: Option<serde_json::Value>,
}

/// What a task reports about a checkpoint to the coordinator.
#[derive(Debug)]
pub struct CheckpointAck {
    /// The checkpoint.
    pub checkpoint: u64,
    /// The vertex of the task.
    pub vertex: u32,
    /// The task's subtask index.
    pub subtask: usize,
    /// Its part, or why it could not take part (the checkpoint fails, the
    /// job goes on).
    pub outcome: std::result::Result<TaskCheckpoint, String>,
}

/// What a restarted task resumes from.
#[derive(Debug, Clone, Default)]
pub struct TaskRestore {
    /// The checkpoint it resumes from.
    pub checkpoint: u64,
    /// Where its state files are, when not in the job's checkpoint
    /// directory (a savepoint).
    pub store: Option<weir_exchange::checkpoint_store::CheckpointStore>,
    /// The positions of the splits its source reads from now on.
    pub splits: Vec<SplitPosition>,
    /// For each operator of its chain, the state files of every subtask of
    /// the checkpoint with the subtask that wrote each (the task keeps the
    /// rows of its own key groups).
    pub operators: Vec<Vec<(usize, StateFile)>>,
}

/// How a task takes part in checkpoints.
#[derive(Debug)]
pub struct CheckpointSetup {
    /// Where its state files go.
    pub store: weir_exchange::checkpoint_store::CheckpointStore,
    /// The directory of the job's checkpoints in the store.
    pub job_dir: String,
    /// Where it reports the checkpoints it took part in.
    pub acks: tokio::sync::mpsc::UnboundedSender<CheckpointAck>,
    /// For a source task: the barriers the coordinator injects.
    pub triggers: Option<tokio::sync::mpsc::UnboundedReceiver<Barrier>>,
    /// What it resumes from, when the job restarted from a checkpoint.
    pub restore: Option<TaskRestore>,
}

/// The key groups subtask `subtask` of `parallelism` owns, of
/// `max_parallelism` (contiguous ranges, as the hash exchange assigns
/// them).
pub fn key_group_range(subtask: usize, parallelism: usize, max_parallelism: usize) -> Range<u32> {
    let start = (subtask * max_parallelism).div_ceil(parallelism);
    let end = ((subtask + 1) * max_parallelism).div_ceil(parallelism);
    start as u32..end as u32
}

/// `batch` with a leading [`KEY_GROUP_COLUMN`] computed from its `keys`
/// columns.
///
/// # Errors
/// When the key columns cannot be hashed.
pub fn with_key_groups(
    batch: &RecordBatch,
    keys: &[ArrayRef],
    max_parallelism: usize,
) -> Result<RecordBatch> {
    let mut hashes = Vec::new();
    hash_columns(keys, &mut hashes).map_err(|e| Error::Plan(format!("hashing state keys: {e}")))?;
    let groups: UInt32Array = if keys.is_empty() {
        UInt32Array::from(vec![0; batch.num_rows()])
    } else {
        hashes
            .iter()
            .map(|&h| key_group(h, max_parallelism) as u32)
            .collect()
    };
    let mut fields = vec![Arc::new(Field::new(
        KEY_GROUP_COLUMN,
        DataType::UInt32,
        false,
    ))];
    fields.extend(batch.schema().fields().iter().cloned());
    let mut columns: Vec<ArrayRef> = vec![Arc::new(groups)];
    columns.extend(batch.columns().iter().cloned());
    let schema = Schema::new_with_metadata(fields, batch.schema().metadata().clone());
    Ok(RecordBatch::try_new(Arc::new(schema), columns)?)
}

/// The rows of `batch` (led by a [`KEY_GROUP_COLUMN`]) whose key groups
/// are in `range`, without that column.
///
/// # Errors
/// When `batch` has no key group column.
pub fn in_key_groups(batch: &RecordBatch, range: &Range<u32>) -> Result<RecordBatch> {
    let groups = batch
        .column_by_name(KEY_GROUP_COLUMN)
        .and_then(|c| c.as_any().downcast_ref::<UInt32Array>())
        .ok_or_else(|| Error::Plan(format!("state rows have no {KEY_GROUP_COLUMN} column")))?;
    let keep = arrow::compute::kernels::cmp::gt_eq(groups, &UInt32Array::new_scalar(range.start))?;
    let below = arrow::compute::kernels::cmp::lt(groups, &UInt32Array::new_scalar(range.end))?;
    let keep = arrow::compute::and(&keep, &below)?;
    let kept = filter_record_batch(batch, &keep)?;
    let index = kept.schema().index_of(KEY_GROUP_COLUMN)?;
    let mut kept = kept;
    kept.remove_column(index);
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;

    use super::*;

    #[test]
    fn key_group_ranges_cover_every_group_once() {
        for parallelism in 1..=7 {
            let mut next = 0;
            for subtask in 0..parallelism {
                let range = key_group_range(subtask, parallelism, 128);
                assert_eq!(range.start, next, "{subtask} of {parallelism}");
                next = range.end;
                // The hash exchange sends these groups to this subtask.
                for group in range {
                    assert_eq!(
                        weir_exchange::hash::subtask_for_key_group(
                            group as usize,
                            128,
                            parallelism
                        ),
                        subtask
                    );
                }
            }
            assert_eq!(next, 128);
        }
    }

    #[test]
    fn rows_are_kept_by_key_group() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
        let batch = RecordBatch::try_new(schema, vec![Arc::clone(&keys)]).expect("batch");
        let grouped = with_key_groups(&batch, &[keys], 128).expect("groups");
        assert_eq!(grouped.schema().field(0).name(), KEY_GROUP_COLUMN);
        let rows: usize = (0..3)
            .map(|s| {
                in_key_groups(&grouped, &key_group_range(s, 3, 128))
                    .expect("kept")
                    .num_rows()
            })
            .sum();
        assert_eq!(rows, 1000);
    }
}
