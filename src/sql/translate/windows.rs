//! Window table functions grouped by their windows: `GROUP BY
//! window_start, window_end, keys...` over `TUMBLE(...)` (and the others)
//! becomes a window aggregate on the keys.
//!
//! Between the function and the grouping, the plan may keep or drop
//! columns and filter on the input's columns; the window columns
//! themselves exist only once the windows fire, so nothing may compute
//! with them before the grouping.

use datafusion_expr::{Expr, LogicalPlan};
use weir_engine::expr::column;
use weir_engine::operators::{WINDOW_END, WINDOW_START, Window};

use super::{Planned, Result, Translator, physical, unaliased, unsupported};
use crate::sql::SqlError;
use crate::sql::window_tvf::{WINDOW_TIME, WindowTvf};

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

impl Translator<'_> {
    /// `plan` as the rows of a window table function, when it is one
    /// (below projections of columns, filters and aliases).
    pub(super) fn windowed(&mut self, plan: &LogicalPlan) -> Result<Option<Windowed>> {
        match plan {
            LogicalPlan::Extension(e) => {
                let Some(tvf) = e.node.as_any().downcast_ref::<WindowTvf>() else {
                    return Ok(None);
                };
                let input = self.plan(&tvf.input)?;
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
        let df = windowed.planned.df.window_aggregate(
            windowed.window,
            &windowed.time,
            group_by,
            aggregates,
        )?;
        Ok(Planned { df, columns })
    }
}
