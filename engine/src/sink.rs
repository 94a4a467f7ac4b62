//! The sink contract.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::{Result, TaskInfo};

/// Writes the records of one subtask of a sink vertex.
///
/// Contract: nothing a sink writes becomes visible to readers before
/// `finish` returned, and an attempt that never reaches `finish` (it failed
/// or was cancelled) leaves nothing visible: a rerun of the subtask writes
/// its output anew, never twice.
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
}

/// Creates the sink of each subtask attempt.
pub trait SinkFactory: Send + Sync + Debug {
    /// The sink's name in plans and summaries.
    fn name(&self) -> String;

    /// Creates the sink for one subtask attempt.
    ///
    /// # Errors
    /// When the sink cannot be opened.
    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Sink>>;
}
