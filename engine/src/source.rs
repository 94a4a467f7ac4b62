//! The source contract.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::{Result, TaskInfo};

/// Whether a source ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Boundedness {
    /// The source ends (batch).
    Bounded,
    /// The source runs until stopped (streaming).
    Unbounded,
}

/// Produces the records of one subtask of a source vertex.
///
/// Contract: `next_batch` does no work before it is first called, returns
/// `Ok(None)` exactly once at the end of a bounded input, and runs CPU-heavy
/// work (decoding, generating) through [`weir_exchange::cpu::run`] so that the
/// async caller is never blocked. Each subtask reads its own disjoint share of
/// the input (its splits); together the subtasks read all of it.
#[async_trait]
pub trait Source: Send {
    /// The next batch, or `None` when a bounded input is exhausted.
    ///
    /// # Errors
    /// When the input cannot be read; the task fails.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>>;
}

/// Creates the source of each subtask attempt.
pub trait SourceFactory: Send + Sync + Debug {
    /// The source's name in plans and summaries.
    fn name(&self) -> String;

    /// Whether the source ends.
    fn boundedness(&self) -> Boundedness;

    /// The schema of every batch the source produces.
    fn schema(&self) -> SchemaRef;

    /// About how many bytes of Arrow data the source produces in all, when
    /// it can tell cheaply (planners use it to pick broadcast joins and
    /// build sides).
    fn estimated_bytes(&self) -> Option<u64> {
        None
    }

    /// Whether every attempt reads the same records in the same order.
    fn is_deterministic(&self) -> bool {
        true
    }

    /// Creates the source for one subtask attempt.
    ///
    /// # Errors
    /// When the source cannot be opened.
    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Source>>;
}
