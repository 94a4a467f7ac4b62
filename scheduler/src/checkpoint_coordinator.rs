//! The checkpoint coordinator of a streaming job: triggers checkpoints
//! periodically by injecting barriers at the sources, collects every
//! task's acknowledgement, records a completed checkpoint's metadata,
//! keeps the last `execution.checkpointing.num-retained` and removes the
//! rest; and tells each restarted task what to resume from.
//!
//! One checkpoint is in flight at a time. A task that cannot take part
//! declines it: that checkpoint fails and the job goes on; the next one is
//! triggered an interval later.
//!
//! Layout under the checkpoint directory: `<job>/chk-<n>/` holds the state
//! files of checkpoint `n` and its `_metadata` (JSON), written last: a
//! checkpoint without metadata never completed.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use weir_engine::checkpoint::{CheckpointAck, SplitPosition, TaskCheckpoint, TaskRestore};
use weir_engine::graph::JobGraph;
use weir_exchange::checkpoint_store::{CheckpointStore, StateFile};

use crate::execution_graph::ExecutionGraph;
use crate::{Error, Result};

/// The file recording a completed checkpoint.
pub const METADATA_FILE: &str = "_metadata";

/// A completed checkpoint, as its `_metadata` file records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointMetadata {
    /// The checkpoint's number.
    pub checkpoint: u64,
    /// When it was triggered (ms since the epoch).
    pub timestamp_ms: i64,
    /// The job's number of key groups.
    pub max_parallelism: usize,
    /// Every vertex's part, in vertex order.
    pub vertices: Vec<VertexCheckpoint>,
}

/// One vertex's part of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VertexCheckpoint {
    /// The vertex's name (what its chain runs).
    pub name: String,
    /// What its state belongs to ([`Chain::state_name`]): a job's vertex
    /// resumes from this part when its chain's is the same.
    ///
    /// [`Chain::state_name`]: weir_engine::graph::Chain::state_name
    #[serde(default)]
    pub state: String,
    /// Each subtask's part, by subtask index.
    pub tasks: Vec<TaskCheckpoint>,
    /// What its sinks prepared for earlier checkpoints that failed, which
    /// this one commits.
    #[serde(default, skip_serializing_if = "Carried::is_empty")]
    pub carried: Carried,
}

/// Committables of failed checkpoints, carried to the next one that
/// completes (as Flink's committer keeps them in its state): a failed
/// checkpoint does not roll the job back, so what sinks prepared for it
/// stays the job's output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Carried {
    /// Of the vertex's sink.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub committables: Vec<serde_json::Value>,
    /// Of the sink of its late records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub late_committables: Vec<serde_json::Value>,
}

impl Carried {
    fn is_empty(&self) -> bool {
        self.committables.is_empty() && self.late_committables.is_empty()
    }

    /// Keeps what `part` prepared.
    fn keep(&mut self, part: &TaskCheckpoint) {
        self.committables.extend(part.committable.clone());
        self.late_committables.extend(part.late_committable.clone());
    }
}

impl CheckpointMetadata {
    /// What subtask `subtask` of `parallelism` of vertex `vertex` resumes
    /// from: the source splits dealt to it (by `owner`, else by split
    /// number, round-robin over the subtasks) and every subtask's state
    /// files; `None` when the checkpoint holds nothing of the vertex (it
    /// starts afresh).
    pub fn restore(
        &self,
        vertex: usize,
        subtask: usize,
        parallelism: usize,
        owner: impl Fn(&SplitPosition) -> Option<usize>,
    ) -> Option<TaskRestore> {
        let part = self.vertices.get(vertex).filter(|v| !v.tasks.is_empty())?;
        let mut splits: Vec<&SplitPosition> = part.tasks.iter().flat_map(|t| &t.splits).collect();
        splits.sort_by_key(|s| s.split);
        let operators = part.tasks.first().map_or(0, |t| t.operators.len());
        Some(TaskRestore {
            checkpoint: self.checkpoint,
            store: None,
            splits: splits
                .into_iter()
                .enumerate()
                .filter(|(k, s)| owner(s).unwrap_or(k % parallelism) == subtask)
                .map(|(_, s)| s.clone())
                .collect(),
            operators: (0..operators)
                .map(|op| {
                    part.tasks
                        .iter()
                        .enumerate()
                        .filter_map(|(old, t)| Some((old, t.operators.get(op)?.clone()?)))
                        .collect()
                })
                .collect(),
        })
    }

    /// Where every split of the source of vertex `vertex` was.
    pub fn positions(&self, vertex: usize) -> Vec<SplitPosition> {
        self.vertices
            .get(vertex)
            .map(|v| v.tasks.iter().flat_map(|t| t.splits.clone()).collect())
            .unwrap_or_default()
    }

    /// The committables the tasks of vertex `vertex` prepared for its
    /// sink, or for the sink of its late records when `late`.
    pub fn committables(&self, vertex: usize, late: bool) -> Vec<serde_json::Value> {
        self.vertices
            .get(vertex)
            .map(|v| {
                let carried = match late {
                    false => &v.carried.committables,
                    true => &v.carried.late_committables,
                };
                let own = v.tasks.iter().filter_map(|t| match late {
                    false => t.committable.clone(),
                    true => t.late_committable.clone(),
                });
                carried.iter().cloned().chain(own).collect()
            })
            .unwrap_or_default()
    }

    /// Its state files.
    pub fn state_files(&self) -> impl Iterator<Item = &StateFile> {
        self.vertices
            .iter()
            .flat_map(|v| &v.tasks)
            .flat_map(|t| t.operators.iter().flatten())
    }

    fn state_files_mut(&mut self) -> impl Iterator<Item = &mut StateFile> {
        self.vertices
            .iter_mut()
            .flat_map(|v| v.tasks.iter_mut())
            .flat_map(|t| t.operators.iter_mut().flatten())
    }

    /// This checkpoint made to fit `job`: the same key groups, and the
    /// same state at every place (the same operators, sources and sinks,
    /// whatever their connectors: `Chain::state_name`). With
    /// `allow_non_restored`, a vertex that differs starts afresh and state
    /// of vertices the job no longer has is dropped.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] naming the first difference.
    pub fn fit(mut self, job: &JobGraph, allow_non_restored: bool) -> Result<Self> {
        if self.max_parallelism != job.max_parallelism {
            return Err(Error::Checkpoint(format!(
                "checkpoint {} has {} key groups and the job {}: set pipeline.max-parallelism to {}",
                self.checkpoint, self.max_parallelism, job.max_parallelism, self.max_parallelism
            )));
        }
        let mut parts = std::mem::take(&mut self.vertices).into_iter();
        for vertex in &job.vertices {
            let part = parts.next();
            match part {
                Some(part) if part.state == vertex.chain.state_name() => self.vertices.push(part),
                other if allow_non_restored => {
                    if let Some(dropped) = other.filter(|p| !p.tasks.is_empty()) {
                        tracing::warn!(
                            "state of '{}' not restored: the job runs '{}' there",
                            dropped.name,
                            vertex.name
                        );
                    }
                    self.vertices.push(VertexCheckpoint {
                        name: vertex.name.clone(),
                        state: vertex.chain.state_name(),
                        tasks: Vec::new(),
                        carried: Carried::default(),
                    });
                }
                Some(part) => {
                    return Err(Error::Checkpoint(format!(
                        "checkpoint {} holds state of '{}' where the job runs '{}' \
                         (allow non-restored state to start that vertex afresh)",
                        self.checkpoint, part.name, vertex.name
                    )));
                }
                None => {
                    return Err(Error::Checkpoint(format!(
                        "checkpoint {} has no state of '{}' (allow non-restored state to start it afresh)",
                        self.checkpoint, vertex.name
                    )));
                }
            }
        }
        let left: Vec<String> = parts
            .filter(|p| !p.tasks.is_empty())
            .map(|p| p.name)
            .collect();
        if !left.is_empty() && !allow_non_restored {
            return Err(Error::Checkpoint(format!(
                "checkpoint {} holds state of {} the job does not run (allow non-restored state to drop it)",
                self.checkpoint,
                left.join(", ")
            )));
        }
        Ok(self)
    }
}

/// A checkpoint in flight.
#[derive(Debug)]
struct Pending {
    id: u64,
    started: Instant,
    timestamp_ms: i64,
    /// The parts acknowledged so far, by (vertex, subtask).
    parts: BTreeMap<(u32, usize), TaskCheckpoint>,
    /// The savepoint it was triggered for, if it was.
    savepoint: Option<SavepointRequest>,
}

/// A savepoint asked for: where it goes, and who waits for it.
#[derive(Debug)]
pub(crate) struct SavepointRequest {
    /// The directory or URL it is written to.
    pub dir: String,
    /// Who waits for it.
    pub reply: SavepointReply,
}

/// Who waits for a savepoint: a request for a savepoint, or to stop with
/// one.
#[derive(Debug)]
pub(crate) enum SavepointReply {
    /// Answered with the savepoint's URL; the job goes on.
    Savepoint(tokio::sync::oneshot::Sender<Result<String>>),
    /// Answered with the savepoint's URL; the job stops once it is taken.
    Stop(tokio::sync::oneshot::Sender<Result<Option<String>>>),
}

impl SavepointReply {
    /// Whether the job stops once the savepoint is taken.
    fn stops(&self) -> bool {
        matches!(self, SavepointReply::Stop(_))
    }

    /// Answers the request (the requester may be gone).
    pub fn send(self, outcome: Result<String>) {
        match self {
            SavepointReply::Savepoint(reply) => {
                let _ = reply.send(outcome);
            }
            SavepointReply::Stop(reply) => {
                let _ = reply.send(outcome.map(Some));
            }
        }
    }
}

/// What became of an acknowledgement.
#[derive(Debug)]
pub enum AckOutcome {
    /// The checkpoint still waits for other tasks, or the ack was stale.
    Waiting,
    /// Every task acknowledged: the checkpoint completes once the sinks
    /// recorded what it commits and [`CheckpointCoordinator::complete`]
    /// wrote its metadata.
    Acknowledged(Box<CheckpointMetadata>),
    /// The checkpoint is complete.
    Completed {
        /// What it recorded.
        metadata: Box<CheckpointMetadata>,
        /// Where the savepoint the job stops with was written, when it was
        /// one.
        stopped_at: Option<String>,
    },
    /// A task declined: the checkpoint failed.
    Declined {
        /// The checkpoint.
        checkpoint: u64,
        /// Why, naming the task.
        reason: String,
    },
}

/// Counts of the checkpoints of one job, for its summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CheckpointStats {
    /// Checkpoints that completed.
    pub completed: u64,
    /// Checkpoints that failed (declined, or cut short by a failure).
    pub failed: u64,
    /// How long the last completed one took.
    pub last_duration_ms: u64,
    /// The bytes of its state files.
    pub last_bytes: u64,
    /// The rows of its state files.
    pub last_rows: u64,
    /// The number of the last completed one.
    pub last_checkpoint: Option<u64>,
}

/// The number of the latest checkpoint under a job's checkpoint
/// directory whose metadata was written.
async fn latest_completed(store: &CheckpointStore) -> Result<Option<u64>> {
    Ok(store
        .list("")
        .await?
        .iter()
        .filter_map(|path| {
            let (dir, file) = path.rsplit_once('/')?;
            let number = dir.rsplit('/').next()?.strip_prefix("chk-")?;
            (file == METADATA_FILE).then(|| number.parse().ok())?
        })
        .max())
}

/// Triggers and completes the checkpoints of one job.
pub(crate) struct CheckpointCoordinator {
    store: CheckpointStore,
    job_dir: String,
    interval: Option<Duration>,
    retained: usize,
    /// How long a checkpoint may be in flight.
    timeout: Duration,
    next_id: u64,
    next_trigger: Option<Instant>,
    pending: Option<Pending>,
    /// Savepoints asked for, taken one after the other.
    savepoints: VecDeque<SavepointRequest>,
    /// Completed checkpoints, oldest first.
    completed: VecDeque<CheckpointMetadata>,
    acks: (
        UnboundedSender<CheckpointAck>,
        UnboundedReceiver<CheckpointAck>,
    ),
    stats: CheckpointStats,
    /// What the sinks prepared for checkpoints that failed, by vertex,
    /// until one completes.
    carried: BTreeMap<u32, Carried>,
    /// The last checkpoint triggered before the job last restarted: what
    /// tasks acknowledge for it or earlier belongs to attempts that are
    /// gone.
    restarted_after: u64,
}

impl CheckpointCoordinator {
    /// Checkpoints every `interval` (only savepoints asked for when
    /// `None`) into `store`, under `job_dir`, each expiring after
    /// `timeout`.
    pub fn new(
        store: CheckpointStore,
        job_dir: String,
        interval: Option<Duration>,
        retained: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            store,
            job_dir,
            interval,
            retained: retained.max(1),
            timeout,
            next_id: 1,
            next_trigger: interval.map(|i| Instant::now() + i),
            pending: None,
            savepoints: VecDeque::new(),
            completed: VecDeque::new(),
            acks: unbounded_channel(),
            stats: CheckpointStats::default(),
            carried: BTreeMap::new(),
            restarted_after: 0,
        }
    }

    /// Whether it checkpoints periodically (not only for savepoints).
    pub fn is_periodic(&self) -> bool {
        self.interval.is_some()
    }

    pub fn store(&self) -> &CheckpointStore {
        &self.store
    }

    pub fn job_dir(&self) -> &str {
        &self.job_dir
    }

    /// Where tasks acknowledge.
    pub fn ack_sender(&self) -> UnboundedSender<CheckpointAck> {
        self.acks.0.clone()
    }

    /// The next acknowledgement.
    pub async fn next_ack(&mut self) -> Option<CheckpointAck> {
        self.acks.1.recv().await
    }

    /// When the next checkpoint is due (none while one is in flight): now
    /// when a savepoint waits.
    pub fn next_trigger(&self) -> Option<Instant> {
        if self.pending.is_some() {
            return None;
        }
        if !self.savepoints.is_empty() {
            return Some(Instant::now());
        }
        self.next_trigger
    }

    /// When the checkpoint in flight expires, if one is.
    pub fn expires_at(&self) -> Option<Instant> {
        self.pending.as_ref().map(|p| p.started + self.timeout)
    }

    /// Gives up the checkpoint in flight, which took too long.
    pub async fn expire(&mut self) -> AckOutcome {
        let reason = format!(
            "it expired before it completed, after {:?} (execution.checkpointing.timeout)",
            self.timeout
        );
        self.abort(reason).await
    }

    /// Asks for a savepoint, taken as soon as no checkpoint is in flight.
    pub fn request_savepoint(&mut self, request: SavepointRequest) {
        self.savepoints.push_back(request);
    }

    /// Skips a checkpoint that is due now (not every task runs); the
    /// savepoints waiting fail.
    pub fn postpone(&mut self, why: &str) {
        self.next_trigger = self.interval.map(|i| Instant::now() + i);
        for request in self.savepoints.drain(..) {
            request
                .reply
                .send(Err(Error::Checkpoint(format!("no savepoint taken: {why}"))));
        }
    }

    /// Starts the next checkpoint (a savepoint, when one waits): the
    /// barrier to inject at every source.
    pub fn trigger(&mut self) -> weir_exchange::event::Barrier {
        let id = self.next_id;
        self.next_id += 1;
        let timestamp_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.pending = Some(Pending {
            id,
            started: Instant::now(),
            timestamp_ms,
            parts: BTreeMap::new(),
            savepoint: self.savepoints.pop_front(),
        });
        weir_exchange::event::Barrier {
            checkpoint_id: id,
            timestamp_ms,
        }
    }

    /// Records one task's acknowledgement of a job of `graph`.
    ///
    /// # Errors
    /// When a completed checkpoint's metadata cannot be written.
    pub async fn on_ack(
        &mut self,
        ack: CheckpointAck,
        graph: &ExecutionGraph,
    ) -> Result<AckOutcome> {
        let Some(pending) = self.pending.as_mut().filter(|p| p.id == ack.checkpoint) else {
            // A part of a checkpoint that failed already: what its sink
            // prepared is still the job's output, unless its attempt was
            // restarted since.
            if let Ok(part) = &ack.outcome
                && ack.checkpoint > self.restarted_after
            {
                self.carried.entry(ack.vertex).or_default().keep(part);
            }
            return Ok(AckOutcome::Waiting);
        };
        let part = match ack.outcome {
            Ok(part) => part,
            Err(reason) => {
                let name = &graph.job.vertices[ack.vertex as usize].name;
                let reason = format!("task '{name}' [{}]: {reason}", ack.subtask + 1);
                return Ok(self.abort(reason).await);
            }
        };
        pending.parts.insert((ack.vertex, ack.subtask), part);
        if pending.parts.len() < graph.subtasks.len() {
            return Ok(AckOutcome::Waiting);
        }
        // The parts stay with the checkpoint until it completes: should it
        // fail still, what they prepared is carried.
        let parts = &pending.parts;
        let metadata = CheckpointMetadata {
            checkpoint: pending.id,
            timestamp_ms: pending.timestamp_ms,
            max_parallelism: graph.job.max_parallelism,
            vertices: graph
                .job
                .vertices
                .iter()
                .map(|v| VertexCheckpoint {
                    name: v.name.clone(),
                    state: v.chain.state_name(),
                    tasks: (0..v.parallelism)
                        .map(|s| parts.get(&(v.id.0, s)).cloned().unwrap_or_default())
                        .collect(),
                    carried: self.carried.get(&v.id.0).cloned().unwrap_or_default(),
                })
                .collect(),
        };
        Ok(AckOutcome::Acknowledged(Box::new(metadata)))
    }

    /// Completes the acknowledged checkpoint in flight by writing its
    /// metadata (the sinks recorded what it commits first), keeps the last
    /// `retained` checkpoints, and writes the savepoint it was asked for.
    /// When the metadata cannot be written, the checkpoint is declined.
    ///
    /// # Errors
    /// When its metadata cannot be serialized.
    pub async fn complete(&mut self, metadata: CheckpointMetadata) -> Result<AckOutcome> {
        let Some(mut pending) = self.pending.take().filter(|p| p.id == metadata.checkpoint) else {
            return Ok(AckOutcome::Waiting);
        };
        let savepoint = pending.savepoint.take();
        let json = serde_json::to_vec_pretty(&metadata)
            .map_err(|e| Error::Checkpoint(format!("checkpoint metadata: {e}")))?;
        let path = self.metadata_path(metadata.checkpoint);
        if let Err(e) = self.store.write_file(&path, json).await {
            // Declined like any other failed checkpoint: its files go, the
            // job goes on from the one before.
            self.pending = Some(pending);
            if let Some(request) = savepoint {
                request.reply.send(Err(Error::Checkpoint(format!(
                    "the savepoint failed: its metadata could not be written: {e}"
                ))));
            }
            let reason = format!(
                "its metadata could not be written to {}: {e}",
                self.store.url_of(&path)
            );
            return Ok(self.abort(reason).await);
        }
        // Its metadata holds what was carried: committed with it.
        self.carried.clear();
        self.stats.completed += 1;
        self.stats.last_duration_ms = pending.started.elapsed().as_millis() as u64;
        self.stats.last_bytes = metadata.state_files().map(|f| f.bytes).sum();
        self.stats.last_rows = metadata.state_files().map(|f| f.rows).sum();
        self.stats.last_checkpoint = Some(metadata.checkpoint);
        self.completed.push_back(metadata.clone());
        while self.completed.len() > self.retained {
            if let Some(old) = self.completed.pop_front() {
                self.remove(old.checkpoint).await;
            }
        }
        self.next_trigger = self.interval.map(|i| Instant::now() + i);
        let mut stopped_at = None;
        if let Some(request) = savepoint {
            let written = self.write_savepoint(&metadata, &request.dir).await;
            if request.reply.stops() {
                stopped_at = written.as_ref().ok().cloned();
            }
            request.reply.send(written);
        }
        Ok(AckOutcome::Completed {
            metadata: Box::new(metadata),
            stopped_at,
        })
    }

    /// Copies a completed checkpoint into `dir` as a savepoint: its state
    /// files and its metadata, whose paths are relative to `dir`, written
    /// last. A savepoint `dir` held is whole until then, as its files and
    /// the new ones have different names (the checkpoint's paths); its
    /// files are removed after.
    async fn write_savepoint(&self, metadata: &CheckpointMetadata, dir: &str) -> Result<String> {
        let target = self.store.open(dir)?;
        let replaced = match target.read(METADATA_FILE).await {
            Ok(bytes) => Some(
                serde_json::from_slice::<CheckpointMetadata>(&bytes).map_err(|e| {
                    Error::Checkpoint(format!(
                        "{} holds a {METADATA_FILE} that is not a savepoint ({e}); give another directory",
                        target.url()
                    ))
                })?,
            ),
            Err(weir_exchange::Error::CheckpointNotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let mut copy = metadata.clone();
        let mut written = Vec::new();
        let copied = async {
            for file in copy.state_files_mut() {
                let bytes = self.store.read(&file.path).await?;
                let name = file.path.replace('/', "-");
                target.write_file(&name, bytes.to_vec()).await?;
                written.push(name.clone());
                file.path = name;
            }
            let json = serde_json::to_vec_pretty(&copy)
                .map_err(|e| Error::Checkpoint(format!("savepoint metadata: {e}")))?;
            target.write_file(METADATA_FILE, json).await?;
            Ok::<(), Error>(())
        };
        if let Err(e) = copied.await {
            for name in &written {
                let _ = target.remove_file(name).await;
            }
            return Err(e);
        }
        for old in replaced.iter().flat_map(CheckpointMetadata::state_files) {
            if !written.contains(&old.path)
                && let Err(e) = target.remove_file(&old.path).await
            {
                tracing::warn!(
                    "could not remove {} of the savepoint replaced: {e}",
                    old.path
                );
            }
        }
        Ok(target.url().to_string())
    }

    /// Gives up the checkpoint in flight (a task declined or failed, or
    /// finished before it took part).
    pub async fn abort(&mut self, reason: String) -> AckOutcome {
        let Some(pending) = self.pending.take() else {
            return AckOutcome::Waiting;
        };
        for ((vertex, _), part) in &pending.parts {
            self.carried.entry(*vertex).or_default().keep(part);
        }
        self.stats.failed += 1;
        self.next_trigger = self.interval.map(|i| Instant::now() + i);
        self.remove(pending.id).await;
        if let Some(request) = pending.savepoint {
            request.reply.send(Err(Error::Checkpoint(format!(
                "the savepoint failed: {reason}"
            ))));
        }
        AckOutcome::Declined {
            checkpoint: pending.id,
            reason,
        }
    }

    /// The job restarts from its latest completed checkpoint: what its
    /// attempts prepared since is not its output, and what they still
    /// acknowledge is not either.
    pub fn restarted(&mut self) {
        self.carried.clear();
        self.restarted_after = self.next_id - 1;
    }

    /// The latest completed checkpoint, to restart from.
    pub fn latest(&self) -> Option<&CheckpointMetadata> {
        self.completed.back()
    }

    /// Forgets the latest completed checkpoint, which cannot be restored
    /// (a file of it is missing or corrupt): the next restart falls back
    /// to the one before.
    pub async fn discard_latest(&mut self) -> Option<u64> {
        let broken = self.completed.pop_back()?;
        self.remove(broken.checkpoint).await;
        Some(broken.checkpoint)
    }

    pub fn stats(&self) -> CheckpointStats {
        self.stats
    }

    /// Whether the job checkpoint directory at `url` holds a completed
    /// checkpoint to resume from.
    ///
    /// # Errors
    /// The directory cannot be listed.
    pub async fn has_completed(url: &str, options: &BTreeMap<String, String>) -> Result<bool> {
        let store = CheckpointStore::try_new(url, options)?;
        Ok(latest_completed(&store).await?.is_some())
    }

    /// Reads the savepoint (or checkpoint directory) at `url`, with store
    /// `options`.
    ///
    /// # Errors
    /// When it has no readable metadata.
    pub async fn read_savepoint(
        url: &str,
        options: &BTreeMap<String, String>,
    ) -> Result<(CheckpointStore, CheckpointMetadata)> {
        let store = CheckpointStore::try_new(url, options)?;
        let (url, bytes) = match store.read(METADATA_FILE).await {
            Ok(bytes) => (url.to_string(), bytes),
            Err(weir_exchange::Error::CheckpointNotFound { .. }) => {
                // A job's checkpoint directory: its latest completed
                // checkpoint, as Flink resumes from retained checkpoints.
                let latest = latest_completed(&store).await?.ok_or_else(|| {
                    Error::Checkpoint(format!(
                        "{url} is not a savepoint (no {METADATA_FILE}), nor a job's checkpoint \
                         directory with a completed checkpoint (chk-<n>/{METADATA_FILE})"
                    ))
                })?;
                let chk = format!("{}/chk-{latest}", url.trim_end_matches('/'));
                tracing::info!("resuming from {chk}, the latest completed checkpoint in {url}");
                let bytes = store.read(&format!("chk-{latest}/{METADATA_FILE}")).await?;
                (chk, bytes)
            }
            Err(e) => return Err(e.into()),
        };
        let metadata: CheckpointMetadata = serde_json::from_slice(&bytes).map_err(|e| {
            Error::Checkpoint(format!(
                "the metadata of savepoint {url} is unreadable: {e}"
            ))
        })?;
        // A checkpoint's state files are named from the checkpoint
        // directory, `<job>/chk-<n>/...`; a savepoint's from its own.
        let base = metadata
            .state_files()
            .next()
            .and_then(|file| file.path.rsplit_once('/'))
            .and_then(|(dir, _)| url.trim_end_matches('/').strip_suffix(dir))
            .map_or(url.clone(), |base| base.trim_end_matches('/').to_string());
        Ok((store.open(&base)?, metadata))
    }

    /// Removes every checkpoint of the job (it finished).
    pub async fn remove_all(&mut self) {
        if let Err(e) = self.store.remove(&self.job_dir).await {
            tracing::warn!("could not remove the checkpoints of {}: {e}", self.job_dir);
        }
        self.completed.clear();
    }

    /// Where the metadata of checkpoint `checkpoint` is: the file whose
    /// existence says that it completed.
    pub fn metadata_url(&self, checkpoint: u64) -> String {
        self.store.url_of(&self.metadata_path(checkpoint))
    }

    /// Where checkpoint `checkpoint` is.
    pub fn checkpoint_url(&self, checkpoint: u64) -> String {
        self.store.url_of(&self.checkpoint_dir(checkpoint))
    }

    fn checkpoint_dir(&self, checkpoint: u64) -> String {
        format!("{}/chk-{checkpoint}", self.job_dir)
    }

    fn metadata_path(&self, checkpoint: u64) -> String {
        format!("{}/{METADATA_FILE}", self.checkpoint_dir(checkpoint))
    }

    async fn remove(&self, checkpoint: u64) {
        let dir = self.checkpoint_dir(checkpoint);
        if let Err(e) = self.store.remove(&dir).await {
            tracing::warn!("could not remove checkpoint {dir}: {e}");
        }
    }
}
