//! A resumable k-way merge of sorted runs, shared by the external sort and
//! the spilling aggregate.
//!
//! A run is a sequence of batches sorted by a key that a [`RunKeys`]
//! encodes in Arrow's row format. The merge holds one batch per run and a
//! min-heap of the runs ordered by their current row's key, then by run:
//! equal keys come out in the order the runs were given, so merging runs
//! given in arrival order keeps a sort stable. [`RunMerge::next_batch`]
//! gathers the next rows into one batch; the merge keeps its place between
//! calls, so its owner can stop after any batch (when its output is full)
//! and go on later.

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::error::ArrowError;
use arrow::row::{OwnedRow, Row, Rows};

use crate::{Error, Result};

/// A sorted run being read: its batches in order.
pub(crate) type Run = Box<dyn Iterator<Item = Result<RecordBatch>> + Send>;

/// How the rows of the runs are keyed, and whose errors they are.
pub(crate) trait RunKeys {
    /// The encoded merge keys of every row of `batch`.
    fn encode(&self, batch: &RecordBatch) -> Result<Rows>;

    /// An error of the operator while `doing` something.
    fn error(&self, doing: &str, e: ArrowError) -> Error;
}

/// A run being merged: its current batch (at `slot` among the staged
/// batches), that batch's keys and the next row to take.
struct Cursor {
    run: Run,
    batch: RecordBatch,
    rows: Rows,
    next: usize,
    slot: usize,
}

impl Cursor {
    fn current(&self) -> Row<'_> {
        self.rows.row(self.next)
    }

    /// Moves to the next row, staging the run's next batch when this one is
    /// done; `false` when the run has no more.
    fn advance(&mut self, keys: &dyn RunKeys, staged: &mut Vec<RecordBatch>) -> Result<bool> {
        self.next += 1;
        if self.next < self.rows.num_rows() {
            return Ok(true);
        }
        match next_batch(&mut self.run, keys)? {
            Some((batch, rows)) => {
                self.slot = staged.len();
                staged.push(batch.clone());
                (self.batch, self.rows, self.next) = (batch, rows, 0);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// The next non-empty batch of `run` and its keys.
fn next_batch(run: &mut Run, keys: &dyn RunKeys) -> Result<Option<(RecordBatch, Rows)>> {
    for batch in run {
        let batch = batch?;
        if batch.num_rows() > 0 {
            let rows = keys.encode(&batch)?;
            return Ok(Some((batch, rows)));
        }
    }
    Ok(None)
}

/// Sorted runs being merged into one order, batch by batch.
///
/// Memory: one batch per run, plus the batches the rows of the batch being
/// gathered come from.
pub(crate) struct RunMerge {
    cursors: Vec<Cursor>,
    /// Min-heap of the indices of the cursors that have rows left.
    heap: Vec<usize>,
    /// The batches the rows being gathered come from.
    staged: Vec<RecordBatch>,
}

impl RunMerge {
    /// A merge of `runs`, each sorted by `keys`; among equal keys, earlier
    /// runs come first.
    ///
    /// # Errors
    /// When a run fails to read or its keys fail to encode.
    pub(crate) fn try_new(runs: Vec<Run>, keys: &dyn RunKeys) -> Result<Self> {
        let mut cursors = Vec::with_capacity(runs.len());
        for mut run in runs {
            if let Some((batch, rows)) = next_batch(&mut run, keys)? {
                cursors.push(Cursor {
                    run,
                    batch,
                    rows,
                    next: 0,
                    slot: 0,
                });
            }
        }
        let mut merge = Self {
            heap: (0..cursors.len()).collect(),
            cursors,
            staged: Vec::new(),
        };
        for i in (0..merge.heap.len() / 2).rev() {
            merge.sift_down(i);
        }
        Ok(merge)
    }

    /// The next `rows` rows in order as one batch (fewer at the end), `None`
    /// when every run is done. With `whole_keys`, the rows after those that
    /// share the last one's key come too, so a key never straddles two
    /// batches: when a key occurs at most once per run, that is at most one
    /// row per other run.
    ///
    /// # Errors
    /// When a run fails to read, its keys fail to encode or the rows cannot
    /// be gathered.
    pub(crate) fn next_batch(
        &mut self,
        keys: &dyn RunKeys,
        rows: usize,
        whole_keys: bool,
    ) -> Result<Option<RecordBatch>> {
        if self.heap.is_empty() {
            return Ok(None);
        }
        // Only the batches the live cursors are on stay staged.
        self.staged.clear();
        for &i in &self.heap {
            let cursor = &mut self.cursors[i];
            cursor.slot = self.staged.len();
            self.staged.push(cursor.batch.clone());
        }
        let mut picked = Vec::with_capacity(rows);
        let mut last_key: Option<OwnedRow> = None;
        while let Some(&top) = self.heap.first() {
            let cursor = &mut self.cursors[top];
            if picked.len() >= rows
                && last_key
                    .as_ref()
                    .is_none_or(|last| last.row() != cursor.current())
            {
                break;
            }
            picked.push((cursor.slot, cursor.next));
            if whole_keys && picked.len() == rows {
                last_key = Some(cursor.current().owned());
            }
            if !cursor.advance(keys, &mut self.staged)? {
                self.heap.swap_remove(0);
            }
            self.sift_down(0);
        }
        let batches: Vec<&RecordBatch> = self.staged.iter().collect();
        let batch = interleave_record_batch(&batches, &picked)
            .map_err(|e| keys.error("gathering merged rows", e))?;
        Ok(Some(batch))
    }

    /// Whether cursor `a`'s row comes before cursor `b`'s: by key, then by
    /// run.
    fn precedes(&self, a: usize, b: usize) -> bool {
        (self.cursors[a].current(), a) < (self.cursors[b].current(), b)
    }

    /// Restores the heap order below `i`.
    fn sift_down(&mut self, mut i: usize) {
        loop {
            let left = 2 * i + 1;
            if left >= self.heap.len() {
                return;
            }
            let right = left + 1;
            let child =
                if right < self.heap.len() && self.precedes(self.heap[right], self.heap[left]) {
                    right
                } else {
                    left
                };
            if !self.precedes(self.heap[child], self.heap[i]) {
                return;
            }
            self.heap.swap(i, child);
            i = child;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use arrow::row::{RowConverter, SortField};

    use super::*;

    struct ByFirstColumn(RowConverter);

    impl RunKeys for ByFirstColumn {
        fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
            Ok(self.0.convert_columns(&batch.columns()[..1])?)
        }

        fn error(&self, _doing: &str, e: ArrowError) -> Error {
            e.into()
        }
    }

    /// A run of batches of (key, run) rows.
    fn run(index: i64, batches: &[&[i64]]) -> Run {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("run", DataType::Int64, false),
        ]));
        let batches: Vec<_> = batches
            .iter()
            .map(|keys| {
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(Int64Array::from(keys.to_vec())),
                        Arc::new(Int64Array::from(vec![index; keys.len()])),
                    ],
                )
                .map_err(Error::from)
            })
            .collect();
        Box::new(batches.into_iter())
    }

    fn pairs(batch: &RecordBatch) -> Vec<(i64, i64)> {
        let column = |i: usize| {
            batch
                .column(i)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        };
        column(0).into_iter().zip(column(1)).collect()
    }

    fn keys() -> ByFirstColumn {
        ByFirstColumn(RowConverter::new(vec![SortField::new(DataType::Int64)]).expect("converter"))
    }

    #[test]
    fn merges_in_key_then_run_order_and_resumes_between_batches() {
        let keys = keys();
        let runs = vec![
            run(0, &[&[1, 3], &[], &[3, 7]]),
            run(1, &[]),
            run(2, &[&[0, 3, 8]]),
        ];
        let mut merge = RunMerge::try_new(runs, &keys).expect("opens");
        let mut parts = Vec::new();
        while let Some(batch) = merge.next_batch(&keys, 2, false).expect("merges") {
            parts.push(pairs(&batch));
        }
        assert_eq!(
            parts,
            vec![
                vec![(0, 2), (1, 0)],
                vec![(3, 0), (3, 0)],
                vec![(3, 2), (7, 0)],
                vec![(8, 2)],
            ]
        );
    }

    #[test]
    fn whole_keys_never_straddle_two_batches() {
        let keys = keys();
        let runs = vec![run(0, &[&[1, 2, 4]]), run(1, &[&[2, 4]]), run(2, &[&[2]])];
        let mut merge = RunMerge::try_new(runs, &keys).expect("opens");
        let first = merge.next_batch(&keys, 2, true).expect("merges");
        assert_eq!(
            pairs(&first.expect("rows")),
            vec![(1, 0), (2, 0), (2, 1), (2, 2)]
        );
        let second = merge.next_batch(&keys, 2, true).expect("merges");
        assert_eq!(pairs(&second.expect("rows")), vec![(4, 0), (4, 1)]);
        assert!(merge.next_batch(&keys, 2, true).expect("done").is_none());
    }
}
