//! Which of a table's columns a message's key holds and which its value
//! holds, and in which formats (`format` / `value.format`, `key.format`,
//! `key.fields`, `value.fields-include`): what sources and sinks share.

use arrow::datatypes::{DataType, Field, Schema};
use weir_engine::registry::ConnectorOptions;

use super::format::FORMATS;
use super::options::{invalid, text};
use crate::csv::CsvOptions;
use crate::{Error, Result};

/// A format: its name, the option that named it, and the prefix of its
/// own options (`key.`, `value.` or none).
#[derive(Debug, Clone)]
pub struct FormatChoice {
    /// The option naming it (`format`, `value.format`, `key.format`).
    pub option: &'static str,
    /// Its name.
    pub name: String,
    /// The prefix of its options.
    pub prefix: &'static str,
}

impl FormatChoice {
    /// Format `name` as option `format` names it, for the whole message.
    pub fn plain(name: &str) -> Self {
        Self {
            option: "format",
            name: name.to_string(),
            prefix: "",
        }
    }
}

/// How columns split between keys and values.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The value's format.
    pub value: FormatChoice,
    /// The key's format, when the key holds columns.
    pub key: Option<FormatChoice>,
    /// The columns the key holds, by index into the columns given.
    pub key_columns: Vec<usize>,
    /// The columns the value holds, by index into the columns given.
    pub value_columns: Vec<usize>,
}

impl Layout {
    /// The option names this reads.
    pub const OPTION_NAMES: &'static [&'static str] = &[
        "format",
        "value.format",
        "key.format",
        "key.fields",
        "value.fields-include",
        "csv.*",
        "key.csv.*",
        "value.csv.*",
        "avro.schema",
        "key.avro.schema",
        "value.avro.schema",
    ];

    /// The layout `options` give `columns` (the table's data columns).
    ///
    /// # Errors
    /// [`Error::Option`] naming a missing, conflicting or invalid option.
    pub fn new(columns: &[&Field], options: &ConnectorOptions) -> Result<Self> {
        let value = match (text(options, "format"), text(options, "value.format")) {
            (Some(_), Some(_)) => {
                return Err(Error::Option {
                    option: "value.format".to_string(),
                    message: "give either 'format' or 'value.format', not both".to_string(),
                });
            }
            (Some(name), None) => FormatChoice {
                option: "format",
                name: name.to_string(),
                prefix: "",
            },
            (None, Some(name)) => FormatChoice {
                option: "value.format",
                name: name.to_string(),
                prefix: "value.",
            },
            (None, None) => {
                return Err(Error::Option {
                    option: "format".to_string(),
                    message: format!("is required: the messages' format ({FORMATS})"),
                });
            }
        };
        let key_columns = text(options, "key.fields")
            .map(|list| {
                list.split(';')
                    .map(str::trim)
                    .filter(|f| !f.is_empty())
                    .map(|name| {
                        columns
                            .iter()
                            .position(|c| c.name() == name)
                            .ok_or_else(|| Error::Option {
                                option: "key.fields".to_string(),
                                message: format!("'{name}' is not a declared (physical) column"),
                            })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?
            .unwrap_or_default();
        let key = match (text(options, "key.format"), key_columns.is_empty()) {
            (Some(_), true) => {
                return Err(Error::Option {
                    option: "key.fields".to_string(),
                    message: "is required with 'key.format': the columns the key holds".to_string(),
                });
            }
            (None, false) => {
                return Err(Error::Option {
                    option: "key.format".to_string(),
                    message: "is required with 'key.fields'".to_string(),
                });
            }
            (None, true) => None,
            (Some(name), false) => Some(FormatChoice {
                option: "key.format",
                name: name.to_string(),
                prefix: "key.",
            }),
        };
        let except_key = match text(options, "value.fields-include").unwrap_or("ALL") {
            "ALL" => false,
            "EXCEPT_KEY" if key.is_some() => true,
            "EXCEPT_KEY" => {
                return Err(Error::Option {
                    option: "value.fields-include".to_string(),
                    message: "'EXCEPT_KEY' needs 'key.format' and 'key.fields'".to_string(),
                });
            }
            other => return Err(invalid("value.fields-include", other, "ALL, EXCEPT_KEY")),
        };
        let value_columns = (0..columns.len())
            .filter(|c| !(except_key && key_columns.contains(c)))
            .collect();
        Ok(Self {
            value,
            key,
            key_columns,
            value_columns,
        })
    }
}

/// The schema of `columns` at `indices`.
pub fn schema_of(columns: &[&Field], indices: &[usize]) -> Schema {
    Schema::new(
        indices
            .iter()
            .map(|&i| columns[i].clone())
            .collect::<Vec<_>>(),
    )
}

/// The CSV dialect of a key or value: the `csv.*` options after `prefix`.
/// A message is one record: no header, no comment lines.
///
/// # Errors
/// [`Error::Option`] for an invalid dialect, a header or a comment.
pub fn message_csv_options(options: &ConnectorOptions, prefix: &str) -> Result<CsvOptions> {
    let own: ConnectorOptions = options
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
        .collect();
    let mut csv = CsvOptions::from_options(&own)?;
    if own.contains_key("csv.header") || csv.comment.is_some() {
        return Err(Error::Option {
            option: format!("{prefix}csv.header"),
            message: "a Kafka message is one CSV record: no header or comment lines".to_string(),
        });
    }
    csv.header = false;
    Ok(csv)
}

/// Checks that `schema` is one BYTES or STRING column, as the `raw` format
/// (named by `option`) holds.
///
/// # Errors
/// [`Error::Option`] naming the columns otherwise.
pub fn check_raw(option: &str, schema: &Schema) -> Result<DataType> {
    match schema.fields().as_ref() {
        [field] if matches!(field.data_type(), DataType::Binary | DataType::Utf8) => {
            Ok(field.data_type().clone())
        }
        fields => Err(Error::Option {
            option: option.to_string(),
            message: format!(
                "the 'raw' format holds one BYTES or STRING column, not {}",
                fields
                    .iter()
                    .map(|f| format!("{} {}", f.name(), f.data_type()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}
