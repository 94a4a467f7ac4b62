//! # weir-bench
//!
//! Benchmarks of weir's engine internals, and the data they run on.
//!
//! The criterion benchmarks live in `benches/` (run them with
//! `cargo bench -p weir-bench`); this library holds what they share: a
//! deterministic generator of TPC-H-`lineitem`-like record batches (64-bit
//! keys, decimal and floating-point prices, short strings, dates) and a
//! TPC-H Q6-like filter, the "simple per-batch filter" that the cost of the
//! tokio to rayon hand-off is compared with.
//!
//! The data depends only on the row numbers asked for: no random seed, no
//! clock, so every run and every machine benchmarks the same bytes.

pub mod events;
pub mod runner;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
    Int64Array, RecordBatch, Scalar, StringArray,
};
use arrow::compute::filter_record_batch;
use arrow::compute::kernels::boolean::and;
use arrow::compute::kernels::cmp::{gt_eq, lt, lt_eq};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;

/// Rows per batch: the batch size weir's sources and operators emit.
pub const BATCH_ROWS: usize = 8192;

/// Precision of the decimal columns (`DECIMAL(15, 2)`, as in TPC-H).
const DECIMAL_PRECISION: u8 = 15;
/// Scale of the decimal columns.
const DECIMAL_SCALE: i8 = 2;

/// 1992-01-01 as days since the Unix epoch: the first TPC-H order date.
const START_DATE: i32 = 8035;
/// Days over which ship dates spread (1992-01-02 to 1998-12-01).
const DATE_RANGE: u64 = 2526;
/// 1994-01-01 as days since the Unix epoch.
const Q6_FROM: i32 = 8766;
/// 1995-01-01 as days since the Unix epoch.
const Q6_TO: i32 = 9131;

const SHIP_MODES: [&str; 7] = ["AIR", "FOB", "MAIL", "RAIL", "REG AIR", "SHIP", "TRUCK"];
const WORDS: [&str; 16] = [
    "carefully",
    "final",
    "deposits",
    "boost",
    "slyly",
    "regular",
    "ideas",
    "quickly",
    "express",
    "accounts",
    "pending",
    "requests",
    "furiously",
    "bold",
    "packages",
    "haggle",
];

/// The schema of [`lineitem_batch`]: a subset of TPC-H `lineitem`.
///
/// | column            | type             |
/// |-------------------|------------------|
/// | `l_orderkey`      | `Int64`          |
/// | `l_partkey`       | `Int64`          |
/// | `l_suppkey`       | `Int64`          |
/// | `l_linenumber`    | `Int32`          |
/// | `l_quantity`      | `Decimal128(15, 2)` |
/// | `l_extendedprice` | `Decimal128(15, 2)` |
/// | `l_discount`      | `Float64`        |
/// | `l_tax`           | `Float64`        |
/// | `l_returnflag`    | `Utf8` (1 char)  |
/// | `l_linestatus`    | `Utf8` (1 char)  |
/// | `l_shipdate`      | `Date32`         |
/// | `l_commitdate`    | `Date32`         |
/// | `l_shipmode`      | `Utf8` (3-7 chars) |
/// | `l_comment`       | `Utf8` (about 10-43 chars) |
pub fn lineitem_schema() -> SchemaRef {
    let decimal = DataType::Decimal128(DECIMAL_PRECISION, DECIMAL_SCALE);
    Arc::new(Schema::new(vec![
        Field::new("l_orderkey", DataType::Int64, false),
        Field::new("l_partkey", DataType::Int64, false),
        Field::new("l_suppkey", DataType::Int64, false),
        Field::new("l_linenumber", DataType::Int32, false),
        Field::new("l_quantity", decimal.clone(), false),
        Field::new("l_extendedprice", decimal, false),
        Field::new("l_discount", DataType::Float64, false),
        Field::new("l_tax", DataType::Float64, false),
        Field::new("l_returnflag", DataType::Utf8, false),
        Field::new("l_linestatus", DataType::Utf8, false),
        Field::new("l_shipdate", DataType::Date32, false),
        Field::new("l_commitdate", DataType::Date32, false),
        Field::new("l_shipmode", DataType::Utf8, false),
        Field::new("l_comment", DataType::Utf8, false),
    ]))
}

/// A pseudo-random number that depends only on `row` and `column`
/// (splitmix64's finalizer).
fn rand(row: u64, column: u64) -> u64 {
    let mut x = row
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(column.wrapping_mul(0xD1B5_4A32_D192_ED03));
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Rows `first_row .. first_row + rows` of the generated `lineitem` table,
/// as one batch of [`lineitem_schema`]. Four line items per order, so rows of
/// one order are adjacent, as in a TPC-H `lineitem` file.
pub fn lineitem_batch(first_row: u64, rows: usize) -> RecordBatch {
    let ids = first_row..first_row + rows as u64;
    let quantity = |row: u64| (1 + rand(row, 4) % 50) as i128;
    let ship_date = |row: u64| START_DATE + 1 + (rand(row, 10) % DATE_RANGE) as i32;

    let orderkey = Int64Array::from_iter_values(ids.clone().map(|r| 1 + (r / 4) as i64));
    let partkey =
        Int64Array::from_iter_values(ids.clone().map(|r| 1 + (rand(r, 1) % 200_000) as i64));
    let suppkey =
        Int64Array::from_iter_values(ids.clone().map(|r| 1 + (rand(r, 2) % 10_000) as i64));
    let linenumber = Int32Array::from_iter_values(ids.clone().map(|r| 1 + (r % 4) as i32));
    let decimal = |values: Decimal128Array| {
        values
            .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)
            .expect("DECIMAL(15, 2) is a valid decimal type")
    };
    let quantity_array = decimal(Decimal128Array::from_iter_values(
        ids.clone().map(|r| quantity(r) * 100),
    ));
    // Unit prices of 900.00 to 2099.99, in cents.
    let extendedprice =
        decimal(Decimal128Array::from_iter_values(ids.clone().map(|r| {
            quantity(r) * (90_000 + (rand(r, 5) % 120_000) as i128)
        })));
    let discount =
        Float64Array::from_iter_values(ids.clone().map(|r| (rand(r, 6) % 11) as f64 / 100.0));
    let tax = Float64Array::from_iter_values(ids.clone().map(|r| (rand(r, 7) % 9) as f64 / 100.0));
    let returnflag = StringArray::from_iter_values(
        ids.clone()
            .map(|r| ["R", "A", "N", "N"][(rand(r, 8) % 4) as usize]),
    );
    let linestatus = StringArray::from_iter_values(
        ids.clone()
            .map(|r| if ship_date(r) > 9300 { "O" } else { "F" }),
    );
    let shipdate = Date32Array::from_iter_values(ids.clone().map(ship_date));
    let commitdate = Date32Array::from_iter_values(
        ids.clone()
            .map(|r| ship_date(r) - 30 + (rand(r, 11) % 61) as i32),
    );
    let shipmode = StringArray::from_iter_values(
        ids.clone()
            .map(|r| SHIP_MODES[(rand(r, 12) % SHIP_MODES.len() as u64) as usize]),
    );
    let comment = StringArray::from_iter_values(ids.map(|r| {
        let words = 2 + rand(r, 13) % 4;
        (0..words)
            .map(|w| WORDS[(rand(r, 14 + w) % WORDS.len() as u64) as usize])
            .collect::<Vec<_>>()
            .join(" ")
    }));

    let columns: Vec<ArrayRef> = vec![
        Arc::new(orderkey),
        Arc::new(partkey),
        Arc::new(suppkey),
        Arc::new(linenumber),
        Arc::new(quantity_array),
        Arc::new(extendedprice),
        Arc::new(discount),
        Arc::new(tax),
        Arc::new(returnflag),
        Arc::new(linestatus),
        Arc::new(shipdate),
        Arc::new(commitdate),
        Arc::new(shipmode),
        Arc::new(comment),
    ];
    RecordBatch::try_new(lineitem_schema(), columns)
        .expect("the generated columns match lineitem_schema")
}

/// `num_batches` consecutive batches of `rows_per_batch` rows each, starting
/// at row 0.
pub fn lineitem_batches(num_batches: usize, rows_per_batch: usize) -> Vec<RecordBatch> {
    (0..num_batches)
        .map(|i| lineitem_batch((i * rows_per_batch) as u64, rows_per_batch))
        .collect()
}

/// Bytes of Arrow data in a batch (a slice counts only its own rows).
pub use weir_exchange::event::batch_data_bytes as data_bytes;

/// The TPC-H Q6 predicate over a [`lineitem_schema`] batch:
/// `l_shipdate >= '1994-01-01' AND l_shipdate < '1995-01-01' AND
/// l_discount BETWEEN 0.05 AND 0.07 AND l_quantity < 24`, evaluated with
/// Arrow compute kernels, followed by the filter itself. This is the simple,
/// vectorized per-batch work that weir's operator chains do between two
/// exchanges; it keeps about 2% of the rows.
///
/// # Errors
/// When `batch` lacks one of the columns or a kernel fails.
pub fn q6_filter(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| ArrowError::SchemaError(format!("column '{name}' is not in the batch")))
    };
    let shipdate = column("l_shipdate")?;
    let discount = column("l_discount")?;
    let quantity = column("l_quantity")?;

    let date = |days: i32| Scalar::new(Date32Array::from(vec![days]));
    let float = |v: f64| Scalar::new(Float64Array::from(vec![v]));
    let max_quantity = Scalar::new(
        Decimal128Array::from(vec![2400])
            .with_precision_and_scale(DECIMAL_PRECISION, DECIMAL_SCALE)?,
    );

    let mut keep: BooleanArray = gt_eq(shipdate, &date(Q6_FROM))?;
    keep = and(&keep, &lt(shipdate, &date(Q6_TO))?)?;
    keep = and(&keep, &gt_eq(discount, &float(0.05))?)?;
    keep = and(&keep, &lt_eq(discount, &float(0.07))?)?;
    keep = and(&keep, &lt(quantity, &max_quantity)?)?;
    if keep.true_count() == batch.num_rows() && keep.null_count() == 0 {
        return Ok(batch.clone());
    }
    filter_record_batch(batch, &keep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_deterministic_and_split_independent() {
        let whole = lineitem_batch(100, 64);
        let halves = [lineitem_batch(100, 32), lineitem_batch(132, 32)];
        let joined = arrow::compute::concat_batches(&lineitem_schema(), &halves).unwrap();
        assert_eq!(whole, joined);
        assert_eq!(whole, lineitem_batch(100, 64));
        assert_eq!(whole.num_columns(), lineitem_schema().fields().len());
    }

    #[test]
    fn q6_keeps_a_small_matching_fraction() {
        let batch = lineitem_batch(0, BATCH_ROWS);
        let kept = q6_filter(&batch).unwrap();
        assert!(kept.num_rows() > 0 && kept.num_rows() < BATCH_ROWS / 10);
        // l_quantity is column 4, l_discount column 6 and l_shipdate column 10.
        let discount = kept
            .column(6)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert!(discount.values().iter().all(|d| (0.05..=0.07).contains(d)));
    }

    #[test]
    fn data_bytes_counts_a_slice_by_its_rows() {
        let batch = lineitem_batch(0, 1000);
        let whole = data_bytes(&batch);
        let half = data_bytes(&batch.slice(0, 500));
        assert!(half < whole && half > whole / 3, "{half} of {whole}");
    }
}
