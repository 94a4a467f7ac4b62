//! Flink SQL syntax that DataFusion's parser does not take, lifted out of a
//! script before it is parsed. The text is rewritten in place, character
//! for character, so that every statement keeps its line and column and
//! errors still point at the right text:
//!
//! - `WATERMARK FOR ts AS ts - INTERVAL '5' SECOND` in the column list of
//!   `CREATE TABLE` is blanked out and returned as a [`WatermarkClause`] of
//!   the table;
//! - `METADATA [FROM 'key'] [VIRTUAL]` after a column's type in the column
//!   list of `CREATE TABLE` is blanked out and returned as a
//!   [`MetadataClause`]: the column reads the source's metadata;
//! - window table functions in Flink's form, `TABLE(TUMBLE(TABLE bid,
//!   DESCRIPTOR(date_time), INTERVAL '10' SECOND))`, lose the `TABLE(...)`
//!   around them, the `TABLE` before the input and the `DESCRIPTOR(...)`
//!   around the time column, leaving `TUMBLE(bid, date_time, INTERVAL '10'
//!   SECOND)`: a table function the catalog resolves. A `PARTITION BY`
//!   of `SESSION` is dropped: sessions are kept per group key of the
//!   aggregate over them.

use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::keywords::Keyword;
use datafusion_sql::sqlparser::tokenizer::{Location, Span, Token, Tokenizer};

use super::SqlError;

/// The window table functions.
pub const WINDOW_FUNCTIONS: [&str; 4] = ["tumble", "hop", "cumulate", "session"];

/// A `WATERMARK FOR column AS expression` clause of a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkClause {
    /// The table declared (as `CREATE TABLE` names it, lower-cased unless
    /// quoted).
    pub table: String,
    /// The time column.
    pub column: String,
    /// The expression's text.
    pub expression: String,
    /// Where the clause was.
    pub span: Span,
}

/// A `METADATA [FROM 'key'] [VIRTUAL]` column of a `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataClause {
    /// The column (lower-cased unless quoted).
    pub column: String,
    /// The metadata it reads: the `FROM` key, else the column's name.
    pub key: String,
    /// Whether the column is only read (`VIRTUAL`): an insert into the
    /// table does not write it.
    pub is_virtual: bool,
    /// Where the clause was.
    pub span: Span,
}

/// A script with the syntax above lifted out.
#[derive(Debug, Clone, Default)]
pub struct Lifted {
    /// The script, as DataFusion's parser takes it.
    pub text: String,
    /// The watermark clauses, in order.
    pub watermarks: Vec<WatermarkClause>,
    /// The metadata columns, in order.
    pub metadata: Vec<MetadataClause>,
    /// The tables and views read by window table functions.
    pub window_inputs: Vec<String>,
}

/// One token that is not whitespace, with the characters it covers.
struct Piece {
    token: Token,
    span: Span,
    /// Character offsets in the script: `[start, end)`.
    chars: (usize, usize),
}

impl Piece {
    fn keyword(&self) -> Option<Keyword> {
        match &self.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
            _ => None,
        }
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(&self.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
    }

    /// The identifier this token names: lower-cased unless quoted.
    fn name(&self) -> Option<String> {
        match &self.token {
            Token::Word(w) if w.quote_style.is_some() => Some(w.value.clone()),
            Token::Word(w) => Some(w.value.to_lowercase()),
            _ => None,
        }
    }
}

/// Lifts the syntax above out of `text`.
///
/// # Errors
/// Text that does not tokenize, or a watermark or window clause that is
/// cut short.
pub fn lift(text: &str) -> Result<Lifted, SqlError> {
    let pieces = pieces(text)?;
    let mut chars: Vec<char> = text.chars().collect();
    let mut blank = |(start, end): (usize, usize)| {
        for c in &mut chars[start..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut watermarks = Vec::new();
    let mut metadata = Vec::new();
    let mut window_inputs = Vec::new();
    let mut i = 0;
    while i < pieces.len() {
        if pieces[i].keyword() == Some(Keyword::CREATE)
            && let Some((table, open)) = created_table(&pieces, i)
        {
            let mut clauses = ColumnClauses {
                watermarks: &mut watermarks,
                metadata: &mut metadata,
            };
            i = column_list_clauses(&pieces, table, open, text, &mut blank, &mut clauses)?;
            continue;
        }
        if let Some(function) = window_call(&pieces, i) {
            i = window_arguments(&pieces, function, &mut blank, &mut window_inputs)?;
            continue;
        }
        i += 1;
    }
    Ok(Lifted {
        text: chars.into_iter().collect(),
        watermarks,
        metadata,
        window_inputs,
    })
}

/// The tokens of `text` that are not whitespace or comments.
fn pieces(text: &str) -> Result<Vec<Piece>, SqlError> {
    let tokens = Tokenizer::new(&GenericDialect {}, text)
        .tokenize_with_location()
        .map_err(|e| SqlError::new(e.to_string()))?;
    // Character offset of the start of each line.
    let mut line_starts = vec![0];
    for (offset, c) in text.chars().enumerate() {
        if c == '\n' {
            line_starts.push(offset + 1);
        }
    }
    let offset = |at: Location| {
        line_starts
            .get(at.line as usize - 1)
            .map_or(0, |start| start + at.column as usize - 1)
    };
    Ok(tokens
        .into_iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| Piece {
            chars: (offset(t.span.start), offset(t.span.end)),
            span: t.span,
            token: t.token,
        })
        .collect())
}

/// For `CREATE [OR REPLACE] [TEMPORARY] TABLE [IF NOT EXISTS] name (` at
/// `at`: the table's name and the position of the `(`.
fn created_table(pieces: &[Piece], at: usize) -> Option<(String, usize)> {
    let mut i = at + 1;
    let skip = |i: &mut usize, words: &[Keyword]| {
        while pieces
            .get(*i)
            .and_then(Piece::keyword)
            .is_some_and(|k| words.contains(&k))
        {
            *i += 1;
        }
    };
    skip(&mut i, &[Keyword::OR, Keyword::REPLACE, Keyword::TEMPORARY]);
    if pieces.get(i)?.keyword() != Some(Keyword::TABLE) {
        return None;
    }
    i += 1;
    skip(&mut i, &[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = pieces.get(i)?.name()?;
    (pieces.get(i + 1)?.token == Token::LParen).then_some((name, i + 1))
}

/// Where the clauses of a column list go.
struct ColumnClauses<'a> {
    watermarks: &'a mut Vec<WatermarkClause>,
    metadata: &'a mut Vec<MetadataClause>,
}

/// Lifts the `WATERMARK FOR` and `METADATA` clauses out of the column list
/// opened at `open`; returns the position after the list.
fn column_list_clauses(
    pieces: &[Piece],
    table: String,
    open: usize,
    text: &str,
    blank: &mut impl FnMut((usize, usize)),
    out: &mut ColumnClauses<'_>,
) -> Result<usize, SqlError> {
    let mut depth = 0;
    let mut i = open;
    // The first piece of the column being declared.
    let mut column_start = open + 1;
    while i < pieces.len() {
        match pieces[i].token {
            Token::LParen => depth += 1,
            Token::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i + 1);
                }
            }
            Token::Comma if depth == 1 => column_start = i + 1,
            _ if depth == 1 && pieces[i].keyword() == Some(Keyword::METADATA) => {
                let clause = metadata_clause(pieces, column_start, i)?;
                let last = clause.1;
                blank((pieces[i].chars.0, pieces[last].chars.1));
                out.metadata.push(clause.0);
                i = last + 1;
                continue;
            }
            _ if depth == 1 && pieces[i].is_word("watermark") => {
                let clause = i;
                let cut = || {
                    SqlError::new("expected WATERMARK FOR column AS expression")
                        .at(pieces[clause].span)
                };
                let keyword = |at: usize| pieces.get(at).and_then(Piece::keyword);
                if keyword(i + 1) != Some(Keyword::FOR) || keyword(i + 3) != Some(Keyword::AS) {
                    return Err(cut());
                }
                let column = pieces.get(i + 2).and_then(Piece::name).ok_or_else(cut)?;
                // The expression runs to the next comma or the list's end.
                let mut end = i + 4;
                let mut nested = 0;
                while end < pieces.len() {
                    match pieces[end].token {
                        Token::LParen => nested += 1,
                        Token::RParen if nested == 0 => break,
                        Token::RParen => nested -= 1,
                        Token::Comma if nested == 0 => break,
                        _ => {}
                    }
                    end += 1;
                }
                if end == i + 4 || end == pieces.len() {
                    return Err(cut());
                }
                let chars: Vec<char> = text.chars().collect();
                let expression: String = chars[pieces[i + 4].chars.0..pieces[end - 1].chars.1]
                    .iter()
                    .collect();
                out.watermarks.push(WatermarkClause {
                    table: table.clone(),
                    column,
                    expression,
                    span: Span::new(pieces[clause].span.start, pieces[end - 1].span.end),
                });
                // The clause goes with the comma before it (or after it, when
                // it comes first).
                let from = if pieces[clause - 1].token == Token::Comma {
                    clause - 1
                } else {
                    clause
                };
                let to = if from == clause && pieces[end].token == Token::Comma {
                    end
                } else {
                    end - 1
                };
                blank((pieces[from].chars.0, pieces[to].chars.1));
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    Err(SqlError::new("the column list of CREATE TABLE is not closed").at(pieces[open].span))
}

/// The `METADATA [FROM 'key'] [VIRTUAL]` clause at `at` of the column
/// declared from `column`, and the position of its last piece.
fn metadata_clause(
    pieces: &[Piece],
    column: usize,
    at: usize,
) -> Result<(MetadataClause, usize), SqlError> {
    let cut = || {
        SqlError::new("expected METADATA [FROM 'key'] [VIRTUAL] after a column's type")
            .at(pieces[at].span)
    };
    let name = pieces
        .get(column)
        .filter(|_| column < at)
        .and_then(Piece::name)
        .ok_or_else(cut)?;
    let mut last = at;
    let mut key = name.clone();
    if pieces.get(at + 1).and_then(Piece::keyword) == Some(Keyword::FROM) {
        match pieces.get(at + 2).map(|p| &p.token) {
            Some(Token::SingleQuotedString(from)) => key = from.clone(),
            _ => return Err(cut()),
        }
        last = at + 2;
    }
    let is_virtual = pieces.get(last + 1).and_then(Piece::keyword) == Some(Keyword::VIRTUAL);
    if is_virtual {
        last += 1;
    }
    Ok((
        MetadataClause {
            column: name,
            key,
            is_virtual,
            span: Span::new(pieces[at].span.start, pieces[last].span.end),
        },
        last,
    ))
}

/// At `at`, a window function call: `[TABLE (] TUMBLE (` (and the others).
/// Returns the position of the function's name; blanks nothing.
fn window_call(pieces: &[Piece], at: usize) -> Option<usize> {
    let function = |i: usize| {
        pieces
            .get(i)
            .is_some_and(|p| WINDOW_FUNCTIONS.iter().any(|f| p.is_word(f)))
            && pieces.get(i + 1).is_some_and(|p| p.token == Token::LParen)
    };
    if function(at) {
        return Some(at);
    }
    (pieces[at].keyword() == Some(Keyword::TABLE)
        && pieces.get(at + 1).is_some_and(|p| p.token == Token::LParen)
        && function(at + 2))
    .then_some(at)
}

/// Rewrites one window function call starting at `at` (its name, or the
/// `TABLE` around it); returns the position after it.
fn window_arguments(
    pieces: &[Piece],
    at: usize,
    blank: &mut impl FnMut((usize, usize)),
    inputs: &mut Vec<String>,
) -> Result<usize, SqlError> {
    let wrapped = pieces[at].keyword() == Some(Keyword::TABLE);
    let name = if wrapped { at + 2 } else { at };
    if wrapped {
        blank((pieces[at].chars.0, pieces[at + 1].chars.1));
    }
    let unclosed =
        || SqlError::new("the window function's arguments are not closed").at(pieces[name].span);
    let mut depth = 0;
    let mut argument_start = true;
    let mut descriptors: Vec<usize> = Vec::new();
    let mut i = name + 1;
    let mut first_argument = true;
    loop {
        let piece = pieces.get(i).ok_or_else(unclosed)?;
        match &piece.token {
            Token::LParen => {
                depth += 1;
                argument_start = depth == 1;
            }
            Token::RParen => {
                if descriptors.last() == Some(&depth) {
                    blank(piece.chars);
                    descriptors.pop();
                }
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            Token::Comma if depth == 1 => {
                argument_start = true;
                first_argument = false;
            }
            _ if argument_start && piece.keyword() == Some(Keyword::TABLE) => {
                blank(piece.chars);
            }
            _ if argument_start
                && piece.is_word("descriptor")
                && pieces.get(i + 1).is_some_and(|p| p.token == Token::LParen) =>
            {
                blank((piece.chars.0, pieces[i + 1].chars.1));
                descriptors.push(depth + 1);
                depth += 1;
                i += 2;
                continue;
            }
            _ if depth == 1 && piece.keyword() == Some(Keyword::PARTITION) => {
                // PARTITION BY keys, up to the next argument.
                let from = piece.chars.0;
                let mut to = piece.chars.1;
                while let Some(next) = pieces.get(i + 1)
                    && !matches!(next.token, Token::Comma | Token::RParen)
                {
                    to = next.chars.1;
                    i += 1;
                }
                blank((from, to));
            }
            _ => {
                if argument_start
                    && first_argument
                    && let Some(input) = piece.name()
                {
                    inputs.push(input);
                }
                argument_start = false;
            }
        }
        i += 1;
    }
    if wrapped {
        let close = pieces
            .get(i + 1)
            .filter(|p| p.token == Token::RParen)
            .ok_or_else(unclosed)?;
        blank(close.chars);
        i += 1;
    }
    Ok(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermark_clauses_are_lifted_in_place() {
        let text = "CREATE TABLE Bids (\n  price BIGINT,\n  ts TIMESTAMP(3),\n  WATERMARK FOR ts AS ts - INTERVAL '5' SECOND\n) WITH ('connector' = 'x');";
        let lifted = lift(text).expect("lifts");
        assert_eq!(lifted.text.chars().count(), text.chars().count());
        assert_eq!(lifted.text.lines().count(), text.lines().count());
        assert!(!lifted.text.contains("WATERMARK"), "{}", lifted.text);
        assert!(lifted.text.contains("ts TIMESTAMP(3) "), "{}", lifted.text);
        let [clause] = lifted.watermarks.as_slice() else {
            panic!("one clause: {:?}", lifted.watermarks)
        };
        assert_eq!(clause.table, "bids");
        assert_eq!(clause.column, "ts");
        assert_eq!(clause.expression, "ts - INTERVAL '5' SECOND");
        assert_eq!((clause.span.start.line, clause.span.start.column), (4, 3));
        // First in the list, with a nested parenthesis in its expression.
        let lifted =
            lift("CREATE TABLE t (WATERMARK FOR ts AS (ts), ts TIMESTAMP)").expect("lifts");
        assert_eq!(
            lifted.text.split_whitespace().collect::<Vec<_>>(),
            ["CREATE", "TABLE", "t", "(", "ts", "TIMESTAMP)"]
        );
        assert_eq!(lifted.watermarks[0].expression, "(ts)");
    }

    #[test]
    fn metadata_columns_are_lifted_in_place() {
        let text = "CREATE TABLE k (\n  id BIGINT,\n  off BIGINT METADATA FROM 'offset' VIRTUAL,\n  `timestamp` TIMESTAMP(3) METADATA,\n  p INT METADATA FROM 'partition'\n)";
        let lifted = lift(text).expect("lifts");
        assert_eq!(lifted.text.chars().count(), text.chars().count());
        assert_eq!(
            lifted.text.split_whitespace().collect::<Vec<_>>().join(" "),
            "CREATE TABLE k ( id BIGINT, off BIGINT , `timestamp` TIMESTAMP(3) , p INT )"
        );
        let found: Vec<(&str, &str, bool)> = lifted
            .metadata
            .iter()
            .map(|m| (m.column.as_str(), m.key.as_str(), m.is_virtual))
            .collect();
        assert_eq!(
            found,
            [
                ("off", "offset", true),
                ("timestamp", "timestamp", false),
                ("p", "partition", false)
            ]
        );
        assert_eq!(lifted.metadata[0].span.start.line, 3);
        let e = lift("CREATE TABLE k (off BIGINT METADATA FROM offset)").expect_err("unquoted");
        assert!(e.message.contains("METADATA [FROM 'key']"), "{}", e.message);
    }

    #[test]
    fn flink_window_functions_become_table_functions() {
        let text = "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) AS t";
        let lifted = lift(text).expect("lifts");
        assert_eq!(
            lifted.text.split_whitespace().collect::<Vec<_>>().join(" "),
            "SELECT * FROM TUMBLE( bid, date_time , INTERVAL '10' SECOND) AS t"
        );
        assert_eq!(lifted.window_inputs, vec!["bid".to_string()]);
        let text = "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY auction, DESCRIPTOR(ts), INTERVAL '1' MINUTE))";
        let lifted = lift(text).expect("lifts");
        assert_eq!(
            lifted.text.split_whitespace().collect::<Vec<_>>().join(" "),
            "SELECT * FROM SESSION( bid , ts , INTERVAL '1' MINUTE)"
        );
        // The plain form passes through; the input is still known.
        let lifted = lift("SELECT * FROM hop(v, ts, INTERVAL '1' SECOND, INTERVAL '5' SECOND)")
            .expect("lifts");
        assert_eq!(lifted.window_inputs, vec!["v".to_string()]);
        assert!(lifted.watermarks.is_empty());
    }

    #[test]
    fn cut_clauses_are_errors_placed_at_them() {
        let e = lift("CREATE TABLE t (ts TIMESTAMP, WATERMARK ts)").expect_err("cut");
        assert!(
            e.message.contains("WATERMARK FOR column AS expression"),
            "{e:?}"
        );
        let e = lift("SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts)").expect_err("cut");
        assert!(e.message.contains("not closed"), "{e:?}");
    }
}
