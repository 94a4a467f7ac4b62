//! One schema for a table whose files were written at different times.
//!
//! By default every file must have the same columns with the same types
//! (nullability aside); the error names both files and the first column
//! that differs. With `schema.merge`, the table has every column of any
//! file, by name, in order of first appearance; a file without a column
//! reads it as nulls.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array};
use arrow::compute::cast;
use arrow::datatypes::{FieldRef, Schema, SchemaRef};

use crate::{Error, Result};

/// The table schema of files with schemas `files` (URL, schema), merged by
/// column name when `merge`.
///
/// # Errors
/// [`Error::SchemaMismatch`] naming two files and the column they disagree
/// on.
pub fn unify(files: &[(String, SchemaRef)], merge: bool) -> Result<SchemaRef> {
    let Some((first_url, first)) = files.first() else {
        return Ok(Arc::new(Schema::empty()));
    };
    let mut fields: Vec<FieldRef> = first
        .fields()
        .iter()
        .map(|f| Arc::new(f.as_ref().clone().with_nullable(true)))
        .collect();
    let mut origin: Vec<&str> = vec![first_url.as_str(); fields.len()];
    for (url, schema) in &files[1..] {
        for field in schema.fields() {
            match fields.iter().position(|f| f.name() == field.name()) {
                Some(i) if fields[i].data_type() != field.data_type() => {
                    return Err(mismatch(
                        origin[i],
                        url,
                        format!(
                            "column '{}' is {} in one and {} in the other",
                            field.name(),
                            fields[i].data_type(),
                            field.data_type()
                        ),
                    ));
                }
                Some(_) => {}
                None if merge => {
                    fields.push(Arc::new(field.as_ref().clone().with_nullable(true)));
                    origin.push(url);
                }
                None => {
                    return Err(mismatch(
                        first_url,
                        url,
                        format!(
                            "column '{}' is only in the second (set 'schema.merge' = 'true' to read the union of the columns)",
                            field.name()
                        ),
                    ));
                }
            }
        }
        if !merge
            && let Some(missing) = fields
                .iter()
                .find(|f| schema.field_with_name(f.name()).is_err())
        {
            return Err(mismatch(
                first_url,
                url,
                format!(
                    "column '{}' is only in the first (set 'schema.merge' = 'true' to read the union of the columns)",
                    missing.name()
                ),
            ));
        }
    }
    Ok(Arc::new(Schema::new(fields)))
}

fn mismatch(a: &str, b: &str, what: String) -> Error {
    Error::SchemaMismatch {
        message: format!("the schemas of '{a}' and '{b}' disagree: {what}"),
    }
}

/// `batch` (read from one file) as rows of `target`: columns matched by
/// name, cast where the file's type differs, nulls where the file lacks a
/// column.
///
/// # Errors
/// When a column cannot be cast.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema_ref().fields() == target.fields() {
        return Ok(batch.clone());
    }
    let rows = batch.num_rows();
    let columns = target
        .fields()
        .iter()
        .map(|field: &FieldRef| -> Result<ArrayRef> {
            match batch.schema_ref().index_of(field.name()) {
                Ok(i) if batch.column(i).data_type() == field.data_type() => {
                    Ok(Arc::clone(batch.column(i)))
                }
                Ok(i) => Ok(cast(batch.column(i), field.data_type())?),
                Err(_) => Ok(new_null_array(field.data_type(), rows)),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(target),
        columns,
        &options,
    )?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn schema(fields: &[(&str, DataType)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t)| Field::new(*n, t.clone(), false))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn disagreeing_files_are_named_with_the_column() {
        let a = (
            "a.parquet".to_string(),
            schema(&[("x", DataType::Int32), ("y", DataType::Utf8)]),
        );
        let b = (
            "b.parquet".to_string(),
            schema(&[("x", DataType::Int64), ("y", DataType::Utf8)]),
        );
        let e = unify(&[a.clone(), b], true).expect_err("types").to_string();
        assert!(
            e.contains("a.parquet") && e.contains("b.parquet") && e.contains("'x'"),
            "{e}"
        );
        let c = ("c.parquet".to_string(), schema(&[("x", DataType::Int32)]));
        let e = unify(&[a.clone(), c.clone()], false)
            .expect_err("missing")
            .to_string();
        assert!(
            e.contains("c.parquet") && e.contains("'y'") && e.contains("schema.merge"),
            "{e}"
        );
        let merged = unify(&[c, a], true).expect("merge");
        let names: Vec<_> = merged.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["x", "y"]);
        assert!(merged.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn a_file_without_a_column_reads_nulls() {
        let file = RecordBatch::try_new(
            schema(&[("y", DataType::Utf8)]),
            vec![Arc::new(StringArray::from(vec!["a", "b"]))],
        )
        .expect("batch");
        let target = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int32, true),
            Field::new("y", DataType::Utf8, true),
        ]));
        let conformed = conform(&file, &target).expect("conform");
        assert_eq!(
            conformed.column(0).as_ref(),
            &Int32Array::from(vec![None, None]) as &dyn arrow::array::Array
        );
        assert_eq!(conformed.column(1).as_ref(), file.column(0).as_ref());
    }
}
