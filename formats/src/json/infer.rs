//! Inferring a JSON-lines file's schema from its first lines.

use arrow::datatypes::{DataType, Field, Schema};
use arrow::json::reader::infer_json_schema_from_iterator;
use serde_json::Value;

use super::lines::Lines;
use crate::{Error, Result};

/// Infers the schema of a JSON-lines file from its first `max_records`
/// non-blank lines (see
/// [`DEFAULT_INFER_RECORDS`](crate::schema_string::DEFAULT_INFER_RECORDS)):
/// the union of their objects' fields, in order of first appearance, typed
/// as arrow's JSON inference does (`Int64`, `Float64`, `Boolean`, `Utf8`,
/// lists and structs). A field that is null in every sampled line is
/// `Utf8`. Lines that are not JSON objects are skipped (the decoder treats
/// them as bad records). Every field is nullable.
///
/// # Errors
/// [`Error::Corrupt`] when no sampled line is a JSON object, or when the
/// objects disagree on a field's type in a way arrow cannot merge.
pub fn infer_schema(file: &str, bytes: &[u8], max_records: usize) -> Result<Schema> {
    let objects: Vec<Value> = Lines::new(bytes)
        .take(max_records)
        .filter_map(|line| serde_json::from_slice::<Value>(&bytes[line.start..line.end]).ok())
        .filter(Value::is_object)
        .collect();
    let corrupt = |message: String| Error::Corrupt {
        file: file.to_string(),
        message,
    };
    if objects.is_empty() {
        return Err(corrupt(format!(
            "no JSON object in the first {max_records} lines to infer a schema from"
        )));
    }
    let inferred = infer_json_schema_from_iterator(objects.iter().map(Ok))
        .map_err(|e| corrupt(format!("cannot infer a schema: {e}")))?;
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|field| {
            let data_type = match field.data_type() {
                DataType::Null => DataType::Utf8,
                other => other.clone(),
            };
            Field::new(field.name(), data_type, true)
        })
        .collect();
    Ok(Schema::new(fields))
}
