//! Decoding CSV bytes into record batches.
//!
//! The normal path is arrow's vectorised CSV decoder, a batch at a time.
//! When a batch fails (a record with the wrong number of fields, a value
//! that does not parse, invalid UTF-8), the decoder splits that batch's
//! records with the same dialect and checks their fields (count, UTF-8, and
//! values with arrow's parsers, arrow having the last word), then decodes
//! the others in groups halved until they decode. It keeps the good records
//! in order and hands the bad ones to the [`BadRecords`] policy with their
//! line and reason, then goes back to the normal path.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::csv::ReaderBuilder;
use arrow::csv::reader::Decoder;
use arrow::datatypes::{DataType, Schema, SchemaRef};
use arrow::error::ArrowError;
use regex::Regex;
use weir_engine::operator::OUTPUT_BATCH_ROWS;

use super::CsvOptions;
use super::records::{Lines, Record, Splitter};
use super::values::ValueType;
use crate::bad_records::{BadRecords, Decoded};
use crate::schema_string::nullable;
use crate::separate::separate;
use crate::{Error, Result};

/// Decodes the bytes of CSV files with a known schema.
///
/// Columns are matched by position; the header's names are not checked.
/// Every output column is nullable. Values are parsed as arrow's CSV reader
/// does: booleans `true`/`false` (any case), dates `YYYY-MM-DD`, timestamps
/// RFC 3339 or `YYYY-MM-DD hh:mm:ss[.f]` (in the column's time zone when it
/// has none), decimals with at most the column's scale.
#[derive(Debug, Clone)]
pub struct CsvDecoder {
    /// The file's columns, all nullable.
    schema: SchemaRef,
    /// The columns to produce, by index into `schema`.
    projection: Option<Vec<usize>>,
    /// The schema of the batches produced.
    output: SchemaRef,
    /// How each produced column's values parse (`None`: every value does,
    /// or the column is not produced).
    value_types: Vec<Option<ValueType>>,
    options: CsvOptions,
    /// Matches the null string, when it is set and not empty (arrow's
    /// default matches the empty string).
    null_regex: Option<Regex>,
    policy: BadRecords,
    batch_size: usize,
}

impl CsvDecoder {
    /// A decoder of files with `schema`'s columns in `options`' dialect,
    /// handling bad records by `policy`.
    ///
    /// # Errors
    /// [`Error::Option`] when a column's type cannot be read from CSV (a
    /// nested or binary type) or its time zone is invalid.
    pub fn try_new(schema: &Schema, options: CsvOptions, policy: BadRecords) -> Result<Self> {
        let value_types = schema
            .fields()
            .iter()
            .map(|field| match ValueType::of(field.data_type()) {
                Ok(ValueType::Text) => Ok(None),
                Ok(value_type) => Ok(Some(value_type)),
                Err(message) => Err(Error::Option {
                    option: "schema".to_string(),
                    message: format!("column '{}': {message}", field.name()),
                }),
            })
            .collect::<Result<Vec<_>>>()?;
        let null_regex = match options.null_string.as_deref() {
            None | Some("") => None,
            Some(null) => Some(
                Regex::new(&format!("^{}$", regex::escape(null))).map_err(|e| Error::Option {
                    option: "csv.null-string".to_string(),
                    message: e.to_string(),
                })?,
            ),
        };
        let schema = nullable(schema);
        Ok(Self {
            output: Arc::clone(&schema),
            schema,
            projection: None,
            value_types,
            options,
            null_regex,
            policy,
            batch_size: OUTPUT_BATCH_ROWS,
        })
    }

    /// Produces only the columns at `projection` (indexes into the schema),
    /// in that order. Values of the other columns are not parsed, so they
    /// cannot make a record bad; every record still needs all the fields,
    /// in UTF-8.
    ///
    /// # Errors
    /// When an index is out of range.
    pub fn with_projection(mut self, projection: Vec<usize>) -> Result<Self> {
        self.output = Arc::new(self.schema.project(&projection)?);
        for (column, value_type) in self.value_types.iter_mut().enumerate() {
            if !projection.contains(&column) {
                *value_type = None;
            }
        }
        self.projection = Some(projection);
        Ok(self)
    }

    /// Produces batches of at most `rows` rows (default 8192).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// The schema of the batches produced.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.output)
    }

    /// Decodes the whole of a file's `bytes` (header included when the
    /// dialect has one). `file` names the file in bad records and errors.
    ///
    /// # Errors
    /// [`Error::BadRecord`] for the first bad record under
    /// [`BadRecords::Fail`]; [`Error::Arrow`] if arrow cannot put the good
    /// rows of a batch together.
    pub fn decode(&self, file: &str, bytes: &[u8]) -> Result<Decoded> {
        let mut decoded = Decoded::default();
        let mut lines = Lines::new(bytes);
        let mut pos = if self.options.header {
            Splitter::new(&self.options)
                .next(bytes)
                .map_or(bytes.len(), |header| header.consumed)
        } else {
            0
        };
        let mut fast: Option<Decoder> = None;
        loop {
            let decoder = fast.get_or_insert_with(|| self.arrow_decoder(self.batch_size));
            match read_batch(decoder, &bytes[pos..]) {
                Ok(Some((batch, consumed))) => {
                    decoded.batches.push(self.finish(batch)?);
                    pos += consumed;
                }
                Ok(None) => break,
                Err(_) => {
                    // The arrow decoder is left mid-batch: a new one starts
                    // after the records decoded slowly.
                    fast = None;
                    match self.decode_slowly(file, bytes, pos, &mut lines, &mut decoded)? {
                        0 => break,
                        consumed => pos += consumed,
                    }
                }
            }
        }
        Ok(decoded)
    }

    /// Splits the next batch of records from `pos` and tells the bad ones
    /// from the good ones; returns the bytes they took.
    fn decode_slowly(
        &self,
        file: &str,
        bytes: &[u8],
        pos: usize,
        lines: &mut Lines<'_>,
        decoded: &mut Decoded,
    ) -> Result<usize> {
        let mut splitter = Splitter::new(&self.options);
        let mut ranges = Vec::new();
        let mut reasons = Vec::new();
        let mut consumed = 0;
        while ranges.len() < self.batch_size {
            let at = pos + consumed;
            let Some(record) = splitter.next(&bytes[at..]) else {
                break;
            };
            consumed += record.consumed;
            let start = at + record.start;
            ranges.push(start..start + record.raw.len());
            reasons.push(self.check_record(&record).err());
        }
        let good = separate(
            bytes,
            &ranges,
            &mut reasons,
            |text: &[u8], rows| self.decode_exactly(text, rows),
            |raw: &[u8], error| self.explain(raw, &error),
        );
        for (range, reason) in ranges.iter().zip(reasons) {
            if let Some(reason) = reason {
                let line = lines.at(range.start);
                decoded.reject(self.policy, file, line, &bytes[range.clone()], reason)?;
            }
        }
        let good = good
            .into_iter()
            .map(|rows| self.finish(rows))
            .collect::<Result<Vec<_>>>()?;
        decoded.push_rows(&self.output, good)?;
        Ok(consumed)
    }

    /// Checks a record's number of fields, their encoding and, when a value
    /// looks bad, whether arrow decodes the record.
    fn check_record(&self, record: &Record<'_>) -> Result<(), String> {
        let fields = self.schema.fields();
        if record.len() != fields.len() {
            return Err(format!(
                "expected {} fields, found {}",
                fields.len(),
                record.len()
            ));
        }
        match self.suspect(record) {
            Some(reason) if self.decode_exactly(record.raw, 1).is_err() => Err(reason),
            _ => Ok(()),
        }
    }

    /// The first field of `record` that is not UTF-8 or, in a produced
    /// column, does not parse: why the record is bad, if it is.
    fn suspect(&self, record: &Record<'_>) -> Option<String> {
        let columns = self.schema.fields().iter().zip(&self.value_types);
        for ((field, value_type), value) in columns.zip(record.fields()) {
            let Ok(value) = std::str::from_utf8(value) else {
                return Some(format!("column '{}': invalid UTF-8", field.name()));
            };
            match value_type {
                Some(value_type) if !self.options.is_null(value) && !value_type.parses(value) => {
                    return Some(format!(
                        "column '{}': cannot parse '{value}' as {}",
                        field.name(),
                        field.data_type()
                    ));
                }
                _ => {}
            }
        }
        None
    }

    /// Decodes `text` into exactly `rows` rows.
    fn decode_exactly(&self, text: &[u8], rows: usize) -> Result<RecordBatch, ArrowError> {
        match read_batch(&mut self.arrow_decoder(rows), text)? {
            Some((batch, consumed)) if batch.num_rows() == rows && consumed == text.len() => {
                Ok(batch)
            }
            _ => Err(ArrowError::CsvError(format!(
                "the text of {rows} records holds another number of records"
            ))),
        }
    }

    /// Why the record `raw` does not decode: names the first column whose
    /// value does not parse, else repeats arrow's `error`.
    fn explain(&self, raw: &[u8], error: &ArrowError) -> String {
        let mut splitter = Splitter::new(&self.options);
        splitter
            .next(raw)
            .and_then(|record| self.suspect(&record))
            .unwrap_or_else(|| error.to_string())
    }

    /// An arrow decoder of headerless records in this dialect.
    fn arrow_decoder(&self, batch_size: usize) -> Decoder {
        let mut builder = ReaderBuilder::new(Arc::clone(&self.schema))
            .with_header(false)
            .with_delimiter(self.options.delimiter)
            .with_quote(self.options.quote)
            .with_batch_size(batch_size);
        if let Some(escape) = self.options.escape {
            builder = builder.with_escape(escape);
        }
        if let Some(comment) = self.options.comment {
            builder = builder.with_comment(comment);
        }
        if let Some(regex) = &self.null_regex {
            builder = builder.with_null_regex(regex.clone());
        }
        if let Some(projection) = &self.projection {
            builder = builder.with_projection(projection.clone());
        }
        builder.build_decoder()
    }

    /// Applies the null semantics arrow cannot: without a null string, an
    /// empty value of a string column is the empty string, not null.
    fn finish(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.options.null_string.is_some() {
            return Ok(batch);
        }
        let columns = batch
            .columns()
            .iter()
            .map(|column| match column.data_type() {
                // Arrow leaves null strings empty: dropping the null
                // buffer makes them empty strings.
                DataType::Utf8 if column.null_count() > 0 => {
                    let (offsets, values, _) = column.as_string::<i32>().clone().into_parts();
                    Ok(Arc::new(StringArray::try_new(offsets, values, None)?) as ArrayRef)
                }
                _ => Ok(Arc::clone(column)),
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        Ok(RecordBatch::try_new(batch.schema(), columns)?)
    }
}

/// Decodes the next batch of records of `input` (up to the decoder's batch
/// size); returns it and the bytes it took, or `None` at the end.
fn read_batch(
    decoder: &mut Decoder,
    input: &[u8],
) -> Result<Option<(RecordBatch, usize)>, ArrowError> {
    let mut consumed = 0;
    loop {
        // An empty rest tells the decoder the input ended.
        let read = decoder.decode(&input[consumed..])?;
        if read == 0 {
            break;
        }
        consumed += read;
    }
    Ok(decoder.flush()?.map(|batch| (batch, consumed)))
}
