//! What the file connector tests share: jobs that write and read tables on
//! the mini-cluster, and checks of what they leave on disk.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use weir_engine::dataframe::Dataflow;
use weir_engine::expr::Expr;
use weir_engine::graph::{JobGraph, ShuffleMode};
use weir_engine::registry::ConnectorOptions;
use weir_engine::sinks::{CollectSink, Collected};
use weir_engine::sources::MemorySource;
use weir_engine::testing::{ColumnKind, ColumnSpec, Rng, random_batch, rebatch, sorted_rows};
use weir_engine::{SinkFactory, SourceFactory};
use weir_scheduler::{FailurePlan, JobConfig, JobProgress, JobSummary, MiniCluster};

pub fn options(pairs: &[(&str, &str)]) -> ConnectorOptions {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn config(restarts: u32) -> JobConfig {
    let mut config = JobConfig {
        slots: 4,
        shuffle_root: "memory://".to_string(),
        ..JobConfig::default()
    };
    config
        .set("restart-strategy.type", "fixed-delay")
        .expect("key");
    config
        .set(
            "restart-strategy.fixed-delay.attempts",
            &restarts.to_string(),
        )
        .expect("key");
    config
        .set("restart-strategy.fixed-delay.delay", "0 ms")
        .expect("key");
    config
}

/// A source of `connector` with options `pairs`.
pub async fn source(
    connector: &str,
    pairs: &[(&str, &str)],
) -> weir_engine::Result<Arc<dyn SourceFactory>> {
    declared_source(connector, pairs, None).await
}

/// A source of `connector` with options `pairs` and the columns a
/// `CREATE TABLE` declared, if any.
pub async fn declared_source(
    connector: &str,
    pairs: &[(&str, &str)],
    declared: Option<SchemaRef>,
) -> weir_engine::Result<Arc<dyn SourceFactory>> {
    weir_formats::registry()
        .source(connector, &options(pairs), declared)
        .await
}

/// A sink of `connector` with options `pairs` for rows of `schema`.
pub async fn sink(
    connector: &str,
    pairs: &[(&str, &str)],
    schema: SchemaRef,
) -> Arc<dyn SinkFactory> {
    weir_formats::registry()
        .sink(connector, &options(pairs), schema)
        .await
        .expect("sink")
}

/// The error that building a sink of `connector` with `pairs` gives.
pub async fn sink_error(connector: &str, pairs: &[(&str, &str)]) -> String {
    weir_formats::registry()
        .sink(
            connector,
            &options(pairs),
            Arc::new(arrow::datatypes::Schema::empty()),
        )
        .await
        .expect_err("an invalid sink")
        .to_string()
}

/// Random rows of every column kind, with nulls, and a low-cardinality
/// `region` column to partition by.
pub fn table(rows: usize, seed: u64) -> Vec<RecordBatch> {
    let mut columns: Vec<ColumnSpec> = ColumnKind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| ColumnSpec::new(format!("c{i}"), *kind, 500).with_nulls(0.1))
        .collect();
    columns.push(ColumnSpec::new("region", ColumnKind::Utf8, 4).with_nulls(0.05));
    let batch = random_batch(&mut Rng::new(seed), &columns, rows);
    rebatch(&[batch], 1000)
}

pub fn memory_source(batches: &[RecordBatch]) -> Arc<dyn SourceFactory> {
    Arc::new(MemorySource::try_new("rows", batches[0].schema(), batches.to_vec()).expect("source"))
}

pub fn graph(flow: &Dataflow) -> JobGraph {
    flow.build(ShuffleMode::AllBlocking, 4).expect("graph")
}

pub async fn write(
    connector: &str,
    batches: &[RecordBatch],
    pairs: &[(&str, &str)],
    plan: FailurePlan,
    restarts: u32,
) -> weir_scheduler::Result<JobSummary> {
    let flow = Dataflow::new("write").with_parallelism(2);
    let rows = flow.read(memory_source(batches));
    rows.write(sink(connector, pairs, batches[0].schema()).await);
    MiniCluster::new(config(restarts))
        .run_with_failures(graph(&flow), plan)
        .await
}

pub async fn read(
    source: Arc<dyn SourceFactory>,
    projection: Option<&[&str]>,
    filter: Option<Expr>,
) -> (Vec<RecordBatch>, JobSummary) {
    let flow = Dataflow::new("read").with_parallelism(3);
    let rows = flow.scan(source, projection, filter).expect("scan");
    let (collect, collected): (CollectSink, Collected) = CollectSink::new();
    rows.write(Arc::new(collect));
    let progress = JobProgress::default();
    let summary = MiniCluster::new(config(0))
        .run_with(graph(&flow), FailurePlan::none(), progress.clone())
        .await
        .expect("read job");
    let done = progress.snapshot();
    assert_eq!(done.regions_finished, done.regions);
    if let Some(expected) = done.rows_expected {
        assert_eq!(
            done.rows_scanned, expected,
            "a finished read covers every row of its input"
        );
    }
    (collected.batches(), summary)
}

/// The visible files under `dir` (relative paths), and whether anything
/// hidden (staging) is left.
pub fn files_under(dir: &Path) -> (Vec<String>, bool) {
    let mut visible = Vec::new();
    let mut hidden = false;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_string();
            if name.starts_with(['_', '.']) {
                hidden = true;
            } else if path.is_dir() {
                stack.push(path);
            } else {
                visible.push(path.strip_prefix(dir).expect("under").display().to_string());
            }
        }
    }
    visible.sort();
    (visible, hidden)
}

/// Compares two row lists, reporting the first difference only.
pub fn assert_same_rows(actual: &[String], expected: &[String]) {
    assert_eq!(actual.len(), expected.len(), "row counts differ");
    if let Some((a, e)) = actual.iter().zip(expected).find(|(a, e)| a != e) {
        panic!("rows differ: got {a:?}, expected {e:?}");
    }
}

/// The input's rows with the partition column moved last, as reads return
/// them: an empty value reads back as null, as in Hive and Spark.
pub fn partition_last(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let schema = batches[0].schema();
    let at = schema.index_of(column).expect("column");
    let mut order: Vec<usize> = (0..schema.fields().len()).filter(|&i| i != at).collect();
    order.push(at);
    let projected: Vec<RecordBatch> = batches
        .iter()
        .map(|b| b.project(&order).expect("project"))
        .collect();
    let mut rows: Vec<String> = sorted_rows(&projected)
        .into_iter()
        .map(|row| match row.strip_suffix('|') {
            Some(rest) => format!("{rest}|NULL"),
            None => row,
        })
        .collect();
    rows.sort();
    rows
}

pub fn counter(summary: &JobSummary, name: &str) -> u64 {
    summary
        .vertices
        .iter()
        .filter_map(|v| v.counters.get(name))
        .sum()
}
