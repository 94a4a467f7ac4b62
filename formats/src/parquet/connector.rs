//! The `parquet` connector: Parquet tables as sources and sinks.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::registry::{ConnectorOptions, SinkConnector, SourceConnector};
use weir_engine::{SinkFactory, SourceFactory};

use super::ParquetSource;
use super::sink::{PARQUET_SINK_OPTIONS, ParquetFormat};
use crate::file_sink::FileSink;
use crate::listing::FileListing;
use crate::options::{bool_option, required_path, sink_options, source_options};

/// Reads and writes Parquet tables.
///
/// Source options: `path` (a file, directory or glob), `schema.merge`
/// (`false` by default: files must agree on their columns). Sink options:
/// `path`, the file sink's ([`FILE_SINK_OPTIONS`]) and
/// `parquet.compression`, `parquet.row-group-rows`. Both take the object
/// store options ([`STORE_OPTIONS`]).
#[derive(Debug)]
pub struct ParquetConnector;

#[async_trait]
impl SourceConnector for ParquetConnector {
    fn name(&self) -> &'static str {
        "parquet"
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
        Ok(Arc::new(ParquetSource::try_new(listing, merge).await?))
    }
}

#[async_trait]
impl SinkConnector for ParquetConnector {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn option_names(&self) -> Vec<&'static str> {
        sink_options(&PARQUET_SINK_OPTIONS)
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        schema: SchemaRef,
    ) -> weir_engine::Result<Arc<dyn SinkFactory>> {
        let format = Arc::new(ParquetFormat::from_options(options)?);
        Ok(Arc::new(
            FileSink::from_options(options, format, schema).await?,
        ))
    }
}
