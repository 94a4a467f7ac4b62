//! The file sink commits exactly once in streaming jobs: a seeded sequence
//! of numbers goes both straight into one file sink and, through keyed
//! window state, into another; tasks fail at random records or are
//! killed at random times, the job resumes from its checkpoints; what the sinks committed has every
//! sequence number exactly once, and the window values equal those of the
//! run without failures. Nothing staged is left visible.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use common::*;
use weir_engine::dataframe::Dataflow;
use weir_engine::event_time::WatermarkStrategy;
use weir_engine::expr::col;
use weir_engine::graph::JobGraph;
use weir_engine::graph::RuntimeMode;
use weir_engine::operators::Window;
use weir_engine::sources::SequenceGenerator;
use weir_engine::testing::{Rng, sorted_rows, window_totals};
use weir_scheduler::{
    FailurePlan, JobConfig, JobControl, JobProgress, JobSummary, MiniCluster, SavepointTarget,
};

const ROWS: u64 = 300_000;

/// Runs the job writing under `out`, with `plan`'s failures.
async fn run(out: &Path, checkpoints: &Path, plan: FailurePlan, seed: u64) -> JobSummary {
    run_tolerating(out, checkpoints, plan, seed, 0).await
}

/// Runs the job writing under `out`, with `plan`'s failures, going on
/// after up to `tolerable` failed checkpoints in a row.
async fn run_tolerating(
    out: &Path,
    checkpoints: &Path,
    plan: FailurePlan,
    seed: u64,
    tolerable: u32,
) -> JobSummary {
    let mut config: JobConfig = config(10);
    config.tolerable_failed_checkpoints = tolerable;
    let (graph, config) = job(out, checkpoints, seed, config).await;
    MiniCluster::new(config)
        .run_with_failures(graph, plan)
        .await
        .expect("the job survives its failures")
}

/// The job writing under `out`, checkpointing into `checkpoints` every
/// 20 ms, with `config`.
async fn job(
    out: &Path,
    checkpoints: &Path,
    seed: u64,
    mut config: JobConfig,
) -> (JobGraph, JobConfig) {
    let flow = Dataflow::new("exactly-once").with_parallelism(2);
    let generator = SequenceGenerator::new(Some(ROWS), 23)
        .with_seed(seed)
        .with_batch_rows(400);
    let numbers = flow
        .read_with_watermarks(
            Arc::new(generator),
            WatermarkStrategy::bounded_out_of_orderness("seq", Duration::ZERO),
        )
        .expect("reads");
    let raw = numbers
        .select(vec![col("seq"), col("key")])
        .expect("selects");
    let raw_dir = out.join("raw").display().to_string();
    raw.write(
        sink(
            "csv",
            &[("path", raw_dir.as_str())],
            Arc::clone(raw.schema()),
        )
        .await,
    );
    let windows = window_totals(
        &numbers,
        Window::tumble(Duration::from_millis(3000)).expect("valid"),
    )
    .expect("windows");
    let windows_dir = out.join("windows").display().to_string();
    windows.write(
        sink(
            "csv",
            &[("path", windows_dir.as_str())],
            Arc::clone(windows.schema()),
        )
        .await,
    );
    config.runtime_mode = Some(RuntimeMode::Streaming);
    config.checkpoint_interval = Some(Duration::from_millis(20));
    config.checkpoint_dir = checkpoints.display().to_string();
    config.checkpoints_retained = 2;
    let graph = config.build(flow.builder()).expect("builds");
    (graph, config)
}

/// Every row committed under `dir`, read with the CSV connector.
async fn committed(dir: &Path) -> Vec<RecordBatch> {
    let (_, hidden) = files_under(dir);
    assert!(!hidden, "nothing staged is left under {}", dir.display());
    let path = dir.display().to_string();
    let table = source("csv", &[("path", path.as_str())])
        .await
        .expect("the committed files");
    read(table, None, None).await.0
}

/// Asserts that the sinks under `out` committed every sequence number once
/// and the windows of the run without failures.
async fn assert_exactly_once(out: &Path, expected_windows: &[String], what: &str) {
    let raw = committed(&out.join("raw")).await;
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    for batch in &raw {
        for seq in batch.column(0).as_primitive::<Int64Type>().values() {
            *seen.entry(*seq).or_default() += 1;
        }
    }
    assert_eq!(seen.len() as u64, ROWS, "{what}: every number is there");
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "{what}: committed twice: {repeated:?}");
    let windows = sorted_rows(&committed(&out.join("windows")).await);
    assert_same_rows(&windows, expected_windows);
}

/// Vertices of the job: the source (0), the raw sink (1), the windows and
/// their sink (2).
fn random_vertex(rng: &mut Rng) -> weir_engine::graph::VertexId {
    weir_engine::graph::VertexId(rng.below(3) as u32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_number_is_committed_exactly_once_whatever_fails() {
    let reference = tempfile::tempdir().expect("a directory");
    let checkpoints = tempfile::tempdir().expect("a directory");
    run(reference.path(), checkpoints.path(), FailurePlan::none(), 5).await;
    let expected_windows = sorted_rows(&committed(&reference.path().join("windows")).await);
    let mut rng = Rng::new(99);
    let mut resumed = 0;
    // Failures at random records: one on each of two attempts.
    for round in 0..4 {
        let out = tempfile::tempdir().expect("a directory");
        let mut plan = FailurePlan::none();
        for attempt in 0..2 {
            let at = 5_000 + rng.below(ROWS / 3);
            plan = plan.fail_task(random_vertex(&mut rng), rng.below(2) as u32, attempt, at);
        }
        let summary = run(out.path(), checkpoints.path(), plan, 5).await;
        assert!(summary.restarts >= 1, "round {round}: {summary}");
        if summary.vertices[0].metrics.rows_in < ROWS {
            resumed += 1;
        }
        assert_exactly_once(out.path(), &expected_windows, &format!("round {round}")).await;
    }
    assert!(resumed > 0, "no run resumed from a checkpoint");
    // Tasks killed after random progress, wherever they are then: reading,
    // writing, snapshotting, uploading or preparing their commits.
    let mut killed = 0;
    for round in 0..4 {
        let out = tempfile::tempdir().expect("a directory");
        let mut plan = FailurePlan::none();
        for attempt in 0..2 {
            let at = 1_000 + rng.below(ROWS / 3);
            plan = plan.kill_task_at(random_vertex(&mut rng), rng.below(2) as u32, attempt, at);
        }
        let summary = run(out.path(), checkpoints.path(), plan, 5).await;
        killed += summary.restarts;
        assert_exactly_once(
            out.path(),
            &expected_windows,
            &format!("kill round {round}"),
        )
        .await;
    }
    assert!(killed > 0, "no task was killed while it ran");
}

/// Checkpoints that fail without failing the job over (tolerated) leave
/// what the sinks prepared for them to the next checkpoint that
/// completes: nothing is lost, nothing doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_of_tolerated_failed_checkpoints_commit_with_the_next() {
    let reference = tempfile::tempdir().expect("a directory");
    let checkpoints = tempfile::tempdir().expect("a directory");
    run(reference.path(), checkpoints.path(), FailurePlan::none(), 5).await;
    let expected_windows = sorted_rows(&committed(&reference.path().join("windows")).await);
    let out = tempfile::tempdir().expect("a directory");
    let plan = FailurePlan::none()
        .fail_checkpoint_metadata(2)
        .fail_checkpoint_metadata(3)
        .fail_checkpoint_uploads(5);
    let summary = run_tolerating(out.path(), checkpoints.path(), plan, 5, 3).await;
    assert_eq!(summary.restarts, 0, "{summary}");
    let stats = summary.checkpoints.expect("checkpoints were taken");
    assert!(stats.failed >= 3 && stats.completed >= 2, "{stats:?}");
    assert_exactly_once(out.path(), &expected_windows, "tolerated").await;
}

/// A checkpoint fails (tolerated), a later one completes, and the job is
/// stopped with a savepoint, then resumed from it: what the sinks prepared
/// for the failed checkpoint is committed with a later one, so every
/// number is there once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_after_a_tolerated_failed_checkpoint_loses_nothing() {
    let reference = tempfile::tempdir().expect("a directory");
    let checkpoints = tempfile::tempdir().expect("a directory");
    run(reference.path(), checkpoints.path(), FailurePlan::none(), 5).await;
    let expected_windows = sorted_rows(&committed(&reference.path().join("windows")).await);
    let out = tempfile::tempdir().expect("a directory");
    let savepoints = tempfile::tempdir().expect("a directory");
    let mut tolerant = config(10);
    tolerant.tolerable_failed_checkpoints = 1;
    let (graph, first) = job(out.path(), checkpoints.path(), 5, tolerant).await;
    let (control, progress) = (JobControl::default(), JobProgress::default());
    let plan = FailurePlan::none().fail_checkpoint_metadata(2);
    let cluster = MiniCluster::new(first);
    let run = cluster.run_with_control(graph, plan, progress.clone(), control.clone());
    let stop = async {
        while progress.snapshot().checkpoints < 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let dir = savepoints.path().display().to_string();
        control.stop(Some(SavepointTarget::Dir(dir))).await
    };
    let (summary, savepoint) = tokio::join!(run, stop);
    let summary = summary.expect("the job stops");
    let savepoint = savepoint.expect("stopped").expect("a savepoint");
    let stats = summary.checkpoints.expect("checkpoints were taken");
    assert!(stats.failed >= 1, "{summary}");
    assert!(
        summary.vertices[0].metrics.rows_in < ROWS,
        "stopped mid-stream: {summary}"
    );
    let mut config = config(10);
    config.restore_from = Some(savepoint);
    let (graph, config) = job(out.path(), checkpoints.path(), 5, config).await;
    MiniCluster::new(config).run(graph).await.expect("resumes");
    assert_exactly_once(out.path(), &expected_windows, "stopped and resumed").await;
}
