//! The `parquet` partition file format.
//!
//! A standard Parquet file written by [`ArrowWriter`]: each block is one row
//! group, so row groups are grouped by subpartition. The index (per block:
//! subpartition, row group, byte range, rows, CRC32 of the byte range) is
//! JSON in the key-value metadata under [`PARQUET_INDEX_KEY`].
//!
//! The Parquet footer itself is protected too: [`PARQUET_FOOTER_CRC_KEY`]
//! holds, as eight hex digits, the CRC32 of the footer's Thrift bytes in which
//! those eight digits read `00000000`. The writer patches the digits in place
//! after the footer is encoded; the reader verifies them before decoding the
//! footer. So schema, codec or offset damage in the footer is caught as well
//! as damage to the row groups, and nothing unverified reaches a decoder.
//!
//! Parquet counts rows by their columns, so batches without columns (a
//! `count(*)` over a join that keeps none) are written as one all-null
//! column, [`ROWS_ONLY_COLUMN`], and read back without it.

use std::sync::Arc;

use ::parquet::arrow::ArrowWriter;
use ::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use ::parquet::basic::{Compression as ParquetCodec, ZstdLevel};
use ::parquet::errors::ParquetError;
use ::parquet::file::metadata::{KeyValue, ParquetMetaDataReader};
use ::parquet::file::properties::WriterProperties;
use ::parquet::file::reader::{ChunkReader, Length};
use arrow::array::{RecordBatch, new_null_array};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use bytes::{Buf, Bytes};

use super::Compression;
use super::index::{BlockEntry, PartitionIndex, crc32};
use super::reader::{BlockDecoder, Fetcher, OpenedPartition, Tail};
use super::writer::EncodedBlock;
use crate::event::batch_of;
use crate::{Result, cpu};

/// Key-value metadata key of the partition index in `parquet` partition files.
pub const PARQUET_INDEX_KEY: &str = "weir.partition.index";
/// Key-value metadata key of the footer checksum in `parquet` partition files.
pub const PARQUET_FOOTER_CRC_KEY: &str = "weir.partition.footer_crc32";

const PAR1: &[u8; 4] = b"PAR1";
/// Footer length (u32 LE) + "PAR1".
const END_LEN: u64 = 8;
const CRC_PLACEHOLDER: &[u8; 8] = b"00000000";
/// The column standing for the rows of batches without columns.
pub const ROWS_ONLY_COLUMN: &str = "weir.rows";

/// Rows per batch handed to consumers.
const DECODE_BATCH_ROWS: usize = 8192;

fn internal(message: String) -> crate::Error {
    ParquetError::General(message).into()
}

/// The schema a file of batches of `schema` is written with: `schema`, or
/// [`ROWS_ONLY_COLUMN`] alone when it has no column.
fn file_schema(schema: SchemaRef) -> SchemaRef {
    if !schema.fields().is_empty() {
        return schema;
    }
    Arc::new(Schema::new_with_metadata(
        vec![Field::new(ROWS_ONLY_COLUMN, DataType::Boolean, true)],
        schema.metadata().clone(),
    ))
}

/// Whether a file's schema stands for batches without columns.
fn rows_only(schema: &Schema) -> bool {
    schema.fields().len() == 1 && schema.field(0).name() == ROWS_ONLY_COLUMN
}

/// Encodes the blocks of a `parquet` partition file into an in-memory
/// [`ArrowWriter`], draining the bytes of each row group as it is flushed.
pub(super) struct ParquetBlockEncoder {
    writer: ArrowWriter<Vec<u8>>,
    /// The file's schema, when it stands for batches without columns.
    rows_only: Option<SchemaRef>,
    compression: Compression,
    /// Bytes drained so far: the offset of the next block.
    offset: u64,
}

impl ParquetBlockEncoder {
    /// The encoder and the file's header ("PAR1").
    pub fn try_new(schema: SchemaRef, compression: Compression) -> Result<(Self, Bytes)> {
        let codec = match compression {
            Compression::None => ParquetCodec::UNCOMPRESSED,
            Compression::Lz4 => ParquetCodec::LZ4_RAW,
            Compression::Zstd => ParquetCodec::ZSTD(ZstdLevel::default()),
        };
        // Row groups are cut by the partition writer only (one per block).
        let properties = WriterProperties::builder()
            .set_compression(codec)
            .set_max_row_group_row_count(None)
            .set_max_row_group_bytes(None)
            .build();
        let written = file_schema(schema);
        let rows_only = rows_only(&written).then(|| Arc::clone(&written));
        let mut writer = ArrowWriter::try_new(Vec::new(), written, Some(properties))?;
        writer.sync()?;
        let header = std::mem::take(writer.inner_mut());
        let encoder = Self {
            writer,
            rows_only,
            compression,
            offset: header.len() as u64,
        };
        Ok((encoder, header.into()))
    }

    /// The compression blocks are written with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Encodes `batches` (one subpartition's, in order) as one row group.
    pub fn encode_block(&mut self, batches: &[RecordBatch]) -> Result<EncodedBlock> {
        let row_group = self.writer.flushed_row_groups().len();
        for batch in batches {
            match &self.rows_only {
                Some(schema) => {
                    let rows = new_null_array(&DataType::Boolean, batch.num_rows());
                    self.writer
                        .write(&RecordBatch::try_new(Arc::clone(schema), vec![rows])?)?;
                }
                None => self.writer.write(batch)?,
            }
        }
        self.writer.flush()?;
        self.writer.sync()?;
        let bytes = std::mem::take(self.writer.inner_mut());
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let start = self.offset;
        let end = start + bytes.len() as u64;

        // The index is only right if the drained bytes are exactly this row
        // group: check it rather than trust the writer's internals.
        let flushed = self.writer.flushed_row_groups();
        if flushed.len() != row_group + 1 {
            return Err(internal(format!(
                "expected one new row group, the writer has {} instead of {}",
                flushed.len(),
                row_group + 1
            )));
        }
        let metadata = &flushed[row_group];
        if u64::try_from(metadata.num_rows()).ok() != Some(rows) {
            return Err(internal(format!(
                "row group {row_group} has {} rows instead of {rows}",
                metadata.num_rows()
            )));
        }
        for column in metadata.columns() {
            let (column_start, column_len) = column.byte_range();
            if column_start < start || column_start + column_len > end {
                return Err(internal(format!(
                    "column chunk {column_start}+{column_len} of row group {row_group} lies \
                     outside the bytes drained for it ({start}..{end})"
                )));
            }
        }
        self.offset = end;
        Ok(EncodedBlock {
            crc32: crc32(&bytes),
            rows,
            row_group: Some(row_group as u32),
            bytes: bytes.into(),
        })
    }

    /// Writes the index and the footer; returns the rest of the file.
    pub fn finish(mut self, index: PartitionIndex) -> Result<Bytes> {
        let index = serde_json::to_string(&index)
            .map_err(|e| internal(format!("cannot encode the partition index: {e}")))?;
        self.writer
            .append_key_value_metadata(KeyValue::new(PARQUET_INDEX_KEY.to_string(), index));
        self.writer.append_key_value_metadata(KeyValue::new(
            PARQUET_FOOTER_CRC_KEY.to_string(),
            String::from_utf8_lossy(CRC_PLACEHOLDER).into_owned(),
        ));
        self.writer.finish()?;
        self.writer.sync()?;
        let mut tail = std::mem::take(self.writer.inner_mut());
        seal_footer(&mut tail).map_err(internal)?;
        Ok(tail.into())
    }
}

/// The footer length stored in the last eight bytes of `end`.
fn footer_len(end: &[u8]) -> Result<usize, String> {
    let len = end.len();
    if len < END_LEN as usize || &end[len - 4..] != PAR1 {
        return Err("the file does not end with a Parquet footer".to_string());
    }
    let mut footer_len = [0u8; 4];
    footer_len.copy_from_slice(&end[len - 8..len - 4]);
    Ok(u32::from_le_bytes(footer_len) as usize)
}

/// Where the footer lies within `tail`, which ends with it.
fn footer_range(tail: &[u8]) -> Result<std::ops::Range<usize>, String> {
    let footer_len = footer_len(tail)?;
    let end = tail.len() - END_LEN as usize;
    let start = end
        .checked_sub(footer_len)
        .ok_or_else(|| "footer length exceeds the file".to_string())?;
    Ok(start..end)
}

/// The offset, within the Thrift-encoded footer, of the eight hex digits of
/// [`PARQUET_FOOTER_CRC_KEY`]'s value.
fn footer_crc_position(footer: &[u8]) -> Result<usize, String> {
    // Thrift compact KeyValue: key bytes, then field 2 (binary, header 0x18)
    // of length 8.
    let mut pattern = PARQUET_FOOTER_CRC_KEY.as_bytes().to_vec();
    pattern.extend_from_slice(&[0x18, 0x08]);
    let mut found = footer
        .windows(pattern.len())
        .enumerate()
        .filter(|(_, window)| *window == pattern.as_slice())
        .map(|(position, _)| position + pattern.len());
    match (found.next(), found.next()) {
        (Some(position), None) if position + CRC_PLACEHOLDER.len() <= footer.len() => Ok(position),
        (None, _) => Err(format!("the footer has no {PARQUET_FOOTER_CRC_KEY}")),
        _ => Err(format!(
            "the footer's {PARQUET_FOOTER_CRC_KEY} is malformed"
        )),
    }
}

/// The CRC32 of `footer` with the checksum digits at `position` read as
/// `00000000`.
fn footer_crc(footer: &[u8], position: usize) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&footer[..position]);
    hasher.update(CRC_PLACEHOLDER);
    hasher.update(&footer[position + CRC_PLACEHOLDER.len()..]);
    hasher.finalize()
}

/// Writes the footer checksum into `tail` (which ends with the footer).
fn seal_footer(tail: &mut [u8]) -> Result<(), String> {
    let range = footer_range(tail)?;
    let footer = &mut tail[range];
    let position = footer_crc_position(footer)?;
    let digits = format!("{:08x}", footer_crc(footer, position));
    footer[position..position + CRC_PLACEHOLDER.len()].copy_from_slice(digits.as_bytes());
    Ok(())
}

/// Checks the footer checksum of the Thrift-encoded `footer`.
fn verify_footer(footer: &[u8]) -> Result<(), String> {
    let position = footer_crc_position(footer)?;
    let digits = &footer[position..position + CRC_PLACEHOLDER.len()];
    let stored = std::str::from_utf8(digits)
        .ok()
        .filter(|d| {
            d.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
        .and_then(|d| u32::from_str_radix(d, 16).ok())
        .ok_or_else(|| "the footer checksum is not eight hex digits".to_string())?;
    let actual = footer_crc(footer, position);
    if stored != actual {
        return Err(format!(
            "footer checksum mismatch: stored {stored:08x}, computed {actual:08x}"
        ));
    }
    Ok(())
}

/// Verifies and decodes the footer of a file whose footer starts at
/// `footer_start`.
fn parse_footer(
    footer: &[u8],
    footer_start: u64,
) -> Result<(PartitionIndex, SchemaRef, ArrowReaderMetadata), String> {
    verify_footer(footer)?;
    let metadata = ParquetMetaDataReader::decode_metadata(footer)
        .map_err(|e| format!("unreadable Parquet footer: {e}"))?;
    let index = metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|kv| kv.key == PARQUET_INDEX_KEY))
        .and_then(|kv| kv.value.as_deref())
        .ok_or_else(|| format!("the footer has no {PARQUET_INDEX_KEY}"))?;
    let index: PartitionIndex =
        serde_json::from_str(index).map_err(|e| format!("unreadable partition index: {e}"))?;
    index.validate(PAR1.len() as u64, true)?;
    if index.data_len > footer_start {
        return Err(format!(
            "the data region ends at {} after the footer's start {footer_start}",
            index.data_len
        ));
    }
    if metadata.num_row_groups() != index.blocks.len() {
        return Err(format!(
            "the index lists {} blocks but the file has {} row groups",
            index.blocks.len(),
            metadata.num_row_groups()
        ));
    }
    for (block, row_group) in index.blocks.iter().zip(metadata.row_groups()) {
        if u64::try_from(row_group.num_rows()).ok() != Some(block.rows) {
            return Err(format!(
                "row group {:?} has {} rows but the index says {}",
                block.row_group,
                row_group.num_rows(),
                block.rows
            ));
        }
        for column in row_group.columns() {
            let (start, len) = column.byte_range();
            if start < block.offset || start.saturating_add(len) > block.offset + block.length {
                return Err(format!(
                    "a column chunk of row group {:?} lies outside its block",
                    block.row_group
                ));
            }
        }
    }
    let metadata = ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())
        .map_err(|e| format!("the Parquet schema cannot be read as Arrow: {e}"))?;
    // The reader folds key-value metadata into the schema's; ours is not the
    // producer's schema metadata.
    let schema = metadata.schema();
    let mut schema_metadata = schema.metadata().clone();
    schema_metadata.remove(PARQUET_INDEX_KEY);
    schema_metadata.remove(PARQUET_FOOTER_CRC_KEY);
    let fields = match rows_only(schema) {
        true => Fields::empty(),
        false => schema.fields().clone(),
    };
    let schema = Arc::new(Schema::new_with_metadata(fields, schema_metadata));
    Ok((index, schema, metadata))
}

/// Opens a `parquet` partition file of `size` bytes whose last bytes are
/// `tail`.
pub(super) async fn open(fetcher: &mut Fetcher, size: u64, tail: &Tail) -> Result<OpenedPartition> {
    let header_and_end = PAR1.len() as u64 + END_LEN;
    if size < header_and_end {
        return Err(fetcher.corrupt(format!("file of {size} bytes is too short")));
    }
    let end = fetcher.range_in(tail, size - END_LEN..size).await?;
    let footer_len = footer_len(&end).map_err(|reason| fetcher.corrupt(reason))? as u64;
    let footer_start = (size - END_LEN)
        .checked_sub(footer_len)
        .filter(|start| *start >= PAR1.len() as u64)
        .ok_or_else(|| {
            fetcher.corrupt(format!(
                "footer length {footer_len} does not fit a file of {size} bytes"
            ))
        })?;
    let footer = fetcher.range_in(tail, footer_start..size - END_LEN).await?;
    let (index, schema, metadata) =
        cpu::run(move || cpu::decode_guarded(|| parse_footer(&footer, footer_start)))
            .await
            .map_err(|reason| fetcher.corrupt(reason))?;
    Ok(OpenedPartition {
        index,
        schema: Arc::clone(&schema),
        decoder: BlockDecoder::Parquet(ParquetBlockDecoder {
            metadata,
            schema,
            file_len: size,
        }),
    })
}

/// Decodes the row groups of a `parquet` partition file.
#[derive(Debug)]
pub(super) struct ParquetBlockDecoder {
    metadata: ArrowReaderMetadata,
    schema: SchemaRef,
    file_len: u64,
}

impl ParquetBlockDecoder {
    /// Decodes one row group whose bytes (the block) were verified.
    pub fn decode(&self, bytes: Bytes, block: &BlockEntry) -> Result<Vec<RecordBatch>, String> {
        let row_group = block
            .row_group
            .ok_or_else(|| "block without a row group".to_string())?
            as usize;
        let chunk = RowGroupBytes {
            offset: block.offset,
            bytes,
            file_len: self.file_len,
        };
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(chunk, self.metadata.clone())
                .with_row_groups(vec![row_group])
                .with_batch_size(DECODE_BATCH_ROWS)
                .build()
                .map_err(|e| format!("row group {row_group}: {e}"))?;
        reader
            .map(|batch| {
                let batch = batch.map_err(|e| format!("row group {row_group}: {e}"))?;
                let columns = match self.schema.fields().is_empty() {
                    true => Vec::new(),
                    false => batch.columns().to_vec(),
                };
                batch_of(Arc::clone(&self.schema), columns, batch.num_rows())
                    .map_err(|e| format!("row group {row_group}: {e}"))
            })
            .collect()
    }
}

/// The bytes of one row group, addressed by absolute file offsets.
struct RowGroupBytes {
    offset: u64,
    bytes: Bytes,
    file_len: u64,
}

impl RowGroupBytes {
    fn range(&self, start: u64, length: usize) -> Result<std::ops::Range<usize>, ParquetError> {
        let relative = start
            .checked_sub(self.offset)
            .and_then(|r| usize::try_from(r).ok());
        match relative {
            Some(r)
                if r.checked_add(length)
                    .is_some_and(|end| end <= self.bytes.len()) =>
            {
                Ok(r..r + length)
            }
            _ => Err(ParquetError::EOF(format!(
                "{length} bytes at offset {start} lie outside the row group at {}+{}",
                self.offset,
                self.bytes.len()
            ))),
        }
    }
}

impl Length for RowGroupBytes {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for RowGroupBytes {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> Result<Self::T, ParquetError> {
        let range = self.range(start, 0)?;
        Ok(self.bytes.slice(range.start..).reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> Result<Bytes, ParquetError> {
        Ok(self.bytes.slice(self.range(start, length)?))
    }
}
