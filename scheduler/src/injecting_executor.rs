//! Failure injection as a wrapper around a task executor, so that the job
//! master, the executors and the tasks carry no failure plan: a test's
//! [`FailurePlan`] fails tasks at exact records (through a [`TaskHook`])
//! and kills them once they made some progress.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::task::{AbortHandle, JoinSet};
use weir_engine::task::{LiveMetrics, TaskHook, TaskInfo};

use crate::deployment::AttemptPlan;
use crate::execution_graph::ExecutionGraph;
use crate::failure_plan::FailurePlan;
use crate::task_executor::{TaskExecutor, TaskOutcome};

/// A test hook: fails the attempts a [`FailurePlan`] names at the record
/// it says ([`weir_engine::Error::InjectedFailure`], from inside the task),
/// and kills those it names once they have read and written as many
/// records as it says, wherever they are then, reporting them failed with
/// [`weir_engine::Error::InjectedKill`].
pub struct InjectingExecutor<E> {
    inner: E,
    plan: FailurePlan,
    /// The job, to name the tasks killed.
    graph: Arc<ExecutionGraph>,
    /// The kills waiting for their attempt to go far enough.
    kills: JoinSet<(usize, u32, weir_engine::Error)>,
    /// The kill armed for each subtask, with the attempt it kills.
    armed: HashMap<usize, (u32, AbortHandle)>,
}

impl<E: TaskExecutor> InjectingExecutor<E> {
    /// Fails and kills what `plan` says among the attempts `inner` runs of
    /// the job of `graph`.
    pub fn new(inner: E, plan: FailurePlan, graph: Arc<ExecutionGraph>) -> Self {
        Self {
            inner,
            plan,
            graph,
            kills: JoinSet::new(),
            armed: HashMap::new(),
        }
    }

    fn disarm(&mut self, subtask: usize) {
        if let Some((_, kill)) = self.armed.remove(&subtask) {
            kill.abort();
        }
    }
}

#[async_trait]
impl<E: TaskExecutor> TaskExecutor for InjectingExecutor<E> {
    fn deploy(&mut self, mut plans: Vec<AttemptPlan>) {
        for plan in &mut plans {
            self.disarm(plan.subtask);
            let id = plan.id;
            if let Some(at) = self.plan.record_failure(id.vertex, id.index, plan.attempt) {
                plan.handles.hook = Some(Arc::new(FailAtRecord(at)));
            }
            if let Some(at) = self.plan.kill(id.vertex, id.index, plan.attempt) {
                let (subtask, number) = (plan.subtask, plan.attempt);
                let vertex = self.graph.job.vertex(id.vertex);
                let task = format!(
                    "{} ({}) [{}/{}] attempt {number}",
                    vertex.name,
                    id.vertex,
                    id.index + 1,
                    vertex.parallelism
                );
                let metrics = plan.handles.metrics.clone();
                let kill = self.kills.spawn(async move {
                    let records = records_reach(&metrics, at).await;
                    let killed = weir_engine::Error::InjectedKill { task, records };
                    (subtask, number, killed)
                });
                self.armed.insert(subtask, (number, kill));
            }
        }
        self.inner.deploy(plans);
    }

    fn cancel(&mut self, subtask: usize) {
        self.disarm(subtask);
        self.inner.cancel(subtask);
    }

    async fn cancel_all(&mut self) {
        self.armed.clear();
        self.kills.abort_all();
        while self.kills.join_next().await.is_some() {}
        self.inner.cancel_all().await;
    }

    fn is_idle(&self) -> bool {
        self.inner.is_idle()
    }

    fn waiting(&self) -> usize {
        self.inner.waiting()
    }

    fn has_lost(&self, worker: &str) -> bool {
        self.inner.has_lost(worker)
    }

    async fn next_outcome(&mut self) -> Option<TaskOutcome> {
        loop {
            tokio::select! {
                outcome = self.inner.next_outcome() => {
                    if let Some(outcome) = &outcome
                        && matches!(
                            self.armed.get(&outcome.subtask),
                            Some((armed, _)) if *armed == outcome.attempt
                        )
                    {
                        self.disarm(outcome.subtask);
                    }
                    return outcome;
                }
                Some(Ok((subtask, attempt, killed))) = self.kills.join_next(),
                    if !self.kills.is_empty() =>
                {
                    // A kill that went off as its attempt was cancelled
                    // (and another deployed) kills nothing.
                    if !matches!(self.armed.get(&subtask), Some((armed, _)) if *armed == attempt) {
                        continue;
                    }
                    self.armed.remove(&subtask);
                    self.inner.cancel(subtask);
                    return Some(TaskOutcome {
                        subtask,
                        attempt,
                        result: Err(killed),
                        host: None,
                    });
                }
            }
        }
    }
}

/// Waits until a task has read and written `at` records together (its
/// live counts, looked at every millisecond), and returns how many.
async fn records_reach(metrics: &LiveMetrics, at: u64) -> u64 {
    loop {
        let now = metrics.snapshot();
        let records = now.rows_in + now.rows_out;
        if records >= at {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Fails its task when the task's input count reaches the record it holds
/// (1-based).
#[derive(Debug)]
struct FailAtRecord(u64);

impl TaskHook for FailAtRecord {
    fn records_in(&self, task: &TaskInfo, before: u64, after: u64) -> weir_engine::Result<()> {
        match before < self.0 && self.0 <= after {
            true => Err(weir_engine::Error::InjectedFailure {
                task: task.to_string(),
                record: self.0,
            }),
            false => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use weir_engine::graph::VertexId;

    use super::*;
    use crate::deployment::JobRuntime;
    use crate::task_executor::InProcessExecutor;
    use crate::task_executor::tests::{numbers, outcome, plan};

    /// The attempts of the job of `runtime`, run in this process, failed
    /// and killed as `failures` says.
    fn injecting(
        runtime: Arc<JobRuntime>,
        failures: &FailurePlan,
    ) -> InjectingExecutor<InProcessExecutor> {
        let graph = Arc::clone(&runtime.graph);
        InjectingExecutor::new(InProcessExecutor::new(runtime), failures.clone(), graph)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_killing_hook_kills_the_attempts_its_plan_names() {
        let failures = FailurePlan::none().kill_task_at(VertexId(0), 0, 1, 5_000);
        let killing = |runtime| injecting(runtime, &failures);
        // Attempt 0 is not named: it ends as it would.
        let mut executor = killing(numbers(Some(20_000)));
        executor.deploy(plan(0));
        let ended = outcome(&mut executor).await.expect("reported");
        assert!(ended.result.is_ok());
        // Attempt 1 is killed once it read and wrote 5,000 records.
        let mut executor = killing(numbers(None));
        executor.deploy(plan(1));
        let killed = outcome(&mut executor).await.expect("reported");
        assert_eq!((killed.subtask, killed.attempt), (0, 1));
        match killed.result {
            Err(weir_engine::Error::InjectedKill { records, task }) => {
                assert!(records >= 5_000);
                assert!(task.ends_with("[1/1] attempt 1"), "{task}");
            }
            other => panic!("not killed: {other:?}"),
        }
        // The killed attempt stops, unreported.
        assert!(outcome(&mut executor).await.is_none());
        assert!(executor.is_idle());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_hook_fails_the_attempts_its_plan_names_at_their_record() {
        let failures = FailurePlan::none().fail_task(VertexId(0), 0, 1, 1_234);
        let failing = |runtime| injecting(runtime, &failures);
        let mut executor = failing(numbers(Some(5_000)));
        executor.deploy(plan(0));
        let ended = outcome(&mut executor).await.expect("reported");
        assert_eq!(ended.result.expect("attempt 0 runs").metrics.rows_in, 5_000);
        let mut executor = failing(numbers(Some(5_000)));
        executor.deploy(plan(1));
        let failed = outcome(&mut executor).await.expect("reported");
        match failed.result {
            Err(weir_engine::Error::InjectedFailure { record, task }) => {
                assert_eq!(record, 1_234);
                assert!(task.contains("attempt 1"), "{task}");
            }
            other => panic!("not failed: {other:?}"),
        }
    }
}
