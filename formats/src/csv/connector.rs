//! The `csv` connector: CSV tables as sources and sinks.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use bytes::Bytes;
use weir_engine::registry::{ConnectorOptions, SinkConnector, SourceConnector};
use weir_engine::{SinkFactory, SourceFactory};

use super::{CsvDecoder, CsvEncoder, CsvOptions, infer_schema};
use crate::Result;
use crate::bad_records::{BadRecords, Decoded};
use crate::file_sink::{FileEncoder, FileFormat, FileSink, RowTextEncoder};
use crate::file_source::WholeFileFormat;
use crate::listing::ListedFile;
use crate::options::{sink_options, source_options};
use crate::schema_string::DEFAULT_INFER_RECORDS;
use crate::text_source::{TEXT_SOURCE_OPTIONS, open_source};

/// Reads and writes CSV tables.
///
/// Source options: `path`, `schema` (else the declared columns, else
/// inferred from the first file),
/// `bad-records` (`fail` | `drop` | `dead-letter`), `bad-records.path`, and
/// the dialect ([`CsvOptions::OPTION_NAMES`]). Sink options: `path`, the
/// file sink's and the dialect. Both take the object store options.
#[derive(Debug)]
pub struct CsvConnector;

/// CSV files: decoded for the source, encoded for the sink.
#[derive(Debug, Clone)]
pub struct CsvFormat {
    options: CsvOptions,
    policy: BadRecords,
}

impl WholeFileFormat for CsvFormat {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn decode(
        &self,
        file: &ListedFile,
        bytes: Bytes,
        schema: &SchemaRef,
        projection: Option<&[usize]>,
    ) -> Result<Decoded> {
        let mut decoder = CsvDecoder::try_new(schema, self.options.clone(), self.policy)?;
        if let Some(projection) = projection {
            decoder = decoder.with_projection(projection.to_vec())?;
        }
        decoder.decode(&file.url, &bytes)
    }
}

impl FileFormat for CsvFormat {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn extension(&self) -> &'static str {
        "csv"
    }

    fn encoder(&self, _schema: &SchemaRef) -> Result<Box<dyn FileEncoder>> {
        let mut encoder = CsvEncoder::new(self.options.clone());
        Ok(Box::new(RowTextEncoder(
            move |batch: &RecordBatch, out: &mut Vec<u8>| encoder.encode(batch, out),
        )))
    }
}

#[async_trait]
impl SourceConnector for CsvConnector {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn option_names(&self) -> Vec<&'static str> {
        let mut names = source_options(&TEXT_SOURCE_OPTIONS);
        names.extend(CsvOptions::OPTION_NAMES);
        names
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        declared: Option<SchemaRef>,
    ) -> weir_engine::Result<Arc<dyn SourceFactory>> {
        let dialect = CsvOptions::from_options(options)?;
        let policy = BadRecords::from_options(options)?;
        let format = CsvFormat {
            options: dialect.clone(),
            policy,
        };
        let infer_dialect = dialect.clone();
        Ok(open_source(
            options,
            declared,
            policy,
            format,
            |url, head| infer_schema(url, head, &infer_dialect, DEFAULT_INFER_RECORDS),
            |schema| Ok(CsvDecoder::try_new(schema, dialect, policy)?.schema()),
        )
        .await?)
    }
}

#[async_trait]
impl SinkConnector for CsvConnector {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn option_names(&self) -> Vec<&'static str> {
        sink_options(CsvOptions::OPTION_NAMES)
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        schema: SchemaRef,
    ) -> weir_engine::Result<Arc<dyn SinkFactory>> {
        let format = Arc::new(CsvFormat {
            options: CsvOptions::from_options(options)?,
            policy: BadRecords::Fail,
        });
        Ok(Arc::new(
            FileSink::from_options(options, format, schema).await?,
        ))
    }
}
