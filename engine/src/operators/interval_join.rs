//! Interval joins: rows of two inputs with equal keys whose event times are
//! within a bounded distance of each other (`R.t BETWEEN L.t + lower AND
//! L.t + upper`), joined as they arrive; a row is forgotten once the
//! watermark shows nothing can match it any more (Flink's interval join).

use std::collections::HashMap;
use std::sync::Arc;
use weir_exchange::event::{batch_of, take_rows};

use arrow::array::{
    Array, ArrayRef, BooleanArray, BooleanBufferBuilder, Int64Array, RecordBatch, UInt32Array,
    new_null_array,
};
use arrow::compute::kernels::cmp::{gt_eq, lt_eq};
use arrow::compute::kernels::numeric::sub;
use arrow::compute::{and, filter_record_batch, prep_null_mask_filter, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_exchange::event::batch_data_bytes;

use super::join::hash_table::JoinTable;
use super::join::keys::{JoinKeys, KeyEncoder};
use super::join::side_state::SideState;
use super::join::{JoinSide, JoinType, joined_schema};
use crate::event_time::{check_time_type, event_times_ms};
use crate::expr::Compiled;
use crate::memory::MemoryReservation;
use crate::operator::OUTPUT_BATCH_ROWS;
use crate::{Error, Operator, OperatorFactory, Output, Progress, Result, TaskInfo};

/// Joins the rows of two inputs with equal keys whose times are close: a
/// right row matches a left row when `lower <= right time - left time <=
/// upper` (milliseconds) and the residual condition holds. Pairs come out
/// as soon as both rows are there; a row is kept until the watermark of
/// the other input passes the last time a match could have; then, in an
/// outer join, an unmatched row comes out padded with nulls.
///
/// Both inputs must be partitioned by the keys (a hash exchange on each).
#[derive(Debug, Clone)]
pub struct IntervalJoin {
    join_type: JoinType,
    keys: JoinKeys,
    bounds: (i64, i64),
    /// The time column of each input.
    times: [usize; 2],
    sides: [SchemaRef; 2],
    joined: SchemaRef,
    schema: SchemaRef,
    condition: Option<Compiled>,
    name: String,
}

fn index(side: JoinSide) -> usize {
    match side {
        JoinSide::Left => 0,
        JoinSide::Right => 1,
    }
}

impl IntervalJoin {
    /// A `join_type` join (inner, left, right or full) of `left` and `right`
    /// on equal `on` keys, matching rows whose times (the columns `times`)
    /// are `lower..=upper` milliseconds apart (right minus left), with
    /// `condition` over the columns of both.
    ///
    /// # Errors
    /// [`Error::Plan`] for a semi or anti join, bounds the wrong way round,
    /// time columns that are missing or not times, or keys without a
    /// common type.
    pub fn try_new(
        join_type: JoinType,
        left: SchemaRef,
        right: SchemaRef,
        (left_time, right_time): (&str, &str),
        (lower, upper): (i64, i64),
        on: Vec<(Compiled, Compiled)>,
        condition: Option<Compiled>,
    ) -> Result<Self> {
        if !join_type.emits_pairs() {
            return Err(Error::Plan(format!(
                "a {join_type} interval join: interval joins are inner, left, right or full"
            )));
        }
        if lower > upper {
            return Err(Error::Plan(format!(
                "an interval join's bounds are the wrong way round: {lower} ms > {upper} ms"
            )));
        }
        let time_of = |schema: &Schema, name: &str| -> Result<usize> {
            let i = schema.index_of(name).map_err(|_| {
                Error::Plan(format!(
                    "the interval join's time column '{name}' is not a column of its input"
                ))
            })?;
            check_time_type(name, schema.field(i).data_type())?;
            Ok(i)
        };
        let times = [time_of(&left, left_time)?, time_of(&right, right_time)?];
        let keys = JoinKeys::try_new(on)?;
        let name = format!("interval_join[{join_type}, {lower}..={upper} ms]({keys})");
        Ok(Self {
            join_type,
            keys,
            bounds: (lower, upper),
            times,
            joined: joined_schema(&left, &right),
            schema: join_type.output_schema(&left, &right),
            sides: [left, right],
            condition,
            name,
        })
    }

    /// The schema of its output.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether unmatched rows of `side` come out on their own.
    fn keeps_unmatched(&self, side: JoinSide) -> bool {
        matches!(
            (self.join_type, side),
            (JoinType::Full, _)
                | (JoinType::Left, JoinSide::Left)
                | (JoinType::Right, JoinSide::Right)
        )
    }
}

impl OperatorFactory for IntervalJoin {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        Ok(Box::new(IntervalJoinOperator {
            encoder: self.keys.encoder()?,
            spec: self.clone(),
            buffered: [Vec::new(), Vec::new()],
            watermark: i64::MIN,
            reservation: task.memory.reservation(self.name.clone()),
            task: task.clone(),
        }))
    }
}

/// Rows of one side waiting for matches: the rows, their times, and which
/// matched.
struct Waiting {
    rows: RecordBatch,
    times: Int64Array,
    matched: BooleanBufferBuilder,
}

struct IntervalJoinOperator {
    spec: IntervalJoin,
    encoder: KeyEncoder,
    buffered: [Vec<Waiting>; 2],
    watermark: i64,
    reservation: MemoryReservation,
    task: TaskInfo,
}

impl IntervalJoinOperator {
    /// The last time a row of `side` at `time` can still find a match: the
    /// other side's watermark must pass it before the row is forgotten.
    fn last_match(&self, side: JoinSide, time: i64) -> i64 {
        let (lower, upper) = self.spec.bounds;
        match side {
            JoinSide::Left => time.saturating_add(upper),
            JoinSide::Right => time.saturating_sub(lower),
        }
    }

    /// Joins a new batch of `side` with the waiting rows of the other side,
    /// then keeps its rows.
    fn add(&mut self, side: JoinSide, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let times = event_times_ms(batch.column(self.spec.times[index(side)]))?;
        let batch = if times.null_count() > 0 {
            self.task.counters.add(
                "records without event time dropped",
                times.null_count() as u64,
            );
            filter_record_batch(&batch, &arrow::compute::is_not_null(&times)?)?
        } else {
            batch
        };
        // Rows with a NULL key never match: an outer join emits them now.
        let (keyed, unmatchable) = self.encoder.split(side, batch)?;
        if let Some(rows) = unmatchable
            && self.spec.keeps_unmatched(side)
        {
            out.emit(self.padded(side, &rows)?);
        }
        let times = event_times_ms(keyed.column(self.spec.times[index(side)]))?;
        let mut matched = BooleanBufferBuilder::new(keyed.num_rows());
        matched.append_n(keyed.num_rows(), false);
        let keys = self.encoder.encode(side, &keyed)?;
        let table = JoinTable::try_new(keyed, keys, &self.spec.name)?;
        let other = side.other();
        let mut waiting = std::mem::take(&mut self.buffered[index(other)]);
        for old in &mut waiting {
            let probe_keys = self.encoder.encode(other, &old.rows)?;
            for block in table.candidates(&probe_keys, OUTPUT_BATCH_ROWS, false) {
                let (new_rows, old_rows) = block?;
                if new_rows.is_empty() {
                    continue;
                }
                let (new_rows, old_rows) =
                    (UInt32Array::from(new_rows), UInt32Array::from(old_rows));
                let (new, old_side) = (
                    (table.batch(), &times, &new_rows),
                    (&old.rows, &old.times, &old_rows),
                );
                let (left, right) = match side {
                    JoinSide::Left => (new, old_side),
                    JoinSide::Right => (old_side, new),
                };
                let keep = self.pairs(left, right, out)?;
                let (new_matched, old_matched) = match side {
                    JoinSide::Left => (&keep.0, &keep.1),
                    JoinSide::Right => (&keep.1, &keep.0),
                };
                for i in new_matched {
                    matched.set_bit(*i as usize, true);
                }
                for i in old_matched {
                    old.matched.set_bit(*i as usize, true);
                }
            }
        }
        self.buffered[index(other)] = waiting;
        let rows = table.into_batch();
        // A row whose last chance is already behind the other side's
        // watermark will not be matched later: emit or drop it now.
        let waiting = Waiting {
            rows,
            times,
            matched,
        };
        self.buffered[index(side)].push(waiting);
        self.expire(side, out)?;
        self.account()
    }

    /// The matching pairs among candidate pairs (left rows, right rows):
    /// emitted; returns the left and the right rows that matched.
    fn pairs(
        &self,
        (left, left_times, left_rows): (&RecordBatch, &Int64Array, &UInt32Array),
        (right, right_times, right_rows): (&RecordBatch, &Int64Array, &UInt32Array),
        out: &mut Output,
    ) -> Result<(Vec<u32>, Vec<u32>)> {
        let (lower, upper) = self.spec.bounds;
        let lt = take(left_times, left_rows, None)?;
        let rt = take(right_times, right_rows, None)?;
        let distance = sub(&rt, &lt)?;
        let keep = and(
            &gt_eq(&distance, &Int64Array::new_scalar(lower))?,
            &lt_eq(&distance, &Int64Array::new_scalar(upper))?,
        )?;
        let l = take_rows(left, left_rows)?;
        let r = take_rows(right, right_rows)?;
        let mut columns = l.columns().to_vec();
        columns.extend_from_slice(r.columns());
        let pairs = batch_of(Arc::clone(&self.spec.joined), columns, l.num_rows())?;
        let keep = match &self.spec.condition {
            Some(condition) => {
                let holds = condition.evaluate_predicate(&pairs)?;
                let holds = if holds.null_count() > 0 {
                    prep_null_mask_filter(&holds)
                } else {
                    holds
                };
                and(&keep, &holds)?
            }
            None => keep,
        };
        out.emit(filter_record_batch(&pairs, &keep)?.with_schema(Arc::clone(&self.spec.schema))?);
        let picked = |rows: &UInt32Array| -> Vec<u32> {
            rows.iter()
                .zip(keep.iter())
                .filter_map(|(row, k)| (k == Some(true)).then_some(row.unwrap_or_default()))
                .collect()
        };
        Ok((picked(left_rows), picked(right_rows)))
    }

    /// Forgets the rows of `side` that can no longer match; emits those of
    /// an outer side that never matched.
    fn expire(&mut self, side: JoinSide, out: &mut Output) -> Result<()> {
        let watermark = self.watermark;
        let mut kept = Vec::new();
        for mut waiting in std::mem::take(&mut self.buffered[index(side)]) {
            let last = self.last_match(side, 0);
            // Alive while time + (last - 0) > watermark.
            let offset = last;
            let alive =
                BooleanArray::from_unary(&waiting.times, |t| t.saturating_add(offset) > watermark);
            if alive.true_count() == alive.len() {
                kept.push(waiting);
                continue;
            }
            let matched = BooleanArray::new(waiting.matched.finish(), None);
            if self.spec.keeps_unmatched(side) {
                let expired_unmatched = and(
                    &arrow::compute::not(&alive)?,
                    &arrow::compute::not(&matched)?,
                )?;
                let lone = filter_record_batch(&waiting.rows, &expired_unmatched)?;
                if lone.num_rows() > 0 {
                    out.emit(self.padded(side, &lone)?);
                }
            }
            if alive.true_count() > 0 {
                let rows = filter_record_batch(&waiting.rows, &alive)?;
                let times = downcast_times(arrow::compute::filter(&waiting.times, &alive)?);
                let still = arrow::compute::filter(&matched, &alive)?;
                let still = still
                    .as_any()
                    .downcast_ref::<BooleanArray>()
                    .expect("booleans")
                    .clone();
                let mut bits = BooleanBufferBuilder::new(still.len());
                bits.append_buffer(still.values());
                waiting = Waiting {
                    rows,
                    times,
                    matched: bits,
                };
                kept.push(waiting);
            }
        }
        self.buffered[index(side)] = kept;
        Ok(())
    }

    /// Rows of `side` alone, the other side's columns null.
    fn padded(&self, side: JoinSide, rows: &RecordBatch) -> Result<RecordBatch> {
        let n = rows.num_rows();
        let nulls = |schema: &SchemaRef| -> Vec<ArrayRef> {
            schema
                .fields()
                .iter()
                .map(|f| new_null_array(f.data_type(), n))
                .collect()
        };
        let columns = match side {
            JoinSide::Left => [rows.columns().to_vec(), nulls(&self.spec.sides[1])].concat(),
            JoinSide::Right => [nulls(&self.spec.sides[0]), rows.columns().to_vec()].concat(),
        };
        Ok(batch_of(
            Arc::clone(&self.spec.schema),
            columns,
            rows.num_rows(),
        )?)
    }

    fn account(&mut self) -> Result<()> {
        let size: usize = self
            .buffered
            .iter()
            .flatten()
            .map(|w| batch_data_bytes(&w.rows))
            .sum();
        if self.reservation.try_resize(size) {
            Ok(())
        } else {
            Err(self
                .reservation
                .exhausted(size.saturating_sub(self.reservation.size())))
        }
    }
}

impl IntervalJoin {
    /// The layout of its checkpointed state; its own column is whether
    /// a row matched.
    fn side_state(&self) -> SideState<'_> {
        SideState {
            sides: [&self.sides[0], &self.sides[1]],
            own: 1,
            name: &self.name,
        }
    }
}

fn downcast_times(array: ArrayRef) -> Int64Array {
    array
        .as_any()
        .downcast_ref::<Int64Array>()
        .expect("times are Int64")
        .clone()
}

/// Columns and metadata of snapshotted interval join state.
const MATCHED_COLUMN: &str = "__matched";
const WATERMARK: &str = "watermark";

impl Operator for IntervalJoinOperator {
    fn process_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let side = JoinSide::of_input(input, &self.spec.name)?;
        let expected = &self.spec.sides[index(side)];
        if batch.schema().fields().len() != expected.fields().len() {
            return Err(Error::Operator {
                operator: self.spec.name.clone(),
                message: format!("a batch of the {side} input does not have its columns"),
            });
        }
        self.add(side, batch, out)
    }

    fn on_watermark(&mut self, watermark: i64, out: &mut Output) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        for side in [JoinSide::Left, JoinSide::Right] {
            self.expire(side, out)?;
        }
        self.account()?;
        out.emit_watermark(watermark);
        Ok(())
    }

    fn finish(&mut self, out: &mut Output) -> Result<Progress> {
        self.watermark = i64::MAX;
        for side in [JoinSide::Left, JoinSide::Right] {
            self.expire(side, out)?;
        }
        self.reservation.free();
        Ok(Progress::Done)
    }

    /// The waiting rows of both sides, each led by its key group and
    /// whether it matched.
    fn snapshot_state(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        let layout = self.spec.side_state();
        let schema = layout.schema(
            vec![Field::new(MATCHED_COLUMN, DataType::Boolean, false)],
            HashMap::from([(WATERMARK.to_string(), self.watermark.to_string())]),
        );
        let max_parallelism = self.task.max_parallelism;
        let mut state = Vec::new();
        for side in [JoinSide::Left, JoinSide::Right] {
            for waiting in &self.buffered[index(side)] {
                let matched = BooleanArray::new(waiting.matched.finish_cloned(), None);
                let keys = self.encoder.columns(side, &waiting.rows)?;
                state.push(layout.rows(
                    &schema,
                    side,
                    vec![Arc::new(matched)],
                    &waiting.rows,
                    &keys,
                    max_parallelism,
                )?);
            }
        }
        if state.is_empty() {
            state.push(layout.empty(&schema, max_parallelism)?);
        }
        Ok(Some(state))
    }

    /// Takes back the waiting rows.
    fn restore_state(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        for batch in state {
            let layout = self.spec.side_state();
            if let Some(watermark) = batch.schema().metadata().get(WATERMARK) {
                let watermark: i64 = watermark
                    .parse()
                    .map_err(|_| layout.broken("a bad watermark"))?;
                self.watermark = self.watermark.max(watermark);
            }
            for (side, rows) in layout.split(&batch)? {
                let data = layout.input_rows(side, &rows)?;
                let matched = layout.own_column::<BooleanArray>(&rows, 0)?;
                let mut bits = BooleanBufferBuilder::new(matched.len());
                bits.append_buffer(matched.values());
                let times = event_times_ms(data.column(self.spec.times[index(side)]))?;
                self.buffered[index(side)].push(Waiting {
                    rows: data,
                    times,
                    matched: bits,
                });
            }
        }
        self.account()
    }
}
