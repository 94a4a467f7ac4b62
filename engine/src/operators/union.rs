//! Concatenates several inputs of the same columns (SQL's UNION ALL).

use std::sync::Arc;
use weir_exchange::event::batch_of;

use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::SchemaRef;

use crate::{Error, Operator, OperatorFactory, Output, Result, TaskInfo};

/// Passes on every batch of every input, in the columns of the output
/// schema: inputs must have the same number of columns, matched by position;
/// types are cast to the output's and names taken from it.
#[derive(Debug, Clone)]
pub struct Union {
    schema: SchemaRef,
}

impl Union {
    /// A union whose output has `schema`.
    pub fn new(schema: SchemaRef) -> Self {
        Self { schema }
    }
}

impl OperatorFactory for Union {
    fn name(&self) -> String {
        "union".to_string()
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

impl Operator for Union {
    /// Stateless: nothing to snapshot.
    fn snapshot_state(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        Ok(None)
    }

    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        output: &mut Output,
    ) -> Result<()> {
        if batch.schema() == self.schema {
            output.emit(batch);
            return Ok(());
        }
        if batch.num_columns() != self.schema.fields().len() {
            return Err(Error::Operator {
                operator: self.name(),
                message: format!(
                    "input {input} has {} columns, the union {}",
                    batch.num_columns(),
                    self.schema.fields().len()
                ),
            });
        }
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| cast(column, field.data_type()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        output.emit(batch_of(
            Arc::clone(&self.schema),
            columns,
            batch.num_rows(),
        )?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};

    use crate::memory::MemoryPool;
    use crate::testing::{ColumnKind, ColumnSpec, Rng, drive, random_batch, sorted_rows};

    use super::*;

    #[test]
    fn passes_every_input_in_the_output_columns() {
        let left = random_batch(
            &mut Rng::new(5),
            &[ColumnSpec::new("a", ColumnKind::Int32, 9).with_nulls(0.2)],
            40,
        );
        let right = random_batch(
            &mut Rng::new(6),
            &[ColumnSpec::new("b", ColumnKind::Int64, 9)],
            30,
        );
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, true)]));
        let union = Union::new(Arc::clone(&schema));
        let out = drive(
            &union,
            &[vec![left.clone()], vec![right.clone()]],
            MemoryPool::unbounded(),
        )
        .expect("runs");
        assert!(out.iter().all(|b| b.schema() == schema));
        let mut expected = sorted_rows(&[left, right]);
        expected.sort();
        assert_eq!(sorted_rows(&out), expected);
    }

    #[test]
    fn a_column_count_mismatch_names_the_input() {
        let batch = random_batch(
            &mut Rng::new(7),
            &[
                ColumnSpec::new("a", ColumnKind::Int32, 9),
                ColumnSpec::new("b", ColumnKind::Int32, 9),
            ],
            3,
        );
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, true)]));
        let err = drive(
            &Union::new(schema),
            &[vec![], vec![batch]],
            MemoryPool::unbounded(),
        )
        .expect_err("two columns into one");
        assert!(err.to_string().contains("input 1 has 2 columns"), "{err}");
    }
}
