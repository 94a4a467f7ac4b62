//! External sort: orders its whole input by sort keys, spilling sorted runs
//! to disk when the input does not fit in its memory budget.
//!
//! Batches are buffered with their encoded keys while the operator's
//! reservation can grow. When it cannot, the buffered rows are sorted into a
//! run that goes to a spill file, and the memory is freed. At the end of the
//! input the spilled runs and the rows still in memory are merged with a
//! k-way merge that reads each run one batch at a time; when there are more
//! runs than the merge fan-in, groups of runs are first merged into longer
//! runs. The sort is stable: rows with equal keys come out in the order they
//! arrived, so the same input always gives the same output.

use std::mem;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::row::{Row, Rows};
use weir_exchange::spill::SpillFile;

use super::sort_key::{self, KeyEncoder, OUTPUT_BATCH_ROWS, SortKey};
use crate::memory::MemoryReservation;
use crate::{Operator, OperatorFactory, Output, Progress, Result, TaskInfo};

/// Runs merged at once by default.
const DEFAULT_MERGE_FAN_IN: usize = 64;

/// Orders all of its input by `keys` (ORDER BY), under its memory budget.
///
/// Output is emitted when every input has ended, in batches of at most 8192
/// rows. Watermarks are held back until then, so none overtakes the rows it
/// covers.
///
/// The reservation accounts the buffered batches, their encoded keys and the
/// positions sorted. Merging holds one batch per run being merged (at most
/// the merge fan-in) outside it: a bound that does not grow with the input.
#[derive(Debug, Clone)]
pub struct Sort {
    keys: Vec<SortKey>,
    merge_fan_in: usize,
}

impl Sort {
    /// A sort by `keys`, the first the most significant.
    ///
    /// # Errors
    /// [`Error::Plan`](crate::Error::Plan) when there is no key or a key's
    /// type cannot be ordered.
    pub fn try_new(keys: Vec<SortKey>) -> Result<Self> {
        sort_key::validate(&keys)?;
        Ok(Self {
            keys,
            merge_fan_in: DEFAULT_MERGE_FAN_IN,
        })
    }

    /// Merges at most `runs` sorted runs at once (at least 2): each run being
    /// merged holds one batch in memory and one open file.
    pub fn with_merge_fan_in(mut self, runs: usize) -> Self {
        self.merge_fan_in = runs.max(2);
        self
    }

    /// The sort keys, the first the most significant.
    pub fn keys(&self) -> &[SortKey] {
        &self.keys
    }
}

impl OperatorFactory for Sort {
    fn name(&self) -> String {
        format!("sort({})", sort_key::describe(&self.keys))
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(SortState {
            encoder: KeyEncoder::try_new(self.name(), &self.keys)?,
            reservation: task.memory.reservation(self.name()),
            merge_fan_in: self.merge_fan_in,
            schema: None,
            buffered: Vec::new(),
            runs: Vec::new(),
            watermark: None,
        }))
    }
}

/// One buffered input batch and its encoded keys.
struct Buffered {
    batch: RecordBatch,
    rows: Rows,
}

struct SortState {
    encoder: KeyEncoder,
    reservation: MemoryReservation,
    merge_fan_in: usize,
    /// The schema of the input, known from its first batch.
    schema: Option<SchemaRef>,
    buffered: Vec<Buffered>,
    /// Spilled sorted runs, oldest first.
    runs: Vec<SpillFile>,
    watermark: Option<i64>,
}

/// A sorted run being read: its batches in order.
type RunReader<'a> = Box<dyn Iterator<Item = Result<RecordBatch>> + 'a>;

impl SortState {
    /// Sorts the buffered rows into a run, writes it to a spill file and
    /// frees their memory.
    fn spill(&mut self, schema: &SchemaRef) -> Result<()> {
        let sorted = sorted_run(&self.encoder, mem::take(&mut self.buffered));
        let file = self.write_run(schema, |sink| sorted.into_iter().try_for_each(|b| sink(b?)))?;
        self.runs.push(file);
        self.reservation.free();
        Ok(())
    }

    /// Writes the batches that `produce` hands to its sink to a new spill
    /// file: a sorted run.
    fn write_run(
        &self,
        schema: &SchemaRef,
        produce: impl FnOnce(&mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()>,
    ) -> Result<SpillFile> {
        let mut writer = self.reservation.spill_writer(schema)?;
        produce(&mut |batch| {
            writer
                .write(&batch)
                .map_err(|e| self.reservation.spill_error(e))
        })?;
        let file = writer
            .finish()
            .map_err(|e| self.reservation.spill_error(e))?;
        self.reservation.record_spill(&file);
        Ok(file)
    }

    /// Reads a spilled run back, batch by batch.
    fn read_run<'a>(&'a self, file: &SpillFile) -> Result<RunReader<'a>> {
        let reader = file.read().map_err(|e| self.reservation.spill_error(e))?;
        Ok(Box::new(reader.map(|batch| {
            batch.map_err(|e| self.reservation.spill_error(e))
        })))
    }

    /// Merges groups of spilled runs into longer runs until what is left
    /// (with the run still in memory, if any) can be merged at once. Groups
    /// are consecutive, so runs stay in arrival order and the sort stays
    /// stable.
    fn merge_runs_to_fan_in(&mut self, schema: &SchemaRef) -> Result<()> {
        let in_memory = usize::from(!self.buffered.is_empty());
        while self.runs.len() + in_memory > self.merge_fan_in {
            let mut merged = Vec::new();
            let mut runs = mem::take(&mut self.runs).into_iter().peekable();
            while runs.peek().is_some() {
                let group: Vec<SpillFile> = runs.by_ref().take(self.merge_fan_in).collect();
                if group.len() == 1 {
                    merged.extend(group);
                    continue;
                }
                let readers = group
                    .iter()
                    .map(|file| self.read_run(file))
                    .collect::<Result<Vec<_>>>()?;
                merged.push(self.write_run(schema, |sink| merge(&self.encoder, readers, sink))?);
            }
            self.runs = merged;
        }
        Ok(())
    }
}

impl Operator for SortState {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _output: &mut Output,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let schema = Arc::clone(self.schema.get_or_insert_with(|| batch.schema()));
        let rows = self.encoder.encode(&batch)?;
        // The batch, its keys and its share of the positions sorted later.
        let bytes = batch.get_array_memory_size()
            + rows.size()
            + batch.num_rows() * size_of::<(usize, usize)>();
        let fits = self.reservation.try_grow(bytes);
        if !fits && !self.reservation.can_spill() {
            return Err(self.reservation.exhausted(bytes));
        }
        self.buffered.push(Buffered { batch, rows });
        if !fits {
            // The batch that did not fit goes into the run with the others.
            self.spill(&schema)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, _output: &mut Output) -> Result<()> {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        Ok(())
    }

    fn finish(&mut self, output: &mut Output) -> Result<Progress> {
        if let Some(schema) = self.schema.clone() {
            if self.runs.is_empty() {
                for batch in sorted_run(&self.encoder, mem::take(&mut self.buffered)) {
                    output.emit(batch?);
                }
            } else {
                self.merge_runs_to_fan_in(&schema)?;
                let runs = mem::take(&mut self.runs);
                let in_memory = sorted_run(&self.encoder, mem::take(&mut self.buffered));
                let mut readers = runs
                    .iter()
                    .map(|file| self.read_run(file))
                    .collect::<Result<Vec<_>>>()?;
                // The rows still in memory arrived last.
                readers.push(Box::new(in_memory));
                merge(&self.encoder, readers, |batch| {
                    output.emit(batch);
                    Ok(())
                })?;
            }
        }
        self.reservation.free();
        if let Some(watermark) = self.watermark.take() {
            output.emit_watermark(watermark);
        }
        Ok(Progress::Done)
    }
}

/// The rows of `buffered` in order, as a run.
fn sorted_run(encoder: &KeyEncoder, buffered: Vec<Buffered>) -> SortedBatches<'_> {
    let rows: Vec<&Rows> = buffered.iter().map(|b| &b.rows).collect();
    let mut positions: Vec<(usize, usize)> = buffered
        .iter()
        .enumerate()
        .flat_map(|(b, buffered)| (0..buffered.batch.num_rows()).map(move |i| (b, i)))
        .collect();
    sort_key::sort_positions(&rows, &mut positions);
    SortedBatches {
        encoder,
        batches: buffered.into_iter().map(|b| b.batch).collect(),
        positions,
        next: 0,
    }
}

/// The rows of some batches in a given order, cut into output batches.
struct SortedBatches<'a> {
    encoder: &'a KeyEncoder,
    batches: Vec<RecordBatch>,
    positions: Vec<(usize, usize)>,
    next: usize,
}

impl Iterator for SortedBatches<'_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.positions.len() {
            return None;
        }
        let end = (self.next + OUTPUT_BATCH_ROWS).min(self.positions.len());
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        let batch = interleave_record_batch(&batches, &self.positions[self.next..end])
            .map_err(|e| self.encoder.error("gathering sorted rows", e));
        self.next = end;
        Some(batch)
    }
}

/// A run being merged: its current batch (at `slot` among the staged
/// batches), that batch's keys and the next row to take.
struct Cursor<'a> {
    run: RunReader<'a>,
    slot: usize,
    rows: Rows,
    next: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor on the first row of `run`, or `None` when it is empty.
    fn open(
        mut run: RunReader<'a>,
        encoder: &KeyEncoder,
        staged: &mut Vec<RecordBatch>,
    ) -> Result<Option<Self>> {
        Ok(
            next_batch(&mut run, encoder, staged)?.map(|(slot, rows)| Self {
                run,
                slot,
                rows,
                next: 0,
            }),
        )
    }

    fn current(&self) -> Row<'_> {
        self.rows.row(self.next)
    }

    /// Moves to the next row; `false` when the run has no more.
    fn advance(&mut self, encoder: &KeyEncoder, staged: &mut Vec<RecordBatch>) -> Result<bool> {
        self.next += 1;
        if self.next < self.rows.num_rows() {
            return Ok(true);
        }
        match next_batch(&mut self.run, encoder, staged)? {
            Some((slot, rows)) => {
                (self.slot, self.rows, self.next) = (slot, rows, 0);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Stages the next non-empty batch of `run` and encodes its keys.
fn next_batch(
    run: &mut RunReader<'_>,
    encoder: &KeyEncoder,
    staged: &mut Vec<RecordBatch>,
) -> Result<Option<(usize, Rows)>> {
    for batch in run {
        let batch = batch?;
        if batch.num_rows() > 0 {
            let rows = encoder.encode(&batch)?;
            staged.push(batch);
            return Ok(Some((staged.len() - 1, rows)));
        }
    }
    Ok(None)
}

/// Whether cursor `a`'s row comes before cursor `b`'s: by key, then by run
/// (earlier runs hold earlier rows, which keeps the merge stable).
fn precedes(cursors: &[Cursor<'_>], a: usize, b: usize) -> bool {
    (cursors[a].current(), a) < (cursors[b].current(), b)
}

/// Restores the heap order below `i` of a min-heap of cursor indices.
fn sift_down(heap: &mut [usize], mut i: usize, cursors: &[Cursor<'_>]) {
    loop {
        let left = 2 * i + 1;
        if left >= heap.len() {
            return;
        }
        let right = left + 1;
        let child = if right < heap.len() && precedes(cursors, heap[right], heap[left]) {
            right
        } else {
            left
        };
        if !precedes(cursors, heap[child], heap[i]) {
            return;
        }
        heap.swap(i, child);
        i = child;
    }
}

/// Merges sorted `runs` (given in arrival order) into `sink`, in batches of
/// at most [`OUTPUT_BATCH_ROWS`] rows. Holds one batch per run, plus the
/// batches the pending output rows come from.
fn merge(
    encoder: &KeyEncoder,
    runs: Vec<RunReader<'_>>,
    mut sink: impl FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let mut staged = Vec::new();
    let mut cursors = Vec::with_capacity(runs.len());
    for run in runs {
        cursors.extend(Cursor::open(run, encoder, &mut staged)?);
    }
    let mut heap: Vec<usize> = (0..cursors.len()).collect();
    for i in (0..heap.len() / 2).rev() {
        sift_down(&mut heap, i, &cursors);
    }
    let mut picked = Vec::with_capacity(OUTPUT_BATCH_ROWS);
    while let Some(&top) = heap.first() {
        let cursor = &mut cursors[top];
        picked.push((cursor.slot, cursor.next));
        if !cursor.advance(encoder, &mut staged)? {
            heap.swap_remove(0);
        }
        sift_down(&mut heap, 0, &cursors);
        if picked.len() == OUTPUT_BATCH_ROWS {
            staged = flush(encoder, staged, &mut picked, &heap, &mut cursors, &mut sink)?;
        }
    }
    if !picked.is_empty() {
        flush(encoder, staged, &mut picked, &heap, &mut cursors, &mut sink)?;
    }
    Ok(())
}

/// Emits the picked rows as one batch and returns the staged batches the
/// live cursors still read from (renumbering their slots).
fn flush(
    encoder: &KeyEncoder,
    staged: Vec<RecordBatch>,
    picked: &mut Vec<(usize, usize)>,
    live: &[usize],
    cursors: &mut [Cursor<'_>],
    sink: &mut impl FnMut(RecordBatch) -> Result<()>,
) -> Result<Vec<RecordBatch>> {
    let batches: Vec<&RecordBatch> = staged.iter().collect();
    let batch = interleave_record_batch(&batches, picked)
        .map_err(|e| encoder.error("gathering merged rows", e))?;
    picked.clear();
    sink(batch)?;
    let mut kept = Vec::with_capacity(live.len());
    for &i in live {
        let cursor = &mut cursors[i];
        kept.push(staged[cursor.slot].clone());
        cursor.slot = kept.len() - 1;
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::expr::{Compiled, col};
    use crate::memory::{MemoryConfig, MemoryPool};
    use crate::testing::drive;

    fn batch(values: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("valid batch")
    }

    fn sort(descending: bool) -> Sort {
        let expr = Compiled::new(&col("v"), &batch(&[]).schema()).expect("compiles");
        let key = if descending {
            SortKey::desc(expr)
        } else {
            SortKey::asc(expr)
        };
        Sort::try_new(vec![key]).expect("valid sort")
    }

    fn values(batches: &[RecordBatch]) -> Vec<Option<i64>> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().iter())
            .collect()
    }

    #[test]
    fn sorts_across_batches_with_nulls_placed() {
        let input = vec![
            batch(&[Some(3), None, Some(1)]),
            batch(&[]),
            batch(&[Some(2), Some(-5)]),
        ];
        let out = drive(
            &sort(true),
            std::slice::from_ref(&input),
            MemoryPool::unbounded(),
        )
        .expect("sorts");
        assert_eq!(
            values(&out),
            vec![None, Some(3), Some(2), Some(1), Some(-5)]
        );
        let out = drive(&sort(false), &[input], MemoryPool::unbounded()).expect("sorts");
        assert_eq!(
            values(&out),
            vec![Some(-5), Some(1), Some(2), Some(3), None]
        );
    }

    #[test]
    fn an_empty_input_sorts_to_nothing() {
        let out = drive(&sort(false), &[vec![]], MemoryPool::unbounded()).expect("sorts");
        assert!(out.is_empty());
    }

    #[test]
    fn spilled_runs_merge_in_order_through_several_levels() {
        let dir = std::env::temp_dir().join(format!("weir-sort-unit-{}", std::process::id()));
        let pool = MemoryPool::new(MemoryConfig {
            budget: 1,
            spill: true,
            spill_dir: dir.clone(),
        });
        // Every batch is its own run: 40 runs merged 3 at a time.
        let input: Vec<_> = (0..40)
            .map(|i| batch(&[Some((i * 17) % 40), Some(i % 7)]))
            .collect();
        let out = drive(&sort(false).with_merge_fan_in(3), &[input], pool.clone()).expect("sorts");
        let mut expected: Vec<_> = (0..40).flat_map(|i| [(i * 17) % 40, i % 7]).collect();
        expected.sort_unstable();
        assert_eq!(
            values(&out),
            expected.into_iter().map(Some).collect::<Vec<_>>()
        );
        assert!(pool.spill_files() > 40, "runs were merged into longer runs");
        assert_eq!(std::fs::read_dir(&dir).map_or(0, |d| d.count()), 0);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn watermarks_wait_for_the_sorted_rows() {
        let mut op = sort(false)
            .create(&crate::testing::task_info(MemoryPool::unbounded()))
            .expect("creates");
        let mut out = Output::default();
        op.process_batch(0, batch(&[Some(2), Some(1)]), &mut out)
            .expect("buffers");
        op.on_watermark(10, &mut out).expect("holds");
        assert_eq!(out.take(), (vec![], None));
        op.finish(&mut out).expect("finishes");
        let (batches, watermark) = out.take();
        assert_eq!(values(&batches), vec![Some(1), Some(2)]);
        assert_eq!(watermark, Some(10));
        assert!(batches.iter().all(|b| b.column(0).null_count() == 0));
    }
}
