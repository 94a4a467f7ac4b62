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

    /// A parser error, placed where the parser stopped (its message says
    /// "at Line: L, Column: C"), under the token there.
    pub fn parser(e: DataFusionError, text: &str) -> Self {
        let mut error = Self::planner(e);
        if error.span.is_none()
            && let Some((line, column)) = parser_location(&error.message)
        {
            let token = text
                .lines()
                .nth(line as usize - 1)
                .map(|l| {
                    l.chars()
                        .skip(column as usize - 1)
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .count()
                })
                .unwrap_or(0)
                .max(1) as u64;
            error.span = Some(Span::new(
                Location { line, column },
                Location {
                    line,
                    column: column + token,
                },
            ));
            if let Some(at) = error.message.find(" at Line: ") {
                error.message.truncate(at);
            }
        }
        error
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

/// The place in a parser message: "... at Line: 2, Column: 1".
fn parser_location(message: &str) -> Option<(u64, u64)> {
    let rest = &message[message.find("at Line: ")? + "at Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let (line, column) = (line.parse().ok()?, column.parse().ok()?);
    (line > 0 && column > 0).then_some((line, column))
}

/// Planner messages without DataFusion's error-kind prefixes.
fn tidy(message: &str) -> String {
    // Of a chain "rule\ncaused by\ncause", the cause says what is wrong.
    let mut m = message
        .rsplit("caused by\n")
        .next()
        .unwrap_or(message)
        .trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "This feature is not implemented: ",
        "SQL error: ",
        "sql parser error: ",
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

impl From<DataFusionError> for SqlError {
    fn from(e: DataFusionError) -> Self {
        Self::planner(e)
    }
}

impl From<weir_engine::Error> for SqlError {
    fn from(e: weir_engine::Error) -> Self {
        Self::new(e.to_string())
    }
}

impl From<weir_scheduler::Error> for SqlError {
    fn from(e: weir_scheduler::Error) -> Self {
        Self::new(e.to_string())
    }
}

impl From<arrow::error::ArrowError> for SqlError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::new(e.to_string())
    }
}
