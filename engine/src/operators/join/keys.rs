//! Equi-join keys: evaluated on either side, cast to a common type per pair,
//! and encoded so that equal keys are equal encodings whatever their types:
//! a single integer key as `i64`s (see
//! [`integer_keys`](crate::operators::integer_keys)); any other keys in
//! Arrow's row format, as bytes.

use std::fmt;
use std::hash::Hasher;

use arrow::array::{ArrayRef, BooleanArray, Float32Array, Float64Array, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::compute::kernels::numeric::add;
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_expr::type_coercion::binary::comparison_coercion;

use super::JoinSide;
use crate::expr::Compiled;
use crate::operators::integer_keys::{is_integer, widen};
use crate::{Error, Result};

/// The pairs of key expressions of an equi-join and the type each pair is
/// compared in.
#[derive(Debug, Clone)]
pub(crate) struct JoinKeys {
    on: Vec<(Compiled, Compiled)>,
    types: Vec<DataType>,
    /// Whether a NULL key matches a NULL key (set operations), rather than
    /// nothing.
    nulls_equal: bool,
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
        Ok(Self {
            on,
            types,
            nulls_equal: false,
        })
    }

    /// The same keys, a NULL matching a NULL (`IS NOT DISTINCT FROM`), as
    /// `INTERSECT` and `EXCEPT` compare rows.
    pub(crate) fn matching_nulls(self) -> Self {
        Self {
            nulls_equal: true,
            ..self
        }
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
            // Integers encoded as `i64`s have no NULL.
            integer: !self.nulls_equal && matches!(self.types.as_slice(), [t] if is_integer(t)),
        })
    }
}

impl fmt::Display for JoinKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (left, right)) in self.on.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            match self.nulls_equal {
                true => write!(f, "{left} IS NOT DISTINCT FROM {right}")?,
                false => write!(f, "{left} = {right}")?,
            }
        }
        Ok(())
    }
}

/// Evaluates and encodes join keys.
#[derive(Debug)]
pub(crate) struct KeyEncoder {
    keys: JoinKeys,
    converter: RowConverter,
    /// Whether the keys are one integer column, encoded as `i64`s.
    integer: bool,
}

impl KeyEncoder {
    /// The key columns of a batch of `side`, in their common types.
    pub(crate) fn columns(&self, side: JoinSide, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
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
                let column = if column.data_type() == to {
                    column
                } else {
                    cast(&column, to)?
                };
                // -0.0 = 0.0 in SQL, but their rows differ: add +0.0,
                // which turns -0.0 into 0.0 and keeps every other value.
                Ok(match to {
                    DataType::Float32 => add(&column, &Float32Array::new_scalar(0.0))?,
                    DataType::Float64 => add(&column, &Float64Array::new_scalar(0.0))?,
                    _ => column,
                })
            })
            .collect()
    }

    /// Splits a batch of `side` into the rows whose keys are all non-NULL
    /// and, if any, the rows with a NULL key, which never match (SQL);
    /// when NULLs match, every row may.
    pub(crate) fn split(
        &self,
        side: JoinSide,
        batch: RecordBatch,
    ) -> Result<(RecordBatch, Option<RecordBatch>)> {
        if self.keys.nulls_equal {
            return Ok((batch, None));
        }
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

    /// The encoded keys of a batch of `side`, whose keys are all non-NULL
    /// unless NULLs match (Arrow's row format encodes them alike).
    pub(crate) fn encode(&self, side: JoinSide, batch: &RecordBatch) -> Result<EncodedKeys> {
        let columns = self.columns(side, batch)?;
        if self.integer
            && let Some(values) = widen(&columns[0])?
        {
            return Ok(EncodedKeys::Integers(values));
        }
        Ok(EncodedKeys::Rows(self.converter.convert_columns(&columns)?))
    }
}

/// The keys of a batch's rows, encoded so that equal keys are equal.
#[derive(Debug)]
pub(crate) enum EncodedKeys {
    /// A single integer key, widened to 64 bits (unsigned bit for bit).
    Integers(Vec<i64>),
    /// Any other keys, in Arrow's row format.
    Rows(Rows),
}

impl EncodedKeys {
    /// How many keys.
    pub(crate) fn len(&self) -> usize {
        match self {
            EncodedKeys::Integers(values) => values.len(),
            EncodedKeys::Rows(rows) => rows.num_rows(),
        }
    }

    /// The hash of every key under `seed`: the hash table and each level of
    /// spill partitioning use different seeds, so their buckets are
    /// independent.
    pub(crate) fn hashes(&self, seed: u64) -> Vec<u64> {
        match self {
            EncodedKeys::Integers(values) => {
                let mut hashes = Vec::with_capacity(values.len());
                keys_hashed(values, seed, |_, hash| hashes.push(hash));
                hashes
            }
            EncodedKeys::Rows(rows) => Self::hashes_of_rows(rows, seed).collect(),
        }
    }

    /// The hash of each key of `rows` under `seed`.
    pub(crate) fn hashes_of_rows(rows: &Rows, seed: u64) -> impl Iterator<Item = u64> + '_ {
        rows.iter().map(move |row| {
            let mut hasher = std::hash::DefaultHasher::new();
            hasher.write_u64(seed);
            hasher.write(row.as_ref());
            hasher.finish()
        })
    }
}

/// Calls `f(row, hash)` with the hash under `seed` of every integer key.
pub(crate) fn keys_hashed(values: &[i64], seed: u64, mut f: impl FnMut(usize, u64)) {
    let seed = mix(seed.wrapping_add(1));
    for (row, &value) in values.iter().enumerate() {
        f(row, mix(value as u64 ^ seed));
    }
}

/// MurmurHash3's 64-bit finalizer: every input bit flips about half the
/// output bits, so that consecutive integers spread over a table's buckets.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int32Array};
    use arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::expr::col;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("f", DataType::Float64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), Some(1), None, Some(2)])),
                Arc::new(Float64Array::from(vec![
                    Some(0.0),
                    Some(-0.0),
                    Some(1.0),
                    None,
                ])),
            ],
        )
        .expect("valid batch")
    }

    fn keys(left: &str, right: &str) -> JoinKeys {
        let schema = batch().schema();
        let compile = |name: &str| Compiled::new(&col(name), &schema).expect("compiles");
        JoinKeys::try_new(vec![(compile(left), compile(right))]).expect("comparable")
    }

    /// Matching NULLs, no row is split off, and the NULL keys of either
    /// side encode alike (never as integers, which have no NULL).
    #[test]
    fn null_keys_that_match_stay_and_encode_alike() {
        let encoder = keys("i", "i").matching_nulls().encoder().expect("encoder");
        let (keyed, unmatchable) = encoder.split(JoinSide::Left, batch()).expect("splits");
        assert_eq!((keyed.num_rows(), unmatchable.is_none()), (4, true));
        let left = encoder.encode(JoinSide::Left, &batch()).expect("encodes");
        let right = encoder.encode(JoinSide::Right, &batch()).expect("encodes");
        match (left, right) {
            (EncodedKeys::Rows(left), EncodedKeys::Rows(right)) => {
                assert_eq!(left.row(2), right.row(2), "NULL as NULL");
                assert_ne!(left.row(2), right.row(0), "NULL is not 1");
                assert_eq!(left.row(0), right.row(1), "1 as 1");
            }
            other => panic!("not rows: {other:?}"),
        }
    }

    #[test]
    fn rows_with_a_null_key_are_split_off() {
        let encoder = keys("i", "f").encoder().expect("encoder");
        let (keyed, unmatchable) = encoder.split(JoinSide::Left, batch()).expect("splits");
        assert_eq!(keyed.num_rows(), 3);
        assert_eq!(unmatchable.expect("a null key").num_rows(), 1);
        let (keyed, unmatchable) = encoder.split(JoinSide::Right, batch()).expect("splits");
        assert_eq!(
            (keyed.num_rows(), unmatchable.map(|u| u.num_rows())),
            (3, Some(1))
        );
        assert_eq!(keyed.column(1).null_count(), 0);
    }

    fn rows(encoded: EncodedKeys) -> Rows {
        match encoded {
            EncodedKeys::Rows(rows) => rows,
            EncodedKeys::Integers(_) => panic!("integers, not rows"),
        }
    }

    #[test]
    fn keys_compare_in_a_common_type_and_minus_zero_equals_zero() {
        let encoder = keys("i", "f").encoder().expect("encoder");
        let left = rows(encoder.encode(JoinSide::Left, &batch()).expect("left rows"));
        let right = rows(
            encoder
                .encode(JoinSide::Right, &batch())
                .expect("right rows"),
        );
        // 1 (Int32) and 1.0 (Float64) compare as Float64.
        assert_eq!(left.row(0), right.row(2));
        // 0.0 and -0.0 are equal keys.
        assert_eq!(right.row(0), right.row(1));
        assert_ne!(left.row(0), right.row(0));
    }

    #[test]
    fn a_single_integer_key_is_encoded_as_integers_of_the_common_type() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("small", DataType::Int32, false),
            Field::new("wide", DataType::Int64, false),
            Field::new("unsigned", DataType::UInt64, false),
            Field::new("day", DataType::Date32, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from(vec![-1, 7])),
                Arc::new(arrow::array::Int64Array::from(vec![7, -1])),
                Arc::new(arrow::array::UInt64Array::from(vec![u64::MAX, 7])),
                Arc::new(arrow::array::Date32Array::from(vec![19_000, -3])),
            ],
        )
        .expect("batch");
        let compile = |name: &str| Compiled::new(&col(name), &schema).expect("compiles");
        let encoded = |left: &str, right: &str, side| {
            let keys = JoinKeys::try_new(vec![(compile(left), compile(right))]).expect("keys");
            match keys.encoder().expect("encoder").encode(side, &batch) {
                Ok(EncodedKeys::Integers(values)) => values,
                other => panic!("{left} = {right}: {other:?}"),
            }
        };
        // Int32 against Int64 compares as Int64: -1 and 7 on both sides.
        assert_eq!(encoded("small", "wide", JoinSide::Left), vec![-1, 7]);
        assert_eq!(encoded("small", "wide", JoinSide::Right), vec![7, -1]);
        // Unsigned keys keep their bits (u64::MAX as -1): both sides are
        // cast to the same common type first, so no signed -1 meets it.
        assert_eq!(encoded("unsigned", "unsigned", JoinSide::Left), vec![-1, 7]);
        assert_eq!(encoded("day", "day", JoinSide::Left), vec![19_000, -3]);
        // Two keys, or a float key, are rows.
        let two = JoinKeys::try_new(vec![
            (compile("small"), compile("wide")),
            (compile("wide"), compile("small")),
        ])
        .expect("keys");
        assert!(matches!(
            two.encoder()
                .expect("encoder")
                .encode(JoinSide::Left, &batch),
            Ok(EncodedKeys::Rows(_))
        ));
        let hashes = EncodedKeys::Integers(vec![1, 2, 1]).hashes(0);
        assert_eq!(hashes[0], hashes[2]);
        assert_ne!(hashes[0], hashes[1]);
        assert_ne!(hashes, EncodedKeys::Integers(vec![1, 2, 1]).hashes(1));
    }

    #[test]
    fn keys_without_a_common_type_are_a_plan_error() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, true),
            Field::new("b", DataType::Boolean, true),
        ]));
        let d = Compiled::new(&col("d"), &schema).expect("compiles");
        let b = Compiled::new(&col("b"), &schema).expect("compiles");
        let err = JoinKeys::try_new(vec![(d, b)]).expect_err("not comparable");
        assert!(matches!(err, Error::Plan(_)), "{err}");
        assert!(matches!(JoinKeys::try_new(Vec::new()), Err(Error::Plan(_))));
    }
}
