//! What the CSV and JSON-lines sources share: the table's schema (given as
//! a string, or inferred from the head of the first file) and where bad
//! records go.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use object_store::ObjectStoreExt;
use weir_engine::registry::ConnectorOptions;
use weir_exchange::StoreUrl;

use weir_engine::SourceFactory;

use crate::bad_records::BadRecords;
use crate::file_source::{FileTable, WholeFileFormat, WholeFileSource};
use crate::listing::FileListing;
use crate::options::required_path;
use crate::schema_string::parse_schema;
use crate::{Error, Result};

/// The options every text source takes, besides `path` and its format's.
pub const TEXT_SOURCE_OPTIONS: [&str; 3] = ["schema", BadRecords::OPTION, "bad-records.path"];

/// Bytes read from the head of the first file to infer a schema.
const INFER_HEAD: u64 = 1 << 20;

/// The schema of a text table: the `schema` option, else the `declared`
/// columns, or else what `infer` makes of the complete records in the first
/// megabyte of the first file.
///
/// # Errors
/// An invalid `schema` string, or a first file that cannot be read or
/// inferred from.
async fn table_schema(
    options: &ConnectorOptions,
    declared: Option<SchemaRef>,
    listing: &FileListing,
    infer: impl FnOnce(&str, &[u8]) -> Result<Schema>,
) -> Result<SchemaRef> {
    if let Some(text) = options.get("schema") {
        return Ok(Arc::new(parse_schema(text)?));
    }
    if let Some(declared) = declared {
        return Ok(declared);
    }
    let first = &listing.files[0];
    let head = listing
        .store()
        .get_range(&first.location, 0..first.size.min(INFER_HEAD))
        .await
        .map_err(|source| Error::Store {
            url: first.url.clone(),
            source,
        })?;
    // Only complete lines: a record cut at the end of the head would be
    // inferred from half its text.
    let complete = match (
        first.size > INFER_HEAD,
        head.iter().rposition(|b| *b == b'\n'),
    ) {
        (true, Some(end)) => &head[..=end],
        _ => &head[..],
    };
    Ok(Arc::new(infer(&first.url, complete)?))
}

/// A source of the text table the options name, whose files `format`
/// decodes: the schema comes from the `schema` option, the `declared`
/// columns or `infer`, made nullable by `decoded_schema` (what the format's
/// decoder produces).
///
/// # Errors
/// Invalid options, no files, or a schema that cannot be inferred.
pub async fn open_source<F: WholeFileFormat>(
    options: &ConnectorOptions,
    declared: Option<SchemaRef>,
    policy: BadRecords,
    format: F,
    infer: impl FnOnce(&str, &[u8]) -> Result<Schema>,
    decoded_schema: impl FnOnce(&Schema) -> Result<SchemaRef>,
) -> Result<Arc<dyn SourceFactory>> {
    let dead_letters = dead_letter_dir(options, policy)?;
    let listing = FileListing::list(required_path(options)?, options).await?;
    let schema = table_schema(options, declared, &listing, infer).await?;
    let schema = decoded_schema(&schema)?;
    let source = WholeFileSource::new(FileTable::new(listing, schema), Arc::new(format));
    Ok(Arc::new(match dead_letters {
        Some(dir) => source.with_dead_letters(dir),
        None => source,
    }))
}

/// Where dead letters go (`bad-records.path`), required with
/// `bad-records` = `dead-letter` and refused otherwise.
///
/// # Errors
/// [`Error::Option`] for a missing, needless or invalid path.
fn dead_letter_dir(options: &ConnectorOptions, policy: BadRecords) -> Result<Option<StoreUrl>> {
    let path = options.get("bad-records.path");
    match (policy, path) {
        (BadRecords::DeadLetter, None) => Err(Error::Option {
            option: "bad-records.path".to_string(),
            message:
                "is required with 'bad-records' = 'dead-letter': the directory for the bad records"
                    .to_string(),
        }),
        (BadRecords::DeadLetter, Some(path)) => {
            StoreUrl::parse(path, options)
                .map(Some)
                .map_err(|e| Error::Option {
                    option: "bad-records.path".to_string(),
                    message: e.to_string(),
                })
        }
        (_, Some(_)) => Err(Error::Option {
            option: "bad-records.path".to_string(),
            message: "is only used with 'bad-records' = 'dead-letter'".to_string(),
        }),
        (_, None) => Ok(None),
    }
}
