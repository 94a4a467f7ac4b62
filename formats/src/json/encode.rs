//! Encoding record batches as JSON lines.

use arrow::array::RecordBatch;
use arrow::json::LineDelimitedWriter;

use crate::Result;

/// Encodes batches as JSON lines: one object per row, null values left out
/// (a missing field decodes as null), timestamps and dates as strings
/// [`JsonDecoder`](super::JsonDecoder) reads back.
#[derive(Debug, Default)]
pub struct JsonEncoder;

impl JsonEncoder {
    /// An encoder.
    pub fn new() -> Self {
        Self
    }

    /// Appends `batch`'s rows to `out`, one line each.
    ///
    /// # Errors
    /// When a column's type cannot be written as JSON.
    pub fn encode(&mut self, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
        let mut writer = LineDelimitedWriter::new(out);
        writer.write(batch)?;
        writer.finish()?;
        Ok(())
    }
}
