//! Keeps the rows for which a vectorized predicate is true.

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;

use super::BatchFn;
use crate::{Operator, OperatorFactory, Output, Result, TaskInfo};

/// Keeps the rows of each batch for which the predicate is true (a null
/// counts as false).
#[derive(Clone)]
pub struct Filter {
    name: String,
    predicate: BatchFn<BooleanArray>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Filter").field("name", &self.name).finish()
    }
}

impl Filter {
    /// A filter named `name` (shown in plans) with a predicate over batches.
    pub fn new(name: impl Into<String>, predicate: BatchFn<BooleanArray>) -> Self {
        Self {
            name: name.into(),
            predicate,
        }
    }
}

impl OperatorFactory for Filter {
    fn name(&self) -> String {
        format!("filter({})", self.name)
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

impl Operator for Filter {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        output: &mut Output,
    ) -> Result<()> {
        let keep = (self.predicate)(&batch)?;
        if keep.true_count() == batch.num_rows() && keep.null_count() == 0 {
            output.emit(batch);
        } else {
            output.emit(filter_record_batch(&batch, &keep)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::compute::kernels::cmp::gt;
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    #[test]
    fn keeps_matching_rows() {
        let batch = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)])),
            vec![Arc::new(Int64Array::from(vec![
                Some(1),
                None,
                Some(5),
                Some(3),
            ]))],
        )
        .unwrap();
        let mut filter = Filter::new(
            "v > 2",
            Arc::new(|b: &RecordBatch| Ok(gt(b.column(0), &Int64Array::new_scalar(2))?)),
        );
        let mut out = Output::default();
        filter.process_batch(0, batch, &mut out).unwrap();
        let (batches, _) = out.take();
        let values: Vec<i64> = batches[0]
            .column(0)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(values, vec![5, 3]);
    }
}
