//! A source over batches held in memory.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::{Boundedness, Result, Source, SourceFactory, TaskInfo};

/// Reads batches held in memory: subtask `i` of `p` reads batches `i`,
/// `i + p`, `i + 2p`, ...
#[derive(Debug, Clone)]
pub struct MemorySource {
    name: String,
    batches: Arc<Vec<RecordBatch>>,
}

impl MemorySource {
    /// A source named `name` over `batches`.
    pub fn new(name: impl Into<String>, batches: Vec<RecordBatch>) -> Self {
        Self {
            name: name.into(),
            batches: Arc::new(batches),
        }
    }
}

impl SourceFactory for MemorySource {
    fn name(&self) -> String {
        format!("memory({})", self.name)
    }

    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Source>> {
        let share = self
            .batches
            .iter()
            .skip(task.subtask)
            .step_by(task.parallelism.max(1))
            .cloned()
            .collect();
        Ok(Box::new(MemoryReader { batches: share }))
    }
}

struct MemoryReader {
    batches: VecDeque<RecordBatch>,
}

#[async_trait]
impl Source for MemoryReader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        Ok(self.batches.pop_front())
    }
}
