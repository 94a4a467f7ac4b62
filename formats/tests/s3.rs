//! Parquet tables in a real S3-compatible server (moto): partitioned writes
//! read back exactly, commits that happen once even when a task fails,
//! failed jobs that leave nothing visible, and the write modes; streaming
//! jobs whose checkpoints and savepoints live in S3.

mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use support::canonical::{Table, assert_same_rows};
use support::{MotoServer, Options, pairs};
use weir_engine::dataframe::Dataflow;
use weir_engine::event_time::WatermarkStrategy;
use weir_engine::graph::{RuntimeMode, VertexId};
use weir_engine::operators::Window;
use weir_engine::testing::window_totals;
use weir_scheduler::{
    FailurePlan, JobConfig, JobControl, JobProgress, JobSummary, MiniCluster, SavepointTarget,
};

/// `rows` rows numbered from `first`, of several types with nulls, the
/// partition column `region` last (with values that need escaping in a
/// key), in batches of 20 rows.
fn table(first: i64, rows: i64) -> Vec<RecordBatch> {
    let ids: Vec<i64> = (first..first + rows).collect();
    let nullable = |i: i64, k: i64| (i + k) % 6 != 0;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(ids.clone()))),
        (
            "small",
            Arc::new(Int32Array::from_iter(
                ids.iter()
                    .map(|&i| nullable(i, 1).then_some(i as i32 * 7 - 100)),
            )),
        ),
        (
            "name",
            Arc::new(StringArray::from_iter(
                ids.iter()
                    .map(|&i| nullable(i, 2).then(|| format!("name {i} é"))),
            )),
        ),
        (
            "score",
            Arc::new(Float64Array::from_iter(
                ids.iter()
                    .map(|&i| nullable(i, 3).then_some(i as f64 / 7.0)),
            )),
        ),
        (
            "ok",
            Arc::new(BooleanArray::from_iter(
                ids.iter().map(|&i| nullable(i, 4).then_some(i % 2 == 0)),
            )),
        ),
        (
            "day",
            Arc::new(Date32Array::from_iter(
                ids.iter()
                    .map(|&i| nullable(i, 5).then_some(19_000 + i as i32)),
            )),
        ),
        (
            "at",
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    ids.iter()
                        .map(|&i| nullable(i, 0).then_some(1_700_000_000_000_000 + i * 1_000_003)),
                )
                .with_timezone("UTC"),
            ),
        ),
        (
            "price",
            Arc::new(
                Decimal128Array::from_iter(
                    ids.iter()
                        .map(|&i| nullable(i, 1).then_some(i as i128 * 1_234 - 5_000)),
                )
                .with_precision_and_scale(12, 2)
                .expect("a decimal type"),
            ),
        ),
        (
            "region",
            Arc::new(StringArray::from_iter(ids.iter().map(|&i| {
                (i % 11 != 5)
                    .then_some(["eu", "us west", "a/b", "ü=%", ".hidden"][(i % 5) as usize])
            }))),
        ),
    ];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect())
        .expect("a batch");
    (0..batch.num_rows())
        .step_by(20)
        .map(|start| batch.slice(start, 20.min(batch.num_rows() - start)))
        .collect()
}

/// A bucket of its own in a server of its own.
struct Bucket {
    server: MotoServer,
    name: String,
}

impl Bucket {
    fn new(name: &str) -> Self {
        let server = MotoServer::start();
        server.create_bucket(name);
        Self {
            server,
            name: name.to_string(),
        }
    }

    /// Sink or source options for table `prefix`, and `extra`.
    fn options(&self, prefix: &str, extra: &[(&str, &str)]) -> Options {
        let mut options = self.server.options();
        options.insert("path".to_string(), format!("s3://{}/{prefix}", self.name));
        for (key, value) in extra {
            options.insert(key.to_string(), value.to_string());
        }
        options
    }

    /// Writes `batches` to table `prefix` (parallelism 2) with `extra`
    /// options, failing tasks as `plan` says, restarting up to `restarts`
    /// times.
    async fn try_write(
        &self,
        prefix: &str,
        extra: &[(&str, &str)],
        batches: &[RecordBatch],
        plan: FailurePlan,
        restarts: u32,
    ) -> weir_scheduler::Result<JobSummary> {
        let options = self.options(prefix, extra);
        common::write("parquet", batches, &pairs(&options), plan, restarts).await
    }

    async fn write(&self, prefix: &str, extra: &[(&str, &str)], batches: &[RecordBatch]) {
        self.try_write(prefix, extra, batches, FailurePlan::none(), 0)
            .await
            .unwrap_or_else(|e| panic!("writing s3://{}/{prefix}: {e}", self.name));
    }

    fn keys(&self, prefix: &str) -> Vec<String> {
        self.server.list(&self.name, prefix)
    }

    /// The rows weir reads from table `prefix`.
    async fn rows(&self, prefix: &str) -> Table {
        let options = self.options(prefix, &[]);
        let source = common::source("parquet", &pairs(&options))
            .await
            .unwrap_or_else(|e| panic!("reading s3://{}/{prefix}: {e}", self.name));
        Table::from_batches(&common::read(source, None, None).await.0)
    }
}

/// Asserts that every key under `prefix/` is a visible Parquet file of
/// table `prefix`, partitioned by region, and returns how many.
fn assert_only_published_files(keys: &[String], prefix: &str) -> usize {
    assert!(!keys.is_empty(), "files under {prefix}/");
    for key in keys {
        let relative = key
            .strip_prefix(&format!("{prefix}/"))
            .unwrap_or_else(|| panic!("{key} is under {prefix}/"));
        assert!(
            !relative.split('/').any(|part| part.starts_with(['_', '.'])),
            "{key}: nothing staged or hidden is left"
        );
        assert!(relative.starts_with("region="), "{key} is in a partition");
        assert!(relative.ends_with(".parquet"), "{key} is a Parquet file");
    }
    keys.len()
}

/// The harness itself: the server runs, takes buckets, and lists keys.
#[test]
fn the_s3_server_serves_buckets() {
    let bucket = Bucket::new("harness");
    assert_eq!(bucket.keys(""), Vec::<String>::new());
    let other = MotoServer::start();
    assert_ne!(other.endpoint(), bucket.server.endpoint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_parquet_table_round_trips_through_s3() {
    let bucket = Bucket::new("roundtrip");
    let input = table(0, 200);
    bucket
        .write("t", &[("partition-by", "region")], &input)
        .await;
    let keys = bucket.keys("t/");
    let files = assert_only_published_files(&keys, "t");
    assert!(files >= 6, "5 regions and nulls from 2 subtasks: {keys:#?}");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("t/region=__HIVE_DEFAULT_PARTITION__/")),
        "null regions have their partition: {keys:#?}"
    );
    assert!(bucket.keys("").iter().all(|k| k.starts_with("t/")));
    let got = bucket.rows("t").await;
    assert_same_rows(&got.rows, &Table::from_batches(&input).rows, "read back");
}

/// Options that make the sink write many small files, so that a failing
/// attempt has uploaded some before it fails.
const SMALL_FILES: [(&str, &str); 2] =
    [("partition-by", "region"), ("sink.rolling.max-rows", "10")];

/// The write job's only vertex: the source chained to the sink.
const SINK_VERTEX: VertexId = VertexId(0);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_task_failure_still_commits_exactly_once() {
    let bucket = Bucket::new("failover");
    let input = table(0, 300);
    for (subtask, at_record) in [(0, 70), (1, 140)] {
        let prefix = format!("t{subtask}");
        let plan = FailurePlan::none().fail_task(SINK_VERTEX, subtask, 0, at_record);
        let summary = bucket
            .try_write(&prefix, &SMALL_FILES, &input, plan, 3)
            .await
            .expect("the job recovers");
        assert_eq!(summary.restarts, 1, "the failure happened");
        assert_only_published_files(&bucket.keys(&format!("{prefix}/")), &prefix);
        let got = bucket.rows(&prefix).await;
        assert_same_rows(
            &got.rows,
            &Table::from_batches(&input).rows,
            &format!("subtask {subtask} failing at record {at_record}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_fails_for_good_leaves_nothing_visible() {
    let bucket = Bucket::new("failing");
    let input = table(0, 300);
    let plan = FailurePlan::none().fail_task(SINK_VERTEX, 1, 0, 120);
    let error = bucket
        .try_write("t", &SMALL_FILES, &input, plan.clone(), 0)
        .await
        .expect_err("the job fails");
    assert!(error.to_string().contains("failed"), "{error}");
    assert_eq!(
        bucket.keys(""),
        Vec::<String>::new(),
        "nothing at all is left"
    );

    // A failed overwrite leaves the table as it was.
    let first = table(5000, 40);
    bucket.write("t", &[], &first).await;
    let before = bucket.keys("t/");
    bucket
        .try_write(
            "t",
            &[("sink.mode", "overwrite"), ("sink.rolling.max-rows", "10")],
            &input,
            plan,
            0,
        )
        .await
        .expect_err("the job fails");
    assert_eq!(bucket.keys("t/"), before, "the table is untouched");
    let got = bucket.rows("t").await;
    assert_same_rows(&got.rows, &Table::from_batches(&first).rows, "the old rows");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_replaces_and_append_adds() {
    let bucket = Bucket::new("modes");
    let (a, b, c) = (table(0, 50), table(100, 30), table(200, 20));
    let expect = |parts: &[&Vec<RecordBatch>]| {
        let all: Vec<RecordBatch> = parts.iter().flat_map(|p| p.iter().cloned()).collect();
        Table::from_batches(&all).rows
    };

    bucket.write("t", &[], &a).await;
    assert_same_rows(&bucket.rows("t").await.rows, &expect(&[&a]), "first write");
    bucket.write("t", &[("sink.mode", "append")], &b).await;
    assert_same_rows(&bucket.rows("t").await.rows, &expect(&[&a, &b]), "appended");
    bucket.write("t", &[], &b).await;
    assert_same_rows(
        &bucket.rows("t").await.rows,
        &expect(&[&a, &b, &b]),
        "appending is the default",
    );
    bucket.write("t", &[("sink.mode", "overwrite")], &c).await;
    assert_same_rows(&bucket.rows("t").await.rows, &expect(&[&c]), "overwritten");

    let refused = weir_formats::registry()
        .sink(
            "parquet",
            &bucket.options("t", &[("sink.mode", "error-if-exists")]),
            c[0].schema(),
        )
        .await
        .map(|_| ())
        .expect_err("the table exists");
    assert!(refused.to_string().contains("sink.mode"), "{refused}");
    bucket
        .write("fresh", &[("sink.mode", "error-if-exists")], &c)
        .await;
    assert_same_rows(
        &bucket.rows("fresh").await.rows,
        &expect(&[&c]),
        "a new table",
    );
    assert!(
        bucket.keys("").iter().all(|k| !k.contains("_weir_staging")),
        "no staging is left"
    );
}

/// Rows of the streaming jobs below.
const STREAM_ROWS: u64 = 100_000;

impl Bucket {
    /// A streaming job: keyed sequence numbers (from `datagen`, 100,000 a
    /// second) counted and summed per key and tumbling window, committed
    /// as Parquet table `prefix`, checkpointed every 50 ms into this
    /// bucket's `checkpoints/` (or starting from `restore`), with the job
    /// configuration's `s3.*` keys.
    async fn streaming_job(
        &self,
        prefix: &str,
        restore: Option<String>,
    ) -> (MiniCluster, weir_engine::graph::JobGraph) {
        let flow = Dataflow::new("state-in-s3").with_parallelism(2);
        let last = (STREAM_ROWS - 1).to_string();
        let numbers = common::declared_source(
            "datagen",
            &[
                ("rows-per-second", "100000"),
                ("fields.seq.kind", "sequence"),
                ("fields.seq.start", "0"),
                ("fields.seq.end", &last),
                ("fields.key.min", "0"),
                ("fields.key.max", "12"),
                ("fields.value.min", "0"),
                ("fields.value.max", "999"),
            ],
            Some(Arc::new(Schema::new(
                ["seq", "key", "value"]
                    .map(|c| Field::new(c, DataType::Int64, false))
                    .to_vec(),
            ))),
        )
        .await
        .expect("a datagen table");
        let windows = flow
            .read_with_watermarks(
                numbers,
                WatermarkStrategy::bounded_out_of_orderness("seq", Duration::ZERO),
            )
            .and_then(|numbers| {
                window_totals(
                    &numbers,
                    Window::tumble(Duration::from_millis(2000)).expect("valid"),
                )
            })
            .expect("plans");
        let options = self.options(prefix, &[]);
        windows
            .write(common::sink("parquet", &pairs(&options), Arc::clone(windows.schema())).await);
        let mut config: JobConfig = common::config(5);
        for (key, value) in self.server.options() {
            config.set(&key, &value).expect("an s3 key");
        }
        config.runtime_mode = Some(RuntimeMode::Streaming);
        config.checkpoint_interval = Some(Duration::from_millis(50));
        config.checkpoint_dir = format!("s3://{}/checkpoints", self.name);
        config.checkpoints_retained = 2;
        config.restore_from = restore;
        let graph = config.build(flow.builder()).expect("builds");
        (MiniCluster::new(config), graph)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_and_savepoints_live_in_s3() {
    let bucket = Bucket::new("state");
    let (cluster, graph) = bucket.streaming_job("reference", None).await;
    let summary = cluster.run(graph).await.expect("runs");
    let expected = bucket.rows("reference").await.rows;
    assert!(!expected.is_empty());
    let checkpoints = summary.checkpoints.expect("a streaming job's checkpoints");
    assert!(checkpoints.completed > 0, "{summary}");
    assert_eq!(
        bucket.keys("checkpoints/"),
        Vec::<String>::new(),
        "a finished job's checkpoints are removed"
    );

    // A source task fails after a third of its rows: the job restarts
    // from its latest checkpoint in S3 and commits the same rows.
    let plan = FailurePlan::none().fail_task(VertexId(0), 1, 0, STREAM_ROWS / 6);
    let (cluster, graph) = bucket.streaming_job("recovered", None).await;
    let summary = cluster
        .run_with_failures(graph, plan)
        .await
        .expect("recovers");
    assert_eq!(summary.restarts, 1, "{summary}");
    assert!(
        summary.vertices[0].metrics.rows_in < STREAM_ROWS,
        "resumed from a checkpoint: {summary}"
    );
    assert_same_rows(&bucket.rows("recovered").await.rows, &expected, "recovered");

    // Stopped with a savepoint into S3 once a fifth of the rows went
    // through, then resumed from it writing elsewhere (sinks may change):
    // the two runs together commit the rows of the uninterrupted one.
    let savepoint = format!("s3://{}/savepoint", bucket.name);
    let (cluster, graph) = bucket.streaming_job("before", None).await;
    let control = JobControl::default();
    let progress = JobProgress::default();
    let run = cluster.run_with_control(
        graph,
        FailurePlan::none(),
        progress.clone(),
        control.clone(),
    );
    let stop = async {
        while progress.snapshot().rows_scanned < STREAM_ROWS / 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        control
            .stop(Some(SavepointTarget::Dir(savepoint.clone())))
            .await
    };
    let (summary, taken) = tokio::join!(run, stop);
    let summary = summary.expect("stops");
    let taken = taken.expect("the savepoint is taken").expect("a savepoint");
    assert_eq!(summary.stopped, Some(Some(taken)), "{summary}");
    assert!(
        bucket
            .keys("savepoint/")
            .contains(&"savepoint/_metadata".to_string()),
        "{:?}",
        bucket.keys("savepoint/")
    );
    let (cluster, graph) = bucket.streaming_job("after", Some(savepoint)).await;
    cluster.run(graph).await.expect("resumes");
    let before = bucket.rows("before").await.rows;
    assert!(before.len() < expected.len(), "stopped before the end");
    let by_text = |rows: &mut Vec<serde_json::Value>| rows.sort_by_key(|r| r.to_string());
    let mut both: Vec<_> = before
        .into_iter()
        .chain(bucket.rows("after").await.rows)
        .collect();
    by_text(&mut both);
    let mut expected = expected;
    by_text(&mut expected);
    assert_same_rows(&both, &expected, "stopped and resumed");
}
