//! Emits each batch once per projection: the rows of every grouping set of
//! `GROUPING SETS`, `ROLLUP` or `CUBE` for the hash aggregate that follows.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};

use super::project::projected;
use crate::expr::Compiled;
use crate::{Error, Operator, OperatorFactory, Output, Result, TaskInfo};

/// Replaces each batch by one batch per projection, all of one schema: the
/// input read once, every grouping set's rows made from it (SQL's grouping
/// sets, as an expand step before one hash aggregate over all of them).
#[derive(Debug, Clone)]
pub struct Expand {
    projections: Vec<Vec<Compiled>>,
    schema: SchemaRef,
}

impl Expand {
    /// One output batch per projection of `projections` (expressions and
    /// the names of their columns) for each input batch. A column is
    /// nullable when it is in any projection.
    ///
    /// # Errors
    /// [`Error::Plan`] when there is no projection, or when projections
    /// differ in their columns' names or types.
    pub fn try_new(projections: Vec<Vec<(Compiled, String)>>) -> Result<Self> {
        let names: Vec<&String> = projections
            .first()
            .ok_or_else(|| Error::Plan("an expand step needs a projection".to_string()))?
            .iter()
            .map(|(_, name)| name)
            .collect();
        if let Some(other) = projections
            .iter()
            .find(|p| !p.iter().map(|(_, name)| name).eq(names.iter().copied()))
        {
            let other: Vec<&String> = other.iter().map(|(_, name)| name).collect();
            return Err(Error::Plan(format!(
                "the projections of an expand step name columns {names:?} and {other:?}"
            )));
        }
        let first = &projections[0];
        let mut fields = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let data_type = first[i].0.field().data_type();
            if let Some(other) = projections
                .iter()
                .map(|p| p[i].0.field().data_type())
                .find(|t| *t != data_type)
            {
                return Err(Error::Plan(format!(
                    "column '{name}' of an expand step is {data_type} in one projection and \
                     {other} in another"
                )));
            }
            let nullable = projections.iter().any(|p| p[i].0.field().is_nullable());
            fields.push(Field::new(name.as_str(), data_type.clone(), nullable));
        }
        let projections = projections
            .into_iter()
            .map(|p| p.into_iter().map(|(e, _)| e).collect())
            .collect();
        Ok(Self {
            projections,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The schema of the batches it emits.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl OperatorFactory for Expand {
    fn name(&self) -> String {
        format!("expand({} projections)", self.projections.len())
    }

    fn is_deterministic(&self) -> bool {
        !self.projections.iter().flatten().any(Compiled::is_volatile)
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

impl Operator for Expand {
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
        for projection in &self.projections {
            output.emit(projected(projection.iter(), &self.schema, &batch)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use datafusion_common::ScalarValue;
    use datafusion_expr::Expr;

    use crate::expr::{col, lit};
    use crate::memory::MemoryPool;
    use crate::testing::{ColumnKind, ColumnSpec, Rng, drive, random_batch, rows};

    use super::*;

    /// `exprs` compiled against `schema`, named `names`.
    fn named<const N: usize>(
        schema: &SchemaRef,
        exprs: [Expr; N],
        names: [&str; N],
    ) -> Vec<(Compiled, String)> {
        exprs
            .iter()
            .zip(names)
            .map(|(e, name)| {
                (
                    Compiled::new(e, schema).expect("compiles"),
                    name.to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn emits_every_projection_of_each_batch() {
        let columns = [
            ColumnSpec::new("a", ColumnKind::Int32, 5),
            ColumnSpec::new("b", ColumnKind::Int32, 5),
        ];
        let batch = random_batch(&mut Rng::new(7), &columns, 20);
        let schema = batch.schema();
        let compile = |exprs: [Expr; 3]| named(&schema, exprs, ["a", "b", "id"]);
        let null = || Expr::Literal(ScalarValue::Int32(None), None);
        let expand = Expand::try_new(vec![
            compile([col("a"), col("b"), lit(0u8)]),
            compile([col("a"), null(), lit(1u8)]),
            compile([null(), null(), lit(3u8)]),
        ])
        .expect("one schema");
        let nullable: Vec<bool> = expand
            .schema()
            .fields()
            .iter()
            .map(|f| f.is_nullable())
            .collect();
        assert_eq!(nullable, [true, true, false]);
        let out = drive(&expand, &[vec![batch.clone()]], MemoryPool::unbounded()).expect("runs");
        assert_eq!(out.len(), 3);
        let input = rows(&[batch]);
        let expected: Vec<String> = [0, 1, 3]
            .iter()
            .flat_map(|id| {
                input.iter().map(move |r| {
                    let (a, b) = r.split_once('|').expect("two columns");
                    match id {
                        0 => format!("{a}|{b}|0"),
                        1 => format!("{a}|NULL|1"),
                        _ => "NULL|NULL|3".to_string(),
                    }
                })
            })
            .collect();
        assert_eq!(rows(&out), expected);
    }

    #[test]
    fn projections_must_agree_on_their_columns() {
        let batch = random_batch(
            &mut Rng::new(1),
            &[ColumnSpec::new("a", ColumnKind::Int32, 5)],
            4,
        );
        let schema = batch.schema();
        let typed = Expand::try_new(vec![
            named(&schema, [col("a")], ["a"]),
            named(&schema, [lit("text")], ["a"]),
        ]);
        assert!(typed.is_err_and(|e| e.to_string().contains("column 'a'")));
        let counted = Expand::try_new(vec![
            named(&schema, [col("a")], ["a"]),
            named(&schema, [col("a"), col("a")], ["a", "b"]),
        ]);
        assert!(counted.is_err());
        let renamed = Expand::try_new(vec![
            named(&schema, [col("a")], ["a"]),
            named(&schema, [col("a")], ["b"]),
        ]);
        assert!(renamed.is_err_and(|e| e.to_string().contains("name columns")));
    }
}
