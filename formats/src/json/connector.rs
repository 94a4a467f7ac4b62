//! The `json` connector: JSON-lines tables as sources and sinks.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use weir_engine::registry::{ConnectorOptions, SinkConnector, SourceConnector};
use weir_engine::{SinkFactory, SourceFactory};
use weir_exchange::store_url::STORE_OPTIONS;

use super::{JsonDecoder, JsonEncoder, infer_schema};
use crate::Result;
use crate::bad_records::{BadRecords, Decoded};
use crate::file_sink::{FILE_SINK_OPTIONS, FileEncoder, FileFormat, FileSink};
use crate::file_source::WholeFileFormat;
use crate::listing::ListedFile;
use crate::schema_string::DEFAULT_INFER_RECORDS;
use crate::text_source::{TEXT_SOURCE_OPTIONS, open_source};

/// Reads and writes JSON-lines tables (one object per line).
///
/// Source options: `path`, `schema` (else inferred from the first file),
/// `bad-records` (`fail` | `drop` | `dead-letter`), `bad-records.path`.
/// Sink options: `path` and the file sink's. Both take the object store
/// options.
#[derive(Debug)]
pub struct JsonConnector;

/// JSON-lines files: decoded for the source, encoded for the sink.
#[derive(Debug, Clone)]
pub struct JsonFormat {
    policy: BadRecords,
}

impl WholeFileFormat for JsonFormat {
    fn name(&self) -> &'static str {
        "json"
    }

    fn decode(
        &self,
        file: &ListedFile,
        bytes: Bytes,
        schema: &SchemaRef,
        projection: Option<&[usize]>,
    ) -> Result<Decoded> {
        let decoded = JsonDecoder::try_new(schema, self.policy)?.decode(&file.url, &bytes)?;
        match projection {
            None => Ok(decoded),
            Some(columns) => Ok(Decoded {
                batches: decoded
                    .batches
                    .iter()
                    .map(|b| b.project(columns))
                    .collect::<std::result::Result<_, _>>()?,
                ..decoded
            }),
        }
    }
}

impl FileFormat for JsonFormat {
    fn name(&self) -> &'static str {
        "json"
    }

    fn extension(&self) -> &'static str {
        "jsonl"
    }

    fn encoder(&self, _schema: &SchemaRef) -> Result<Box<dyn FileEncoder>> {
        Ok(Box::new(JsonFileEncoder(JsonEncoder::new())))
    }
}

struct JsonFileEncoder(JsonEncoder);

impl FileEncoder for JsonFileEncoder {
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.0.encode(batch, &mut out)?;
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn buffered_bytes(&self) -> usize {
        0
    }
}

#[async_trait]
impl SourceConnector for JsonConnector {
    fn name(&self) -> &'static str {
        "json"
    }

    fn option_names(&self) -> Vec<&'static str> {
        let mut names = vec!["path"];
        names.extend(TEXT_SOURCE_OPTIONS);
        names.extend(STORE_OPTIONS);
        names
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
    ) -> weir_engine::Result<Arc<dyn SourceFactory>> {
        let policy = BadRecords::from_options(options)?;
        Ok(open_source(
            options,
            policy,
            JsonFormat { policy },
            |url, head| infer_schema(url, head, DEFAULT_INFER_RECORDS),
            |declared| Ok(JsonDecoder::try_new(declared, policy)?.schema()),
        )
        .await?)
    }
}

#[async_trait]
impl SinkConnector for JsonConnector {
    fn name(&self) -> &'static str {
        "json"
    }

    fn option_names(&self) -> Vec<&'static str> {
        let mut names = vec!["path"];
        names.extend(FILE_SINK_OPTIONS);
        names.extend(STORE_OPTIONS);
        names
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        schema: SchemaRef,
    ) -> weir_engine::Result<Arc<dyn SinkFactory>> {
        let format = Arc::new(JsonFormat {
            policy: BadRecords::Fail,
        });
        Ok(Arc::new(
            FileSink::from_options(options, format, schema).await?,
        ))
    }
}
