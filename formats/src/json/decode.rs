//! Decoding JSON-lines bytes into record batches.
//!
//! Lines are decoded a batch at a time by arrow's JSON decoder, requiring
//! exactly one row per line. Lines that do not look like objects are set
//! aside; when the others fail to decode together, they are decoded in
//! groups halved until they decode. The good lines are kept in order and
//! the bad ones handed to the [`BadRecords`] policy with their line and
//! reason.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;
use arrow::json::reader::Decoder;
use weir_engine::operator::OUTPUT_BATCH_ROWS;

use super::lines::{Line, Lines, looks_like_object};
use crate::bad_records::{BadRecords, Decoded};
use crate::schema_string::nullable;
use crate::separate::separate;
use crate::{Error, Result};

/// Decodes the bytes of JSON-lines files with a known schema.
///
/// Every output column is nullable. Values are converted as arrow's JSON
/// reader does: a number or a numeric string fits a numeric column, a
/// string holding a date or timestamp fits a date or timestamp column; a
/// value of another JSON type (a boolean where a number is expected, an
/// object where a string is) makes the line a bad record.
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    /// The columns, all nullable.
    schema: SchemaRef,
    policy: BadRecords,
    batch_size: usize,
}

impl JsonDecoder {
    /// A decoder of lines with `schema`'s columns, handling bad records by
    /// `policy`.
    ///
    /// # Errors
    /// [`Error::Option`] when arrow cannot decode a column's type from JSON
    /// or its time zone is invalid.
    pub fn try_new(schema: &Schema, policy: BadRecords) -> Result<Self> {
        let decoder = Self {
            schema: nullable(schema),
            policy,
            batch_size: OUTPUT_BATCH_ROWS,
        };
        decoder.arrow_decoder(1).map_err(|e| Error::Option {
            option: "schema".to_string(),
            message: format!("JSON cannot hold the schema: {e}"),
        })?;
        Ok(decoder)
    }

    /// Produces batches of at most `rows` rows (default 8192).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.batch_size = rows.max(1);
        self
    }

    /// The schema of the batches produced.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Decodes the whole of a file's `bytes`. `file` names the file in bad
    /// records and errors.
    ///
    /// # Errors
    /// [`Error::BadRecord`] for the first bad record under
    /// [`BadRecords::Fail`]; [`Error::Arrow`] if arrow cannot put the good
    /// rows of a batch together.
    pub fn decode(&self, file: &str, bytes: &[u8]) -> Result<Decoded> {
        let mut decoded = Decoded::default();
        let mut lines = Lines::new(bytes);
        let mut batch: Vec<Line> = Vec::with_capacity(self.batch_size);
        loop {
            batch.clear();
            batch.extend(lines.by_ref().take(self.batch_size));
            if batch.is_empty() {
                return Ok(decoded);
            }
            self.decode_lines(file, bytes, &batch, &mut decoded)?;
        }
    }

    /// Decodes a batch of lines: in one go when they are all good.
    fn decode_lines(
        &self,
        file: &str,
        bytes: &[u8],
        batch: &[Line],
        decoded: &mut Decoded,
    ) -> Result<()> {
        let ranges: Vec<Range<usize>> = batch.iter().map(|line| line.start..line.end).collect();
        let mut reasons: Vec<Option<String>> = ranges
            .iter()
            .map(|range| {
                (!looks_like_object(&bytes[range.clone()])).then(|| "not a JSON object".to_string())
            })
            .collect();
        let good = separate(
            bytes,
            &ranges,
            &mut reasons,
            |text: &[u8], rows| self.decode_exactly(text, rows),
            |_: &[u8], reason| reason,
        );
        for ((line, range), reason) in batch.iter().zip(&ranges).zip(reasons) {
            if let Some(reason) = reason {
                decoded.reject(
                    self.policy,
                    file,
                    line.number,
                    &bytes[range.clone()],
                    reason,
                )?;
            }
        }
        decoded.push_rows(&self.schema, good)
    }

    /// Decodes `text` into exactly `rows` rows, or says why not.
    fn decode_exactly(&self, text: &[u8], rows: usize) -> Result<RecordBatch, String> {
        let mut decoder = self.arrow_decoder(rows).map_err(|e| reason(&e))?;
        let mut consumed = 0;
        while consumed < text.len() {
            match decoder.decode(&text[consumed..]).map_err(|e| reason(&e))? {
                // The decoder is full: more values than lines.
                0 => return Err("more JSON values than lines".to_string()),
                read => consumed += read,
            }
        }
        match decoder.flush().map_err(|e| reason(&e))? {
            Some(batch) if batch.num_rows() == rows => Ok(batch),
            batch => Err(format!(
                "{} JSON values on {rows} line(s)",
                batch.as_ref().map_or(0, RecordBatch::num_rows)
            )),
        }
    }

    fn arrow_decoder(&self, batch_size: usize) -> Result<Decoder, ArrowError> {
        ReaderBuilder::new(Arc::clone(&self.schema))
            .with_batch_size(batch_size)
            .build_decoder()
    }
}

/// Arrow's message, naming columns as the CSV decoder does.
fn reason(error: &ArrowError) -> String {
    let message = match error {
        ArrowError::JsonError(message) => message.clone(),
        other => other.to_string(),
    };
    message.replace("whilst decoding field ", "column ")
}
