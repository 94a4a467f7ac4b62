//! [`BlockingPartitionWriter`]: writes one blocking result partition file.

use std::pin::Pin;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWrite;

use super::index::{BlockEntry, PartitionFile, PartitionIndex};
use super::ipc::IpcBlockEncoder;
use super::parquet::ParquetBlockEncoder;
use super::{BlockingFormat, BlockingOptions, Compression, PartitionFileStats};
use crate::{Error, Result, ResultPartitionId, ShuffleRoot, cpu};

/// A failed write of the partition file at `path` under the shuffle root
/// `root`, naming both (a full disk must say which).
fn write_error(root: &str, path: &Path, source: std::io::Error) -> Error {
    Error::PartitionWrite {
        root: root.to_string(),
        path: path.to_string(),
        source,
    }
}

/// One encoded block, ready to upload.
pub(super) struct EncodedBlock {
    pub bytes: Bytes,
    pub rows: u64,
    pub crc32: u32,
    pub row_group: Option<u32>,
}

/// The format-specific encoder. It moves onto the CPU pool for every block
/// and comes back with the result.
enum BlockEncoder {
    Ipc(IpcBlockEncoder),
    Parquet(Box<ParquetBlockEncoder>),
}

impl BlockEncoder {
    fn try_new(
        format: BlockingFormat,
        schema: SchemaRef,
        compression: Compression,
    ) -> Result<(Self, Bytes)> {
        Ok(match format {
            BlockingFormat::Ipc => {
                let (encoder, header) = IpcBlockEncoder::try_new(schema, compression)?;
                (BlockEncoder::Ipc(encoder), header)
            }
            BlockingFormat::Parquet => {
                let (encoder, header) = ParquetBlockEncoder::try_new(schema, compression)?;
                (BlockEncoder::Parquet(Box::new(encoder)), header)
            }
        })
    }

    fn compression(&self) -> Compression {
        match self {
            BlockEncoder::Ipc(encoder) => encoder.compression(),
            BlockEncoder::Parquet(encoder) => encoder.compression(),
        }
    }

    fn encode_block(&mut self, batches: &[RecordBatch]) -> Result<EncodedBlock> {
        match self {
            BlockEncoder::Ipc(encoder) => encoder.encode_block(batches),
            BlockEncoder::Parquet(encoder) => encoder.encode_block(batches),
        }
    }

    fn finish(self, index: PartitionIndex) -> Result<Bytes> {
        match self {
            BlockEncoder::Ipc(encoder) => encoder.finish(index),
            BlockEncoder::Parquet(encoder) => encoder.finish(index),
        }
    }
}

/// The batches buffered for one subpartition.
#[derive(Default)]
struct SubpartitionBuffer {
    batches: Vec<RecordBatch>,
    bytes: usize,
}

/// Writes one blocking result partition: the whole output of one producer
/// subtask attempt on one edge, split into subpartitions (one per consumer),
/// as one file under a [`ShuffleRoot`].
///
/// Batches are buffered per subpartition; when the buffered bytes exceed
/// [`BlockingOptions::buffer_bytes`], the largest buffer is encoded (on the
/// CPU pool) and uploaded as one block. The upload is a single object store
/// write (multipart once it is large), so the file becomes visible only when
/// [`finish`](Self::finish) completes it, and never when the writer fails.
///
/// After any error from [`write`](Self::write), or a `write` future dropped
/// before it completed, the writer cannot continue: call
/// [`abort`](Self::abort). Dropping the writer also discards the partial
/// upload, without waiting for the cleanup.
pub struct BlockingPartitionWriter {
    file: PartitionFile,
    /// The shuffle root's URL, for errors.
    root: String,
    schema: SchemaRef,
    buffer_bytes: usize,
    upload: BufWriter,
    /// `None` once an encode or an upload failed.
    encoder: Option<BlockEncoder>,
    buffers: Vec<SubpartitionBuffer>,
    buffered_bytes: usize,
    index: PartitionIndex,
    rows: u64,
}

impl std::fmt::Debug for BlockingPartitionWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingPartitionWriter")
            .field("partition", &self.file.partition)
            .field("path", &self.file.path)
            .field("buffered_bytes", &self.buffered_bytes)
            .field("blocks", &self.index.blocks.len())
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl BlockingPartitionWriter {
    /// Starts writing partition `id` of `job` under `root` with
    /// `num_subpartitions` subpartitions, in the format, compression and
    /// buffer size of `options`. The file is
    /// [`ShuffleRoot::partition_path`] with the format's extension.
    ///
    /// # Errors
    /// [`Error::Config`] when `num_subpartitions` is zero (or above
    /// `u32::MAX`); an Arrow or Parquet error when the schema cannot be
    /// encoded.
    pub async fn try_new(
        root: &ShuffleRoot,
        job: &str,
        id: ResultPartitionId,
        schema: SchemaRef,
        num_subpartitions: usize,
        options: &BlockingOptions,
    ) -> Result<Self> {
        let path = root.partition_path(job, &id, options.format.extension());
        let subpartitions = u32::try_from(num_subpartitions)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| {
                Error::Config(format!(
                    "partition {id} at {path}: {num_subpartitions} subpartitions \
                     (expected 1 to {})",
                    u32::MAX
                ))
            })?;
        let (format, compression) = (options.format, options.compression);
        let encoder_schema = Arc::clone(&schema);
        let (encoder, header) =
            cpu::run(move || BlockEncoder::try_new(format, encoder_schema, compression)).await?;

        let mut upload = BufWriter::new(Arc::clone(root.store()), path.clone());
        let header_len = header.len() as u64;
        upload
            .put(header)
            .await
            .map_err(|e| write_error(root.url(), &path, e.into()))?;
        Ok(Self {
            index: PartitionIndex::new(
                subpartitions,
                header_len,
                encoder.compression().to_string(),
            ),
            file: PartitionFile {
                partition: id,
                path,
            },
            root: root.url().to_string(),
            schema,
            buffer_bytes: options.buffer_bytes,
            upload,
            encoder: Some(encoder),
            buffers: (0..num_subpartitions)
                .map(|_| SubpartitionBuffer::default())
                .collect(),
            buffered_bytes: 0,
            rows: 0,
        })
    }

    /// The path of the partition file within the shuffle root.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The schema of the partition.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Bytes buffered in memory and not yet encoded.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    /// Buffers `batch` for `subpartition`. When the buffered bytes then exceed
    /// [`BlockingOptions::buffer_bytes`], encodes and uploads the largest
    /// subpartition's buffer as one block (repeatedly, until they do not).
    /// Batches without rows are skipped.
    ///
    /// # Errors
    /// [`Error::Config`] when `subpartition` is out of range; an Arrow error
    /// when the batch's fields differ from the partition's schema; encoding
    /// and upload errors. After an error the writer must be aborted.
    pub async fn write(&mut self, subpartition: usize, batch: RecordBatch) -> Result<()> {
        if subpartition >= self.buffers.len() {
            return Err(Error::Config(format!(
                "partition {} at {}: subpartition {subpartition} out of range (0..{})",
                self.file.partition,
                self.file.path,
                self.buffers.len()
            )));
        }
        if batch.schema_ref().fields() != self.schema.fields() {
            return Err(ArrowError::SchemaError(format!(
                "partition {} at {}: batch schema {:?} differs from the partition's {:?}",
                self.file.partition,
                self.file.path,
                batch.schema_ref().fields(),
                self.schema.fields()
            ))
            .into());
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let bytes = crate::event::batch_data_bytes(&batch);
        let buffer = &mut self.buffers[subpartition];
        buffer.batches.push(batch);
        buffer.bytes += bytes;
        self.buffered_bytes += bytes;
        while self.buffered_bytes > self.buffer_bytes {
            let Some(largest) = self.largest_buffer() else {
                break;
            };
            self.flush_subpartition(largest).await?;
        }
        Ok(())
    }

    /// Flushes every buffer, writes the index and completes the upload: only
    /// now does the file become visible, complete.
    ///
    /// # Errors
    /// Encoding and upload errors; the partial upload is then discarded.
    pub async fn finish(mut self) -> Result<PartitionFileStats> {
        let tail = match self.finish_blocks().await {
            Ok(tail) => tail,
            Err(e) => {
                self.abort_upload().await;
                return Err(e);
            }
        };
        let file_len = self.index.data_len + tail.len() as u64;
        if let Err(e) = self.upload.put(tail).await {
            self.abort_upload().await;
            return Err(write_error(&self.root, &self.file.path, e.into()));
        }
        // A failed completion cleans up after itself.
        let upload = &mut self.upload;
        std::future::poll_fn(|cx| Pin::new(&mut *upload).poll_shutdown(cx))
            .await
            .map_err(|e| write_error(&self.root, &self.file.path, e))?;
        let stats = PartitionFileStats {
            rows: self.rows,
            bytes: file_len,
            blocks: self.index.blocks.len() as u64,
        };
        tracing::debug!(
            partition = %self.file.partition,
            path = %self.file.path,
            rows = stats.rows,
            blocks = stats.blocks,
            "blocking partition written"
        );
        Ok(stats)
    }

    /// Discards the partial file: nothing becomes visible.
    pub async fn abort(mut self) {
        self.abort_upload().await;
    }

    /// Encodes the remaining buffers, then the end of the file (index,
    /// footer), which it returns.
    async fn finish_blocks(&mut self) -> Result<Bytes> {
        for subpartition in 0..self.buffers.len() {
            if !self.buffers[subpartition].batches.is_empty() {
                self.flush_subpartition(subpartition).await?;
            }
        }
        let encoder = self.take_encoder()?;
        let index = self.index.clone();
        cpu::run(move || encoder.finish(index)).await
    }

    async fn abort_upload(&mut self) {
        self.encoder = None;
        if let Err(e) = self.upload.abort().await {
            tracing::warn!(
                partition = %self.file.partition,
                path = %self.file.path,
                error = %e,
                "cannot discard the partial upload of a blocking partition"
            );
        }
    }

    fn take_encoder(&mut self) -> Result<BlockEncoder> {
        self.encoder.take().ok_or_else(|| {
            Error::Io(std::io::Error::other(format!(
                "the writer of partition {} at {} failed earlier and must be aborted",
                self.file.partition, self.file.path
            )))
        })
    }

    fn largest_buffer(&self) -> Option<usize> {
        self.buffers
            .iter()
            .enumerate()
            .filter(|(_, buffer)| !buffer.batches.is_empty())
            .max_by_key(|(_, buffer)| buffer.bytes)
            .map(|(subpartition, _)| subpartition)
    }

    /// Encodes the buffer of `subpartition` as one block and uploads it.
    async fn flush_subpartition(&mut self, subpartition: usize) -> Result<()> {
        let buffer = std::mem::take(&mut self.buffers[subpartition]);
        self.buffered_bytes -= buffer.bytes;
        // Left `None` if anything below fails: the file is then unusable.
        let mut encoder = self.take_encoder()?;
        let (encoder, block) = cpu::run(move || {
            let block = encoder.encode_block(&buffer.batches);
            (encoder, block)
        })
        .await;
        let block = block?;
        let length = block.bytes.len() as u64;
        self.upload
            .put(block.bytes)
            .await
            .map_err(|e| write_error(&self.root, &self.file.path, e.into()))?;
        self.encoder = Some(encoder);
        self.index.blocks.push(BlockEntry {
            subpartition: subpartition as u32,
            row_group: block.row_group,
            offset: self.index.data_len,
            length,
            rows: block.rows,
            crc32: block.crc32,
        });
        self.index.data_len += length;
        self.rows += block.rows;
        Ok(())
    }
}
