//! Test helpers: Parquet files written in memory with many row groups and
//! pages, the rows a reader reads given a plan, and the rows filters pass.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
};
use arrow::datatypes::{Field, Int32Type, Int64Type, Schema, SchemaRef};
use bytes::Bytes;
use datafusion_expr::Expr;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
};
use parquet::file::metadata::PageIndexPolicy;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use weir_engine::expr::Compiled;
use weir_engine::testing::Rng;

use super::PruningPlan;

/// `batch` as a Parquet file of row groups of `group_rows` rows and pages
/// of `page_rows` rows, with page statistics, truncated to 4 bytes.
pub(crate) fn write(batch: &RecordBatch, group_rows: usize, page_rows: usize) -> Bytes {
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(group_rows))
        .set_data_page_row_count_limit(page_rows)
        .set_write_batch_size(page_rows)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_statistics_truncate_length(Some(4))
        .set_column_index_truncate_length(Some(4))
        .build();
    let mut out = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut out, batch.schema(), Some(properties)).expect("writer");
    writer.write(batch).expect("write");
    writer.close().expect("close");
    Bytes::from(out)
}

/// The metadata of `file`, with its page index.
pub(crate) fn open(file: &Bytes) -> ArrowReaderMetadata {
    ArrowReaderMetadata::load(
        file,
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
    )
    .expect("metadata")
}

/// Whether each row of `batch` passes every filter, as DataFusion
/// evaluates them over the whole batch (null fails).
pub(crate) fn passing(filters: &[Expr], batch: &RecordBatch) -> Vec<bool> {
    let mut pass = vec![true; batch.num_rows()];
    for filter in filters {
        let compiled = Compiled::new(filter, &batch.schema()).expect("filter compiles");
        let result = compiled
            .evaluate_predicate(batch)
            .expect("filter evaluates");
        for (row, keep) in pass.iter_mut().enumerate() {
            *keep &= result.is_valid(row) && result.value(row);
        }
    }
    pass
}

/// The file rows a reader of `row_groups` (in that order) under
/// `selection` reads, as file row numbers.
pub(crate) fn selected_rows(
    file: &ArrowReaderMetadata,
    row_groups: &[usize],
    selection: Option<&RowSelection>,
) -> Vec<usize> {
    let groups = file.metadata().row_groups();
    let first_row = |g: usize| -> usize { groups[..g].iter().map(|m| m.num_rows() as usize).sum() };
    let rows: Vec<usize> = row_groups
        .iter()
        .flat_map(|&g| {
            let start = first_row(g);
            start..start + groups[g].num_rows() as usize
        })
        .collect();
    let Some(selection) = selection else {
        return rows;
    };
    let mut selected = Vec::new();
    let mut at = 0;
    for selector in selection.iter() {
        if !selector.skip {
            selected.extend_from_slice(&rows[at..at + selector.row_count]);
        }
        at += selector.row_count;
    }
    assert_eq!(at, rows.len(), "the selection covers the row groups");
    selected
}

/// The values of the `Int64` column `id` that a reader of `file` reads
/// under `plan` (row groups, page selection and row filter).
pub(crate) fn read_ids(file: &Bytes, plan: &PruningPlan) -> Vec<i64> {
    let metadata = open(file);
    let all: Vec<usize> = (0..metadata.metadata().num_row_groups()).collect();
    let groups = plan.row_groups(&metadata, &all).kept;
    let mut builder =
        ParquetRecordBatchReaderBuilder::new_with_metadata(file.clone(), metadata.clone())
            .with_batch_size(97)
            .with_row_groups(groups.clone());
    if let Some(selection) = plan.page_selection(&metadata, &groups) {
        builder = builder.with_row_selection(selection);
    }
    if let Some(filter) = plan.row_filter(&metadata) {
        builder = builder.with_row_filter(filter);
    }
    let mut ids = Vec::new();
    for batch in builder.build().expect("reader") {
        let batch = batch.expect("batch");
        let column = batch.column_by_name("id").expect("id column");
        ids.extend(column.as_primitive::<Int64Type>().values().iter().copied());
    }
    ids
}

/// The ids of the rows that pass.
pub(crate) fn passing_ids(pass: &[bool]) -> Vec<i64> {
    (0..pass.len() as i64)
        .filter(|&i| pass[i as usize])
        .collect()
}

/// A random table of `rows` rows whose values drift with the row number
/// (so statistics can prune), with nulls, and floats with NaN, `-NaN`,
/// zeros of both signs and infinities. `id` is the row number.
pub(crate) fn random_batch(rng: &mut Rng, rows: usize) -> RecordBatch {
    let ints: Int32Array = (0..rows)
        .map(|r| drift(rng, r, 37, 7, 0.1).map(|v| v as i32 - 20))
        .collect();
    let strings: StringArray = (0..rows)
        .map(|r| drift(rng, r, 53, 5, 0.1).map(|v| format!("k{:03}xyz", v.rem_euclid(1000))))
        .collect();
    let dates: Date32Array = (0..rows)
        .map(|r| drift(rng, r, 30, 9, 0.1).map(|v| 19_000 + v as i32))
        .collect();
    let decimals: Decimal128Array = (0..rows)
        .map(|r| drift(rng, r, 25, 11, 0.1).map(|v| i128::from(v) * 37 - 500))
        .collect();
    let decimals = decimals
        .with_precision_and_scale(9, 2)
        .expect("decimal type");
    let booleans: BooleanArray = (0..rows)
        .map(|r| drift(rng, r, 100, 2, 0.1).map(|v| v % 2 == 0))
        .collect();
    let keys: Int32Array = (0..rows)
        .map(|r| drift(rng, r, 400, 2, 0.1).map(|v| v.rem_euclid(6) as i32))
        .collect();
    let words = StringArray::from(vec!["ant", "bee", "cat", "dog", "eel", "fox"]);
    let dictionary = DictionaryArray::<Int32Type>::try_new(keys, Arc::new(words)).expect("keys");
    let special = [
        f64::NAN,
        -f64::NAN,
        -0.0,
        0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ];
    let floats: Float64Array = (0..rows)
        .map(|r| {
            if rng.chance(0.06) {
                return Some(special[rng.below(special.len() as u64) as usize]);
            }
            drift(rng, r, 40, 5, 0.05).map(|v| v as f64 * 0.5 - 10.0)
        })
        .collect();
    let ids = Int64Array::from_iter_values(0..rows as i64);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(ids)),
        ("i", Arc::new(ints)),
        ("s", Arc::new(strings)),
        ("f", Arc::new(floats)),
        ("d", Arc::new(dates)),
        ("m", Arc::new(decimals)),
        ("b", Arc::new(booleans)),
        ("k", Arc::new(dictionary)),
    ];
    batch(columns)
}

/// `row / step` plus noise in `-spread/2..spread/2`, or null with
/// probability `nulls`.
fn drift(rng: &mut Rng, row: usize, step: usize, spread: u64, nulls: f64) -> Option<i64> {
    if rng.chance(nulls) {
        return None;
    }
    Some((row / step) as i64 + rng.below(spread) as i64 - (spread / 2) as i64)
}

/// A batch of named columns, nullable unless they have no nulls.
pub(crate) fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let schema: SchemaRef = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| {
                Field::new(*name, array.data_type().clone(), array.null_count() > 0)
            })
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).expect("batch")
}

/// Sorted data: `id` (0..rows), `n` (`Int32`, the id), `s` (the id as five
/// digits), `d` (a date every 10 rows), `m` (the id as a decimal), `f` (a
/// quarter of the id) and `b` (id in the upper half).
pub(crate) fn sorted_batch(rows: usize) -> RecordBatch {
    let ids = 0..rows as i64;
    batch(vec![
        ("id", Arc::new(Int64Array::from_iter_values(ids.clone()))),
        (
            "n",
            Arc::new(Int32Array::from_iter_values(ids.clone().map(|i| i as i32))),
        ),
        (
            "s",
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| format!("{i:05}")),
            )),
        ),
        (
            "d",
            Arc::new(Date32Array::from_iter_values(
                ids.clone().map(|i| 18_000 + (i / 10) as i32),
            )),
        ),
        (
            "m",
            Arc::new(
                Decimal128Array::from_iter_values(ids.clone().map(|i| i128::from(i) * 100))
                    .with_precision_and_scale(12, 2)
                    .expect("decimal type"),
            ),
        ),
        (
            "f",
            Arc::new(Float64Array::from_iter_values(
                ids.clone().map(|i| i as f64 / 4.0),
            )),
        ),
        (
            "b",
            Arc::new(BooleanArray::from_iter(
                ids.map(|i| Some(i >= rows as i64 / 2)),
            )),
        ),
    ])
}

/// The sorted data of [`sorted_batch`] (10,000 rows) in row groups of 1,000
/// rows and pages of 100.
pub(crate) fn sorted_file() -> (RecordBatch, Bytes) {
    let batch = sorted_batch(10_000);
    let file = write(&batch, 1_000, 100);
    (batch, file)
}

/// `batch`'s schema with a nullable `Int32` column `x` that files lack.
pub(crate) fn with_missing_column(batch: &RecordBatch) -> SchemaRef {
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("x", arrow::datatypes::DataType::Int32, true));
    Arc::new(Schema::new(fields))
}
