//! The seam between a job master and whatever runs its subtasks. A task
//! executor deploys the attempts of a region's subtasks (as the job
//! master planned them), cancels them, and reports how each attempt it ran
//! ended; the job master decides everything else (what to deploy, when,
//! and what an outcome means).
//!
//! The embedded mini-cluster runs attempts in this process
//! ([`InProcessExecutor`]); a coordinator runs them on its workers
//! ([`crate::cluster::remote`]); tests wrap an executor to fail or kill
//! attempts ([`crate::injecting_executor::InjectingExecutor`]), so that
//! failure injection stays out of the production path.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use futures::FutureExt;
use tokio::task::{AbortHandle, JoinSet};
use weir_engine::task::{TaskReport, run_task};

use crate::deployment::{Attempt, AttemptPlan, JobRuntime};
use crate::partition_tracker::PartitionHost;

/// How an attempt of a subtask ended.
#[derive(Debug)]
pub struct TaskOutcome {
    /// The subtask, by its index in the execution graph.
    pub subtask: usize,
    /// Which attempt of it ended.
    pub attempt: u32,
    /// What it reported, or why it failed.
    pub result: weir_engine::Result<TaskReport>,
    /// The worker it ran on, which holds the blocking partitions it wrote
    /// unless they went to a shared root; `None` in this process.
    pub host: Option<PartitionHost>,
}

/// Runs the attempts of a job's subtasks.
///
/// Contract: every attempt deployed and not cancelled is reported once by
/// [`next_outcome`](TaskExecutor::next_outcome); a cancelled one is not
/// reported (or, if it ended first, may be: the job master ignores the
/// outcome of an attempt it no longer runs), but its end wakes
/// `next_outcome` with `None`.
#[async_trait]
pub trait TaskExecutor: Send + Sync {
    /// Starts the attempts of subtasks that run together (a pipelined
    /// region).
    fn deploy(&mut self, plans: Vec<AttemptPlan>);

    /// Stops the running attempt of `subtask`, wherever it is.
    fn cancel(&mut self, subtask: usize);

    /// Stops every running attempt and waits until they are gone.
    async fn cancel_all(&mut self);

    /// Whether no attempt runs.
    fn is_idle(&self) -> bool;

    /// How many attempts deployed wait for a slot to run in (never, in
    /// this process).
    fn waiting(&self) -> usize {
        0
    }

    /// The next attempt that ended, `None` for one that was cancelled;
    /// waits forever while none runs. Cancel-safe: dropped before it is
    /// ready, it loses no outcome.
    async fn next_outcome(&mut self) -> Option<TaskOutcome>;

    /// Whether `worker`, which some outcome named as its host, is gone
    /// with what it held. Never, for attempts run in this process.
    fn has_lost(&self, worker: &str) -> bool {
        let _ = worker;
        false
    }
}

/// Runs attempts as tasks of this process's tokio runtime.
pub struct InProcessExecutor {
    runtime: Arc<JobRuntime>,
    tasks: JoinSet<TaskOutcome>,
    /// The attempt of each subtask that runs, and how to stop it.
    running: HashMap<usize, (u32, AbortHandle)>,
}

impl InProcessExecutor {
    /// Runs the attempts of the job of `runtime`.
    pub fn new(runtime: Arc<JobRuntime>) -> Self {
        Self {
            runtime,
            tasks: JoinSet::new(),
            running: HashMap::new(),
        }
    }

    /// Starts an attempt made ready to run.
    pub fn start(&mut self, attempt: Attempt) {
        let Attempt {
            subtask,
            attempt,
            deployment,
        } = attempt;
        let handle = self.tasks.spawn(async move {
            let result = AssertUnwindSafe(run_task(deployment))
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(panic_error(panic)));
            TaskOutcome {
                subtask,
                attempt,
                result,
                host: None,
            }
        });
        if let Some((_, earlier)) = self.running.insert(subtask, (attempt, handle)) {
            earlier.abort();
        }
    }
}

#[async_trait]
impl TaskExecutor for InProcessExecutor {
    fn deploy(&mut self, plans: Vec<AttemptPlan>) {
        for attempt in self.runtime.materialize(plans) {
            self.start(attempt);
        }
    }

    fn cancel(&mut self, subtask: usize) {
        if let Some((_, handle)) = self.running.remove(&subtask) {
            handle.abort();
        }
    }

    async fn cancel_all(&mut self) {
        self.running.clear();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }

    fn is_idle(&self) -> bool {
        self.tasks.is_empty()
    }

    async fn next_outcome(&mut self) -> Option<TaskOutcome> {
        match self.tasks.join_next().await {
            Some(Ok(outcome)) => {
                // The end of an earlier attempt leaves the later one be.
                if self
                    .running
                    .get(&outcome.subtask)
                    .is_some_and(|(attempt, _)| *attempt == outcome.attempt)
                {
                    self.running.remove(&outcome.subtask);
                }
                Some(outcome)
            }
            Some(Err(e)) if e.is_cancelled() => None,
            // Panics are caught inside the task: only a bug of tokio's
            // gets here.
            Some(Err(e)) => panic!("a task could not be joined: {e}"),
            None => std::future::pending().await,
        }
    }
}

fn panic_error(panic: Box<dyn std::any::Any + Send>) -> weir_engine::Error {
    weir_engine::Error::Operator {
        operator: "task".to_string(),
        message: format!(
            "panicked: {}",
            weir_engine::cpu::panic_message(panic.as_ref())
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use weir_engine::graph::{JobBuilder, ShuffleMode, VertexId};
    use weir_engine::sinks::CollectSink;
    use weir_engine::sources::SequenceGenerator;
    use weir_exchange::ShuffleRoot;

    use super::*;
    use crate::deployment::AttemptHandles;
    use crate::execution_graph::ExecutionGraph;
    use crate::{JobConfig, SubtaskId};

    /// A job of one subtask: `rows` numbers (endless without) into a
    /// collecting sink.
    pub(crate) fn numbers(rows: Option<u64>) -> Arc<JobRuntime> {
        let mut builder = JobBuilder::new("numbers").with_parallelism(1);
        let source = builder.source(Arc::new(SequenceGenerator::new(rows, 3)));
        builder.sink(Arc::new(CollectSink::new().0), [source.forward()]);
        let job = builder.build(ShuffleMode::AllPipelined, 1).expect("builds");
        let graph = ExecutionGraph::try_new(Arc::new(job)).expect("an execution graph");
        let root = ShuffleRoot::try_new(
            &std::env::temp_dir().display().to_string(),
            &Default::default(),
        )
        .expect("a root");
        Arc::new(JobRuntime::new(
            "numbers".into(),
            Arc::new(graph),
            root,
            &JobConfig::default(),
            None,
        ))
    }

    /// Attempt `attempt` of the job's one subtask.
    pub(crate) fn plan(attempt: u32) -> Vec<AttemptPlan> {
        vec![AttemptPlan {
            subtask: 0,
            id: SubtaskId {
                vertex: VertexId(0),
                index: 0,
            },
            attempt,
            reads: Default::default(),
            memory_budget: usize::MAX,
            restore: None,
            handles: AttemptHandles::default(),
        }]
    }

    pub(crate) async fn outcome(executor: &mut impl TaskExecutor) -> Option<TaskOutcome> {
        tokio::time::timeout(Duration::from_secs(30), executor.next_outcome())
            .await
            .expect("an outcome within 30 s")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_process_attempts_report_how_they_ended_unless_cancelled() {
        let mut executor = InProcessExecutor::new(numbers(Some(1000)));
        assert!(executor.is_idle());
        executor.deploy(plan(3));
        let ended = outcome(&mut executor).await.expect("reported");
        assert_eq!((ended.subtask, ended.attempt), (0, 3));
        assert_eq!(ended.result.expect("succeeds").metrics.rows_in, 1000);
        assert!(executor.is_idle());
        // Cancelled: its end wakes the caller, and is not reported.
        let mut executor = InProcessExecutor::new(numbers(None));
        executor.deploy(plan(4));
        executor.cancel(0);
        assert!(outcome(&mut executor).await.is_none());
        assert!(executor.is_idle());
    }
}
