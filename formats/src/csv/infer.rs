//! Inferring a CSV file's schema from its first records.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

use super::CsvOptions;
use super::records::{Record, Splitter};
use super::values::ValueType;
use crate::{Error, Result};

/// The types a column can be inferred as, narrowest first (`Utf8` when
/// none fits).
const CANDIDATES: [DataType; 5] = [
    DataType::Boolean,
    DataType::Int64,
    DataType::Float64,
    DataType::Date32,
    DataType::Timestamp(TimeUnit::Microsecond, None),
];

/// Infers the schema of a CSV file from its first `max_records` records
/// (the header not counted; see
/// [`DEFAULT_INFER_RECORDS`](crate::schema_string::DEFAULT_INFER_RECORDS)).
///
/// Each column gets the narrowest of `Boolean`, `Int64`, `Float64`,
/// `Date32`, `Timestamp(Microsecond, None)` that all its sampled non-null
/// values parse as (as the decoder parses them; a date column holds dates
/// alone), else `Utf8`; a column with no value is `Utf8`. Null values are
/// as [`CsvOptions`] describes for non-string columns. Names come from the
/// header (an empty name becomes `column_<i>`, a repeated one gets a `_2`,
/// `_3`... suffix), or are `column_1`, `column_2`... without one. Records
/// with another number of fields than the first are skipped. Every field is
/// nullable.
///
/// # Errors
/// [`Error::Corrupt`] when the file has no record.
pub fn infer_schema(
    file: &str,
    bytes: &[u8],
    options: &CsvOptions,
    max_records: usize,
) -> Result<Schema> {
    let corrupt = |message: String| Error::Corrupt {
        file: file.to_string(),
        message,
    };
    let value_types = CANDIDATES
        .iter()
        .map(ValueType::of)
        .collect::<Result<Vec<_>, String>>()
        .map_err(corrupt)?;
    let mut splitter = Splitter::new(options);
    let first = splitter
        .next(bytes)
        .ok_or_else(|| corrupt("no records to infer a schema from".to_string()))?;
    let mut pos = first.consumed;
    let mut columns = vec![Column::default(); first.len()];
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
        observe(&mut columns, &first, options, &value_types);
        sampled += 1;
    }
    while sampled < max_records {
        let Some(record) = splitter.next(&bytes[pos..]) else {
            break;
        };
        pos += record.consumed;
        sampled += 1;
        if record.len() == columns.len() {
            observe(&mut columns, &record, options, &value_types);
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
fn observe(
    columns: &mut [Column],
    record: &Record<'_>,
    options: &CsvOptions,
    value_types: &[ValueType],
) {
    for (column, value) in columns.iter_mut().zip(record.fields()) {
        match std::str::from_utf8(value) {
            Ok(value) if options.is_null(value) => {}
            Ok(value) => column.narrow(value, value_types),
            Err(_) => column.narrow_to_text(),
        }
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

/// The candidates a column's values so far all parse as.
#[derive(Clone, Copy)]
struct Column {
    /// Bit `i` stands for `CANDIDATES[i]`.
    candidates: u8,
    /// Whether the column had a non-null value.
    seen: bool,
}

impl Default for Column {
    fn default() -> Self {
        Self {
            candidates: (1 << CANDIDATES.len()) - 1,
            seen: false,
        }
    }
}

impl Column {
    fn narrow(&mut self, value: &str, value_types: &[ValueType]) {
        self.seen = true;
        for (i, (data_type, value_type)) in CANDIDATES.iter().zip(value_types).enumerate() {
            // Arrow's date parser also takes a timestamp's date: only a date
            // alone makes a date column.
            let fits = value_type.parses(value)
                && (*data_type != DataType::Date32 || value.len() <= "yyyy-mm-dd".len());
            if !fits {
                self.candidates &= !(1 << i);
            }
        }
    }

    fn narrow_to_text(&mut self) {
        self.seen = true;
        self.candidates = 0;
    }

    fn data_type(&self) -> DataType {
        let narrowest = CANDIDATES
            .iter()
            .enumerate()
            .find(|(i, _)| self.seen && self.candidates & (1 << i) != 0);
        narrowest.map_or(DataType::Utf8, |(_, data_type)| data_type.clone())
    }
}
