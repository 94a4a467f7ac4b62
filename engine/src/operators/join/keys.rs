//! Equi-join keys: evaluated on either side, cast to a common type per pair,
//! and encoded in Arrow's row format, so that equal keys are equal bytes
//! whatever their types.

use std::fmt;
use std::hash::Hasher;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_expr::type_coercion::binary::comparison_coercion;

use super::JoinSide;
use crate::expr::Compiled;
use crate::{Error, Result};

/// The pairs of key expressions of an equi-join and the type each pair is
/// compared in.
#[derive(Debug, Clone)]
pub(crate) struct JoinKeys {
    on: Vec<(Compiled, Compiled)>,
    types: Vec<DataType>,
}

impl JoinKeys {
    /// Keys `on` (left expression, right expression); each pair is coerced
    /// to a common type with DataFusion's comparison rules (`Int32` with
    /// `Int64` compares as `Int64`, ...).
    ///
    /// # Errors
    /// [`Error::Plan`] without keys, or when a pair has no common type.
    pub(crate) fn try_new(on: Vec<(Compiled, Compiled)>) -> Result<Self> {
        if on.is_empty() {
            return Err(Error::Plan(
                "a hash join needs at least one pair of keys".to_string(),
            ));
        }
        let types = on
            .iter()
            .map(|(left, right)| {
                let (l, r) = (left.field().data_type(), right.field().data_type());
                comparison_coercion(l, r).ok_or_else(|| {
                    Error::Plan(format!(
                        "join keys {left} ({l}) and {right} ({r}) cannot be compared"
                    ))
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self { on, types })
    }

    /// An encoder of these keys for one operator instance.
    ///
    /// # Errors
    /// When a key type has no row encoding.
    pub(crate) fn encoder(&self) -> Result<KeyEncoder> {
        let fields = self.types.iter().cloned().map(SortField::new).collect();
        Ok(KeyEncoder {
            keys: self.clone(),
            converter: RowConverter::new(fields)?,
        })
    }
}

impl fmt::Display for JoinKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (left, right)) in self.on.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{left} = {right}")?;
        }
        Ok(())
    }
}

/// Evaluates and encodes join keys.
#[derive(Debug)]
pub(crate) struct KeyEncoder {
    keys: JoinKeys,
    converter: RowConverter,
}

impl KeyEncoder {
    /// The key columns of a batch of `side`, in their common types.
    fn columns(&self, side: JoinSide, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.keys
            .on
            .iter()
            .zip(&self.keys.types)
            .map(|((left, right), to)| {
                let expr = match side {
                    JoinSide::Left => left,
                    JoinSide::Right => right,
                };
                let column = expr.evaluate(batch)?;
                Ok(if column.data_type() == to {
                    column
                } else {
                    cast(&column, to)?
                })
            })
            .collect()
    }

    /// Splits a batch of `side` into the rows whose keys are all non-NULL
    /// and, if any, the rows with a NULL key, which never match (SQL).
    pub(crate) fn split(
        &self,
        side: JoinSide,
        batch: RecordBatch,
    ) -> Result<(RecordBatch, Option<RecordBatch>)> {
        let columns = self.columns(side, &batch)?;
        let valid = columns.iter().fold(None, |valid: Option<NullBuffer>, c| {
            NullBuffer::union(valid.as_ref(), c.logical_nulls().as_ref())
        });
        match valid {
            Some(valid) if valid.null_count() > 0 => {
                let valid = valid.into_inner();
                let keyed = filter_record_batch(&batch, &BooleanArray::new(valid.clone(), None))?;
                let unmatchable = filter_record_batch(&batch, &BooleanArray::new(!&valid, None))?;
                Ok((keyed, Some(unmatchable)))
            }
            _ => Ok((batch, None)),
        }
    }

    /// The keys of a batch of `side` in row format.
    pub(crate) fn rows(&self, side: JoinSide, batch: &RecordBatch) -> Result<Rows> {
        Ok(self
            .converter
            .convert_columns(&self.columns(side, batch)?)?)
    }
}

/// The hash of every key row under `seed`: the hash table and each level of
/// spill partitioning use different seeds, so their buckets are independent.
pub(crate) fn hash_rows(rows: &Rows, seed: u64) -> Vec<u64> {
    rows.iter()
        .map(|row| {
            let mut hasher = std::hash::DefaultHasher::new();
            hasher.write_u64(seed);
            hasher.write(row.as_ref());
            hasher.finish()
        })
        .collect()
}
