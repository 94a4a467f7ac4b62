//! Checkpoints of streaming jobs on the mini-cluster: barriers injected at
//! the sources and aligned downstream, window state snapshotted to the
//! checkpoint directory, and a job that fails resuming from its latest
//! completed checkpoint. A seeded sequence through keyed window state into
//! a sink that commits per checkpoint gives exactly the rows of the run
//! without failures, however often and wherever tasks fail.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::test_config;
use weir_engine::SinkFactory;
use weir_engine::dataframe::Dataflow;
use weir_engine::event_time::WatermarkStrategy;
use weir_engine::expr::aggregate::{count, max, sum};
use weir_engine::expr::col;
use weir_engine::graph::{JobGraph, RuntimeMode};
use weir_engine::operators::Window;
use weir_engine::sinks::{CollectSink, Collected, RowsFrom, RowsOut};
use weir_engine::sources::SequenceGenerator;
use weir_engine::testing::{Rng, sorted_rows};
use weir_scheduler::failure_plan::PartitionDamage;
use weir_scheduler::{FailurePlan, JobConfig, JobSummary, MiniCluster};

const ROWS: u64 = 400_000;

/// Per key and window of 2,000 sequence numbers (as milliseconds): the
/// count, sum and largest of the values.
fn job(window: Window, config: &JobConfig) -> (JobGraph, Collected) {
    let (sink, output) = CollectSink::new();
    (job_into(window, config, Arc::new(sink)), output)
}

/// The job of [`job`], writing into `sink`.
fn job_into(window: Window, config: &JobConfig, sink: Arc<dyn SinkFactory>) -> JobGraph {
    let flow = Dataflow::new("sequence-windows").with_parallelism(2);
    let generator = SequenceGenerator::new(Some(ROWS), 37).with_batch_rows(500);
    flow.read_with_watermarks(
        Arc::new(generator),
        WatermarkStrategy::bounded_out_of_orderness("seq", Duration::ZERO),
    )
    .and_then(|df| {
        df.window_aggregate(
            window,
            "seq",
            vec![col("key")],
            vec![
                count(col("value")).alias("n"),
                sum(col("value")).alias("total"),
                max(col("seq")).alias("last"),
            ],
        )
    })
    .expect("plans")
    .write(sink);
    config.build(flow.builder()).expect("builds")
}

fn streaming(checkpoints: &std::path::Path) -> JobConfig {
    let mut config = test_config(4);
    config.runtime_mode = Some(RuntimeMode::Streaming);
    config.checkpoint_interval = Some(Duration::from_millis(15));
    config.checkpoint_dir = checkpoints.display().to_string();
    config.checkpoints_retained = 2;
    config
}

async fn run(window: Window, config: JobConfig, plan: FailurePlan) -> (Vec<String>, JobSummary) {
    let (graph, output) = job(window, &config);
    let summary = MiniCluster::new(config)
        .run_with_failures(graph, plan)
        .await
        .expect("the job survives");
    (sorted_rows(&output.batches()), summary)
}

/// The rows of `window`'s job run in batch mode, without failures.
async fn batch_rows(window: Window) -> Vec<String> {
    let mut config = test_config(4);
    config.runtime_mode = Some(RuntimeMode::Batch);
    run(window, config, FailurePlan::none()).await.0
}

fn windows() -> [Window; 2] {
    [
        Window::tumble(Duration::from_millis(2000)).expect("valid"),
        Window::session(Duration::from_millis(40)).expect("valid"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_complete_and_are_cleaned_up() {
    let dir = tempfile::tempdir().expect("a directory");
    let (rows, summary) = run(windows()[0], streaming(dir.path()), FailurePlan::none()).await;
    assert!(!rows.is_empty());
    let stats = summary.checkpoints.expect("checkpoints were taken");
    assert!(stats.completed >= 1, "{stats:?}");
    assert!(summary.to_string().contains("checkpoints:"), "{summary}");
    // A job that finished keeps none.
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("lists").collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_checkpoints_are_tolerated_or_fail_the_job_over() {
    let window = windows()[0];
    let dir = tempfile::tempdir().expect("a directory");
    let (expected, _) = run(window, streaming(dir.path()), FailurePlan::none()).await;
    // Metadata that cannot be written fails the checkpoint, not the job.
    let failing = || {
        FailurePlan::none()
            .fail_checkpoint_metadata(2)
            .fail_checkpoint_metadata(3)
    };
    // Two in a row tolerated: the job goes on without a restart.
    let dir = tempfile::tempdir().expect("a directory");
    let mut config = streaming(dir.path());
    config.tolerable_failed_checkpoints = 2;
    let (rows, summary) = run(window, config, failing()).await;
    assert_eq!(rows, expected, "tolerated");
    assert_eq!(summary.restarts, 0, "{summary}");
    let stats = summary.checkpoints.expect("checkpoints were taken");
    assert!(stats.failed >= 2 && stats.completed >= 2, "{stats:?}");
    // None tolerated (Flink's default): the job fails over to its latest
    // completed checkpoint under its restart strategy, and its rows are
    // the same.
    let dir = tempfile::tempdir().expect("a directory");
    let (rows, summary) = run(window, streaming(dir.path()), failing()).await;
    assert_eq!(rows, expected, "failed over");
    assert!(summary.restarts >= 1, "{summary}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).expect("lists").collect();
    assert!(left.is_empty(), "no checkpoint files left: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_resume_from_checkpoints_exactly_once() {
    for window in windows() {
        let batch = batch_rows(window).await;
        let mut rng = Rng::new(7);
        let mut resumed = 0;
        for round in 0..3 {
            let dir = tempfile::tempdir().expect("a directory");
            let config = streaming(dir.path());
            let (graph, _) = job(window, &config);
            // Fail a task of a random vertex at a random record, twice.
            let mut plan = FailurePlan::none();
            for attempt in 0..2 {
                let vertex = &graph.vertices[rng.below(graph.vertices.len() as u64) as usize];
                let subtask = rng.below(vertex.parallelism as u64) as u32;
                let at = 20_000 + rng.below(ROWS / 3);
                plan = plan.fail_task(vertex.id, subtask, attempt, at);
            }
            let (rows, summary) = run(window, config, plan).await;
            assert!(summary.restarts >= 1, "{window} round {round}: {summary}");
            assert_eq!(rows.len(), batch.len(), "{window} round {round}: {summary}");
            assert_eq!(rows, batch, "{window} round {round}: {summary}");
            // The last attempt of the sources resumed from a checkpoint, not
            // from the first row.
            if summary.vertices[0].metrics.rows_in < ROWS {
                resumed += 1;
            }
        }
        assert!(resumed > 0, "{window}: no run resumed from a checkpoint");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_checkpoint_falls_back_to_the_one_before() {
    let window = windows()[0];
    let batch = batch_rows(window).await;
    for damage in [PartitionDamage::Corrupt, PartitionDamage::Delete] {
        let dir = tempfile::tempdir().expect("a directory");
        let config = streaming(dir.path());
        let (graph, _) = job(window, &config);
        // The window vertex fails late enough for two checkpoints to have
        // completed; the latest is damaged before the restart.
        let plan = FailurePlan::none()
            .fail_task(graph.vertices[1].id, 0, 0, ROWS / 3)
            .damage_restored_checkpoint(damage);
        let (mut rows, summary) = run(window, config, plan).await;
        assert!(summary.restarts >= 2, "{damage:?}: {summary}");
        // What the damaged checkpoint had committed comes again from the
        // one before: every window is there with its values, some twice.
        let before = rows.len();
        rows.dedup();
        assert!(before >= rows.len(), "{damage:?}");
        assert_eq!(rows.len(), batch.len(), "{damage:?}: {summary}");
        assert!(
            rows == batch,
            "{damage:?}: other windows than without failures"
        );
    }
    // With a single checkpoint kept there is nothing to fall back to: the
    // job fails, saying so, rather than start over from nothing.
    let dir = tempfile::tempdir().expect("a directory");
    let mut config = streaming(dir.path());
    config.checkpoints_retained = 1;
    let (graph, _) = job(window, &config);
    let plan = FailurePlan::none()
        .fail_task(graph.vertices[1].id, 0, 0, ROWS / 3)
        .damage_restored_checkpoint(PartitionDamage::Corrupt);
    let e = MiniCluster::new(config)
        .run_with_failures(graph, plan)
        .await
        .expect_err("nothing to fall back to");
    let message = e.to_string();
    assert!(
        message.contains("cannot be restored")
            && message.contains("checksum")
            && message.contains("not restarting from nothing"),
        "{message}"
    );
}

/// The rows a delivering sink handed over, in the order it did.
#[derive(Debug, Default)]
struct Delivered(std::sync::Mutex<Vec<arrow::array::RecordBatch>>);

impl RowsOut for Delivered {
    fn deliver(&self, _: RowsFrom, batch: &arrow::array::RecordBatch) -> std::io::Result<()> {
        self.0.lock().expect("not poisoned").push(batch.clone());
        Ok(())
    }
}

impl Delivered {
    fn rows(&self) -> Vec<String> {
        sorted_rows(&self.0.lock().expect("not poisoned"))
    }
}

/// `window`'s job into a delivering sink (at checkpoints when
/// `checkpointed`), and what it delivers.
fn delivering_job(
    window: Window,
    config: &JobConfig,
    checkpointed: bool,
) -> (JobGraph, Arc<Delivered>) {
    let delivered = Arc::new(Delivered::default());
    let sink = CollectSink::delivering(Arc::clone(&delivered) as Arc<dyn RowsOut>, checkpointed);
    (job_into(window, config, Arc::new(sink)), delivered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_delivered_at_checkpoints_arrive_once_through_failures() {
    let window = windows()[0];
    let batch = batch_rows(window).await;
    let dir = tempfile::tempdir().expect("a directory");
    let config = streaming(dir.path());
    let (graph, delivered) = delivering_job(window, &config, true);
    // The windows (and the sink chained to them) fail after some rows
    // were delivered, one subtask after the other.
    let plan = FailurePlan::none()
        .fail_task(graph.vertices[1].id, 0, 0, ROWS / 4)
        .fail_task(graph.vertices[1].id, 1, 1, ROWS / 5);
    let summary = MiniCluster::new(config)
        .run_with_failures(graph, plan)
        .await
        .expect("the job survives");
    assert!(summary.restarts >= 2, "{summary}");
    assert_eq!(delivered.rows(), batch, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_delivered_on_arrival_are_never_delivered_twice() {
    let window = windows()[0];
    let mut config = test_config(4);
    config.runtime_mode = Some(RuntimeMode::Streaming);
    let expected = run(window, config.clone(), FailurePlan::none()).await.0;
    // A failure before any row was delivered restarts the job as usual.
    let (graph, delivered) = delivering_job(window, &config, false);
    let plan = FailurePlan::none().fail_task(graph.vertices[0].id, 0, 0, 500);
    let summary = MiniCluster::new(config.clone())
        .run_with_failures(graph, plan)
        .await
        .expect("the job survives");
    assert_eq!(summary.restarts, 1, "{summary}");
    assert_eq!(delivered.rows(), expected, "{summary}");
    // After rows were delivered, a restart would deliver them again: the
    // job fails, saying why, with each row delivered at most once.
    let (graph, delivered) = delivering_job(window, &config, false);
    let plan = FailurePlan::none().fail_task(graph.vertices[1].id, 0, 0, ROWS / 3);
    let e = MiniCluster::new(config)
        .run_with_failures(graph, plan)
        .await
        .expect_err("cannot restart");
    assert!(
        e.to_string()
            .contains("restarted after its rows were printed"),
        "{e}"
    );
    let rows = delivered.rows();
    assert!(!rows.is_empty());
    let mut once = rows.clone();
    once.dedup();
    assert_eq!(once, rows, "no row twice");
    assert!(rows.iter().all(|r| expected.binary_search(r).is_ok()));
}

/// A collecting sink whose subtasks' first attempts cannot prepare
/// checkpoint `in_tasks`, or take [`STALL`] to prepare checkpoint
/// `stalls`, and which cannot prepare the commit of checkpoint `in_job`
/// once every task acknowledged it.
#[derive(Debug)]
struct Refusing {
    inner: CollectSink,
    in_tasks: u64,
    stalls: u64,
    in_job: u64,
}

struct RefusingWriter {
    inner: Box<dyn weir_engine::Sink>,
    refuses: Option<u64>,
    stalls: Option<u64>,
}

/// How long a stalling sink subtask takes to prepare its checkpoint.
const STALL: Duration = Duration::from_millis(600);

#[async_trait::async_trait]
impl SinkFactory for Refusing {
    fn name(&self) -> String {
        "refusing".to_string()
    }

    fn create(
        &self,
        task: &weir_engine::TaskInfo,
    ) -> weir_engine::Result<Box<dyn weir_engine::Sink>> {
        Ok(Box::new(RefusingWriter {
            inner: self.inner.create(task)?,
            refuses: (task.attempt == 0).then_some(self.in_tasks),
            stalls: (task.attempt == 0).then_some(self.stalls),
        }))
    }

    async fn prepare_checkpoint_commit(
        &self,
        commit: &weir_engine::CheckpointCommit<'_>,
    ) -> weir_engine::Result<()> {
        if commit.checkpoint == self.in_job {
            return Err(weir_engine::Error::Checkpoint("injected".to_string()));
        }
        self.inner.prepare_checkpoint_commit(commit).await
    }

    async fn commit_checkpoint(
        &self,
        commit: &weir_engine::CheckpointCommit<'_>,
    ) -> weir_engine::Result<()> {
        self.inner.commit_checkpoint(commit).await
    }
}

#[async_trait::async_trait]
impl weir_engine::Sink for RefusingWriter {
    async fn write_batch(&mut self, batch: arrow::array::RecordBatch) -> weir_engine::Result<()> {
        self.inner.write_batch(batch).await
    }

    async fn finish(&mut self) -> weir_engine::Result<()> {
        self.inner.finish().await
    }

    async fn prepare_commit(
        &mut self,
        checkpoint: u64,
    ) -> weir_engine::Result<Option<serde_json::Value>> {
        if self.refuses == Some(checkpoint) {
            return Err(weir_engine::Error::Checkpoint("injected".to_string()));
        }
        if self.stalls == Some(checkpoint) {
            tokio::time::sleep(STALL).await;
        }
        self.inner.prepare_commit(checkpoint).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_checkpoint_failure_declines_the_checkpoint() {
    let window = windows()[0];
    let dir = tempfile::tempdir().expect("a directory");
    let (expected, _) = run(window, streaming(dir.path()), FailurePlan::none()).await;
    // State uploads that fail, a sink's subtasks that cannot prepare, a
    // sink's subtasks slower than the checkpoint timeout, a sink that
    // cannot prepare the job's commit: checkpoint 3 each time.
    let kinds: [(&str, FailurePlan, [u64; 3]); 4] = [
        (
            "state uploads",
            FailurePlan::none().fail_checkpoint_uploads(3),
            [0, 0, 0],
        ),
        ("sink subtasks", FailurePlan::none(), [3, 0, 0]),
        ("slow sink subtasks", FailurePlan::none(), [0, 3, 0]),
        ("sink commit", FailurePlan::none(), [0, 0, 3]),
    ];
    for (kind, plan, [in_tasks, stalls, in_job]) in kinds {
        for tolerable in [1, 0] {
            let dir = tempfile::tempdir().expect("a directory");
            let mut config = streaming(dir.path());
            config.tolerable_failed_checkpoints = tolerable;
            // The stalled checkpoint expires; the next, triggered as it
            // does, completes once the stall is over.
            if stalls > 0 {
                config.checkpoint_timeout = STALL * 2 / 3;
            }
            let (sink, output) = CollectSink::new();
            let sink = Refusing {
                inner: sink,
                in_tasks,
                stalls,
                in_job,
            };
            let graph = job_into(window, &config, Arc::new(sink));
            let summary = MiniCluster::new(config)
                .run_with_failures(graph, plan.clone())
                .await
                .expect("the job survives");
            let what = format!("{kind}, {tolerable} tolerated: {summary}");
            assert_eq!(sorted_rows(&output.batches()), expected, "{what}");
            let stats = summary.checkpoints.expect("checkpoints were taken");
            assert!(stats.failed >= 1, "{what}");
            // Tolerated, the job goes on; else it fails over once.
            assert_eq!(summary.restarts, u32::from(tolerable == 0), "{what}");
            let left: Vec<_> = std::fs::read_dir(dir.path()).expect("lists").collect();
            assert!(left.is_empty(), "{what}: files left: {left:?}");
        }
    }
}
