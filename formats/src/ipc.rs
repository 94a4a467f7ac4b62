//! The `ipc` connector: Arrow IPC files (the random-access file format,
//! `.arrow`) as sources and sinks. Sources also read the IPC stream format.
//!
//! Source options: `path`, `schema.merge`; sink options: `path`, the file
//! sink's and `ipc.compression` (`none`, `lz4`, `zstd`); both take the
//! object store options.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::CompressionType;
use arrow::ipc::reader::{FileReader, StreamReader, read_footer_length};
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt};
use weir_engine::registry::{ConnectorOptions, SinkConnector, SourceConnector};
use weir_engine::{SinkFactory, SourceFactory};

use crate::bad_records::Decoded;
use crate::file_sink::{FileEncoder, FileFormat, FileSink, SharedBuffer};
use crate::file_source::{FileTable, WholeFileFormat, WholeFileSource};
use crate::listing::{FileListing, ListedFile};
use crate::options::{bool_option, required_path, sink_options, source_options};
use crate::schema_merge::{conform, unify};
use crate::{Error, Result};

/// The magic bytes that open and close an IPC file (not a stream).
const FILE_MAGIC: &[u8; 6] = b"ARROW1";
/// Bytes read from the head of a stream-format file to learn its schema.
const STREAM_HEAD: u64 = 1 << 20;
/// Schemas read at once while planning.
const SCHEMAS_IN_FLIGHT: usize = 16;

/// Reads and writes Arrow IPC files.
#[derive(Debug)]
pub struct IpcConnector;

/// Arrow IPC files for the file sink, and their decoding for the source.
#[derive(Debug, Clone, Default)]
pub struct IpcFormat {
    compression: Option<CompressionType>,
}

impl IpcFormat {
    /// The format with the `ipc.compression` option.
    ///
    /// # Errors
    /// [`Error::Option`] for an unknown codec.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let compression = match options
            .get("ipc.compression")
            .map(|c| c.trim().to_ascii_lowercase())
        {
            None => None,
            Some(c) if c == "none" => None,
            Some(c) if c == "lz4" => Some(CompressionType::LZ4_FRAME),
            Some(c) if c == "zstd" => Some(CompressionType::ZSTD),
            Some(other) => {
                return Err(Error::Option {
                    option: "ipc.compression".to_string(),
                    message: format!("unknown codec '{other}' (valid: none, lz4, zstd)"),
                });
            }
        };
        Ok(Self { compression })
    }
}

impl FileFormat for IpcFormat {
    fn name(&self) -> &'static str {
        "ipc"
    }

    fn extension(&self) -> &'static str {
        "arrow"
    }

    fn encoder(&self, schema: &SchemaRef) -> Result<Box<dyn FileEncoder>> {
        let buffer = SharedBuffer::default();
        let options = IpcWriteOptions::default().try_with_compression(self.compression)?;
        let writer = FileWriter::try_new_with_options(buffer.clone(), schema, options)?;
        Ok(Box::new(IpcEncoder {
            writer: Some(writer),
            buffer,
        }))
    }
}

struct IpcEncoder {
    writer: Option<FileWriter<SharedBuffer>>,
    buffer: SharedBuffer,
}

impl FileEncoder for IpcEncoder {
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        if let Some(writer) = &mut self.writer {
            writer.write(batch)?;
        }
        Ok(self.buffer.take())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if let Some(mut writer) = self.writer.take() {
            writer.finish()?;
        }
        Ok(self.buffer.take())
    }

    fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }
}

impl WholeFileFormat for IpcFormat {
    fn name(&self) -> &'static str {
        "ipc"
    }

    fn decode(
        &self,
        file: &ListedFile,
        bytes: Bytes,
        schema: &SchemaRef,
        projection: Option<&[usize]>,
    ) -> Result<Decoded> {
        let corrupt = |e: arrow::error::ArrowError| Error::Corrupt {
            file: file.url.clone(),
            message: format!("not a readable Arrow IPC file: {e}"),
        };
        let target = Arc::new(match projection {
            Some(p) => schema.project(p)?,
            None => schema.as_ref().clone(),
        });
        let batches = if bytes.starts_with(FILE_MAGIC) && bytes.ends_with(FILE_MAGIC) {
            let reader = FileReader::try_new(Cursor::new(bytes), None).map_err(corrupt)?;
            read_all(reader.schema(), reader, &target).map_err(corrupt)?
        } else {
            let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(corrupt)?;
            read_all(reader.schema(), reader, &target).map_err(corrupt)?
        };
        Ok(Decoded {
            batches: batches
                .iter()
                .map(|b| conform(b, &target))
                .collect::<Result<_>>()?,
            dropped: 0,
            dead_letters: Vec::new(),
        })
    }
}

/// Every batch of a reader over a file of schema `file`, with the columns
/// `target` names.
fn read_all(
    file: SchemaRef,
    batches: impl Iterator<Item = std::result::Result<RecordBatch, arrow::error::ArrowError>>,
    target: &Schema,
) -> std::result::Result<Vec<RecordBatch>, arrow::error::ArrowError> {
    let columns: Vec<usize> = target
        .fields()
        .iter()
        .filter_map(|f| file.index_of(f.name()).ok())
        .collect();
    batches.map(|b| b?.project(&columns)).collect()
}

/// The schema of one IPC file, from its footer (file format) or its head
/// (stream format).
async fn read_schema(store: Arc<dyn ObjectStore>, file: ListedFile) -> Result<(String, SchemaRef)> {
    let corrupt = |message: String| Error::Corrupt {
        file: file.url.clone(),
        message: format!("not a readable Arrow IPC file: {message}"),
    };
    let get = |range: std::ops::Range<u64>| {
        let store = Arc::clone(&store);
        let location = file.location.clone();
        let url = file.url.clone();
        async move {
            store
                .get_range(&location, range)
                .await
                .map_err(|source| Error::Store { url, source })
        }
    };
    let size = file.size;
    let tail = if size >= 10 {
        get(size - 10..size).await?
    } else {
        Bytes::new()
    };
    let schema = if tail.ends_with(FILE_MAGIC) {
        let mut last = [0u8; 10];
        last.copy_from_slice(&tail);
        let footer_len = read_footer_length(last).map_err(|e| corrupt(e.to_string()))? as u64;
        if footer_len + 10 > size {
            return Err(corrupt(format!(
                "its footer claims {footer_len} bytes of {size}"
            )));
        }
        let footer = get(size - 10 - footer_len..size - 10).await?;
        let footer = arrow::ipc::root_as_footer(&footer).map_err(|e| corrupt(e.to_string()))?;
        let schema = footer
            .schema()
            .ok_or_else(|| corrupt("its footer has no schema".into()))?;
        arrow::ipc::convert::fb_to_schema(schema)
    } else {
        let head = get(0..size.min(STREAM_HEAD)).await?;
        let reader =
            StreamReader::try_new(Cursor::new(head), None).map_err(|e| corrupt(e.to_string()))?;
        reader.schema().as_ref().clone()
    };
    Ok((file.url, Arc::new(schema)))
}

#[async_trait]
impl SourceConnector for IpcConnector {
    fn name(&self) -> &'static str {
        "ipc"
    }

    fn option_names(&self) -> Vec<&'static str> {
        source_options(&["schema.merge"])
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        _declared: Option<SchemaRef>,
    ) -> weir_engine::Result<Arc<dyn SourceFactory>> {
        let listing = FileListing::list(required_path(options)?, options).await?;
        let merge = bool_option(options, "schema.merge", false)?;
        let store = Arc::clone(listing.store());
        let schemas: Vec<(String, SchemaRef)> = futures::stream::iter(listing.files.clone())
            .map(|file| read_schema(Arc::clone(&store), file))
            .buffered(SCHEMAS_IN_FLIGHT)
            .try_collect()
            .await?;
        let schema = unify(&schemas, merge)?;
        let table = FileTable::new(listing, schema);
        Ok(Arc::new(WholeFileSource::new(
            table,
            Arc::new(IpcFormat::default()),
        )))
    }
}

#[async_trait]
impl SinkConnector for IpcConnector {
    fn name(&self) -> &'static str {
        "ipc"
    }

    fn option_names(&self) -> Vec<&'static str> {
        sink_options(&["ipc.compression"])
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        schema: SchemaRef,
    ) -> weir_engine::Result<Arc<dyn SinkFactory>> {
        let format = Arc::new(IpcFormat::from_options(options)?);
        Ok(Arc::new(
            FileSink::from_options(options, format, schema).await?,
        ))
    }
}
