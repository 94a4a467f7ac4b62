//! What a file format gives the file sink: an encoder of batches into the
//! bytes of one file.

use std::fmt::Debug;
use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::Result;

/// Encodes batches into the bytes of one file. Encoding is CPU work: the
/// sink runs it on the CPU pool and uploads the bytes it returns.
pub trait FileEncoder: Send {
    /// Encodes `batch`; returns the bytes of the file that are final so far
    /// (possibly none while the encoder buffers).
    ///
    /// # Errors
    /// When the batch cannot be encoded.
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>>;

    /// Ends the file; returns its remaining bytes.
    ///
    /// # Errors
    /// When the file cannot be completed.
    fn finish(&mut self) -> Result<Vec<u8>>;

    /// Bytes encoded or buffered but not yet returned (a Parquet row group in
    /// progress), so that files roll at about the size asked for.
    fn buffered_bytes(&self) -> usize;
}

/// A file format the file sink writes.
pub trait FileFormat: Send + Sync + Debug {
    /// The format's name (`parquet`, `csv`, ...).
    fn name(&self) -> &'static str;

    /// The file name extension, without the dot.
    fn extension(&self) -> &'static str;

    /// A new encoder of one file of rows of `schema`.
    ///
    /// # Errors
    /// When the format cannot encode the schema.
    fn encoder(&self, schema: &SchemaRef) -> Result<Box<dyn FileEncoder>>;
}

/// A growable byte buffer that a `Write`-based encoder writes into and the
/// sink drains, so that encoders built on `std::io::Write` (Parquet, IPC,
/// CSV) can hand their bytes over as they are produced.
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer {
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl SharedBuffer {
    /// Takes every byte written so far.
    pub fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.bytes.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// How many bytes are waiting to be taken.
    pub fn len(&self) -> usize {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no bytes wait to be taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An encoder of a row-wise text format (CSV, JSON lines): every batch
/// becomes its bytes at once, nothing is buffered and nothing ends a file.
pub struct RowTextEncoder<F>(pub F);

impl<F> FileEncoder for RowTextEncoder<F>
where
    F: FnMut(&RecordBatch, &mut Vec<u8>) -> Result<()> + Send,
{
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        (self.0)(batch, &mut out)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn buffered_bytes(&self) -> usize {
        0
    }
}
