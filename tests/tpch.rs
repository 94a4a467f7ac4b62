//! The 22 TPC-H queries at scale factor 0.01 (`data/tpch`) give exactly
//! DuckDB's answers: in both batch shuffle modes, at parallelism 1 and 4,
//! and with a task failure injected in a region chosen at random.
//!
//! Values compare as text, except numbers: decimals and integers by value
//! (scales may differ: `380456.00` equals `380456.0`), and columns DuckDB
//! types DOUBLE rounded to two decimals (weir keeps decimal averages
//! decimal). Rows compare in order: every query orders its rows or returns
//! one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use weir::sql::Session;
use weir_engine::registry::ConnectorOptions;
use weir_scheduler::{FailurePlan, JobConfig, JobSummary, MiniCluster};

const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

fn tpch_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/tpch")
}

fn config(shuffle_mode: &str, parallelism: usize) -> JobConfig {
    let mut config = JobConfig::default();
    for (key, value) in [
        ("parallelism.default", parallelism.to_string().as_str()),
        ("worker.slots", "4"),
        ("execution.batch-shuffle-mode", shuffle_mode),
        ("restart-strategy.type", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "3"),
        ("restart-strategy.fixed-delay.delay", "0 ms"),
    ] {
        config.set(key, value).expect("a valid option");
    }
    config
}

fn session(config: JobConfig) -> Session {
    let mut session = Session::new(weir_formats::registry(), config);
    for table in TABLES {
        let path = tpch_dir().join(format!("sf0.01/{table}.parquet"));
        let options = ConnectorOptions::from([("path".to_string(), path.display().to_string())]);
        session
            .register_table(table, "parquet", options)
            .expect("registers");
    }
    session
}

fn query_text(q: usize) -> String {
    let path = tpch_dir().join(format!("queries/q{q:02}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rows of query `q` as text, and the job's summary.
async fn run(
    q: usize,
    config: JobConfig,
    failures: &FailureChoice<'_>,
) -> Result<(Rows, JobSummary), String> {
    let mut session = session(config.clone());
    let script = session
        .execute(&query_text(q))
        .await
        .map_err(|e| format!("q{q:02} does not plan: {e}"))?;
    let query = &script.queries[0];
    let job = session
        .query_job(&format!("q{q:02}"), query)
        .map_err(|e| format!("q{q:02} does not translate: {e}"))?;
    let plan = failures(&job.graph);
    let summary = MiniCluster::new(config)
        .run_with_failures(job.graph, plan)
        .await
        .map_err(|e| format!("q{q:02} fails: {e}"))?;
    Ok((rows(&job.output.batches()), summary))
}

type Rows = Vec<Vec<Option<String>>>;

/// Picks the failures to inject into a job.
type FailureChoice<'a> = dyn Fn(&weir_engine::graph::JobGraph) -> FailurePlan + 'a;

fn rows(batches: &[RecordBatch]) -> Vec<Vec<Option<String>>> {
    let options = FormatOptions::default();
    let mut out = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).expect("formats"))
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                batch
                    .columns()
                    .iter()
                    .zip(&formatters)
                    .map(|(c, f)| (!c.is_null(row)).then(|| f.value(row).to_string()))
                    .collect(),
            );
        }
    }
    out
}

/// DuckDB's answer to query `q`, and the DuckDB type of each column.
fn expected(q: usize) -> (Vec<Vec<Option<String>>>, Vec<String>) {
    let dir = tpch_dir().join("answers");
    let types: Vec<String> = std::fs::read_to_string(dir.join("types.txt"))
        .expect("types.txt")
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            (parts.next() == Some(&format!("q{q:02}"))).then(|| {
                parts.next();
                parts.next().unwrap_or_default().to_string()
            })
        })
        .collect();
    let schema = Arc::new(Schema::new(
        (0..types.len())
            .map(|i| Field::new(format!("c{i}"), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ));
    let text = std::fs::read_to_string(dir.join(format!("q{q:02}.csv"))).expect("answer file");
    let lines = text.lines().skip(1).count();
    // DuckDB writes a one-column NULL as an empty line, which CSV readers
    // skip: take such answers line by line.
    let rows = if types.len() == 1 {
        text.lines()
            .skip(1)
            .map(|line| vec![(!line.is_empty()).then(|| line.trim_matches('"').to_string())])
            .collect()
    } else {
        let reader = arrow::csv::ReaderBuilder::new(schema)
            .with_header(true)
            .build(std::io::Cursor::new(text.as_bytes()))
            .expect("reads csv");
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().expect("valid csv");
        rows(&batches)
    };
    assert_eq!(rows.len(), lines, "q{q:02}: every answer line is a row");
    (rows, types)
}

/// `value` as a number without trailing zeros after the point.
fn canonical_number(value: &str) -> String {
    match value.split_once('.') {
        Some((whole, fraction)) => {
            let fraction = fraction.trim_end_matches('0');
            if fraction.is_empty() {
                whole.to_string()
            } else {
                format!("{whole}.{fraction}")
            }
        }
        None => value.to_string(),
    }
}

fn same_value(actual: Option<&str>, expected: Option<&str>, duck_type: &str) -> bool {
    let (actual, expected) = match (actual, expected) {
        (None, None) => return true,
        // An empty CSV field is DuckDB's NULL.
        (None, Some("")) | (Some(""), None) => return true,
        (Some(a), Some(e)) => (a, e),
        _ => return false,
    };
    if duck_type == "DOUBLE" {
        let (Ok(a), Ok(e)) = (actual.parse::<f64>(), expected.parse::<f64>()) else {
            return false;
        };
        return (a * 100.0).round() == (e * 100.0).round();
    }
    if duck_type.starts_with("DECIMAL")
        || ["BIGINT", "INTEGER", "HUGEINT", "SMALLINT"].contains(&duck_type)
    {
        return canonical_number(actual) == canonical_number(expected);
    }
    actual == expected
}

fn check(q: usize, actual: &[Vec<Option<String>>], what: &str) -> Result<(), String> {
    let (expected, types) = expected(q);
    if actual.len() != expected.len() {
        return Err(format!(
            "q{q:02} ({what}): {} rows, DuckDB {}\nweir: {actual:?}\nDuckDB: {expected:?}",
            actual.len(),
            expected.len()
        ));
    }
    for (i, (a, e)) in actual.iter().zip(&expected).enumerate() {
        let same = a.len() == types.len()
            && a.iter()
                .zip(e)
                .zip(&types)
                .all(|((av, ev), t)| same_value(av.as_deref(), ev.as_deref(), t));
        if !same {
            return Err(format!(
                "q{q:02} ({what}) row {i}: weir {a:?}, DuckDB {e:?}"
            ));
        }
    }
    Ok(())
}

fn no_failures(_: &weir_engine::graph::JobGraph) -> FailurePlan {
    FailurePlan::none()
}

async fn all_queries(shuffle_mode: &str, parallelism: usize) {
    let mut failed = Vec::new();
    for q in 1..=22 {
        let outcome = run(q, config(shuffle_mode, parallelism), &no_failures)
            .await
            .and_then(|(actual, _)| {
                check(
                    q,
                    &actual,
                    &format!("{shuffle_mode}, parallelism {parallelism}"),
                )
            });
        if let Err(e) = outcome {
            failed.push(e);
        }
    }
    assert!(
        failed.is_empty(),
        "{} of 22 queries failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_all_blocking_parallelism_1() {
    all_queries("all-blocking", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_all_blocking_parallelism_4() {
    all_queries("all-blocking", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_all_pipelined_parallelism_1() {
    all_queries("all-pipelined", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_all_pipelined_parallelism_4() {
    all_queries("all-pipelined", 4).await;
}

/// A small deterministic generator for choosing where to fail.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Every query with subtask 0 of a randomly chosen vertex failing at its
/// first record on its first attempt: the region restarts and the answer
/// is the same. A vertex whose subtask 0 sees no record cannot fail; the
/// next vertex is tried until a restart happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tpch_with_a_failure_in_a_random_region() {
    let mut restarts = BTreeMap::new();
    for q in 1..=22 {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ q as u64);
        let start = rng.below(64);
        for offset in 0.. {
            let fail = move |graph: &weir_engine::graph::JobGraph| {
                let vertex = &graph.vertices[(start + offset) % graph.vertices.len()];
                FailurePlan::none().fail_task(vertex.id, 0, 0, 1)
            };
            let (actual, summary) = run(q, config("all-blocking", 2), &fail)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            check(q, &actual, "with an injected failure").unwrap_or_else(|e| panic!("{e}"));
            if summary.restarts > 0 {
                restarts.insert(q, summary.restarts);
                break;
            }
            assert!(offset < 64, "q{q:02}: no vertex could be failed");
        }
    }
    assert_eq!(
        restarts.len(),
        22,
        "every query restarted once: {restarts:?}"
    );
}
