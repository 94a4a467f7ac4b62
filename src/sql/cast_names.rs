//! Distinct names for expressions that differ only by casts.
//!
//! DataFusion's planner names `CAST(x AS T)` as `x` (apache/datafusion
//! issue 18975), so `sum(x)` beside `sum(CAST(x AS DOUBLE))` makes two
//! aggregates of one name, and the plan is refused ("Schema contains
//! duplicate unqualified field name"); `x` beside `CAST(x AS DOUBLE)` makes
//! two projections of one name. DuckDB and PostgreSQL answer both.
//!
//! Before a statement is planned, each SELECT is looked at: its items, its
//! GROUP BY, its HAVING and its query's ORDER BY. Among the expressions there (the items
//! and every function call in them) that would share a name, the casts in
//! each one but the first are wrapped in `coalesce(...)` (the same value
//! and type) once, twice, ... so that their names differ, wherever the same
//! expression stands; an item rewritten so and not named keeps its text as
//! its name, as DuckDB names it.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    Expr, GroupByExpr, Ident, OrderByKind, Query, SelectItem, SetExpr, Statement, VisitMut,
    VisitorMut, visit_expressions, visit_expressions_mut,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;

/// Gives expressions of `statement` that differ only by casts names of
/// their own (see the module docs).
pub fn distinct_cast_names(statement: &mut Statement) {
    let _ = statement.visit(&mut CastNames);
}

struct CastNames;

impl VisitorMut for CastNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        let SetExpr::Select(select) = query.body.as_mut() else {
            return ControlFlow::Continue(());
        };
        let order_by = match query.order_by.as_mut().map(|o| &mut o.kind) {
            Some(OrderByKind::Expressions(exprs)) => exprs.as_mut_slice(),
            _ => &mut [],
        };
        let group_by = match &mut select.group_by {
            GroupByExpr::Expressions(exprs, _) => exprs.as_mut_slice(),
            GroupByExpr::All(_) => &mut [],
        };
        let depths = wrap_depths(
            select
                .projection
                .iter()
                .filter_map(|item| match item {
                    SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                        Some(e)
                    }
                    _ => None,
                })
                .chain(group_by.iter())
                .chain(select.having.as_ref())
                .chain(order_by.iter().map(|o| &o.expr)),
        );
        if depths.is_empty() {
            return ControlFlow::Continue(());
        }
        for item in &mut select.projection {
            match item {
                SelectItem::UnnamedExpr(e) => {
                    let mut expr = e.clone();
                    rewrite(&mut expr, &depths);
                    if expr != *e {
                        let alias = Ident::with_quote('"', e.to_string());
                        *item = SelectItem::ExprWithAlias { expr, alias };
                    }
                }
                SelectItem::ExprWithAlias { expr, .. } => rewrite(expr, &depths),
                _ => {}
            }
        }
        for key in group_by {
            rewrite(key, &depths);
        }
        if let Some(having) = select.having.as_mut() {
            rewrite(having, &depths);
        }
        for order in order_by {
            rewrite(&mut order.expr, &depths);
        }
        ControlFlow::Continue(())
    }
}

/// The expressions (by text) whose casts must be wrapped, and how often:
/// the second, third, ... of those among `exprs` (and the function calls
/// in them) that share a name without their casts.
fn wrap_depths<'a>(exprs: impl Iterator<Item = &'a Expr>) -> HashMap<String, usize> {
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    let mut note = |e: &Expr| {
        let text = e.to_string();
        let texts = by_name.entry(without_casts(e)).or_default();
        if !texts.contains(&text) {
            texts.push(text);
        }
    };
    for expr in exprs {
        note(expr);
        let _ = visit_expressions(expr, |e| {
            if matches!(e, Expr::Function(_)) {
                note(e);
            }
            ControlFlow::<()>::Continue(())
        });
    }
    let mut depths = HashMap::new();
    for texts in by_name.into_values().filter(|t| t.len() > 1) {
        // The one without casts (if any) keeps its name; the others get a
        // wrapping each, deeper and deeper.
        let mut depth = 0;
        for text in texts {
            if text.contains("CAST") || text.contains("::") {
                depth += 1;
                depths.insert(text, depth);
            }
        }
    }
    depths
}

/// `expr`'s text with every cast replaced by what it casts: the name
/// DataFusion gives it.
fn without_casts(expr: &Expr) -> String {
    let mut stripped = expr.clone();
    let _ = visit_expressions_mut(&mut stripped, |e| {
        if let Expr::Cast { expr, .. } = e {
            *e = (**expr).clone();
        }
        ControlFlow::<()>::Continue(())
    });
    stripped.to_string()
}

/// Wraps the casts of each part of `expr` named in `depths` as often as
/// it says.
fn rewrite(expr: &mut Expr, depths: &HashMap<String, usize>) {
    let wrap_casts = |e: &mut Expr, depth: usize| {
        let _ = visit_expressions_mut(e, |inner| {
            if matches!(inner, Expr::Cast { .. }) {
                *inner = wrapped(inner, depth);
            }
            ControlFlow::<()>::Continue(())
        });
    };
    if let Some(&depth) = depths.get(&expr.to_string()) {
        return wrap_casts(expr, depth);
    }
    // Only function calls are named apart below the top (and naming every
    // node would cost the square of a deep expression's size).
    let _ = visit_expressions_mut(expr, |e| {
        if matches!(e, Expr::Function(_))
            && let Some(&depth) = depths.get(&e.to_string())
        {
            wrap_casts(e, depth);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// `coalesce(...)` around `expr`, `depth` times.
fn wrapped(expr: &Expr, depth: usize) -> Expr {
    let text = (0..depth).fold(expr.to_string(), |inner, _| format!("coalesce({inner})"));
    Parser::new(&GenericDialect {})
        .try_with_sql(&text)
        .and_then(|mut parser| parser.parse_expr())
        .unwrap_or_else(|_| expr.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::new(&GenericDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statement())
            .expect("parses");
        distinct_cast_names(&mut statement);
        statement.to_string()
    }

    #[test]
    fn casts_that_would_share_a_name_are_wrapped() {
        assert_eq!(
            rewritten("SELECT sum(x), sum(CAST(x AS DOUBLE)) FROM t"),
            "SELECT sum(x), sum(coalesce(CAST(x AS DOUBLE))) AS \"sum(CAST(x AS DOUBLE))\" FROM t"
        );
        assert_eq!(
            rewritten(
                "SELECT k, avg(CAST(a AS DOUBLE)) AS d, avg(CAST(a AS BIGINT)) FROM t GROUP BY k \
                 HAVING avg(CAST(a AS BIGINT)) > 1 ORDER BY avg(CAST(a AS DOUBLE))"
            ),
            "SELECT k, avg(coalesce(CAST(a AS DOUBLE))) AS d, \
             avg(coalesce(coalesce(CAST(a AS BIGINT)))) AS \"avg(CAST(a AS BIGINT))\" \
             FROM t GROUP BY k HAVING avg(coalesce(coalesce(CAST(a AS BIGINT)))) > 1 \
             ORDER BY avg(coalesce(CAST(a AS DOUBLE)))"
        );
    }

    #[test]
    fn an_unnamed_item_holding_a_renamed_call_keeps_its_text_as_name() {
        assert_eq!(
            rewritten("SELECT sum(x), sum(CAST(x AS DOUBLE)) / 2 FROM t"),
            "SELECT sum(x), sum(coalesce(CAST(x AS DOUBLE))) / 2 AS \"sum(CAST(x AS DOUBLE)) / 2\" FROM t"
        );
    }

    #[test]
    fn grouping_keys_that_differ_by_a_cast_are_named_apart() {
        assert_eq!(
            rewritten("SELECT x, CAST(x AS VARCHAR), min(x) FROM t GROUP BY x, CAST(x AS VARCHAR)"),
            "SELECT x, coalesce(CAST(x AS VARCHAR)) AS \"CAST(x AS VARCHAR)\", min(x) FROM t \
             GROUP BY x, coalesce(CAST(x AS VARCHAR))"
        );
    }

    #[test]
    fn other_statements_are_left_alone() {
        for sql in [
            "SELECT sum(x), sum(CAST(y AS DOUBLE)) FROM t",
            "SELECT CAST(x AS DOUBLE) AS a FROM t",
        ] {
            assert_eq!(rewritten(sql), sql);
        }
    }
}
