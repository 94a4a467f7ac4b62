//! Decoding JSON-lines bytes into record batches.
//!
//! The normal path is arrow's JSON decoder over a batch of lines at once,
//! taken when every line looks like one object and arrow decodes exactly one
//! row per line. Otherwise the decoder goes over the lines of that batch one
//! at a time: it decodes each on its own, keeps the good ones in order and
//! hands the bad ones to the [`BadRecords`] policy with their line and
//! reason.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::json::ReaderBuilder;
use arrow::json::reader::Decoder;
use weir_engine::operator::OUTPUT_BATCH_ROWS;

use super::lines::{Line, Lines, looks_like_object};
use crate::bad_records::{BadRecords, Decoded};
use crate::schema_string::nullable;
use crate::{Error, Result};

/// Decodes the bytes of JSON-lines files with a known schema.
///
/// Every output column is nullable. Values are converted as arrow's JSON
/// reader does: a number or a numeric string fits a numeric column, a
/// string holding a date or timestamp fits a date or timestamp column; a
/// value of another JSON type (a string where a number is expected, an
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
        decoder.arrow_decoder().map_err(|e| Error::Option {
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
    /// [`BadRecords::Fail`]; [`Error::Arrow`] if arrow fails on lines it
    /// decoded one at a time.
    pub fn decode(&self, file: &str, bytes: &[u8]) -> Result<Decoded> {
        let mut decoded = Decoded::default();
        let mut lines = Lines::new(bytes);
        let mut batch: Vec<Line> = Vec::with_capacity(self.batch_size);
        let mut fast: Option<Decoder> = None;
        loop {
            batch.clear();
            batch.extend(lines.by_ref().take(self.batch_size));
            let (Some(first), Some(last)) = (batch.first(), batch.last()) else {
                break;
            };
            let decoder = match &mut fast {
                Some(decoder) => decoder,
                None => fast.insert(self.arrow_decoder()?),
            };
            let all_objects = batch
                .iter()
                .all(|line| looks_like_object(&bytes[line.start..line.end]));
            let rows = match all_objects {
                true => read_rows(decoder, &bytes[first.start..last.end], batch.len()).ok(),
                false => None,
            };
            match rows {
                Some(rows) => decoded.batches.push(rows),
                None => {
                    // The arrow decoder may be left mid-record.
                    fast = None;
                    self.decode_slowly(file, bytes, &batch, &mut decoded)?;
                }
            }
        }
        Ok(decoded)
    }

    /// Goes over `batch`'s lines one at a time.
    fn decode_slowly(
        &self,
        file: &str,
        bytes: &[u8],
        batch: &[Line],
        decoded: &mut Decoded,
    ) -> Result<()> {
        let mut good = Vec::new();
        for line in batch {
            let text = &bytes[line.start..line.end];
            match self.decode_line(text) {
                Ok(row) => good.push(row),
                Err(reason) => decoded.reject(self.policy, file, line.number, text, reason)?,
            }
        }
        if !good.is_empty() {
            decoded.batches.push(concat_batches(&self.schema, &good)?);
        }
        Ok(())
    }

    /// Decodes one line on its own, or says why it is bad.
    fn decode_line(&self, text: &[u8]) -> Result<RecordBatch, String> {
        if !looks_like_object(text) {
            return Err("not a JSON object".to_string());
        }
        let mut decoder = self.arrow_decoder().map_err(|e| reason(&e))?;
        read_rows(&mut decoder, text, 1)
    }

    fn arrow_decoder(&self) -> Result<Decoder, ArrowError> {
        ReaderBuilder::new(Arc::clone(&self.schema))
            .with_batch_size(self.batch_size)
            .build_decoder()
    }
}

/// Decodes `input` into exactly `rows` rows, or says why not.
fn read_rows(decoder: &mut Decoder, input: &[u8], rows: usize) -> Result<RecordBatch, String> {
    let mut consumed = 0;
    while consumed < input.len() {
        match decoder.decode(&input[consumed..]).map_err(|e| reason(&e))? {
            // The decoder is full: more values than rows.
            0 => return Err(format!("expected {rows} JSON object(s), found more")),
            read => consumed += read,
        }
    }
    match decoder.flush().map_err(|e| reason(&e))? {
        Some(batch) if batch.num_rows() == rows => Ok(batch),
        batch => Err(format!(
            "expected {rows} JSON object(s), found {}",
            batch.as_ref().map_or(0, RecordBatch::num_rows)
        )),
    }
}

/// Arrow's message without its "Json error: " prefix.
fn reason(error: &ArrowError) -> String {
    match error {
        ArrowError::JsonError(message) => message.clone(),
        other => other.to_string(),
    }
}
