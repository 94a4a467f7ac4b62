//! Encoding record batches as CSV.

use arrow::array::RecordBatch;
use arrow::csv::{QuoteStyle, WriterBuilder};

use super::CsvOptions;
use crate::Result;

/// Encodes the batches of one CSV file: the header (when the dialect has
/// one) before the first batch, nulls as the null string, quotes doubled.
///
/// Timestamps are written as RFC 3339 (with the offset when the column has
/// a time zone), dates as `YYYY-MM-DD`, decimals with their scale: what
/// [`CsvDecoder`](super::CsvDecoder) reads back.
#[derive(Debug)]
pub struct CsvEncoder {
    options: CsvOptions,
    /// Whether a batch (and so the header) was written.
    started: bool,
}

impl CsvEncoder {
    /// An encoder for a new file in `options`' dialect.
    pub fn new(options: CsvOptions) -> Self {
        Self {
            options,
            started: false,
        }
    }

    /// Appends `batch`'s rows to `out`, after the header if this is the
    /// file's first batch.
    ///
    /// # Errors
    /// When a column's type cannot be written as CSV (nested types).
    pub fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        let mut builder = WriterBuilder::new()
            .with_header(self.options.header && !self.started)
            .with_delimiter(self.options.delimiter)
            .with_quote(self.options.quote)
            .with_null(self.options.null_string.clone().unwrap_or_default());
        if self.options.comment.is_some() {
            // A string starting with the comment character must not start
            // a line unquoted.
            builder = builder.with_quote_style(QuoteStyle::NonNumeric);
        }
        builder.build(&mut *out).write(batch)?;
        self.started = true;
        Ok(())
    }
}
