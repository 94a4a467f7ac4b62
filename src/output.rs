//! Printing a query's rows: as a table, CSV or JSON.

use std::io::Write;

use anyhow::Result;
use arrow::array::RecordBatch;
use clap::ValueEnum;

/// How rows are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RowFormat {
    /// An aligned table with a header.
    Table,
    /// CSV with a header.
    Csv,
    /// A JSON array of objects, one per row.
    Json,
}

/// Writes `batches` to `out` in `format`.
///
/// # Errors
/// Writing fails.
pub fn write_rows(out: &mut dyn Write, batches: &[RecordBatch], format: RowFormat) -> Result<()> {
    match format {
        RowFormat::Table => {
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(batches)?
            )?;
        }
        RowFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            if batches.is_empty() {
                return Ok(());
            }
            for batch in batches {
                writer.write(batch)?;
            }
        }
        RowFormat::Json => {
            let mut writer = arrow::json::ArrayWriter::new(&mut *out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            writeln!(out)?;
        }
    }
    Ok(())
}
