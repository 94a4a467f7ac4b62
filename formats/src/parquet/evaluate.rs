//! Judging a [`Predicate`] over containers from their statistics, all
//! containers at once.
//!
//! For each container the evaluation finds whether some row may make the
//! predicate true and whether some row may make it false (a null is
//! neither). Tracking both lets NOT be judged: `NOT p` may be true exactly
//! where `p` may be false. A container where the filter cannot be true
//! holds no row that passes it.

use arrow::array::ArrayRef;
use arrow::buffer::BooleanBuffer;
use arrow::compute::kernels::cmp;

use super::predicate::{Bound, Comparison, Predicate, Range, scalar};
use super::statistics::{ColumnStatistics, Containers, may};

/// Per container: whether a row may make the predicate true, and whether
/// one may make it false.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Some row may satisfy the predicate.
    pub can_be_true: BooleanBuffer,
    /// Some row may fail it (with a false, not a null).
    pub can_be_false: BooleanBuffer,
}

impl Outcome {
    fn of(can_be_true: BooleanBuffer, can_be_false: BooleanBuffer) -> Self {
        Self {
            can_be_true,
            can_be_false,
        }
    }

    fn constant(len: usize, can_be_true: bool, can_be_false: bool) -> Self {
        let fill = |set| {
            if set {
                BooleanBuffer::new_set(len)
            } else {
                BooleanBuffer::new_unset(len)
            }
        };
        Self::of(fill(can_be_true), fill(can_be_false))
    }
}

/// Evaluates `predicate` over `containers`.
pub(crate) fn evaluate(predicate: &Predicate, containers: &Containers) -> Outcome {
    let len = containers.len();
    match predicate {
        Predicate::Unknown => Outcome::constant(len, true, true),
        Predicate::Constant(value) => {
            Outcome::constant(len, *value == Some(true), *value == Some(false))
        }
        Predicate::IsNull(name) => match containers.column(name) {
            Some(column) => Outcome::of(column.has_null.clone(), column.has_value.clone()),
            None => Outcome::constant(len, true, true),
        },
        Predicate::Range(range) => match containers.column(&range.column.name) {
            Some(column) => range_outcome(range, column, len),
            None => Outcome::constant(len, true, true),
        },
        Predicate::Not(inner) => {
            let inner = evaluate(inner, containers);
            Outcome::of(inner.can_be_false, inner.can_be_true)
        }
        Predicate::And(parts) => parts.iter().map(|p| evaluate(p, containers)).fold(
            Outcome::constant(len, true, false),
            |acc, part| {
                Outcome::of(
                    &acc.can_be_true & &part.can_be_true,
                    &acc.can_be_false | &part.can_be_false,
                )
            },
        ),
        Predicate::Or(parts) => parts.iter().map(|p| evaluate(p, containers)).fold(
            Outcome::constant(len, false, true),
            |acc, part| {
                Outcome::of(
                    &acc.can_be_true | &part.can_be_true,
                    &acc.can_be_false & &part.can_be_false,
                )
            },
        ),
    }
}

/// A range over one column. With bounds `min..=max` on the non-null
/// values, some value may lie in `low..high` when `max` reaches `low` and
/// `min` reaches `high`, and some may lie outside when `min` is below `low`
/// or `max` above `high`. NaNs, which float bounds do not cover, sort above
/// (`NaN`) or below (`-NaN`) every other value: they lie in a range open on
/// their side and outside any other.
fn range_outcome(range: &Range, column: &ColumnStatistics, len: usize) -> Outcome {
    let bounds = column.bounds(&range.column.casts);
    let (min, max) = match &bounds {
        Some((min, max)) => (Some(min), Some(max)),
        None => (None, None),
    };
    let ones = || BooleanBuffer::new_set(len);
    let zeros = || BooleanBuffer::new_unset(len);
    // `bounds op bound`, with `op` chosen by whether the bound is inclusive.
    let compare = |bounds: Option<&ArrayRef>, bound: &Bound, inclusive: Comparison, exclusive| {
        let op = if bound.inclusive {
            inclusive
        } else {
            exclusive
        };
        match (bounds, scalar(&bound.value)) {
            (Some(bounds), Some(value)) => may(op(bounds, &value), len),
            _ => ones(),
        }
    };

    let nan_inside = column.nan && (range.low.is_none() || range.high.is_none());
    let can_be_true = if range.empty {
        zeros()
    } else if nan_inside {
        column.has_value.clone()
    } else {
        let low = range.low.as_ref();
        let high = range.high.as_ref();
        let reaches_low = low.map_or_else(ones, |b| compare(max, b, cmp::gt_eq, cmp::gt));
        let reaches_high = high.map_or_else(ones, |b| compare(min, b, cmp::lt_eq, cmp::lt));
        &column.has_value & &(&reaches_low & &reaches_high)
    };

    // A range always has a bound, so a NaN is always outside it.
    let can_be_false = if column.nan {
        column.has_value.clone()
    } else {
        let low = range.low.as_ref();
        let high = range.high.as_ref();
        let below_low = low.map_or_else(zeros, |b| compare(min, b, cmp::lt, cmp::lt_eq));
        let above_high = high.map_or_else(zeros, |b| compare(max, b, cmp::gt, cmp::gt_eq));
        &column.has_value & &(&below_low | &above_high)
    };
    Outcome::of(can_be_true, can_be_false)
}
