//! Window table functions, as Flink SQL has them:
//!
//! ```sql
//! SELECT window_start, window_end, auction, count(*) AS bids
//! FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
//! GROUP BY window_start, window_end, auction
//! ```
//!
//! `TUMBLE(t, ts, size)`, `HOP(t, ts, slide, size)`, `CUMULATE(t, ts,
//! step, max_size)` and `SESSION(t, ts, gap)` (Flink's `TABLE(...)` and
//! `DESCRIPTOR(...)` around them are optional) give the rows of table or
//! view `t` with three more columns: `window_start`, `window_end` and
//! `window_time` (the window's last millisecond). In the plan they are a
//! [`WindowTvf`] node, which the translator turns into a window aggregate
//! when the rows are grouped by `window_start` and `window_end`; grouped by
//! `window_time` too, the aggregate's rows keep it, a time for windows
//! over them.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use datafusion_common::{DFSchema, DFSchemaRef, Result, plan_err};
use datafusion_expr::{Expr, LogicalPlan, UserDefinedLogicalNodeCore};
use weir_engine::event_time::check_time_type;
use weir_engine::operators::{WINDOW_END, WINDOW_START, Window};

use super::event_time::interval_duration;

/// The name of the column holding a window's last millisecond.
pub const WINDOW_TIME: &str = "window_time";

/// The rows of `input` with the windows of `window` over `time_column`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WindowTvf {
    /// The rows windowed.
    pub input: LogicalPlan,
    /// The input's time column (unqualified).
    pub time_column: String,
    /// How rows are assigned to windows.
    pub window: Window,
    schema: DFSchemaRef,
}

impl WindowTvf {
    /// The node over `input`.
    ///
    /// # Errors
    /// When `time_column` is not a time column of `input`, or `input`
    /// already has window columns.
    pub fn try_new(input: LogicalPlan, time_column: String, window: Window) -> Result<Self> {
        let schema = window_schema(input.schema(), &time_column)?;
        Ok(Self {
            input,
            time_column,
            window,
            schema,
        })
    }
}

/// `input`'s fields with `window_start`, `window_end` and `window_time` of
/// the time column's type.
fn window_schema(input: &DFSchema, time_column: &str) -> Result<DFSchemaRef> {
    let Some((_, time)) = input.iter().find(|(_, f)| f.name() == time_column) else {
        return plan_err!(
            "the window's time column '{time_column}' is not a column of its input (columns: {})",
            input.field_names().join(", ")
        );
    };
    if let Err(e) = check_time_type(time_column, time.data_type()) {
        return plan_err!("{e}");
    }
    let time_type: DataType = time.data_type().clone();
    let mut fields: Vec<_> = input
        .iter()
        .map(|(q, f)| (q.cloned(), Arc::clone(f)))
        .collect();
    for name in [WINDOW_START, WINDOW_END, WINDOW_TIME] {
        if input.has_column_with_unqualified_name(name) {
            return plan_err!("the input of a window function already has a column '{name}'");
        }
        fields.push((None, Arc::new(Field::new(name, time_type.clone(), false))));
    }
    Ok(Arc::new(DFSchema::new_with_metadata(
        fields,
        input.metadata().clone(),
    )?))
}

impl PartialOrd for WindowTvf {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        // The schema follows from the rest.
        (&self.input, &self.time_column, &self.window).partial_cmp(&(
            &other.input,
            &other.time_column,
            &other.window,
        ))
    }
}

impl UserDefinedLogicalNodeCore for WindowTvf {
    fn name(&self) -> &str {
        "WindowTvf"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    /// Filters on the input's columns go below the windows; those on the
    /// window columns stay above.
    fn prevent_predicate_push_down_columns(&self) -> HashSet<String> {
        [WINDOW_START, WINDOW_END, WINDOW_TIME]
            .map(str::to_string)
            .into()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "WindowTvf: {} on {}", self.window, self.time_column)
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let Some(input) = inputs.pop() else {
            return plan_err!("a window function has one input");
        };
        Self::try_new(input, self.time_column.clone(), self.window)
    }
}

/// The window of a call of window function `name` (`tumble`, `hop`,
/// `cumulate`, `session`) with `intervals`, the arguments after the input
/// and its time column.
///
/// # Errors
/// An unknown function, a wrong number of arguments, or an argument that
/// is not a fixed interval.
pub fn window_of(name: &str, intervals: &[Expr]) -> Result<Window> {
    let lengths = intervals
        .iter()
        .map(|e| {
            interval_duration(e).ok_or_else(|| {
                datafusion_common::DataFusionError::Plan(format!(
                    "{}: '{e}' is not a fixed interval such as INTERVAL '10' SECOND",
                    name.to_uppercase()
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let usage = match name {
        "tumble" => "TUMBLE(TABLE t, DESCRIPTOR(ts), size)",
        "session" => "SESSION(TABLE t, DESCRIPTOR(ts), gap)",
        "hop" => "HOP(TABLE t, DESCRIPTOR(ts), slide, size)",
        "cumulate" => "CUMULATE(TABLE t, DESCRIPTOR(ts), step, max_size)",
        _ => {
            return plan_err!("'{name}' is not a window function (tumble, hop, cumulate, session)");
        }
    };
    let window = match (name, lengths.as_slice()) {
        ("tumble", [size]) => Window::tumble(*size),
        ("session", [gap]) => Window::session(*gap),
        ("hop", [slide, size]) => Window::hop(*slide, *size),
        ("cumulate", [step, max_size]) => Window::cumulate(*step, *max_size),
        _ => return plan_err!("wrong arguments: {usage}"),
    };
    window.map_err(|e| datafusion_common::DataFusionError::Plan(e.to_string()))
}
