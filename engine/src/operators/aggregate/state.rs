//! The groups of one aggregation and their accumulators: rows or states
//! in, group keys with states or final values out.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt64Array, new_empty_array,
    new_null_array,
};
use arrow::compute::take;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::row::{RowConverter, RowParser};
use datafusion_expr::{EmitTo, GroupsAccumulator};

use super::groups::{DrainedKeys, GroupOrder, GroupTable};
use super::plan::AggregatePlan;
use crate::Result;
use crate::operator::OUTPUT_BATCH_ROWS;

/// What [`GroupedState::drain`] emits per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emit {
    /// Group keys and the aggregates' state columns (the state schema).
    States,
    /// Group keys and final aggregate values (the output schema).
    Values,
}

/// A group table and one accumulator per aggregate.
pub(crate) struct GroupedState {
    plan: Arc<AggregatePlan>,
    table: GroupTable,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    /// The group of each row of the batch being absorbed (reused).
    groups: Vec<usize>,
}

impl GroupedState {
    /// An empty state.
    pub(crate) fn try_new(plan: &Arc<AggregatePlan>) -> Result<Self> {
        Ok(Self {
            table: GroupTable::new(
                plan.key_converter()?,
                &plan
                    .key_fields
                    .iter()
                    .map(|f| f.data_type())
                    .collect::<Vec<_>>(),
            ),
            accumulators: plan.accumulators()?,
            plan: Arc::clone(plan),
            groups: Vec::new(),
        })
    }

    /// Aggregates a batch of input rows.
    pub(crate) fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            // Accumulators take every group up to the total as seen in a
            // batch without nulls: the keyless group must not be, here.
            return Ok(());
        }
        let plan = Arc::clone(&self.plan);
        let keys = plan
            .group_by
            .iter()
            .map(|key| key.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        self.intern(&keys, batch.num_rows())?;
        let groups = self.table.len();
        for (aggregate, accumulator) in plan.aggregates.iter().zip(&mut self.accumulators) {
            let (values, filter) = aggregate
                .arguments(batch)
                .map_err(|e| plan.error(format!("evaluating {}", aggregate.function.name()), e))?;
            accumulator
                .update_batch(&values, &self.groups, filter.as_ref(), groups)
                .map_err(|e| plan.error(format!("updating {}", aggregate.function.name()), e))?;
        }
        Ok(())
    }

    /// Merges a batch of state rows (group keys, then state columns).
    pub(crate) fn merge(&mut self, batch: &RecordBatch) -> Result<()> {
        let plan = Arc::clone(&self.plan);
        let columns = batch.columns();
        let key_count = plan.key_fields.len();
        if batch.num_rows() == 0 {
            return Ok(()); // as in `update`
        }
        if columns.len() != plan.state_schema.fields().len() {
            return Err(plan.error(
                "merging partial states",
                format!(
                    "expected {} columns ({}), got {}",
                    plan.state_schema.fields().len(),
                    plan.state_schema,
                    columns.len()
                ),
            ));
        }
        self.intern(&columns[..key_count], batch.num_rows())?;
        let groups = self.table.len();
        for (aggregate, accumulator) in plan.aggregates.iter().zip(&mut self.accumulators) {
            accumulator
                .merge_batch(&columns[aggregate.states.clone()], &self.groups, groups)
                .map_err(|e| plan.error(format!("merging {}", aggregate.function.name()), e))?;
        }
        Ok(())
    }

    /// Groups held.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Bytes held by keys and accumulators.
    pub(crate) fn size(&self) -> usize {
        self.table.size()
            + self.groups.capacity() * size_of::<usize>()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }

    /// Emits every group in `order` as batches of at most [`OUTPUT_BATCH_ROWS`]
    /// rows, and starts again empty.
    pub(crate) fn drain(
        &mut self,
        order: GroupOrder,
        emit: Emit,
        sink: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut groups = self.take_groups(order, emit)?;
        while let Some(batch) = groups.next_batch()? {
            sink(batch)?;
        }
        Ok(())
    }

    /// Takes every group out in `order`, to be emitted batch by batch, and
    /// starts again empty.
    pub(crate) fn take_groups(&mut self, order: GroupOrder, emit: Emit) -> Result<GroupBatches> {
        let plan = Arc::clone(&self.plan);
        if plan.key_fields.is_empty() {
            // A global aggregate has its one group even over no rows.
            self.touch_keyless_group()?;
        }
        let groups = self.table.len();
        let drained = self
            .table
            .drain(order)
            .map_err(|e| plan.error("taking out the groups", e))?;
        let mut accumulators = std::mem::replace(&mut self.accumulators, plan.accumulators()?);
        self.groups = Vec::new();
        let schema = match emit {
            Emit::States => &plan.state_schema,
            Emit::Values => &plan.output_schema,
        };
        let columns = match emit {
            // Accumulators of DataFusion's row-wise aggregates (count
            // DISTINCT) cannot give the states or values of no group.
            _ if groups == 0 => schema.fields()[plan.key_fields.len()..]
                .iter()
                .map(|f| new_empty_array(f.data_type()))
                .collect(),
            Emit::States => states(&plan, &mut accumulators)?,
            Emit::Values => values(&plan, &mut accumulators)?,
        };
        let decoder = if plan.key_fields.is_empty() {
            None
        } else {
            let converter = plan.key_converter()?;
            Some((converter.parser(), converter))
        };
        Ok(GroupBatches {
            schema: Arc::clone(schema),
            decoder,
            keys: drained.keys,
            indices: drained.indices.map(UInt64Array::from),
            columns,
            next: 0,
            plan,
        })
    }

    fn intern(&mut self, keys: &[ArrayRef], rows: usize) -> Result<()> {
        self.table
            .intern(keys, rows, &mut self.groups)
            .map_err(|e| self.plan.error("grouping rows by key", e))
    }

    /// Makes the accumulators of a keyless table hold its group (see
    /// [`touch`](Self::touch)).
    fn touch_keyless_group(&mut self) -> Result<()> {
        self.touch(&[0])
    }

    /// Makes the groups of key rows `keys` exist, whether or not a row of
    /// them comes (the groups SQL has over no rows, such as the grand
    /// total of a `ROLLUP`).
    pub(crate) fn seed(&mut self, keys: &[ArrayRef]) -> Result<()> {
        let rows = keys.first().map_or(0, |k| k.len());
        if rows == 0 {
            return Ok(());
        }
        self.intern(keys, rows)?;
        let groups = std::mem::take(&mut self.groups);
        let touched = self.touch(&groups);
        self.groups = groups;
        touched
    }

    /// Makes the accumulators hold groups `indices`, by updating them with
    /// rows of NULLs that a filter leaves out (the accumulators take a
    /// group seen in a batch without a filter as one that has seen a
    /// value).
    fn touch(&mut self, indices: &[usize]) -> Result<()> {
        let plan = Arc::clone(&self.plan);
        let fields: Vec<Field> = plan
            .input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let nulls = fields
            .iter()
            .map(|f| new_null_array(f.data_type(), indices.len()))
            .collect();
        let rows = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            nulls,
            &RecordBatchOptions::new().with_row_count(Some(indices.len())),
        )?;
        let none = BooleanArray::from(vec![false; indices.len()]);
        let groups = self.table.len();
        for (aggregate, accumulator) in plan.aggregates.iter().zip(&mut self.accumulators) {
            let (values, _) = aggregate
                .arguments(&rows)
                .map_err(|e| plan.error(format!("evaluating {}", aggregate.function.name()), e))?;
            accumulator
                .update_batch(&values, indices, Some(&none), groups)
                .map_err(|e| plan.error(format!("updating {}", aggregate.function.name()), e))?;
        }
        Ok(())
    }
}

/// Groups taken out of a [`GroupedState`]: their keys and their states or
/// values, assembled into batches of at most [`OUTPUT_BATCH_ROWS`] rows one at a
/// time, so that a caller can stop after any batch and go on later.
pub(crate) struct GroupBatches {
    plan: Arc<AggregatePlan>,
    schema: SchemaRef,
    /// Decodes the keys back into columns; `None` without group keys.
    decoder: Option<(RowParser, RowConverter)>,
    keys: DrainedKeys,
    /// The row of each group in `columns`, when not in first-seen order.
    indices: Option<UInt64Array>,
    columns: Vec<ArrayRef>,
    /// The first group not emitted yet.
    next: usize,
}

impl GroupBatches {
    /// The next batch of groups, `None` when all were emitted.
    pub(crate) fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let start = self.next;
        let rows = OUTPUT_BATCH_ROWS.min(self.keys.len() - start);
        if rows == 0 {
            return Ok(None);
        }
        self.next += rows;
        let plan = &self.plan;
        let mut columns = match (&mut self.keys, &self.decoder) {
            (DrainedKeys::Column(keys), _) => vec![keys.slice(start, rows)],
            (DrainedKeys::Rows(keys), Some((parser, converter))) => {
                // The emitted keys are freed as they go.
                let keys: Vec<Box<[u8]>> = keys[start..start + rows]
                    .iter_mut()
                    .map(std::mem::take)
                    .collect();
                converter
                    .convert_rows(keys.iter().map(|key| parser.parse(key)))
                    .map_err(|e| plan.error("decoding group keys", e))?
            }
            (DrainedKeys::Rows(_), None) => Vec::new(),
        };
        for column in &self.columns {
            columns.push(match &self.indices {
                Some(indices) => take(column.as_ref(), &indices.slice(start, rows), None)
                    .map_err(|e| plan.error("ordering groups by key", e))?,
                None => column.slice(start, rows),
            });
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)
            .map_err(|e| plan.error("assembling its output", e))?;
        Ok(Some(batch))
    }
}

fn states(
    plan: &AggregatePlan,
    accumulators: &mut [Box<dyn GroupsAccumulator>],
) -> Result<Vec<ArrayRef>> {
    let mut columns = Vec::new();
    for (aggregate, accumulator) in plan.aggregates.iter().zip(accumulators) {
        let state = accumulator.state(EmitTo::All).map_err(|e| {
            plan.error(
                format!("taking the state of {}", aggregate.function.name()),
                e,
            )
        })?;
        columns.extend(state);
    }
    Ok(columns)
}

fn values(
    plan: &AggregatePlan,
    accumulators: &mut [Box<dyn GroupsAccumulator>],
) -> Result<Vec<ArrayRef>> {
    plan.aggregates
        .iter()
        .zip(accumulators)
        .map(|(aggregate, accumulator)| {
            accumulator
                .evaluate(EmitTo::All)
                .map_err(|e| plan.error(format!("evaluating {}", aggregate.function.name()), e))
        })
        .collect()
}
