//! Printing a query's rows while its job runs: as a table, CSV or JSON.
//!
//! Rows go to standard output as the job's sink hands them over (see
//! [`RowsOut`]), so an unbounded query shows its rows as they are made,
//! in bounded memory, as Flink's SQL client does in tableau mode. A table
//! holds its first rows to size its columns: up to [`TABLE_HOLD`] rows of a
//! batch job, none of a streaming one.

mod table;

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use clap::ValueEnum;
use weir_engine::sinks::{RowsFrom, RowsOut};
use weir_scheduler::JobControl;

use crate::progress::Screen;
use table::TableWriter;

/// The rows a batch job's table holds to size its columns.
const TABLE_HOLD: usize = 1000;

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

/// Prints the rows handed to it to an output, in one format.
pub struct RowPrinter {
    state: Mutex<Printing>,
    /// The terminal whose progress bar the rows replace.
    screen: Option<Arc<Screen>>,
    /// The job printing: cancelled when the output is closed.
    job: JobControl,
}

struct Printing {
    out: Box<dyn Write + Send>,
    format: Formatter,
    rows: usize,
    /// The output was closed (a pipe whose reader left).
    closed: bool,
}

enum Formatter {
    Table(TableWriter),
    /// CSV, its header before the first row (or alone at the end).
    Csv(SchemaRef),
    Json,
}

impl RowPrinter {
    /// A printer of rows of `schema` to `out`, as `format` says; a table
    /// holds [`TABLE_HOLD`] rows to size its columns (see
    /// [`RowPrinter::streaming`]). On `screen`, the first rows take the
    /// place of the progress bar. When the output is closed by its reader,
    /// `job` is cancelled.
    pub fn new(
        out: Box<dyn Write + Send>,
        schema: &SchemaRef,
        format: RowFormat,
        screen: Option<Arc<Screen>>,
        job: JobControl,
    ) -> Self {
        let format = match format {
            RowFormat::Table => Formatter::Table(TableWriter::new(schema, TABLE_HOLD)),
            RowFormat::Csv => Formatter::Csv(Arc::clone(schema)),
            RowFormat::Json => Formatter::Json,
        };
        Self {
            state: Mutex::new(Printing {
                out,
                format,
                rows: 0,
                closed: false,
            }),
            screen,
            job,
        }
    }

    /// Prints rows as they come from the first: a table holds none to size
    /// its columns (for a streaming job, whose rows may be long in
    /// coming).
    pub fn streaming(&self) {
        if let Formatter::Table(table) = &mut self.lock().format {
            table.hold_none();
        }
    }

    /// The rows printed so far.
    pub fn rows(&self) -> usize {
        self.lock().rows
    }

    /// Whether the output was closed by its reader (`weir sql ... | head`).
    pub fn closed(&self) -> bool {
        self.lock().closed
    }

    /// Ends the output: the table's last border (and `0 rows` without
    /// rows), the CSV header without rows, the JSON array's end.
    ///
    /// # Errors
    /// Writing fails.
    pub fn finish(&self) -> io::Result<()> {
        let mut state = self.lock();
        let mut text = Vec::new();
        let rows = state.rows;
        match &mut state.format {
            Formatter::Table(table) => table.finish(&mut text, rows)?,
            Formatter::Csv(schema) => {
                if rows == 0 {
                    write_csv(&mut text, &RecordBatch::new_empty(Arc::clone(schema)), true)?;
                }
            }
            Formatter::Json => {
                let end = if rows == 0 { "[]" } else { "]" };
                writeln!(text, "{end}")?;
            }
        }
        state.out.write_all(&text)?;
        state.out.flush()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Printing> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Printing {
    /// Prints `batch`, formatted in full before any of it is written: a
    /// failed write is the output's own error.
    fn print(&mut self, batch: &RecordBatch) -> io::Result<()> {
        let mut text = Vec::new();
        match &mut self.format {
            Formatter::Table(table) => table.push(&mut text, batch)?,
            Formatter::Csv(_) => write_csv(&mut text, batch, self.rows == 0)?,
            Formatter::Json => write_json(&mut text, batch, self.rows == 0)?,
        }
        self.rows += batch.num_rows();
        self.out.write_all(&text)?;
        self.out.flush()
    }
}

impl RowsOut for RowPrinter {
    fn deliver(&self, _: RowsFrom, batch: &RecordBatch) -> io::Result<()> {
        if let Some(screen) = &self.screen {
            screen.rows_begin();
        }
        let mut state = self.lock();
        if state.closed {
            return Ok(());
        }
        match state.print(batch) {
            // The reader left (`weir sql ... | head`): nobody wants the
            // rows any more, and the job ends.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                state.closed = true;
                let _ = self.job.cancel();
                Ok(())
            }
            printed => printed,
        }
    }
}

impl fmt::Debug for RowPrinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowPrinter")
            .field("rows", &self.rows())
            .finish_non_exhaustive()
    }
}

fn write_csv(out: &mut dyn Write, batch: &RecordBatch, header: bool) -> io::Result<()> {
    arrow::csv::WriterBuilder::new()
        .with_header(header)
        .build(out)
        .write(batch)
        .map_err(io::Error::other)
}

/// Writes the rows of `batch` as members of one JSON array: the array's
/// `[` before the `first` row, a comma before every other.
fn write_json(out: &mut dyn Write, batch: &RecordBatch, first: bool) -> io::Result<()> {
    let mut lines = Vec::new();
    let mut writer = arrow::json::LineDelimitedWriter::new(&mut lines);
    writer.write(batch).map_err(io::Error::other)?;
    writer.finish().map_err(io::Error::other)?;
    let mut first = first;
    for line in lines.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        out.write_all(if first { b"[" } else { b"," })?;
        out.write_all(line)?;
        first = false;
    }
    Ok(())
}
