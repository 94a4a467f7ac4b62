//! The formats of message keys and values: `json`, `csv` and `raw`, each
//! decoding one message into one row.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use weir_engine::registry::ConnectorOptions;

use super::avro::AvroCodec;
use super::layout::{FormatChoice, check_raw, message_csv_options};
use super::options::invalid;
use crate::Result;
use crate::bad_records::{BadRecords, Decoded};
use crate::csv::CsvDecoder;
use crate::json::JsonDecoder;
use crate::schema_string::nullable;

/// The formats a key or value can have.
pub const FORMATS: &str = "json, csv, raw, avro";

/// How the bytes of one message (its key or its value) become one row.
#[derive(Debug)]
pub enum MessageFormat {
    /// One JSON object per message.
    Json(JsonDecoder),
    /// One CSV record per message (no header).
    Csv(CsvDecoder),
    /// The bytes as they are, as one BYTES or STRING column.
    Raw(DataType),
    /// One Avro datum per message.
    Avro(AvroCodec),
}

/// The rows decoded from the messages of a block.
#[derive(Debug)]
pub struct Rows {
    /// The rows, in message order.
    pub batch: RecordBatch,
    /// The message (index into the block) of each row.
    pub messages: Vec<u32>,
    /// The messages that could not be decoded, with the reason.
    pub bad: Vec<(u32, String)>,
}

impl MessageFormat {
    /// The format `choice` names, producing `schema`'s columns, with its
    /// own options: those in `options` that start with its prefix (`key.`,
    /// `value.` or nothing), without it.
    ///
    /// # Errors
    /// [`Error::Option`] for an unknown format, options it refuses, or
    /// columns it cannot produce.
    pub fn new(choice: &FormatChoice, schema: &Schema, options: &ConnectorOptions) -> Result<Self> {
        let FormatChoice {
            option,
            name,
            prefix,
        } = choice;
        match name.trim() {
            "json" => Ok(Self::Json(JsonDecoder::try_new(
                schema,
                BadRecords::DeadLetter,
            )?)),
            "csv" => Ok(Self::Csv(CsvDecoder::try_new(
                schema,
                message_csv_options(options, prefix)?,
                BadRecords::DeadLetter,
            )?)),
            "raw" => Ok(Self::Raw(check_raw(option, schema)?)),
            "avro" => Ok(Self::Avro(AvroCodec::new(schema, options, prefix)?)),
            other => Err(invalid(option, other, FORMATS)),
        }
    }

    /// The schema of the rows decoded.
    pub fn schema(&self, declared: &Schema) -> SchemaRef {
        nullable(declared)
    }

    /// Decodes each message of `payloads` into one row. A null payload (a
    /// tombstone) gives no row in `json` and `csv` and a null in `raw`.
    ///
    /// # Errors
    /// When arrow cannot assemble the rows.
    pub fn decode(&self, schema: &SchemaRef, payloads: &BinaryArray) -> Result<Rows> {
        match self {
            Self::Json(decoder) => {
                decode_lines(schema, payloads, true, |bytes| decoder.decode("", bytes))
            }
            Self::Csv(decoder) => {
                decode_lines(schema, payloads, false, |bytes| decoder.decode("", bytes))
            }
            Self::Raw(data_type) => decode_raw(schema, data_type, payloads),
            Self::Avro(codec) => codec.decode(schema, payloads),
        }
    }
}

/// Decodes messages as lines of a text format: joined by line breaks and
/// decoded together, the good rows mapped back to their messages by line.
/// Line breaks inside a message are blanks in JSON (`blank_breaks`); in
/// CSV they may be data, so such a message is decoded on its own.
fn decode_lines(
    schema: &SchemaRef,
    payloads: &BinaryArray,
    blank_breaks: bool,
    decode: impl Fn(&[u8]) -> Result<Decoded>,
) -> Result<Rows> {
    let mut rows = Rows {
        batch: RecordBatch::new_empty(Arc::clone(schema)),
        messages: Vec::new(),
        bad: Vec::new(),
    };
    let mut parts = Vec::new();
    let mut lines = Lines::default();
    for (message, payload) in (0..).zip(payloads.iter()) {
        let Some(payload) = payload else { continue };
        if payload.iter().all(u8::is_ascii_whitespace) {
            rows.bad.push((message, "empty message".to_string()));
            continue;
        }
        let breaks = payload.iter().any(|b| matches!(b, b'\n' | b'\r'));
        if breaks && !blank_breaks {
            // Decoded alone, after the lines before it: one message, one
            // record.
            lines.decode(&decode, &mut rows, &mut parts)?;
            let decoded = decode(payload)?;
            match (decoded.rows(), decoded.dead_letters.first()) {
                (_, Some(bad)) => rows.bad.push((message, bad.reason.clone())),
                (1, None) => {
                    rows.messages.push(message);
                    parts.extend(decoded.batches);
                }
                (n, None) => rows
                    .bad
                    .push((message, format!("holds {n} records, not one"))),
            }
            continue;
        }
        lines.text.extend(
            payload
                .iter()
                .map(|&b| if matches!(b, b'\n' | b'\r') { b' ' } else { b }),
        );
        lines.text.push(b'\n');
        lines.messages.push(message);
    }
    lines.decode(&decode, &mut rows, &mut parts)?;
    rows.bad.sort_by_key(|(message, _)| *message);
    rows.batch = concat_batches(schema, &parts)?;
    Ok(rows)
}

/// Messages joined as lines, to be decoded together.
#[derive(Default)]
struct Lines {
    text: Vec<u8>,
    /// The message on each line.
    messages: Vec<u32>,
}

impl Lines {
    /// Decodes the lines so far into `rows` and `parts`, and starts anew.
    fn decode(
        &mut self,
        decode: &impl Fn(&[u8]) -> Result<Decoded>,
        rows: &mut Rows,
        parts: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let decoded = decode(&self.text)?;
        let mut bad = decoded.dead_letters.iter().peekable();
        for (line, &message) in (1..).zip(&self.messages) {
            match bad.next_if(|b| b.line == line) {
                Some(record) => rows.bad.push((message, record.reason.clone())),
                None => rows.messages.push(message),
            }
        }
        parts.extend(decoded.batches);
        self.text.clear();
        self.messages.clear();
        Ok(())
    }
}

/// The payloads as one BYTES or STRING column; a STRING payload that is
/// not UTF-8 is bad.
fn decode_raw(schema: &SchemaRef, data_type: &DataType, payloads: &BinaryArray) -> Result<Rows> {
    let mut bad = Vec::new();
    let column: ArrayRef = match data_type {
        DataType::Utf8 => {
            let mut kept = Vec::with_capacity(payloads.len());
            let mut messages = Vec::with_capacity(payloads.len());
            for (message, payload) in (0..).zip(payloads.iter()) {
                match payload.map(std::str::from_utf8) {
                    None => kept.push(None),
                    Some(Ok(text)) => kept.push(Some(text)),
                    Some(Err(e)) => {
                        bad.push((message, format!("not UTF-8: {e}")));
                        continue;
                    }
                }
                messages.push(message);
            }
            let column = Arc::new(StringArray::from(kept));
            return Ok(Rows {
                batch: RecordBatch::try_new(Arc::clone(schema), vec![column])?,
                messages,
                bad,
            });
        }
        _ => Arc::new(payloads.clone()),
    };
    Ok(Rows {
        batch: RecordBatch::try_new(Arc::clone(schema), vec![column])?,
        messages: (0..payloads.len() as u32).collect(),
        bad,
    })
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{Field, Int64Type};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])
    }

    fn payloads(values: &[Option<&str>]) -> BinaryArray {
        values.iter().map(|v| v.map(str::as_bytes)).collect()
    }

    fn decode(format: &str, values: &[Option<&str>]) -> Rows {
        let schema = schema();
        let format = MessageFormat::new(
            &FormatChoice::plain(format),
            &schema,
            &ConnectorOptions::new(),
        )
        .unwrap();
        format
            .decode(&format.schema(&schema), &payloads(values))
            .unwrap()
    }

    #[test]
    fn json_rows_map_back_to_their_messages() {
        let rows = decode(
            "json",
            &[
                Some(r#"{"id": 1, "name": "a"}"#),
                None,
                Some("{\"id\":\n 2}"),
                Some("{not json"),
                Some("  "),
                Some(r#"{"id": 4, "name": "d"}"#),
            ],
        );
        assert_eq!(rows.messages, vec![0, 2, 5]);
        let ids: &Int64Array = rows.batch.column(0).as_primitive::<Int64Type>();
        assert_eq!(ids.values(), &[1, 2, 4]);
        let bad: Vec<u32> = rows.bad.iter().map(|(m, _)| *m).collect();
        assert_eq!(bad, vec![3, 4]);
        assert_eq!(rows.bad[1].1, "empty message");
    }

    #[test]
    fn csv_records_with_line_breaks_are_decoded_alone() {
        let rows = decode(
            "csv",
            &[
                Some("1,a"),
                Some("2,\"two\nlines\""),
                Some("x,b"),
                Some("3,c\n4,d"),
                Some("5,e"),
            ],
        );
        assert_eq!(rows.messages, vec![0, 1, 4]);
        let names = rows.batch.column(1).as_string::<i32>();
        assert_eq!(names.value(1), "two\nlines");
        assert_eq!(names.value(2), "e");
        assert_eq!(rows.bad.len(), 2);
        assert!(rows.bad[1].1.contains("holds 2 records"), "{:?}", rows.bad);
    }

    #[test]
    fn raw_keeps_bytes_and_checks_text() {
        let schema = Schema::new(vec![Field::new("line", DataType::Utf8, true)]);
        let format = MessageFormat::new(
            &FormatChoice::plain("raw"),
            &schema,
            &ConnectorOptions::new(),
        )
        .unwrap();
        let values: BinaryArray = vec![Some(&b"a"[..]), None, Some(&b"\xff"[..])]
            .into_iter()
            .collect();
        let rows = format.decode(&format.schema(&schema), &values).unwrap();
        assert_eq!(rows.messages, vec![0, 1]);
        assert_eq!(rows.batch.column(0).null_count(), 1);
        assert_eq!(rows.bad[0].0, 2);
        let e = MessageFormat::new(
            &FormatChoice::plain("raw"),
            &self::schema(),
            &ConnectorOptions::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("one BYTES or STRING column"), "{e}");
        let e = MessageFormat::new(
            &FormatChoice::plain("avro2"),
            &schema,
            &ConnectorOptions::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("invalid value 'avro2'"), "{e}");
    }
}
