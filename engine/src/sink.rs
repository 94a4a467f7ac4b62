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

    /// Every subtask of the job finished: makes the output of the attempts
    /// in `commit` visible. Called once per job, after every task ended.
    ///
    /// # Errors
    /// When the output cannot be published; the job fails.
    async fn commit_job(&self, commit: &JobCommit) -> Result<()> {
        let _ = commit;
        Ok(())
    }

    /// Checkpoint `checkpoint` completed: makes visible what the
    /// `committables` its subtasks prepared stand for. Called again with
    /// the same committables when a job restarts from that checkpoint:
    /// committing twice changes nothing.
    ///
    /// # Errors
    /// When the output cannot be published; the job fails.
    async fn commit_checkpoint(
        &self,
        checkpoint: u64,
        committables: &[serde_json::Value],
    ) -> Result<()> {
        let _ = (checkpoint, committables);
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
