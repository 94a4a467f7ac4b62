//! [`SubpartitionReader`]: reads one subpartition of a complete blocking
//! result partition file.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::task::JoinHandle;

use super::BlockingFormat;
use super::index::{BlockEntry, PartitionFile, PartitionIndex, crc32};
use super::ipc::{self, IpcBlockDecoder};
use super::parquet::{self, ParquetBlockDecoder};
use crate::{Error, Result, ResultPartitionId, ShuffleRoot, cpu};

/// How many bytes at the end of a file `open` fetches at once, hoping the
/// whole footer is among them (one request instead of two). Small, because
/// every consumer of every producer pays it.
const TAIL_PREFETCH: u64 = 16 * 1024;

/// How many blocks of a subpartition are fetched ahead of the one being
/// decoded: the fetches overlap the decoding and each other's round trips
/// (to another worker, or an object store).
const READ_AHEAD: usize = 2;

/// The last bytes of a file, fetched once at open.
pub(super) struct Tail {
    start: u64,
    bytes: Bytes,
}

impl Tail {
    /// `range` (absolute offsets) if the tail holds all of it.
    fn slice(&self, range: &Range<u64>) -> Option<Bytes> {
        let start = usize::try_from(range.start.checked_sub(self.start)?).ok()?;
        let end = usize::try_from(range.end.checked_sub(self.start)?).ok()?;
        (start <= end && end <= self.bytes.len()).then(|| self.bytes.slice(start..end))
    }
}

/// Fetches byte ranges of one partition file and counts them.
pub(super) struct Fetcher {
    store: Arc<dyn ObjectStore>,
    file: PartitionFile,
    bytes_read: u64,
}

impl Fetcher {
    /// Fetches `range`, which must lie within the file.
    ///
    /// # Errors
    /// [`Error::PartitionNotFound`] when the file is gone,
    /// [`Error::PartitionCorrupt`] on a short read.
    pub async fn fetch(&mut self, range: Range<u64>) -> Result<Bytes> {
        let bytes = self.fetch_owned(range).await?;
        self.bytes_read += bytes.len() as u64;
        Ok(bytes)
    }

    /// A fetch of `range` that owns what it needs (to run as a task of
    /// its own); its bytes are not counted.
    fn fetch_owned(&self, range: Range<u64>) -> impl Future<Output = Result<Bytes>> + use<> {
        let (store, file) = (Arc::clone(&self.store), self.file.clone());
        async move {
            let expected = range.end.saturating_sub(range.start);
            if expected == 0 {
                return Ok(Bytes::new());
            }
            let bytes = store
                .get_range(&file.path, range.clone())
                .await
                .map_err(|e| file.store_error(e))?;
            if bytes.len() as u64 != expected {
                return Err(file.corrupt(format!(
                    "read {} bytes at {}..{} instead of {expected}",
                    bytes.len(),
                    range.start,
                    range.end
                )));
            }
            Ok(bytes)
        }
    }

    /// The file's size and its last `n` bytes (all of it when shorter), in
    /// one request.
    async fn size_and_tail(&mut self, n: u64) -> Result<(u64, Tail)> {
        let options = GetOptions {
            range: Some(GetRange::Suffix(n)),
            ..Default::default()
        };
        let got = self
            .store
            .get_opts(&self.file.path, options)
            .await
            .map_err(|e| self.file.store_error(e))?;
        let (size, start) = (got.meta.size, got.range.start);
        let bytes = got.bytes().await.map_err(|e| self.file.store_error(e))?;
        self.bytes_read += bytes.len() as u64;
        if start + bytes.len() as u64 != size {
            return Err(self.corrupt(format!(
                "read the last {} bytes of {size} from {start}",
                bytes.len()
            )));
        }
        Ok((size, Tail { start, bytes }))
    }

    /// `range` from `tail` when it holds it, else from the store.
    pub async fn range_in(&mut self, tail: &Tail, range: Range<u64>) -> Result<Bytes> {
        match tail.slice(&range) {
            Some(bytes) => Ok(bytes),
            None => self.fetch(range).await,
        }
    }

    /// [`Error::PartitionCorrupt`] for this file.
    pub fn corrupt(&self, reason: impl Into<String>) -> Error {
        self.file.corrupt(reason)
    }
}

/// What a format's `open` learnt from the end of the file.
pub(super) struct OpenedPartition {
    pub index: PartitionIndex,
    pub schema: SchemaRef,
    pub decoder: BlockDecoder,
}

/// Decodes the verified bytes of one block.
#[derive(Debug)]
pub(super) enum BlockDecoder {
    Ipc(IpcBlockDecoder),
    Parquet(ParquetBlockDecoder),
}

impl BlockDecoder {
    fn decode(&self, bytes: Bytes, block: &BlockEntry) -> Result<Vec<RecordBatch>, String> {
        match self {
            BlockDecoder::Ipc(decoder) => decoder.decode(bytes),
            BlockDecoder::Parquet(decoder) => decoder.decode(bytes, block),
        }
    }
}

/// The bytes of a block fetched ahead, or being fetched.
enum Fetch {
    Running(JoinHandle<Result<Bytes>>),
    Done(Bytes),
}

/// Reads one subpartition of a complete blocking result partition: only the
/// blocks of that subpartition are fetched, [`READ_AHEAD`] ahead of the
/// one decoded, and each block's CRC32 is verified before it is decoded
/// (on the CPU pool).
///
/// [`next_batch`](Self::next_batch) is cancel-safe: a block is consumed only
/// once its batches are decoded.
pub struct SubpartitionReader {
    fetcher: Fetcher,
    subpartition: usize,
    schema: SchemaRef,
    decoder: Arc<BlockDecoder>,
    /// Blocks of this subpartition not yet decoded, in write order.
    blocks: VecDeque<BlockEntry>,
    /// The fetches of the first of `blocks`, one for each.
    ahead: VecDeque<Fetch>,
    num_blocks: usize,
    decoded: VecDeque<RecordBatch>,
    blocks_read: u64,
}

impl std::fmt::Debug for SubpartitionReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubpartitionReader")
            .field("partition", &self.fetcher.file.partition)
            .field("path", &self.fetcher.file.path)
            .field("subpartition", &self.subpartition)
            .field("num_blocks", &self.num_blocks)
            .field("blocks_read", &self.blocks_read)
            .field("bytes_read", &self.fetcher.bytes_read)
            .finish_non_exhaustive()
    }
}

impl SubpartitionReader {
    /// Opens subpartition `subpartition` of the complete partition `id` of
    /// `job` under `root`, written in `format`. Reads the file's footer and
    /// index, not its blocks.
    ///
    /// # Errors
    /// [`Error::PartitionNotFound`] when the file does not exist;
    /// [`Error::PartitionCorrupt`] when it is truncated, has a bad magic, a
    /// footer or schema checksum mismatch, or an inconsistent index;
    /// [`Error::Config`] when `subpartition` is not one of the partition's.
    pub async fn open(
        root: &ShuffleRoot,
        job: &str,
        id: ResultPartitionId,
        subpartition: usize,
        format: BlockingFormat,
    ) -> Result<Self> {
        let path = root.partition_path(job, &id, format.extension());
        let file = PartitionFile {
            partition: id,
            path,
        };
        let mut fetcher = Fetcher {
            store: Arc::clone(root.store()),
            file,
            bytes_read: 0,
        };
        let (size, tail) = fetcher.size_and_tail(TAIL_PREFETCH).await?;
        let opened = match format {
            BlockingFormat::Ipc => ipc::open(&mut fetcher, size, &tail).await?,
            BlockingFormat::Parquet => parquet::open(&mut fetcher, size, &tail).await?,
        };
        let num_subpartitions = opened.index.num_subpartitions as usize;
        if subpartition >= num_subpartitions {
            return Err(Error::Config(format!(
                "partition {} at {}: subpartition {subpartition} out of range (0..{num_subpartitions})",
                fetcher.file.partition, fetcher.file.path
            )));
        }
        let blocks: VecDeque<_> = opened
            .index
            .blocks
            .into_iter()
            .filter(|block| block.subpartition as usize == subpartition)
            .collect();
        Ok(Self {
            fetcher,
            subpartition,
            schema: opened.schema,
            decoder: Arc::new(opened.decoder),
            num_blocks: blocks.len(),
            blocks,
            ahead: VecDeque::new(),
            decoded: VecDeque::new(),
            blocks_read: 0,
        })
    }

    /// The next batch of this subpartition, in the order written; `None` at
    /// the end.
    ///
    /// # Errors
    /// [`Error::PartitionCorrupt`] when a block's checksum, decoding or row
    /// count is wrong; [`Error::PartitionNotFound`] when the file disappeared.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(batch) = self.decoded.pop_front() {
                return Ok(Some(batch));
            }
            let Some(block) = self.blocks.front().cloned() else {
                return Ok(None);
            };
            let bytes = self.first_block_bytes().await?;
            let length = block.length;
            let decoder = Arc::clone(&self.decoder);
            let batches = cpu::run(move || {
                let actual = crc32(&bytes);
                if actual != block.crc32 {
                    return Err(format!(
                        "checksum mismatch in the block at {}+{}: stored {:08x}, computed {actual:08x}",
                        block.offset, block.length, block.crc32
                    ));
                }
                let batches = cpu::decode_guarded(|| decoder.decode(bytes, &block))
                    .map_err(|e| format!("block at {}+{}: {e}", block.offset, block.length))?;
                let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
                if rows != block.rows {
                    return Err(format!(
                        "the block at {}+{} decoded to {rows} rows instead of {}",
                        block.offset, block.length, block.rows
                    ));
                }
                Ok(batches)
            })
            .await
            .map_err(|reason| self.fetcher.corrupt(reason))?;
            self.blocks.pop_front();
            self.ahead.pop_front();
            self.fetcher.bytes_read += length;
            self.blocks_read += 1;
            self.decoded
                .extend(batches.into_iter().filter(|b| b.num_rows() > 0));
        }
    }

    /// The bytes of the first block not yet decoded, with the fetches of
    /// the next ones started. Cancel-safe: the fetches stay with the
    /// reader.
    async fn first_block_bytes(&mut self) -> Result<Bytes> {
        while self.ahead.len() < READ_AHEAD.min(self.blocks.len()) {
            let block = &self.blocks[self.ahead.len()];
            // `open` validated that every block lies within the file.
            let end = block.end().unwrap_or(block.offset);
            let fetch = self.fetcher.fetch_owned(block.offset..end);
            self.ahead.push_back(Fetch::Running(tokio::spawn(fetch)));
        }
        let first = self.ahead.front_mut().expect("a fetch of the first block");
        let fetched = match first {
            Fetch::Done(bytes) => return Ok(bytes.clone()),
            Fetch::Running(task) => task.await,
        };
        match fetched {
            Ok(Ok(bytes)) => {
                self.ahead[0] = Fetch::Done(bytes.clone());
                Ok(bytes)
            }
            // A failed fetch is not kept: a caller that tries again
            // fetches the block again.
            Ok(Err(e)) => {
                self.ahead.pop_front();
                Err(e)
            }
            Err(e) => {
                self.ahead.pop_front();
                Err(Error::Io(std::io::Error::other(format!(
                    "fetching a block of {}: {e}",
                    self.fetcher.file.path
                ))))
            }
        }
    }

    /// The schema of the partition (as written).
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The subpartition being read.
    pub fn subpartition(&self) -> usize {
        self.subpartition
    }

    /// The path of the partition file within the shuffle root.
    pub fn path(&self) -> &Path {
        &self.fetcher.file.path
    }

    /// How many blocks this subpartition consists of.
    pub fn num_blocks(&self) -> usize {
        self.num_blocks
    }

    /// How many blocks were fetched and decoded so far.
    pub fn blocks_read(&self) -> u64 {
        self.blocks_read
    }

    /// Bytes fetched from the store so far: the footer, index and schema read
    /// by `open`, and the blocks read since.
    pub fn bytes_read(&self) -> u64 {
        self.fetcher.bytes_read
    }
}

impl Drop for SubpartitionReader {
    fn drop(&mut self) {
        for fetch in &self.ahead {
            if let Fetch::Running(task) = fetch {
                task.abort();
            }
        }
    }
}

#[cfg(test)]
impl SubpartitionReader {
    /// Bytes of this subpartition's blocks not yet read.
    pub(super) fn block_bytes(&self) -> u64 {
        self.blocks.iter().map(|b| b.length).sum()
    }
}
