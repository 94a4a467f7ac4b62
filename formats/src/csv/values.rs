//! Which CSV values parse as a column's type, as arrow's CSV reader parses
//! them: the types the decoder supports, a quick check of the values of a
//! batch that failed (to find its bad records without decoding each
//! alone), and the candidates of schema inference.

use arrow::array::timezone::Tz;
use arrow::compute::kernels::cast_utils::{Parser, parse_decimal, string_to_datetime};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal256Type, Float16Type, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, UInt8Type, UInt16Type, UInt32Type,
    UInt64Type,
};

/// How the values of a column parse.
#[derive(Debug, Clone)]
pub(super) enum ValueType {
    /// Strings: every value.
    Text,
    /// `true` or `false`, in any case.
    Boolean,
    /// One of arrow's parsers.
    Parsed(fn(&str) -> bool),
    /// A decimal of this precision and scale.
    Decimal(u8, i8),
    /// A timestamp, read in this time zone when it has none.
    Timestamp(TimeUnit, Tz),
}

impl ValueType {
    /// How values of `data_type` parse, or why CSV cannot hold them.
    pub fn of(data_type: &DataType) -> Result<Self, String> {
        let parsed = |parses: fn(&str) -> bool| Ok(ValueType::Parsed(parses));
        match data_type {
            DataType::Utf8 => Ok(ValueType::Text),
            DataType::Boolean => Ok(ValueType::Boolean),
            DataType::Int8 => parsed(parses::<Int8Type>),
            DataType::Int16 => parsed(parses::<Int16Type>),
            DataType::Int32 => parsed(parses::<Int32Type>),
            DataType::Int64 => parsed(parses::<Int64Type>),
            DataType::UInt8 => parsed(parses::<UInt8Type>),
            DataType::UInt16 => parsed(parses::<UInt16Type>),
            DataType::UInt32 => parsed(parses::<UInt32Type>),
            DataType::UInt64 => parsed(parses::<UInt64Type>),
            DataType::Float16 => parsed(parses::<Float16Type>),
            DataType::Float32 => parsed(parses::<Float32Type>),
            DataType::Float64 => parsed(parses::<Float64Type>),
            DataType::Date32 => parsed(parses::<Date32Type>),
            DataType::Date64 => parsed(parses::<Date64Type>),
            DataType::Time32(TimeUnit::Second) => parsed(parses::<Time32SecondType>),
            DataType::Time32(TimeUnit::Millisecond) => parsed(parses::<Time32MillisecondType>),
            DataType::Time64(TimeUnit::Microsecond) => parsed(parses::<Time64MicrosecondType>),
            DataType::Time64(TimeUnit::Nanosecond) => parsed(parses::<Time64NanosecondType>),
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => Ok(ValueType::Decimal(*p, *s)),
            DataType::Timestamp(unit, tz) => {
                let tz: Tz = tz
                    .as_deref()
                    .unwrap_or("+00:00")
                    .parse()
                    .map_err(|e| format!("{e}"))?;
                Ok(ValueType::Timestamp(*unit, tz))
            }
            other => Err(format!("CSV cannot hold type {other}")),
        }
    }

    /// Whether `value` (not null) parses.
    pub fn parses(&self, value: &str) -> bool {
        match self {
            ValueType::Text => true,
            ValueType::Boolean => {
                value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false")
            }
            ValueType::Parsed(parses) => parses(value),
            ValueType::Decimal(precision, scale) => {
                parse_decimal::<Decimal256Type>(value, *precision, *scale).is_ok()
            }
            ValueType::Timestamp(unit, tz) => string_to_datetime(tz, value).is_ok_and(|time| {
                *unit != TimeUnit::Nanosecond || time.timestamp_nanos_opt().is_some()
            }),
        }
    }
}

fn parses<T: Parser>(value: &str) -> bool {
    T::parse(value).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_as_arrow_does() {
        let check = |data_type: DataType, good: &[&str], bad: &[&str]| {
            let value_type = ValueType::of(&data_type).unwrap();
            for value in good {
                assert!(value_type.parses(value), "{data_type}: {value}");
            }
            for value in bad {
                assert!(!value_type.parses(value), "{data_type}: {value}");
            }
        };
        check(DataType::Boolean, &["TRUE", "false"], &["1", "yes"]);
        check(DataType::Int8, &["-128", "127"], &["128", "1.5", "x"]);
        check(DataType::UInt64, &["18446744073709551615"], &["-1"]);
        check(DataType::Float64, &["1e3", "-0.5", "NaN"], &["1,5"]);
        check(DataType::Date32, &["2024-02-29"], &["2023-02-29", "soon"]);
        check(
            DataType::Decimal128(5, 2),
            &["123.45", "-1", "1.5"],
            &["1234.5", "1.2.3"],
        );
        check(
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+02:00".into())),
            &["2024-01-01T00:00:00", "2024-01-01 10:00:00.123456789Z"],
            &["3000-01-01T00:00:00", "noon"],
        );
        check(DataType::Utf8, &["", "anything"], &[]);
    }

    #[test]
    fn refuses_types_csv_cannot_hold() {
        let list = DataType::List(arrow::datatypes::Field::new("i", DataType::Int8, true).into());
        assert!(
            ValueType::of(&list)
                .unwrap_err()
                .starts_with("CSV cannot hold type List")
        );
        let bad_tz = DataType::Timestamp(TimeUnit::Second, Some("Nowhere/Land".into()));
        assert!(ValueType::of(&bad_tz).is_err());
    }
}
