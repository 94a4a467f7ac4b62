//! Session window aggregates: the records of a key at most a gap apart
//! form one window. A record's window is `[t, t + gap)`, and windows that
//! overlap or touch merge, as Flink's session windows do: two records
//! exactly a gap apart are one session.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, UInt32Array};
use arrow::compute::{
    SortColumn, concat, concat_batches, filter, filter_record_batch, lexsort_to_indices, take,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion_expr::Expr;
use weir_exchange::event::{batch_data_bytes, take_rows};

use super::{WINDOW_END, WINDOW_START, WindowContext, times_column, window_fields};
use crate::checkpoint::with_key_groups;
use crate::event_time::event_times_ms;
use crate::expr::column;
use crate::memory::MemoryReservation;
use crate::operators::aggregate::{AggregateMode, AggregatePlan, Emit, GroupOrder, GroupedState};
use crate::{Error, Operator, Output, Progress, Result};

/// The aggregate plan of a session window: over the input rows with each
/// row's session as two more columns, grouped by the keys and the session,
/// so that its output is the keys, `window_start`, `window_end` and the
/// aggregates.
pub(super) fn plan(
    input: &Schema,
    time_type: &DataType,
    group_by: &[(Expr, String)],
    aggregates: &[(Expr, String)],
) -> Result<AggregatePlan> {
    for name in [WINDOW_START, WINDOW_END] {
        if input.field_with_name(name).is_ok() {
            return Err(Error::Plan(format!(
                "a session window adds the column '{name}', which its input already has: rename it"
            )));
        }
    }
    let mut fields: Vec<Arc<Field>> = input.fields().to_vec();
    fields.extend(window_fields(time_type));
    let with_session = Schema::new(fields);
    let mut keys = group_by.to_vec();
    keys.extend([WINDOW_START, WINDOW_END].map(|name| (column(name), name.to_string())));
    AggregatePlan::try_new(AggregateMode::Single, &with_session, &keys, aggregates)
}

/// The column of snapshotted records saying whether each was late.
const LATE_COLUMN: &str = "__late";
/// The metadata key of snapshotted state holding the watermark.
const WATERMARK: &str = "watermark";

/// Records waiting for their session to close.
#[derive(Default)]
struct Buffered {
    batches: Vec<RecordBatch>,
    times: Vec<Int64Array>,
    /// Whether each record was already late when it came.
    late: Vec<BooleanArray>,
    bytes: usize,
}

/// When each key's open session closes: `gap` after its last record.
#[derive(Default)]
struct Closes {
    /// The last time of each key buffered (keys in row format).
    last: HashMap<Box<[u8]>, i64>,
    /// Close times by key, earliest first; an entry is stale when the key's
    /// last time moved on.
    queue: BinaryHeap<Reverse<(i64, Box<[u8]>)>>,
}

impl Closes {
    /// Records the times of a batch's keys.
    fn add(&mut self, keys: &Rows, times: &Int64Array, gap: i64) {
        let mut newest: HashMap<&[u8], i64> = HashMap::new();
        for (key, time) in keys.iter().zip(times.values()) {
            let newest = newest.entry(key.data()).or_insert(i64::MIN);
            *newest = (*newest).max(*time);
        }
        for (key, time) in newest {
            let last = self.last.entry(key.into()).or_insert(i64::MIN);
            if time > *last {
                *last = time;
                self.queue
                    .push(Reverse((time.saturating_add(gap), key.into())));
            }
        }
    }

    /// The keys whose sessions all close at or before `until`, forgotten.
    fn closed(&mut self, until: i64, gap: i64) -> HashSet<Box<[u8]>> {
        let mut closed = HashSet::new();
        while let Some(Reverse((end, _))) = self.queue.peek()
            && *end <= until
        {
            let Reverse((end, key)) = self.queue.pop().expect("peeked");
            if self
                .last
                .get(&key)
                .is_some_and(|last| last.saturating_add(gap) == end)
            {
                self.last.remove(&key);
                closed.insert(key);
            }
        }
        closed
    }
}

/// A session window aggregate over one subtask's keys.
pub(super) struct SessionAggregateOperator {
    gap: i64,
    plan: Arc<AggregatePlan>,
    context: WindowContext,
    /// The number of group keys (the plan's keys also hold the session).
    keys: usize,
    converter: RowConverter,
    time_type: DataType,
    with_session: SchemaRef,
    buffered: Buffered,
    closes: Closes,
    watermark: i64,
    reservation: MemoryReservation,
}

impl SessionAggregateOperator {
    pub(super) fn try_new(
        gap: i64,
        plan: &Arc<AggregatePlan>,
        context: WindowContext,
    ) -> Result<Self> {
        let time_type = plan
            .input_schema
            .field(context.time_column)
            .data_type()
            .clone();
        let keys = plan.key_fields.len() - 2;
        let converter = RowConverter::new(
            plan.key_fields[..keys]
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        Ok(Self {
            gap,
            keys,
            converter,
            with_session: Arc::clone(&plan.input_schema),
            plan: Arc::clone(plan),
            reservation: context.task.memory.reservation(context.name.clone()),
            context,
            time_type,
            buffered: Buffered::default(),
            closes: Closes::default(),
            watermark: i64::MIN,
        })
    }

    /// The group keys of `batch`, in row format (one empty key without
    /// group keys).
    fn key_rows(&self, batch: &RecordBatch) -> Result<Rows> {
        let keys = self.plan.group_by[..self.keys]
            .iter()
            .map(|key| key.evaluate(batch))
            .collect::<Result<Vec<_>>>()?;
        if keys.is_empty() {
            // Every record has the same (empty) key.
            let converter = RowConverter::new(vec![SortField::new(DataType::Null)])?;
            return Ok(converter.convert_columns(&[arrow::array::new_null_array(
                &DataType::Null,
                batch.num_rows(),
            )])?);
        }
        Ok(self.converter.convert_columns(&keys)?)
    }

    /// Emits the sessions of the keys whose sessions all closed at or
    /// before `until`; keeps the records of the others.
    fn fire(&mut self, until: i64, output: &mut Output) -> Result<()> {
        let closed = self.closes.closed(until, self.gap);
        if closed.is_empty() || self.buffered.batches.is_empty() {
            return Ok(());
        }
        let buffered = std::mem::take(&mut self.buffered);
        let all = concat_batches(&buffered.batches[0].schema(), &buffered.batches)?;
        let times = concat_arrays::<Int64Array>(&buffered.times)?;
        let late = concat_arrays::<BooleanArray>(&buffered.late)?;
        let keys = self.key_rows(&all)?;
        let closing: BooleanArray = keys
            .iter()
            .map(|key| Some(closed.contains(key.as_ref())))
            .collect();
        let kept = arrow::compute::not(&closing)?;
        if kept.true_count() > 0 {
            self.buffer(
                filter_record_batch(&all, &kept)?,
                downcast::<Int64Array>(filter(&times, &kept)?),
                downcast::<BooleanArray>(filter(&late, &kept)?),
            );
        }
        let all = filter_record_batch(&all, &closing)?;
        let times = downcast::<Int64Array>(filter(&times, &closing)?);
        let late = downcast::<BooleanArray>(filter(&late, &closing)?);
        // Sorted by key, then time: a session is a run of one key whose
        // times are at most the gap apart (their windows touch).
        let mut sort: Vec<SortColumn> = self.plan.group_by[..self.keys]
            .iter()
            .map(|key| {
                Ok(SortColumn {
                    values: key.evaluate(&all)?,
                    options: None,
                })
            })
            .collect::<Result<_>>()?;
        sort.push(SortColumn {
            values: Arc::new(times.clone()),
            options: None,
        });
        let order = lexsort_to_indices(&sort, None)?;
        let keys = self.key_rows(&take_rows(&all, &order)?)?;
        let sorted_times = downcast::<Int64Array>(take(&times, &order, None)?);
        let (mut fired, mut starts, mut ends) = (vec![], vec![], vec![]);
        let mut first = 0;
        let rows = order.len();
        for i in 1..=rows {
            let same_session = i < rows
                && keys.row(i) == keys.row(i - 1)
                && sorted_times.value(i) - sorted_times.value(i - 1) <= self.gap;
            if same_session {
                continue;
            }
            let session = first..i;
            let (start, end) = (
                sorted_times.value(first),
                sorted_times.value(i - 1).saturating_add(self.gap),
            );
            if session.clone().all(|j| late.value(order.value(j) as usize)) {
                let members =
                    UInt32Array::from_iter_values(session.clone().map(|j| order.value(j)));
                self.context.late(take_rows(&all, &members)?, output);
            } else {
                fired.extend(session.clone().map(|j| order.value(j)));
                starts.extend(std::iter::repeat_n(start, session.len()));
                ends.extend(std::iter::repeat_n(end, session.len()));
            }
            first = i;
        }
        if !fired.is_empty() {
            let rows = take_rows(&all, &UInt32Array::from(fired))?;
            let mut columns = rows.columns().to_vec();
            columns.push(times_column(Int64Array::from(starts), &self.time_type)?);
            columns.push(times_column(Int64Array::from(ends), &self.time_type)?);
            let with_session = RecordBatch::try_new(Arc::clone(&self.with_session), columns)?;
            let mut state = GroupedState::try_new(&self.plan)?;
            state.update(&with_session)?;
            let mut groups = state.take_groups(GroupOrder::FirstSeen, Emit::Values)?;
            while let Some(batch) = groups.next_batch()? {
                output.emit(RecordBatch::try_new(
                    Arc::clone(&self.context.output_schema),
                    batch.columns().to_vec(),
                )?);
            }
        }
        self.account()
    }

    /// Keeps records for their sessions, noting when each key's closes.
    fn add(&mut self, batch: RecordBatch, times: Int64Array, late: BooleanArray) -> Result<()> {
        let keys = self.key_rows(&batch)?;
        self.closes.add(&keys, &times, self.gap);
        self.buffer(batch, times, late);
        Ok(())
    }

    fn buffer(&mut self, batch: RecordBatch, times: Int64Array, late: BooleanArray) {
        let buffered = &mut self.buffered;
        buffered.bytes += batch_data_bytes(&batch);
        buffered.batches.push(batch);
        buffered.times.push(times);
        buffered.late.push(late);
    }

    fn account(&mut self) -> Result<()> {
        let size = self.buffered.bytes;
        if self.reservation.try_resize(size) {
            Ok(())
        } else {
            Err(self
                .reservation
                .exhausted(size.saturating_sub(self.reservation.size())))
        }
    }
}

fn concat_arrays<A: Array + Clone + 'static>(arrays: &[A]) -> Result<A> {
    let refs: Vec<&dyn Array> = arrays.iter().map(|a| a as &dyn Array).collect();
    Ok(downcast::<A>(concat(&refs)?))
}

fn downcast<A: Array + Clone + 'static>(array: ArrayRef) -> A {
    array
        .as_any()
        .downcast_ref::<A>()
        .expect("the array keeps its type")
        .clone()
}

impl Operator for SessionAggregateOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        _output: &mut Output,
    ) -> Result<()> {
        let times = event_times_ms(batch.column(self.context.time_column))?;
        let (batch, times) = if times.null_count() > 0 {
            let keep = arrow::compute::is_not_null(&times)?;
            self.context.task.counters.add(
                "records without event time dropped",
                times.null_count() as u64,
            );
            let times = downcast::<Int64Array>(filter(&times, &keep)?);
            (filter_record_batch(&batch, &keep)?, times)
        } else {
            (batch, times)
        };
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // A record whose own session would already have closed is late
        // unless it joins a session that is still open.
        let (gap, watermark) = (self.gap, self.watermark);
        let late = BooleanArray::from_unary(&times, |t| t.saturating_add(gap) - 1 <= watermark);
        self.add(batch, times, late)?;
        self.account()
    }

    /// The records waiting for their sessions, led by their key groups and
    /// followed by whether each was late, with the watermark in the
    /// metadata.
    fn snapshot_state(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let metadata = HashMap::from([(WATERMARK.to_string(), self.watermark.to_string())]);
        let input = Arc::clone(&self.context.input_schema);
        let mut fields: Vec<Arc<Field>> = input.fields().to_vec();
        fields.push(Arc::new(Field::new(LATE_COLUMN, DataType::Boolean, false)));
        let schema = Arc::new(Schema::new_with_metadata(fields, metadata));
        let buffered = &self.buffered;
        let max_parallelism = self.context.task.max_parallelism;
        let mut state = Vec::new();
        for (batch, late) in buffered.batches.iter().zip(&buffered.late) {
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(late.clone()));
            let rows = RecordBatch::try_new(Arc::clone(&schema), columns)?;
            let keys = self.plan.group_by[..self.keys]
                .iter()
                .map(|key| key.evaluate(batch))
                .collect::<Result<Vec<_>>>()?;
            state.push(with_key_groups(&rows, &keys, max_parallelism)?);
        }
        if state.is_empty() {
            let empty = RecordBatch::new_empty(schema);
            let keys = self.plan.group_by[..self.keys]
                .iter()
                .map(|key| key.evaluate(&empty))
                .collect::<Result<Vec<_>>>()?;
            state.push(with_key_groups(&empty, &keys, max_parallelism)?);
        }
        Ok(Some(state))
    }

    /// Takes back the records waiting for their sessions.
    fn restore_state(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        for batch in state {
            if let Some(watermark) = batch.schema().metadata().get(WATERMARK) {
                let watermark: i64 = watermark
                    .parse()
                    .map_err(|_| self.context.error("restoring", "a bad watermark"))?;
                self.watermark = self.watermark.max(watermark);
            }
            if batch.num_rows() == 0 {
                continue;
            }
            let width = batch.num_columns() - 1;
            let late = downcast::<BooleanArray>(Arc::clone(batch.column(width)));
            let rows = RecordBatch::try_new(
                Arc::clone(&self.context.input_schema),
                batch.columns()[..width].to_vec(),
            )?;
            let times = event_times_ms(rows.column(self.context.time_column))?;
            self.add(rows, times, late)?;
        }
        self.account()
    }

    fn on_watermark(&mut self, watermark: i64, output: &mut Output) -> Result<()> {
        self.watermark = watermark;
        self.fire(watermark.saturating_add(1), output)?;
        output.emit_watermark(watermark);
        Ok(())
    }

    fn finish(&mut self, output: &mut Output) -> Result<Progress> {
        self.fire(i64::MAX, output)?;
        self.reservation.free();
        Ok(Progress::Done)
    }
}
