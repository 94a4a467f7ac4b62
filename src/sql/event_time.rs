//! Event time in SQL: a table's `WATERMARK FOR` clause and idle timeout
//! as a [`WatermarkStrategy`], and interval literals as durations.

use std::time::Duration;

use datafusion_common::{DFSchema, ScalarValue};
use datafusion_expr::Expr;
use datafusion_sql::planner::{ContextProvider, PlannerContext, SqlToRel};
use datafusion_sql::sqlparser::ast::{BinaryOperator, Expr as SqlExpr};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::parser::Parser;
use weir_engine::event_time::WatermarkStrategy;

use super::SqlError;
use super::flink_syntax::WatermarkClause;

/// The table option setting how long a source split may be quiet before
/// it stops holding the watermark back (Flink's name).
pub const IDLE_TIMEOUT_OPTION: &str = "scan.watermark.idle-timeout";

/// The duration an interval literal stands for: days and smaller units
/// (months and years have no fixed length).
pub fn interval_duration(value: &Expr) -> Option<Duration> {
    let Expr::Literal(value, _) = value else {
        return None;
    };
    let millis: i128 = match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            i128::from(v.days) * 86_400_000 + i128::from(v.nanoseconds) / 1_000_000
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            i128::from(v.days) * 86_400_000 + i128::from(v.milliseconds)
        }
        _ => return None,
    };
    u64::try_from(millis).ok().map(Duration::from_millis)
}

/// The strategy of a `WATERMARK FOR column AS column [- INTERVAL ...]`
/// clause, with splits going idle after `idle_timeout`.
///
/// # Errors
/// An expression that is not the column less a fixed interval, placed at
/// the clause.
pub fn watermark_strategy<S: ContextProvider>(
    clause: &WatermarkClause,
    idle_timeout: Option<Duration>,
    context: &S,
) -> Result<WatermarkStrategy, SqlError> {
    let unsupported = || {
        SqlError::new(format!(
            "WATERMARK FOR {} AS {}: the watermark must be the time column less an interval, \
             such as {} - INTERVAL '5' SECOND",
            clause.column, clause.expression, clause.column
        ))
        .at(clause.span)
    };
    let expression = Parser::new(&GenericDialect {})
        .try_with_sql(&clause.expression)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| {
            SqlError::new(format!("WATERMARK FOR {}: {e}", clause.column)).at(clause.span)
        })?;
    let names_column = |e: &SqlExpr| match e {
        SqlExpr::Identifier(id) => id.value.eq_ignore_ascii_case(&clause.column),
        _ => false,
    };
    let delay = match &expression {
        e if names_column(e) => Duration::ZERO,
        SqlExpr::BinaryOp {
            left,
            op: BinaryOperator::Minus,
            right,
        } if names_column(left) => {
            let interval = SqlToRel::new(context)
                .sql_to_expr(
                    right.as_ref().clone(),
                    &DFSchema::empty(),
                    &mut PlannerContext::new(),
                )
                .map_err(|_| unsupported())?;
            interval_duration(&interval).ok_or_else(unsupported)?
        }
        _ => return Err(unsupported()),
    };
    let strategy = WatermarkStrategy::bounded_out_of_orderness(clause.column.clone(), delay);
    Ok(match idle_timeout {
        Some(timeout) => strategy.with_idle_timeout(timeout),
        None => strategy,
    })
}
