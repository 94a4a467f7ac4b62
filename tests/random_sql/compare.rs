//! Results of both engines in one form, and their comparison: integers and
//! decimals by exact value (`380456.00` equals `380456.0`), floats (and a
//! decimal facing a float: weir keeps `avg` of decimals decimal, DuckDB
//! makes it a double) to a relative 1e-6, everything else as text. Rows
//! compare in order when the query orders them, as multisets otherwise.

use std::cmp::Ordering;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

/// One value of a result.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    /// An integer or decimal, normalized: no trailing zeros, no `-0`.
    Exact(String),
    Float(f64),
    Text(String),
}

pub type Row = Vec<Cell>;

impl Cell {
    /// A value of DuckDB's answer: `null` or a tagged string (see
    /// `duckdb_answers.py`).
    pub fn from_tagged(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Self::Null;
        };
        let (tag, text) = value.split_at(2);
        match tag {
            "i:" | "d:" => Self::Exact(normalized(text)),
            "f:" => Self::Float(text.parse().unwrap_or(f64::NAN)),
            _ => Self::Text(text.to_string()),
        }
    }

    fn number(&self) -> Option<f64> {
        match self {
            Self::Exact(text) => text.parse().ok(),
            Self::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Whether `self` and `other` are the same value, to the tolerance
    /// of floats.
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Exact(a), Self::Exact(b)) => a == b,
            (Self::Float(_) | Self::Exact(_), Self::Float(_) | Self::Exact(_)) => {
                let (a, b) = (self.number(), other.number());
                a.zip(b).is_some_and(|(a, b)| close(a, b))
            }
            _ => self == other,
        }
    }

    /// The order rows are sorted in before a multiset comparison: NULL,
    /// then numbers (to nine significant digits, so that close floats
    /// mostly sort alike), then text.
    fn sort_cmp(&self, other: &Self) -> Ordering {
        let rank = |c: &Self| match c {
            Self::Null => 0,
            Self::Exact(_) | Self::Float(_) => 1,
            Self::Text(_) => 2,
        };
        match (self, other) {
            (Self::Text(a), Self::Text(b)) => a.cmp(b),
            _ => match (self.number(), other.number()) {
                (Some(a), Some(b)) => rounded(a).total_cmp(&rounded(b)),
                _ => rank(self).cmp(&rank(other)),
            },
        }
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

fn rounded(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(8 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

/// `text` (an integer or decimal) without trailing zeros after its point,
/// and `0` for negative zero.
fn normalized(text: &str) -> String {
    let mut text = text.to_string();
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if text == "-0" || text.is_empty() {
        text = "0".to_string();
    }
    text
}

/// The rows of weir's `batches`.
pub fn rows_of(batches: &[RecordBatch]) -> Vec<Row> {
    let options = FormatOptions::default();
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| {
                let formatter = ArrayFormatter::try_new(c.as_ref(), &options).expect("formats");
                (c, formatter)
            })
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|(column, formatter)| {
                        if column.is_null(row) {
                            return Cell::Null;
                        }
                        let text = formatter.value(row).to_string();
                        match column.data_type() {
                            t if t.is_integer() => Cell::Exact(normalized(&text)),
                            DataType::Decimal128(..) | DataType::Decimal256(..) => {
                                Cell::Exact(normalized(&text))
                            }
                            t if t.is_floating() => Cell::Float(text.parse().unwrap_or(f64::NAN)),
                            _ => Cell::Text(text),
                        }
                    })
                    .collect(),
            );
        }
    }
    rows
}

/// Where `actual` differs from `expected` (in order when `ordered`), or
/// `None` when it does not.
pub fn difference(expected: &[Row], actual: &[Row], ordered: bool) -> Option<String> {
    if expected.len() != actual.len() {
        return Some(format!(
            "{} rows, DuckDB has {}{}",
            actual.len(),
            expected.len(),
            sample(expected, actual)
        ));
    }
    let same_row = |a: &Row, b: &Row| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y));
    if ordered {
        return expected
            .iter()
            .zip(actual)
            .position(|(e, a)| !same_row(e, a))
            .map(|i| format!("row {i} is {:?}, DuckDB has {:?}", actual[i], expected[i]));
    }
    let sort = |rows: &[Row]| {
        let mut rows = rows.to_vec();
        rows.sort_by(|a, b| {
            a.iter()
                .zip(b)
                .map(|(x, y)| x.sort_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(Ordering::Equal)
        });
        rows
    };
    let (expected, actual) = (sort(expected), sort(actual));
    if expected.iter().zip(&actual).all(|(e, a)| same_row(e, a)) {
        return None;
    }
    // Close floats may sort apart: match row by row before calling it a
    // difference.
    let mut unmatched: Vec<&Row> = actual.iter().collect();
    for row in &expected {
        match unmatched.iter().position(|a| same_row(row, a)) {
            Some(i) => {
                unmatched.swap_remove(i);
            }
            None => {
                return Some(format!(
                    "DuckDB's row {row:?} is missing; rows weir has instead: {:?}",
                    unmatched.iter().take(3).collect::<Vec<_>>()
                ));
            }
        }
    }
    None
}

fn sample(expected: &[Row], actual: &[Row]) -> String {
    format!(
        "; weir's first rows: {:?}; DuckDB's: {:?}",
        &actual[..actual.len().min(3)],
        &expected[..expected.len().min(3)]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_compare_by_value_and_floats_to_a_tolerance() {
        let exact = |s: &str| Cell::Exact(normalized(s));
        assert!(exact("380456.00").same(&exact("380456")));
        assert!(exact("-0.00").same(&exact("0")));
        assert!(!exact("1.01").same(&exact("1.02")));
        assert!(Cell::Float(25.5).same(&exact("25.500000")));
        assert!(Cell::Float(1.0 / 3.0).same(&exact("0.333333")));
        assert!(!Cell::Float(1.0).same(&Cell::Float(1.001)));
        assert!(!Cell::Null.same(&exact("0")));
    }

    #[test]
    fn multisets_ignore_order_and_lists_do_not() {
        let row = |n: &str, s: &str| vec![Cell::Exact(n.into()), Cell::Text(s.into())];
        let a = vec![row("1", "x"), row("2", "y")];
        let b = vec![row("2", "y"), row("1", "x")];
        assert_eq!(difference(&a, &b, false), None);
        assert!(difference(&a, &b, true).is_some());
        assert!(difference(&a, &b[..1], false).is_some());
    }
}
