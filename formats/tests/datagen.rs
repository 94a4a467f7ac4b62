//! The `datagen` source end to end on the mini-cluster: the same rows at
//! any parallelism, sequences, bounds, null rates, the throttle, and the
//! errors of bad tables.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Decimal128Type, Field, Float64Type, Int32Type, Int64Type, Schema, SchemaRef, TimeUnit,
};
use common::*;
use weir_engine::SourceFactory;
use weir_engine::dataframe::Dataflow;
use weir_engine::sinks::CollectSink;
use weir_engine::testing::sorted_rows;
use weir_scheduler::{JobSummary, MiniCluster};

fn schema(fields: Vec<Field>) -> SchemaRef {
    Arc::new(Schema::new(fields))
}

/// A column of every type datagen generates.
fn every_type() -> SchemaRef {
    schema(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("flag", DataType::Boolean, true),
        Field::new("tiny", DataType::Int8, true),
        Field::new("small", DataType::Int16, true),
        Field::new("int", DataType::Int32, true),
        Field::new("real", DataType::Float32, true),
        Field::new("double", DataType::Float64, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
        Field::new("name", DataType::Utf8, true),
        Field::new("day", DataType::Date32, true),
        Field::new("ms", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("us", DataType::Timestamp(TimeUnit::Microsecond, None), true),
        Field::new(
            "ns",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
            true,
        ),
    ])
}

async fn datagen(declared: SchemaRef, pairs: &[(&str, &str)]) -> Arc<dyn SourceFactory> {
    declared_source("datagen", pairs, Some(declared))
        .await
        .expect("source")
}

/// Every row of `source`, read by `parallelism` subtasks.
async fn generate(
    source: Arc<dyn SourceFactory>,
    parallelism: usize,
) -> (Vec<RecordBatch>, JobSummary) {
    let flow = Dataflow::new("datagen").with_parallelism(parallelism);
    let (collect, collected) = CollectSink::new();
    flow.read(source).write(Arc::new(collect));
    let summary = MiniCluster::new(config(0))
        .run(graph(&flow))
        .await
        .expect("datagen job");
    (collected.batches(), summary)
}

fn num_rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn column<'a>(batches: &'a [RecordBatch], name: &'a str) -> impl Iterator<Item = &'a dyn Array> {
    batches
        .iter()
        .map(move |b| b.column_by_name(name).expect("column").as_ref())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_rows_at_any_parallelism() {
    let options = [
        ("number-of-rows", "30000"),
        ("seed", "42"),
        ("fields.flag.null-rate", "0.1"),
        ("fields.name.null-rate", "0.2"),
        ("fields.name.length", "6"),
        ("fields.ns.null-rate", "0.5"),
    ];
    let table = datagen(every_type(), &options).await;
    assert_eq!(table.schema(), every_type());
    let (one, one_summary) = generate(Arc::clone(&table), 1).await;
    let (three, three_summary) = generate(table, 3).await;
    assert_eq!(num_rows(&one), 30_000);
    assert!(one.iter().all(|b| b.num_rows() <= 8192));
    assert_same_rows(&sorted_rows(&three), &sorted_rows(&one));
    assert_eq!(counter(&one_summary, "rows generated"), 30_000);
    assert_eq!(counter(&three_summary, "rows generated"), 30_000);

    let other_seed = [("number-of-rows", "30000"), ("seed", "43")];
    let (other, _) = generate(datagen(every_type(), &other_seed).await, 3).await;
    let (a, b) = (sorted_rows(&one), sorted_rows(&other));
    assert!(
        a.iter().zip(&b).all(|(a, b)| a != b),
        "another seed, other rows"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn projections_keep_the_values() {
    let options = [("number-of-rows", "1000"), ("seed", "9")];
    let (all, _) = generate(datagen(every_type(), &options).await, 2).await;
    let table = datagen(every_type(), &options).await;
    let (some, _) = read(table, Some(&["name", "id"]), None).await;
    let projected: Vec<RecordBatch> = all
        .iter()
        .map(|b| b.project(&[8, 0]).expect("project"))
        .collect();
    assert_same_rows(&sorted_rows(&some), &sorted_rows(&projected));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_give_start_to_end_and_bound_the_rows() {
    let declared = schema(vec![
        Field::new("id", DataType::Int32, false),
        Field::new("label", DataType::Utf8, false),
    ]);
    let options = [
        ("number-of-rows", "100000"),
        ("fields.id.kind", "sequence"),
        ("fields.id.start", "-5"),
        ("fields.id.end", "9994"),
        ("fields.label.kind", "sequence"),
        ("fields.label.start", "1"),
        ("fields.label.end", "20000"),
    ];
    let (rows, _) = generate(datagen(declared, &options).await, 3).await;
    assert_eq!(
        num_rows(&rows),
        10_000,
        "the shorter sequence bounds the rows"
    );
    let mut ids: Vec<i32> = column(&rows, "id")
        .flat_map(|a| a.as_primitive::<Int32Type>().values().to_vec())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (-5..=9994).collect::<Vec<_>>());
    // Row n holds the n-th value of every sequence.
    for batch in &rows {
        let id = batch.column(0).as_primitive::<Int32Type>();
        let label = batch.column(1).as_string::<i32>();
        for row in 0..batch.num_rows() {
            assert_eq!(label.value(row), (id.value(row) + 6).to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_values_respect_their_bounds() {
    let declared = schema(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("d", DataType::Float64, true),
        Field::new("p", DataType::Decimal128(6, 2), true),
    ]);
    let options = [
        ("number-of-rows", "20000"),
        ("fields.i.min", "-10"),
        ("fields.i.max", "10"),
        ("fields.d.min", "2.5"),
        ("fields.d.max", "3.5"),
        ("fields.p.min", "1.25"),
        ("fields.p.max", "1.30"),
    ];
    let (rows, _) = generate(datagen(declared, &options).await, 3).await;
    let ints: Vec<i64> = column(&rows, "i")
        .flat_map(|a| a.as_primitive::<Int64Type>().values().to_vec())
        .collect();
    assert!(ints.iter().all(|v| (-10..=10).contains(v)));
    assert!(ints.contains(&-10) && ints.contains(&10), "both ends drawn");
    let doubles: Vec<f64> = column(&rows, "d")
        .flat_map(|a| a.as_primitive::<Float64Type>().values().to_vec())
        .collect();
    assert!(doubles.iter().all(|v| (2.5..=3.5).contains(v)));
    assert!(doubles.iter().any(|v| *v < 2.6) && doubles.iter().any(|v| *v > 3.4));
    let prices: Vec<i128> = column(&rows, "p")
        .flat_map(|a| a.as_primitive::<Decimal128Type>().values().to_vec())
        .collect();
    assert!(prices.iter().all(|v| (125..=130).contains(v)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_rates_are_respected() {
    let declared = schema(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, true),
    ]);
    let options = [("number-of-rows", "40000"), ("fields.a.null-rate", "0.3")];
    let (rows, _) = generate(datagen(declared, &options).await, 2).await;
    let nulls = |name| column(&rows, name).map(|a| a.null_count()).sum::<usize>();
    let share = nulls("a") as f64 / 40_000.0;
    assert!((0.28..0.32).contains(&share), "{share} nulls");
    assert_eq!(nulls("b"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_per_second_throttles() {
    let declared = schema(vec![Field::new("a", DataType::Int32, true)]);
    let options = [("number-of-rows", "400"), ("rows-per-second", "1000")];
    let started = Instant::now();
    let (rows, _) = generate(datagen(declared, &options).await, 2).await;
    assert_eq!(num_rows(&rows), 400);
    // Each subtask makes 200 rows at 500 a second, in four batches of 50
    // (ten batches a second), the last due 0.3 s after the first.
    assert!(rows.iter().all(|b| b.num_rows() == 50), "throttled batches");
    assert!(started.elapsed() >= Duration::from_millis(250));
}

/// Declared columns, options, and what the error must say.
type BadTable = (
    Option<SchemaRef>,
    Vec<(&'static str, &'static str)>,
    &'static [&'static str],
);

#[tokio::test]
async fn bad_tables_are_clear_errors() {
    let declared = schema(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]);
    let error = |declared: Option<SchemaRef>, pairs: Vec<(&'static str, &'static str)>| async move {
        declared_source("datagen", &pairs, declared)
            .await
            .expect_err("invalid table")
            .to_string()
    };
    let binary = schema(vec![Field::new("blob", DataType::Binary, true)]);
    let cases: [BadTable; 6] = [
        (
            None,
            vec![("number-of-rows", "10")],
            &[
                "datagen needs declared columns: CREATE TABLE t (id BIGINT, ...) WITH ('connector' = 'datagen', ...)",
            ],
        ),
        (
            Some(Arc::clone(&declared)),
            vec![("number-of-rows", "-5")],
            &["'number-of-rows'", "'-5' is not a number of rows"],
        ),
        (
            Some(Arc::clone(&declared)),
            vec![("number-of-rows", "10"), ("fields.nope.kind", "random")],
            &["'nope' is not a declared column (columns: id, name)"],
        ),
        (
            Some(Arc::clone(&declared)),
            vec![("number-of-rows", "10"), ("fields.id.size", "3")],
            &["unknown option 'fields.id.size'", "fields.*.kind"],
        ),
        (
            Some(Arc::clone(&declared)),
            vec![("number-of-rows", "10"), ("fields.id.max", "lots")],
            &["fields.id.max", "'lots' is not an integer"],
        ),
        (
            Some(binary),
            vec![("number-of-rows", "10")],
            &["connector 'datagen'", "column 'blob' is Binary"],
        ),
    ];
    for (declared, pairs, expected) in cases {
        let e = error(declared, pairs).await;
        for part in expected {
            assert!(e.contains(part), "{e} (expected: {part})");
        }
    }
}
