//! The `json` connector: JSON-lines tables as sources and sinks.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use weir_engine::registry::{ConnectorOptions, SinkConnector, SourceConnector};
use weir_engine::{SinkFactory, SourceFactory};

use super::{JsonDecoder, JsonEncoder, infer_schema};
use crate::Result;
use crate::bad_records::{BadRecords, Decoded};
use crate::file_sink::{FileEncoder, FileFormat, FileSink, RowTextEncoder};
use crate::file_source::WholeFileFormat;
use crate::listing::ListedFile;
use crate::options::{sink_options, source_options};
use crate::schema_string::DEFAULT_INFER_RECORDS;
use crate::text_source::{TEXT_SOURCE_OPTIONS, open_source};

/// Reads and writes JSON-lines tables (one object per line).
///
/// Source options: `path`, `schema` (else the declared columns, else
/// inferred from the first file),
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
        // Fields outside the schema are ignored: decoding with the projected
        // schema builds only the columns asked for.
        let projected = match projection {
            Some(columns) => schema.project(columns)?,
            None => schema.as_ref().clone(),
        };
        JsonDecoder::try_new(&projected, self.policy)?.decode(&file.url, &bytes)
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
        let mut encoder = JsonEncoder::new();
        Ok(Box::new(RowTextEncoder(
            move |batch: &RecordBatch, out: &mut Vec<u8>| encoder.encode(batch, out),
        )))
    }
}

#[async_trait]
impl SourceConnector for JsonConnector {
    fn name(&self) -> &'static str {
        "json"
    }

    fn option_names(&self) -> Vec<&'static str> {
        source_options(&TEXT_SOURCE_OPTIONS)
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        declared: Option<SchemaRef>,
    ) -> weir_engine::Result<Arc<dyn SourceFactory>> {
        let policy = BadRecords::from_options(options)?;
        Ok(open_source(
            options,
            declared,
            policy,
            JsonFormat { policy },
            |url, head| infer_schema(url, head, DEFAULT_INFER_RECORDS),
            |schema| Ok(JsonDecoder::try_new(schema, policy)?.schema()),
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
        sink_options(&[])
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
