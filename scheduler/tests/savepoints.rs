//! Savepoints: a streaming job stopped with a savepoint at parallelism 2
//! and resumed from it at parallelism 1 and 4 commits, in its two runs,
//! exactly the rows of the run that was never interrupted; savepoints
//! taken while a job runs leave it running; a savepoint that does not fit
//! the job is refused unless its unclaimed state may be dropped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::test_config;
use weir_engine::dataframe::Dataflow;
use weir_engine::event_time::WatermarkStrategy;
use weir_engine::expr::aggregate::count;
use weir_engine::expr::col;
use weir_engine::graph::{JobGraph, RuntimeMode};
use weir_engine::operators::Window;
use weir_engine::sinks::{CollectSink, Collected};
use weir_engine::sources::SequenceGenerator;
use weir_engine::testing::{sorted_rows, window_totals};
use weir_scheduler::{FailurePlan, JobConfig, JobControl, JobProgress, JobSummary, MiniCluster};

const ROWS: u64 = 600_000;

fn job(parallelism: usize, config: &JobConfig, keys: u64) -> (JobGraph, Collected) {
    let flow = Dataflow::new("savepoints").with_parallelism(parallelism);
    let generator = SequenceGenerator::new(Some(ROWS), keys).with_batch_rows(500);
    let (sink, output) = CollectSink::new();
    flow.read_with_watermarks(
        Arc::new(generator),
        WatermarkStrategy::bounded_out_of_orderness("seq", Duration::ZERO),
    )
    .and_then(|df| {
        window_totals(
            &df,
            Window::session(Duration::from_millis(60)).expect("valid"),
        )
    })
    .expect("plans")
    .write(Arc::new(sink));
    (config.build(flow.builder()).expect("builds"), output)
}

fn streaming() -> JobConfig {
    let mut config = test_config(4);
    config.runtime_mode = Some(RuntimeMode::Streaming);
    config
}

/// Runs the job, stopping it with a savepoint into `dir` once a fifth of
/// its rows went through.
async fn stopped(dir: &str) -> (Vec<String>, JobSummary) {
    let config = streaming();
    let (graph, output) = job(2, &config, 41);
    let control = JobControl::default();
    let progress = JobProgress::default();
    let cluster = MiniCluster::new(config);
    let run = cluster.run_with_control(
        graph,
        FailurePlan::none(),
        progress.clone(),
        control.clone(),
    );
    let stop = async {
        while progress.snapshot().rows_scanned < ROWS / 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        control.stop(Some(dir)).await
    };
    let (summary, savepoint) = tokio::join!(run, stop);
    let summary = summary.expect("the job stops");
    let savepoint = savepoint
        .expect("the savepoint is taken")
        .expect("a savepoint");
    assert_eq!(summary.stopped, Some(Some(savepoint.clone())), "{summary}");
    assert!(
        summary.to_string().contains("stopped with a savepoint at"),
        "{summary}"
    );
    (sorted_rows(&output.batches()), summary)
}

async fn resumed(dir: &str, parallelism: usize) -> Vec<String> {
    let mut config = streaming();
    config.restore_from = Some(dir.to_string());
    let (graph, output) = job(parallelism, &config, 41);
    MiniCluster::new(config).run(graph).await.expect("resumes");
    sorted_rows(&output.batches())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_with_savepoint_and_resume_at_another_parallelism() {
    let (graph, output) = job(2, &streaming(), 41);
    MiniCluster::new(streaming())
        .run(graph)
        .await
        .expect("runs");
    let uninterrupted = sorted_rows(&output.batches());
    for parallelism in [1, 4] {
        let dir = tempfile::tempdir().expect("a directory");
        let savepoint = dir.path().display().to_string();
        let (before, _) = stopped(&savepoint).await;
        assert!(before.len() < uninterrupted.len(), "stopped before the end");
        assert!(dir.path().join("_metadata").exists());
        let after = resumed(&savepoint, parallelism).await;
        let mut both: Vec<String> = before.into_iter().chain(after).collect();
        both.sort();
        assert_eq!(
            both.len(),
            uninterrupted.len(),
            "at parallelism {parallelism}"
        );
        assert_eq!(both, uninterrupted, "at parallelism {parallelism}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().expect("a directory");
    let savepoint = dir.path().display().to_string();
    stopped(&savepoint).await;
    // Another job: the window aggregates other columns.
    let mut config = streaming();
    config.restore_from = Some(savepoint.clone());
    let flow = Dataflow::new("other").with_parallelism(2);
    let (sink, _) = CollectSink::new();
    flow.read_with_watermarks(
        Arc::new(SequenceGenerator::new(Some(1000), 3)),
        WatermarkStrategy::bounded_out_of_orderness("seq", Duration::ZERO),
    )
    .and_then(|df| {
        df.window_aggregate(
            Window::tumble(Duration::from_millis(100)).expect("valid"),
            "seq",
            vec![col("key")],
            vec![count(col("value")).alias("n")],
        )
    })
    .expect("plans")
    .write(Arc::new(sink));
    let graph = config.build(flow.builder()).expect("builds");
    let e = MiniCluster::new(config.clone())
        .run(graph.clone())
        .await
        .expect_err("does not fit");
    assert!(e.to_string().contains("holds state of"), "{e}");
    config.allow_non_restored = true;
    MiniCluster::new(config)
        .run(graph)
        .await
        .expect("starts afresh where the savepoint does not fit");
    let missing = streaming();
    let mut missing = missing;
    missing.restore_from = Some(dir.path().join("nothing").display().to_string());
    let (graph, _) = job(2, &missing, 41);
    let e = MiniCluster::new(missing)
        .run(graph)
        .await
        .expect_err("no savepoint");
    assert!(e.to_string().contains("is not a savepoint"), "{e}");
}
