//! `SELECT DISTINCT`: a hash aggregate grouped by every column, without
//! aggregate functions.

use arrow::datatypes::SchemaRef;
use datafusion_common::Column;
use datafusion_expr::Expr;

use super::{AggregateMode, HashAggregate};
use crate::{Error, Operator, OperatorFactory, Result, TaskInfo};

/// Keeps one row of each distinct combination of all columns (NULLs equal
/// each other), in no defined order.
///
/// Like the aggregate it is built on, it runs in one phase (`Single`) or
/// two across a hash exchange on all columns (`Partial`, then `Final`);
/// every mode emits rows of the input schema.
#[derive(Debug, Clone)]
pub struct Distinct {
    aggregate: HashAggregate,
}

impl Distinct {
    /// The distinct rows of batches of `input`.
    ///
    /// # Errors
    /// [`Error::Plan`] when `input` has no column.
    pub fn try_new(mode: AggregateMode, input: &SchemaRef) -> Result<Self> {
        if input.fields().is_empty() {
            return Err(Error::Plan("distinct needs at least one column".into()));
        }
        let columns: Vec<(Expr, String)> = input
            .fields()
            .iter()
            .map(|f| {
                let column = Expr::Column(Column::new_unqualified(f.name()));
                (column, f.name().clone())
            })
            .collect();
        let names: Vec<&str> = columns.iter().map(|(_, name)| name.as_str()).collect();
        let name = format!("distinct[{mode}]({})", names.join(", "));
        let aggregate = HashAggregate::try_new(mode, input, columns, Vec::new())?.with_name(name);
        Ok(Self { aggregate })
    }

    /// The schema of its output batches.
    pub fn output_schema(&self) -> SchemaRef {
        self.aggregate.output_schema()
    }
}

impl OperatorFactory for Distinct {
    fn name(&self) -> String {
        self.aggregate.name()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        self.aggregate.create(task)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::memory::MemoryPool;
    use crate::testing::{drive, sorted_rows};

    #[test]
    fn keeps_each_row_once_with_nulls_as_one_value() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int32Array::from(vec![
                    Some(1),
                    None,
                    Some(1),
                    None,
                    Some(1),
                ])),
                Arc::new(StringArray::from(vec![
                    Some("x"),
                    None,
                    Some("x"),
                    None,
                    Some("y"),
                ])),
            ],
        )
        .expect("valid batch");
        let distinct = Distinct::try_new(AggregateMode::Single, &schema).expect("plans");
        assert_eq!(distinct.output_schema(), schema);
        assert!(distinct.name().starts_with("distinct[single](a, s)"));
        let out = drive(
            &distinct,
            &[vec![batch.clone(), batch]],
            MemoryPool::unbounded(),
        )
        .expect("runs");
        assert_eq!(out[0].schema(), schema);
        assert_eq!(sorted_rows(&out), vec!["1|x", "1|y", "NULL|NULL"]);
    }
}
