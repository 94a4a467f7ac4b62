//! Transforms each batch with a vectorized function.

use arrow::array::RecordBatch;

use super::BatchFn;
use crate::{Operator, OperatorFactory, Output, Result, TaskInfo};

/// Replaces each batch by the result of a function over it (projection,
/// computed columns, splitting rows, ...).
#[derive(Clone)]
pub struct MapBatches {
    name: String,
    map: BatchFn<RecordBatch>,
}

impl std::fmt::Debug for MapBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapBatches")
            .field("name", &self.name)
            .finish()
    }
}

impl MapBatches {
    /// A map named `name` (shown in plans).
    pub fn new(name: impl Into<String>, map: BatchFn<RecordBatch>) -> Self {
        Self {
            name: name.into(),
            map,
        }
    }
}

impl OperatorFactory for MapBatches {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

impl Operator for MapBatches {
    /// Stateless: nothing to snapshot.
    fn snapshot_state(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        Ok(None)
    }

    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        output: &mut Output,
    ) -> Result<()> {
        output.emit((self.map)(&batch)?);
        Ok(())
    }
}
