//! The check of a scalar subquery: at most one row passes, a second one
//! fails the job, naming the subquery.

use arrow::array::RecordBatch;

use crate::{Error, Operator, OperatorFactory, Output, Result, TaskInfo};

/// Passes its rows through, and fails with a clear error when a second
/// row comes: a scalar subquery that gives several rows is an error in
/// SQL (PostgreSQL: "more than one row returned by a subquery used as an
/// expression"). It counts the rows of its own subtask, so it runs with
/// parallelism 1.
#[derive(Debug, Clone)]
pub struct AtMostOneRow {
    /// What gives the rows, for the error (e.g. a subquery).
    what: String,
}

impl AtMostOneRow {
    /// A check of the rows of `what`.
    pub fn new(what: impl Into<String>) -> Self {
        Self { what: what.into() }
    }
}

impl OperatorFactory for AtMostOneRow {
    fn name(&self) -> String {
        format!("at_most_one_row({})", self.what)
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(Counting {
            check: self.clone(),
            rows: 0,
        }))
    }
}

struct Counting {
    check: AtMostOneRow,
    rows: usize,
}

impl Operator for Counting {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        output: &mut Output,
    ) -> Result<()> {
        self.rows += batch.num_rows();
        if self.rows > 1 {
            return Err(Error::Operator {
                operator: self.check.name(),
                message: format!(
                    "{} gave more than one row, where one value is wanted: make it give one \
                     (aggregate it, filter it on a key, or add LIMIT 1)",
                    self.check.what
                ),
            });
        }
        output.emit(batch);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::memory::MemoryPool;
    use crate::testing::drive;

    fn rows(n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))])
            .expect("valid batch")
    }

    #[test]
    fn one_row_passes_and_a_second_fails_naming_the_subquery() {
        let check = AtMostOneRow::new("the scalar subquery of v");
        for ok in [vec![], vec![rows(0), rows(1), rows(0)]] {
            let out = drive(&check, &[ok], MemoryPool::unbounded()).expect("passes");
            assert!(out.iter().map(RecordBatch::num_rows).sum::<usize>() <= 1);
        }
        let error = drive(&check, &[vec![rows(1), rows(1)]], MemoryPool::unbounded())
            .expect_err("two rows");
        let text = error.to_string();
        assert!(
            text.contains("the scalar subquery of v gave more than one row"),
            "{text}"
        );
        assert!(!error.is_retryable(), "the same rows fail again");
    }
}
