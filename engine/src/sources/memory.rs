//! A source over batches held in memory.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_exchange::event::batch_data_bytes;

use crate::{Boundedness, Error, Result, Source, SourceFactory, TaskInfo};

/// Reads batches held in memory: subtask `i` of `p` reads batches `i`,
/// `i + p`, `i + 2p`, ...
#[derive(Debug, Clone)]
pub struct MemorySource {
    name: String,
    schema: SchemaRef,
    batches: Arc<Vec<RecordBatch>>,
}

impl MemorySource {
    /// A source named `name` over `batches` of `schema`.
    ///
    /// # Errors
    /// [`Error::Plan`] when a batch has another schema.
    pub fn try_new(
        name: impl Into<String>,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Result<Self> {
        let name = name.into();
        if let Some(batch) = batches.iter().find(|b| b.schema() != schema) {
            return Err(Error::Plan(format!(
                "memory source '{name}': a batch has schema {} but the source's is {}",
                batch.schema(),
                schema
            )));
        }
        Ok(Self {
            name,
            schema,
            batches: Arc::new(batches),
        })
    }
}

impl SourceFactory for MemorySource {
    fn name(&self) -> String {
        format!("memory({})", self.name)
    }

    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn estimated_bytes(&self) -> Option<u64> {
        Some(
            self.batches
                .iter()
                .map(|b| batch_data_bytes(b) as u64)
                .sum(),
        )
    }

    fn estimated_rows(&self) -> Option<u64> {
        Some(self.batches.iter().map(|b| b.num_rows() as u64).sum())
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
