//! How rows become message keys and values: `json`, `csv` or `raw`, one
//! row per message.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Schema};
use weir_engine::registry::ConnectorOptions;

use super::avro::AvroCodec;
use super::format::FORMATS;
use super::layout::{FormatChoice, check_raw, message_csv_options};
use super::options::invalid;
use crate::Result;
use crate::csv::{CsvEncoder, CsvOptions};
use crate::json::JsonEncoder;

/// Encodes rows into message payloads.
#[derive(Debug, Clone)]
pub enum MessageEncoder {
    /// One JSON object per row, null fields left out.
    Json,
    /// One CSV record per row (no header).
    Csv(CsvOptions),
    /// The one BYTES or STRING column, as it is.
    Raw,
    /// One Avro datum per row.
    Avro(AvroCodec),
}

impl MessageEncoder {
    /// The format `choice` names for rows of `schema`, with its options
    /// (those in `options` that start with its prefix, without it).
    ///
    /// # Errors
    /// [`Error::Option`] for an unknown format, options it refuses, or
    /// columns it cannot write.
    pub fn new(choice: &FormatChoice, schema: &Schema, options: &ConnectorOptions) -> Result<Self> {
        let FormatChoice {
            option,
            name,
            prefix,
        } = choice;
        match name.trim() {
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv(message_csv_options(options, prefix)?)),
            "raw" => {
                check_raw(option, schema)?;
                Ok(Self::Raw)
            }
            "avro" => Ok(Self::Avro(AvroCodec::new(schema, options, prefix)?)),
            other => Err(invalid(option, other, FORMATS)),
        }
    }

    /// The payload of each row of `batch`, in order (`None` for a null raw
    /// value).
    ///
    /// # Errors
    /// When a column cannot be encoded.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        match self {
            Self::Json => {
                let mut text = Vec::new();
                JsonEncoder::new().encode(batch, &mut text)?;
                Ok(split_lines(&text, batch.num_rows()))
            }
            Self::Csv(options) => {
                if !has_line_breaks(batch) {
                    let mut text = Vec::new();
                    CsvEncoder::new(options.clone()).encode(batch, &mut text)?;
                    return Ok(split_lines(&text, batch.num_rows()));
                }
                // Quoted line breaks: one record at a time.
                (0..batch.num_rows())
                    .map(|row| {
                        let mut text = Vec::new();
                        CsvEncoder::new(options.clone()).encode(&batch.slice(row, 1), &mut text)?;
                        trim_line_end(&mut text);
                        Ok(Some(text))
                    })
                    .collect()
            }
            Self::Avro(codec) => codec.encode(batch),
            Self::Raw => {
                let column = batch.column(0);
                Ok(match column.data_type() {
                    DataType::Utf8 => column
                        .as_string::<i32>()
                        .iter()
                        .map(|v| v.map(|v| v.as_bytes().to_vec()))
                        .collect(),
                    _ => column
                        .as_binary::<i32>()
                        .iter()
                        .map(|v| v.map(<[u8]>::to_vec))
                        .collect(),
                })
            }
        }
    }
}

/// Whether a string column of `batch` holds a line break.
fn has_line_breaks(batch: &RecordBatch) -> bool {
    batch
        .columns()
        .iter()
        .any(|column| match column.data_type() {
            DataType::Utf8 => column
                .as_string::<i32>()
                .values()
                .iter()
                .any(|b| matches!(b, b'\n' | b'\r')),
            _ => false,
        })
}

/// The `rows` lines of `text`, without their line ends.
fn split_lines(text: &[u8], rows: usize) -> Vec<Option<Vec<u8>>> {
    let mut lines: Vec<Option<Vec<u8>>> = text
        .split(|b| *b == b'\n')
        .take(rows)
        .map(|line| {
            let mut line = line.to_vec();
            trim_line_end(&mut line);
            Some(line)
        })
        .collect();
    lines.resize(rows, None);
    lines
}

fn trim_line_end(line: &mut Vec<u8>) {
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
}

/// A batch of `schema`'s columns at `columns` of `batch`.
///
/// # Errors
/// When the columns do not fit the schema.
pub fn project(
    batch: &RecordBatch,
    columns: &[usize],
    schema: &Arc<Schema>,
) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        Arc::clone(schema),
        columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect(),
    )?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::Field;

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
                Arc::new(StringArray::from(vec![Some("a"), Some("b\nc"), None])),
            ],
        )
        .unwrap()
    }

    fn text(payloads: Vec<Option<Vec<u8>>>) -> Vec<String> {
        payloads
            .into_iter()
            .map(|p| String::from_utf8(p.unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn one_payload_per_row() {
        let batch = batch();
        let json = MessageEncoder::Json.encode(&batch).unwrap();
        assert_eq!(
            text(json),
            vec![
                r#"{"id":1,"name":"a"}"#,
                r#"{"name":"b\nc"}"#,
                r#"{"id":3}"#
            ]
        );
        let csv = MessageEncoder::new(
            &FormatChoice::plain("csv"),
            &batch.schema(),
            &ConnectorOptions::new(),
        )
        .unwrap();
        assert_eq!(
            text(csv.encode(&batch).unwrap()),
            vec!["1,a", ",\"b\nc\"", "3,"]
        );
    }
}
