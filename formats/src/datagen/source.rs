//! The `datagen` source: generated rows of declared columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use weir_engine::checkpoint::SplitPosition;
use weir_engine::task::Counters;
use weir_engine::{Boundedness, ScanRequest, Source, SourceFactory, TaskInfo};
use weir_exchange::cpu;

use super::ColumnGenerator;
use crate::Result;
use crate::throttle::Throttle;

/// Rows per generated batch (fewer when throttled).
const BATCH_ROWS: usize = 8192;

/// Rows numbered from 0 whose values are pure functions of the seed, the
/// column and the row number, so that the table is the same at any
/// parallelism and every attempt generates the same rows: the source is
/// deterministic.
///
/// A bounded table of `rows` rows gives subtask `i` of `p` the rows
/// `rows*i/p .. rows*(i+1)/p`. An unbounded table is cut into blocks of
/// 8192 rows dealt round-robin to `p` splits, one per subtask: split `s`
/// generates blocks `s, s + p, s + 2p, ...`, each in row order.
#[derive(Debug, Clone)]
pub struct DatagenSource {
    schema: SchemaRef,
    columns: Arc<[ColumnGenerator]>,
    rows: Option<u64>,
    rows_per_second: Option<f64>,
}

impl DatagenSource {
    /// `rows` rows (`None`: unbounded) of `columns` (the declared columns or
    /// a projection of them), at most `rows_per_second` in all (`None`: as
    /// fast as they are generated).
    pub fn new(
        columns: Vec<ColumnGenerator>,
        rows: Option<u64>,
        rows_per_second: Option<f64>,
    ) -> Self {
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

    /// The number of rows the table has (`None`: unbounded).
    pub fn rows(&self) -> Option<u64> {
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
        match self.rows {
            Some(rows) => format!("datagen(rows={rows})"),
            None => "datagen(unbounded)".to_string(),
        }
    }

    fn boundedness(&self) -> Boundedness {
        match self.rows {
            Some(_) => Boundedness::Bounded,
            None => Boundedness::Unbounded,
        }
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn estimated_bytes(&self) -> Option<u64> {
        let row: u64 = self.columns.iter().map(ColumnGenerator::value_bytes).sum();
        self.rows.map(|rows| row.saturating_mul(rows))
    }

    fn estimated_rows(&self) -> Option<u64> {
        self.rows
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
        let p = task.parallelism.max(1) as u64;
        let i = task.subtask as u64;
        let position = match self.rows {
            Some(rows) => {
                let (rows, p, i) = (u128::from(rows), u128::from(p), u128::from(i));
                RowPosition::Range {
                    split: i as u64,
                    next: (rows * i / p) as u64,
                    end: (rows * (i + 1) / p) as u64,
                }
            }
            None => RowPosition::Blocks {
                split: i,
                splits: p,
                next: i * BATCH_ROWS as u64,
            },
        };
        Ok(Box::new(self.reader(task, vec![position])))
    }

    fn restore(
        &self,
        task: &TaskInfo,
        positions: Vec<SplitPosition>,
    ) -> weir_engine::Result<Box<dyn Source>> {
        let positions = positions
            .into_iter()
            .map(|p| {
                serde_json::from_value(p.position).map_err(|e| {
                    weir_engine::Error::Checkpoint(format!("datagen split {}: {e}", p.split))
                })
            })
            .collect::<weir_engine::Result<Vec<RowPosition>>>()?;
        Ok(Box::new(self.reader(task, positions)))
    }
}

impl DatagenSource {
    fn reader(&self, task: &TaskInfo, positions: Vec<RowPosition>) -> DatagenReader {
        // The rate is the table's: each subtask takes its share.
        let p = task.parallelism.max(1) as f64;
        let throttle = self
            .rows_per_second
            .map(|total| Throttle::new(total / p, BATCH_ROWS));
        DatagenReader {
            schema: Arc::clone(&self.schema),
            columns: Arc::clone(&self.columns),
            positions,
            current: 0,
            throttle,
            counters: task.counters.clone(),
        }
    }
}

/// Where a split is in the rows it generates (what a checkpoint records).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum RowPosition {
    /// The rows `next..end` of a bounded table are left (split `split`).
    Range { split: u64, next: u64, end: u64 },
    /// Split `split` of `splits` of an unbounded table, at row `next`.
    Blocks { split: u64, splits: u64, next: u64 },
}

impl RowPosition {
    /// The next rows, at most `count` and within one block; `None` once a
    /// bounded range is done.
    fn take(&mut self, count: usize) -> Option<std::ops::Range<u64>> {
        let count = count as u64;
        match self {
            RowPosition::Range { next, end, .. } => {
                let rows = *next..(*end).min(next.saturating_add(count));
                *next = rows.end;
                (!rows.is_empty()).then_some(rows)
            }
            RowPosition::Blocks { splits, next, .. } => {
                let block = BATCH_ROWS as u64;
                let block_end = (*next / block + 1) * block;
                let rows = *next..block_end.min(*next + count);
                // The split's next block is `splits` blocks on.
                *next = if rows.end == block_end {
                    block_end + (*splits - 1) * block
                } else {
                    rows.end
                };
                Some(rows)
            }
        }
    }

    fn split(&self) -> u32 {
        match self {
            RowPosition::Range { split, .. } | RowPosition::Blocks { split, .. } => *split as u32,
        }
    }
}

/// The rows of one subtask: its splits, read in turns.
struct DatagenReader {
    schema: SchemaRef,
    columns: Arc<[ColumnGenerator]>,
    positions: Vec<RowPosition>,
    /// The split read last.
    current: usize,
    throttle: Option<Throttle>,
    counters: Counters,
}

#[async_trait]
impl Source for DatagenReader {
    async fn next_batch(&mut self) -> weir_engine::Result<Option<RecordBatch>> {
        let mut count = BATCH_ROWS;
        if let Some(throttle) = &mut self.throttle {
            throttle.wait().await;
            count = throttle.batch_rows();
        }
        // The next split with rows left, in turns.
        let n = self.positions.len();
        let Some((index, rows)) = (1..=n)
            .map(|k| (self.current + k) % n)
            .find_map(|k| self.positions[k].take(count).map(|rows| (k, rows)))
        else {
            return Ok(None);
        };
        self.current = index;
        let (schema, columns) = (Arc::clone(&self.schema), Arc::clone(&self.columns));
        let generated = rows.end - rows.start;
        let batch = cpu::run(move || DatagenSource::generate(schema, &columns, rows)).await?;
        if let Some(throttle) = &mut self.throttle {
            throttle.emitted(generated);
        }
        self.counters.add("rows generated", generated);
        Ok(Some(batch))
    }

    fn splits(&self) -> Vec<u32> {
        self.positions.iter().map(RowPosition::split).collect()
    }

    fn last_split(&self) -> u32 {
        self.positions
            .get(self.current)
            .map_or(0, RowPosition::split)
    }

    fn positions(&self) -> Option<Vec<SplitPosition>> {
        self.positions
            .iter()
            .map(|p| {
                Some(SplitPosition {
                    split: p.split(),
                    position: serde_json::to_value(p).ok()?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbounded_splits_deal_blocks_round_robin() {
        let block = BATCH_ROWS as u64;
        let mut split = RowPosition::Blocks {
            split: 1,
            splits: 3,
            next: block,
        };
        assert_eq!(split.take(5000), Some(block..block + 5000));
        assert_eq!(split.take(5000), Some(block + 5000..2 * block));
        assert_eq!(split.take(5000), Some(4 * block..4 * block + 5000));
        let mut range = RowPosition::Range {
            split: 0,
            next: 3,
            end: 10,
        };
        assert_eq!(range.take(5), Some(3..8));
        assert_eq!(range.take(5), Some(8..10));
        assert_eq!(range.take(5), None);
    }
}
