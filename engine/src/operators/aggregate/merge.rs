//! Spilling groups and merging them back.
//!
//! A `Final` or `Single` aggregate over its budget sorts its groups by key
//! and writes them as state rows (group keys, then state columns) to a
//! spill run, then starts again empty. At the end the runs are merged by
//! key, [`MERGE_FAN_IN`] at a time: rows of equal keys are gathered into
//! the same chunk of at most [`BATCH_ROWS`] rows, their states merged, and
//! the chunk emitted as final values (last pass) or as a new sorted run
//! (earlier passes). Memory while merging holds one batch per open run and
//! one chunk, whatever the number of groups.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::interleave_record_batch;
use arrow::row::{OwnedRow, Row, RowConverter, Rows};
use weir_exchange::spill::{SpillFile, SpillReader};

use super::groups::GroupOrder;
use super::plan::AggregatePlan;
use super::state::{BATCH_ROWS, Emit, GroupedState};
use crate::Result;
use crate::memory::MemoryReservation;

/// Runs merged together in one pass.
const MERGE_FAN_IN: usize = 16;

/// Rows gathered per merged chunk before it is cut at the next key change;
/// a key occurs at most once per run, so a chunk stays within
/// [`BATCH_ROWS`].
const CHUNK_ROWS: usize = BATCH_ROWS - MERGE_FAN_IN;

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

    /// Spills what `state` still holds, merges every run and emits the final
    /// values of all groups to `sink`.
    pub(super) fn finish(
        &mut self,
        state: &mut GroupedState,
        reservation: &MemoryReservation,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        if state.len() > 0 {
            self.spill(state, reservation)?;
        }
        while self.runs.len() > MERGE_FAN_IN {
            let pass: Vec<SpillFile> = self.runs.drain(..MERGE_FAN_IN).collect();
            let merged = self.write_run(reservation, |sink| {
                merge(&self.plan, reservation, &pass, Emit::States, sink)
            })?;
            self.runs.push(merged);
        }
        let runs = std::mem::take(&mut self.runs);
        merge(&self.plan, reservation, &runs, Emit::Values, sink)
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

/// Where one run is in the merge.
struct Cursor {
    reader: SpillReader,
    batch: RecordBatch,
    rows: Rows,
    position: usize,
    /// Index of `batch` among the chunk's source batches.
    source: usize,
}

impl Cursor {
    fn key(&self) -> Row<'_> {
        self.rows.row(self.position)
    }
}

/// Merges sorted `runs` by key and emits their groups' merged states or
/// final values to `sink`.
fn merge(
    plan: &Arc<AggregatePlan>,
    reservation: &MemoryReservation,
    runs: &[SpillFile],
    emit: Emit,
    sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<()> {
    let keys = plan.key_converter()?;
    let mut cursors = Vec::with_capacity(runs.len());
    for run in runs {
        let mut reader = run.read().map_err(|e| reservation.spill_error(e))?;
        if let Some((batch, rows)) = next_batch(plan, reservation, &keys, &mut reader)? {
            cursors.push(Cursor {
                reader,
                batch,
                rows,
                position: 0,
                source: 0,
            });
        }
    }
    while !cursors.is_empty() {
        let mut sources = Vec::with_capacity(cursors.len());
        for cursor in &mut cursors {
            cursor.source = sources.len();
            sources.push(cursor.batch.clone());
        }
        let mut picks = Vec::with_capacity(BATCH_ROWS);
        let mut last_key: Option<OwnedRow> = None;
        while let Some(next) = smallest(&cursors) {
            let cursor = &mut cursors[next];
            if last_key
                .as_ref()
                .is_some_and(|last| last.row() != cursor.key())
            {
                break;
            }
            picks.push((cursor.source, cursor.position));
            if last_key.is_none() && picks.len() >= CHUNK_ROWS {
                // Full: take only the other runs' rows of this key.
                last_key = Some(cursor.key().owned());
            }
            cursor.position += 1;
            if cursor.position == cursor.batch.num_rows() {
                match next_batch(plan, reservation, &keys, &mut cursor.reader)? {
                    Some((batch, rows)) => {
                        cursor.source = sources.len();
                        sources.push(batch.clone());
                        cursor.batch = batch;
                        cursor.rows = rows;
                        cursor.position = 0;
                    }
                    None => {
                        cursors.swap_remove(next);
                    }
                }
            }
        }
        let sources: Vec<&RecordBatch> = sources.iter().collect();
        let chunk = interleave_record_batch(&sources, &picks)
            .map_err(|e| plan.error("merging spilled groups", e))?;
        let mut merged = GroupedState::try_new(plan)?;
        merged.merge(&chunk)?;
        merged.drain(GroupOrder::FirstSeen, emit, sink)?;
    }
    Ok(())
}

/// The cursor with the smallest key.
fn smallest(cursors: &[Cursor]) -> Option<usize> {
    (0..cursors.len()).min_by(|&a, &b| cursors[a].key().cmp(&cursors[b].key()))
}

/// The next non-empty batch of a run, with its key rows.
fn next_batch(
    plan: &AggregatePlan,
    reservation: &MemoryReservation,
    keys: &RowConverter,
    reader: &mut SpillReader,
) -> Result<Option<(RecordBatch, Rows)>> {
    for batch in reader {
        let batch = batch.map_err(|e| reservation.spill_error(e))?;
        if batch.num_rows() > 0 {
            let rows = keys
                .convert_columns(&batch.columns()[..plan.key_fields.len()])
                .map_err(|e| plan.error("reading spilled group keys", e))?;
            return Ok(Some((batch, rows)));
        }
    }
    Ok(None)
}
