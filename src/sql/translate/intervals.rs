//! Interval joins in SQL: a join of unbounded inputs whose condition bounds
//! the distance between a time column of each side,
//!
//! ```sql
//! ... JOIN ... ON L.k = R.k AND R.ts BETWEEN L.ts - INTERVAL '1' HOUR AND L.ts
//! ```
//!
//! (or the same with `>=`, `>`, `<=`, `<`, either side first, with or
//! without intervals added or taken away) runs as an interval join; the
//! rest of the condition stays a residual filter.

use std::collections::HashSet;

use datafusion_expr::utils::{conjunction, split_conjunction};
use datafusion_expr::{BinaryExpr, Expr, Operator};

use crate::sql::event_time::interval_duration;

/// An interval join's time columns and bounds on `right - left` (ms), and
/// what is left of the condition.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Interval {
    /// The left and right time columns.
    pub times: (String, String),
    /// The least and greatest `right time - left time`.
    pub bounds: (i64, i64),
    /// The other conjuncts of the condition.
    pub rest: Option<Expr>,
}

/// A column and a fixed offset: `col`, `col + interval` or `col - interval`.
fn offset_column(e: &Expr) -> Option<(String, i64)> {
    match e {
        Expr::Column(c) => Some((c.name.clone(), 0)),
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (column, base) = offset_column(left)?;
            let ms = i64::try_from(interval_duration(right)?.as_millis()).ok()?;
            match op {
                Operator::Plus => Some((column, base + ms)),
                Operator::Minus => Some((column, base - ms)),
                _ => None,
            }
        }
        Expr::Cast(cast) => offset_column(&cast.expr),
        _ => None,
    }
}

/// The bound one conjunct sets on `right time - left time`.
struct Bound {
    /// The left and right time columns it compares.
    times: (String, String),
    lower: Option<i64>,
    upper: Option<i64>,
}

/// The bound a conjunct sets on `right time - left time`, if it sets one.
fn bound(e: &Expr, left: &HashSet<&str>, right: &HashSet<&str>) -> Option<Bound> {
    let Expr::BinaryExpr(BinaryExpr {
        left: a,
        op,
        right: b,
    }) = e
    else {
        return None;
    };
    let ((ac, ao), (bc, bo)) = (offset_column(a)?, offset_column(b)?);
    // As `right - left OP constant`.
    let (op, constant, times) = if right.contains(ac.as_str()) && left.contains(bc.as_str()) {
        (*op, bo - ao, (bc, ac))
    } else if left.contains(ac.as_str()) && right.contains(bc.as_str()) {
        let flipped = match op {
            Operator::Gt => Operator::Lt,
            Operator::GtEq => Operator::LtEq,
            Operator::Lt => Operator::Gt,
            Operator::LtEq => Operator::GtEq,
            _ => return None,
        };
        (flipped, ao - bo, (ac, bc))
    } else {
        return None;
    };
    let (lower, upper) = match op {
        Operator::GtEq => (Some(constant), None),
        Operator::Gt => (Some(constant + 1), None),
        Operator::LtEq => (None, Some(constant)),
        Operator::Lt => (None, Some(constant - 1)),
        _ => return None,
    };
    Some(Bound {
        times,
        lower,
        upper,
    })
}

/// The interval join a join condition (over the physical columns `left`
/// and `right`) asks for, if it bounds the distance between one time
/// column of each side from both below and above.
pub(super) fn interval_of(condition: &Expr, left: &[String], right: &[String]) -> Option<Interval> {
    let left: HashSet<&str> = left.iter().map(String::as_str).collect();
    let right: HashSet<&str> = right.iter().map(String::as_str).collect();
    let mut times: Option<(String, String)> = None;
    let (mut lower, mut upper) = (None, None);
    let mut rest = Vec::new();
    for conjunct in split_conjunction(condition) {
        match bound(conjunct, &left, &right) {
            Some(b) if times.as_ref().is_none_or(|t| *t == b.times) => {
                times = Some(b.times);
                if let Some(low) = b.lower {
                    lower = Some(lower.map_or(low, |l: i64| l.max(low)));
                }
                if let Some(high) = b.upper {
                    upper = Some(upper.map_or(high, |u: i64| u.min(high)));
                }
            }
            _ => rest.push(conjunct.clone()),
        }
    }
    Some(Interval {
        times: times?,
        bounds: (lower?, upper?),
        rest: conjunction(rest),
    })
}

#[cfg(test)]
mod tests {
    use datafusion_common::ScalarValue;
    use datafusion_expr::{col, lit};

    use super::*;

    fn seconds(n: i64) -> Expr {
        lit(ScalarValue::new_interval_mdn(0, 0, n * 1_000_000_000))
    }

    #[test]
    fn between_and_comparisons_give_bounds() {
        let (left, right) = (vec!["lt".to_string(), "k".into()], vec!["rt".to_string()]);
        let between = col("rt")
            .gt_eq(col("lt") - seconds(2))
            .and(col("rt").lt_eq(col("lt") + seconds(1)))
            .and(col("k").gt(lit(3)));
        let interval = interval_of(&between, &left, &right).expect("an interval");
        assert_eq!(interval.times, ("lt".to_string(), "rt".to_string()));
        assert_eq!(interval.bounds, (-2000, 1000));
        assert_eq!(interval.rest, Some(col("k").gt(lit(3))));
        // Left first, strict.
        let flipped = col("lt")
            .lt(col("rt"))
            .and(col("lt").gt(col("rt") - seconds(5)));
        let interval = interval_of(&flipped, &left, &right).expect("an interval");
        assert_eq!(interval.bounds, (1, 4999));
        // One bound only: no interval join.
        assert!(interval_of(&col("rt").gt_eq(col("lt")), &left, &right).is_none());
    }
}
