//! Sort keys and their row encoding, shared by [`Sort`](super::Sort) and
//! [`TopN`](super::TopN).
//!
//! The key columns of a batch are evaluated and encoded with Arrow's row
//! format, whose rows compare as plain bytes in the order the keys ask for
//! (direction and null placement included): sorting, merging and top-N
//! selection all compare encoded rows, whatever the key types.

use std::fmt;

use arrow::array::RecordBatch;
use arrow::compute::SortOptions;
use arrow::datatypes::Schema;
use arrow::row::{RowConverter, Rows, SortField};

use crate::expr::{Compiled, SortExpr};
use crate::{Error, Result};

/// One key of an ordering: an expression, its direction and where its nulls
/// go.
#[derive(Debug, Clone)]
pub struct SortKey {
    /// The expression sorted on, typed against the operator's input.
    pub expr: Compiled,
    /// Largest first.
    pub descending: bool,
    /// Nulls before every value (otherwise after).
    pub nulls_first: bool,
}

impl SortKey {
    /// Ascending with nulls last (nulls sort as the largest value, as in
    /// PostgreSQL and DataFusion).
    pub fn asc(expr: Compiled) -> Self {
        Self {
            expr,
            descending: false,
            nulls_first: false,
        }
    }

    /// Descending with nulls first (nulls sort as the largest value).
    pub fn desc(expr: Compiled) -> Self {
        Self {
            expr,
            descending: true,
            nulls_first: true,
        }
    }

    /// The key a DataFusion sort expression (`expr.sort(asc, nulls_first)`)
    /// asks for, typed against `schema`.
    ///
    /// # Errors
    /// [`Error::Expr`](crate::Error::Expr) when the expression does not type.
    pub fn compile(sort: &SortExpr, schema: &Schema) -> Result<Self> {
        Ok(Self {
            expr: Compiled::new(&sort.expr, schema)?,
            descending: !sort.asc,
            nulls_first: sort.nulls_first,
        })
    }

    /// The same key with nulls placed first (`true`) or last.
    pub fn with_nulls_first(mut self, nulls_first: bool) -> Self {
        self.nulls_first = nulls_first;
        self
    }

    /// The key's direction and null placement as Arrow's sort options.
    pub fn options(&self) -> SortOptions {
        SortOptions {
            descending: self.descending,
            nulls_first: self.nulls_first,
        }
    }

    fn sort_field(&self) -> SortField {
        SortField::new_with_options(self.expr.field().data_type().clone(), self.options())
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = if self.descending { "DESC" } else { "ASC" };
        let nulls = if self.nulls_first { "FIRST" } else { "LAST" };
        write!(f, "{} {direction} NULLS {nulls}", self.expr)
    }
}

/// `keys` as written in an ORDER BY clause.
pub(crate) fn describe(keys: &[SortKey]) -> String {
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that `keys` define an ordering: at least one key, each of a type
/// the row format can order.
pub(crate) fn validate(keys: &[SortKey]) -> Result<()> {
    if keys.is_empty() {
        return Err(Error::Plan(
            "an ordering needs at least one sort key".into(),
        ));
    }
    for key in keys {
        if !RowConverter::supports_fields(&[key.sort_field()]) {
            return Err(Error::Plan(format!(
                "sort key {key} has type {}, which cannot be ordered",
                key.expr.field().data_type()
            )));
        }
    }
    Ok(())
}

/// Evaluates an operator's sort keys over batches and encodes them as
/// comparable rows.
pub(crate) struct KeyEncoder {
    operator: String,
    keys: Vec<SortKey>,
    converter: RowConverter,
}

impl KeyEncoder {
    /// An encoder for `keys` of the operator named `operator`.
    pub(crate) fn try_new(operator: String, keys: &[SortKey]) -> Result<Self> {
        let converter = RowConverter::new(keys.iter().map(SortKey::sort_field).collect())
            .map_err(|e| operator_error(&operator, "setting up the key encoding", e))?;
        Ok(Self {
            operator,
            keys: keys.to_vec(),
            converter,
        })
    }

    /// The encoded keys of every row of `batch`.
    ///
    /// An expression that fails keeps its [`Error::Expr`] (it names the
    /// key), so the failure stays typed as not retryable.
    pub(crate) fn encode(&self, batch: &RecordBatch) -> Result<Rows> {
        let columns = self
            .keys
            .iter()
            .map(|key| key.expr.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        self.converter
            .convert_columns(&columns)
            .map_err(|e| self.error("encoding the sort keys", e))
    }

    /// An error of the operator while `doing` something.
    pub(crate) fn error(&self, doing: &str, e: impl fmt::Display) -> Error {
        operator_error(&self.operator, doing, e)
    }

    /// The name of the operator.
    pub(crate) fn operator(&self) -> &str {
        &self.operator
    }
}

/// An error of `operator` while `doing` something.
pub(crate) fn operator_error(operator: &str, doing: &str, e: impl fmt::Display) -> Error {
    Error::Operator {
        operator: operator.to_string(),
        message: format!("{doing}: {e}"),
    }
}

/// Orders `(batch, row)` positions by their encoded keys in `rows` (one
/// `Rows` per batch). The sort is stable: equal keys keep the order they
/// are given in.
pub(crate) fn sort_positions(rows: &[&Rows], positions: &mut [(usize, usize)]) {
    positions.sort_by(|&(a, i), &(b, j)| rows[a].row(i).cmp(&rows[b].row(j)));
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::expr::col;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(2), None, Some(1), Some(2)])),
                Arc::new(StringArray::from(vec![
                    Some("x"),
                    Some("y"),
                    None,
                    Some("a"),
                ])),
            ],
        )
        .expect("valid batch")
    }

    fn key(name: &str) -> Compiled {
        Compiled::new(&col(name), &batch().schema()).expect("compiles")
    }

    #[test]
    fn keys_display_as_in_order_by() {
        let keys = [
            SortKey::desc(key("a")).with_nulls_first(false),
            SortKey::asc(key("s")),
        ];
        assert_eq!(describe(&keys), "a DESC NULLS LAST, s ASC NULLS LAST");
    }

    #[test]
    fn positions_sort_by_every_key_in_its_direction() {
        let b = batch();
        let keys = [
            SortKey::desc(key("a")),
            SortKey::asc(key("s")).with_nulls_first(true),
        ];
        let encoder = KeyEncoder::try_new("sort".into(), &keys).expect("encoder");
        let rows = encoder.encode(&b).expect("encodes");
        let mut positions: Vec<_> = (0..4).map(|i| (0, i)).collect();
        sort_positions(&[&rows], &mut positions);
        // a DESC NULLS FIRST: null, 2, 2, 1; the twos ordered by s.
        assert_eq!(positions, vec![(0, 1), (0, 3), (0, 0), (0, 2)]);
    }

    #[test]
    fn an_empty_ordering_is_rejected() {
        let err = validate(&[]).expect_err("no keys");
        assert!(err.to_string().contains("at least one sort key"), "{err}");
    }
}
