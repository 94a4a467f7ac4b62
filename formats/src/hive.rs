//! Hive-style partition directories: `key=value` path segments whose values
//! become columns.
//!
//! Values are escaped on write so that no value can leave the directory it
//! names: every byte outside `[A-Za-z0-9_-]` and a few harmless punctuation
//! marks is written as `%XX` (so `/`, `\`, `..`, NUL and `=` cannot appear
//! raw), and a value that starts with `.` or `_` is escaped too, so it is
//! never hidden from readers. A null or empty value is written as
//! `__HIVE_DEFAULT_PARTITION__`, as Hive and Spark do.

use std::sync::Arc;

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::ScalarValue;

use crate::{Error, Result};

/// The directory name of a null (or empty) partition value.
pub const DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Escapes a partition value for one path segment (see the module docs).
pub fn escape(value: Option<&str>) -> String {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return DEFAULT_PARTITION.to_string();
    };
    let mut out = String::with_capacity(value.len());
    for (i, byte) in value.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b' ' | b'+' | b',' | b'@')
            || (matches!(byte, b'_' | b'.') && i > 0);
        if plain {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The value a directory segment names: `None` for the default partition.
///
/// # Errors
/// When the escaped text does not decode to UTF-8.
pub fn unescape(segment: &str) -> std::result::Result<Option<String>, String> {
    if segment == DEFAULT_PARTITION {
        return Ok(None);
    }
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|v| Some(v.into_owned()))
        .map_err(|e| format!("partition value '{segment}' is not UTF-8 when decoded: {e}"))
}

/// The `key=value` pairs of a file's directories (relative to the table
/// root), outermost first; segments without `=` are ignored.
///
/// # Errors
/// When a value does not decode.
pub fn parse_segments(dirs: &[&str]) -> std::result::Result<PartitionPairs, String> {
    dirs.iter()
        .filter_map(|segment| segment.split_once('='))
        .map(|(key, value)| Ok((key.to_string(), unescape(value)?)))
        .collect()
}

/// The `key=value` pairs of one file's directories (a `None` value is the
/// default partition).
pub type PartitionPairs = Vec<(String, Option<String>)>;

/// The partition columns of a table: their names, types, and every file's
/// values.
#[derive(Debug, Clone)]
pub struct PartitionColumns {
    schema: SchemaRef,
}

impl PartitionColumns {
    /// Infers the partition columns from every file's `key=value` pairs:
    /// every file must name the same keys in the same order. A column whose
    /// values all parse as integers is `Int64`, otherwise `Utf8`.
    ///
    /// # Errors
    /// [`Error::SchemaMismatch`] naming two files whose keys disagree.
    pub fn infer(files: &[(String, PartitionPairs)]) -> Result<Self> {
        let Some((first_file, first)) = files.first() else {
            return Ok(Self {
                schema: Arc::new(Schema::empty()),
            });
        };
        let keys: Vec<&str> = first.iter().map(|(k, _)| k.as_str()).collect();
        for (file, pairs) in files {
            let these: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            if these != keys {
                return Err(Error::SchemaMismatch {
                    message: format!(
                        "partition directories disagree: '{first_file}' has [{}] but '{file}' has [{}]",
                        keys.join(", "),
                        these.join(", ")
                    ),
                });
            }
        }
        let fields: Vec<Field> = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let integers = files.iter().all(|(_, pairs)| {
                    pairs[i]
                        .1
                        .as_deref()
                        .is_none_or(|v| v.parse::<i64>().is_ok())
                });
                let data_type = if integers {
                    DataType::Int64
                } else {
                    DataType::Utf8
                };
                Field::new(*key, data_type, true)
            })
            .collect();
        Ok(Self {
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The partition columns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether the table has partition columns.
    pub fn is_empty(&self) -> bool {
        self.schema.fields().is_empty()
    }

    /// One file's values, typed as the columns.
    ///
    /// # Errors
    /// When a value does not parse as its column's type.
    pub fn values(&self, pairs: &[(String, Option<String>)]) -> Result<Vec<ScalarValue>> {
        self.schema
            .fields()
            .iter()
            .zip(pairs)
            .map(|(field, (_, value))| {
                let text = ScalarValue::Utf8(value.clone());
                text.cast_to(field.data_type())
                    .map_err(|e| Error::SchemaMismatch {
                        message: format!("partition value {text} of '{}': {e}", field.name()),
                    })
            })
            .collect()
    }
}

/// Columns of `rows` rows holding one partition value each.
///
/// # Errors
/// When a value cannot be repeated into an array.
pub fn constant_columns(values: &[ScalarValue], rows: usize) -> Result<Vec<ArrayRef>> {
    values
        .iter()
        .map(|v| {
            if v.is_null() {
                Ok(new_null_array(&v.data_type(), rows))
            } else {
                v.to_array_of_size(rows).map_err(|e| Error::SchemaMismatch {
                    message: format!("partition value {v}: {e}"),
                })
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaped_values_stay_one_plain_segment_and_round_trip() {
        let hostile = [
            "..",
            ".",
            "../../etc",
            "/abs/path",
            "a/b",
            "a\\b",
            "nul\0byte",
            "k=v",
            "%2F",
            "_hidden",
            ".hidden",
            "ünïcode",
            "tab\there",
            "new\nline",
            "C:\\x",
        ];
        for value in hostile {
            let segment = escape(Some(value));
            assert!(
                !segment.contains(['/', '\\', '\0', '=', '\n', '\t']),
                "{segment}"
            );
            assert!(!segment.starts_with(['.', '_']), "{segment}");
            assert_ne!(segment, "..");
            assert_eq!(unescape(&segment).expect("decodes").as_deref(), Some(value));
        }
        assert_eq!(escape(Some("2024-01-01")), "2024-01-01");
        assert_eq!(escape(None), DEFAULT_PARTITION);
        assert_eq!(escape(Some("")), DEFAULT_PARTITION);
        assert_eq!(unescape(DEFAULT_PARTITION).expect("decodes"), None);
    }

    #[test]
    fn partition_columns_are_typed_from_every_file() {
        let files = vec![
            (
                "a".to_string(),
                parse_segments(&["year=2024", "city=Paris"]).expect("parse"),
            ),
            (
                "b".to_string(),
                parse_segments(&["year=__HIVE_DEFAULT_PARTITION__", "city=New%20York"])
                    .expect("parse"),
            ),
        ];
        let columns = PartitionColumns::infer(&files).expect("infer");
        assert_eq!(columns.schema().field(0).data_type(), &DataType::Int64);
        assert_eq!(columns.schema().field(1).data_type(), &DataType::Utf8);
        let values = columns.values(&files[1].1).expect("values");
        assert_eq!(values[0], ScalarValue::Int64(None));
        assert_eq!(values[1], ScalarValue::Utf8(Some("New York".to_string())));
    }

    #[test]
    fn files_with_different_keys_are_named() {
        let files = vec![
            (
                "x/a".to_string(),
                parse_segments(&["year=1"]).expect("parse"),
            ),
            (
                "y/b".to_string(),
                parse_segments(&["month=1"]).expect("parse"),
            ),
        ];
        let e = PartitionColumns::infer(&files)
            .expect_err("mismatch")
            .to_string();
        assert!(
            e.contains("'x/a'") && e.contains("'y/b'") && e.contains("month"),
            "{e}"
        );
    }
}
