//! The checkpointed state of a join that keeps rows of both inputs until
//! they can no longer match (window and interval joins): one schema for
//! both sides, rows of the left input and of the right in the same
//! batches. Its columns are `__right` (which side a row is from), the
//! join's own columns (when its window ends, whether it matched), then the
//! left input's columns and the right input's, the other side's all NULL.

use std::collections::HashMap;
use std::sync::Arc;
use weir_exchange::event::batch_of;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, new_null_array};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use super::JoinSide;
use crate::checkpoint::with_key_groups;
use crate::{Error, Result};

/// The column saying a row is from the right input.
const SIDE_COLUMN: &str = "__right";

/// The layout of a join's two-sided state.
pub(crate) struct SideState<'a> {
    /// The schemas of the two inputs.
    pub sides: [&'a SchemaRef; 2],
    /// How many columns of the join's own follow the side column.
    pub own: usize,
    /// The join's name, for errors.
    pub name: &'a str,
}

impl SideState<'_> {
    /// The state's schema, with the join's `own` fields and `metadata`.
    pub(crate) fn schema(&self, own: Vec<Field>, metadata: HashMap<String, String>) -> SchemaRef {
        let mut fields = vec![Field::new(SIDE_COLUMN, DataType::Boolean, false)];
        fields.extend(own);
        for schema in self.sides {
            fields.extend(
                schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true)),
            );
        }
        Arc::new(Schema::new_with_metadata(fields, metadata))
    }

    /// `rows` of `side` as state of `schema`, with the join's `own`
    /// columns, tagged with the key groups of their `keys`.
    pub(crate) fn rows(
        &self,
        schema: &SchemaRef,
        side: JoinSide,
        own: Vec<ArrayRef>,
        rows: &RecordBatch,
        keys: &[ArrayRef],
        max_parallelism: usize,
    ) -> Result<RecordBatch> {
        let n = rows.num_rows();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(BooleanArray::from(vec![
                side == JoinSide::Right;
                n
            ]))];
        columns.extend(own);
        for (other, schema) in [JoinSide::Left, JoinSide::Right]
            .into_iter()
            .zip(self.sides)
        {
            if other == side {
                columns.extend(rows.columns().iter().cloned());
            } else {
                columns.extend(
                    schema
                        .fields()
                        .iter()
                        .map(|f| new_null_array(f.data_type(), n)),
                );
            }
        }
        let state = RecordBatch::try_new(Arc::clone(schema), columns)?;
        with_key_groups(&state, keys, max_parallelism)
    }

    /// An empty state of `schema`: a snapshot always holds a batch, which
    /// carries the schema's metadata.
    pub(crate) fn empty(&self, schema: &SchemaRef, max_parallelism: usize) -> Result<RecordBatch> {
        with_key_groups(
            &RecordBatch::new_empty(Arc::clone(schema)),
            &[],
            max_parallelism,
        )
    }

    /// The rows of a state batch, by side (none of a side without rows).
    pub(crate) fn split(&self, batch: &RecordBatch) -> Result<Vec<(JoinSide, RecordBatch)>> {
        let right = batch
            .column(0)
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| self.broken("state without sides"))?;
        let mut sides = Vec::with_capacity(2);
        for side in [JoinSide::Left, JoinSide::Right] {
            let rows = match side {
                JoinSide::Right => filter_record_batch(batch, right)?,
                JoinSide::Left => filter_record_batch(batch, &arrow::compute::not(right)?)?,
            };
            if rows.num_rows() > 0 {
                sides.push((side, rows));
            }
        }
        Ok(sides)
    }

    /// The input columns of state `rows` of `side`, as a batch of that
    /// input.
    pub(crate) fn input_rows(&self, side: JoinSide, rows: &RecordBatch) -> Result<RecordBatch> {
        let widths = self.sides.map(|s| s.fields().len());
        let (first, width) = match side {
            JoinSide::Left => (1 + self.own, widths[0]),
            JoinSide::Right => (1 + self.own + widths[0], widths[1]),
        };
        let schema = match side {
            JoinSide::Left => self.sides[0],
            JoinSide::Right => self.sides[1],
        };
        Ok(batch_of(
            Arc::clone(schema),
            rows.columns()[first..first + width].to_vec(),
            rows.num_rows(),
        )?)
    }

    /// The join's own column `index` (0 for the first) of state `rows`.
    pub(crate) fn own_column<'b, T: Array + 'static>(
        &self,
        rows: &'b RecordBatch,
        index: usize,
    ) -> Result<&'b T> {
        rows.column(1 + index)
            .as_any()
            .downcast_ref::<T>()
            .ok_or_else(|| self.broken("state without its join's columns"))
    }

    /// The error of a damaged state.
    pub(crate) fn broken(&self, what: &str) -> Error {
        Error::Checkpoint(format!("{}: {what}", self.name))
    }
}
