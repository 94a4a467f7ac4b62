//! The `datagen` source: generated rows of declared columns.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use tokio::time::Instant;
use weir_engine::task::Counters;
use weir_engine::{Boundedness, ScanRequest, Source, SourceFactory, TaskInfo};
use weir_exchange::cpu;

use super::ColumnGenerator;
use crate::Result;

/// Rows per generated batch (fewer when throttled).
const BATCH_ROWS: usize = 8192;

/// Throttled subtasks emit about this many batches per second.
const THROTTLED_BATCHES_PER_SECOND: f64 = 10.0;

/// Rows numbered `0..rows` whose values are pure functions of the seed,
/// the column and the row number. Subtask `i` of `p` generates the rows
/// `rows*i/p .. rows*(i+1)/p`, so the table is the same at any parallelism,
/// and every attempt generates the same rows: the source is deterministic.
#[derive(Debug, Clone)]
pub struct DatagenSource {
    schema: SchemaRef,
    columns: Arc<[ColumnGenerator]>,
    rows: u64,
    rows_per_second: Option<f64>,
}

impl DatagenSource {
    /// `rows` rows of `columns` (the declared columns or a projection of
    /// them), at most `rows_per_second` in all (`None`: as fast as they
    /// are generated).
    pub fn new(columns: Vec<ColumnGenerator>, rows: u64, rows_per_second: Option<f64>) -> Self {
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|c| Arc::clone(c.field()))
                .collect::<Vec<_>>(),
        ));
        Self {
            schema,
            columns: columns.into(),
            rows,
            rows_per_second,
        }
    }

    /// The number of rows the table has.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The rows numbered `rows`, every column generated.
    ///
    /// # Errors
    /// When Arrow refuses the columns (it cannot for the types accepted).
    fn generate(
        schema: SchemaRef,
        columns: &[ColumnGenerator],
        rows: std::ops::Range<u64>,
    ) -> Result<RecordBatch> {
        let count = (rows.end - rows.start) as usize;
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|c| c.generate(rows.clone()))
            .collect::<Result<_>>()?;
        // A projection may keep no column at all: the rows still count.
        let options = RecordBatchOptions::new().with_row_count(Some(count));
        Ok(RecordBatch::try_new_with_options(schema, arrays, &options)?)
    }
}

impl SourceFactory for DatagenSource {
    fn name(&self) -> String {
        format!("datagen(rows={})", self.rows)
    }

    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn estimated_bytes(&self) -> Option<u64> {
        let row: u64 = self.columns.iter().map(ColumnGenerator::value_bytes).sum();
        Some(row.saturating_mul(self.rows))
    }

    fn estimated_rows(&self) -> Option<u64> {
        Some(self.rows)
    }

    fn scan(&self, request: &ScanRequest) -> weir_engine::Result<Option<Arc<dyn SourceFactory>>> {
        let Some(projection) = &request.projection else {
            return Ok(None);
        };
        let columns = projection
            .iter()
            .map(|&i| {
                self.columns.get(i).cloned().ok_or_else(|| {
                    weir_engine::Error::Plan(format!(
                        "datagen has {} columns, no column {i}",
                        self.columns.len()
                    ))
                })
            })
            .collect::<weir_engine::Result<Vec<_>>>()?;
        Ok(Some(Arc::new(Self::new(
            columns,
            self.rows,
            self.rows_per_second,
        ))))
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Source>> {
        let p = task.parallelism.max(1) as u128;
        let i = task.subtask as u128;
        let rows = u128::from(self.rows);
        let (next, end) = ((rows * i / p) as u64, (rows * (i + 1) / p) as u64);
        let throttle = self.rows_per_second.map(|total| {
            // The rate is the table's: each subtask takes its share.
            let rate = total / p as f64;
            Throttle {
                rate,
                batch_rows: ((rate / THROTTLED_BATCHES_PER_SECOND).ceil() as usize)
                    .clamp(1, BATCH_ROWS),
                started: None,
                emitted: 0,
            }
        });
        Ok(Box::new(DatagenReader {
            schema: Arc::clone(&self.schema),
            columns: Arc::clone(&self.columns),
            next,
            end,
            throttle,
            counters: task.counters.clone(),
        }))
    }
}

/// Holds a subtask to its share of `rows-per-second`.
struct Throttle {
    /// Rows per second for this subtask.
    rate: f64,
    batch_rows: usize,
    started: Option<Instant>,
    emitted: u64,
}

impl Throttle {
    /// Waits until the rows emitted so far are due.
    async fn wait(&mut self) {
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = Duration::try_from_secs_f64(self.emitted as f64 / self.rate)
            .ok()
            .and_then(|wait| started.checked_add(wait));
        match due {
            Some(due) => tokio::time::sleep_until(due).await,
            // Not due before the clock ends: a rate that small never is.
            None => std::future::pending().await,
        }
    }
}

/// The rows of one subtask.
struct DatagenReader {
    schema: SchemaRef,
    columns: Arc<[ColumnGenerator]>,
    next: u64,
    end: u64,
    throttle: Option<Throttle>,
    counters: Counters,
}

#[async_trait]
impl Source for DatagenReader {
    async fn next_batch(&mut self) -> weir_engine::Result<Option<RecordBatch>> {
        if self.next >= self.end {
            return Ok(None);
        }
        let mut count = BATCH_ROWS;
        if let Some(throttle) = &mut self.throttle {
            throttle.wait().await;
            count = throttle.batch_rows;
        }
        let rows = self.next..self.end.min(self.next.saturating_add(count as u64));
        let (schema, columns) = (Arc::clone(&self.schema), Arc::clone(&self.columns));
        let generated = rows.end - rows.start;
        let batch = cpu::run(move || DatagenSource::generate(schema, &columns, rows)).await?;
        self.next += generated;
        if let Some(throttle) = &mut self.throttle {
            throttle.emitted += generated;
        }
        self.counters.add("rows generated", generated);
        Ok(Some(batch))
    }
}
