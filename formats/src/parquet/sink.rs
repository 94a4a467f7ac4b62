//! Parquet files for the file sink.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use weir_engine::registry::ConnectorOptions;

use crate::file_sink::{FileEncoder, FileFormat, SharedBuffer};
use crate::{Error, Result};

/// The options of Parquet sinks, besides the file sink's.
pub const PARQUET_SINK_OPTIONS: [&str; 3] = [
    "parquet.compression",
    "parquet.row-group-rows",
    "parquet.page-rows",
];

/// Writes Parquet files: compression (default zstd), row groups of a
/// number of rows (default 1M), pages of at most a number of rows (default:
/// about 1 MiB each), page-level statistics and the page index, so that
/// readers can skip data.
#[derive(Debug, Clone)]
pub struct ParquetFormat {
    properties: Arc<WriterProperties>,
}

impl ParquetFormat {
    /// The format with the `parquet.*` options.
    ///
    /// # Errors
    /// [`Error::Option`] for an unknown codec or an invalid row count.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(1 << 20));
        if let Some(codec) = options.get("parquet.compression") {
            properties = properties.set_compression(compression(codec)?);
        }
        if let Some(rows) = positive_rows(options, "parquet.row-group-rows")? {
            properties = properties.set_max_row_group_row_count(Some(rows));
        }
        if let Some(rows) = positive_rows(options, "parquet.page-rows")? {
            properties = properties.set_data_page_row_count_limit(rows);
        }
        Ok(Self {
            properties: Arc::new(properties.build()),
        })
    }
}

/// A positive number of rows from option `name`, if given.
fn positive_rows(options: &ConnectorOptions, name: &str) -> Result<Option<usize>> {
    options
        .get(name)
        .map(|rows| {
            rows.trim()
                .parse()
                .ok()
                .filter(|r| *r > 0)
                .ok_or_else(|| Error::Option {
                    option: name.to_string(),
                    message: format!("'{rows}' is not a positive number of rows"),
                })
        })
        .transpose()
}

/// A codec by name: `none`, `snappy`, `gzip[(level)]`, `lz4`, `zstd[(level)]`,
/// `brotli`.
fn compression(codec: &str) -> Result<Compression> {
    let invalid = |message: String| Error::Option {
        option: "parquet.compression".to_string(),
        message,
    };
    let codec = codec.trim().to_ascii_lowercase();
    let (name, level) = match codec.split_once('(') {
        Some((name, rest)) => {
            let level = rest.trim_end_matches(')').trim();
            let level: i32 = level
                .parse()
                .map_err(|_| invalid(format!("'{level}' is not a compression level")))?;
            (name.trim().to_string(), Some(level))
        }
        None => (codec.clone(), None),
    };
    match (name.as_str(), level) {
        ("none" | "uncompressed", None) => Ok(Compression::UNCOMPRESSED),
        ("snappy", None) => Ok(Compression::SNAPPY),
        ("lz4", None) => Ok(Compression::LZ4_RAW),
        ("brotli", None) => Ok(Compression::BROTLI(Default::default())),
        ("gzip", level) => Ok(Compression::GZIP(match level {
            Some(l) => GzipLevel::try_new(l as u32).map_err(|e| invalid(e.to_string()))?,
            None => GzipLevel::default(),
        })),
        ("zstd", level) => Ok(Compression::ZSTD(match level {
            Some(l) => ZstdLevel::try_new(l).map_err(|e| invalid(e.to_string()))?,
            None => ZstdLevel::default(),
        })),
        _ => Err(invalid(format!(
            "unknown codec '{codec}' (valid: none, snappy, gzip, lz4, zstd, brotli; gzip and zstd take a level: zstd(3))"
        ))),
    }
}

impl FileFormat for ParquetFormat {
    fn name(&self) -> &'static str {
        "parquet"
    }

    fn extension(&self) -> &'static str {
        "parquet"
    }

    fn encoder(&self, schema: &SchemaRef) -> Result<Box<dyn FileEncoder>> {
        let buffer = SharedBuffer::default();
        let writer = ArrowWriter::try_new(
            buffer.clone(),
            Arc::clone(schema),
            Some(self.properties.as_ref().clone()),
        )
        .map_err(|e| Error::Option {
            option: "schema".to_string(),
            message: format!("Parquet cannot store these columns: {e}"),
        })?;
        Ok(Box::new(ParquetEncoder {
            writer: Some(writer),
            buffer,
        }))
    }
}

struct ParquetEncoder {
    writer: Option<ArrowWriter<SharedBuffer>>,
    buffer: SharedBuffer,
}

impl ParquetEncoder {
    fn writer(&mut self) -> Result<&mut ArrowWriter<SharedBuffer>> {
        self.writer.as_mut().ok_or_else(|| Error::Option {
            option: "path".to_string(),
            message: "the Parquet file was already finished".to_string(),
        })
    }
}

fn write_error(e: parquet::errors::ParquetError) -> Error {
    Error::Arrow(arrow::error::ArrowError::ExternalError(Box::new(e)))
}

impl FileEncoder for ParquetEncoder {
    fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<u8>> {
        self.writer()?.write(batch).map_err(write_error)?;
        Ok(self.buffer.take())
    }

    fn finish(&mut self) -> Result<Vec<u8>> {
        if let Some(writer) = self.writer.take() {
            writer.close().map_err(write_error)?;
        }
        Ok(self.buffer.take())
    }

    fn buffered_bytes(&self) -> usize {
        self.writer.as_ref().map_or(0, |w| w.in_progress_size()) + self.buffer.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codecs_parse_and_bad_ones_list_the_valid() {
        assert_eq!(
            compression("zstd(3)").expect("zstd"),
            Compression::ZSTD(ZstdLevel::try_new(3).expect("level"))
        );
        assert_eq!(compression("SNAPPY").expect("snappy"), Compression::SNAPPY);
        let e = compression("lzma").expect_err("unknown").to_string();
        assert!(
            e.contains("parquet.compression") && e.contains("zstd"),
            "{e}"
        );
    }
}
