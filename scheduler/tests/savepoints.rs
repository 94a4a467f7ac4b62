//! Savepoints: a streaming job stopped with a savepoint at parallelism 2
//! and resumed from it at parallelism 1 and 4 commits, in its two runs,
//! exactly the rows of the run that was never interrupted; savepoints
//! taken while a job runs leave it running; a savepoint that does not fit
//! the job is refused unless its unclaimed state may be dropped.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
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
use weir_scheduler::{
    FailurePlan, JobConfig, JobControl, JobProgress, JobSummary, MiniCluster, SavepointTarget,
};

const ROWS: u64 = 600_000;

/// Counts and sums per key and `window` of what `generator` makes, at
/// `parallelism`, into a collecting sink.
fn windowed_job(
    parallelism: usize,
    config: &JobConfig,
    generator: SequenceGenerator,
    window: Window,
) -> (JobGraph, Collected) {
    let flow = Dataflow::new("savepoints").with_parallelism(parallelism);
    let (sink, output) = CollectSink::new();
    flow.read_with_watermarks(
        Arc::new(generator.with_batch_rows(500)),
        WatermarkStrategy::bounded_out_of_orderness("seq", Duration::ZERO),
    )
    .and_then(|df| window_totals(&df, window))
    .expect("plans")
    .write(Arc::new(sink));
    (config.build(flow.builder()).expect("builds"), output)
}

/// The bounded job: sessions of `ROWS` rows over `keys` keys.
fn job(parallelism: usize, config: &JobConfig, keys: u64) -> (JobGraph, Collected) {
    windowed_job(
        parallelism,
        config,
        SequenceGenerator::new(Some(ROWS), keys),
        Window::session(Duration::from_millis(60)).expect("valid"),
    )
}

fn streaming() -> JobConfig {
    let mut config = test_config(4);
    config.runtime_mode = Some(RuntimeMode::Streaming);
    config
}

/// Runs `graph` while `control` (given the job's control and progress)
/// acts on it, for at most a minute: the job's summary and what `control`
/// returned.
async fn controlled<T>(
    graph: JobGraph,
    config: JobConfig,
    control: impl AsyncFnOnce(&JobControl, &JobProgress) -> T,
) -> (JobSummary, T) {
    let (handle, progress) = (JobControl::default(), JobProgress::default());
    let cluster = MiniCluster::new(config);
    let run =
        cluster.run_with_control(graph, FailurePlan::none(), progress.clone(), handle.clone());
    let (summary, controlled) = tokio::time::timeout(Duration::from_secs(60), async {
        tokio::join!(run, control(&handle, &progress))
    })
    .await
    .expect("the job stops within a minute");
    (summary.expect("the job stops"), controlled)
}

/// Waits until the job's sources read `rows` rows and `checkpoints`
/// checkpoints completed.
async fn scanned(progress: &JobProgress, rows: u64, checkpoints: u64) {
    while progress.snapshot().rows_scanned < rows || progress.snapshot().checkpoints < checkpoints {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `graph`, stopping it with a savepoint into `dir` once its sources
/// read `rows` rows and `checkpoints` checkpoints completed (within a
/// minute).
async fn stop_after(
    graph: JobGraph,
    config: JobConfig,
    (rows, checkpoints): (u64, u64),
    dir: &str,
) -> JobSummary {
    let (summary, savepoint) = controlled(graph, config, async |control, progress| {
        scanned(progress, rows, checkpoints).await;
        control
            .stop(Some(SavepointTarget::Dir(dir.to_string())))
            .await
    })
    .await;
    let savepoint = savepoint
        .expect("the savepoint is taken")
        .expect("a savepoint");
    assert_eq!(summary.stopped, Some(Some(savepoint.clone())), "{summary}");
    assert!(
        summary.to_string().contains("stopped with a savepoint at"),
        "{summary}"
    );
    // What the tasks did until they were stopped.
    assert!(summary.vertices[0].metrics.rows_in >= rows, "{summary}");
    summary
}

/// Runs the job, stopping it with a savepoint into `dir` once a fifth of
/// its rows went through.
async fn stopped(dir: &str) -> (Vec<String>, JobSummary) {
    let config = streaming();
    let (graph, output) = job(2, &config, 41);
    let summary = stop_after(graph, config, (ROWS / 5, 0), dir).await;
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

/// An unbounded job: counts per key and 100 ms window of `seq`, whose
/// source has a split per subtask it started with.
fn unbounded(parallelism: usize, config: &JobConfig) -> (JobGraph, Collected) {
    windowed_job(
        parallelism,
        config,
        SequenceGenerator::new(None, 7),
        Window::tumble(Duration::from_millis(100)).expect("valid"),
    )
}

/// The `(window_start, n)` of every row of `output`.
fn window_counts(output: &Collected) -> Vec<(i64, i64)> {
    let mut counts = Vec::new();
    for batch in output.batches() {
        let column = |name: &str| {
            let array = batch.column_by_name(name).expect("a column");
            arrow::compute::cast(array, &arrow::datatypes::DataType::Int64).expect("casts")
        };
        let (starts, n) = (column("window_start"), column("n"));
        let (starts, n) = (
            starts.as_primitive::<Int64Type>(),
            n.as_primitive::<Int64Type>(),
        );
        counts.extend(
            starts
                .values()
                .iter()
                .copied()
                .zip(n.values().iter().copied()),
        );
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_job_resumed_on_more_subtasks_than_splits_goes_on() {
    let dirs = [
        tempfile::tempdir().expect("a directory"),
        tempfile::tempdir().expect("a directory"),
    ];
    let [first, second] = dirs.each_ref().map(|d| d.path().display().to_string());
    let mut config = streaming();
    config.checkpoint_interval = Some(Duration::from_millis(20));
    let (graph, before) = unbounded(1, &config);
    stop_after(graph, config.clone(), (20_000, 0), &first).await;
    // Resumed at 3: two of the source's subtasks read no split. They stay
    // up, idle: windows fire, checkpoints complete, a savepoint is taken.
    config.restore_from = Some(first);
    let (graph, after) = unbounded(3, &config);
    let summary = stop_after(graph, config, (20_000, 2), &second).await;
    let checkpoints = summary.checkpoints.expect("checkpoints");
    assert!(checkpoints.completed >= 2, "{summary}");
    // Every window of 100 sequence numbers once, in the one run or the
    // other, with its 100 rows, from the first on.
    let mut windows: Vec<(i64, i64)> = window_counts(&before);
    let resumed = window_counts(&after);
    assert!(!resumed.is_empty(), "windows fired after the resumption");
    windows.extend(resumed);
    let mut totals = std::collections::BTreeMap::new();
    for (start, n) in windows {
        *totals.entry(start).or_insert(0) += n;
    }
    let starts: Vec<i64> = totals.keys().copied().collect();
    let expected: Vec<i64> = (0..starts.len() as i64).map(|w| w * 100).collect();
    assert_eq!(starts, expected, "contiguous windows");
    assert!(totals.values().all(|&n| n == 100), "{totals:?}");
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

/// The files of the savepoint in `dir`: its metadata and the state files
/// it names.
fn savepoint_files(dir: &std::path::Path) -> BTreeSet<String> {
    let metadata: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("_metadata")).expect("a savepoint"))
            .expect("JSON");
    let mut files = BTreeSet::from(["_metadata".to_string()]);
    for task in metadata["vertices"]
        .as_array()
        .expect("vertices")
        .iter()
        .flat_map(|v| v["tasks"].as_array().expect("tasks"))
    {
        for file in task["operators"]
            .as_array()
            .expect("operators")
            .iter()
            .filter(|f| !f.is_null())
        {
            files.insert(file["path"].as_str().expect("a path").to_string());
        }
    }
    files
}

fn files_in(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .expect("a directory")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .to_string_lossy()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_replace_their_directory_or_go_under_the_configured_one() {
    let tmp = tempfile::tempdir().expect("a directory");
    let (named, foreign, parent) = (
        tmp.path().join("named"),
        tmp.path().join("foreign"),
        tmp.path().join("savepoints"),
    );
    std::fs::create_dir_all(&foreign).expect("creates");
    std::fs::write(foreign.join("_metadata"), "not weir's").expect("writes");
    let dir = |path: &std::path::Path| SavepointTarget::Dir(path.display().to_string());
    let config = streaming();
    let (graph, _) = unbounded(2, &config);
    let (_, (first, second)) = controlled(graph, config.clone(), async |control, progress| {
        scanned(progress, 5_000, 0).await;
        let e = control
            .savepoint(SavepointTarget::Configured)
            .await
            .expect_err("nowhere to go");
        assert!(
            e.to_string()
                .contains("execution.checkpointing.savepoint-dir"),
            "{e}"
        );
        let e = control
            .savepoint(dir(&foreign))
            .await
            .expect_err("not ours");
        assert!(e.to_string().contains("not a savepoint"), "{e}");
        let first = control.savepoint(dir(&named)).await.expect("a savepoint");
        assert_eq!(first, named.display().to_string());
        let first_files = savepoint_files(&named);
        scanned(progress, 10_000, 0).await;
        let second = control.savepoint(dir(&named)).await.expect("another");
        control.stop(None).await.expect("stops");
        (first_files, second)
    })
    .await;
    // The second replaced the first: its files only, none in common.
    assert_eq!(second, named.display().to_string());
    let files = savepoint_files(&named);
    assert_eq!(files_in(&named), files);
    assert!(first.len() > 1 && files.len() > 1, "state files: {files:?}");
    assert_eq!(first.intersection(&files).count(), 1, "only _metadata");
    assert_eq!(
        std::fs::read_to_string(foreign.join("_metadata")).expect("kept"),
        "not weir's"
    );

    // With a savepoint directory configured, each savepoint gets one of
    // its own under it, and a job resumes from it.
    let mut config = streaming();
    config.savepoint_dir = Some(parent.display().to_string());
    let (graph, _) = unbounded(2, &config);
    let (summary, taken) = controlled(graph, config.clone(), async |control, progress| {
        scanned(progress, 5_000, 0).await;
        let taken = control.savepoint(SavepointTarget::Configured).await;
        let stopped = control.stop(Some(SavepointTarget::Configured)).await;
        (
            taken.expect("a savepoint"),
            stopped.expect("stops").expect("a savepoint"),
        )
    })
    .await;
    let (taken, stopped) = taken;
    assert_ne!(taken, stopped);
    assert_eq!(summary.stopped, Some(Some(stopped.clone())));
    for url in [&taken, &stopped] {
        let path = std::path::Path::new(url);
        assert_eq!(path.parent(), Some(parent.as_path()), "{url}");
        assert!(
            path.file_name()
                .expect("a name")
                .to_string_lossy()
                .starts_with("savepoint-job-")
        );
        assert_eq!(files_in(path), savepoint_files(path));
    }
    config.restore_from = Some(stopped);
    let (graph, _) = unbounded(1, &config);
    let (summary, ()) = controlled(graph, config, async |control, progress| {
        scanned(progress, 1_000, 0).await;
        control.stop(None).await.expect("stops");
    })
    .await;
    assert!(summary.vertices[0].metrics.rows_in >= 1_000, "{summary}");
}
