//! The job master: drives one job from deployment to its end — scheduling
//! regions, tracking partitions, and failing over.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use object_store::local::LocalFileSystem;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use weir_engine::Boundedness;
use weir_engine::checkpoint::{CheckpointAck, TaskRestore};
use weir_engine::graph::ExchangeMode;
use weir_engine::task::{Counters, LiveMetrics, TaskReport};
use weir_exchange::ResultPartitionId;
use weir_exchange::ShuffleRoot;
use weir_exchange::event::Barrier;
use weir_exchange::job_owner::{self, JobOwner};

use crate::causes_first::CausesFirst;
use crate::checkpoint_coordinator::{
    AckOutcome, CheckpointCoordinator, CheckpointMetadata, SavepointReply, SavepointRequest,
};
use crate::deployment::{AttemptHandles, AttemptPlan};
use crate::execution_graph::{ExecutionGraph, PartitionKey};
use crate::failover::restart::RestartTracker;
use crate::failover::{FailoverStrategy, FailoverView};
use crate::failure_plan::{FailurePlan, PartitionDamage};
use crate::job_control::{ControlRequest, SavepointTarget};
use crate::partition_tracker::PartitionTracker;
use crate::progress::JobProgress;
use crate::region::RegionId;
use crate::region_scheduler::RegionScheduler;
use crate::sink_commit::SinkCommits;
use crate::slot::SlotPool;
use crate::strategy::SchedulingStrategy;
use crate::summary::{JobSummary, RegionEvent, RegionEventKind, VertexSummary};
use crate::task_executor::{TaskExecutor, TaskOutcome};
use crate::{Error, JobConfig, Result, SubtaskId};

pub(crate) struct JobMaster {
    job_id: Arc<str>,
    graph: Arc<ExecutionGraph>,
    config: JobConfig,
    plan: FailurePlan,
    root: ShuffleRoot,
    /// Which regions run, and their slots.
    scheduler: RegionScheduler,
    failover: Box<dyn FailoverStrategy>,
    restarts: RestartTracker,
    attempts: Vec<u32>,
    reports: Vec<Option<TaskReport>>,
    /// The counts so far of each subtask's latest attempt, for the summary
    /// of a job stopped while its tasks ran.
    live: Vec<Option<(LiveMetrics, Counters)>>,
    /// Which blocking partitions are written, by which attempt.
    partitions: PartitionTracker,
    /// What runs the subtasks' attempts.
    executor: Box<dyn TaskExecutor>,
    /// The job-level commit of its sinks.
    sinks: SinkCommits,
    /// The subtasks whose latest attempt runs.
    running: HashSet<usize>,
    timeline: Vec<RegionEvent>,
    started: Instant,
    progress: JobProgress,
    /// The checkpoints of a streaming job that takes them.
    checkpoints: Option<CheckpointCoordinator>,
    /// Where each running source subtask takes the barriers to inject.
    triggers: HashMap<usize, UnboundedSender<Barrier>>,
    /// The checkpoint restarted tasks resume from.
    restore: Option<CheckpointMetadata>,
    /// Where its files are, when not among the job's checkpoints (a
    /// savepoint the job started from).
    restore_store: Option<weir_exchange::checkpoint_store::CheckpointStore>,
    /// Requests from outside (savepoints, stop, cancel).
    control: Option<UnboundedReceiver<ControlRequest>>,
    /// Set when the job was asked to stop: with its final savepoint, if any.
    stopped: Option<Option<String>>,
    /// Savepoints asked for so far, to name those of the configured
    /// savepoint directory.
    savepoints_asked: u32,
    /// Checkpoints that failed since the last one that completed.
    checkpoints_failed_in_a_row: u32,
}

/// What a job master needs to run a job.
pub(crate) struct JobSetup {
    pub job_id: Arc<str>,
    pub graph: Arc<ExecutionGraph>,
    pub config: JobConfig,
    pub plan: FailurePlan,
    pub root: ShuffleRoot,
    pub strategy: Box<dyn SchedulingStrategy>,
    pub failover: Box<dyn FailoverStrategy>,
    pub progress: JobProgress,
    pub checkpoints: Option<CheckpointCoordinator>,
    /// A savepoint to start from, and where its files are.
    pub restore: Option<(
        weir_exchange::checkpoint_store::CheckpointStore,
        CheckpointMetadata,
    )>,
    pub control: Option<UnboundedReceiver<ControlRequest>>,
    pub executor: Box<dyn TaskExecutor>,
}

impl JobMaster {
    pub fn new(setup: JobSetup) -> Self {
        let subtasks = setup.graph.subtasks.len();
        let rows_expected = setup
            .graph
            .job
            .vertices
            .iter()
            .filter_map(|v| v.chain.source.as_ref())
            .map(|source| match source.boundedness() {
                Boundedness::Bounded => source.estimated_rows(),
                Boundedness::Unbounded => None,
            })
            .sum();
        setup
            .progress
            .start(setup.graph.regions.len(), rows_expected);
        let sinks = SinkCommits::new(Arc::clone(&setup.job_id), &setup.graph.job);
        Self {
            job_id: setup.job_id,
            scheduler: RegionScheduler::new(
                setup.strategy,
                SlotPool::new(setup.config.slots),
                &setup.graph.regions,
            ),
            restarts: RestartTracker::new(setup.config.restart.clone()),
            config: setup.config,
            plan: setup.plan,
            root: setup.root,
            failover: setup.failover,
            attempts: vec![0; subtasks],
            reports: vec![None; subtasks],
            live: vec![None; subtasks],
            partitions: PartitionTracker::default(),
            executor: Box::new(CausesFirst::new(setup.executor)),
            sinks,
            running: HashSet::new(),
            timeline: Vec::new(),
            started: Instant::now(),
            progress: setup.progress,
            checkpoints: setup.checkpoints,
            triggers: HashMap::new(),
            restore_store: setup.restore.as_ref().map(|(store, _)| store.clone()),
            restore: setup.restore.map(|(_, metadata)| metadata),
            control: setup.control,
            stopped: None,
            savepoints_asked: 0,
            checkpoints_failed_in_a_row: 0,
            graph: setup.graph,
        }
    }

    /// Runs the job to its end and removes its partition files, whether it
    /// succeeded or failed.
    pub async fn run(mut self) -> Result<JobSummary> {
        self.claim_job_dirs().await;
        let mut outcome = self.open_and_drive().await;
        self.executor.cancel_all().await;
        // A stopped job committed what its last savepoint covers; the rest
        // of what its tasks wrote is discarded.
        if outcome.is_ok() && self.stopped.is_none() {
            outcome = self.commit_sinks().await;
        }
        if outcome.is_err() || self.stopped.is_some() {
            self.sinks.abort_job().await;
        }
        if let Some(checkpoints) = &mut self.checkpoints {
            match (&outcome, checkpoints.latest()) {
                (Ok(()), _) => checkpoints.remove_all().await,
                (Err(Error::Cancelled { .. }), _) => checkpoints.remove_all().await,
                (Err(_), Some(latest)) => tracing::warn!(
                    "the job failed; its latest checkpoint stays at {}",
                    checkpoints.checkpoint_url(latest.checkpoint)
                ),
                (Err(_), None) => {}
            }
        }
        let spill_dir = self.spill_dir();
        if spill_dir.exists()
            && let Err(e) = tokio::fs::remove_dir_all(&spill_dir).await
        {
            tracing::warn!(
                "could not remove the spill files at {}: {e}",
                spill_dir.display()
            );
        }
        if let Err(e) = self.root.remove_job(&self.job_id).await {
            tracing::warn!(
                "could not remove the partition files of job {}: {e}",
                self.job_id
            );
        }
        outcome.map(|()| self.summary())
    }

    /// Records this process as the owner of the job's directories under
    /// the shuffle root and the spill directory, and removes those of jobs
    /// whose process is gone (killed jobs leave them behind). Neither
    /// fails the job: what cannot be removed now is removed later.
    async fn claim_job_dirs(&self) {
        let owner = JobOwner::current(&self.job_id);
        let dir = object_store::path::Path::from(&*self.job_id);
        let shuffle = self.root.store().as_ref();
        for gone in orphans(shuffle, self.root.url()).await {
            match self.root.remove_job(&gone.job).await {
                Ok(()) => tracing::info!(
                    "removed the partition files of job {} (process {} is gone)",
                    gone.job,
                    gone.pid
                ),
                Err(e) => tracing::warn!(
                    "could not remove the partition files of job {}: {e}",
                    gone.job
                ),
            }
        }
        if let Err(e) = owner.write(shuffle, &dir).await {
            tracing::warn!(
                "could not record the owner of job {}'s partition files: {e}",
                self.job_id
            );
        }
        let spill_root = &self.config.spill_dir;
        let spill = std::fs::create_dir_all(spill_root)
            .map_err(|e| e.to_string())
            .and_then(|()| LocalFileSystem::new_with_prefix(spill_root).map_err(|e| e.to_string()));
        let spill = match spill {
            Ok(spill) => spill,
            Err(e) => {
                tracing::warn!(
                    "could not open the spill directory {}: {e}",
                    spill_root.display()
                );
                return;
            }
        };
        for gone in orphans(&spill, &spill_root.display().to_string()).await {
            match tokio::fs::remove_dir_all(spill_root.join(&gone.job)).await {
                Ok(()) => tracing::info!(
                    "removed the spill files of job {} (process {} is gone)",
                    gone.job,
                    gone.pid
                ),
                Err(e) => {
                    tracing::warn!("could not remove the spill files of job {}: {e}", gone.job)
                }
            }
        }
        if let Err(e) = owner.write(&spill, &dir).await {
            tracing::warn!(
                "could not record the owner of job {}'s spill files: {e}",
                self.job_id
            );
        }
    }

    /// Opens the job's sinks, commits what the checkpoint it resumes from
    /// had pending, then runs the job to its end.
    async fn open_and_drive(&mut self) -> Result<()> {
        self.sinks
            .open_job()
            .await
            .map_err(|cause| self.failed(cause))?;
        self.commit_restored().await?;
        self.drive().await
    }

    /// A job resuming from a savepoint or a retained checkpoint first
    /// commits what that checkpoint had pending: the run that took it may
    /// have ended before it did (Flink commits again on restore).
    async fn commit_restored(&self) -> Result<()> {
        match &self.restore {
            Some(metadata) => self.commit_checkpoint(metadata, None).await,
            None => Ok(()),
        }
    }

    /// Publishes the output of every sink, as written by the final attempt
    /// of each subtask of its vertex.
    async fn commit_sinks(&self) -> Result<()> {
        let attempt = |vertex, index: usize| {
            let s = self.graph.dense(SubtaskId {
                vertex,
                index: index as u32,
            });
            self.attempts[s]
        };
        self.sinks
            .commit_job(attempt)
            .await
            .map_err(|cause| self.failed(cause))
    }

    /// Refuses a job whose sinks could never commit: an unbounded job
    /// without checkpoints, into a sink that commits at checkpoints.
    fn check_sinks_commit(&self) -> Result<()> {
        let unbounded = self
            .graph
            .job
            .vertices
            .iter()
            .any(|v| v.boundedness() == Some(Boundedness::Unbounded));
        let periodic = self
            .checkpoints
            .as_ref()
            .is_some_and(CheckpointCoordinator::is_periodic);
        match self.sinks.needs_checkpoints() {
            Some(reason) if unbounded && !periodic => Err(self.unschedulable(reason)),
            _ => Ok(()),
        }
    }

    async fn drive(&mut self) -> Result<()> {
        self.check_sinks_commit()?;
        self.scheduler
            .check(&self.graph.regions)
            .map_err(|reason| self.unschedulable(reason))?;
        loop {
            if self.stopped.is_some() {
                return Ok(());
            }
            self.schedule().await;
            if self.scheduler.all_finished() {
                return Ok(());
            }
            let next_restart = self.scheduler.next_restart();
            if self.executor.is_idle() && next_restart.is_none() {
                let waiting: Vec<String> = self
                    .scheduler
                    .waiting()
                    .iter()
                    .map(RegionId::to_string)
                    .collect();
                return Err(self.unschedulable(format!(
                    "regions {} wait for inputs that nothing produces",
                    waiting.join(", ")
                )));
            }
            let checkpoint_due = self.checkpoints.as_ref().and_then(|c| c.next_trigger());
            let checkpoint_expires = self.checkpoints.as_ref().and_then(|c| c.expires_at());
            tokio::select! {
                outcome = self.executor.next_outcome(), if !self.executor.is_idle() => {
                    if let Some(outcome) = outcome {
                        self.on_task_done(outcome).await?;
                    }
                }
                () = sleep_until(next_restart), if next_restart.is_some() => {}
                () = sleep_until(checkpoint_due), if checkpoint_due.is_some() => {
                    self.trigger_checkpoint();
                }
                () = sleep_until(checkpoint_expires), if checkpoint_expires.is_some() => {
                    self.expire_checkpoint().await?;
                }
                Some(ack) = next_ack(&mut self.checkpoints) => self.on_checkpoint_ack(ack).await?,
                Some(request) = next_request(&mut self.control) => self.on_request(request)?,
            }
        }
    }

    /// Deploys what the strategy picks among the ready regions.
    async fn schedule(&mut self) {
        let partitions = &self.partitions;
        let selected = self
            .scheduler
            .select(&self.graph.regions, Instant::now(), |p| {
                partitions.is_written(p)
            });
        for region in selected {
            self.inject_partition_faults(region).await;
            self.deploy(region);
        }
    }

    fn deploy(&mut self, region: RegionId) {
        let subtasks = self.graph.regions.get(region).subtasks.clone();
        self.timeline.push(RegionEvent {
            region,
            kind: RegionEventKind::Deployed,
            at_ms: self.started.elapsed().as_millis() as u64,
        });
        let plans = subtasks.iter().map(|&s| self.plan_attempt(s)).collect();
        self.executor.deploy(plans);
        self.running.extend(subtasks);
    }

    /// What the next attempt of subtask `s` runs with: the attempt of each
    /// blocking partition it reads, its memory, the state it resumes from,
    /// and the handles it is watched through (kept for the summary).
    fn plan_attempt(&mut self, s: usize) -> AttemptPlan {
        let id = self.graph.subtasks[s];
        let vertex = self.graph.job.vertex(id.vertex);
        let attempt = self.attempts[s];
        let mut reads = BTreeMap::new();
        for result in self.graph.inputs_of(id.vertex) {
            if result.mode != ExchangeMode::Blocking {
                continue;
            }
            for (producer, _) in self.graph.consumed_channels(result, id.index) {
                let key = PartitionKey {
                    dataset: result.dataset,
                    producer,
                };
                let written = self
                    .partitions
                    .read(&key)
                    .expect("a region is deployed once its inputs are written");
                reads.insert((result.dataset, producer), written);
            }
        }
        let restore = self.restore.as_ref().and_then(|m| {
            m.restore(
                id.vertex.0 as usize,
                id.index as usize,
                vertex.parallelism,
                |split| {
                    let source = vertex.chain.source.as_ref()?;
                    source.split_owner(split, vertex.parallelism)
                },
            )
        });
        let restore = restore.map(|restore| TaskRestore {
            store: self.restore_store.clone(),
            ..restore
        });
        let handles = AttemptHandles {
            scanned: if vertex.chain.source.is_some() {
                self.progress.source_attempt(s)
            } else {
                Default::default()
            },
            acks: self
                .checkpoints
                .as_ref()
                .map(CheckpointCoordinator::ack_sender),
            triggers: self.trigger_channel(s),
            ..Default::default()
        };
        self.live[s] = Some((handles.metrics.clone(), handles.counters.clone()));
        AttemptPlan {
            subtask: s,
            id,
            attempt,
            reads,
            memory_budget: self.task_memory(s),
            restore,
            handles,
        }
    }

    /// For a source subtask of a job that takes checkpoints: the channel
    /// its barriers come through (the sender kept here).
    fn trigger_channel(&mut self, s: usize) -> Option<UnboundedReceiver<Barrier>> {
        self.checkpoints.as_ref()?;
        let id = self.graph.subtasks[s];
        self.graph.job.vertex(id.vertex).chain.source.as_ref()?;
        let (tx, rx) = unbounded_channel();
        self.triggers.insert(s, tx);
        Some(rx)
    }

    /// Carries out a request from outside the job.
    ///
    /// # Errors
    /// [`Error::Cancelled`] when asked to cancel.
    fn on_request(&mut self, request: ControlRequest) -> Result<()> {
        match request {
            ControlRequest::Cancel => {
                return Err(Error::Cancelled {
                    job: self.graph.job.name.clone(),
                });
            }
            ControlRequest::Stop {
                savepoint: None,
                reply,
            } => {
                self.stopped = Some(None);
                let _ = reply.send(Ok(None));
            }
            ControlRequest::Stop {
                savepoint: Some(target),
                reply,
            } => self.request_savepoint(target, SavepointReply::Stop(reply)),
            ControlRequest::Savepoint { target, reply } => {
                self.request_savepoint(target, SavepointReply::Savepoint(reply));
            }
        }
        Ok(())
    }

    /// Queues a savepoint with the coordinator; refuses it when the job
    /// takes none (a batch job) or has nowhere to put it.
    fn request_savepoint(&mut self, target: SavepointTarget, reply: SavepointReply) {
        if self.checkpoints.is_none() {
            return reply.send(Err(self.no_savepoints()));
        }
        self.savepoints_asked += 1;
        let dir = match (target, &self.config.savepoint_dir) {
            (SavepointTarget::Dir(dir), _) => dir,
            (SavepointTarget::Configured, Some(parent)) => format!(
                "{}/savepoint-{}-{}",
                parent.trim_end_matches('/'),
                self.job_id,
                self.savepoints_asked
            ),
            (SavepointTarget::Configured, None) => {
                return reply.send(Err(Error::Control(
                    "no savepoint directory: give one, or set \
                     execution.checkpointing.savepoint-dir"
                        .to_string(),
                )));
            }
        };
        if let Some(checkpoints) = &mut self.checkpoints {
            checkpoints.request_savepoint(SavepointRequest { dir, reply });
        }
    }

    fn no_savepoints(&self) -> Error {
        Error::Control(format!(
            "job '{}' runs in batch mode and takes no savepoints",
            self.graph.job.name
        ))
    }

    /// Injects the next checkpoint's barrier at every source, when every
    /// task runs (a job with finished tasks takes no more checkpoints).
    fn trigger_checkpoint(&mut self) {
        let Some(checkpoints) = &mut self.checkpoints else {
            return;
        };
        if self.running.len() < self.graph.subtasks.len() {
            checkpoints.postpone("not every task of the job is running");
            return;
        }
        let waiting = self.executor.waiting();
        if waiting > 0 {
            checkpoints.postpone(&format!("{waiting} task(s) of the job wait for a slot"));
            return;
        }
        let barrier = checkpoints.trigger();
        if self.plan.fails_checkpoint_uploads(barrier.checkpoint_id) {
            block(
                &checkpoints.checkpoint_url(barrier.checkpoint_id),
                Blocker::File,
            );
        }
        for sender in self.triggers.values() {
            // A source that is gone fails or finishes: that ends the
            // checkpoint too.
            let _ = sender.send(barrier);
        }
    }

    /// Records a task's checkpoint acknowledgement. Once every task
    /// acknowledged, the sinks record what the checkpoint commits, the
    /// checkpoint completes (its metadata is written), and the sinks
    /// commit: a kill at any instant leaves the checkpoint's files either
    /// uncommitted with the checkpoint, or committed (carried out by
    /// whoever finds them, see [`SinkFactory::prepare_checkpoint_commit`]).
    ///
    /// [`SinkFactory::prepare_checkpoint_commit`]: weir_engine::SinkFactory::prepare_checkpoint_commit
    async fn on_checkpoint_ack(&mut self, ack: CheckpointAck) -> Result<()> {
        let Some(checkpoints) = &mut self.checkpoints else {
            return Ok(());
        };
        let metadata = match checkpoints.on_ack(ack, &self.graph).await? {
            AckOutcome::Waiting | AckOutcome::Completed { .. } => return Ok(()),
            AckOutcome::Declined { checkpoint, reason } => {
                return self.checkpoint_failed(checkpoint, reason).await;
            }
            AckOutcome::Acknowledged(metadata) => metadata,
        };
        let decided_by = checkpoints.metadata_url(metadata.checkpoint);
        if self.plan.fails_checkpoint_metadata(metadata.checkpoint) {
            block(&decided_by, Blocker::Directory);
        }
        let declined = self
            .sinks
            .prepare_checkpoint(&metadata, &decided_by)
            .await
            .err();
        let Some(checkpoints) = &mut self.checkpoints else {
            return Ok(());
        };
        let outcome = match declined {
            Some(reason) => checkpoints.abort(reason).await,
            None => checkpoints.complete(*metadata).await?,
        };
        let (metadata, stopped_at) = match outcome {
            AckOutcome::Completed {
                metadata,
                stopped_at,
            } => (metadata, stopped_at),
            AckOutcome::Declined { checkpoint, reason } => {
                return self.checkpoint_failed(checkpoint, reason).await;
            }
            AckOutcome::Waiting | AckOutcome::Acknowledged(_) => return Ok(()),
        };
        self.checkpoints_failed_in_a_row = 0;
        self.progress.checkpoint_completed();
        if let Some(savepoint) = stopped_at {
            self.stopped = Some(Some(savepoint));
        }
        self.commit_checkpoint(&metadata, Some(&decided_by)).await?;
        for vertex in &self.graph.job.vertices {
            if let Some(source) = &vertex.chain.source {
                let positions = metadata.positions(vertex.id.0 as usize);
                source.checkpoint_completed(metadata.checkpoint, positions);
            }
        }
        Ok(())
    }

    /// The checkpoint in flight took too long: it fails.
    async fn expire_checkpoint(&mut self) -> Result<()> {
        let Some(checkpoints) = &mut self.checkpoints else {
            return Ok(());
        };
        match checkpoints.expire().await {
            AckOutcome::Declined { checkpoint, reason } => {
                self.checkpoint_failed(checkpoint, reason).await
            }
            _ => Ok(()),
        }
    }

    /// A checkpoint failed (a task declined it, a sink could not prepare
    /// its commit, its metadata could not be written, it expired): its
    /// files are gone and the job goes on, unless more than
    /// `execution.checkpointing.tolerable-failed-checkpoints` failed in a
    /// row; then the job fails over to its latest completed checkpoint
    /// under its restart strategy, as Flink's does.
    async fn checkpoint_failed(&mut self, checkpoint: u64, reason: String) -> Result<()> {
        tracing::warn!("checkpoint {checkpoint} failed: {reason}");
        self.checkpoints_failed_in_a_row += 1;
        let tolerable = self.config.tolerable_failed_checkpoints;
        if self.checkpoints_failed_in_a_row <= tolerable {
            return Ok(());
        }
        let cause = format!(
            "checkpoint {checkpoint} failed ({reason}): {} in a row, {tolerable} tolerated \
             (execution.checkpointing.tolerable-failed-checkpoints)",
            self.checkpoints_failed_in_a_row
        );
        self.checkpoints_failed_in_a_row = 0;
        let at = self.next_restart(&cause)?;
        tracing::warn!("the job fails over: {cause}");
        self.restart_from_checkpoint(&weir_engine::Error::Checkpoint(cause), at)
            .await
    }

    /// Has every sink commit what its tasks prepared for checkpoint
    /// `metadata`: one that completed (`decided_by` its metadata's URL),
    /// or one the job resumes from (`None`).
    async fn commit_checkpoint(
        &self,
        metadata: &CheckpointMetadata,
        decided_by: Option<&str>,
    ) -> Result<()> {
        self.sinks
            .commit_checkpoint(metadata, decided_by)
            .await
            .map_err(|cause| self.failed(cause))
    }

    /// The memory budget of subtask `s`: its region holds `slots` slots of
    /// `memory.per-slot` each, split evenly over the region's subtasks (the
    /// tasks that share a slot share its memory).
    fn task_memory(&self, s: usize) -> usize {
        let region = self.graph.regions.get(self.graph.regions.region_of(s));
        let total = self.config.memory_per_slot.saturating_mul(region.slots);
        total / region.subtasks.len().max(1)
    }

    /// The job's own spill directory.
    fn spill_dir(&self) -> std::path::PathBuf {
        self.config.spill_dir.join(&*self.job_id)
    }

    async fn on_task_done(&mut self, outcome: TaskOutcome) -> Result<()> {
        let TaskOutcome {
            subtask: s,
            attempt,
            result,
            host,
        } = outcome;
        // Partitions on a shared root outlive the worker that wrote them.
        let host = host.filter(|_| !self.root.is_shared());
        if attempt != self.attempts[s] || !self.running.contains(&s) {
            return Ok(());
        }
        self.running.remove(&s);
        self.triggers.remove(&s);
        if let Some(checkpoints) = &mut self.checkpoints {
            let name = &self.graph.job.vertex(self.graph.subtasks[s].vertex).name;
            let reason = format!("task '{name}' ended before it took part");
            if let AckOutcome::Declined { checkpoint, reason } = checkpoints.abort(reason).await {
                tracing::info!("checkpoint {checkpoint} dropped: {reason}");
            }
        }
        match result {
            Ok(report) => {
                for written in &report.partitions {
                    let key = PartitionKey {
                        dataset: written.dataset,
                        producer: written.partition.producer,
                    };
                    self.partitions.completed(key, attempt, host.clone());
                }
                self.reports[s] = Some(report);
                let region = self.graph.regions.region_of(s);
                if self.scheduler.subtask_finished(region, &self.graph.regions) {
                    self.timeline.push(RegionEvent {
                        region,
                        kind: RegionEventKind::Finished,
                        at_ms: self.started.elapsed().as_millis() as u64,
                    });
                    self.report_progress();
                }
                Ok(())
            }
            Err(error) => self.on_failure(s, attempt, error).await,
        }
    }

    async fn on_failure(
        &mut self,
        s: usize,
        attempt: u32,
        error: weir_engine::Error,
    ) -> Result<()> {
        let id = self.graph.subtasks[s];
        let vertex = self.graph.job.vertex(id.vertex);
        let failure = format!(
            "task '{}' ({id}) attempt {attempt} failed: {error}",
            vertex.name
        );
        tracing::warn!("{failure}");
        if let Some(why) = error.why_not_retryable() {
            return Err(self.failed(format!(
                "{failure} (not restarted: {why}, so running it again would fail the same way)"
            )));
        }
        if let Some(partition) = error.lost_partition() {
            let key = PartitionKey {
                dataset: partition.dataset,
                producer: partition.producer,
            };
            let host = self.partitions.host(&key).map(|h| Arc::clone(&h.worker));
            self.partitions.lost(key, partition.attempt);
            if let Some(worker) = host {
                self.partitions.lost_on(&worker);
            }
        }
        let at = self.next_restart(&failure)?;
        if self.checkpoints.is_some() {
            // Every task resumes from the same checkpoint.
            return self.restart_from_checkpoint(&error, at).await;
        }
        self.find_missing_partitions().await;
        let (scheduler, partitions) = (&self.scheduler, &self.partitions);
        let view = FailoverView {
            regions: &self.graph.regions,
            is_lost: &|p| partitions.is_lost(&p),
            has_started: &|r| scheduler.has_started(r),
        };
        let restart = self
            .failover
            .regions_to_restart(self.graph.regions.region_of(s), &view);
        for region in restart {
            self.reset(region, at);
        }
        Ok(())
    }

    /// When the restart after `failure` is due, as the restart strategy
    /// says.
    ///
    /// # Errors
    /// When the strategy allows no more restarts: the job fails.
    fn next_restart(&mut self, failure: &str) -> Result<Instant> {
        let now = Instant::now();
        match self.restarts.on_failure(now) {
            Ok(delay) => Ok(now + delay),
            Err(why) => Err(self.failed(format!("{why}; last failure: {failure}"))),
        }
    }

    /// Restarts every region of a job that takes checkpoints at `at`, from
    /// the checkpoint [`JobMaster::choose_restore`] picks after `error`.
    async fn restart_from_checkpoint(
        &mut self,
        error: &weir_engine::Error,
        at: Instant,
    ) -> Result<()> {
        self.choose_restore(error).await?;
        let regions: Vec<RegionId> = self.graph.regions.all().iter().map(|r| r.id).collect();
        for region in regions {
            self.reset(region, at);
        }
        Ok(())
    }

    /// The checkpoint the restarted tasks resume from: the latest completed
    /// one, unless `error` says a file of the one being restored is missing
    /// or corrupt; then the one before it.
    ///
    /// # Errors
    /// When the checkpoint being restored is broken and no older one is
    /// left: the job fails rather than start over from nothing.
    async fn choose_restore(&mut self, error: &weir_engine::Error) -> Result<()> {
        let Some(checkpoints) = &mut self.checkpoints else {
            return Ok(());
        };
        if let AckOutcome::Declined { checkpoint, .. } =
            checkpoints.abort("a task failed".to_string()).await
        {
            tracing::info!("checkpoint {checkpoint} dropped: a task failed");
        }
        checkpoints.restarted();
        let broken = matches!(
            error,
            weir_engine::Error::Exchange(
                weir_exchange::Error::CheckpointCorrupt { .. }
                    | weir_exchange::Error::CheckpointNotFound { .. }
            )
        );
        if broken && let Some(restoring) = self.restore.as_ref().map(|m| m.checkpoint) {
            checkpoints.discard_latest().await;
            tracing::error!(
                "checkpoint {restoring} cannot be restored ({error}); falling back to an older \
                 one: what sinks committed at checkpoint {restoring} may be written again"
            );
            if checkpoints.latest().is_none() {
                let cause = format!(
                    "checkpoint {restoring} cannot be restored ({error}) and no older checkpoint \
                     is left: not restarting from nothing"
                );
                return Err(self.failed(cause));
            }
        }
        if let Some(latest) = checkpoints.latest() {
            self.restore = Some(latest.clone());
            self.restore_store = None;
            if let Some(damage) = self.plan.restored_checkpoint.take() {
                damage_checkpoint(checkpoints, latest, damage).await;
            }
        }
        Ok(())
    }

    /// Marks complete partitions whose files are gone, or whose worker
    /// is, as lost (failover rule 2 needs to know).
    async fn find_missing_partitions(&mut self) {
        let extension = self.config.blocking.format.extension();
        let complete: Vec<(PartitionKey, u32)> = self.partitions.complete().collect();
        for (key, attempt) in complete {
            if let Some(host) = self.partitions.host(&key) {
                if self.executor.has_lost(&host.worker) {
                    self.partitions.lost(key, attempt);
                }
                continue;
            }
            let id = ResultPartitionId {
                dataset: key.dataset,
                producer: key.producer,
                attempt,
            };
            let path = self.root.partition_path(&self.job_id, &id, extension);
            if let Err(object_store::Error::NotFound { .. }) = self.root.store().head(&path).await {
                self.partitions.lost(key, attempt);
            }
        }
    }

    /// Cancels a region and makes it wait to run again with new attempts.
    fn reset(&mut self, region: RegionId, at: Instant) {
        self.scheduler.restart(region, &self.graph.regions, at);
        let info = self.graph.regions.get(region);
        for &s in &info.subtasks {
            if self.running.remove(&s) {
                self.executor.cancel(s);
            }
            self.attempts[s] += 1;
            self.reports[s] = None;
            self.progress.forget(s);
        }
        self.partitions.forget(&info.produces);
        self.timeline.push(RegionEvent {
            region,
            kind: RegionEventKind::Restarted,
            at_ms: self.started.elapsed().as_millis() as u64,
        });
        self.report_progress();
    }

    /// Tells the job's progress the regions finished and the restarts.
    fn report_progress(&self) {
        self.progress
            .update(self.scheduler.finished(), self.restarts.restarts());
    }

    /// Damages the partitions the failure plan names before the first
    /// deployment of a subtask of `region`.
    async fn inject_partition_faults(&self, region: RegionId) {
        for &s in &self.graph.regions.get(region).subtasks {
            if self.attempts[s] > 0 {
                continue;
            }
            let id = self.graph.subtasks[s];
            for fault in self.plan.damage_before(id.vertex, id.index) {
                let key = PartitionKey {
                    dataset: fault.dataset,
                    producer: fault.producer,
                };
                if let Some(attempt) = self.partitions.attempt(&key) {
                    let partition = ResultPartitionId {
                        dataset: key.dataset,
                        producer: key.producer,
                        attempt,
                    };
                    self.damage(&partition, fault.damage).await;
                }
            }
        }
    }

    async fn damage(&self, partition: &ResultPartitionId, damage: PartitionDamage) {
        let path = self.root.partition_path(
            &self.job_id,
            partition,
            self.config.blocking.format.extension(),
        );
        let store = self.root.store();
        let result = match damage {
            PartitionDamage::Delete => store.delete(&path).await,
            PartitionDamage::Corrupt => match store.get(&path).await {
                Ok(file) => match file.bytes().await {
                    Ok(bytes) => {
                        let mut bytes = bytes.to_vec();
                        // The footer: every reader of the file checks it.
                        let footer = bytes.len().saturating_sub(12);
                        for b in bytes.iter_mut().skip(footer).take(8) {
                            *b ^= 0x5a;
                        }
                        store.put(&path, bytes.into()).await.map(|_| ())
                    }
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            },
        };
        if let Err(e) = result {
            tracing::warn!("failure plan could not damage {path}: {e}");
        }
    }

    fn unschedulable(&self, reason: String) -> Error {
        Error::Unschedulable {
            job: self.graph.job.name.clone(),
            reason,
        }
    }

    fn failed(&self, cause: String) -> Error {
        Error::JobFailed {
            job: self.graph.job.name.clone(),
            restarts: self.restarts.restarts(),
            cause,
        }
    }

    fn summary(&self) -> JobSummary {
        let job = &self.graph.job;
        let mut vertices: Vec<VertexSummary> = job
            .vertices
            .iter()
            .map(|v| VertexSummary {
                id: v.id,
                name: v.name.clone(),
                parallelism: v.parallelism,
                metrics: Default::default(),
                counters: Default::default(),
            })
            .collect();
        let mut shuffle_bytes = 0;
        for (s, report) in self.reports.iter().enumerate() {
            let vertex = self.graph.subtasks[s].vertex;
            let summary = &mut vertices[vertex.0 as usize];
            let (metrics, counters) = match (report, &self.live[s]) {
                (Some(report), _) => {
                    shuffle_bytes += report.partitions.iter().map(|p| p.stats.bytes).sum::<u64>();
                    (report.metrics, report.counters.clone())
                }
                // Stopped while it ran: what it did so far.
                (None, Some((metrics, counters))) => (metrics.snapshot(), counters.snapshot()),
                (None, _) => continue,
            };
            summary.metrics.add(&metrics);
            for (name, n) in counters {
                *summary.counters.entry(name).or_default() += n;
            }
        }
        JobSummary {
            job: job.name.clone(),
            job_id: self.job_id.to_string(),
            scheduling: self.scheduler.strategy().to_string(),
            failover: self.failover.name().to_string(),
            vertices,
            regions: self.graph.regions.len(),
            attempts: self
                .graph
                .subtasks
                .iter()
                .zip(&self.attempts)
                .map(|(id, a)| (*id, *a))
                .collect(),
            region_of: (0..self.graph.subtasks.len())
                .map(|s| self.graph.regions.region_of(s))
                .collect(),
            restarts: self.restarts.restarts(),
            shuffle_bytes,
            timeline: self.timeline.clone(),
            wall_time: self.started.elapsed(),
            checkpoints: self.checkpoints.as_ref().map(|c| c.stats()),
            stopped: self.stopped.clone(),
        }
    }
}

/// What a test's failure plan puts in the way of a checkpoint's writes
/// (local checkpoint directories only).
#[derive(Clone, Copy)]
enum Blocker {
    /// A file where the checkpoint's directory goes: no task can upload
    /// its state.
    File,
    /// A directory where the metadata file goes: it cannot be written.
    Directory,
}

/// Puts `blocker` at `url` (a test's failure plan).
fn block(url: &str, blocker: Blocker) {
    let path = url.trim_start_matches("file://");
    let blocked = match blocker {
        Blocker::File => std::fs::write(path, b"blocked"),
        Blocker::Directory => std::fs::create_dir_all(path),
    };
    if let Err(e) = blocked {
        tracing::warn!("could not block the checkpoint's writes at {url}: {e}");
    }
}

/// The owners of the job directories under `url` (a store's top) whose
/// process is gone: a directory a job wrote is named by its id.
async fn orphans(store: &dyn ObjectStore, url: &str) -> Vec<JobOwner> {
    let top = object_store::path::Path::default();
    match job_owner::orphaned_jobs(store, &top).await {
        Ok(orphans) => orphans
            .into_iter()
            .filter(|(dir, owner)| dir.as_ref() == owner.job)
            .map(|(_, owner)| owner)
            .collect(),
        Err(e) => {
            tracing::warn!("could not look for the files of gone jobs under {url}: {e}");
            Vec::new()
        }
    }
}

async fn damage_checkpoint(
    checkpoints: &CheckpointCoordinator,
    checkpoint: &CheckpointMetadata,
    damage: PartitionDamage,
) {
    let Some(file) = checkpoint
        .vertices
        .iter()
        .flat_map(|v| &v.tasks)
        .flat_map(|t| t.operators.iter().flatten())
        .next()
    else {
        return;
    };
    let store = checkpoints.store();
    let done = match damage {
        PartitionDamage::Delete => store.remove(&file.path).await,
        PartitionDamage::Corrupt => match store.read(&file.path).await {
            Ok(bytes) => {
                let mut bytes = bytes.to_vec();
                let middle = bytes.len() / 2;
                bytes[middle] ^= 0x5a;
                store.write_file(&file.path, bytes).await
            }
            Err(e) => Err(e),
        },
    };
    if let Err(e) = done {
        tracing::warn!("failure plan could not damage {}: {e}", file.path);
    }
}

/// The next request from outside; never without a control handle.
async fn next_request(
    control: &mut Option<UnboundedReceiver<ControlRequest>>,
) -> Option<ControlRequest> {
    match control {
        Some(control) => control.recv().await,
        None => std::future::pending().await,
    }
}

/// The next checkpoint acknowledgement; never without checkpoints.
async fn next_ack(checkpoints: &mut Option<CheckpointCoordinator>) -> Option<CheckpointAck> {
    match checkpoints {
        Some(checkpoints) => checkpoints.next_ack().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at.into()).await;
    }
}
