//! Printing a query's rows: as a table, CSV or JSON.

use std::io::Write;

use anyhow::Result;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
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

/// Writes `batches` of `schema` to `out` in `format`. Without rows, the
/// table and CSV still show the columns (the table says `0 rows`), and
/// JSON is an empty array.
///
/// # Errors
/// Writing fails.
pub fn write_rows(
    out: &mut dyn Write,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    format: RowFormat,
) -> Result<()> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let empty = [RecordBatch::new_empty(Arc::clone(schema))];
    let shown = if rows == 0 { &empty[..] } else { batches };
    match format {
        RowFormat::Table => {
            writeln!(
                out,
                "{}",
                arrow::util::pretty::pretty_format_batches(shown)?
            )?;
            if rows == 0 {
                writeln!(out, "0 rows")?;
            }
        }
        RowFormat::Csv => {
            let mut writer = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut *out);
            for batch in shown {
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
