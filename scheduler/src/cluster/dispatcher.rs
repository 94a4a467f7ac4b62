//! The coordinator's dispatcher: takes jobs from clients, plans them,
//! starts one job master per job (its attempts run on the workers), and
//! keeps how each is doing for the clients that watch it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use weir_engine::graph::RuntimeMode;
use weir_exchange::checkpoint_store::CheckpointStore;

use super::access::Token;
use super::coordinator::ResourceManager;
use super::proto::RecordedJob;
use super::proto::{self, JobSpec, Setting};
use super::recovery::JobRecords;
use super::remote::{AckSlot, RemoteExecutor, RemoteJob, SlotWait};
use super::rows::{PlannedOnly, QueryRows, to_ipc};
use super::wire;
use super::{JobPlanner, config_of, fingerprint, plan_part};
use crate::checkpoint_coordinator::CheckpointCoordinator;
use crate::deployment::JobRuntime;
use crate::mini_cluster::{job_master, new_job_id};
use crate::task_executor::TaskExecutor;
use crate::{Error, FailurePlan, JobControl, JobProgress, Result, SavepointTarget};

/// How a job is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// Its job master runs.
    Running,
    /// It ended well: its summary.
    Finished(String),
    /// It failed: why.
    Failed(String),
    /// It was cancelled.
    Cancelled(String),
    /// To resume, its coordinator started again, once workers registered.
    Resuming,
    /// Resumed by a coordinator started again, as another job: its id.
    Resumed(String),
}

impl JobState {
    /// The state's name, as `weir list` shows it.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Finished(_) => "finished",
            JobState::Failed(_) => "failed",
            JobState::Cancelled(_) => "cancelled",
            JobState::Resuming => "resuming",
            JobState::Resumed(_) => "resumed",
        }
    }

    /// What became of the job, for its status: why it failed, the job
    /// that resumed it.
    pub fn message(&self) -> String {
        match self {
            JobState::Running | JobState::Finished(_) => String::new(),
            JobState::Failed(why) | JobState::Cancelled(why) => why.clone(),
            JobState::Resuming => {
                "the coordinator restarted: the job resumes once workers registered".to_string()
            }
            JobState::Resumed(id) => format!("resumed as {id} after a coordinator restart"),
        }
    }
}

/// What a client watching a job follows.
pub struct Watched {
    /// How the job is doing, as it changes.
    pub state: watch::Receiver<JobState>,
    /// Its progress.
    pub progress: JobProgress,
    /// Its rows, for a query.
    pub rows: Arc<QueryRows>,
}

/// A job the coordinator runs or ran.
struct Job {
    name: String,
    started: Instant,
    ended: Option<Instant>,
    state: watch::Receiver<JobState>,
    progress: JobProgress,
    control: JobControl,
    /// Where the ends of its attempts go, while it runs.
    ends: mpsc::UnboundedSender<proto::TaskEnd>,
    /// For a query: its rows, for its client.
    rows: Arc<QueryRows>,
    /// Where the checkpoint acknowledgements of its tasks go.
    acks: AckSlot,
    /// What it waits for, while regions of it wait for slots.
    slot_wait: SlotWait,
}

/// The jobs of a coordinator.
#[derive(Clone)]
pub struct Dispatcher {
    planner: Arc<dyn JobPlanner>,
    resources: ResourceManager,
    /// The secret of calls to the workers.
    token: Token,
    /// The coordinator's own settings, under every job's.
    settings: Vec<Setting>,
    /// Where running jobs are recorded, to outlive the coordinator.
    records: Option<Arc<JobRecords>>,
    jobs: Arc<Mutex<BTreeMap<String, Job>>>,
}

impl Dispatcher {
    /// Jobs planned by `planner`, run on the workers of `resources`,
    /// called with `token`.
    pub fn new(planner: Arc<dyn JobPlanner>, resources: ResourceManager, token: Token) -> Self {
        Self {
            planner,
            resources,
            token,
            settings: Vec::new(),
            records: None,
            jobs: Arc::default(),
        }
    }

    /// Records running jobs in `records`, to resume them after a
    /// restart.
    pub fn with_records(self, records: JobRecords) -> Self {
        Self {
            records: Some(Arc::new(records)),
            ..self
        }
    }

    /// Runs every job with `settings` under its client's.
    pub fn with_settings(self, settings: Vec<Setting>) -> Self {
        Self { settings, ..self }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The settings of `spec` pinned for the cluster as it is.
    ///
    /// # Errors
    /// No worker is registered.
    fn pinned(&self, mut spec: JobSpec) -> Result<JobSpec> {
        let slots = self.resources.slots();
        if slots == 0 {
            return Err(Error::Cluster(
                "no worker has registered with this coordinator: start one with \
                 `weir worker --coordinator URL`"
                    .to_string(),
            ));
        }
        let clients = std::mem::replace(&mut spec.settings, self.settings.clone());
        spec.settings.extend(clients);
        pin_settings(&mut spec, slots);
        Ok(spec)
    }

    /// The jobs the script of `spec` makes: its queries, and whether it
    /// has INSERT INTO statements.
    ///
    /// # Errors
    /// No worker is registered, or the script does not plan.
    pub async fn describe(&self, spec: JobSpec) -> Result<proto::ScriptParts> {
        let spec = self.pinned(spec)?;
        let parts = self
            .planner
            .plan(&spec, Arc::new(PlannedOnly))
            .await
            .map_err(Error::Cluster)?;
        let queries = parts.iter().filter(|p| p.rows.is_some()).count();
        Ok(proto::ScriptParts {
            queries: queries as u32,
            inserts: parts.len() > queries,
        })
    }

    /// Plans the job of `spec` and starts it: its id, its name and, for a
    /// query, the schema of its rows as Arrow IPC.
    ///
    /// # Errors
    /// No worker is registered, or the job does not plan.
    pub async fn submit(&self, spec: JobSpec) -> Result<proto::JobAccepted> {
        self.start(spec, Vec::new()).await
    }

    /// Starts the job of `spec`, which resumes the runs whose checkpoint
    /// directories `resumes` names (removed once it finished).
    async fn start(&self, spec: JobSpec, resumes: Vec<String>) -> Result<proto::JobAccepted> {
        let spec = self.pinned(spec)?;
        let part = plan_part(self.planner.as_ref(), &spec, Arc::new(PlannedOnly))
            .await
            .map_err(Error::Cluster)?;
        let (job, mut config) = (part.job, part.config);
        if !spec.restore_from.is_empty() {
            config.restore_from = Some(spec.restore_from.clone());
            config.allow_non_restored = spec.allow_non_restored;
        }
        let schema = part
            .rows
            .map(|schema| to_ipc(&schema, None))
            .unwrap_or_default();
        let name = job.name.clone();
        let job_id: Arc<str> = new_job_id().into();
        let record = RecordedJob {
            job_id: job_id.to_string(),
            name: name.clone(),
            spec: Some(spec.clone()),
            checkpoints: match job.mode {
                RuntimeMode::Streaming => {
                    CheckpointStore::try_new(&config.checkpoint_dir, &config.store_options)?
                        .url_of(&job_id)
                }
                RuntimeMode::Batch => String::new(),
            },
            resumes,
        };
        let (ends, ended) = mpsc::unbounded_channel();
        let acks = AckSlot::default();
        let slot_wait = SlotWait::default();
        let remote = RemoteJob {
            job_id: Arc::clone(&job_id),
            fingerprint: fingerprint(&job),
            spec,
            checkpoint_job_dir: None,
            slot_request_timeout: config.slot_request_timeout,
            slot_wait: Arc::clone(&slot_wait),
        };
        let (resources, token) = (self.resources.clone(), self.token.clone());
        let executor = |runtime: JobRuntime| -> Box<dyn TaskExecutor> {
            let remote = RemoteJob {
                checkpoint_job_dir: runtime.checkpoints.map(|(_, dir)| dir),
                ..remote
            };
            let executor = RemoteExecutor::new(remote, resources, ended, Arc::clone(&acks));
            Box::new(executor.with_token(token))
        };
        let progress = JobProgress::default();
        let control = JobControl::default();
        let master = job_master(
            &config,
            job,
            Arc::clone(&job_id),
            &FailurePlan::none(),
            progress.clone(),
            control.clone(),
            executor,
        )
        .await?;
        if let Some(records) = &self.records {
            records.write(&record).await?;
        }
        let (state, watched) = watch::channel(JobState::Running);
        self.lock().insert(
            job_id.to_string(),
            Job {
                name: name.clone(),
                started: Instant::now(),
                ended: None,
                state: watched,
                progress,
                control,
                ends,
                rows: Arc::default(),
                acks,
                slot_wait,
            },
        );
        let jobs = self.clone();
        let id = job_id.to_string();
        tokio::spawn(async move {
            let ended = match master.run().await {
                Ok(summary) => JobState::Finished(summary.to_string()),
                Err(e @ Error::Cancelled { .. }) => JobState::Cancelled(e.to_string()),
                Err(e) => JobState::Failed(e.to_string()),
            };
            tracing::info!("job {id} ended: {}", ended.name());
            if let Some(records) = &jobs.records {
                records.remove(&id).await;
            }
            if matches!(ended, JobState::Finished(_)) {
                remove_checkpoints(&record.resumes, &config.store_options).await;
            }
            if let Some(job) = jobs.lock().get_mut(&id) {
                job.ended = Some(Instant::now());
            }
            let _ = state.send(ended);
        });
        tracing::info!("job {job_id} ('{name}') submitted");
        Ok(proto::JobAccepted {
            job_id: job_id.to_string(),
            name,
            schema,
        })
    }

    /// Hands a task's checkpoint acknowledgement to its job's checkpoint
    /// coordinator; drops it when the job is over.
    pub fn acknowledge(&self, ack: proto::CheckpointAck) {
        let acks = match self.lock().get(&ack.job_id) {
            Some(job) => Arc::clone(&job.acks),
            None => return,
        };
        let acks = acks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(acks) = acks.as_ref() {
            let _ = acks.send(wire::ack_from_wire(ack));
        }
    }

    /// Takes rows a worker delivered for job `rows.job_id`'s client.
    ///
    /// # Errors
    /// The job is unknown, or the rows are of a rerun.
    pub fn deliver_rows(&self, rows: proto::Rows) -> Result<()> {
        let query = match self.lock().get(&rows.job_id) {
            Some(job) => Arc::clone(&job.rows),
            None => {
                return Err(Error::Control(format!(
                    "no job '{}' on this coordinator",
                    rows.job_id
                )));
            }
        };
        query.accept(rows).map_err(Error::Cluster)
    }

    /// Takes up the jobs an earlier run of this coordinator recorded as
    /// running: each streaming job resumes as a new job (from its latest
    /// checkpoint, else as it started) once workers registered; each batch
    /// job fails, saying why.
    ///
    /// # Errors
    /// The records cannot be read.
    pub async fn recover(&self) -> Result<()> {
        let Some(records) = self.records.clone() else {
            return Ok(());
        };
        let all = records.all().await?;
        // A run resumed by another recorded one (the coordinator stopped
        // before it forgot the first) resumes once only.
        let resumed: Vec<&String> = all.iter().flat_map(|r| &r.resumes).collect();
        for record in &all {
            if resumed.contains(&&record.checkpoints) {
                records.remove(&record.job_id).await;
                continue;
            }
            if record.checkpoints.is_empty() {
                let why = "the coordinator restarted while the job ran, and batch jobs do not \
                           resume after a coordinator restart yet: run it again";
                self.insert_ended(record, JobState::Failed(why.to_string()));
                records.remove(&record.job_id).await;
                continue;
            }
            tracing::info!(
                "job {} ('{}') resumes once workers registered",
                record.job_id,
                record.name
            );
            self.insert_ended(record, JobState::Resuming);
            tokio::spawn(self.clone().resume(record.clone()));
        }
        Ok(())
    }

    /// Resumes the streaming job of `record` as a new job, once a worker
    /// registered.
    async fn resume(self, record: RecordedJob) {
        while self.resources.slots() == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut spec = record.spec.clone().unwrap_or_default();
        let mut resumes = record.resumes.clone();
        resumes.push(record.checkpoints.clone());
        let options = store_options(&spec);
        match CheckpointCoordinator::has_completed(&record.checkpoints, &options).await {
            Ok(true) => {
                spec.restore_from = record.checkpoints.clone();
                spec.allow_non_restored = false;
            }
            // No checkpoint completed: it starts as it did.
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "job {}: cannot look for checkpoints at {}: {e}",
                record.job_id,
                record.checkpoints
            ),
        }
        let state = match self.start(spec, resumes).await {
            Ok(accepted) => {
                tracing::info!("job {} resumed as {}", record.job_id, accepted.job_id);
                JobState::Resumed(accepted.job_id)
            }
            Err(e) => JobState::Failed(format!(
                "the coordinator restarted while the job ran, and it could not resume: {e}"
            )),
        };
        self.insert_ended(&record, state);
        if let Some(records) = &self.records {
            records.remove(&record.job_id).await;
        }
    }

    /// Lists job `record` as ended, as `state` says.
    fn insert_ended(&self, record: &RecordedJob, state: JobState) {
        let now = Instant::now();
        self.lock().insert(
            record.job_id.clone(),
            Job {
                name: record.name.clone(),
                started: now,
                ended: Some(now),
                state: watch::channel(state).1,
                progress: JobProgress::default(),
                control: JobControl::default(),
                ends: mpsc::unbounded_channel().0,
                rows: Arc::default(),
                acks: AckSlot::default(),
                slot_wait: SlotWait::default(),
            },
        );
    }

    /// Hands the end of an attempt to its job's master; drops it when the
    /// job is over.
    pub fn task_ended(&self, end: proto::TaskEnd) {
        if let Some(job) = self.lock().get(&end.job_id) {
            let _ = job.ends.send(end);
        }
    }

    /// The job `id` names: its full id (`id` may be the start of one).
    ///
    /// # Errors
    /// No job, or more than one, has such an id.
    pub fn resolve(&self, id: &str) -> Result<String> {
        let jobs = self.lock();
        let matching: Vec<&String> = jobs.keys().filter(|k| k.starts_with(id)).collect();
        match matching.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::Control(format!(
                "no job '{id}' on this coordinator (`weir list --coordinator URL` lists them)"
            ))),
            _ => Err(Error::Control(format!(
                "'{id}' is the start of {} job ids: give more of it",
                matching.len()
            ))),
        }
    }

    /// The state of job `id` as it changes, its progress, and its rows.
    ///
    /// # Errors
    /// No job has such an id.
    pub fn watch(&self, id: &str) -> Result<Watched> {
        let id = self.resolve(id)?;
        let jobs = self.lock();
        let job = &jobs[&id];
        Ok(Watched {
            state: job.state.clone(),
            progress: job.progress.clone(),
            rows: Arc::clone(&job.rows),
        })
    }

    /// Cancels job `id`.
    ///
    /// # Errors
    /// No job has such an id, or it does not run.
    pub fn cancel(&self, id: &str) -> Result<()> {
        self.control(id)?.cancel()
    }

    fn control(&self, id: &str) -> Result<JobControl> {
        let id = self.resolve(id)?;
        Ok(self.lock()[&id].control.clone())
    }

    /// Takes a savepoint of job `id` into `target`: its URL.
    ///
    /// # Errors
    /// No job has such an id, it does not run, takes no savepoints, or
    /// the savepoint fails.
    pub async fn savepoint(&self, id: &str, target: SavepointTarget) -> Result<String> {
        self.control(id)?.savepoint(target).await
    }

    /// Stops job `id`, with a final savepoint into `target` when given,
    /// and waits until it ended: the savepoint's URL.
    ///
    /// # Errors
    /// As [`Dispatcher::savepoint`].
    pub async fn stop(&self, id: &str, target: Option<SavepointTarget>) -> Result<Option<String>> {
        let id = self.resolve(id)?;
        let mut state = self.lock()[&id].state.clone();
        let savepoint = self.control(&id)?.stop(target).await?;
        // Answered once the job ended (it commits what the savepoint
        // covers first), as `weir list` then shows.
        let _ = state.wait_for(|s| *s != JobState::Running).await;
        Ok(savepoint)
    }

    /// Every job, in the order of their ids (the order they came).
    pub fn list(&self) -> Vec<proto::JobStatus> {
        self.lock()
            .iter()
            .map(|(id, job)| proto::JobStatus {
                job_id: id.clone(),
                name: job.name.clone(),
                state: job.state.borrow().name().to_string(),
                message: match &*job.state.borrow() {
                    JobState::Running => job
                        .slot_wait
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone()
                        .unwrap_or_default(),
                    ended => ended.message(),
                },
                running_ms: job
                    .ended
                    .unwrap_or_else(Instant::now)
                    .duration_since(job.started)
                    .as_millis() as u64,
            })
            .collect()
    }
}

/// The store options (`s3.*`) of the settings of `spec`.
fn store_options(spec: &JobSpec) -> BTreeMap<String, String> {
    // Its settings were checked when it was submitted.
    config_of(&spec.settings)
        .map(|config| config.store_options)
        .unwrap_or_default()
}

/// Removes the checkpoint directories at `urls` (of runs a finished job
/// resumed).
async fn remove_checkpoints(urls: &[String], options: &BTreeMap<String, String>) {
    for url in urls {
        let removed = match CheckpointStore::try_new(url, options) {
            Ok(store) => store.remove("").await,
            Err(e) => Err(e),
        };
        if let Err(e) = removed {
            tracing::warn!("could not remove the checkpoints at {url}: {e}");
        }
    }
}

/// Settings every process must plan the job with: the cluster's slots and,
/// unless the client chose one, a default parallelism of all of them (as
/// the embedded mode's is all the cores of the machine).
fn pin_settings(spec: &mut JobSpec, slots: u32) {
    let chosen: HashMap<&str, &str> = spec
        .settings
        .iter()
        .map(|s| (s.key.as_str(), s.value.as_str()))
        .collect();
    let mut pinned = vec![Setting {
        key: "worker.slots".to_string(),
        value: slots.to_string(),
    }];
    if !chosen.contains_key("parallelism.default") {
        pinned.push(Setting {
            key: "parallelism.default".to_string(),
            value: slots.to_string(),
        });
    }
    spec.settings.extend(pinned);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_slots_are_pinned_and_the_clients_parallelism_kept() {
        let mut spec = JobSpec::default();
        pin_settings(&mut spec, 6);
        let settings: Vec<(&str, &str)> = spec
            .settings
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
            .collect();
        assert_eq!(
            settings,
            vec![("worker.slots", "6"), ("parallelism.default", "6")]
        );
        let mut spec = JobSpec {
            settings: vec![Setting {
                key: "parallelism.default".to_string(),
                value: "2".to_string(),
            }],
            ..JobSpec::default()
        };
        pin_settings(&mut spec, 6);
        assert_eq!(spec.settings.len(), 2);
        assert_eq!(spec.settings[0].value, "2");
    }
}
