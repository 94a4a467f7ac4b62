//! Top-N: the first rows of an ordering (ORDER BY ... LIMIT n OFFSET m)
//! without sorting the whole input.
//!
//! The operator keeps the best `offset + fetch` rows seen so far as one
//! compact sorted batch. A new batch is first compared with the worst row
//! kept; only rows that beat it are sorted in with the kept ones, so once the
//! kept rows are good, most batches cost one key comparison per row.
//! Selection is stable: among equal keys the earlier row wins, which gives
//! exactly the rows a stable sort followed by a limit would.

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::row::{OwnedRow, Rows};

use super::sort_key::{self, KeyEncoder, SortKey};
use crate::memory::MemoryReservation;
use crate::operator::OUTPUT_BATCH_ROWS;
use crate::{Operator, OperatorFactory, Output, Progress, Result, TaskInfo};

/// Emits the rows `offset..offset + fetch` of its input ordered by `keys`,
/// at the end of the input.
///
/// It holds `offset + fetch` rows, accounted in its memory reservation; it
/// does not spill, so a large `offset + fetch` that does not fit the budget
/// fails with [`Error::ResourcesExhausted`](crate::Error::ResourcesExhausted)
/// (plan a [`Sort`](super::Sort) and a [`Limit`](super::Limit) instead).
/// Watermarks are held back until the rows are emitted.
#[derive(Debug, Clone)]
pub struct TopN {
    keys: Vec<SortKey>,
    offset: usize,
    fetch: usize,
}

impl TopN {
    /// The `fetch` rows after the first `offset` of the input ordered by
    /// `keys`.
    ///
    /// # Errors
    /// [`Error::Plan`](crate::Error::Plan) when there is no key or a key's
    /// type cannot be ordered.
    pub fn try_new(keys: Vec<SortKey>, offset: usize, fetch: usize) -> Result<Self> {
        sort_key::validate(&keys)?;
        Ok(Self {
            keys,
            offset,
            fetch,
        })
    }

    /// The sort keys, the first the most significant.
    pub fn keys(&self) -> &[SortKey] {
        &self.keys
    }
}

impl OperatorFactory for TopN {
    fn name(&self) -> String {
        format!(
            "top_n({}; offset {}, fetch {})",
            sort_key::describe(&self.keys),
            self.offset,
            self.fetch
        )
    }

    /// Among rows tied on the keys at the cut, which pass depends on the
    /// order they arrive in.
    fn is_deterministic(&self) -> bool {
        false
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(TopNState {
            encoder: KeyEncoder::try_new(self.name(), &self.keys)?,
            reservation: task.memory.reservation(self.name()),
            keep: self.offset.saturating_add(self.fetch),
            next: self.offset,
            best: None,
            worst: None,
            watermark: None,
        }))
    }
}

/// The rows kept so far, in order, with their encoded keys.
struct Best {
    batch: RecordBatch,
    rows: Rows,
}

struct TopNState {
    encoder: KeyEncoder,
    reservation: MemoryReservation,
    /// Rows to keep: `offset + fetch`.
    keep: usize,
    /// The first kept row `finish` has not emitted yet (at first the
    /// offset: the rows before it are skipped).
    next: usize,
    best: Option<Best>,
    /// The key of the last kept row once `keep` rows are kept: a row must
    /// come before it to get in.
    worst: Option<OwnedRow>,
    watermark: Option<i64>,
}

impl TopNState {
    /// Sorts the rows of `batch` that can make it into the kept ones and
    /// keeps the best `keep`.
    fn offer(&mut self, batch: RecordBatch) -> Result<()> {
        let rows = self.encoder.encode(&batch)?;
        // The kept rows come first: they arrived earlier, and the sort is
        // stable.
        let mut batches = Vec::with_capacity(2);
        let mut keys = Vec::with_capacity(2);
        let mut positions = Vec::new();
        if let Some(best) = &self.best {
            positions.extend((0..best.batch.num_rows()).map(|i| (0, i)));
            batches.push(&best.batch);
            keys.push(&best.rows);
        }
        let offered = batches.len();
        let before = positions.len();
        positions.extend(
            (0..batch.num_rows())
                .filter(|&i| self.worst.as_ref().is_none_or(|w| rows.row(i) < w.row()))
                .map(|i| (offered, i)),
        );
        if positions.len() == before {
            return Ok(());
        }
        batches.push(&batch);
        keys.push(&rows);
        sort_key::sort_positions(&keys, &mut positions);
        positions.truncate(self.keep);
        let batch = interleave_record_batch(&batches, &positions)
            .map_err(|e| self.encoder.error("gathering the top rows", e))?;
        let rows = self.encoder.encode(&batch)?;
        let bytes = batch.get_array_memory_size() + rows.size();
        if !self.reservation.try_resize(bytes) {
            return Err(self
                .reservation
                .exhausted(bytes.saturating_sub(self.reservation.size())));
        }
        self.worst = (batch.num_rows() == self.keep).then(|| rows.row(self.keep - 1).owned());
        self.best = Some(Best { batch, rows });
        Ok(())
    }
}

impl Operator for TopNState {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _output: &mut Output,
    ) -> Result<()> {
        if self.keep == 0 || batch.num_rows() == 0 {
            return Ok(());
        }
        self.offer(batch)
    }

    fn on_watermark(&mut self, watermark: i64, _output: &mut Output) -> Result<()> {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        Ok(())
    }

    fn finish(&mut self, output: &mut Output) -> Result<Progress> {
        if let Some(best) = &self.best {
            let next = &mut self.next;
            let progress = output.emit_until_full(|| {
                let rows = OUTPUT_BATCH_ROWS.min(best.batch.num_rows().saturating_sub(*next));
                let batch = (rows > 0).then(|| best.batch.slice(*next, rows));
                *next += rows;
                Ok(batch)
            })?;
            if progress == Progress::More {
                return Ok(Progress::More);
            }
        }
        self.best = None;
        self.worst = None;
        self.reservation.free();
        if let Some(watermark) = self.watermark.take() {
            output.emit_watermark(watermark);
        }
        Ok(Progress::Done)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::expr::{Compiled, col};
    use crate::memory::{MemoryConfig, MemoryPool};
    use crate::testing::{drive, drive_in_parts, rebatch};

    fn batch(values: &[(i64, &str)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("tag", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(values.iter().map(|v| v.0))),
                Arc::new(StringArray::from_iter_values(values.iter().map(|v| v.1))),
            ],
        )
        .expect("valid batch")
    }

    fn top_n(offset: usize, fetch: usize) -> TopN {
        let expr = Compiled::new(&col("k"), &batch(&[]).schema()).expect("compiles");
        TopN::try_new(vec![SortKey::asc(expr)], offset, fetch).expect("valid")
    }

    fn tags(batches: &[RecordBatch]) -> Vec<String> {
        batches
            .iter()
            .flat_map(|b| b.column(1).as_string::<i32>().iter())
            .map(|t| t.unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn keeps_the_first_rows_and_the_earliest_of_ties() {
        let input = vec![
            batch(&[(5, "a"), (1, "b"), (3, "c")]),
            batch(&[(1, "d"), (9, "e")]),
            batch(&[(0, "f"), (3, "g")]),
        ];
        let out = drive(
            &top_n(1, 3),
            std::slice::from_ref(&input),
            MemoryPool::unbounded(),
        )
        .expect("runs");
        assert_eq!(tags(&out), vec!["b", "d", "c"]);
        let out = drive(&top_n(0, 0), &[input], MemoryPool::unbounded()).expect("runs");
        assert!(out.is_empty());
    }

    #[test]
    fn many_kept_rows_are_emitted_in_parts() {
        let values: Vec<(i64, &str)> = (0..200_000).rev().map(|k| (k, "t")).collect();
        let input = rebatch(&[batch(&values)], 8192);
        let emitted =
            drive_in_parts(&top_n(10, 150_000), &[input], MemoryPool::unbounded()).expect("runs");
        emitted.assert_in_parts("top-N of 150,000 rows");
        let keys: Vec<i64> = emitted
            .all()
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(keys, (10..150_010).collect::<Vec<_>>());
    }

    #[test]
    fn too_many_rows_for_the_budget_is_an_error_naming_the_operator() {
        let pool = MemoryPool::new(MemoryConfig {
            budget: 64,
            spill: true,
            spill_dir: std::env::temp_dir(),
        });
        let factory = top_n(0, 1000);
        let err =
            drive(&factory, &[vec![batch(&[(1, "a"), (2, "b")])]], pool).expect_err("over budget");
        assert!(
            matches!(&err, crate::Error::ResourcesExhausted { operator, .. } if *operator == factory.name()),
            "{err}"
        );
    }
}
