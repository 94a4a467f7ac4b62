//! Computes new columns from expressions over each batch.

use std::sync::Arc;
use weir_exchange::event::batch_of;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};

use crate::expr::{Compiled, renamed};
use crate::{Operator, OperatorFactory, Output, Result, TaskInfo};

/// Replaces each batch by the values of named expressions over it (SQL's
/// SELECT list).
#[derive(Debug, Clone)]
pub struct Project {
    exprs: Vec<(Compiled, String)>,
    schema: SchemaRef,
}

impl Project {
    /// A projection of `exprs`, each with its output column name.
    pub fn new(exprs: Vec<(Compiled, String)>) -> Self {
        let schema = Arc::new(Schema::new(
            exprs
                .iter()
                .map(|(e, name)| renamed(e, name))
                .collect::<Vec<_>>(),
        ));
        Self { exprs, schema }
    }

    /// The schema of the batches it emits.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl OperatorFactory for Project {
    fn name(&self) -> String {
        let list: Vec<String> = self
            .exprs
            .iter()
            .map(|(e, name)| {
                // The name is shown once, after the expression.
                let shown = match e.expr() {
                    datafusion_expr::Expr::Alias(alias) => alias.expr.to_string(),
                    other => other.to_string(),
                };
                if shown == *name {
                    shown
                } else {
                    format!("{shown} AS {name}")
                }
            })
            .collect();
        format!("project({})", list.join(", "))
    }

    fn is_deterministic(&self) -> bool {
        !self.exprs.iter().any(|(e, _)| e.is_volatile())
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

impl Operator for Project {
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
        let exprs = self.exprs.iter().map(|(e, _)| e);
        output.emit(projected(exprs, &self.schema, &batch)?);
        Ok(())
    }
}

/// The values of `exprs` over `batch`, as a batch of `schema`.
pub(super) fn projected<'a>(
    exprs: impl Iterator<Item = &'a Compiled>,
    schema: &SchemaRef,
    batch: &RecordBatch,
) -> Result<RecordBatch> {
    let columns = exprs
        .map(|e| e.evaluate(batch))
        .collect::<Result<Vec<_>>>()?;
    Ok(batch_of(Arc::clone(schema), columns, batch.num_rows())?)
}

#[cfg(test)]
mod tests {
    use crate::expr::{col, lit};
    use crate::memory::MemoryPool;
    use crate::testing::{ColumnKind, ColumnSpec, Rng, drive, random_batch, rows};

    use super::*;

    #[test]
    fn computes_and_renames_columns() {
        let columns = [
            ColumnSpec::new("a", ColumnKind::Int32, 50).with_nulls(0.1),
            ColumnSpec::new("d", ColumnKind::Decimal, 50),
        ];
        let batch = random_batch(&mut Rng::new(3), &columns, 100);
        let schema = batch.schema();
        let compile = |e| Compiled::new(&e, &schema).expect("compiles");
        let project = Project::new(vec![
            (compile(col("d")), "d".into()),
            (compile(col("a") * lit(2i64)), "twice".into()),
        ]);
        assert_eq!(project.name(), "project(d, a * Int64(2) AS twice)");
        let out = drive(&project, &[vec![batch.clone()]], MemoryPool::unbounded()).expect("runs");
        let expected: Vec<String> = rows(&[batch])
            .iter()
            .map(|r| {
                let (a, d) = r.split_once('|').expect("two columns");
                let twice = a
                    .parse::<i64>()
                    .map_or("NULL".to_string(), |a| (a * 2).to_string());
                format!("{d}|{twice}")
            })
            .collect();
        assert_eq!(rows(&out), expected);
        assert_eq!(out[0].schema().field(1).name(), "twice");
    }
}
