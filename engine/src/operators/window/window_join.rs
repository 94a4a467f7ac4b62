//! Window joins: the rows of two inputs that fall in the same event-time
//! window and have equal keys, joined when the watermark passes the
//! window's end (Flink's window join).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use weir_exchange::event::batch_data_bytes;

use super::pane_aggregate::by_pane;
use super::panes::PaneLayout;
use super::{Window, time_column, window_fields};
use crate::event_time::{check_time_type, event_times_ms};
use crate::expr::Compiled;
use crate::memory::MemoryReservation;
use crate::operator::OUTPUT_BATCH_ROWS;
use crate::operators::join::hash_table::JoinTable;
use crate::operators::join::keys::{JoinKeys, KeyEncoder};
use crate::operators::join::side_state::SideState;
use crate::operators::join::{JoinOutput, JoinSide, JoinType};
use crate::{Error, Operator, OperatorFactory, Output, Progress, Result, TaskInfo};

/// Joins the rows of two inputs window by window: rows of the same window
/// (tumbling, sliding or cumulating) with equal keys, inner or outer, with
/// an optional residual condition. Each window's rows come out once, when
/// the watermark of both inputs passes its end, as the left columns, the
/// right columns, then `window_start` and `window_end`.
///
/// Both inputs must be partitioned by the keys (a hash exchange on each).
#[derive(Debug, Clone)]
pub struct WindowJoin {
    layout: PaneLayout,
    keys: JoinKeys,
    output: JoinOutput,
    /// The time column of each input.
    times: [usize; 2],
    time_type: DataType,
    schema: SchemaRef,
    name: String,
}

impl WindowJoin {
    /// A `join_type` join (inner, left, right or full) of `left` and `right`
    /// on equal `on` keys (left expression, right expression) per `window`
    /// over the time columns `left_time` and `right_time` (of the same
    /// type), with `condition` over the columns of both deciding which
    /// pairs match.
    ///
    /// # Errors
    /// [`Error::Plan`] for a session window, a semi or anti join, time
    /// columns that are missing, not times or of different types, or keys
    /// without a common type.
    pub fn try_new(
        window: Window,
        join_type: JoinType,
        left: SchemaRef,
        right: SchemaRef,
        (left_time, right_time): (&str, &str),
        on: Vec<(Compiled, Compiled)>,
        condition: Option<Compiled>,
    ) -> Result<Self> {
        let layout = PaneLayout::new(window).ok_or_else(|| {
            Error::Plan(format!(
                "a window join over {window}: join tumbling, sliding or cumulating windows"
            ))
        })?;
        if !join_type.emits_pairs() {
            return Err(Error::Plan(format!(
                "a {join_type} window join: window joins are inner, left, right or full"
            )));
        }
        let time_of = |schema: &Schema, name: &str| -> Result<(usize, DataType)> {
            let index = schema.index_of(name).map_err(|_| {
                Error::Plan(format!(
                    "the window join's time column '{name}' is not a column of its input"
                ))
            })?;
            let data_type = schema.field(index).data_type().clone();
            check_time_type(name, &data_type)?;
            Ok((index, data_type))
        };
        let (left_index, left_type) = time_of(&left, left_time)?;
        let (right_index, right_type) = time_of(&right, right_time)?;
        if left_type != right_type {
            return Err(Error::Plan(format!(
                "a window join's time columns must be of one type: '{left_time}' is {left_type}, \
                 '{right_time}' is {right_type}"
            )));
        }
        let keys = JoinKeys::try_new(on)?;
        let name = format!("window_join[{join_type}, {window}]({keys})");
        let output = JoinOutput::try_new(join_type, left, right, condition, JoinSide::Right)?;
        let mut fields: Vec<FieldRef> = output.schema().fields().to_vec();
        fields.extend(window_fields(&left_type));
        Ok(Self {
            layout,
            keys,
            output,
            times: [left_index, right_index],
            time_type: left_type,
            schema: Arc::new(Schema::new(fields)),
            name,
        })
    }

    /// The schema of its output.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl OperatorFactory for WindowJoin {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WindowJoinOperator {
            encoder: self.keys.encoder()?,
            spec: self.clone(),
            windows: BTreeMap::new(),
            fired_until: i64::MIN,
            reservation: task.memory.reservation(self.name.clone()),
            task: task.clone(),
        }))
    }
}

/// The rows of one window, by side.
struct WindowRows {
    start: i64,
    sides: [Vec<RecordBatch>; 2],
}

impl WindowRows {
    fn new(start: i64) -> Self {
        Self {
            start,
            sides: [Vec::new(), Vec::new()],
        }
    }
}

struct WindowJoinOperator {
    spec: WindowJoin,
    encoder: KeyEncoder,
    /// The rows waiting for their windows, by end (a window's end
    /// determines its start).
    windows: BTreeMap<i64, WindowRows>,
    /// Every window ending at or before this has fired.
    fired_until: i64,
    reservation: MemoryReservation,
    task: TaskInfo,
}

fn side_index(side: JoinSide) -> usize {
    match side {
        JoinSide::Left => 0,
        JoinSide::Right => 1,
    }
}

impl WindowJoinOperator {
    fn add(&mut self, side: JoinSide, batch: RecordBatch) -> Result<()> {
        let times = event_times_ms(batch.column(self.spec.times[side_index(side)]))?;
        let (batch, times) = if times.null_count() > 0 {
            let keep = arrow::compute::is_not_null(&times)?;
            self.task.counters.add(
                "records without event time dropped",
                times.null_count() as u64,
            );
            let kept = filter_record_batch(&batch, &keep)?;
            let times = arrow::compute::filter(&times, &keep)?;
            (kept, event_times_ms(&times)?)
        } else {
            (batch, times)
        };
        let layout = self.spec.layout;
        let panes: Int64Array = times.unary(|t| layout.pane_start(t));
        for (pane, rows) in by_pane(&batch, &panes)? {
            let windows: Vec<(i64, i64)> = layout
                .windows(pane)
                .into_iter()
                .filter(|(_, end)| *end > self.fired_until)
                .collect();
            if windows.is_empty() {
                self.task
                    .counters
                    .add("late records dropped", rows.num_rows() as u64);
                continue;
            }
            for (start, end) in windows {
                self.windows
                    .entry(end)
                    .or_insert_with(|| WindowRows::new(start))
                    .sides[side_index(side)]
                .push(rows.clone());
            }
        }
        self.account()
    }

    fn account(&mut self) -> Result<()> {
        let size: usize = self
            .windows
            .values()
            .flat_map(|w| w.sides.iter().flatten())
            .map(batch_data_bytes)
            .sum();
        if self.reservation.try_resize(size) {
            Ok(())
        } else {
            Err(self
                .reservation
                .exhausted(size.saturating_sub(self.reservation.size())))
        }
    }

    /// Joins and emits the windows ending at or before `until`.
    fn fire(&mut self, until: i64, output: &mut Output) -> Result<()> {
        let due: Vec<i64> = self.windows.range(..=until).map(|(end, _)| *end).collect();
        for end in due {
            let rows = self.windows.remove(&end).expect("listed above");
            let start = rows.start;
            let mut joined = Output::default();
            self.join(rows, &mut joined)?;
            for batch in joined.take().0 {
                output.emit(self.with_window(&batch, start, end)?);
            }
        }
        self.fired_until = self.fired_until.max(until);
        self.account()
    }

    /// The join of one window's rows (right rows in the hash table).
    fn join(&self, rows: WindowRows, out: &mut Output) -> Result<()> {
        let output = &self.spec.output;
        let [left, right] = rows.sides;
        let left = concat_batches(output.side_schema(JoinSide::Left), &left)?;
        let right = concat_batches(output.side_schema(JoinSide::Right), &right)?;
        let (right, right_null) = self.encoder.split(JoinSide::Right, right)?;
        let keys = self.encoder.encode(JoinSide::Right, &right)?;
        let table = JoinTable::try_new(right, keys, &self.spec.name)?;
        let mut matched = output.build_bitmap(table.batch().num_rows());
        let (left, left_null) = self.encoder.split(JoinSide::Left, left)?;
        let probe_keys = self.encoder.encode(JoinSide::Left, &left)?;
        output.probe(
            table.batch(),
            matched.as_mut(),
            &left,
            table.candidates(
                &probe_keys,
                OUTPUT_BATCH_ROWS,
                output.first_match_suffices(),
            ),
            out,
        )?;
        for (side, rows) in [(JoinSide::Left, left_null), (JoinSide::Right, right_null)] {
            if let Some(rows) = rows {
                output.unmatchable(side, &rows, out)?;
            }
        }
        if let Some(mut lone) = output.build_lone(table.into_batch(), matched) {
            while let Some(batch) = output.next_lone(&mut lone)? {
                out.emit(batch);
            }
        }
        Ok(())
    }

    /// `batch` (joined rows) with the window's bounds.
    fn with_window(&self, batch: &RecordBatch, start: i64, end: i64) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut columns = batch.columns().to_vec();
        columns.push(time_column(start, rows, &self.spec.time_type)?);
        columns.push(time_column(end, rows, &self.spec.time_type)?);
        Ok(RecordBatch::try_new(
            Arc::clone(&self.spec.schema),
            columns,
        )?)
    }
}

impl WindowJoin {
    /// The layout of its checkpointed state; its own columns are the
    /// window a row waits in.
    fn side_state(&self) -> SideState<'_> {
        SideState {
            sides: [
                self.output.side_schema(JoinSide::Left),
                self.output.side_schema(JoinSide::Right),
            ],
            own: 2,
            name: &self.name,
        }
    }
}

/// Columns and metadata of snapshotted window join state.
const START_COLUMN: &str = "__window_start";
const END_COLUMN: &str = "__window_end";
const FIRED_UNTIL: &str = "fired_until";

impl Operator for WindowJoinOperator {
    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        _output: &mut Output,
    ) -> Result<()> {
        let side = JoinSide::of_input(input, &self.spec.name)?;
        self.spec
            .output
            .check_input(side, &batch, &self.spec.name)?;
        self.add(side, batch)
    }

    fn on_watermark(&mut self, watermark: i64, output: &mut Output) -> Result<()> {
        self.fire(watermark.saturating_add(1), output)?;
        output.emit_watermark(watermark);
        Ok(())
    }

    fn finish(&mut self, output: &mut Output) -> Result<Progress> {
        self.fire(i64::MAX, output)?;
        self.reservation.free();
        Ok(Progress::Done)
    }

    /// The rows waiting for their windows, each led by its key group (of
    /// its side's keys) and the window it waits in.
    fn snapshot_state(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let layout = self.spec.side_state();
        let schema = layout.schema(
            vec![
                Field::new(START_COLUMN, DataType::Int64, false),
                Field::new(END_COLUMN, DataType::Int64, false),
            ],
            HashMap::from([(FIRED_UNTIL.to_string(), self.fired_until.to_string())]),
        );
        let max_parallelism = self.task.max_parallelism;
        let mut state = Vec::new();
        for (&end, rows) in &self.windows {
            for side in [JoinSide::Left, JoinSide::Right] {
                for batch in &rows.sides[side_index(side)] {
                    let n = batch.num_rows();
                    let window: Vec<ArrayRef> = vec![
                        Arc::new(Int64Array::from(vec![rows.start; n])),
                        Arc::new(Int64Array::from(vec![end; n])),
                    ];
                    let keys = self.encoder.columns(side, batch)?;
                    state.push(layout.rows(
                        &schema,
                        side,
                        window,
                        batch,
                        &keys,
                        max_parallelism,
                    )?);
                }
            }
        }
        if state.is_empty() {
            state.push(layout.empty(&schema, max_parallelism)?);
        }
        Ok(Some(state))
    }

    /// Takes back the rows waiting for their windows.
    fn restore_state(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        for batch in state {
            let layout = self.spec.side_state();
            if let Some(fired) = batch.schema().metadata().get(FIRED_UNTIL) {
                let fired: i64 = fired
                    .parse()
                    .map_err(|_| layout.broken("a bad fired_until"))?;
                self.fired_until = self.fired_until.max(fired);
            }
            for (side, rows) in layout.split(&batch)? {
                let ends = layout.own_column::<Int64Array>(&rows, 1)?.clone();
                // Rows of one window at a time, by end.
                for (end, window) in by_pane(&rows, &ends)? {
                    let start = layout.own_column::<Int64Array>(&window, 0)?.value(0);
                    let data = layout.input_rows(side, &window)?;
                    self.windows
                        .entry(end)
                        .or_insert_with(|| WindowRows::new(start))
                        .sides[side_index(side)]
                    .push(data);
                }
            }
        }
        self.account()
    }
}
