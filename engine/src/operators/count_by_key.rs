//! Counts rows per key with a hash table.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};

use crate::{Error, Operator, OperatorFactory, Output, Result, TaskInfo};

/// Rows per output batch.
const OUTPUT_BATCH_ROWS: usize = 8192;

/// Counts rows per distinct value of the key columns and emits
/// `(keys..., count)` at the end of the input.
///
/// In the partial phase it counts rows; in the final phase (after a hash
/// exchange on the keys) it sums the partial `count` column. Groups are
/// emitted in the order they were first seen, so the same input gives the
/// same output.
#[derive(Debug, Clone)]
pub struct CountByKey {
    keys: Vec<String>,
    sum_of: Option<String>,
}

impl CountByKey {
    /// Counts the rows of each key.
    pub fn partial<S: Into<String>>(keys: impl IntoIterator<Item = S>) -> Self {
        Self {
            keys: keys.into_iter().map(Into::into).collect(),
            sum_of: None,
        }
    }

    /// Sums the partial counts in column `count` per key.
    pub fn final_of<S: Into<String>>(keys: impl IntoIterator<Item = S>) -> Self {
        Self {
            keys: keys.into_iter().map(Into::into).collect(),
            sum_of: Some("count".to_string()),
        }
    }
}

impl OperatorFactory for CountByKey {
    fn name(&self) -> String {
        let phase = if self.sum_of.is_some() {
            "final"
        } else {
            "partial"
        };
        format!("count_by_key({}; {phase})", self.keys.join(", "))
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(CountByKeyState {
            spec: self.clone(),
            table: None,
        }))
    }
}

struct GroupTable {
    converter: RowConverter,
    output_schema: SchemaRef,
    key_columns: Vec<usize>,
    sum_column: Option<usize>,
    groups: Rows,
    index: HashMap<Box<[u8]>, usize>,
    counts: Vec<i64>,
}

struct CountByKeyState {
    spec: CountByKey,
    table: Option<GroupTable>,
}

impl CountByKeyState {
    fn error(&self, message: String) -> Error {
        Error::Operator {
            operator: self.spec.name(),
            message,
        }
    }

    fn table_for(&mut self, schema: &Schema) -> Result<&mut GroupTable> {
        if self.table.is_none() {
            let column = |name: &str| {
                schema.index_of(name).map_err(|_| {
                    let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                    self.error(format!(
                        "no column '{name}' in the input (columns: {})",
                        names.join(", ")
                    ))
                })
            };
            let key_columns = self
                .spec
                .keys
                .iter()
                .map(|k| column(k))
                .collect::<Result<Vec<_>>>()?;
            let sum_column = self.spec.sum_of.as_deref().map(column).transpose()?;
            if let Some(c) = sum_column
                && schema.field(c).data_type() != &DataType::Int64
            {
                return Err(self.error(format!(
                    "column '{}' must be Int64 to be summed, not {}",
                    schema.field(c).name(),
                    schema.field(c).data_type()
                )));
            }
            let key_fields: Vec<Field> = key_columns
                .iter()
                .map(|&i| schema.field(i).clone())
                .collect();
            let converter = RowConverter::new(
                key_fields
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?;
            let mut fields = key_fields;
            fields.push(Field::new("count", DataType::Int64, false));
            self.table = Some(GroupTable {
                groups: converter.empty_rows(0, 0),
                converter,
                output_schema: Arc::new(Schema::new(fields)),
                key_columns,
                sum_column,
                index: HashMap::new(),
                counts: Vec::new(),
            });
        }
        Ok(self.table.as_mut().expect("created above"))
    }
}

impl Operator for CountByKeyState {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _output: &mut Output,
    ) -> Result<()> {
        let table = self.table_for(&batch.schema())?;
        let keys: Vec<_> = table
            .key_columns
            .iter()
            .map(|&i| Arc::clone(batch.column(i)))
            .collect();
        let rows = table.converter.convert_columns(&keys)?;
        let increments = table
            .sum_column
            .map(|c| batch.column(c).as_primitive::<Int64Type>().clone());
        for (i, row) in rows.iter().enumerate() {
            let add = match &increments {
                Some(values) if values.is_valid(i) => values.value(i),
                Some(_) => 0,
                None => 1,
            };
            match table.index.get(row.as_ref()) {
                Some(&group) => table.counts[group] += add,
                None => {
                    table.index.insert(row.as_ref().into(), table.counts.len());
                    table.groups.push(row);
                    table.counts.push(add);
                }
            }
        }
        Ok(())
    }

    fn finish(&mut self, output: &mut Output) -> Result<()> {
        let Some(table) = self.table.take() else {
            return Ok(());
        };
        let total = table.counts.len();
        for start in (0..total).step_by(OUTPUT_BATCH_ROWS) {
            let end = (start + OUTPUT_BATCH_ROWS).min(total);
            let mut columns = table
                .converter
                .convert_rows((start..end).map(|i| table.groups.row(i)))?;
            columns.push(Arc::new(Int64Array::from(
                table.counts[start..end].to_vec(),
            )));
            output.emit(RecordBatch::try_new(
                Arc::clone(&table.output_schema),
                columns,
            )?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::StringArray;

    use super::*;

    fn words(values: &[&str]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("word", DataType::Utf8, true)])),
            vec![Arc::new(StringArray::from(values.to_vec()))],
        )
        .unwrap()
    }

    fn task() -> TaskInfo {
        TaskInfo {
            job_id: "test".into(),
            vertex: crate::graph::VertexId(0),
            vertex_name: "count".into(),
            subtask: 0,
            parallelism: 1,
            attempt: 0,
            max_parallelism: 128,
            memory: crate::memory::MemoryPool::unbounded(),
        }
    }

    #[test]
    fn partial_then_final_counts_in_first_seen_order() {
        let mut partial = CountByKey::partial(["word"]).create(&task()).unwrap();
        let mut out = Output::default();
        partial
            .process_batch(0, words(&["b", "a", "b"]), &mut out)
            .unwrap();
        partial
            .process_batch(0, words(&["c", "b"]), &mut out)
            .unwrap();
        partial.finish(&mut out).unwrap();
        let (batches, _) = out.take();
        let mut last = CountByKey::final_of(["word"]).create(&task()).unwrap();
        let mut out = Output::default();
        for b in batches.iter().chain(&batches) {
            last.process_batch(0, b.clone(), &mut out).unwrap();
        }
        last.finish(&mut out).unwrap();
        let (result, _) = out.take();
        let keys: Vec<_> = result[0]
            .column(0)
            .as_string::<i32>()
            .iter()
            .flatten()
            .collect();
        let counts = result[0]
            .column(1)
            .as_primitive::<Int64Type>()
            .values()
            .to_vec();
        assert_eq!(keys, vec!["b", "a", "c"]);
        assert_eq!(counts, vec![6, 2, 2]);
    }

    #[test]
    fn missing_key_names_the_columns() {
        let mut op = CountByKey::partial(["nope"]).create(&task()).unwrap();
        let err = op
            .process_batch(0, words(&["a"]), &mut Output::default())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("no column 'nope' in the input (columns: word)"),
            "{err}"
        );
    }
}
