//! Tumbling, sliding and cumulating window aggregates over panes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow::compute::kernels::partition::partition;
use arrow::compute::{SortOptions, filter_record_batch, is_not_null, sort_to_indices};
use arrow::datatypes::{DataType, Field, Schema};
use weir_exchange::event::{batch_data_bytes, take_rows};

use super::{PaneLayout, WindowContext, add_window};
use crate::checkpoint::with_key_groups;
use crate::event_time::event_times_ms;
use crate::memory::MemoryReservation;
use crate::operators::aggregate::{AggregatePlan, Emit, GroupOrder, GroupedState};
use crate::{Operator, Output, Progress, Result};

/// The groups of one pane: updated by records while open; once a window
/// holding it fired, its states as batches (shared by the later windows
/// holding it).
enum Pane {
    Open(GroupedState),
    Sealed(Vec<RecordBatch>),
}

/// The column of snapshotted state holding each row's pane.
const PANE_COLUMN: &str = "__pane";
/// The metadata key of snapshotted state holding the windows fired.
const FIRED_UNTIL: &str = "fired_until";

/// A window aggregate whose windows are made of panes.
pub(super) struct PaneAggregateOperator {
    layout: PaneLayout,
    plan: Arc<AggregatePlan>,
    context: WindowContext,
    time_type: DataType,
    keys: usize,
    /// The panes holding records, by start.
    panes: BTreeMap<i64, Pane>,
    /// Every window ending at or before this has fired.
    fired_until: i64,
    reservation: MemoryReservation,
}

impl PaneAggregateOperator {
    pub(super) fn try_new(
        layout: PaneLayout,
        plan: &Arc<AggregatePlan>,
        context: WindowContext,
    ) -> Result<Self> {
        let time_type = plan
            .input_schema
            .field(context.time_column)
            .data_type()
            .clone();
        Ok(Self {
            layout,
            keys: plan.key_fields.len(),
            plan: Arc::clone(plan),
            reservation: context.task.memory.reservation(context.name.clone()),
            context,
            time_type,
            panes: BTreeMap::new(),
            fired_until: i64::MIN,
        })
    }

    /// Adds the rows of `batch`, all of the pane at `start`.
    fn add_to_pane(&mut self, start: i64, rows: &RecordBatch, output: &mut Output) -> Result<()> {
        if self.layout.last_end(start) <= self.fired_until {
            self.context.late(rows.clone(), output);
            return Ok(());
        }
        let pane = match self.panes.remove(&start) {
            None => GroupedState::try_new(&self.plan)?,
            Some(Pane::Open(state)) => state,
            // A record that is late for some of the pane's windows, not all.
            Some(Pane::Sealed(states)) => {
                let mut state = GroupedState::try_new(&self.plan)?;
                for batch in &states {
                    state.merge(batch)?;
                }
                state
            }
        };
        let mut pane = pane;
        pane.update(rows)?;
        self.panes.insert(start, Pane::Open(pane));
        Ok(())
    }

    /// Charges the panes' memory to the budget.
    fn account(&mut self) -> Result<()> {
        let size: usize = self
            .panes
            .values()
            .map(|pane| match pane {
                Pane::Open(state) => state.size(),
                Pane::Sealed(batches) => batches.iter().map(batch_data_bytes).sum(),
            })
            .sum();
        if self.reservation.try_resize(size) {
            Ok(())
        } else {
            Err(self
                .reservation
                .exhausted(size.saturating_sub(self.reservation.size())))
        }
    }

    /// Fires the windows ending at or before `until` (in order of their
    /// end); with `limit`, stops once `output` is full and says so.
    fn fire(&mut self, until: i64, output: &mut Output, limit: bool) -> Result<Progress> {
        let mut due = BTreeSet::new();
        for &pane in self.panes.keys() {
            if self.layout.first_end(pane) > until {
                break; // later panes end later
            }
            due.extend(
                self.layout
                    .windows(pane)
                    .into_iter()
                    .filter(|(_, end)| *end > self.fired_until && *end <= until)
                    .map(|(start, end)| (end, start)),
            );
        }
        let mut progress = Progress::Done;
        for (end, start) in due {
            self.fire_window(start, end, output)?;
            self.fired_until = end;
            if limit && output.is_full() {
                progress = Progress::More;
                break;
            }
        }
        if progress == Progress::Done {
            self.fired_until = self.fired_until.max(until);
        }
        let fired_until = self.fired_until;
        let layout = self.layout;
        self.panes
            .retain(|&pane, _| layout.last_end(pane) > fired_until);
        self.account()?;
        Ok(progress)
    }

    /// Emits the groups of the window `[start, end)`.
    fn fire_window(&mut self, start: i64, end: i64, output: &mut Output) -> Result<()> {
        let mut panes = self.panes.range(start..end);
        let single = match (panes.next(), panes.next()) {
            (Some((&pane, Pane::Open(_))), None) => {
                Some(pane).filter(|&p| self.layout.last_end(p) == end)
            }
            _ => None,
        };
        let mut groups = match single.and_then(|pane| self.panes.remove(&pane)) {
            // The window's only pane, needed by no later window (tumbling
            // windows): its values directly.
            Some(Pane::Open(mut state)) => {
                state.take_groups(GroupOrder::FirstSeen, Emit::Values)?
            }
            _ => {
                let mut window = GroupedState::try_new(&self.plan)?;
                for (_, pane) in self.panes.range_mut(start..end) {
                    for batch in seal(pane)? {
                        window.merge(batch)?;
                    }
                }
                window.take_groups(GroupOrder::FirstSeen, Emit::Values)?
            }
        };
        while let Some(batch) = groups.next_batch()? {
            output.emit(add_window(
                &batch,
                self.keys,
                (start, end),
                &self.time_type,
                &self.context.output_schema,
            )?);
        }
        Ok(())
    }
}

/// The rows of `batch` by the pane of each (`panes`), in order of pane.
pub(super) fn by_pane(batch: &RecordBatch, panes: &Int64Array) -> Result<Vec<(i64, RecordBatch)>> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let (first, last) = (
        arrow::compute::min(panes).unwrap_or_default(),
        arrow::compute::max(panes).unwrap_or_default(),
    );
    if first == last {
        return Ok(vec![(first, batch.clone())]);
    }
    // Rows of several panes: sorted by pane, then one slice each.
    let order = sort_to_indices(panes, Some(SortOptions::default()), None)?;
    let sorted = take_rows(batch, &order)?;
    let sorted_panes = arrow::compute::take(panes, &order, None)?;
    let starts = sorted_panes
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("panes are Int64");
    Ok(partition(&[Arc::clone(&sorted_panes)])?
        .ranges()
        .into_iter()
        .map(|range| {
            (
                starts.value(range.start),
                sorted.slice(range.start, range.end - range.start),
            )
        })
        .collect())
}

/// The states of `pane`, sealing it first if it is open.
fn seal(pane: &mut Pane) -> Result<&[RecordBatch]> {
    if let Pane::Open(state) = pane {
        let mut groups = state.take_groups(GroupOrder::FirstSeen, Emit::States)?;
        let mut batches = Vec::new();
        while let Some(batch) = groups.next_batch()? {
            batches.push(batch);
        }
        *pane = Pane::Sealed(batches);
    }
    match pane {
        Pane::Sealed(batches) => Ok(batches),
        Pane::Open(_) => unreachable!("sealed above"),
    }
}

impl Operator for PaneAggregateOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        output: &mut Output,
    ) -> Result<()> {
        let times = event_times_ms(batch.column(self.context.time_column))?;
        let (batch, times) = if times.null_count() > 0 {
            let keep = is_not_null(&times)?;
            self.context.task.counters.add(
                "records without event time dropped",
                times.null_count() as u64,
            );
            let kept = filter_record_batch(&batch, &keep)?;
            let times = arrow::compute::filter(&times, &keep)?;
            (kept, event_times_ms(&times)?)
        } else {
            (batch, times)
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let layout = self.layout;
        let panes: Int64Array = times.unary(|t| layout.pane_start(t));
        for (pane, rows) in by_pane(&batch, &panes)? {
            self.add_to_pane(pane, &rows, output)?;
        }
        self.account()
    }

    /// Seals every pane and snapshots their states: rows of key group,
    /// pane, keys and states, with the windows fired so far in the
    /// metadata.
    fn snapshot_state(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let mut fields = vec![Arc::new(Field::new(PANE_COLUMN, DataType::Int64, false))];
        fields.extend(self.plan.state_schema.fields().iter().cloned());
        let metadata = HashMap::from([(FIRED_UNTIL.to_string(), self.fired_until.to_string())]);
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        let max_parallelism = self.context.task.max_parallelism;
        let mut state = Vec::new();
        for (&start, pane) in &mut self.panes {
            for batch in seal(pane)? {
                let mut columns: Vec<ArrayRef> =
                    vec![Arc::new(Int64Array::from(vec![start; batch.num_rows()]))];
                columns.extend(batch.columns().iter().cloned());
                let rows = RecordBatch::try_new(Arc::clone(&schema), columns)?;
                state.push(with_key_groups(
                    &rows,
                    &batch.columns()[..self.keys],
                    max_parallelism,
                )?);
            }
        }
        if state.is_empty() {
            let empty = RecordBatch::new_empty(schema);
            state.push(with_key_groups(
                &empty,
                &empty.columns()[1..1 + self.keys],
                max_parallelism,
            )?);
        }
        self.account()?;
        Ok(Some(state))
    }

    /// Takes back sealed panes and the windows fired.
    fn restore_state(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        for batch in state {
            if let Some(fired) = batch.schema().metadata().get(FIRED_UNTIL) {
                let fired: i64 = fired
                    .parse()
                    .map_err(|_| self.context.error("restoring", "a bad fired_until"))?;
                // Every subtask fired the same windows: the barrier came
                // after the same watermarks on every channel.
                self.fired_until = self.fired_until.max(fired);
            }
            let panes = batch
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .ok_or_else(|| self.context.error("restoring", "state without panes"))?
                .clone();
            let states = RecordBatch::try_new(
                Arc::clone(&self.plan.state_schema),
                batch.columns()[1..].to_vec(),
            )?;
            for (pane, rows) in by_pane(&states, &panes)? {
                match self
                    .panes
                    .entry(pane)
                    .or_insert_with(|| Pane::Sealed(Vec::new()))
                {
                    Pane::Sealed(batches) => batches.push(rows),
                    Pane::Open(state) => state.merge(&rows)?,
                }
            }
        }
        self.account()
    }

    fn on_watermark(&mut self, watermark: i64, output: &mut Output) -> Result<()> {
        // A window fires when the watermark reaches its last millisecond.
        self.fire(watermark.saturating_add(1), output, false)?;
        output.emit_watermark(watermark);
        Ok(())
    }

    fn finish(&mut self, output: &mut Output) -> Result<Progress> {
        let progress = self.fire(i64::MAX, output, true)?;
        if progress == Progress::Done {
            self.reservation.free();
        }
        Ok(progress)
    }
}
