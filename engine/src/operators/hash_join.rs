//! Hash join: an equi-join that indexes one input (the build side) in a hash
//! table and streams the other (the probe side) through it, spilling both
//! sides to hash partitions (a grace hash join) when the build side does not
//! fit its memory budget.
//!
//! What is left when every input ended (the build rows the join keeps on
//! their own, the spilled partitions) is emitted in parts over calls to
//! `finish` (see `remaining`).

mod remaining;

use std::sync::Arc;
use weir_exchange::event::batch_data_bytes;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;

use self::remaining::Remaining;
use super::join::grace::SpillPartitions;
use super::join::hash_table::JoinTable;
use super::join::keys::{JoinKeys, KeyEncoder};
use super::join::{BufferedBatches, JoinOutput, JoinSide, JoinType, MatchBitmap, in_context};
use crate::expr::Compiled;
use crate::memory::MemoryReservation;
use crate::operator::OUTPUT_BATCH_ROWS;
use crate::{Error, Operator, OperatorFactory, Output, Progress, Result, TaskInfo};

/// Joins input 0 (left) and input 1 (right) on equal keys.
///
/// One input, the build side, is buffered and indexed in a hash table when
/// it ends; the other, the probe side, is streamed through the table (its
/// batches that arrive before the build side ended wait, under the memory
/// budget). The build rows that matched are tracked in a bitmap so that
/// outer, semi and anti joins of the build side emit them at the end.
///
/// When the build side does not fit, both sides are partitioned by key hash
/// into spill files and joined partition by partition at the end; a
/// partition that still does not fit is split again with another hash, a
/// few levels deep, before the join fails with
/// [`Error::ResourcesExhausted`].
#[derive(Debug, Clone)]
pub struct HashJoin {
    output: JoinOutput,
    keys: JoinKeys,
}

impl HashJoin {
    /// A `join_type` join of `left` (input 0) and `right` (input 1).
    ///
    /// - `on`: the equi-keys, pairs of an expression over the left schema
    ///   and one over the right. The operator compares each pair in the
    ///   common type of DataFusion's comparison coercion (it casts, callers
    ///   need not). A row with a NULL key matches nothing.
    /// - `filter`: a residual condition over
    ///   [`joined_schema`](super::joined_schema)`(left, right)` that a pair
    ///   with equal keys must also satisfy to match (a NULL counts as false).
    ///   It decides which rows are unmatched for outer, semi and anti joins.
    /// - `build`: the side to index, best the smaller one; the result is the
    ///   same either way.
    ///
    /// # Errors
    /// [`Error::Plan`] without keys, when a key pair has no common type, or
    /// when the filter is not boolean.
    pub fn try_new(
        join_type: JoinType,
        left: SchemaRef,
        right: SchemaRef,
        on: Vec<(Compiled, Compiled)>,
        filter: Option<Compiled>,
        build: JoinSide,
    ) -> Result<Self> {
        Ok(Self {
            output: JoinOutput::try_new(join_type, left, right, filter, build)?,
            keys: JoinKeys::try_new(on)?,
        })
    }

    /// The same join, where a NULL key matches a NULL key (`IS NOT
    /// DISTINCT FROM`, as `INTERSECT` and `EXCEPT` compare rows) instead
    /// of nothing.
    pub fn matching_nulls(self) -> Self {
        Self {
            keys: self.keys.matching_nulls(),
            ..self
        }
    }

    /// The schema of the output batches.
    pub fn schema(&self) -> &SchemaRef {
        self.output.schema()
    }
}

impl OperatorFactory for HashJoin {
    fn name(&self) -> String {
        let filter = self
            .output
            .condition()
            .map(|f| format!("; filter {f}"))
            .unwrap_or_default();
        format!(
            "hash_join({}; {}{filter}; build {})",
            self.output.join_type(),
            self.keys,
            self.output.build()
        )
    }

    fn is_deterministic(&self) -> bool {
        self.output.is_deterministic()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        let name = self.name();
        Ok(Box::new(HashJoinOperator {
            output: self.output.clone(),
            encoder: self.keys.encoder()?,
            reservation: task.memory.reservation(name.clone()),
            state: BuildState::Collecting(BufferedBatches::default()),
            pending: BufferedBatches::default(),
            name,
        }))
    }
}

/// Where the build side is.
#[derive(Debug)]
enum BuildState {
    /// The build input is still arriving and fits in memory so far.
    Collecting(BufferedBatches),
    /// The build input ended and its table fits in memory.
    Ready(JoinTable, Option<MatchBitmap>),
    /// Both sides go to hash partitions on disk, joined at the end.
    Spilled {
        build: SpillPartitions,
        probe: SpillPartitions,
    },
    /// Every input ended: what is left is being emitted, over calls to
    /// `finish`.
    Emitting(Remaining),
    /// Everything was emitted.
    Finished,
}

#[derive(Debug)]
struct HashJoinOperator {
    name: String,
    output: JoinOutput,
    encoder: KeyEncoder,
    reservation: MemoryReservation,
    state: BuildState,
    /// Probe batches that arrived before the table was ready.
    pending: BufferedBatches,
}

impl HashJoinOperator {
    fn build_side(&self) -> JoinSide {
        self.output.build()
    }

    fn on_batch(&mut self, side: JoinSide, batch: RecordBatch, out: &mut Output) -> Result<()> {
        self.output.check_input(side, &batch, &self.name)?;
        let (batch, unmatchable) = self.encoder.split(side, batch)?;
        if let Some(rows) = unmatchable {
            self.output.unmatchable(side, &rows, out)?;
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let is_build = side == self.build_side();
        match &mut self.state {
            BuildState::Collecting(collected) => {
                let buffer = if is_build {
                    collected
                } else {
                    &mut self.pending
                };
                if let Err(batch) = buffer.try_push(batch, &mut self.reservation) {
                    self.spill(batch_data_bytes(&batch))?;
                    self.write_spilled(side, &batch)?;
                }
                Ok(())
            }
            BuildState::Ready(table, matched) if !is_build => probe_table(
                &self.output,
                &self.encoder,
                table,
                matched.as_mut(),
                &batch,
                out,
            ),
            BuildState::Spilled { .. } => self.write_spilled(side, &batch),
            BuildState::Ready(..) | BuildState::Emitting(_) | BuildState::Finished => Err(self
                .error(format!(
                    "a batch of the {side} input arrived after that input ended"
                ))),
        }
    }

    /// The build input ended: index it if it fits, or spill everything.
    fn end_build(&mut self, out: &mut Output) -> Result<()> {
        let BuildState::Collecting(collected) = &mut self.state else {
            return Ok(());
        };
        let batches = collected.take(&mut self.reservation);
        match self.try_build_table(batches)? {
            Ok((table, mut matched)) => {
                for batch in self.pending.take(&mut self.reservation) {
                    probe_table(
                        &self.output,
                        &self.encoder,
                        &table,
                        matched.as_mut(),
                        &batch,
                        out,
                    )?;
                }
                self.state = BuildState::Ready(table, matched);
                Ok(())
            }
            Err((batch, bytes)) => {
                self.spill(bytes)?;
                self.write_spilled(self.build_side(), &batch)
            }
        }
    }

    /// Indexes the build rows if their table fits in the reservation;
    /// otherwise gives the rows back with the bytes that did not fit.
    #[allow(clippy::type_complexity)]
    fn try_build_table(
        &mut self,
        batches: Vec<RecordBatch>,
    ) -> Result<Result<(JoinTable, Option<MatchBitmap>), (RecordBatch, usize)>> {
        let side = self.build_side();
        let batch = concat_batches(self.output.side_schema(side), &batches)?;
        drop(batches);
        let keys = self.encoder.encode(side, &batch)?;
        let matched = self.output.build_bitmap(batch.num_rows());
        let table = JoinTable::try_new(batch, keys, &self.name)?;
        let bytes = table.size() + matched.as_ref().map_or(0, MatchBitmap::size);
        Ok(if self.reservation.try_grow(bytes) {
            Ok((table, matched))
        } else {
            Err((table.into_batch(), bytes))
        })
    }

    /// Moves what is buffered to hash partitions on disk; from now on both
    /// inputs go there. Fails if spilling is disabled.
    fn spill(&mut self, requested: usize) -> Result<()> {
        if !self.reservation.can_spill() {
            return Err(self.reservation.exhausted(requested));
        }
        let build = match &mut self.state {
            BuildState::Collecting(collected) => collected.take(&mut self.reservation),
            _ => Vec::new(),
        };
        let probe = self.pending.take(&mut self.reservation);
        self.state = BuildState::Spilled {
            build: self.partitions(self.build_side(), 1),
            probe: self.partitions(self.build_side().other(), 1),
        };
        for batch in &build {
            self.write_spilled(self.build_side(), batch)?;
        }
        for batch in &probe {
            self.write_spilled(self.build_side().other(), batch)?;
        }
        Ok(())
    }

    fn partitions(&self, side: JoinSide, level: u64) -> SpillPartitions {
        SpillPartitions::new(Arc::clone(self.output.side_schema(side)), level)
    }

    fn write_spilled(&mut self, side: JoinSide, batch: &RecordBatch) -> Result<()> {
        let is_build = side == self.build_side();
        let BuildState::Spilled { build, probe } = &mut self.state else {
            return Err(self.error("rows to spill while not spilling".to_string()));
        };
        let partitions = if is_build { build } else { probe };
        let keys = self.encoder.encode(side, batch)?;
        partitions.write(batch, &keys, &self.reservation)
    }

    fn error(&self, message: String) -> Error {
        Error::Operator {
            operator: self.name.clone(),
            message,
        }
    }
}

/// Probes the table with one batch of the probe side (keys all non-NULL).
fn probe_table(
    output: &JoinOutput,
    encoder: &KeyEncoder,
    table: &JoinTable,
    matched: Option<&mut MatchBitmap>,
    batch: &RecordBatch,
    out: &mut Output,
) -> Result<()> {
    let keys = encoder.encode(output.build().other(), batch)?;
    output.probe(
        table.batch(),
        matched,
        batch,
        table.candidates(&keys, OUTPUT_BATCH_ROWS, output.first_match_suffices()),
        out,
    )
}

/// What the operator does when the build input ends.
const BUILDING: &str = "building the hash table and probing the waiting batches";

impl Operator for HashJoinOperator {
    fn process_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let side = JoinSide::of_input(input, &self.name)?;
        self.on_batch(side, batch, out).map_err(in_context(
            &self.name,
            format!("joining a batch of the {side} input"),
        ))
    }

    fn end_of_input(&mut self, input: usize, out: &mut Output) -> Result<()> {
        if JoinSide::of_input(input, &self.name)? != self.build_side() {
            return Ok(());
        }
        self.end_build(out)
            .map_err(in_context(&self.name, BUILDING))
    }

    fn finish(&mut self, out: &mut Output) -> Result<Progress> {
        self.end_build(out)
            .map_err(in_context(&self.name, BUILDING))?;
        let mut remaining = match std::mem::replace(&mut self.state, BuildState::Finished) {
            BuildState::Ready(table, matched) => {
                Remaining::build_rows(self.output.build_lone(table.into_batch(), matched))
            }
            BuildState::Spilled { build, probe } => {
                Remaining::partitions(build, probe, &self.reservation)
                    .map_err(in_context(&self.name, "completing the spilled partitions"))?
            }
            BuildState::Emitting(remaining) => remaining,
            BuildState::Collecting(_) | BuildState::Finished => return Ok(Progress::Done),
        };
        let progress = self
            .emit_remaining(&mut remaining, out)
            .map_err(in_context(&self.name, "emitting what is left"))?;
        match progress {
            Progress::More => self.state = BuildState::Emitting(remaining),
            Progress::Done => self.reservation.free(),
        }
        Ok(progress)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::expr::{Expr, col, lit};
    use crate::memory::MemoryPool;
    use crate::operators::joined_schema;
    use crate::testing::{drive, sorted_rows};

    fn left() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("lk", DataType::Int32, true),
            Field::new("ls", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), Some(2), None])),
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
            ],
        )
        .expect("valid batch")
    }

    fn right() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("rk", DataType::Int64, true),
            Field::new("rv", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), Some(1), Some(3), None])),
                Arc::new(Int64Array::from(vec![10, 11, 30, 40])),
            ],
        )
        .expect("valid batch")
    }

    fn join(join_type: JoinType, filter: Option<Expr>, build: JoinSide) -> Result<HashJoin> {
        let (l, r) = (left().schema(), right().schema());
        let on = vec![(
            Compiled::new(&col("lk"), &l)?,
            Compiled::new(&col("rk"), &r)?,
        )];
        let filter = filter
            .map(|f| Compiled::new(&f, &joined_schema(&l, &r)))
            .transpose()?;
        HashJoin::try_new(join_type, l, r, on, filter, build)
    }

    fn run(join: &HashJoin) -> Vec<String> {
        let out = drive(
            join,
            &[vec![left()], vec![right()]],
            MemoryPool::unbounded(),
        )
        .expect("joins");
        sorted_rows(&out)
    }

    #[test]
    fn a_full_join_pads_both_sides_and_null_keys_never_match() {
        for build in [JoinSide::Left, JoinSide::Right] {
            let join = join(JoinType::Full, None, build).expect("valid");
            assert_eq!(
                run(&join),
                vec![
                    "1|a|1|10",
                    "1|a|1|11",
                    "2|b|NULL|NULL",
                    "NULL|NULL|3|30",
                    "NULL|NULL|NULL|40",
                    "NULL|c|NULL|NULL",
                ]
            );
        }
    }

    #[test]
    fn the_filter_decides_what_matched() {
        let filter = Some(col("rv").gt(lit(10i64)));
        for build in [JoinSide::Left, JoinSide::Right] {
            let semi = join(JoinType::LeftSemi, filter.clone(), build).expect("valid");
            assert_eq!(run(&semi), vec!["1|a"]);
            let anti = join(JoinType::RightAnti, filter.clone(), build).expect("valid");
            assert_eq!(run(&anti), vec!["1|10", "3|30", "NULL|40"]);
        }
    }

    #[test]
    fn misplanned_joins_and_bad_input_are_errors_naming_the_operator() {
        let err = join(JoinType::Inner, Some(col("rv")), JoinSide::Left).expect_err("not boolean");
        assert!(matches!(err, Error::Plan(_)), "{err}");
        let join = join(JoinType::Inner, None, JoinSide::Left).expect("valid");
        assert_eq!(join.name(), "hash_join(inner; lk = rk; build left)");
        let err = drive(&join, &[vec![right()], vec![]], MemoryPool::unbounded())
            .expect_err("the right batch on the left input");
        assert!(err.to_string().contains(&join.name()), "{err}");
        let err = drive(
            &join,
            &[vec![], vec![], vec![left()]],
            MemoryPool::unbounded(),
        )
        .expect_err("a third input");
        assert!(err.to_string().contains(&join.name()), "{err}");
    }

    #[test]
    fn a_failing_filter_is_an_expression_error_naming_the_operator() {
        let divide_by_zero = (col("rv") / (col("rv") - col("rv"))).gt(lit(0i64));
        let join = join(JoinType::Inner, Some(divide_by_zero), JoinSide::Right).expect("valid");
        let err = drive(
            &join,
            &[vec![left()], vec![right()]],
            MemoryPool::unbounded(),
        )
        .expect_err("division by zero");
        assert!(matches!(err, Error::Expr { .. }), "{err}");
        assert!(err.to_string().contains(&join.name()), "{err}");
    }
}
