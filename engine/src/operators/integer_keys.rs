//! Integer key columns held as `i64`s: the hash join and the hash
//! aggregate index a single key of an integer type (of any width, dates and
//! timestamps too) by its value, which hashes and compares in a few
//! instructions, instead of by its bytes in Arrow's row format.
//!
//! Each type is held as an integer type of its width (`Date32` as `Int32`,
//! timestamps as `Int64`), widened to `i64` without loss; `UInt64` keeps
//! its bits (values above `i64::MAX` are negative). [`narrow`] turns the
//! `i64`s back into a column of the original type.

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, make_array};
use arrow::buffer::NullBuffer;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use arrow::error::ArrowError;

/// The integer type keys of `data_type` are held as, `None` for a type
/// that is not an integer.
fn storage(data_type: &DataType) -> Option<DataType> {
    Some(match data_type {
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32 => data_type.clone(),
        DataType::UInt64 | DataType::Date64 | DataType::Timestamp(_, _) => DataType::Int64,
        DataType::Date32 => DataType::Int32,
        _ => return None,
    })
}

/// Whether keys of `data_type` can be held as `i64`s.
pub(crate) fn is_integer(data_type: &DataType) -> bool {
    storage(data_type).is_some()
}

/// `array` as another type of the same width, bit for bit.
fn reinterpret(array: &ArrayRef, data_type: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == data_type {
        return Ok(std::sync::Arc::clone(array));
    }
    let data = array.to_data().into_builder().data_type(data_type.clone());
    Ok(make_array(data.build()?))
}

/// The values of an integer column as `i64`s (the values under its NULLs
/// are arbitrary), `None` when its type is not an integer.
///
/// # Errors
/// When the column cannot be converted (it cannot, for integer types).
pub(crate) fn widen(array: &ArrayRef) -> Result<Option<Vec<i64>>, ArrowError> {
    let Some(storage) = storage(array.data_type()) else {
        return Ok(None);
    };
    let held = reinterpret(array, &storage)?;
    let wide = cast(&held, &DataType::Int64)?;
    Ok(Some(wide.as_primitive::<Int64Type>().values().to_vec()))
}

/// A column of `data_type` (an integer type) holding `values` as
/// [`widen`] gave them, NULL where `nulls` says.
///
/// # Errors
/// When `data_type` is not an integer type.
pub(crate) fn narrow(
    values: Vec<i64>,
    nulls: Option<NullBuffer>,
    data_type: &DataType,
) -> Result<ArrayRef, ArrowError> {
    let storage = storage(data_type).ok_or_else(|| {
        ArrowError::InvalidArgumentError(format!("{data_type} keys are not integers"))
    })?;
    let wide: ArrayRef = std::sync::Arc::new(Int64Array::new(values.into(), nulls));
    let held = cast(&wide, &storage)?;
    reinterpret(&held, data_type)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Date32Array, Int8Array, StringArray, TimestampMicrosecondArray, UInt64Array,
    };

    use super::*;

    fn round_trip(array: ArrayRef) {
        let values = widen(&array).expect("converts").expect("an integer type");
        let back = narrow(values, array.logical_nulls(), array.data_type()).expect("narrows");
        assert_eq!(&back, &array);
    }

    #[test]
    fn integer_columns_widen_and_narrow_back_unchanged() {
        round_trip(Arc::new(Int8Array::from(vec![Some(-128), None, Some(127)])));
        round_trip(Arc::new(UInt64Array::from(vec![u64::MAX, 0, 1 << 63])));
        round_trip(Arc::new(Date32Array::from(vec![
            Some(-3),
            Some(19_000),
            None,
        ])));
        round_trip(Arc::new(
            TimestampMicrosecondArray::from(vec![1, -1]).with_timezone("+01:00"),
        ));
        let unsigned: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX, 7]));
        assert_eq!(widen(&unsigned).expect("converts"), Some(vec![-1, 7]));
    }

    #[test]
    fn other_columns_are_not_integers() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec!["1"]));
        assert_eq!(widen(&strings).expect("no error"), None);
        assert!(!is_integer(&DataType::Float64));
        assert!(narrow(vec![1], None, &DataType::Utf8).is_err());
    }
}
