//! The sink contract.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::{Result, TaskInfo};

/// Writes the records of one subtask of a sink vertex.
///
/// Contract: nothing a sink writes becomes visible to readers before
/// `finish` returned, and an attempt that never reaches `finish` (it failed
/// or was cancelled) leaves nothing visible: a rerun of the subtask writes
/// its output anew, never twice. Sinks of external systems go further and
/// stage their output until the whole job succeeded
/// ([`SinkFactory::commit_job`]).
#[async_trait]
pub trait Sink: Send {
    /// Writes one batch.
    ///
    /// # Errors
    /// When the batch cannot be written; the task fails.
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()>;

    /// The input has ended: make the output of this attempt visible.
    ///
    /// # Errors
    /// When the output cannot be committed.
    async fn finish(&mut self) -> Result<()>;

    /// A checkpoint barrier reached the sink: make everything written
    /// since the previous one durable but not yet visible (the first phase
    /// of a two-phase commit) and return what commits it, which
    /// [`SinkFactory::commit_checkpoint`] is given once the checkpoint
    /// completes. `None` when there is nothing to commit.
    ///
    /// The default refuses, so that no sink takes part in checkpoints
    /// without saying how its output survives a restart: a sink whose
    /// output may be repeated (at least once) returns `None`.
    ///
    /// # Errors
    /// When the output cannot be prepared; the checkpoint fails.
    async fn prepare_commit(&mut self, checkpoint: u64) -> Result<Option<serde_json::Value>> {
        let _ = checkpoint;
        Err(crate::Error::Checkpoint(
            "this sink cannot take part in checkpoints".to_string(),
        ))
    }
}

/// The end of a successful job, as a sink vertex sees it.
#[derive(Debug, Clone)]
pub struct JobCommit {
    /// The job's id (as in [`TaskInfo::job_id`]).
    pub job_id: Arc<str>,
    /// The attempt of each subtask whose output counts, by subtask index.
    pub attempts: Vec<u32>,
}

/// A completed (or completing) checkpoint, as a sink vertex commits it.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointCommit<'a> {
    /// The id of the job committing (as in [`TaskInfo::job_id`]).
    pub job_id: &'a str,
    /// The checkpoint's number.
    pub checkpoint: u64,
    /// What the subtasks prepared for it ([`Sink::prepare_commit`]).
    pub committables: &'a [serde_json::Value],
    /// The URL of the checkpoint's metadata, whose existence says that the
    /// checkpoint completed; `None` for a checkpoint known to be complete
    /// (one a job resumes from).
    pub decided_by: Option<&'a str>,
}

/// Creates the sink of each subtask attempt, and publishes or discards their
/// output when the job ends.
#[async_trait]
pub trait SinkFactory: Send + Sync + Debug {
    /// The sink's name in plans and summaries.
    fn name(&self) -> String;

    /// Creates the sink for one subtask attempt.
    ///
    /// # Errors
    /// When the sink cannot be opened.
    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Sink>>;

    /// Why the sink cannot write the output of an unbounded job that
    /// takes no checkpoints (it makes its output visible only when a
    /// checkpoint completes, or the job ends), or `None` when it can. Such
    /// a job is refused before it starts.
    fn needs_checkpoints(&self) -> Option<String> {
        None
    }

    /// The job starts, in the process that decides its commits (its job
    /// master), before any of its attempts runs: whatever records who owns
    /// the job's staged output names this process, which lives as long as
    /// the job, wherever its attempts run.
    ///
    /// # Errors
    /// When the sink's storage cannot be written; the job fails.
    async fn open_job(&self, job_id: &str) -> Result<()> {
        let _ = job_id;
        Ok(())
    }

    /// Every subtask of the job finished: makes the output of the attempts
    /// in `commit` visible. Called once per job, after every task ended.
    ///
    /// # Errors
    /// When the output cannot be published; the job fails.
    async fn commit_job(&self, commit: &JobCommit) -> Result<()> {
        let _ = commit;
        Ok(())
    }

    /// Every task acknowledged a checkpoint, which completes once its
    /// metadata (at `commit.decided_by`) is written: records what it
    /// commits, so that whoever finds the record once the metadata exists
    /// can carry the commit out, even if this process is gone by then.
    ///
    /// # Errors
    /// When the record cannot be written; the checkpoint fails.
    async fn prepare_checkpoint_commit(&self, commit: &CheckpointCommit<'_>) -> Result<()> {
        let _ = commit;
        Ok(())
    }

    /// The checkpoint completed: makes visible what the committables its
    /// subtasks prepared stand for. Called again with the same
    /// committables when a job restarts or resumes from that checkpoint:
    /// committing twice changes nothing.
    ///
    /// # Errors
    /// When the output cannot be published; the job fails.
    async fn commit_checkpoint(&self, commit: &CheckpointCommit<'_>) -> Result<()> {
        let _ = commit;
        Ok(())
    }

    /// The job failed or was cancelled: removes whatever its attempts
    /// staged. Called once per job, after every task ended.
    ///
    /// # Errors
    /// When staged output cannot be removed (reported, the job fails anyway).
    async fn abort_job(&self, job_id: &str) -> Result<()> {
        let _ = job_id;
        Ok(())
    }
}
