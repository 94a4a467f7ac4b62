//! Errors of SQL scripts, pointing at the text that caused them.

use std::fmt;

use datafusion_common::{DataFusionError, Location, Span};

/// What went wrong, and where in the script when known.
#[derive(Debug, Clone)]
pub struct SqlError {
    /// The message.
    pub message: String,
    /// The text it is about.
    pub span: Option<Span>,
}

impl SqlError {
    /// An error without a place.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            span: None,
        }
    }

    /// This error, placed at `span` (of the parsed script) unless it
    /// already has a place.
    pub fn at(mut self, span: datafusion_sql::sqlparser::tokenizer::Span) -> Self {
        if self.span.is_none() {
            self.span = Span::try_from_sqlparser_span(span);
        }
        self
    }

    /// A planner error, placed where the planner says.
    pub fn planner(e: DataFusionError) -> Self {
        let span = e.diagnostic().and_then(|d| d.span);
        let message = match e {
            DataFusionError::SQL(e, _) => e.to_string(),
            other => other.strip_backtrace(),
        };
        Self {
            message: tidy(&message),
            span,
        }
    }

    /// The line and column the error starts at.
    pub fn location(&self) -> Option<Location> {
        self.span.map(|s| s.start)
    }

    /// The error with the script's line it points at and a caret under
    /// the place, as compilers show them:
    ///
    /// ```text
    /// error: table 'lineitems' not found (declared: lineitem, orders)
    ///   --> job.sql:3:6
    ///    |
    ///  3 | FROM lineitems
    ///    |      ^^^^^^^^^
    /// ```
    pub fn render(&self, source: &str, text: &str) -> String {
        let Some(span) = self.span else {
            return format!("{} (in {source})", self.message);
        };
        let (line, col) = (span.start.line as usize, span.start.column as usize);
        let Some(code) = text.lines().nth(line.saturating_sub(1)) else {
            return format!("{}\n  --> {source}:{line}:{col}", self.message);
        };
        let width = if span.end.line == span.start.line && span.end.column > span.start.column {
            (span.end.column - span.start.column) as usize
        } else {
            1
        };
        let number = line.to_string();
        let pad = " ".repeat(number.len());
        format!(
            "{}\n{pad}--> {source}:{line}:{col}\n{pad} |\n{number} | {code}\n{pad} | {}{}",
            self.message,
            " ".repeat(col.saturating_sub(1)),
            "^".repeat(width)
        )
    }
}

/// Planner messages without DataFusion's error-kind prefixes.
fn tidy(message: &str) -> String {
    let mut m = message.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "SQL error: ",
        "Optimizer rule",
    ] {
        if let Some(rest) = m.strip_prefix(prefix) {
            m = rest;
        }
    }
    m.to_string()
}

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location() {
            Some(at) => write!(
                f,
                "{} (at line {}, column {})",
                self.message, at.line, at.column
            ),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for SqlError {}
