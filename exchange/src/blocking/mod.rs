//! Blocking result partitions: the whole output of one producer subtask
//! attempt on one edge, written before any consumer reads it.
//!
//! A partition is split into subpartitions, one per consumer subtask, and is
//! stored as **one** file under a [`ShuffleRoot`](crate::ShuffleRoot) (never
//! one file per producer x consumer pair). The producer buffers batches per
//! subpartition and, when the buffers grow past
//! [`BlockingOptions::buffer_bytes`], encodes the largest buffer as one
//! *block*, so a subpartition is a sequence of blocks in write order. An index
//! at the end of the file lists every block with its subpartition, byte range,
//! row count and CRC32, so a consumer fetches only its own blocks.
//!
//! - [`BlockingPartitionWriter`] writes a partition; the file becomes visible
//!   only when [`finish`](BlockingPartitionWriter::finish) completes the upload.
//! - [`SubpartitionReader`] reads one subpartition of a complete partition,
//!   verifying every checksum before decoding.
//!
//! Two formats ([`BlockingFormat`]):
//! - `ipc` (`.ipc`): a magic header, the schema, blocks that are each a
//!   complete Arrow IPC stream (optionally lz4/zstd buffer-compressed), a JSON
//!   footer with the index, and a fixed trailer (footer length, footer CRC32,
//!   magic).
//! - `parquet` (`.parquet`): a standard Parquet file whose row groups are the
//!   blocks, grouped by subpartition, with the index as JSON in the key-value
//!   metadata under [`PARQUET_INDEX_KEY`]. Any Parquet tool can read it.
//!
//! A missing file is [`Error::PartitionNotFound`]; a truncated file, a
//! checksum mismatch or an unreadable index is [`Error::PartitionCorrupt`].
//! Failover relies on these types to rerun the producer.
//!
//! Encoding, compression, checksums and decoding run on the CPU pool
//! ([`crate::cpu`]); only object store I/O runs on tokio.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

mod index;
mod ipc;
mod parquet;
mod reader;
mod writer;

pub use self::parquet::{PARQUET_FOOTER_CRC_KEY, PARQUET_INDEX_KEY};
pub use reader::SubpartitionReader;
pub use writer::BlockingPartitionWriter;

/// The file format of blocking result partitions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockingFormat {
    /// Blocks are Arrow IPC streams, indexed by a JSON footer (the default).
    #[default]
    Ipc,
    /// A Parquet file whose row groups are the blocks, indexed in the
    /// key-value metadata.
    Parquet,
}

impl BlockingFormat {
    /// The file extension of partitions in this format (without a dot).
    pub fn extension(&self) -> &'static str {
        match self {
            BlockingFormat::Ipc => "ipc",
            BlockingFormat::Parquet => "parquet",
        }
    }
}

impl fmt::Display for BlockingFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

impl FromStr for BlockingFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ipc" => Ok(BlockingFormat::Ipc),
            "parquet" => Ok(BlockingFormat::Parquet),
            other => Err(Error::Config(format!(
                "unknown blocking partition format '{other}': expected 'ipc' or 'parquet'"
            ))),
        }
    }
}

/// Compression of the blocks of a partition file.
///
/// For `ipc` it is Arrow IPC buffer compression (`lz4` = LZ4_FRAME); for
/// `parquet` the column chunk codec (`lz4` = LZ4_RAW).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// No compression (the default).
    #[default]
    None,
    /// LZ4: fast, moderate ratio.
    Lz4,
    /// Zstandard: slower, better ratio.
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        })
    }
}

impl FromStr for Compression {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Compression::None),
            "lz4" => Ok(Compression::Lz4),
            "zstd" => Ok(Compression::Zstd),
            other => Err(Error::Config(format!(
                "unknown blocking partition compression '{other}': expected 'none', 'lz4' or 'zstd'"
            ))),
        }
    }
}

/// How a [`BlockingPartitionWriter`] encodes and buffers its partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockingOptions {
    /// The file format.
    pub format: BlockingFormat,
    /// The compression of blocks.
    pub compression: Compression,
    /// How many bytes of batches (in memory) the writer buffers over all
    /// subpartitions before it encodes the largest buffer as one block.
    /// Larger buffers mean fewer, larger blocks (fewer reads per consumer).
    pub buffer_bytes: usize,
}

impl BlockingOptions {
    /// The default of [`BlockingOptions::buffer_bytes`]: 8 MiB.
    pub const DEFAULT_BUFFER_BYTES: usize = 8 * 1024 * 1024;

    /// Sets the format.
    pub fn with_format(self, format: BlockingFormat) -> Self {
        Self { format, ..self }
    }

    /// Sets the compression.
    pub fn with_compression(self, compression: Compression) -> Self {
        Self {
            compression,
            ..self
        }
    }

    /// Sets the buffer size in bytes.
    pub fn with_buffer_bytes(self, buffer_bytes: usize) -> Self {
        Self {
            buffer_bytes,
            ..self
        }
    }
}

impl Default for BlockingOptions {
    fn default() -> Self {
        Self {
            format: BlockingFormat::Ipc,
            compression: Compression::None,
            buffer_bytes: Self::DEFAULT_BUFFER_BYTES,
        }
    }
}

/// What [`BlockingPartitionWriter::finish`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionFileStats {
    /// Rows over all subpartitions.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Number of blocks over all subpartitions.
    pub blocks: u64,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
        Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
        LargeStringArray, ListArray, RecordBatch, StringArray, StructArray,
        TimestampMicrosecondArray, TimestampNanosecondArray, UInt8Array, UInt16Array, UInt32Array,
        UInt64Array,
    };
    use arrow::buffer::NullBuffer;
    use arrow::compute::concat_batches;
    use arrow::datatypes::{DataType, Field, Fields, Int32Type, Schema, SchemaRef, TimeUnit};
    use bytes::Bytes;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::index::PartitionIndex;
    use super::*;
    use crate::{Error, ResultPartitionId, ShuffleRoot};

    const JOB: &str = "job-1";

    fn id(producer: u32) -> ResultPartitionId {
        ResultPartitionId {
            dataset: 7,
            producer,
            attempt: 0,
        }
    }

    fn all_types_schema() -> SchemaRef {
        let struct_fields = Fields::from(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let fields = vec![
            Field::new("i8", DataType::Int8, true),
            Field::new("i16", DataType::Int16, true),
            Field::new("i32", DataType::Int32, true).with_metadata(HashMap::from([(
                "comment".to_string(),
                "a field with metadata".to_string(),
            )])),
            Field::new("i64", DataType::Int64, true),
            Field::new("u8", DataType::UInt8, true),
            Field::new("u16", DataType::UInt16, true),
            Field::new("u32", DataType::UInt32, true),
            Field::new("u64", DataType::UInt64, true),
            Field::new("f32", DataType::Float32, true),
            Field::new("f64", DataType::Float64, true),
            Field::new("bool", DataType::Boolean, true),
            Field::new("utf8", DataType::Utf8, true),
            Field::new("large_utf8", DataType::LargeUtf8, true),
            Field::new("binary", DataType::Binary, true),
            Field::new("date32", DataType::Date32, true),
            Field::new(
                "ts_us_utc",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
            Field::new(
                "ts_ns",
                DataType::Timestamp(TimeUnit::Nanosecond, None),
                true,
            ),
            Field::new("dec_18_2", DataType::Decimal128(18, 2), true),
            Field::new("dec_38_10", DataType::Decimal128(38, 10), true),
            Field::new(
                "list",
                DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true))),
                true,
            ),
            Field::new("struct", DataType::Struct(struct_fields), true),
            Field::new(
                "dict",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
        ];
        Arc::new(Schema::new_with_metadata(
            fields,
            HashMap::from([("origin".to_string(), "blocking tests".to_string())]),
        ))
    }

    /// A batch of `rows` rows with nulls in every column; `seed` varies the
    /// values.
    fn all_types_batch(schema: &SchemaRef, seed: usize, rows: usize) -> RecordBatch {
        let valid = |i: usize, k: usize| !(i + seed + k).is_multiple_of(4);
        let int = |k: usize| (0..rows).map(move |i| valid(i, k).then_some(i * 31 + seed * 7 + k));
        let struct_valid: Vec<bool> = (0..rows).map(|i| valid(i, 20)).collect();
        let struct_a: Int32Array = (0..rows)
            .map(|i| (struct_valid[i] && i % 3 != 0).then_some(i as i32 - 5))
            .collect();
        let struct_b: StringArray = (0..rows)
            .map(|i| (struct_valid[i] && i % 5 != 1).then(|| format!("s{}", i + seed)))
            .collect();
        let Some(DataType::Struct(struct_fields)) = schema
            .field_with_name("struct")
            .ok()
            .map(|f| f.data_type().clone())
        else {
            unreachable!("the schema has a struct column")
        };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(int(0).map(|v| v.map(|v| v as i8)).collect::<Int8Array>()),
            Arc::new(int(1).map(|v| v.map(|v| v as i16)).collect::<Int16Array>()),
            Arc::new(
                int(2)
                    .map(|v| v.map(|v| v as i32 - 1000))
                    .collect::<Int32Array>(),
            ),
            Arc::new(
                int(3)
                    .map(|v| v.map(|v| v as i64 * -1_000_003))
                    .collect::<Int64Array>(),
            ),
            Arc::new(int(4).map(|v| v.map(|v| v as u8)).collect::<UInt8Array>()),
            Arc::new(int(5).map(|v| v.map(|v| v as u16)).collect::<UInt16Array>()),
            Arc::new(
                int(6)
                    .map(|v| v.map(|v| v as u32 * 3))
                    .collect::<UInt32Array>(),
            ),
            Arc::new(
                int(7)
                    .map(|v| v.map(|v| u64::MAX - v as u64))
                    .collect::<UInt64Array>(),
            ),
            Arc::new(
                int(8)
                    .map(|v| v.map(|v| v as f32 / 3.0))
                    .collect::<Float32Array>(),
            ),
            Arc::new(
                int(9)
                    .map(|v| v.map(|v| v as f64 * -0.25))
                    .collect::<Float64Array>(),
            ),
            Arc::new(
                int(10)
                    .map(|v| v.map(|v| v % 3 == 0))
                    .collect::<BooleanArray>(),
            ),
            Arc::new(
                int(11)
                    .map(|v| v.map(|v| format!("row {v} ✓")))
                    .collect::<StringArray>(),
            ),
            Arc::new(
                int(12)
                    .map(|v| v.map(|v| "x".repeat(v % 17)))
                    .collect::<LargeStringArray>(),
            ),
            Arc::new(
                int(13)
                    .map(|v| v.map(|v| vec![(v % 256) as u8; v % 9]))
                    .collect::<BinaryArray>(),
            ),
            Arc::new(
                int(14)
                    .map(|v| v.map(|v| v as i32 + 18_000))
                    .collect::<Date32Array>(),
            ),
            Arc::new(
                int(15)
                    .map(|v| v.map(|v| 1_700_000_000_000_000 + v as i64))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone("UTC"),
            ),
            Arc::new(
                int(16)
                    .map(|v| v.map(|v| 1_700_000_000_000_000_000 + v as i64))
                    .collect::<TimestampNanosecondArray>(),
            ),
            Arc::new(
                int(17)
                    .map(|v| v.map(|v| v as i128 * 12_345 - 99))
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(18, 2)
                    .expect("valid decimal"),
            ),
            Arc::new(
                int(18)
                    .map(|v| v.map(|v| v as i128 * 10_i128.pow(25) + 7))
                    .collect::<Decimal128Array>()
                    .with_precision_and_scale(38, 10)
                    .expect("valid decimal"),
            ),
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                int(19).map(|v| {
                    v.map(|v| {
                        (0..v % 4)
                            .map(|j| (j != 1).then_some((v + j) as i32))
                            .collect::<Vec<_>>()
                    })
                }),
            )),
            Arc::new(StructArray::new(
                struct_fields,
                vec![Arc::new(struct_a), Arc::new(struct_b)],
                Some(NullBuffer::from(struct_valid)),
            )),
            Arc::new(
                int(21)
                    .map(|v| v.map(|v| ["red", "green", "blue", "teal"][v % 4]))
                    .collect::<DictionaryArray<Int32Type>>(),
            ),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).expect("valid batch")
    }

    async fn read_all(
        root: &ShuffleRoot,
        id: ResultPartitionId,
        subpartition: usize,
        format: BlockingFormat,
    ) -> crate::Result<Vec<RecordBatch>> {
        let mut reader = SubpartitionReader::open(root, JOB, id, subpartition, format).await?;
        let mut batches = Vec::new();
        while let Some(batch) = reader.next_batch().await? {
            batches.push(batch);
        }
        Ok(batches)
    }

    fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
        concat_batches(schema, batches).expect("batches concatenate")
    }

    /// Writes `batches_per_subpartition` batches to each of `subpartitions - 1`
    /// subpartitions (the last stays empty), interleaved; returns what each
    /// subpartition was given.
    async fn write_partition(
        root: &ShuffleRoot,
        id: ResultPartitionId,
        options: &BlockingOptions,
        subpartitions: usize,
        batches_per_subpartition: usize,
        rows: usize,
    ) -> (PartitionFileStats, Vec<Vec<RecordBatch>>) {
        let schema = all_types_schema();
        let mut writer = BlockingPartitionWriter::try_new(
            root,
            JOB,
            id,
            Arc::clone(&schema),
            subpartitions,
            options,
        )
        .await
        .expect("writer starts");
        let mut written = vec![Vec::new(); subpartitions];
        for round in 0..batches_per_subpartition {
            for (subpartition, batches) in written.iter_mut().enumerate().take(subpartitions - 1) {
                let seed = round * 100 + subpartition;
                let batch = all_types_batch(&schema, seed, rows + (seed % 7));
                batches.push(batch.clone());
                // Batches without rows are skipped.
                writer
                    .write(subpartition, batch.slice(0, 0))
                    .await
                    .expect("write empty");
                writer.write(subpartition, batch).await.expect("write");
            }
        }
        let stats = writer.finish().await.expect("finish");
        (stats, written)
    }

    async fn check_round_trip(
        root: &ShuffleRoot,
        format: BlockingFormat,
        compression: Compression,
    ) {
        let options = BlockingOptions {
            format,
            compression,
            buffer_bytes: 24 * 1024,
        };
        let schema = all_types_schema();
        let (stats, written) = write_partition(root, id(1), &options, 4, 6, 40).await;
        let total_rows: usize = written.iter().flatten().map(|b| b.num_rows()).sum();
        assert_eq!(stats.rows, total_rows as u64);
        assert!(stats.blocks > 3, "{format}/{compression}: {stats:?}");
        let meta = root
            .store()
            .head(&root.partition_path(JOB, &id(1), format.extension()))
            .await
            .expect("file exists");
        assert_eq!(meta.size, stats.bytes);

        for (subpartition, expected) in written.iter().enumerate() {
            let mut reader = SubpartitionReader::open(root, JOB, id(1), subpartition, format)
                .await
                .expect("open");
            assert_eq!(reader.schema(), schema, "{format}/{compression}");
            if expected.is_empty() {
                assert_eq!(reader.num_blocks(), 0);
            } else {
                assert!(
                    reader.num_blocks() > 1,
                    "{format}/{compression}: several blocks"
                );
            }
            let mut actual = Vec::new();
            while let Some(batch) = reader.next_batch().await.expect("next batch") {
                assert_eq!(batch.schema(), schema, "{format}/{compression}");
                actual.push(batch);
            }
            assert!(reader.next_batch().await.expect("after end").is_none());
            assert_eq!(reader.blocks_read(), reader.num_blocks() as u64);
            if format == BlockingFormat::Ipc {
                // IPC keeps the written batches as they were.
                assert_eq!(&actual, expected, "{format}/{compression}");
            }
            assert_eq!(
                concat(&schema, &actual),
                concat(&schema, expected),
                "{format}/{compression} subpartition {subpartition}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trip_every_type_format_and_compression() {
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
                let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
                check_round_trip(&root, format, compression).await;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_without_columns_keep_their_rows() {
        let schema = Arc::new(Schema::empty());
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
            let options = BlockingOptions {
                format,
                ..BlockingOptions::default()
            };
            let mut writer = BlockingPartitionWriter::try_new(
                &root,
                JOB,
                id(7),
                Arc::clone(&schema),
                2,
                &options,
            )
            .await
            .expect("writer starts");
            for rows in [3, 0, 5] {
                let batch =
                    crate::event::batch_of(Arc::clone(&schema), vec![], rows).expect("batch");
                writer.write(1, batch).await.expect("write");
            }
            let stats = writer.finish().await.expect("finish");
            assert_eq!(stats.rows, 8, "{format}");
            let mut reader = SubpartitionReader::open(&root, JOB, id(7), 1, format)
                .await
                .expect("open");
            let mut rows = 0;
            while let Some(batch) = reader.next_batch().await.expect("next batch") {
                assert_eq!(batch.num_columns(), 0, "{format}");
                rows += batch.num_rows();
            }
            assert_eq!(rows, 8, "{format}: every row read back");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn round_trip_in_a_local_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = ShuffleRoot::try_new(
            dir.path().to_str().expect("utf-8 path"),
            &Default::default(),
        )
        .expect("root");
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            check_round_trip(&root, format, Compression::Lz4).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_fetch_only_their_own_blocks() {
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
            let options = BlockingOptions {
                format,
                compression: Compression::None,
                buffer_bytes: 16 * 1024,
            };
            let (stats, written) = write_partition(&root, id(2), &options, 5, 4, 60).await;
            let mut all_block_bytes = 0;
            for (subpartition, expected) in written.iter().enumerate() {
                let mut reader = SubpartitionReader::open(&root, JOB, id(2), subpartition, format)
                    .await
                    .expect("open");
                let after_open = reader.bytes_read();
                let own = reader.block_bytes();
                let mut rows = 0;
                while let Some(batch) = reader.next_batch().await.expect("next batch") {
                    rows += batch.num_rows();
                }
                assert_eq!(rows, expected.iter().map(|b| b.num_rows()).sum::<usize>());
                assert_eq!(reader.blocks_read(), reader.num_blocks() as u64);
                assert_eq!(reader.bytes_read() - after_open, own, "{format}");
                if !expected.is_empty() {
                    assert!(own > 0);
                    assert!(own < stats.bytes / 2, "{format}: {own} of {}", stats.bytes);
                }
                all_block_bytes += own;
            }
            // Each block belongs to exactly one subpartition.
            assert!(all_block_bytes < stats.bytes);
            assert!(all_block_bytes > stats.bytes / 2, "{format}");
        }
    }

    /// Writes a small partition and returns its path, bytes and what each
    /// subpartition holds.
    async fn small_partition(
        root: &ShuffleRoot,
        format: BlockingFormat,
        compression: Compression,
    ) -> (object_store::path::Path, Bytes, Vec<RecordBatch>) {
        let options = BlockingOptions {
            format,
            compression,
            buffer_bytes: 4 * 1024,
        };
        let schema = all_types_schema();
        let (_, written) = write_partition(root, id(3), &options, 3, 2, 8).await;
        let path = root.partition_path(JOB, &id(3), format.extension());
        let bytes = root
            .store()
            .get(&path)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        let expected = written.iter().map(|b| concat(&schema, b)).collect();
        (path, bytes, expected)
    }

    /// Reads every subpartition; returns how many failed as corrupt, and
    /// panics when one returns different data or another kind of error.
    async fn read_damaged(
        root: &ShuffleRoot,
        format: BlockingFormat,
        expected: &[RecordBatch],
        what: &str,
    ) -> usize {
        let schema = all_types_schema();
        let mut corrupt = 0;
        for (subpartition, expected) in expected.iter().enumerate() {
            match read_all(root, id(3), subpartition, format).await {
                Err(Error::PartitionCorrupt { .. }) => corrupt += 1,
                Err(e) => panic!("{what}: subpartition {subpartition}: unexpected error {e}"),
                Ok(batches) => assert_eq!(
                    &concat(&schema, &batches),
                    expected,
                    "{what}: subpartition {subpartition} read different data"
                ),
            }
        }
        corrupt
    }

    /// Offsets to damage: every one near both ends, a dense sample between.
    fn sample_offsets(len: usize) -> Vec<usize> {
        let stride = (len / 700).max(1);
        (0..len)
            .filter(|&o| o < 96 || o + 1024 > len || o % stride == 0)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn truncated_files_are_corrupt() {
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            for compression in [Compression::None, Compression::Zstd] {
                let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
                let (path, bytes, expected) = small_partition(&root, format, compression).await;
                for len in sample_offsets(bytes.len()) {
                    let truncated = PutPayload::from(bytes.slice(..len));
                    root.store().put(&path, truncated).await.expect("put");
                    let what = format!(
                        "{format}/{compression} truncated to {len} of {}",
                        bytes.len()
                    );
                    let corrupt = read_damaged(&root, format, &expected, &what).await;
                    assert_eq!(corrupt, expected.len(), "{what}");
                }
            }
        }
    }

    /// Whether damage at `offset` of a Parquet partition file must be noticed:
    /// the row groups and the footer (the rest is the header magic and the
    /// page index, which the reader never uses).
    fn parquet_verified(bytes: &Bytes, offset: usize) -> bool {
        let (footer_start, index) = parquet_index(bytes);
        (4..index.data_len as usize).contains(&offset) || offset >= footer_start
    }

    /// Where the footer of a Parquet partition file starts, and its index,
    /// read with nothing but the parquet crate.
    fn parquet_index(bytes: &Bytes) -> (usize, PartitionIndex) {
        let len = bytes.len();
        let mut footer_len = [0u8; 4];
        footer_len.copy_from_slice(&bytes[len - 8..len - 4]);
        let footer_start = len - 8 - u32::from_le_bytes(footer_len) as usize;
        let metadata = ::parquet::file::metadata::ParquetMetaDataReader::decode_metadata(
            &bytes[footer_start..len - 8],
        )
        .expect("footer");
        let index = metadata
            .file_metadata()
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|kv| kv.key == PARQUET_INDEX_KEY))
            .and_then(|kv| kv.value.clone())
            .expect("index");
        (
            footer_start,
            serde_json::from_str(&index).expect("index json"),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flipped_bytes_are_corrupt_or_harmless() {
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            for compression in [Compression::None, Compression::Lz4] {
                let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
                let (path, bytes, expected) = small_partition(&root, format, compression).await;
                for (i, offset) in sample_offsets(bytes.len()).into_iter().enumerate() {
                    let mut damaged = bytes.to_vec();
                    damaged[offset] ^= 1 << (i % 8);
                    root.store()
                        .put(&path, PutPayload::from(damaged))
                        .await
                        .expect("put");
                    let what =
                        format!("{format}/{compression} flip at {offset} of {}", bytes.len());
                    let corrupt = read_damaged(&root, format, &expected, &what).await;
                    // Every byte of an IPC file is covered by a check.
                    let verified = match format {
                        BlockingFormat::Ipc => true,
                        BlockingFormat::Parquet => parquet_verified(&bytes, offset),
                    };
                    if verified {
                        assert!(corrupt > 0, "{what}: went unnoticed");
                    }
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn empty_and_foreign_files_are_corrupt() {
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
            let path = root.partition_path(JOB, &id(3), format.extension());
            for content in [
                &b""[..],
                b"PAR1",
                b"WEIRIPC1",
                &[0u8; 100][..],
                b"PAR1PAR1PAR1",
            ] {
                root.store()
                    .put(&path, PutPayload::from(Bytes::copy_from_slice(content)))
                    .await
                    .expect("put");
                let result = SubpartitionReader::open(&root, JOB, id(3), 0, format).await;
                assert!(
                    matches!(result, Err(Error::PartitionCorrupt { .. })),
                    "{format} {content:?}: {result:?}"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn missing_and_aborted_partitions_are_not_found() {
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
            let result = SubpartitionReader::open(&root, JOB, id(4), 0, format).await;
            match result {
                Err(Error::PartitionNotFound { partition, path }) => {
                    assert_eq!(partition, id(4));
                    assert_eq!(
                        path,
                        root.partition_path(JOB, &id(4), format.extension())
                            .to_string()
                    );
                }
                other => panic!("{format}: expected PartitionNotFound, got {other:?}"),
            }

            let schema = all_types_schema();
            let options = BlockingOptions {
                format,
                compression: Compression::None,
                buffer_bytes: 1024,
            };
            let mut writer = BlockingPartitionWriter::try_new(
                &root,
                JOB,
                id(5),
                Arc::clone(&schema),
                2,
                &options,
            )
            .await
            .expect("writer");
            for seed in 0..4 {
                writer
                    .write(seed % 2, all_types_batch(&schema, seed, 30))
                    .await
                    .expect("write");
            }
            writer.abort().await;
            let result = read_all(&root, id(5), 0, format).await;
            assert!(
                matches!(result, Err(Error::PartitionNotFound { .. })),
                "{format}: {result:?}"
            );
            let err = result.expect_err("not found");
            assert_eq!(err.lost_partition(), Some(&id(5)));
        }
    }

    /// A file gone after its reader opened it: the read fails as not
    /// found, and so does a read tried again (a block fetched ahead is
    /// not kept failed).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_gone_after_open_is_not_found_each_time() {
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
            let (path, _, _) = small_partition(&root, format, Compression::None).await;
            let mut reader = SubpartitionReader::open(&root, JOB, id(3), 0, format)
                .await
                .expect("opens");
            root.store().delete(&path).await.expect("deletes");
            for _ in 0..2 {
                let result = reader.next_batch().await;
                assert!(
                    matches!(result, Err(Error::PartitionNotFound { .. })),
                    "{format}: {result:?}"
                );
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn local_file_appears_only_after_finish() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = ShuffleRoot::try_new(
            dir.path().to_str().expect("utf-8 path"),
            &Default::default(),
        )
        .expect("root");
        let schema = Arc::new(Schema::new(vec![Field::new(
            "payload",
            DataType::Binary,
            false,
        )]));
        // Large enough for the upload to go multipart (parts reach the disk):
        // 12 batches of 1 MiB of distinct values.
        let batches: Vec<RecordBatch> = (0..12_u64)
            .map(|i| {
                let values = (0..16_u64).map(|row| {
                    let mut state = (i * 16 + row + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    (0..64 * 1024)
                        .map(|_| {
                            state ^= state << 13;
                            state ^= state >> 7;
                            state ^= state << 17;
                            state as u8
                        })
                        .collect::<Vec<u8>>()
                });
                let array = BinaryArray::from_iter_values(values);
                RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(array)]).expect("batch")
            })
            .collect();
        for (attempt, format) in [BlockingFormat::Ipc, BlockingFormat::Parquet]
            .into_iter()
            .enumerate()
        {
            for finish in [true, false] {
                let id = ResultPartitionId {
                    dataset: 1,
                    producer: 0,
                    attempt: attempt as u32 * 2 + u32::from(finish),
                };
                let options = BlockingOptions {
                    format,
                    compression: Compression::None,
                    buffer_bytes: 1024 * 1024,
                };
                let mut writer = BlockingPartitionWriter::try_new(
                    &root,
                    JOB,
                    id.clone(),
                    Arc::clone(&schema),
                    3,
                    &options,
                )
                .await
                .expect("writer");
                let file = dir.path().join(writer.path().to_string());
                for (i, batch) in batches.iter().enumerate() {
                    writer.write(i % 3, batch.clone()).await.expect("write");
                    assert!(!file.exists(), "{format}: visible before finish");
                }
                // The upload went multipart: its parts are staged beside the
                // file, which itself does not exist yet.
                let staged = format!("{}#", writer.path().filename().expect("file name"));
                let staging = std::fs::read_dir(file.parent().expect("parent"))
                    .expect("partition dir")
                    .filter_map(|entry| entry.ok())
                    .any(|entry| entry.file_name().to_string_lossy().starts_with(&staged));
                assert!(staging, "{format}: the upload is multipart");
                if finish {
                    let stats = writer.finish().await.expect("finish");
                    assert!(stats.bytes > 12 * 1024 * 1024);
                    assert_eq!(
                        std::fs::metadata(&file).expect("visible").len(),
                        stats.bytes
                    );
                    let expected: Vec<_> = batches.iter().skip(1).step_by(3).cloned().collect();
                    let actual = read_all(&root, id, 1, format).await.expect("read");
                    assert_eq!(concat(&schema, &actual), concat(&schema, &expected));
                } else {
                    writer.abort().await;
                    assert!(!file.exists(), "{format}: visible after abort");
                    let result = read_all(&root, id, 0, format).await;
                    assert!(matches!(result, Err(Error::PartitionNotFound { .. })));
                }
            }
        }
        // Nothing but complete partition files is left behind.
        let job_dir = dir.path().join(JOB).join("d1");
        let mut names: Vec<_> = std::fs::read_dir(job_dir)
            .expect("job dir")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8")
            })
            .collect();
        names.sort();
        assert_eq!(names, ["p0-a1.ipc", "p0-a3.parquet"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parquet_files_are_plain_parquet_grouped_by_subpartition() {
        let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
        let options = BlockingOptions {
            format: BlockingFormat::Parquet,
            compression: Compression::Zstd,
            buffer_bytes: 16 * 1024,
        };
        let schema = all_types_schema();
        let (stats, written) = write_partition(&root, id(6), &options, 3, 5, 30).await;
        let path = root.partition_path(JOB, &id(6), "parquet");
        let bytes = root
            .store()
            .get(&path)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
            .expect("a standard reader opens it");
        assert_eq!(reader.metadata().num_row_groups() as u64, stats.blocks);
        // A standard reader also shows the key-value metadata (the index).
        assert_eq!(reader.schema().fields(), schema.fields());
        assert!(reader.schema().metadata().contains_key(PARQUET_INDEX_KEY));
        let rows: usize = reader
            .build()
            .expect("reader")
            .map(|batch| batch.expect("a standard reader decodes it").num_rows())
            .sum();
        assert_eq!(rows as u64, stats.rows);

        // Row group i is block i of the index; the row groups of one
        // subpartition, in order, hold exactly what was written to it.
        let (_, index) = parquet_index(&bytes);
        let mut by_subpartition = vec![Vec::new(); written.len()];
        for (row_group, block) in index.blocks.iter().enumerate() {
            assert_eq!(block.row_group, Some(row_group as u32));
            let batches = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())
                .expect("reader")
                .with_row_groups(vec![row_group])
                .build()
                .expect("reader")
                .map(|batch| batch.expect("row group decodes"));
            by_subpartition[block.subpartition as usize].extend(batches);
        }
        for (actual, expected) in by_subpartition.iter().zip(&written) {
            assert_eq!(concat(&schema, actual), concat(&schema, expected));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn misuse_is_an_error_not_a_panic() {
        let root = ShuffleRoot::try_new("memory://", &Default::default()).expect("root");
        let schema = all_types_schema();
        let options = BlockingOptions::default();
        assert!(matches!(
            BlockingPartitionWriter::try_new(&root, JOB, id(8), Arc::clone(&schema), 0, &options)
                .await,
            Err(Error::Config(_))
        ));
        let mut writer =
            BlockingPartitionWriter::try_new(&root, JOB, id(8), Arc::clone(&schema), 2, &options)
                .await
                .expect("writer");
        let batch = all_types_batch(&schema, 0, 5);
        assert!(matches!(
            writer.write(2, batch.clone()).await,
            Err(Error::Config(_))
        ));
        let other = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)])),
            vec![Arc::new(Int32Array::from(vec![1]))],
        )
        .expect("batch");
        assert!(matches!(writer.write(0, other).await, Err(Error::Arrow(_))));
        writer.write(0, batch).await.expect("write");
        writer.finish().await.expect("finish");
        assert!(matches!(
            SubpartitionReader::open(&root, JOB, id(8), 2, BlockingFormat::Ipc).await,
            Err(Error::Config(_))
        ));
        let empty = read_all(&root, id(8), 1, BlockingFormat::Ipc)
            .await
            .expect("empty subpartition");
        assert!(empty.is_empty());
        // The wrong format's file does not exist.
        assert!(matches!(
            SubpartitionReader::open(&root, JOB, id(8), 0, BlockingFormat::Parquet).await,
            Err(Error::PartitionNotFound { .. })
        ));
    }

    #[test]
    fn names_round_trip() {
        for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
            assert_eq!(
                format.to_string().parse::<BlockingFormat>().ok(),
                Some(format)
            );
        }
        assert_eq!(BlockingFormat::Parquet.extension(), "parquet");
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            assert_eq!(
                compression.to_string().parse::<Compression>().ok(),
                Some(compression)
            );
        }
        assert!("snappy".parse::<Compression>().is_err());
        assert!("csv".parse::<BlockingFormat>().is_err());
        let options = BlockingOptions::default();
        assert_eq!(options.format, BlockingFormat::Ipc);
        assert_eq!(options.compression, Compression::None);
        assert_eq!(options.buffer_bytes, 8 * 1024 * 1024);
    }
}
