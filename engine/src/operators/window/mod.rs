//! Event-time windows and the aggregates over them.
//!
//! A [`Window`] assigns each record, by its event time, to windows
//! `[start, end)`: tumbling, sliding (hop), cumulating or session windows,
//! as Flink's window table functions do. A [`WindowAggregate`] groups the
//! records of each window by key and emits one row per key and window,
//! once: when the watermark passes the window's end (`end - 1 <=
//! watermark`), or at the end of bounded input. The same job therefore
//! gives the same rows in batch mode (everything fires at the end) and in
//! streaming mode (windows fire as event time advances), as long as no
//! record arrives after its windows fired.
//!
//! Records whose windows have all fired are late: they are dropped and
//! counted (`late records dropped`), or sent as they came to the side
//! output of late records when the aggregate has one
//! ([`WindowAggregate::with_late_records`]).
//!
//! Tumbling, sliding and cumulating windows share *panes*: slices of
//! event time as long as the greatest common divisor of the window's
//! lengths. A record updates the one pane it falls in; a window is
//! assembled from the states of its panes when it fires, so a sliding
//! window of size 10 s and slide 100 ms costs one update per record, not
//! a hundred (Flink's and Arroyo's pane-based sliding windows). Session
//! windows keep their records until the watermark closes a session.

mod pane_aggregate;
mod panes;
mod session_aggregate;
mod window_join;

pub use window_join::WindowJoin;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion_expr::Expr;

use super::aggregate::{AggregateMode, AggregatePlan};
use crate::event_time::check_time_type;
use crate::{Error, Operator, OperatorFactory, Output, Result, TaskInfo};

use panes::PaneLayout;

/// The name of the column holding each window's start.
pub const WINDOW_START: &str = "window_start";
/// The name of the column holding each window's end (exclusive).
pub const WINDOW_END: &str = "window_end";

/// How records are assigned to windows by their event time. Lengths are
/// milliseconds; windows are aligned to the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum Window {
    /// Back-to-back windows of `size`: each record is in one.
    Tumble {
        /// The length of each window.
        size: i64,
    },
    /// Windows of `size` starting every `slide`: each record is in
    /// `size / slide` of them.
    Hop {
        /// The length of each window.
        size: i64,
        /// The distance between window starts.
        slide: i64,
    },
    /// Windows that start every `max_size` and grow by `step` up to
    /// `max_size`: `[s, s + step)`, `[s, s + 2 step)`, ..., `[s, s +
    /// max_size)`.
    Cumulate {
        /// How much each window is longer than the one before.
        step: i64,
        /// The length of the largest window.
        max_size: i64,
    },
    /// Windows of the records of one key that are less than `gap` apart: a
    /// session ends `gap` after its last record.
    Session {
        /// The quiet time that closes a session.
        gap: i64,
    },
}

fn millis(what: &str, d: Duration) -> Result<i64> {
    match i64::try_from(d.as_millis()) {
        Ok(ms) if ms > 0 => Ok(ms),
        _ => Err(Error::Plan(format!(
            "a window's {what} must be at least 1 ms, not {d:?}"
        ))),
    }
}

impl Window {
    /// Tumbling windows of `size`.
    ///
    /// # Errors
    /// A size under a millisecond.
    pub fn tumble(size: Duration) -> Result<Self> {
        Ok(Window::Tumble {
            size: millis("size", size)?,
        })
    }

    /// Sliding windows of `size` every `slide` (Flink's `HOP(..., slide,
    /// size)`).
    ///
    /// # Errors
    /// A length under a millisecond, or a slide longer than the size.
    pub fn hop(slide: Duration, size: Duration) -> Result<Self> {
        let (slide, size) = (millis("slide", slide)?, millis("size", size)?);
        if slide > size {
            return Err(Error::Plan(format!(
                "a sliding window's slide ({slide} ms) must not be longer than its size ({size} ms)"
            )));
        }
        Ok(Window::Hop { size, slide })
    }

    /// Cumulating windows growing by `step` up to `max_size`.
    ///
    /// # Errors
    /// A length under a millisecond, or a `max_size` that is not a
    /// multiple of `step`.
    pub fn cumulate(step: Duration, max_size: Duration) -> Result<Self> {
        let (step, max_size) = (millis("step", step)?, millis("size", max_size)?);
        if max_size % step != 0 {
            return Err(Error::Plan(format!(
                "a cumulating window's size ({max_size} ms) must be a multiple of its step ({step} ms)"
            )));
        }
        Ok(Window::Cumulate { step, max_size })
    }

    /// Session windows closing after `gap` without a record of their key.
    ///
    /// # Errors
    /// A gap under a millisecond.
    pub fn session(gap: Duration) -> Result<Self> {
        Ok(Window::Session {
            gap: millis("gap", gap)?,
        })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Tumble { size } => write!(f, "tumble({size} ms)"),
            Window::Hop { size, slide } => write!(f, "hop({slide} ms, {size} ms)"),
            Window::Cumulate { step, max_size } => write!(f, "cumulate({step} ms, {max_size} ms)"),
            Window::Session { gap } => write!(f, "session({gap} ms)"),
        }
    }
}

/// A grouped aggregate per event-time window: one row per group key and
/// window with the keys, `window_start`, `window_end` and the aggregates,
/// emitted when the window fires.
///
/// It runs where the rows of equal keys are together (after a hash exchange
/// on the keys, or in one subtask without keys).
#[derive(Debug, Clone)]
pub struct WindowAggregate {
    assigner: Assigner,
    late_output: bool,
    input_schema: SchemaRef,
    time_column: usize,
    plan: Arc<AggregatePlan>,
    output_schema: SchemaRef,
    name: String,
}

impl WindowAggregate {
    /// An aggregate of the rows of `input` per `window` over the event
    /// times in `time_column`, grouped by `group_by` (expressions and output
    /// names) and computing `aggregates`, as
    /// [`HashAggregate::try_new`](super::HashAggregate::try_new) takes them.
    ///
    /// # Errors
    /// [`Error::Plan`] when the time column is missing or not a time;
    /// [`Error::Expr`] when a key or an aggregate does not type.
    pub fn try_new(
        window: Window,
        input: &SchemaRef,
        time_column: &str,
        group_by: Vec<(Expr, String)>,
        aggregates: Vec<(Expr, String)>,
    ) -> Result<Self> {
        let time_index = input.index_of(time_column).map_err(|_| {
            Error::Plan(format!(
                "the window's time column '{time_column}' is not an input column (columns: {})",
                crate::expr::column_list(input)
            ))
        })?;
        let time_type = input.field(time_index).data_type().clone();
        check_time_type(time_column, &time_type)?;
        let plan = match window {
            Window::Session { .. } => {
                session_aggregate::plan(input, &time_type, &group_by, &aggregates)?
            }
            _ => AggregatePlan::try_new(AggregateMode::Single, input, &group_by, &aggregates)?,
        };
        let keys = group_by.len();
        let output_schema = match window {
            // The session plan groups by the window columns itself.
            Window::Session { .. } => Arc::clone(&plan.output_schema),
            _ => with_window_columns(&plan.output_schema, keys, &time_type),
        };
        let names: Vec<&str> = group_by.iter().map(|(_, n)| n.as_str()).collect();
        let functions: Vec<&str> = aggregates.iter().map(|(_, n)| n.as_str()).collect();
        let name = format!(
            "window_aggregate[{window} on {time_column}](by {}; {})",
            names.join(", "),
            functions.join(", ")
        );
        let assigner = match (window, PaneLayout::new(window)) {
            (Window::Session { gap }, _) => Assigner::Session { gap },
            (_, layout) => Assigner::Panes(
                layout.ok_or_else(|| Error::Plan(format!("window {window} has no panes")))?,
            ),
        };
        Ok(Self {
            assigner,
            late_output: false,
            input_schema: Arc::clone(input),
            time_column: time_index,
            plan: Arc::new(plan),
            output_schema,
            name,
        })
    }

    /// The same aggregate sending its late records, as they came in, to the
    /// side output of its chain ([`Output::emit_late`]) instead of dropping
    /// them.
    pub fn with_late_records(mut self) -> Self {
        self.late_output = true;
        self
    }

    /// The schema of its output: the keys, `window_start`, `window_end`,
    /// then the aggregates.
    pub fn output_schema(&self) -> SchemaRef {
        Arc::clone(&self.output_schema)
    }
}

impl OperatorFactory for WindowAggregate {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        let context = WindowContext {
            name: self.name.clone(),
            late_output: self.late_output,
            input_schema: Arc::clone(&self.input_schema),
            time_column: self.time_column,
            output_schema: Arc::clone(&self.output_schema),
            task: task.clone(),
        };
        Ok(match self.assigner {
            Assigner::Session { gap } => Box::new(
                session_aggregate::SessionAggregateOperator::try_new(gap, &self.plan, context)?,
            ),
            Assigner::Panes(layout) => Box::new(pane_aggregate::PaneAggregateOperator::try_new(
                layout, &self.plan, context,
            )?),
        })
    }
}

/// How a window aggregate assigns records to windows.
#[derive(Debug, Clone, Copy)]
enum Assigner {
    /// Through fixed panes (tumbling, sliding, cumulating windows).
    Panes(PaneLayout),
    /// Into sessions per key.
    Session { gap: i64 },
}

/// What every window operator instance needs besides its state.
struct WindowContext {
    name: String,
    /// Whether late records go to the side output (else they are dropped).
    late_output: bool,
    /// The schema of the rows aggregated.
    input_schema: SchemaRef,
    time_column: usize,
    output_schema: SchemaRef,
    task: TaskInfo,
}

impl WindowContext {
    fn error(&self, doing: &str, what: &str) -> Error {
        Error::Checkpoint(format!("{} {doing}: {what}", self.name))
    }

    /// Records whose windows all fired: sent to the side output of late
    /// records when the aggregate has one, dropped otherwise; counted.
    fn late(&self, rows: RecordBatch, output: &mut Output) {
        if rows.num_rows() == 0 {
            return;
        }
        let n = rows.num_rows() as u64;
        if self.late_output {
            self.task.counters.add("late records to the side output", n);
            output.emit_late(rows);
        } else {
            self.task.counters.add("late records dropped", n);
        }
    }
}

/// `schema` (keys, then aggregates) with `window_start` and `window_end` of
/// `time_type` after its first `keys` fields.
fn with_window_columns(schema: &Schema, keys: usize, time_type: &DataType) -> SchemaRef {
    let mut fields: Vec<FieldRef> = schema.fields()[..keys].to_vec();
    fields.extend(window_fields(time_type));
    fields.extend(schema.fields()[keys..].iter().cloned());
    Arc::new(Schema::new(fields))
}

/// The `window_start` and `window_end` fields for event times of
/// `time_type`.
fn window_fields(time_type: &DataType) -> [FieldRef; 2] {
    [
        Arc::new(Field::new(WINDOW_START, time_type.clone(), false)),
        Arc::new(Field::new(WINDOW_END, time_type.clone(), false)),
    ]
}

/// `rows` copies of the event time `ms` as a column of `time_type`.
fn time_column(ms: i64, rows: usize, time_type: &DataType) -> Result<ArrayRef> {
    times_column(Int64Array::from(vec![ms; rows]), time_type)
}

/// Event times in milliseconds as a column of `time_type`.
fn times_column(ms: Int64Array, time_type: &DataType) -> Result<ArrayRef> {
    let ms: ArrayRef = Arc::new(ms);
    Ok(match time_type {
        DataType::Int64 => ms,
        DataType::Timestamp(unit, zone) => {
            let millis = cast(
                &ms,
                &DataType::Timestamp(TimeUnit::Millisecond, zone.clone()),
            )?;
            if *unit == TimeUnit::Millisecond {
                millis
            } else {
                cast(&millis, time_type)?
            }
        }
        other => {
            return Err(Error::Plan(format!(
                "event times must be TIMESTAMP or BIGINT, not {other}"
            )));
        }
    })
}

/// `batch` (keys then aggregates) with the window columns of `[start,
/// end)` inserted after the first `keys` columns.
fn add_window(
    batch: &RecordBatch,
    keys: usize,
    (start, end): (i64, i64),
    time_type: &DataType,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let mut columns = batch.columns()[..keys].to_vec();
    columns.push(time_column(start, rows, time_type)?);
    columns.push(time_column(end, rows, time_type)?);
    columns.extend(batch.columns()[keys..].iter().cloned());
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}
