//! One column of a `datagen` table: what its `fields.<column>.*` options
//! ask for, and its values, each a pure function of the seed, the column
//! and the row number.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanArray, LargeStringBuilder, PrimitiveArray, StringArray,
    StringBuilder, StringViewBuilder,
};
use arrow::compute::kernels::cast_utils::parse_decimal;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Decimal32Type, Decimal64Type, Decimal128Type,
    FieldRef, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use weir_exchange::hash::mix64;

use crate::{Error, Result};

/// The length of random strings unless `length` says otherwise.
const DEFAULT_LENGTH: usize = 10;

/// Random dates and timestamps fall in 2000-01-01 ..< 2030-01-01 unless
/// `min` / `max` say otherwise (days since the epoch).
const DEFAULT_DAYS: Range<i128> = 10_957..21_915;

/// What random strings are made of.
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Characters drawn from one 64-bit draw (62^10 < 2^64).
const CHARS_PER_DRAW: usize = 10;

/// The types datagen generates, for error messages.
const SUPPORTED_TYPES: &str = "BOOLEAN, TINYINT, SMALLINT, INT, BIGINT (and unsigned), FLOAT, \
    DOUBLE, DECIMAL(p,s) up to 38 digits, VARCHAR / STRING, DATE, TIMESTAMP";

/// The odd constant of Fibonacci hashing: spreads consecutive numbers.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// Generates the values of one declared column.
#[derive(Debug, Clone)]
pub struct ColumnGenerator {
    field: FieldRef,
    values: Values,
    /// The draws of this column's values.
    stream: u64,
    /// The draws that decide which rows are null.
    null_stream: u64,
    null_rate: f64,
}

/// How a column's values are drawn.
#[derive(Debug, Clone)]
enum Values {
    /// `true` or `false`, even odds.
    Boolean,
    /// Uniform in `min..=max`: integers, decimals (unscaled), dates (days)
    /// and timestamps (in their unit).
    Integral { min: i128, max: i128 },
    /// Uniform in `min..=max`.
    Float { min: f64, max: f64 },
    /// `length` random alphanumeric characters.
    Text { length: usize },
    /// `start + row`: as a number of the column's type, or its decimal text.
    Sequence { start: i64, end: i64 },
}

/// The kinds of type datagen knows how to draw.
#[derive(Debug, Clone, Copy)]
enum Category {
    Boolean,
    Integer { low: i128, high: i128 },
    Float,
    Decimal { precision: u8, scale: i8 },
    Text,
    Temporal,
}

impl ColumnGenerator {
    /// The generator of declared column `field` at position `index`, from
    /// its properties (`kind` -> value) and the table's `seed`.
    ///
    /// # Errors
    /// [`Error::DeclaredColumns`] for a type datagen cannot generate;
    /// [`Error::Option`] for a value that does not
    /// parse or fit the column's type, or a property that does not apply to
    /// the column's kind or type.
    pub fn try_new(
        index: usize,
        field: &FieldRef,
        properties: &BTreeMap<&str, &str>,
        seed: u64,
    ) -> Result<Self> {
        let name = field.name();
        let category = category(field.data_type()).ok_or_else(|| Error::DeclaredColumns {
            connector: "datagen",
            message: format!(
                "column '{name}' is {}, which datagen cannot generate (it generates {SUPPORTED_TYPES})",
                field.data_type()
            ),
        })?;
        let option = |property: &str| format!("fields.{name}.{property}");
        let invalid = |property: &str, message: String| Error::Option {
            option: option(property),
            message,
        };
        let get = |property: &str| properties.get(property).map(|v| v.trim());
        let refuse = |properties: &[&str], why: &str| -> Result<()> {
            match properties.iter().find(|p| get(p).is_some()) {
                Some(p) => Err(invalid(p, why.to_string())),
                None => Ok(()),
            }
        };
        let values = match get("kind").unwrap_or("random") {
            "random" => {
                refuse(&["start", "end"], "only applies to 'sequence' columns")?;
                random_values(category, field.data_type(), &get, &invalid)?
            }
            "sequence" => {
                refuse(&["min", "max"], "only applies to 'random' columns")?;
                refuse(&["length"], "only applies to random strings")?;
                sequence_values(category, field, &get, &invalid)?
            }
            other => {
                return Err(invalid(
                    "kind",
                    format!("'{other}' is not 'random' or 'sequence'"),
                ));
            }
        };
        let null_rate = match get("null-rate") {
            None => 0.0,
            Some(text) => match text.parse::<f64>() {
                Ok(rate) if (0.0..=1.0).contains(&rate) => rate,
                _ => {
                    return Err(invalid(
                        "null-rate",
                        format!("'{text}' is not a number from 0 to 1"),
                    ));
                }
            },
        };
        if null_rate > 0.0 && !field.is_nullable() {
            return Err(invalid("null-rate", format!("column '{name}' is NOT NULL")));
        }
        let column = (index as u64).wrapping_mul(GOLDEN);
        let table = mix64(seed ^ GOLDEN);
        Ok(Self {
            field: Arc::clone(field),
            values,
            stream: mix64(table ^ column),
            null_stream: mix64(table ^ column ^ 0x6e75_6c6c),
            null_rate,
        })
    }

    /// The declared column.
    pub fn field(&self) -> &FieldRef {
        &self.field
    }

    /// How many rows a sequence column has values for (`None`: any number).
    pub fn sequence_len(&self) -> Option<u64> {
        match self.values {
            Values::Sequence { start, end } => {
                Some(u64::try_from(end as i128 - start as i128 + 1).unwrap_or(u64::MAX))
            }
            _ => None,
        }
    }

    /// About how many bytes of Arrow data one value takes.
    pub fn value_bytes(&self) -> u64 {
        match (&self.values, self.field.data_type().primitive_width()) {
            (Values::Text { length }, _) => *length as u64 + 4,
            (Values::Sequence { .. }, None) => 12,
            (_, Some(width)) => width as u64,
            (_, None) => 1,
        }
    }

    /// The column's values for the rows numbered `rows`.
    ///
    /// # Errors
    /// When Arrow refuses the array (it cannot for the types accepted).
    pub fn generate(&self, rows: Range<u64>) -> Result<ArrayRef> {
        let valid =
            |row: u64| self.null_rate == 0.0 || unit(draw(self.null_stream, row)) >= self.null_rate;
        // A decimal sequence counts whole numbers: 10^scale unscaled units.
        let factor = match self.field.data_type() {
            DataType::Decimal32(_, scale)
            | DataType::Decimal64(_, scale)
            | DataType::Decimal128(_, scale) => 10i128.pow(u32::from(scale.unsigned_abs())),
            _ => 1,
        };
        let int = |row: u64| self.integral(row, factor);
        let float = |row: u64| self.float(row);
        Ok(match self.field.data_type() {
            DataType::Boolean => Arc::new(
                rows.map(|row| valid(row).then(|| draw(self.stream, row) & 1 == 1))
                    .collect::<BooleanArray>(),
            ),
            DataType::Int8 => primitive::<Int8Type>(rows, valid, |r| int(r) as i8),
            DataType::Int16 => primitive::<Int16Type>(rows, valid, |r| int(r) as i16),
            DataType::Int32 => primitive::<Int32Type>(rows, valid, |r| int(r) as i32),
            DataType::Int64 => primitive::<Int64Type>(rows, valid, |r| int(r) as i64),
            DataType::UInt8 => primitive::<UInt8Type>(rows, valid, |r| int(r) as u8),
            DataType::UInt16 => primitive::<UInt16Type>(rows, valid, |r| int(r) as u16),
            DataType::UInt32 => primitive::<UInt32Type>(rows, valid, |r| int(r) as u32),
            DataType::UInt64 => primitive::<UInt64Type>(rows, valid, |r| int(r) as u64),
            DataType::Float32 => primitive::<Float32Type>(rows, valid, |r| float(r) as f32),
            DataType::Float64 => primitive::<Float64Type>(rows, valid, float),
            DataType::Decimal32(p, s) => Arc::new(
                values::<Decimal32Type>(rows, valid, |r| int(r) as i32)
                    .with_precision_and_scale(*p, *s)?,
            ),
            DataType::Decimal64(p, s) => Arc::new(
                values::<Decimal64Type>(rows, valid, |r| int(r) as i64)
                    .with_precision_and_scale(*p, *s)?,
            ),
            DataType::Decimal128(p, s) => Arc::new(
                values::<Decimal128Type>(rows, valid, int).with_precision_and_scale(*p, *s)?,
            ),
            DataType::Date32 => primitive::<Date32Type>(rows, valid, |r| int(r) as i32),
            DataType::Timestamp(unit, zone) => {
                let zone = zone.clone();
                let ts = |r| int(r) as i64;
                match unit {
                    TimeUnit::Second => Arc::new(
                        values::<TimestampSecondType>(rows, valid, ts).with_timezone_opt(zone),
                    ),
                    TimeUnit::Millisecond => Arc::new(
                        values::<TimestampMillisecondType>(rows, valid, ts).with_timezone_opt(zone),
                    ),
                    TimeUnit::Microsecond => Arc::new(
                        values::<TimestampMicrosecondType>(rows, valid, ts).with_timezone_opt(zone),
                    ),
                    TimeUnit::Nanosecond => Arc::new(
                        values::<TimestampNanosecondType>(rows, valid, ts).with_timezone_opt(zone),
                    ),
                }
            }
            DataType::Utf8 => self.strings(rows, valid, StringBuilder::new()),
            DataType::LargeUtf8 => self.strings(rows, valid, LargeStringBuilder::new()),
            DataType::Utf8View => self.strings(rows, valid, StringViewBuilder::new()),
            other => unreachable!("type {other} passed the category check"),
        })
    }

    /// An integral value: a random one, or the sequence's times `factor`
    /// (the unscaled units of one for decimals).
    fn integral(&self, row: u64, factor: i128) -> i128 {
        match self.values {
            Values::Integral { min, max } => {
                // Up to 2 * 10^38 values (DECIMAL(38)): more than i128
                // holds, so the offset from `min` is added wrapping.
                let span = max.abs_diff(min) + 1;
                let low = u128::from(draw(self.stream, row));
                // Spans wider than one draw (decimals of 19 digits and
                // more) take a second draw for the high bits.
                let bits = if span > 1 << 64 {
                    (u128::from(draw(substream(self.stream, u64::MAX), row)) << 64) | low
                } else {
                    low
                };
                min.wrapping_add((bits % span) as i128)
            }
            Values::Sequence { start, .. } => (start as i128 + row as i128) * factor,
            _ => 0,
        }
    }

    fn float(&self, row: u64) -> f64 {
        match self.values {
            Values::Float { min, max } => {
                (min + unit(draw(self.stream, row)) * (max - min)).min(max)
            }
            Values::Sequence { start, .. } => (start as i128 + row as i128) as f64,
            _ => 0.0,
        }
    }

    /// A string column, built with `builder` (of any string array type).
    fn strings<B>(&self, rows: Range<u64>, valid: impl Fn(u64) -> bool, mut builder: B) -> ArrayRef
    where
        B: ArrayBuilder + for<'a> Extend<Option<&'a str>>,
    {
        let mut text = String::new();
        for row in rows {
            if !valid(row) {
                builder.extend([None]);
                continue;
            }
            text.clear();
            match self.values {
                Values::Sequence { start, .. } => {
                    let _ = write!(text, "{}", start as i128 + row as i128);
                }
                Values::Text { length } => {
                    for chunk in 0..length.div_ceil(CHARS_PER_DRAW) {
                        let mut bits = draw(substream(self.stream, chunk as u64), row);
                        for _ in 0..CHARS_PER_DRAW.min(length - chunk * CHARS_PER_DRAW) {
                            text.push(ALPHABET[(bits % 62) as usize] as char);
                            bits /= 62;
                        }
                    }
                }
                _ => {}
            }
            builder.extend([Some(text.as_str())]);
        }
        builder.finish()
    }
}

/// The values drawn for a random column of `category`, checked against its
/// type.
fn random_values<'a>(
    category: Category,
    data_type: &DataType,
    get: &impl Fn(&str) -> Option<&'a str>,
    invalid: &impl Fn(&str, String) -> Error,
) -> Result<Values> {
    let bounded = |default: (i128, i128), parse: &dyn Fn(&str) -> Result<i128, String>| {
        let bound = |property: &str, default: i128| match get(property) {
            None => Ok(default),
            Some(text) => parse(text).map_err(|message| invalid(property, message)),
        };
        let (min, max) = (bound("min", default.0)?, bound("max", default.1)?);
        if min > max {
            return Err(invalid("min", format!("{min} is above the maximum {max}")));
        }
        Ok(Values::Integral { min, max })
    };
    let refuse_bounds = |why: &str| match ["min", "max"].into_iter().find(|p| get(p).is_some()) {
        Some(p) => Err(invalid(p, why.to_string())),
        None => Ok(()),
    };
    if get("length").is_some() && !matches!(category, Category::Text) {
        return Err(invalid(
            "length",
            "only applies to string columns".to_string(),
        ));
    }
    match category {
        Category::Boolean => {
            refuse_bounds("does not apply to BOOLEAN columns")?;
            Ok(Values::Boolean)
        }
        Category::Text => {
            refuse_bounds("does not apply to string columns (use 'length')")?;
            let length = match get("length") {
                None => DEFAULT_LENGTH,
                Some(text) => text.parse().map_err(|_| {
                    invalid("length", format!("'{text}' is not a number of characters"))
                })?,
            };
            Ok(Values::Text { length })
        }
        Category::Integer { low, high } => {
            bounded((low, high), &|text| match text.parse::<i128>() {
                Ok(v) if (low..=high).contains(&v) => Ok(v),
                Ok(_) => Err(format!(
                    "{text} is out of range for {data_type} ({low} to {high})"
                )),
                Err(_) => Err(format!("'{text}' is not an integer")),
            })
        }
        Category::Decimal { precision, scale } => {
            let limit = 10i128.pow(u32::from(precision)) - 1;
            bounded((-limit, limit), &|text| {
                parse_decimal::<Decimal128Type>(text, precision, scale)
                    .map_err(|e| format!("'{text}' is not a {data_type}: {e}"))
            })
        }
        Category::Float => {
            let bound = |property: &str, default: f64| match get(property) {
                None => Ok(default),
                Some(text) => match text.parse::<f64>() {
                    Ok(v) if v.is_finite() && fits_float(data_type, v) => Ok(v),
                    _ => Err(invalid(
                        property,
                        format!("'{text}' is not a finite {data_type}"),
                    )),
                },
            };
            let (min, max) = (bound("min", 0.0)?, bound("max", 1.0)?);
            if min > max {
                return Err(invalid("min", format!("{min} is above the maximum {max}")));
            }
            if !(max - min).is_finite() {
                return Err(invalid(
                    "max",
                    format!("the range {min} to {max} is too wide"),
                ));
            }
            Ok(Values::Float { min, max })
        }
        Category::Temporal => {
            let per_day: i128 = match data_type {
                DataType::Timestamp(unit, _) => {
                    86_400
                        * match unit {
                            TimeUnit::Second => 1,
                            TimeUnit::Millisecond => 1_000,
                            TimeUnit::Microsecond => 1_000_000,
                            TimeUnit::Nanosecond => 1_000_000_000,
                        }
                }
                _ => 1,
            };
            let default = (DEFAULT_DAYS.start * per_day, DEFAULT_DAYS.end * per_day - 1);
            bounded(default, &|text| temporal(text, data_type))
        }
    }
}

/// The values of a sequence column of `category`: `start..=end`, which
/// must fit the column's type.
fn sequence_values<'a>(
    category: Category,
    field: &FieldRef,
    get: &impl Fn(&str) -> Option<&'a str>,
    invalid: &impl Fn(&str, String) -> Error,
) -> Result<Values> {
    let data_type = field.data_type();
    let fits: Box<dyn Fn(i128) -> bool> = match category {
        Category::Integer { low, high } => Box::new(move |v| (low..=high).contains(&v)),
        Category::Decimal { precision, scale } => {
            let digits = i32::from(precision) - i32::from(scale);
            Box::new(move |v| {
                (digits > 0 && v.unsigned_abs() < 10u128.pow(digits.unsigned_abs()))
                    || (digits <= 0 && v == 0)
            })
        }
        Category::Float | Category::Text => Box::new(|_| true),
        Category::Boolean | Category::Temporal => {
            return Err(invalid(
                "kind",
                format!(
                    "a 'sequence' column must be numeric or a string ('{}' is {data_type})",
                    field.name()
                ),
            ));
        }
    };
    let bound = |property: &str| -> Result<i64> {
        let text = get(property).ok_or_else(|| {
            invalid(
                property,
                "is required for a 'sequence' column (its values are start..=end)".to_string(),
            )
        })?;
        match text.parse::<i64>() {
            Ok(v) if fits(i128::from(v)) => Ok(v),
            Ok(_) => Err(invalid(
                property,
                format!("{text} does not fit {data_type}"),
            )),
            Err(_) => Err(invalid(property, format!("'{text}' is not an integer"))),
        }
    };
    let (start, end) = (bound("start")?, bound("end")?);
    if start > end {
        return Err(invalid("start", format!("{start} is above the end {end}")));
    }
    Ok(Values::Sequence { start, end })
}

fn category(data_type: &DataType) -> Option<Category> {
    let integer = |low: i128, high: i128| Some(Category::Integer { low, high });
    match data_type {
        DataType::Boolean => Some(Category::Boolean),
        DataType::Int8 => integer(i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => integer(i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => integer(i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => integer(i64::MIN.into(), i64::MAX.into()),
        DataType::UInt8 => integer(0, u8::MAX.into()),
        DataType::UInt16 => integer(0, u16::MAX.into()),
        DataType::UInt32 => integer(0, u32::MAX.into()),
        DataType::UInt64 => integer(0, u64::MAX.into()),
        DataType::Float32 | DataType::Float64 => Some(Category::Float),
        // A negative scale (multiples of a power of ten) is not SQL's.
        DataType::Decimal32(precision, scale)
        | DataType::Decimal64(precision, scale)
        | DataType::Decimal128(precision, scale)
            if *scale >= 0 =>
        {
            Some(Category::Decimal {
                precision: *precision,
                scale: *scale,
            })
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Some(Category::Text),
        DataType::Date32 | DataType::Timestamp(_, _) => Some(Category::Temporal),
        _ => None,
    }
}

fn fits_float(data_type: &DataType, value: f64) -> bool {
    !matches!(data_type, DataType::Float32) || value.abs() <= f64::from(f32::MAX)
}

/// A date or timestamp literal as the column's integral value (days, or
/// the timestamp's unit).
fn temporal(text: &str, data_type: &DataType) -> Result<i128, String> {
    let options = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let parsed = cast_with_options(&StringArray::from(vec![text]), data_type, &options)
        .map_err(|e| format!("'{text}' is not a {data_type}: {e}"))?;
    let value = match data_type {
        DataType::Date32 => parsed
            .as_any()
            .downcast_ref::<PrimitiveArray<Date32Type>>()
            .map(|a| i128::from(a.value(0))),
        DataType::Timestamp(unit, _) => {
            let any = parsed.as_any();
            match unit {
                TimeUnit::Second => any
                    .downcast_ref::<PrimitiveArray<TimestampSecondType>>()
                    .map(|a| i128::from(a.value(0))),
                TimeUnit::Millisecond => any
                    .downcast_ref::<PrimitiveArray<TimestampMillisecondType>>()
                    .map(|a| i128::from(a.value(0))),
                TimeUnit::Microsecond => any
                    .downcast_ref::<PrimitiveArray<TimestampMicrosecondType>>()
                    .map(|a| i128::from(a.value(0))),
                TimeUnit::Nanosecond => any
                    .downcast_ref::<PrimitiveArray<TimestampNanosecondType>>()
                    .map(|a| i128::from(a.value(0))),
            }
        }
        _ => None,
    };
    value.ok_or_else(|| format!("'{text}' is not a {data_type}"))
}

/// The `row`th draw of `stream`: splitmix-style, every row its own
/// well-mixed 64 bits.
fn draw(stream: u64, row: u64) -> u64 {
    mix64(stream.wrapping_add(row.wrapping_mul(GOLDEN)))
}

/// The `k`th stream derived from `stream` (for values that need more than
/// one draw per row).
fn substream(stream: u64, k: u64) -> u64 {
    mix64(stream ^ k.wrapping_add(1).wrapping_mul(0xd6e8_feb8_6659_fd93))
}

/// A draw as a number in `0..1`.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

fn values<T: ArrowPrimitiveType>(
    rows: Range<u64>,
    valid: impl Fn(u64) -> bool,
    value: impl Fn(u64) -> T::Native,
) -> PrimitiveArray<T> {
    rows.map(|row| valid(row).then(|| value(row))).collect()
}

fn primitive<T: ArrowPrimitiveType>(
    rows: Range<u64>,
    valid: impl Fn(u64) -> bool,
    value: impl Fn(u64) -> T::Native,
) -> ArrayRef {
    Arc::new(values::<T>(rows, valid, value))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Field;

    use super::*;

    fn column(data_type: DataType, properties: &[(&str, &str)]) -> Result<ColumnGenerator> {
        let field = Arc::new(Field::new("c", data_type, true));
        ColumnGenerator::try_new(0, &field, &properties.iter().copied().collect(), 7)
    }

    fn error(data_type: DataType, properties: &[(&str, &str)]) -> String {
        column(data_type, properties)
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn values_depend_only_on_the_row() {
        let c = column(DataType::Int64, &[]).expect("column");
        let all = c.generate(0..100).expect("values");
        let tail = c.generate(60..100).expect("values");
        assert_eq!(all.slice(60, 40).as_ref(), tail.as_ref());
    }

    #[test]
    fn random_integers_stay_in_their_bounds() {
        let c = column(DataType::Int16, &[("min", "-3"), ("max", "5")]).expect("column");
        let values = c.generate(0..10_000).expect("values");
        let values = values.as_primitive::<Int16Type>();
        assert!(values.values().iter().all(|v| (-3..=5).contains(v)));
        for v in -3..=5 {
            assert!(values.values().contains(&v), "{v} never drawn");
        }
    }

    #[test]
    fn full_range_unsigned_integers_draw() {
        let c = column(DataType::UInt64, &[]).expect("column");
        let values = c.generate(0..1000).expect("values");
        assert!(
            values
                .as_primitive::<UInt64Type>()
                .values()
                .iter()
                .any(|v| *v > u64::MAX / 2)
        );
    }

    #[test]
    fn wide_decimals_draw_over_their_whole_range() {
        let c = column(DataType::Decimal128(38, 0), &[]).expect("column");
        let values = c.generate(0..1000).expect("values");
        let values = values.as_primitive::<Decimal128Type>().values();
        let limit = 10i128.pow(38);
        assert!(values.iter().all(|v| v.abs() < limit));
        // Both halves of the range, and values far from its ends.
        assert!(values.iter().any(|v| *v > limit / 2));
        assert!(values.iter().any(|v| *v < -limit / 2));
        assert!(values.iter().any(|v| v.abs() < limit / 4));
    }

    #[test]
    fn the_widest_sequence_has_every_row() {
        let (start, end) = (i64::MIN.to_string(), i64::MAX.to_string());
        let c = column(
            DataType::Int64,
            &[("kind", "sequence"), ("start", &start), ("end", &end)],
        )
        .expect("column");
        assert_eq!(c.sequence_len(), Some(u64::MAX));
    }

    #[test]
    fn decimals_dates_and_timestamps_take_literal_bounds() {
        let d =
            column(DataType::Decimal128(6, 2), &[("min", "1.50"), ("max", "2")]).expect("decimal");
        let values = d.generate(0..1000).expect("values");
        let values = values.as_primitive::<Decimal128Type>();
        assert!(values.values().iter().all(|v| (150..=200).contains(v)));
        let t = column(
            DataType::Timestamp(TimeUnit::Millisecond, None),
            &[
                ("min", "2024-01-01T00:00:00"),
                ("max", "2024-01-01T00:00:01"),
            ],
        )
        .expect("timestamp");
        let values = t.generate(0..100).expect("values");
        let start = 1_704_067_200_000_i64;
        assert!(
            values
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .iter()
                .all(|v| (start..=start + 1000).contains(v))
        );
        let d = column(DataType::Date32, &[]).expect("date");
        let values = d.generate(0..1000).expect("values");
        assert!(
            values
                .as_primitive::<Date32Type>()
                .values()
                .iter()
                .all(|v| DEFAULT_DAYS.contains(&i128::from(*v)))
        );
    }

    #[test]
    fn sequences_count_from_start() {
        let c = column(
            DataType::Utf8,
            &[("kind", "sequence"), ("start", "-2"), ("end", "9")],
        )
        .expect("column");
        assert_eq!(c.sequence_len(), Some(12));
        let values = c.generate(0..3).expect("values");
        let values: Vec<_> = values.as_string::<i32>().iter().flatten().collect();
        assert_eq!(values, ["-2", "-1", "0"]);
        let d = column(
            DataType::Decimal128(5, 2),
            &[("kind", "sequence"), ("start", "998"), ("end", "999")],
        )
        .expect("decimal");
        let values = d.generate(0..2).expect("values");
        assert_eq!(
            values.as_primitive::<Decimal128Type>().values(),
            &[99_800, 99_900]
        );
    }

    #[test]
    fn strings_have_their_length() {
        let c = column(DataType::Utf8View, &[("length", "23")]).expect("column");
        let values = c.generate(0..50).expect("values");
        assert!(
            values
                .as_string_view()
                .iter()
                .flatten()
                .all(|s| s.len() == 23 && s.bytes().all(|b| b.is_ascii_alphanumeric()))
        );
    }

    #[test]
    fn null_rates_make_nulls() {
        let none = column(DataType::Boolean, &[]).expect("column");
        assert_eq!(none.generate(0..1000).expect("values").null_count(), 0);
        let all = column(DataType::Boolean, &[("null-rate", "1")]).expect("column");
        assert_eq!(all.generate(0..1000).expect("values").null_count(), 1000);
        let some = column(DataType::Float64, &[("null-rate", "0.25")]).expect("column");
        let nulls = some.generate(0..10_000).expect("values").null_count();
        assert!((2_200..2_800).contains(&nulls), "{nulls} nulls");
    }

    #[test]
    fn invalid_properties_are_named() {
        // The column's type, its properties, and what the error says.
        type Case = (
            DataType,
            &'static [(&'static str, &'static str)],
            &'static str,
        );
        let cases: [Case; 14] = [
            (
                DataType::Int8,
                &[("max", "300")],
                "fields.c.max': 300 is out of range for Int8 (-128 to 127)",
            ),
            (DataType::Int8, &[("min", "x")], "'x' is not an integer"),
            (
                DataType::Int8,
                &[("min", "3"), ("max", "2")],
                "fields.c.min': 3 is above the maximum 2",
            ),
            (
                DataType::Int8,
                &[("kind", "zigzag")],
                "'zigzag' is not 'random' or 'sequence'",
            ),
            (
                DataType::Int8,
                &[("kind", "sequence")],
                "fields.c.start': is required for a 'sequence' column",
            ),
            (
                DataType::Int8,
                &[("kind", "sequence"), ("start", "1"), ("end", "200")],
                "fields.c.end': 200 does not fit Int8",
            ),
            (
                DataType::Int8,
                &[("kind", "sequence"), ("min", "1")],
                "fields.c.min': only applies to 'random' columns",
            ),
            (
                DataType::Int8,
                &[("start", "1")],
                "fields.c.start': only applies to 'sequence' columns",
            ),
            (
                DataType::Int8,
                &[("length", "3")],
                "fields.c.length': only applies to string columns",
            ),
            (
                DataType::Int8,
                &[("null-rate", "1.5")],
                "'1.5' is not a number from 0 to 1",
            ),
            (
                DataType::Utf8,
                &[("min", "1")],
                "fields.c.min': does not apply to string columns",
            ),
            (
                DataType::Boolean,
                &[("kind", "sequence"), ("start", "0"), ("end", "1")],
                "must be numeric or a string",
            ),
            (
                DataType::Date32,
                &[("min", "yesterday")],
                "'yesterday' is not a Date32",
            ),
            (
                DataType::Decimal128(4, 2),
                &[("kind", "sequence"), ("start", "0"), ("end", "100")],
                "100 does not fit Decimal128(4, 2)",
            ),
        ];
        for (data_type, properties, expected) in cases {
            let e = error(data_type, properties);
            assert!(e.contains(expected), "{properties:?}: {e}");
        }
        let e = error(DataType::Binary, &[]);
        assert!(
            e.contains("column 'c' is Binary, which datagen cannot generate"),
            "{e}"
        );
        let field = Arc::new(Field::new("id", DataType::Int32, false));
        let e =
            ColumnGenerator::try_new(0, &field, &[("null-rate", "0.1")].into_iter().collect(), 0)
                .expect_err("not null")
                .to_string();
        assert!(e.contains("column 'id' is NOT NULL"), "{e}");
    }
}
