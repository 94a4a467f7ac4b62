//! The `text` connector: lines of text files, one row per line in a `line`
//! column. Paths are those of every file connector (a file, a directory or
//! a glob in any object store, see [`crate::listing`]); files are the splits.

use std::sync::Arc;

use arrow::array::{RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use weir_engine::SourceFactory;
use weir_engine::registry::{ConnectorOptions, SourceConnector};

use crate::bad_records::Decoded;
use crate::file_source::{FileTable, WholeFileFormat, WholeFileSource};
use crate::listing::{FileListing, ListedFile};
use crate::options::{required_path, source_options};
use crate::{Error, Result};

/// Lines per batch.
const BATCH_LINES: usize = 8192;

/// The `text` source connector: option `path`, and the object store
/// options.
#[derive(Debug)]
pub struct TextConnector;

#[async_trait]
impl SourceConnector for TextConnector {
    fn name(&self) -> &'static str {
        "text"
    }

    fn option_names(&self) -> Vec<&'static str> {
        source_options(&[])
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        _declared: Option<SchemaRef>,
    ) -> weir_engine::Result<Arc<dyn SourceFactory>> {
        let listing = FileListing::list(required_path(options)?, options).await?;
        let schema = Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)]));
        let table = FileTable::new(listing, schema);
        Ok(Arc::new(WholeFileSource::new(table, Arc::new(TextFormat))))
    }
}

/// Text files split into lines.
#[derive(Debug)]
pub struct TextFormat;

impl WholeFileFormat for TextFormat {
    fn name(&self) -> &'static str {
        "text"
    }

    fn decode(
        &self,
        file: &ListedFile,
        bytes: Bytes,
        schema: &SchemaRef,
        projection: Option<&[usize]>,
    ) -> Result<Decoded> {
        let text = std::str::from_utf8(&bytes).map_err(|e| Error::Corrupt {
            file: file.url.clone(),
            message: format!("not UTF-8: {e}"),
        })?;
        let mut batches = Vec::new();
        let mut lines = text.lines().peekable();
        while lines.peek().is_some() {
            let mut builder = StringBuilder::new();
            for line in lines.by_ref().take(BATCH_LINES) {
                builder.append_value(line);
            }
            let batch = RecordBatch::try_new(Arc::clone(schema), vec![Arc::new(builder.finish())])?;
            batches.push(match projection {
                Some(columns) => batch.project(columns)?,
                None => batch,
            });
        }
        Ok(Decoded {
            batches,
            ..Decoded::default()
        })
    }
}
