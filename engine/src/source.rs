//! The source contract.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::checkpoint::SplitPosition;
use crate::expr::Expr;
use crate::{Result, TaskInfo};

/// The field metadata key that marks a declared column as metadata of its
/// source rather than data (SQL's `col BIGINT METADATA FROM 'offset'`):
/// its value names the metadata (`offset`), as the source's connector
/// knows it.
pub const METADATA_FROM: &str = "weir.metadata.from";

/// The field metadata key that marks a metadata column as only read
/// (SQL's `VIRTUAL`): writing to the table leaves it out.
pub const METADATA_VIRTUAL: &str = "weir.metadata.virtual";

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
/// async caller is never blocked. A source with nothing to read for a while
/// (a quiet unbounded input) returns an empty batch every so often (about
/// every 100 ms) rather than wait on: checkpoint barriers go in between two
/// reads, and an empty batch does not count as activity for watermarks. Each subtask reads its own disjoint share of
/// the input (its splits); together the subtasks read all of it.
#[async_trait]
pub trait Source: Send {
    /// The next batch, or `None` when a bounded input is exhausted.
    ///
    /// # Errors
    /// When the input cannot be read; the task fails.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>>;

    /// The splits this subtask reads, known before it reads any. A split is
    /// a part of the input with an event-time order of its own (a
    /// generator's share, a partition of a log); watermarks follow each
    /// split and take the slowest. The default is one split, `0`.
    fn splits(&self) -> Vec<u32> {
        vec![0]
    }

    /// The split the batch `next_batch` last returned came from (one of
    /// [`splits`](Self::splits)).
    fn last_split(&self) -> u32 {
        0
    }

    /// Where each split is, for a checkpoint: the position after the batch
    /// `next_batch` last returned. `None` (the default) when the source
    /// cannot resume from a position: checkpoints of jobs reading it fail.
    fn positions(&self) -> Option<Vec<SplitPosition>> {
        None
    }
}

/// What a scan asks of a source: the columns to produce and the predicates
/// rows must pass.
#[derive(Debug, Clone, Default)]
pub struct ScanRequest {
    /// The columns to produce, by index into the source's schema, in this
    /// order (`None`: every column).
    pub projection: Option<Vec<usize>>,
    /// Predicates over the source's columns, all of which a row must pass.
    /// A source uses them to skip data it can prove fails them; it may still
    /// produce rows that fail (the planner filters after the source).
    pub filters: Vec<Expr>,
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

    /// How many input rows the source covers in all, when it can tell
    /// cheaply (progress is reported as the rows covered of these; see
    /// [`crate::task::ScanProgress`]).
    fn estimated_rows(&self) -> Option<u64> {
        None
    }

    /// Whether every attempt reads the same records in the same order.
    fn is_deterministic(&self) -> bool {
        true
    }

    /// A source that reads only what `request` asks for, or `None` when the
    /// source cannot narrow its reads (the planner then projects and
    /// filters after it).
    ///
    /// # Errors
    /// When the request does not fit the source (a column out of range).
    fn scan(&self, request: &ScanRequest) -> Result<Option<Arc<dyn SourceFactory>>> {
        let _ = request;
        Ok(None)
    }

    /// Which subtask of `parallelism` resumes split `position` of a
    /// checkpoint, or `None` (the default) to deal the checkpoint's splits
    /// round-robin in split order. A source whose subtasks find their
    /// splits on their own (partitions created while running) deals them
    /// by the same rule, so that a split missing from a subtask's share
    /// is one the checkpoint did not have.
    fn split_owner(&self, position: &SplitPosition, parallelism: usize) -> Option<usize> {
        let _ = (position, parallelism);
        None
    }

    /// A checkpoint completed, in which the source's subtasks were at
    /// `positions` (all of them). Sources that tell the outside world how
    /// far they read (Kafka's committed group offsets, for monitoring) do
    /// it here, without blocking the caller; recovery never depends on
    /// it. The default does nothing.
    fn checkpoint_completed(&self, checkpoint: u64, positions: Vec<SplitPosition>) {
        let _ = (checkpoint, positions);
    }

    /// Creates the source for one subtask attempt.
    ///
    /// # Errors
    /// When the source cannot be opened.
    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Source>>;

    /// Creates the source of a subtask attempt that resumes the splits at
    /// `positions` (what [`Source::positions`] recorded at a checkpoint,
    /// dealt to this subtask): it reads those splits, and only those,
    /// from there on. The default refuses: sources that record positions
    /// resume from them.
    ///
    /// # Errors
    /// When the positions are not this source's, or it cannot be opened.
    fn restore(&self, task: &TaskInfo, positions: Vec<SplitPosition>) -> Result<Box<dyn Source>> {
        let _ = (task, positions);
        Err(crate::Error::Checkpoint(format!(
            "source '{}' cannot resume from a checkpoint",
            self.name()
        )))
    }
}
