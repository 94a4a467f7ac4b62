//! The subtask of an unbounded source that reads no split: a job restored
//! at a parallelism above its source's split count leaves some subtasks
//! without any. Such a subtask stays up, quiet and idle for watermarks,
//! rather than finish: a finished task would end the job's checkpoints.

use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::Result;
use crate::checkpoint::SplitPosition;
use crate::source::Source;

/// How often the quiet subtask returns an empty batch (see [`Source`]).
const QUIET_INTERVAL: Duration = Duration::from_millis(100);

/// Reads nothing, until the job ends.
pub struct SplitlessReader {
    schema: SchemaRef,
}

impl SplitlessReader {
    /// A reader of no split of a source of `schema`.
    pub fn new(schema: SchemaRef) -> Self {
        Self { schema }
    }
}

#[async_trait]
impl Source for SplitlessReader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        tokio::time::sleep(QUIET_INTERVAL).await;
        Ok(Some(RecordBatch::new_empty(SchemaRef::clone(&self.schema))))
    }

    fn splits(&self) -> Vec<u32> {
        Vec::new()
    }

    fn positions(&self) -> Option<Vec<SplitPosition>> {
        Some(Vec::new())
    }
}
