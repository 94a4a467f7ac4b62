//! The embedded mini-cluster: a coordinator and one worker inside the
//! calling process, the default way jobs run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use weir_engine::graph::{JobGraph, RuntimeMode};
use weir_exchange::ShuffleRoot;
use weir_exchange::checkpoint_store::CheckpointStore;

use crate::checkpoint_coordinator::CheckpointCoordinator;
use crate::execution_graph::ExecutionGraph;
use crate::failover::{FailoverStrategy, RegionFailover, RestartAllFailover};
use crate::job_master::{JobMaster, JobSetup};
use crate::strategy::{EagerStrategy, LazyTopologicalStrategy, SchedulingStrategy};
use crate::{FailoverKind, FailurePlan, JobConfig, JobProgress, JobSummary, Result};

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
        let strategy: Box<dyn SchedulingStrategy> = match job.mode {
            RuntimeMode::Batch => Box::new(LazyTopologicalStrategy),
            RuntimeMode::Streaming => Box::new(EagerStrategy),
        };
        let failover: Box<dyn FailoverStrategy> = match self.config.failover {
            FailoverKind::Region => Box::new(RegionFailover),
            FailoverKind::RestartAll => Box::new(RestartAllFailover),
        };
        let job_id = new_job_id();
        let checkpoints = match (job.mode, self.config.checkpoint_interval) {
            (RuntimeMode::Streaming, Some(interval)) => Some(CheckpointCoordinator::new(
                CheckpointStore::try_new(&self.config.checkpoint_dir)?,
                job_id.clone(),
                interval,
                self.config.checkpoints_retained,
            )),
            _ => None,
        };
        let graph = ExecutionGraph::try_new(Arc::new(job))?;
        let root = ShuffleRoot::try_new(&self.config.shuffle_root)?;
        JobMaster::new(JobSetup {
            job_id: job_id.into(),
            graph,
            config: self.config.clone(),
            plan,
            root,
            strategy,
            failover,
            progress,
            checkpoints,
        })
        .run()
        .await
    }
}

/// A job id unique on this machine: time, process and a counter.
fn new_job_id() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!(
        "job-{millis:x}-{}-{}",
        std::process::id(),
        JOB_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
