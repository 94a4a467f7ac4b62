//! The `print` sink: every row on standard output, as Flink prints them.
//!
//! A row prints as `+I[v1, v2, ...]` (an insertion, in Flink's notation),
//! values displayed as Arrow displays them and nulls as `null`. Lines are
//! prefixed as Flink prefixes them: with `<print-identifier>> ` when the
//! option is given, with `<subtask>> ` (counted from 1) when the sink has
//! more than one subtask, and with `<print-identifier>:<subtask>> ` when
//! both apply. Option `standard-error` = `true` prints to standard error.
//!
//! Rows print as they arrive: this is a sink for looking at a job's output,
//! and a subtask that runs again prints its rows again.

use std::fmt;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use weir_engine::registry::{ConnectorOptions, SinkConnector};
use weir_engine::task::Counters;
use weir_engine::{Sink, SinkFactory, TaskInfo};
use weir_exchange::cpu;

use crate::Result;
use crate::options::bool_option;

/// The options of the `print` connector.
pub const PRINT_OPTIONS: [&str; 2] = ["print-identifier", "standard-error"];

/// Prints rows (see the [module](self)).
#[derive(Debug)]
pub struct PrintConnector;

#[async_trait]
impl SinkConnector for PrintConnector {
    fn name(&self) -> &'static str {
        "print"
    }

    fn option_names(&self) -> Vec<&'static str> {
        PRINT_OPTIONS.to_vec()
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        _schema: SchemaRef,
    ) -> weir_engine::Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(PrintSink::from_options(options)?))
    }
}

/// Where printed rows go.
#[derive(Clone)]
pub enum PrintTarget {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// Any writer, shared by every subtask (tests capture the output).
    Writer(Arc<Mutex<dyn Write + Send>>),
}

impl fmt::Debug for PrintTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stdout => "Stdout",
            Self::Stderr => "Stderr",
            Self::Writer(_) => "Writer",
        })
    }
}

impl PrintTarget {
    /// Writes `text` in one go: lines of other subtasks cannot come
    /// between its lines.
    fn write_all(&self, text: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text)?;
                out.flush()
            }
            Self::Stderr => std::io::stderr().lock().write_all(text),
            Self::Writer(writer) => {
                let mut writer = writer.lock().unwrap_or_else(|p| p.into_inner());
                writer.write_all(text)?;
                writer.flush()
            }
        }
    }
}

/// Prints every row it receives.
#[derive(Debug, Clone)]
pub struct PrintSink {
    identifier: Option<String>,
    target: PrintTarget,
}

impl PrintSink {
    /// A sink printing to `target`, lines without an identifier.
    pub fn new(target: PrintTarget) -> Self {
        Self {
            identifier: None,
            target,
        }
    }

    /// Prefixes lines with `identifier`.
    pub fn with_identifier(mut self, identifier: impl Into<String>) -> Self {
        self.identifier = Some(identifier.into());
        self
    }

    /// The sink options `print-identifier` and `standard-error` describe.
    ///
    /// # Errors
    /// [`crate::Error::Option`] for a `standard-error` that is not a boolean.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let target = if bool_option(options, "standard-error", false)? {
            PrintTarget::Stderr
        } else {
            PrintTarget::Stdout
        };
        let sink = Self::new(target);
        Ok(match options.get("print-identifier") {
            Some(identifier) => sink.with_identifier(identifier),
            None => sink,
        })
    }
}

#[async_trait]
impl SinkFactory for PrintSink {
    fn name(&self) -> String {
        match &self.identifier {
            Some(identifier) => format!("print({identifier})"),
            None => "print".to_string(),
        }
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Sink>> {
        Ok(Box::new(PrintWriter {
            prefix: line_prefix(self.identifier.as_deref(), task.subtask, task.parallelism).into(),
            target: self.target.clone(),
            counters: task.counters.clone(),
        }))
    }
}

/// What starts every line subtask `subtask` (of `parallelism`) prints, as
/// Flink's print sink writes it.
pub(crate) fn line_prefix(identifier: Option<&str>, subtask: usize, parallelism: usize) -> String {
    let mut prefix = identifier.unwrap_or_default().to_string();
    if parallelism > 1 {
        if !prefix.is_empty() {
            prefix.push(':');
        }
        let _ = write!(prefix, "{}", subtask + 1);
    }
    if !prefix.is_empty() {
        prefix.push_str("> ");
    }
    prefix
}

/// Appends one line per row of `batch` to `out`: `prefix` then
/// `+I[v1, v2, ...]`.
///
/// # Errors
/// When Arrow cannot display a column's type.
pub(crate) fn format_rows(batch: &RecordBatch, prefix: &str, out: &mut String) -> Result<()> {
    let options = FormatOptions::default().with_null("null");
    let columns = batch
        .columns()
        .iter()
        .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
        .collect::<Result<Vec<_>, _>>()?;
    for row in 0..batch.num_rows() {
        out.push_str(prefix);
        out.push_str("+I[");
        for (i, column) in columns.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            column.value(row).write(out)?;
        }
        out.push_str("]\n");
    }
    Ok(())
}

/// The rows of one subtask.
struct PrintWriter {
    prefix: Arc<str>,
    target: PrintTarget,
    counters: Counters,
}

#[async_trait]
impl Sink for PrintWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> weir_engine::Result<()> {
        let rows = batch.num_rows() as u64;
        let prefix = Arc::clone(&self.prefix);
        let text = cpu::run(move || {
            let mut text = String::new();
            format_rows(&batch, &prefix, &mut text).map(|()| text)
        })
        .await?;
        self.target.write_all(text.as_bytes())?;
        self.counters.add("rows written", rows);
        Ok(())
    }

    /// At least once: what was written stays written, and a restart from
    /// a checkpoint writes what followed it again.
    async fn prepare_commit(
        &mut self,
        _checkpoint: u64,
    ) -> weir_engine::Result<Option<serde_json::Value>> {
        Ok(None)
    }

    async fn finish(&mut self) -> weir_engine::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn prefixes_are_flinks() {
        assert_eq!(line_prefix(None, 0, 1), "");
        assert_eq!(line_prefix(None, 2, 4), "3> ");
        assert_eq!(line_prefix(Some("out"), 0, 1), "out> ");
        assert_eq!(line_prefix(Some("out"), 1, 2), "out:2> ");
        assert_eq!(line_prefix(Some(""), 1, 2), "2> ");
    }

    #[test]
    fn standard_error_picks_stderr() {
        let options = |pairs: &[(&str, &str)]| -> ConnectorOptions {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let sink = PrintSink::from_options(&options(&[("standard-error", "true")]))
            .expect("valid options");
        assert!(matches!(sink.target, PrintTarget::Stderr));
        let sink = PrintSink::from_options(&options(&[])).expect("valid options");
        assert!(matches!(sink.target, PrintTarget::Stdout));
    }

    #[test]
    fn rows_print_as_insertions() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None])),
                Arc::new(StringArray::from(vec![None, Some("b, c")])),
            ],
        )
        .expect("batch");
        let mut out = String::new();
        format_rows(&batch, "t:1> ", &mut out).expect("format");
        assert_eq!(out, "t:1> +I[1, null]\nt:1> +I[null, b, c]\n");
    }
}
