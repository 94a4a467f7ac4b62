//! Casts that keep statistics' bounds: monotone ones.
//!
//! If a cast `f` never reverses order (`a <= b` implies `f(a) <= f(b)`) and
//! succeeds on an interval of values, then `f(min)` and `f(max)` bound
//! `f(v)` for every value `v` between `min` and `max`. Casting a bound that
//! falls outside that interval yields null: an unknown bound.

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::DataType;

/// `bounds` (lower or upper bounds of some values) cast to `to`, or `None`
/// when the cast may reorder values.
pub(crate) fn cast_bounds(bounds: &ArrayRef, to: &DataType) -> Option<ArrayRef> {
    let to = value_type(to);
    if bounds.data_type() == to {
        return Some(ArrayRef::clone(bounds));
    }
    if !is_monotone(value_type(bounds.data_type()), to) {
        return None;
    }
    cast(bounds, to).ok()
}

/// The type of a dictionary's values; any other type as is. Dictionaries
/// order by value, and statistics are kept by value.
pub(crate) fn value_type(data_type: &DataType) -> &DataType {
    match data_type {
        DataType::Dictionary(_, values) => value_type(values),
        other => other,
    }
}

/// Whether Arrow's cast from `from` to `to` never reverses order and
/// succeeds (yielding a non-null value) on an interval of its inputs.
fn is_monotone(from: &DataType, to: &DataType) -> bool {
    use DataType::{Date32, Date64, Timestamp};
    let exact_numeric = |t: &DataType| t.is_integer() || is_decimal(t);
    match (from, to) {
        _ if from == to => true,
        // Floats keep NaN, which no other type can represent.
        _ if from.is_floating() => to.is_floating(),
        // Widening, narrowing (null when out of range), rescaling and
        // rounding are all monotone.
        _ if exact_numeric(from) => exact_numeric(to) || to.is_floating(),
        (Date32 | Date64, Date32 | Date64) | (Date32 | Date64, Timestamp(_, None)) => true,
        // A change of unit (not of time zone, which may map to local time).
        (Timestamp(_, a), Timestamp(_, b)) => a == b,
        _ if is_string(from) => is_string(to),
        _ if is_binary(from) => is_binary(to),
        _ => false,
    }
}

fn is_decimal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Date32Array, Float64Array, Int64Array, StringArray};
    use arrow::datatypes::TimeUnit;

    use super::*;

    #[test]
    fn widening_and_narrowing_integers_keep_bounds() {
        let bounds: ArrayRef = Arc::new(Int64Array::from(vec![Some(-5), Some(1 << 40), None]));
        let narrowed = cast_bounds(&bounds, &DataType::Int32).expect("monotone");
        // Out of range: an unknown bound, not a wrapped one.
        assert_eq!(narrowed.null_count(), 2);
        let decimal = cast_bounds(&bounds, &DataType::Decimal128(20, 2)).expect("monotone");
        assert_eq!(decimal.data_type(), &DataType::Decimal128(20, 2));
        assert!(cast_bounds(&bounds, &DataType::Float64).is_some());
    }

    #[test]
    fn order_changing_casts_are_refused() {
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![9, 10]));
        // "10" < "9" as strings.
        assert!(cast_bounds(&ints, &DataType::Utf8).is_none());
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["10", "9"]));
        assert!(cast_bounds(&strings, &DataType::Int64).is_none());
        assert!(cast_bounds(&strings, &DataType::LargeUtf8).is_some());
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![1.5]));
        assert!(cast_bounds(&floats, &DataType::Int64).is_none());
        let dates: ArrayRef = Arc::new(Date32Array::from(vec![1]));
        let local = DataType::Timestamp(TimeUnit::Second, Some("Europe/Paris".into()));
        assert!(cast_bounds(&dates, &local).is_none());
        let naive = DataType::Timestamp(TimeUnit::Second, None);
        assert!(cast_bounds(&dates, &naive).is_some());
    }

    #[test]
    fn dictionaries_are_read_by_value() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["a"]));
        let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
        let cast = cast_bounds(&strings, &dictionary).expect("same values");
        assert_eq!(cast.data_type(), &DataType::Utf8);
    }
}
