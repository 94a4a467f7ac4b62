//! Inferring a CSV file's schema from its first records.

use arrow::array::timezone::Tz;
use arrow::compute::kernels::cast_utils::{Parser, string_to_datetime};
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int64Type, Schema, TimeUnit};

use super::CsvOptions;
use super::records::{Record, Splitter};
use crate::{Error, Result};

/// Infers the schema of a CSV file from its first `max_records` records
/// (the header not counted; see
/// [`DEFAULT_INFER_RECORDS`](crate::schema_string::DEFAULT_INFER_RECORDS)).
///
/// Each column gets the narrowest of `Boolean`, `Int64`, `Float64`,
/// `Date32`, `Timestamp(Microsecond, None)` that all its sampled non-null
/// values parse as (as the decoder parses them), else `Utf8`; a column with
/// no value is `Utf8`. Null values are as [`CsvOptions`] describes. Names
/// come from the header (an empty name becomes `column_<i>`, a repeated one
/// gets a `_2`, `_3`... suffix), or are `column_1`, `column_2`... without
/// one. Records with another number of fields than the first are skipped.
/// Every field is nullable.
///
/// # Errors
/// [`Error::Corrupt`] when the file has no record.
pub fn infer_schema(
    file: &str,
    bytes: &[u8],
    options: &CsvOptions,
    max_records: usize,
) -> Result<Schema> {
    let utc: Tz = "+00:00".parse()?;
    let mut splitter = Splitter::new(options);
    let first = splitter.next(bytes).ok_or_else(|| Error::Corrupt {
        file: file.to_string(),
        message: "no records to infer a schema from".to_string(),
    })?;
    let mut pos = first.consumed;
    let mut columns: Vec<Column> = vec![Column::default(); first.len()];
    let names: Vec<String> = if options.header {
        unique_names(
            first
                .fields()
                .map(|f| String::from_utf8_lossy(f).into_owned()),
        )
    } else {
        (1..=first.len()).map(|i| format!("column_{i}")).collect()
    };
    let mut sampled = 0;
    if !options.header && max_records > 0 {
        observe(&mut columns, &first, options, &utc);
        sampled += 1;
    }
    while sampled < max_records {
        let Some(record) = splitter.next(&bytes[pos..]) else {
            break;
        };
        pos += record.consumed;
        sampled += 1;
        if record.len() == columns.len() {
            observe(&mut columns, &record, options, &utc);
        }
    }
    let fields: Vec<Field> = names
        .into_iter()
        .zip(&columns)
        .map(|(name, column)| Field::new(name, column.data_type(), true))
        .collect();
    Ok(Schema::new(fields))
}

/// Narrows each column's candidate types by the record's values.
fn observe(columns: &mut [Column], record: &Record<'_>, options: &CsvOptions, utc: &Tz) {
    for (column, value) in columns.iter_mut().zip(record.fields()) {
        match std::str::from_utf8(value) {
            Ok(value) if is_null(value, options) => {}
            Ok(value) => {
                column.seen = true;
                column.narrow(value, utc);
            }
            Err(_) => {
                column.seen = true;
                column.candidates = 0;
            }
        }
    }
}

/// Whether the decoder reads `value` as null in a non-string column.
fn is_null(value: &str, options: &CsvOptions) -> bool {
    match &options.null_string {
        None => value.is_empty(),
        Some(null) => value == null,
    }
}

/// `names`, empty ones replaced by `column_<i>` and repeated ones suffixed.
fn unique_names(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut unique: Vec<String> = Vec::new();
    for (i, name) in names.enumerate() {
        let base = if name.trim().is_empty() {
            format!("column_{}", i + 1)
        } else {
            name
        };
        let mut candidate = base.clone();
        let mut suffix = 2;
        while unique.contains(&candidate) {
            candidate = format!("{base}_{suffix}");
            suffix += 1;
        }
        unique.push(candidate);
    }
    unique
}

const BOOLEAN: u8 = 1;
const INT64: u8 = 1 << 1;
const FLOAT64: u8 = 1 << 2;
const DATE32: u8 = 1 << 3;
const TIMESTAMP: u8 = 1 << 4;

/// The types a column's values so far all parse as.
#[derive(Clone, Copy)]
struct Column {
    /// A set of the type bits above.
    candidates: u8,
    /// Whether the column had a non-null value.
    seen: bool,
}

impl Default for Column {
    fn default() -> Self {
        Self {
            candidates: BOOLEAN | INT64 | FLOAT64 | DATE32 | TIMESTAMP,
            seen: false,
        }
    }
}

impl Column {
    fn narrow(&mut self, value: &str, utc: &Tz) {
        let mut parses = 0;
        if self.candidates & BOOLEAN != 0
            && (value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false"))
        {
            parses |= BOOLEAN;
        }
        if self.candidates & INT64 != 0 && Int64Type::parse(value).is_some() {
            parses |= INT64;
        }
        if self.candidates & FLOAT64 != 0 && Float64Type::parse(value).is_some() {
            parses |= FLOAT64;
        }
        // Arrow's date parser also takes a timestamp's date: only a date
        // alone makes a date column.
        if self.candidates & DATE32 != 0 && value.len() <= 10 && Date32Type::parse(value).is_some()
        {
            parses |= DATE32;
        }
        // The decoder reads a timestamp without time zone as UTC.
        if self.candidates & TIMESTAMP != 0 && string_to_datetime(utc, value).is_ok() {
            parses |= TIMESTAMP;
        }
        self.candidates &= parses;
    }

    fn data_type(&self) -> DataType {
        let narrowest = [
            (BOOLEAN, DataType::Boolean),
            (INT64, DataType::Int64),
            (FLOAT64, DataType::Float64),
            (DATE32, DataType::Date32),
            (TIMESTAMP, DataType::Timestamp(TimeUnit::Microsecond, None)),
        ]
        .into_iter()
        .find(|(bit, _)| self.seen && self.candidates & bit != 0);
        narrowest.map_or(DataType::Utf8, |(_, data_type)| data_type)
    }
}
