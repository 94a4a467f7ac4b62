//! An aligned table printed while its rows arrive: the first rows are held
//! to size the columns, the rest follow as they come, each in the widths
//! of the first (a longer value widens its own cell only).

use std::io::{self, Write};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// The table being printed.
pub struct TableWriter {
    header: Vec<String>,
    /// Rows held until the widths are set.
    held: Vec<Vec<String>>,
    /// The rows held before the table starts.
    hold: usize,
    /// The column widths, once the table started.
    widths: Option<Vec<usize>>,
}

impl TableWriter {
    /// A table of `schema`'s columns that starts once `hold` rows arrived
    /// (or at its end).
    pub fn new(schema: &Schema, hold: usize) -> Self {
        Self {
            header: schema.fields().iter().map(|f| f.name().clone()).collect(),
            held: Vec::new(),
            hold,
            widths: None,
        }
    }

    /// Starts the table at its first rows (an unbounded query's, whose
    /// next rows may be long in coming).
    pub fn hold_none(&mut self) {
        self.hold = 0;
    }

    /// Prints the rows of `batch` (or holds them).
    ///
    /// # Errors
    /// A value cannot be formatted, or writing fails.
    pub fn push(&mut self, out: &mut dyn Write, batch: &RecordBatch) -> io::Result<()> {
        let options = FormatOptions::default();
        let columns = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io::Error::other)?;
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = columns.iter().map(|c| c.value(row).to_string()).collect();
            match &self.widths {
                Some(widths) => write_row(out, widths, &cells)?,
                None => self.held.push(cells),
            }
        }
        if self.widths.is_none() && self.held.len() >= self.hold {
            self.start(out)?;
        }
        Ok(())
    }

    /// Ends the table of `rows` rows, saying `0 rows` when it has none.
    ///
    /// # Errors
    /// Writing fails.
    pub fn finish(&mut self, out: &mut dyn Write, rows: usize) -> io::Result<()> {
        if self.widths.is_none() {
            self.start(out)?;
        }
        let widths = self.widths.as_deref().unwrap_or_default();
        write_border(out, widths)?;
        if rows == 0 {
            writeln!(out, "0 rows")?;
        }
        Ok(())
    }

    /// Sets the widths from the header and the rows held, and prints them.
    fn start(&mut self, out: &mut dyn Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.held {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        write_border(out, &widths)?;
        write_row(out, &widths, &self.header)?;
        write_border(out, &widths)?;
        for row in std::mem::take(&mut self.held) {
            write_row(out, &widths, &row)?;
        }
        self.widths = Some(widths);
        Ok(())
    }
}

fn width(text: &str) -> usize {
    text.chars().count()
}

fn write_border(out: &mut dyn Write, widths: &[usize]) -> io::Result<()> {
    let mut line = String::from("+");
    for w in widths {
        line.push_str(&"-".repeat(w + 2));
        line.push('+');
    }
    writeln!(out, "{line}")
}

fn write_row(out: &mut dyn Write, widths: &[usize], cells: &[String]) -> io::Result<()> {
    let mut line = String::from("|");
    for (w, cell) in widths.iter().zip(cells) {
        let pad = w.saturating_sub(width(cell));
        line.push(' ');
        line.push_str(cell);
        line.push_str(&" ".repeat(pad + 1));
        line.push('|');
    }
    writeln!(out, "{line}")
}
