//! The `ipc` partition file format.
//!
//! ```text
//! magic "WEIRIPC1"
//! schema segment     an Arrow IPC stream holding only the schema
//! block*             each a complete Arrow IPC stream (schema, dictionaries,
//!                    record batches, end-of-stream) of one subpartition
//! footer             JSON: the index and the schema segment's range and CRC32
//! trailer            footer length (u64 LE), footer CRC32 (u32 LE), magic
//! ```
//!
//! Every byte is covered: the magics are compared, the schema segment, the
//! blocks and the footer carry CRC32s, and the footer's length, the data
//! region's length and the file size must agree.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::Compression;
use super::index::{PartitionIndex, crc32};
use super::reader::{BlockDecoder, Fetcher, OpenedPartition, Tail};
use super::writer::EncodedBlock;
use crate::{Result, cpu};

/// The first and last eight bytes of an `ipc` partition file.
pub(super) const MAGIC: &[u8; 8] = b"WEIRIPC1";
/// Footer length (8) + footer CRC32 (4) + magic (8).
const TRAILER_LEN: u64 = 20;
const MAGIC_LEN: u64 = MAGIC.len() as u64;

/// Where the schema segment lies, and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct SchemaSegment {
    offset: u64,
    length: u64,
    crc32: u32,
}

#[derive(Debug, Serialize, Deserialize)]
struct IpcFooter {
    index: PartitionIndex,
    schema: SchemaSegment,
}

fn write_options(compression: Compression) -> Result<IpcWriteOptions> {
    let codec = match compression {
        Compression::None => None,
        Compression::Lz4 => Some(CompressionType::LZ4_FRAME),
        Compression::Zstd => Some(CompressionType::ZSTD),
    };
    Ok(IpcWriteOptions::default().try_with_compression(codec)?)
}

/// Encodes `batches` as one complete Arrow IPC stream.
fn encode_stream(
    schema: &SchemaRef,
    options: &IpcWriteOptions,
    batches: &[RecordBatch],
) -> Result<Vec<u8>> {
    let mut writer = StreamWriter::try_new_with_options(Vec::new(), schema, options.clone())?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    Ok(writer.into_inner()?)
}

/// Decodes one complete Arrow IPC stream into its schema and batches.
fn decode_stream(bytes: Bytes) -> Result<(SchemaRef, Vec<RecordBatch>), String> {
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from(bytes);
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        if let Some(batch) = decoder.decode(&mut buffer).map_err(|e| e.to_string())? {
            batches.push(batch);
        }
    }
    decoder.finish().map_err(|e| e.to_string())?;
    let schema = decoder
        .schema()
        .ok_or_else(|| "the IPC stream has no schema".to_string())?;
    Ok((schema, batches))
}

/// Encodes the blocks of an `ipc` partition file.
pub(super) struct IpcBlockEncoder {
    schema: SchemaRef,
    options: IpcWriteOptions,
    compression: Compression,
    schema_segment: SchemaSegment,
}

impl IpcBlockEncoder {
    /// The encoder and the file's header (magic and schema segment).
    pub fn try_new(schema: SchemaRef, compression: Compression) -> Result<(Self, Bytes)> {
        let options = write_options(compression)?;
        let schema_stream = encode_stream(&schema, &options, &[])?;
        let schema_segment = SchemaSegment {
            offset: MAGIC_LEN,
            length: schema_stream.len() as u64,
            crc32: crc32(&schema_stream),
        };
        let mut header = Vec::with_capacity(MAGIC.len() + schema_stream.len());
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&schema_stream);
        let encoder = Self {
            schema,
            options,
            compression,
            schema_segment,
        };
        Ok((encoder, header.into()))
    }

    /// Encodes `batches` (one subpartition's, in order) as one block.
    pub fn encode_block(&mut self, batches: &[RecordBatch]) -> Result<EncodedBlock> {
        let bytes = encode_stream(&self.schema, &self.options, batches)?;
        Ok(EncodedBlock {
            crc32: crc32(&bytes),
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
            row_group: None,
            bytes: bytes.into(),
        })
    }

    /// The compression blocks are written with.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The footer and trailer that end the file.
    pub fn finish(self, index: PartitionIndex) -> Result<Bytes> {
        let footer = IpcFooter {
            index,
            schema: self.schema_segment,
        };
        let mut tail = serde_json::to_vec(&footer)
            .map_err(|e| std::io::Error::other(format!("cannot encode the IPC footer: {e}")))?;
        let footer_len = tail.len() as u64;
        let footer_crc = crc32(&tail);
        tail.extend_from_slice(&footer_len.to_le_bytes());
        tail.extend_from_slice(&footer_crc.to_le_bytes());
        tail.extend_from_slice(MAGIC);
        Ok(tail.into())
    }
}

/// Decodes the blocks of an `ipc` partition file.
#[derive(Debug)]
pub(super) struct IpcBlockDecoder {
    schema: SchemaRef,
}

impl IpcBlockDecoder {
    /// Decodes one block whose checksum was verified.
    pub fn decode(&self, bytes: Bytes) -> Result<Vec<RecordBatch>, String> {
        let (schema, batches) = decode_stream(bytes)?;
        if schema != self.schema {
            return Err("a block's schema differs from the file's schema".to_string());
        }
        Ok(batches)
    }
}

fn le_u64(bytes: &[u8]) -> u64 {
    let mut buf = [0u8; 8];
    buf.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(buf)
}

fn le_u32(bytes: &[u8]) -> u32 {
    let mut buf = [0u8; 4];
    buf.copy_from_slice(&bytes[..4]);
    u32::from_le_bytes(buf)
}

/// Checks the footer's checksum, parses it and checks its index tiles the
/// file from the schema segment up to `footer_start`.
fn parse_footer(footer: &[u8], expected_crc: u32, footer_start: u64) -> Result<IpcFooter, String> {
    let actual = crc32(footer);
    if actual != expected_crc {
        return Err(format!(
            "footer checksum mismatch: stored {expected_crc:08x}, computed {actual:08x}"
        ));
    }
    let parsed: IpcFooter =
        serde_json::from_slice(footer).map_err(|e| format!("unreadable footer: {e}"))?;
    let schema = &parsed.schema;
    if schema.offset != MAGIC_LEN || schema.length == 0 {
        return Err(format!(
            "schema segment at {}+{} is not right after the magic",
            schema.offset, schema.length
        ));
    }
    let schema_end = schema
        .offset
        .checked_add(schema.length)
        .ok_or_else(|| "schema segment overflows the file".to_string())?;
    parsed.index.validate(schema_end, false)?;
    if parsed.index.data_len != footer_start {
        return Err(format!(
            "the data region ends at {} but the footer starts at {footer_start}",
            parsed.index.data_len
        ));
    }
    Ok(parsed)
}

/// Opens an `ipc` partition file of `size` bytes whose last bytes are `tail`.
pub(super) async fn open(fetcher: &mut Fetcher, size: u64, tail: &Tail) -> Result<OpenedPartition> {
    if size < MAGIC_LEN + TRAILER_LEN {
        return Err(fetcher.corrupt(format!("file of {size} bytes is too short")));
    }
    let trailer = fetcher.range_in(tail, size - TRAILER_LEN..size).await?;
    if &trailer[12..20] != MAGIC {
        return Err(fetcher.corrupt("trailer magic mismatch (truncated or not an ipc partition)"));
    }
    let footer_len = le_u64(&trailer[0..8]);
    let footer_crc = le_u32(&trailer[8..12]);
    let footer_start = (size - TRAILER_LEN)
        .checked_sub(footer_len)
        .filter(|start| *start >= MAGIC_LEN)
        .ok_or_else(|| {
            fetcher.corrupt(format!(
                "footer length {footer_len} does not fit a file of {size} bytes"
            ))
        })?;
    let footer_bytes = fetcher
        .range_in(tail, footer_start..size - TRAILER_LEN)
        .await?;
    let footer = cpu::run(move || parse_footer(&footer_bytes, footer_crc, footer_start))
        .await
        .map_err(|reason| fetcher.corrupt(reason))?;

    let segment = footer.schema.clone();
    let header = fetcher
        .range_in(tail, 0..segment.offset + segment.length)
        .await?;
    let schema = cpu::run(move || {
        if &header[..MAGIC.len()] != MAGIC {
            return Err("header magic mismatch".to_string());
        }
        let bytes = header.slice(MAGIC.len()..);
        let actual = crc32(&bytes);
        if actual != segment.crc32 {
            return Err(format!(
                "schema checksum mismatch: stored {:08x}, computed {actual:08x}",
                segment.crc32
            ));
        }
        let (schema, batches) = cpu::decode_guarded(|| decode_stream(bytes))?;
        if !batches.is_empty() {
            return Err("the schema segment holds record batches".to_string());
        }
        Ok(schema)
    })
    .await
    .map_err(|reason| fetcher.corrupt(reason))?;

    Ok(OpenedPartition {
        index: footer.index,
        schema: Arc::clone(&schema),
        decoder: BlockDecoder::Ipc(IpcBlockDecoder { schema }),
    })
}
