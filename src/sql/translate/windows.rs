//! Window table functions grouped by their windows: `GROUP BY
//! window_start, window_end, keys...` over `TUMBLE(...)` (and the others)
//! becomes a window aggregate on the keys.
//!
//! Between the function and the grouping, the plan may keep or drop
//! columns and filter on the input's columns; the window columns
//! themselves exist only once the windows fire, so nothing may compute
//! with them before the grouping.

use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;
use datafusion_expr::{Expr, LogicalPlan, lit};
use weir_engine::dataframe::DataFrame;
use weir_engine::expr::column;
use weir_engine::operators::{WINDOW_END, WINDOW_START, Window};

use super::{Planned, Result, Translator, physical, unaliased, unsupported};
use crate::sql::SqlError;
use crate::sql::window_tvf::{WINDOW_TIME, WindowTvf};
use weir_engine::operators::JoinType;

/// The rows of a window table function before they are grouped: the input
/// rows, with the window columns named but not computed.
pub(super) struct Windowed {
    /// The input rows; `columns` names the window columns too.
    planned: Planned,
    window: Window,
    /// The physical column holding the event time.
    time: String,
}

fn is_window_column(name: &str) -> bool {
    [WINDOW_START, WINDOW_END, WINDOW_TIME].contains(&name)
}

/// Whether `plan` is the rows of a window table function (below
/// projections, filters and aliases).
pub(super) fn is_windowed(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Extension(e) => e.node.as_any().downcast_ref::<WindowTvf>().is_some(),
        LogicalPlan::SubqueryAlias(a) => is_windowed(&a.input),
        LogicalPlan::Filter(f) => is_windowed(&f.input),
        LogicalPlan::Projection(p) => is_windowed(&p.input),
        _ => false,
    }
}

impl Translator<'_> {
    /// A join of the rows of two window table functions on `window_start`,
    /// `window_end` and keys: a window join.
    pub(super) fn window_join(
        &mut self,
        j: &datafusion_expr::logical_plan::Join,
    ) -> Result<Planned> {
        let join_type = match j.join_type {
            datafusion_common::JoinType::Inner => JoinType::Inner,
            datafusion_common::JoinType::Left => JoinType::Left,
            datafusion_common::JoinType::Right => JoinType::Right,
            datafusion_common::JoinType::Full => JoinType::Full,
            other => return Err(unsupported(format!("a {other} window join"))),
        };
        let (Some(left), Some(right)) = (self.windowed(&j.left)?, self.windowed(&j.right)?) else {
            return Err(SqlError::new(
                "a window join reads two window table functions",
            ));
        };
        if left.window != right.window {
            return Err(SqlError::new(format!(
                "a window join needs the same windows on both sides, not {} and {}",
                left.window, right.window
            )));
        }
        let sides = [
            (j.left.schema().as_ref(), left.planned.columns.as_slice()),
            (j.right.schema().as_ref(), right.planned.columns.as_slice()),
        ];
        let mut bounds = (false, false);
        let (mut left_keys, mut right_keys) = (Vec::new(), Vec::new());
        for (l, r) in &j.on {
            let (l, r) = (physical(l, &sides[..1])?, physical(r, &sides[1..])?);
            match (&l, &r) {
                (Expr::Column(a), Expr::Column(b))
                    if a.name == WINDOW_START && b.name == WINDOW_START =>
                {
                    bounds.0 = true;
                }
                (Expr::Column(a), Expr::Column(b))
                    if a.name == WINDOW_END && b.name == WINDOW_END =>
                {
                    bounds.1 = true;
                }
                (Expr::Column(a), Expr::Column(b))
                    if !is_window_column(&a.name) && !is_window_column(&b.name) =>
                {
                    left_keys.push(a.name.clone());
                    right_keys.push(b.name.clone());
                }
                _ => {
                    return Err(unsupported(format!(
                        "a window join on '{l} = {r}' (join on columns, and on window_start \
                         and window_end of both sides)"
                    )));
                }
            }
        }
        if bounds != (true, true) || left_keys.is_empty() {
            return Err(SqlError::new(
                "a window join must join on L.window_start = R.window_start, \
                 L.window_end = R.window_end and at least one key",
            ));
        }
        let (left_time, mut planned_right) = (left.time, right.planned);
        let mut also: Vec<String> = right_keys.clone();
        also.push(right.time);
        self.rename_clashes(&left.planned.df, &mut planned_right, &mut also)?;
        let right_time = also.pop().expect("pushed above");
        let right_keys = also;
        let filter = j
            .filter
            .as_ref()
            .map(|f| {
                physical(
                    f,
                    &[
                        (j.left.schema().as_ref(), left.planned.columns.as_slice()),
                        (j.right.schema().as_ref(), planned_right.columns.as_slice()),
                    ],
                )
            })
            .transpose()?;
        if filter
            .as_ref()
            .is_some_and(|f| f.column_refs().iter().any(|c| is_window_column(&c.name)))
        {
            return Err(unsupported("a window join condition on window columns"));
        }
        let on: Vec<(&str, &str)> = left_keys
            .iter()
            .zip(&right_keys)
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        let df = left.planned.df.window_join(
            &planned_right.df,
            left.window,
            (&left_time, &right_time),
            join_type,
            &on,
            filter,
        )?;
        // Both sides' window_time: the joined window's last millisecond.
        let df = with_window_time(&df)?;
        let columns = left
            .planned
            .columns
            .into_iter()
            .chain(planned_right.columns)
            .collect();
        Ok(Planned { df, columns })
    }

    /// `plan` as the rows of a window table function, when it is one
    /// (below projections of columns, filters and aliases).
    pub(super) fn windowed(&mut self, plan: &LogicalPlan) -> Result<Option<Windowed>> {
        match plan {
            LogicalPlan::Extension(e) => {
                let Some(tvf) = e.node.as_any().downcast_ref::<WindowTvf>() else {
                    return Ok(None);
                };
                let input = self.without_window_names(&tvf.input)?;
                let index = tvf
                    .input
                    .schema()
                    .fields()
                    .iter()
                    .position(|f| f.name() == &tvf.time_column)
                    .ok_or_else(|| {
                        SqlError::new(format!("time column '{}' not found", tvf.time_column))
                    })?;
                let time = input.columns[index].clone();
                let mut columns = input.columns;
                for name in [WINDOW_START, WINDOW_END, WINDOW_TIME] {
                    self.used.insert(name.to_string());
                    columns.push(name.to_string());
                }
                Ok(Some(Windowed {
                    planned: Planned {
                        df: input.df,
                        columns,
                    },
                    window: tvf.window,
                    time,
                }))
            }
            LogicalPlan::SubqueryAlias(a) => self.windowed(&a.input),
            LogicalPlan::Filter(f) => {
                let Some(mut windowed) = self.windowed(&f.input)? else {
                    return Ok(None);
                };
                let predicate = physical(
                    &f.predicate,
                    &[(f.input.schema(), windowed.planned.columns.as_slice())],
                )?;
                if predicate
                    .column_refs()
                    .iter()
                    .any(|c| is_window_column(&c.name))
                {
                    return Err(unsupported(
                        "a filter on window columns before the rows are grouped by window",
                    ));
                }
                windowed.planned.df = windowed.planned.df.filter(predicate)?;
                Ok(Some(windowed))
            }
            LogicalPlan::Projection(p) => {
                let Some(windowed) = self.windowed(&p.input)? else {
                    return Ok(None);
                };
                let inputs = [(
                    p.input.schema().as_ref(),
                    windowed.planned.columns.as_slice(),
                )];
                let mut columns = Vec::with_capacity(p.expr.len());
                for e in &p.expr {
                    match physical(unaliased(e), &inputs)? {
                        Expr::Column(c) => columns.push(c.name),
                        _ => {
                            return Err(unsupported(
                                "computing over the rows of a window table function before \
                                 they are grouped by window",
                            ));
                        }
                    }
                }
                // The physical columns kept, and the time column, which the
                // window aggregate reads even when the query does not.
                let mut kept: Vec<Expr> = Vec::new();
                for name in columns.iter().chain(std::iter::once(&windowed.time)) {
                    let e = column(name);
                    if !is_window_column(name) && !kept.contains(&e) {
                        kept.push(e);
                    }
                }
                Ok(Some(Windowed {
                    planned: Planned {
                        df: windowed.planned.df.select(kept)?,
                        columns,
                    },
                    window: windowed.window,
                    time: windowed.time,
                }))
            }
            _ => Ok(None),
        }
    }

    /// The rows of `plan`, their columns named otherwise than the window
    /// columns a window table function over them adds: the rows of an
    /// earlier window aggregate have columns of those names.
    fn without_window_names(&mut self, plan: &LogicalPlan) -> Result<Planned> {
        let mut input = self.plan(plan)?;
        if !input.columns.iter().any(|c| is_window_column(c)) {
            return Ok(input);
        }
        let mut renamed = std::collections::BTreeMap::new();
        for name in &input.columns {
            if !renamed.contains_key(name) {
                let new = match is_window_column(name) {
                    true => self.fresh(name),
                    false => name.clone(),
                };
                renamed.insert(name.clone(), new);
            }
        }
        let exprs = renamed
            .iter()
            .map(|(old, new)| column(old).alias(new))
            .collect();
        input.df = input.df.select(exprs)?;
        for name in &mut input.columns {
            *name = renamed[name.as_str()].clone();
        }
        Ok(input)
    }

    /// A grouping of windowed rows: by `window_start`, `window_end` and
    /// the other keys, a window aggregate on those keys.
    pub(super) fn window_aggregate(
        &mut self,
        a: &datafusion_expr::logical_plan::Aggregate,
        windowed: Windowed,
    ) -> Result<Planned> {
        let inputs = [(
            a.input.schema().as_ref(),
            windowed.planned.columns.as_slice(),
        )];
        let mut fields = a.schema.fields().iter();
        let mut columns = Vec::new();
        let mut group_by = Vec::new();
        let mut bounds = (false, false);
        let mut window_time = false;
        for g in &a.group_expr {
            let field = fields.next().expect("one field per group key");
            match physical(unaliased(g), &inputs)? {
                Expr::Column(c) if c.name == WINDOW_START => {
                    bounds.0 = true;
                    columns.push(c.name);
                }
                Expr::Column(c) if c.name == WINDOW_END => {
                    bounds.1 = true;
                    columns.push(c.name);
                }
                Expr::Column(c) if c.name == WINDOW_TIME => {
                    window_time = true;
                    columns.push(c.name);
                }
                e if e.column_refs().iter().any(|c| is_window_column(&c.name)) => {
                    return Err(unsupported(format!(
                        "grouping by '{g}' over a window table function (group by \
                         window_start and window_end)"
                    )));
                }
                Expr::Column(c) => {
                    columns.push(c.name.clone());
                    group_by.push(Expr::Column(c));
                }
                other => {
                    let name = self.fresh(field.name());
                    group_by.push(other.alias(&name));
                    columns.push(name);
                }
            }
        }
        if bounds != (true, true) {
            return Err(SqlError::new(
                "the rows of a window table function must be grouped by both window_start \
                 and window_end (GROUP BY window_start, window_end, ...)",
            ));
        }
        let mut aggregates = Vec::with_capacity(a.aggr_expr.len());
        for e in &a.aggr_expr {
            let field = fields.next().expect("one field per aggregate");
            let name = self.fresh(field.name());
            let aggregate = physical(unaliased(e), &inputs)?;
            if aggregate
                .column_refs()
                .iter()
                .any(|c| is_window_column(&c.name))
            {
                return Err(unsupported(format!("aggregating window columns ('{e}')")));
            }
            aggregates.push(aggregate.alias(&name));
            columns.push(name);
        }
        let mut df = windowed.planned.df.window_aggregate(
            windowed.window,
            &windowed.time,
            group_by,
            aggregates,
        )?;
        if window_time {
            df = with_window_time(&df)?;
        }
        Ok(Planned { df, columns })
    }
}

/// `df`, the rows of a window aggregate or window join, with
/// `window_time`: their window's last millisecond, a time later windows may
/// group them by (Flink's cascading window aggregation). A window's rows
/// come out when the watermark reaches that millisecond, so they are never
/// late for the windows downstream.
fn with_window_time(df: &DataFrame) -> Result<DataFrame> {
    let end = df.schema().field_with_name(WINDOW_END)?.data_type();
    let millisecond = match end {
        DataType::Int64 => lit(1i64),
        _ => lit(ScalarValue::new_interval_dt(0, 1)),
    };
    let mut exprs: Vec<Expr> = df
        .schema()
        .fields()
        .iter()
        .map(|f| column(f.name()))
        .collect();
    exprs.push((column(WINDOW_END) - millisecond).alias(WINDOW_TIME));
    Ok(df.select(exprs)?)
}
