//! The `events` table of the operator benchmarks, generated the same way
//! here and, in SQL, by the peer script (`bench/peers/operators.py`), so that
//! weir and its peers work on identical rows:
//!
//! | column | value for row `i` (0-based) |
//! |--------|-----------------------------|
//! | `i` | `i` |
//! | `k10` | `(i * 2654435761) % 10` |
//! | `k10k` | `(i * 2654435761) % 10000` |
//! | `kall` | `(i * 2654435761) % rows` (every value once when `rows` is coprime to the multiplier, e.g. a power of ten) |
//! | `v` | `i % 1000` |
//! | `x` | `((i * 7919) % 100000) / 100.0` (a double) |
//!
//! All integers are `BIGINT` (`Int64`).
//!
//! The join benchmarks join it with `build`: `bk = i`, `p = i % 97` for
//! `i` in `0..build_rows`, on `kall % build_rows = bk`.

use std::sync::Arc;

use arrow::array::{Float64Array, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Knuth's multiplicative hash constant, spreading row numbers over keys.
const SPREAD: i64 = 2_654_435_761;

/// The schema of the `events` table.
pub fn events_schema() -> SchemaRef {
    let int = |name: &str| Field::new(name, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        int("i"),
        int("k10"),
        int("k10k"),
        int("kall"),
        int("v"),
        Field::new("x", DataType::Float64, false),
    ]))
}

/// `rows` rows of `events` in batches of `batch_rows`.
pub fn events_batches(rows: usize, batch_rows: usize) -> Vec<RecordBatch> {
    let total = rows as i64;
    (0..total)
        .step_by(batch_rows.max(1))
        .map(|from| {
            let to = (from + batch_rows as i64).min(total);
            let column =
                |f: &dyn Fn(i64) -> i64| Arc::new(Int64Array::from_iter_values((from..to).map(f)));
            RecordBatch::try_new(
                events_schema(),
                vec![
                    column(&|i| i),
                    column(&|i| (i * SPREAD) % 10),
                    column(&|i| (i * SPREAD) % 10_000),
                    column(&|i| (i * SPREAD) % total),
                    column(&|i| i % 1000),
                    Arc::new(Float64Array::from_iter_values(
                        (from..to).map(|i| ((i * 7919) % 100_000) as f64 / 100.0),
                    )),
                ],
            )
            .expect("columns match the schema")
        })
        .collect()
}

/// The `build` table of the join benchmarks, `rows` rows in batches of
/// `batch_rows`.
pub fn build_batches(rows: usize, batch_rows: usize) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("bk", DataType::Int64, false),
        Field::new("p", DataType::Int64, false),
    ]));
    (0..rows as i64)
        .step_by(batch_rows.max(1))
        .map(|from| {
            let to = (from + batch_rows as i64).min(rows as i64);
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from_iter_values(from..to)),
                    Arc::new(Int64Array::from_iter_values((from..to).map(|i| i % 97))),
                ],
            )
            .expect("columns match the schema")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_documented_formulas() {
        let batches = events_batches(20_000, 8192);
        assert_eq!(batches.len(), 3);
        let last = &batches[2];
        let i = 20_000 - 1;
        let at = |c: usize| {
            last.column(c)
                .as_any()
                .downcast_ref::<Int64Array>()
                .map(|a| a.value(last.num_rows() - 1))
        };
        assert_eq!(at(0), Some(i));
        assert_eq!(at(1), Some((i * SPREAD) % 10));
        assert_eq!(at(3), Some((i * SPREAD) % 20_000));
        assert_eq!(at(4), Some(i % 1000));
    }
}
