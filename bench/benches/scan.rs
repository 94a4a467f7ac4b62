//! Parquet scan and write throughput on one core, over TPC-H `lineitem`
//! (scale factor 1, written by `tpchgen-cli`): 1, 2 and all 16 columns,
//! with and without a selective predicate on `l_shipdate`, and writing the
//! whole table back as Parquet. Each scan is a job on the embedded
//! mini-cluster at parallelism 1: the Parquet source and a sink that counts
//! rows. `bench/peers/scan.py` runs the same scans in DuckDB and DataFusion
//! (one thread each) on the same file.
//!
//! Generate the data, then run:
//! ```text
//! bench/tpch-data.sh 1                      # writes target/tpch/sf1/*.parquet
//! cargo bench -p weir-bench --bench scan
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use async_trait::async_trait;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weir_engine::dataframe::Dataflow;
use weir_engine::expr::{Expr, cast, col, lit};
use weir_engine::graph::ShuffleMode;
use weir_engine::registry::ConnectorOptions;
use weir_engine::{Sink, SinkFactory, SourceFactory, TaskInfo};
use weir_scheduler::{JobConfig, MiniCluster};

/// A scan benchmark: its name, the columns read (all when `None`), the
/// filter.
type ScanCase<'a> = (&'a str, Option<&'a [&'a str]>, Option<Expr>);

/// Rows of `lineitem` at scale factor 1.
const ROWS: u64 = 6_001_215;

/// Counts the rows it receives and drops them.
#[derive(Debug, Default)]
struct CountingSink {
    rows: Arc<AtomicU64>,
}

struct Counting(Arc<AtomicU64>);

#[async_trait]
impl Sink for Counting {
    async fn write_batch(&mut self, batch: RecordBatch) -> weir_engine::Result<()> {
        self.0.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn finish(&mut self) -> weir_engine::Result<()> {
        Ok(())
    }
}

#[async_trait]
impl SinkFactory for CountingSink {
    fn name(&self) -> String {
        "count".to_string()
    }

    fn create(&self, _task: &TaskInfo) -> weir_engine::Result<Box<dyn Sink>> {
        Ok(Box::new(Counting(Arc::clone(&self.rows))))
    }
}

fn lineitem() -> String {
    let dir = std::env::var("WEIR_TPCH_DIR")
        .unwrap_or_else(|_| format!("{}/../target/tpch/sf1", env!("CARGO_MANIFEST_DIR")));
    let path = format!("{dir}/lineitem.parquet");
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: run `bench/tpch-data.sh 1` first (or set WEIR_TPCH_DIR)"
    );
    path
}

fn options(pairs: &[(&str, &str)]) -> ConnectorOptions {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn config() -> JobConfig {
    JobConfig {
        slots: 1,
        shuffle_root: "memory://".to_string(),
        ..JobConfig::default()
    }
}

/// Runs `iters` scans of `columns` (all when `None`) with `filter`;
/// returns the time and the rows the last scan produced.
fn time_scan(
    runtime: &tokio::runtime::Runtime,
    source: &Arc<dyn SourceFactory>,
    columns: Option<&[&str]>,
    filter: Option<Expr>,
    iters: u64,
) -> (Duration, u64) {
    let mut rows = 0;
    let start = Instant::now();
    for _ in 0..iters {
        let flow = Dataflow::new("scan");
        let sink = CountingSink::default();
        let counted = Arc::clone(&sink.rows);
        flow.scan(Arc::clone(source), columns, filter.clone())
            .expect("scan")
            .write(Arc::new(sink));
        let graph = flow.build(ShuffleMode::AllPipelined, 1).expect("graph");
        runtime
            .block_on(MiniCluster::new(config()).run(graph))
            .expect("the scan runs");
        rows = counted.load(Ordering::Relaxed);
    }
    (start.elapsed(), rows)
}

fn scans(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let path = lineitem();
    let source = runtime
        .block_on(weir_formats::registry().source("parquet", &options(&[("path", &path)]), None))
        .expect("lineitem");
    let january_1995 = col("l_shipdate").between(
        cast(lit("1995-01-01"), DataType::Date32),
        cast(lit("1995-01-31"), DataType::Date32),
    );
    let cases: [ScanCase; 6] = [
        ("1-column", Some(&["l_orderkey"]), None),
        ("2-columns", Some(&["l_orderkey", "l_extendedprice"]), None),
        ("all-columns", None, None),
        (
            "1-column/where-shipdate",
            Some(&["l_orderkey"]),
            Some(january_1995.clone()),
        ),
        (
            "2-columns/where-shipdate",
            Some(&["l_orderkey", "l_extendedprice"]),
            Some(january_1995.clone()),
        ),
        ("all-columns/where-shipdate", None, Some(january_1995)),
    ];
    let mut group = c.benchmark_group("parquet-scan");
    group.sample_size(10).throughput(Throughput::Elements(ROWS));
    for (name, columns, filter) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| time_scan(&runtime, &source, columns, filter.clone(), iters).0)
        });
    }
    group.finish();

    let mut group = c.benchmark_group("parquet-write");
    group.sample_size(10).throughput(Throughput::Elements(ROWS));
    group.bench_function("all-columns", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let out = tempfile::tempdir().expect("dir");
                let sink = runtime
                    .block_on(weir_formats::registry().sink(
                        "parquet",
                        &options(&[("path", out.path().to_str().expect("utf-8"))]),
                        source.schema(),
                    ))
                    .expect("sink");
                let flow = Dataflow::new("write");
                flow.read(Arc::clone(&source)).write(sink);
                let graph = flow.build(ShuffleMode::AllPipelined, 1).expect("graph");
                let start = Instant::now();
                runtime
                    .block_on(MiniCluster::new(config()).run(graph))
                    .expect("the write runs");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, scans);
criterion_main!(benches);
