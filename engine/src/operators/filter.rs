//! Keeps the rows for which a predicate is true.

use arrow::array::{Array, RecordBatch};
use arrow::compute::filter_record_batch;

use crate::expr::Compiled;
use crate::{Operator, OperatorFactory, Output, Result, TaskInfo};

/// Keeps the rows of each batch for which the predicate is true (a null
/// counts as false, as in SQL's WHERE).
#[derive(Debug, Clone)]
pub struct Filter {
    predicate: Compiled,
}

impl Filter {
    /// A filter on `predicate`, typed against the input's schema.
    pub fn new(predicate: Compiled) -> Self {
        Self { predicate }
    }
}

impl OperatorFactory for Filter {
    fn name(&self) -> String {
        format!("filter({})", self.predicate)
    }

    fn is_deterministic(&self) -> bool {
        !self.predicate.is_volatile()
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

impl Operator for Filter {
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
        let keep = self.predicate.evaluate_predicate(&batch)?;
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
    use crate::expr::{col, lit};
    use crate::memory::MemoryPool;
    use crate::testing::{ColumnKind, ColumnSpec, Rng, drive, random_batch, rebatch, rows};

    use super::*;

    #[test]
    fn keeps_the_rows_where_the_predicate_is_true() {
        let columns = [
            ColumnSpec::new("k", ColumnKind::Int64, 100).with_nulls(0.2),
            ColumnSpec::new("s", ColumnKind::Utf8, 10),
        ];
        let batch = random_batch(&mut Rng::new(1), &columns, 500);
        let predicate = Compiled::new(&col("k").gt(lit(10)), &batch.schema()).expect("compiles");
        let filter = Filter::new(predicate);
        assert_eq!(filter.name(), "filter(k > Int32(10))");
        for size in [1, 7, 8192] {
            let out = drive(
                &filter,
                &[rebatch(std::slice::from_ref(&batch), size)],
                MemoryPool::unbounded(),
            )
            .expect("runs");
            let expected: Vec<String> = rows(std::slice::from_ref(&batch))
                .into_iter()
                .filter(|r| r.split('|').next().and_then(|k| k.parse::<i64>().ok()) > Some(10))
                .collect();
            assert_eq!(rows(&out), expected);
        }
    }
}
