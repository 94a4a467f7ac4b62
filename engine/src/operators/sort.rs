//! External sort: orders its whole input by sort keys, spilling sorted runs
//! to disk when the input does not fit in its memory budget.
//!
//! Batches are buffered with their encoded keys while the operator's
//! reservation can grow. When it cannot, the buffered rows are sorted into a
//! run that goes to a spill file, and the memory is freed. At the end of the
//! input the spilled runs and the rows still in memory are merged with a
//! k-way merge that reads each run one batch at a time; when there are more
//! runs than the merge fan-in, groups of runs are first merged into longer
//! runs. The output is emitted in parts: `finish` stops when its output is
//! full and resumes the sorted rows or the merge where it stopped, so the
//! sorted result never sits in memory whole. The sort is stable: rows with equal keys come out in the order they
//! arrived, so the same input always gives the same output.

use std::mem;
use std::sync::Arc;
use weir_exchange::event::batch_data_bytes;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::row::Rows;
use weir_exchange::spill::SpillFile;

use super::run_merge::{Run, RunKeys, RunMerge};
use super::sort_key::{self, KeyEncoder, SortKey};
use crate::memory::MemoryReservation;
use crate::operator::OUTPUT_BATCH_ROWS;
use crate::{Error, Operator, OperatorFactory, Output, Progress, Result, TaskInfo};

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
            buffered_rows: 0,
            sorted_runs: Vec::new(),
            runs: Vec::new(),
            watermark: None,
            emitting: None,
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
    /// Rows in `buffered`.
    buffered_rows: usize,
    /// Sorted runs in memory, oldest first: all newer than the spilled runs
    /// and older than `buffered`.
    sorted_runs: Vec<Vec<RecordBatch>>,
    /// Spilled sorted runs, oldest first.
    runs: Vec<SpillFile>,
    watermark: Option<i64>,
    /// The sorted output being emitted, once `finish` began.
    emitting: Option<Emitting>,
}

/// The sorted output, emitted batch by batch over calls to `finish`.
enum Emitting {
    /// Fewer rows than one sorted run, none spilled: the buffered rows in
    /// order.
    Sorted(SortedBatches),
    /// The spilled runs and the runs in memory, merged. The files are
    /// deleted when the merge is dropped.
    Merging {
        merge: RunMerge,
        _runs: Vec<SpillFile>,
    },
}

impl Emitting {
    fn next_batch(&mut self, encoder: &KeyEncoder) -> Result<Option<RecordBatch>> {
        match self {
            Emitting::Sorted(sorted) => sorted.next().transpose(),
            Emitting::Merging { merge, .. } => merge.next_batch(encoder, OUTPUT_BATCH_ROWS, false),
        }
    }
}

impl RunKeys for KeyEncoder {
    fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        KeyEncoder::encode(self, batch)
    }

    fn error(&self, doing: &str, e: ArrowError) -> Error {
        KeyEncoder::error(self, doing, e)
    }
}

/// Rows sorted at a time in memory: their keys stay in the CPU caches while
/// they are compared. Larger inputs are sorted in runs of this many rows,
/// then merged.
const SORTED_RUN_ROWS: usize = 1 << 16;

impl SortState {
    /// Writes everything in memory to a spill file as one sorted run (the
    /// in-memory runs and the buffered rows, merged) and frees its memory.
    fn spill(&mut self, schema: &SchemaRef) -> Result<()> {
        let in_memory = self.take_in_memory();
        let mut merge = self.merge(&[], in_memory)?;
        let file = self.write_run(schema, |sink| {
            while let Some(batch) = merge.next_batch(&self.encoder, OUTPUT_BATCH_ROWS, false)? {
                sink(batch)?;
            }
            Ok(())
        })?;
        self.runs.push(file);
        self.reservation.free();
        Ok(())
    }

    /// Takes the runs in memory out, oldest first: the sorted runs, then the
    /// buffered rows sorted.
    fn take_in_memory(&mut self) -> Vec<Run> {
        let mut runs: Vec<Run> = mem::take(&mut self.sorted_runs)
            .into_iter()
            .map(|run| Box::new(run.into_iter().map(Ok)) as Run)
            .collect();
        if !self.buffered.is_empty() {
            runs.push(Box::new(self.take_sorted()));
        }
        runs
    }

    /// Takes the buffered rows out in order, as a run.
    fn take_sorted(&mut self) -> SortedBatches {
        self.buffered_rows = 0;
        let buffered = mem::take(&mut self.buffered);
        let rows: Vec<&Rows> = buffered.iter().map(|b| &b.rows).collect();
        let mut positions: Vec<(usize, usize)> = buffered
            .iter()
            .enumerate()
            .flat_map(|(b, buffered)| (0..buffered.batch.num_rows()).map(move |i| (b, i)))
            .collect();
        sort_key::sort_positions(&rows, &mut positions);
        SortedBatches {
            operator: self.encoder.operator().to_string(),
            batches: buffered.into_iter().map(|b| b.batch).collect(),
            positions,
            next: 0,
        }
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

    /// A merge of spilled runs `files`, followed by the runs `in_memory`.
    fn merge(&self, files: &[SpillFile], in_memory: Vec<Run>) -> Result<RunMerge> {
        let mut runs = files
            .iter()
            .map(|file| Ok(Box::new(self.reservation.read_spill(file)?) as Run))
            .collect::<Result<Vec<_>>>()?;
        // The rows still in memory arrived last.
        runs.extend(in_memory);
        RunMerge::try_new(runs, &self.encoder)
    }

    /// Merges groups of spilled runs into longer runs until what is left
    /// (with the run still in memory, if any) can be merged at once. Groups
    /// are consecutive, so runs stay in arrival order and the sort stays
    /// stable.
    fn merge_runs_to_fan_in(&mut self, schema: &SchemaRef) -> Result<()> {
        let in_memory = usize::from(!self.buffered.is_empty() || !self.sorted_runs.is_empty());
        while self.runs.len() + in_memory > self.merge_fan_in {
            let mut merged = Vec::new();
            let mut runs = mem::take(&mut self.runs).into_iter().peekable();
            while runs.peek().is_some() {
                let group: Vec<SpillFile> = runs.by_ref().take(self.merge_fan_in).collect();
                if group.len() == 1 {
                    merged.extend(group);
                    continue;
                }
                let mut merge = self.merge(&group, Vec::new())?;
                merged.push(self.write_run(schema, |sink| {
                    while let Some(batch) =
                        merge.next_batch(&self.encoder, OUTPUT_BATCH_ROWS, false)?
                    {
                        sink(batch)?;
                    }
                    Ok(())
                })?);
            }
            self.runs = merged;
        }
        Ok(())
    }

    /// What `finish` emits: the buffered rows sorted, or merged with the
    /// spilled runs (`None` without any input).
    fn start_emitting(&mut self) -> Result<Option<Emitting>> {
        let Some(schema) = self.schema.clone() else {
            return Ok(None);
        };
        if self.runs.is_empty() && self.sorted_runs.is_empty() {
            let sorted = self.take_sorted();
            return Ok(Some(Emitting::Sorted(sorted)));
        }
        self.merge_runs_to_fan_in(&schema)?;
        let runs = mem::take(&mut self.runs);
        let in_memory = self.take_in_memory();
        Ok(Some(Emitting::Merging {
            merge: self.merge(&runs, in_memory)?,
            _runs: runs,
        }))
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
        let bytes =
            batch_data_bytes(&batch) + rows.size() + batch.num_rows() * size_of::<(usize, usize)>();
        let fits = self.reservation.try_grow(bytes);
        if !fits && !self.reservation.can_spill() {
            return Err(self.reservation.exhausted(bytes));
        }
        self.buffered_rows += batch.num_rows();
        self.buffered.push(Buffered { batch, rows });
        if !fits {
            // The batch that did not fit goes into the run with the others.
            self.spill(&schema)?;
        } else if self.buffered_rows >= SORTED_RUN_ROWS {
            let run = self.take_sorted().collect::<Result<Vec<_>>>()?;
            self.sorted_runs.push(run);
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: i64, _output: &mut Output) -> Result<()> {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        Ok(())
    }

    fn finish(&mut self, output: &mut Output) -> Result<Progress> {
        if self.emitting.is_none() {
            self.emitting = self.start_emitting()?;
        }
        if let Some(emitting) = &mut self.emitting {
            let encoder = &self.encoder;
            if output.emit_until_full(|| emitting.next_batch(encoder))? == Progress::More {
                return Ok(Progress::More);
            }
        }
        self.emitting = None;
        self.reservation.free();
        if let Some(watermark) = self.watermark.take() {
            output.emit_watermark(watermark);
        }
        Ok(Progress::Done)
    }
}

/// The rows of some batches in a given order, cut into output batches.
struct SortedBatches {
    /// The sort's name, for its errors.
    operator: String,
    batches: Vec<RecordBatch>,
    positions: Vec<(usize, usize)>,
    next: usize,
}

impl Iterator for SortedBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.positions.len() {
            return None;
        }
        let end = (self.next + OUTPUT_BATCH_ROWS).min(self.positions.len());
        let batches: Vec<&RecordBatch> = self.batches.iter().collect();
        let batch = interleave_record_batch(&batches, &self.positions[self.next..end])
            .map_err(|e| sort_key::operator_error(&self.operator, "gathering sorted rows", e));
        self.next = end;
        Some(batch)
    }
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
