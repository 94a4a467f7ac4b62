//! The embedded mini-cluster: a coordinator and one worker inside the
//! calling process, the default way jobs run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_engine::graph::{JobGraph, RuntimeMode};
use weir_exchange::ShuffleRoot;
use weir_exchange::checkpoint_store::CheckpointStore;

use crate::checkpoint_coordinator::CheckpointCoordinator;
use crate::deployment::JobRuntime;
use crate::execution_graph::ExecutionGraph;
use crate::failover::{FailoverStrategy, RegionFailover, RestartAllFailover};
use crate::injecting_executor::InjectingExecutor;
use crate::job_master::{JobMaster, JobSetup};
use crate::strategy::{EagerStrategy, LazyTopologicalStrategy, SchedulingStrategy};
use crate::task_executor::{InProcessExecutor, TaskExecutor};
use crate::{FailoverKind, FailurePlan, JobConfig, JobControl, JobProgress, JobSummary, Result};

static JOB_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Runs jobs in this process: batch jobs region by region (lazy
/// topological scheduling), streaming jobs all at once (eager).
#[derive(Debug, Clone, Default)]
pub struct MiniCluster {
    config: JobConfig,
}

impl MiniCluster {
    /// A mini-cluster whose worker offers `config.slots` slots.
    pub fn new(config: JobConfig) -> Self {
        Self { config }
    }

    /// The configuration jobs run with.
    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// Runs `job` to its end.
    ///
    /// # Errors
    /// When the job cannot be scheduled or fails for good.
    pub async fn run(&self, job: JobGraph) -> Result<JobSummary> {
        self.run_with_failures(job, FailurePlan::none()).await
    }

    /// Runs `job` with failures injected as `plan` says (tests).
    ///
    /// # Errors
    /// When the job cannot be scheduled or fails for good.
    pub async fn run_with_failures(&self, job: JobGraph, plan: FailurePlan) -> Result<JobSummary> {
        self.run_with(job, plan, JobProgress::default()).await
    }

    /// Runs `job` with failures injected as `plan` says
    /// ([`FailurePlan::none`] outside tests), keeping `progress` up to date
    /// as it goes (read it from another task).
    ///
    /// # Errors
    /// When the job cannot be scheduled or fails for good.
    pub async fn run_with(
        &self,
        job: JobGraph,
        plan: FailurePlan,
        progress: JobProgress,
    ) -> Result<JobSummary> {
        self.run_with_control(job, plan, progress, JobControl::default())
            .await
    }

    /// Runs `job` as [`run_with`](Self::run_with) does, taking requests
    /// (savepoints, stop, cancel) through `control` while it runs.
    ///
    /// # Errors
    /// When the job cannot be scheduled or restored, fails for good, or is
    /// cancelled.
    pub async fn run_with_control(
        &self,
        job: JobGraph,
        plan: FailurePlan,
        progress: JobProgress,
        control: JobControl,
    ) -> Result<JobSummary> {
        let job_id: Arc<str> = new_job_id().into();
        let master = job_master(
            &self.config,
            job,
            job_id,
            &plan,
            progress,
            control,
            |runtime| {
                let graph = Arc::clone(&runtime.graph);
                let in_process = InProcessExecutor::new(Arc::new(runtime));
                match plan.touches_tasks() {
                    true => Box::new(InjectingExecutor::new(in_process, plan.clone(), graph)),
                    false => Box::new(in_process),
                }
            },
        )
        .await?;
        master.run().await
    }
}

/// The job master of `job` as `job_id` under `config`: batch jobs
/// scheduled region by region (lazy topological), streaming jobs all at
/// once (eager), their attempts run by what `executor` makes of the job's
/// runtime.
///
/// # Errors
/// When the job's graph cannot be expanded, or its savepoint read.
pub(crate) async fn job_master(
    config: &JobConfig,
    job: JobGraph,
    job_id: Arc<str>,
    plan: &FailurePlan,
    progress: JobProgress,
    control: JobControl,
    executor: impl FnOnce(JobRuntime) -> Box<dyn TaskExecutor>,
) -> Result<JobMaster> {
    let strategy: Box<dyn SchedulingStrategy> = match job.mode {
        RuntimeMode::Batch => Box::new(LazyTopologicalStrategy),
        RuntimeMode::Streaming => Box::new(EagerStrategy),
    };
    let failover: Box<dyn FailoverStrategy> = match config.failover {
        FailoverKind::Region => Box::new(RegionFailover),
        FailoverKind::RestartAll => Box::new(RestartAllFailover),
    };
    // Every streaming job can take savepoints; periodic checkpoints when
    // an interval is set.
    let checkpoints = match job.mode {
        RuntimeMode::Streaming => Some(CheckpointCoordinator::new(
            CheckpointStore::try_new(&config.checkpoint_dir, &config.store_options)?,
            job_id.to_string(),
            config.checkpoint_interval,
            config.checkpoints_retained,
            config.checkpoint_timeout,
        )),
        RuntimeMode::Batch => None,
    };
    let restore = match &config.restore_from {
        Some(url) => {
            let (store, metadata) =
                CheckpointCoordinator::read_savepoint(url, &config.store_options).await?;
            Some((store, metadata.fit(&job, config.allow_non_restored)?))
        }
        None => None,
    };
    let graph = Arc::new(ExecutionGraph::try_new(Arc::new(job))?);
    let root = ShuffleRoot::try_new(&config.shuffle_root, &config.store_options)?;
    let control = control.start(&job_id);
    let runtime = JobRuntime::new(
        Arc::clone(&job_id),
        Arc::clone(&graph),
        root.clone(),
        config,
        checkpoints
            .as_ref()
            .map(|c| (c.store().clone(), c.job_dir().to_string())),
    );
    Ok(JobMaster::new(JobSetup {
        job_id,
        graph,
        config: config.clone(),
        plan: plan.clone(),
        root,
        strategy,
        failover,
        progress,
        checkpoints,
        restore,
        control,
        executor: executor(runtime),
    }))
}

/// A job id unique on this machine: time, process and a counter.
pub(crate) fn new_job_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "job-{millis:x}-{}-{}",
        std::process::id(),
        JOB_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
