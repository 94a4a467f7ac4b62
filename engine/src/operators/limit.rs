//! Limit: skips the first `offset` rows, then passes at most `fetch` rows.

use arrow::array::RecordBatch;

use crate::{Operator, OperatorFactory, Output, Result, TaskInfo};

/// Passes rows through after skipping the first `offset`, until `fetch`
/// rows have passed (LIMIT `fetch` OFFSET `offset`); batches are sliced at
/// both ends, never copied.
///
/// It cannot stop its upstream: rows after the last one fetched are dropped
/// as they arrive. It counts the rows of its own subtask, so a global limit
/// runs with parallelism 1 (or after an exchange into one subtask).
#[derive(Debug, Clone)]
pub struct Limit {
    offset: usize,
    fetch: Option<usize>,
}

impl Limit {
    /// Skips `offset` rows, then passes `fetch` rows (all of them when
    /// `None`).
    pub fn new(offset: usize, fetch: Option<usize>) -> Self {
        Self { offset, fetch }
    }
}

impl OperatorFactory for Limit {
    fn name(&self) -> String {
        match self.fetch {
            Some(fetch) => format!("limit(offset {}, fetch {fetch})", self.offset),
            None => format!("limit(offset {})", self.offset),
        }
    }

    /// Which rows pass depends on the order they arrive in, which differs
    /// from run to run when they come from several producers.
    fn is_deterministic(&self) -> bool {
        false
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(LimitState {
            skip: self.offset,
            remaining: self.fetch,
        }))
    }
}

struct LimitState {
    /// Rows still to skip.
    skip: usize,
    /// Rows still to pass (`None`: no limit).
    remaining: Option<usize>,
}

impl Operator for LimitState {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        output: &mut Output,
    ) -> Result<()> {
        let rows = batch.num_rows();
        let skipped = self.skip.min(rows);
        self.skip -= skipped;
        let available = rows - skipped;
        let passed = self.remaining.map_or(available, |r| r.min(available));
        if let Some(remaining) = &mut self.remaining {
            *remaining -= passed;
        }
        if passed == rows {
            output.emit(batch);
        } else if passed > 0 {
            output.emit(batch.slice(skipped, passed));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;
    use crate::memory::MemoryPool;
    use crate::testing::drive;

    fn batch(from: i64, to: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(
            schema,
            vec![Arc::new(Int64Array::from_iter_values(from..to))],
        )
        .expect("valid batch")
    }

    fn values(limit: Limit) -> Vec<i64> {
        let input = vec![batch(0, 3), batch(3, 4), batch(4, 10)];
        drive(&limit, &[input], MemoryPool::unbounded())
            .expect("runs")
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn slices_across_batch_boundaries() {
        assert_eq!(values(Limit::new(2, Some(3))), vec![2, 3, 4]);
        assert_eq!(values(Limit::new(0, Some(0))), Vec::<i64>::new());
        assert_eq!(values(Limit::new(8, None)), vec![8, 9]);
        assert_eq!(values(Limit::new(20, Some(5))), Vec::<i64>::new());
        assert_eq!(values(Limit::new(0, None)), (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn names_show_offset_and_fetch() {
        assert_eq!(Limit::new(5, Some(10)).name(), "limit(offset 5, fetch 10)");
        assert_eq!(Limit::new(5, None).name(), "limit(offset 5)");
    }
}
