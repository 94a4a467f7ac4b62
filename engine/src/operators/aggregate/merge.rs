//! Spilling groups and merging them back.
//!
//! A `Final` or `Single` aggregate over its budget sorts its groups by key
//! and writes them as state rows (group keys, then state columns) to a
//! spill run, then starts again empty. At the end the runs are merged by
//! key, [`MERGE_FAN_IN`] at a time: rows of equal keys are gathered into
//! the same chunk of at most [`OUTPUT_BATCH_ROWS`] rows, their states merged, and
//! the chunk emitted as final values (last pass) or as a new sorted run
//! (earlier passes). The last pass is resumable: the operator emits from it
//! until its output is full and goes on at the next call. Memory while
//! merging holds one batch per open run and one chunk, whatever the number
//! of groups.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::error::ArrowError;
use arrow::row::{RowConverter, Rows};
use weir_exchange::spill::SpillFile;

use super::groups::GroupOrder;
use super::plan::AggregatePlan;
use super::state::{Emit, GroupBatches, GroupedState};
use crate::memory::MemoryReservation;
use crate::operator::OUTPUT_BATCH_ROWS;
use crate::operators::run_merge::{Run, RunKeys, RunMerge};
use crate::{Error, Result};

/// Runs merged together in one pass.
const MERGE_FAN_IN: usize = 16;

/// Rows gathered per merged chunk before it is cut at the next key change;
/// a key occurs at most once per run, so a chunk stays within
/// [`OUTPUT_BATCH_ROWS`].
const CHUNK_ROWS: usize = OUTPUT_BATCH_ROWS - MERGE_FAN_IN;

/// The spill runs of one aggregate, deleted when dropped.
pub(super) struct SpilledRuns {
    plan: Arc<AggregatePlan>,
    runs: Vec<SpillFile>,
}

impl SpilledRuns {
    /// No runs yet.
    pub(super) fn new(plan: &Arc<AggregatePlan>) -> Self {
        Self {
            plan: Arc::clone(plan),
            runs: Vec::new(),
        }
    }

    /// Whether nothing was spilled.
    pub(super) fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// Writes the groups of `state` to a new run, sorted by key, leaving it
    /// empty.
    pub(super) fn spill(
        &mut self,
        state: &mut GroupedState,
        reservation: &MemoryReservation,
    ) -> Result<()> {
        let run = self.write_run(reservation, |sink| {
            state.drain(GroupOrder::Key, Emit::States, sink)
        })?;
        self.runs.push(run);
        Ok(())
    }

    /// Spills what `state` still holds and merges the runs down to the
    /// last pass, which it returns to be emitted batch by batch as final
    /// values. Earlier passes (more runs than [`MERGE_FAN_IN`]) write
    /// longer runs.
    pub(super) fn finish(
        &mut self,
        state: &mut GroupedState,
        reservation: &MemoryReservation,
    ) -> Result<MergedGroups> {
        if state.len() > 0 {
            self.spill(state, reservation)?;
        }
        while self.runs.len() > MERGE_FAN_IN {
            let pass: Vec<SpillFile> = self.runs.drain(..MERGE_FAN_IN).collect();
            let mut merged = MergedGroups::try_new(&self.plan, reservation, pass, Emit::States)?;
            let run = self.write_run(reservation, |sink| {
                while let Some(batch) = merged.next_batch()? {
                    sink(batch)?;
                }
                Ok(())
            })?;
            self.runs.push(run);
        }
        let runs = std::mem::take(&mut self.runs);
        MergedGroups::try_new(&self.plan, reservation, runs, Emit::Values)
    }

    /// A new run of the batches `fill` writes.
    fn write_run(
        &self,
        reservation: &MemoryReservation,
        fill: impl FnOnce(&mut dyn FnMut(RecordBatch) -> Result<()>) -> Result<()>,
    ) -> Result<SpillFile> {
        let mut writer = reservation.spill_writer(&self.plan.state_schema)?;
        fill(&mut |batch| writer.write(&batch).map_err(|e| reservation.spill_error(e)))?;
        let run = writer.finish().map_err(|e| reservation.spill_error(e))?;
        reservation.record_spill(&run);
        Ok(run)
    }
}

/// The group keys of spilled state rows: their leading columns.
struct StateKeys {
    plan: Arc<AggregatePlan>,
    converter: RowConverter,
}

impl RunKeys for StateKeys {
    fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        self.converter
            .convert_columns(&batch.columns()[..self.plan.key_fields.len()])
            .map_err(|e| self.plan.error("reading spilled group keys", e))
    }

    fn error(&self, doing: &str, e: ArrowError) -> Error {
        self.plan.error(doing, e)
    }
}

/// Spilled runs merged by key: rows of equal keys are gathered into the
/// same chunk, their states merged, and the chunk's groups emitted as
/// merged states or final values, batch by batch. The runs' files are
/// deleted when it is dropped.
pub(super) struct MergedGroups {
    plan: Arc<AggregatePlan>,
    keys: StateKeys,
    merge: RunMerge,
    emit: Emit,
    /// The groups of the chunk being emitted.
    chunk: Option<GroupBatches>,
    _runs: Vec<SpillFile>,
}

impl MergedGroups {
    /// A merge of sorted `runs` emitting `emit`.
    fn try_new(
        plan: &Arc<AggregatePlan>,
        reservation: &MemoryReservation,
        runs: Vec<SpillFile>,
        emit: Emit,
    ) -> Result<Self> {
        let keys = StateKeys {
            plan: Arc::clone(plan),
            converter: plan.key_converter()?,
        };
        let readers = runs
            .iter()
            .map(|run| Ok(Box::new(reservation.read_spill(run)?) as Run))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            plan: Arc::clone(plan),
            merge: RunMerge::try_new(readers, &keys)?,
            keys,
            emit,
            chunk: None,
            _runs: runs,
        })
    }

    /// The next batch of merged groups, `None` when all were emitted.
    pub(super) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(chunk) = &mut self.chunk
                && let Some(batch) = chunk.next_batch()?
            {
                return Ok(Some(batch));
            }
            let Some(rows) = self.merge.next_batch(&self.keys, CHUNK_ROWS, true)? else {
                return Ok(None);
            };
            let mut merged = GroupedState::try_new(&self.plan)?;
            merged.merge(&rows)?;
            self.chunk = Some(merged.take_groups(GroupOrder::FirstSeen, self.emit)?);
        }
    }
}
