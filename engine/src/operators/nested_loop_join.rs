//! Nested-loop join: joins on any condition (`<`, `between`, ...) by
//! evaluating it over blocks of the cross product of the buffered build side
//! and each probe batch.

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use arrow::datatypes::SchemaRef;
use weir_exchange::event::batch_data_bytes;

use super::join::{
    BufferedBatches, Candidates, JoinOutput, JoinSide, JoinType, LoneBatches, MatchBitmap,
    in_context,
};
use crate::expr::Compiled;
use crate::memory::MemoryReservation;
use crate::operator::OUTPUT_BATCH_ROWS;
use crate::{Error, Operator, OperatorFactory, Output, Progress, Result, TaskInfo};

/// Joins input 0 (left) and input 1 (right) on an arbitrary condition.
///
/// The build side is buffered whole (within the memory budget; this join
/// does not spill and fails with [`Error::ResourcesExhausted`] when the build
/// side does not fit). Each probe batch is joined against it in blocks of at
/// most 8192 candidate pairs, over which the condition is evaluated
/// vectorized. Meant for conditions without equal keys; those are the hash
/// join's.
#[derive(Debug, Clone)]
pub struct NestedLoopJoin {
    output: JoinOutput,
}

impl NestedLoopJoin {
    /// A `join_type` join of `left` (input 0) and `right` (input 1) where a
    /// pair matches when `condition`, over
    /// [`joined_schema`](super::joined_schema)`(left, right)`, is true (NULL
    /// counts as false). `build` is the side to buffer, best the smaller
    /// one; the result is the same either way.
    ///
    /// # Errors
    /// [`Error::Plan`] when the condition is not boolean.
    pub fn try_new(
        join_type: JoinType,
        left: SchemaRef,
        right: SchemaRef,
        condition: Compiled,
        build: JoinSide,
    ) -> Result<Self> {
        Ok(Self {
            output: JoinOutput::try_new(join_type, left, right, Some(condition), build)?,
        })
    }

    /// The schema of the output batches.
    pub fn schema(&self) -> &SchemaRef {
        self.output.schema()
    }
}

impl OperatorFactory for NestedLoopJoin {
    fn name(&self) -> String {
        let condition = self
            .output
            .condition()
            .map(ToString::to_string)
            .unwrap_or_default();
        format!(
            "nested_loop_join({}; {condition}; build {})",
            self.output.join_type(),
            self.output.build()
        )
    }

    fn is_deterministic(&self) -> bool {
        self.output.is_deterministic()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        let name = self.name();
        Ok(Box::new(NestedLoopJoinOperator {
            output: self.output.clone(),
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
    /// The build input is still arriving.
    Collecting(BufferedBatches),
    /// The build input ended: its rows, and which of them matched.
    Ready(RecordBatch, Option<MatchBitmap>),
    /// Every input ended: the build rows kept on their own are being
    /// emitted, over calls to `finish`.
    Emitting(LoneBatches),
    /// Everything was emitted.
    Finished,
}

#[derive(Debug)]
struct NestedLoopJoinOperator {
    name: String,
    output: JoinOutput,
    reservation: MemoryReservation,
    state: BuildState,
    /// Probe batches that arrived before the build side ended.
    pending: BufferedBatches,
}

impl NestedLoopJoinOperator {
    fn on_batch(&mut self, side: JoinSide, batch: RecordBatch, out: &mut Output) -> Result<()> {
        self.output.check_input(side, &batch, &self.name)?;
        let is_build = side == self.output.build();
        match &mut self.state {
            BuildState::Collecting(collected) => {
                let buffer = if is_build {
                    collected
                } else {
                    &mut self.pending
                };
                buffer
                    .try_push(batch, &mut self.reservation)
                    .map_err(|batch| self.reservation.exhausted(batch_data_bytes(&batch)))
            }
            BuildState::Ready(build, matched) if !is_build => {
                probe(&self.output, build, matched.as_mut(), &batch, out)
            }
            BuildState::Ready(..) | BuildState::Emitting(_) | BuildState::Finished => {
                Err(Error::Operator {
                    operator: self.name.clone(),
                    message: format!("a batch of the {side} input arrived after that input ended"),
                })
            }
        }
    }

    /// The build input ended: join the probe batches that waited for it.
    fn end_build(&mut self, out: &mut Output) -> Result<()> {
        let BuildState::Collecting(collected) = &mut self.state else {
            return Ok(());
        };
        let batches = collected.take(&mut self.reservation);
        let build = concat_batches(self.output.side_schema(self.output.build()), &batches)?;
        drop(batches);
        let mut matched = self.output.build_bitmap(build.num_rows());
        let bytes = build.get_array_memory_size() + matched.as_ref().map_or(0, MatchBitmap::size);
        if !self.reservation.try_grow(bytes) {
            return Err(self.reservation.exhausted(bytes));
        }
        for batch in self.pending.take(&mut self.reservation) {
            probe(&self.output, &build, matched.as_mut(), &batch, out)?;
        }
        self.state = BuildState::Ready(build, matched);
        Ok(())
    }
}

/// Joins one probe batch against all build rows.
fn probe(
    output: &JoinOutput,
    build: &RecordBatch,
    matched: Option<&mut MatchBitmap>,
    batch: &RecordBatch,
    out: &mut Output,
) -> Result<()> {
    // A condition that is never true (DataFusion folds `ON a = b AND
    // false` to `false`) pairs no rows: the cross product is not built.
    let build_rows = if never_true(output) {
        0
    } else {
        build.num_rows()
    };
    let candidates = cross_product(build_rows, batch.num_rows(), OUTPUT_BATCH_ROWS);
    output.probe(build, matched, batch, candidates.map(Ok), out)
}

/// Whether the join's condition is a constant false or NULL.
fn never_true(output: &JoinOutput) -> bool {
    use datafusion_common::ScalarValue;
    use datafusion_expr::Expr;
    output.condition().is_some_and(|c| {
        matches!(
            c.expr(),
            Expr::Literal(ScalarValue::Boolean(None | Some(false)), _)
        )
    })
}

/// Every pair of `build` rows and `probe` rows, probe row by probe row, in
/// blocks of at most `block` pairs.
fn cross_product(build: usize, probe: usize, block: usize) -> impl Iterator<Item = Candidates> {
    let pairs = build * probe;
    (0..pairs).step_by(block).map(move |start| {
        let pairs = start..pairs.min(start + block);
        (
            pairs.clone().map(|k| (k % build) as u32).collect(),
            pairs.map(|k| (k / build) as u32).collect(),
        )
    })
}

impl Operator for NestedLoopJoinOperator {
    fn process_batch(&mut self, input: usize, batch: RecordBatch, out: &mut Output) -> Result<()> {
        let side = JoinSide::of_input(input, &self.name)?;
        self.on_batch(side, batch, out).map_err(in_context(
            &self.name,
            format!("joining a batch of the {side} input"),
        ))
    }

    fn end_of_input(&mut self, input: usize, out: &mut Output) -> Result<()> {
        if JoinSide::of_input(input, &self.name)? != self.output.build() {
            return Ok(());
        }
        self.end_build(out)
            .map_err(in_context(&self.name, "joining the waiting probe batches"))
    }

    fn finish(&mut self, out: &mut Output) -> Result<Progress> {
        self.end_build(out)
            .map_err(in_context(&self.name, "joining the waiting probe batches"))?;
        self.state = match std::mem::replace(&mut self.state, BuildState::Finished) {
            BuildState::Ready(build, matched) => self
                .output
                .build_lone(build, matched)
                .map_or(BuildState::Finished, BuildState::Emitting),
            other => other,
        };
        let progress = match &mut self.state {
            BuildState::Emitting(lone) => out
                .emit_until_full(|| self.output.next_lone(lone))
                .map_err(in_context(&self.name, "emitting the build rows"))?,
            _ => Progress::Done,
        };
        if progress == Progress::Done {
            self.state = BuildState::Finished;
            self.reservation.free();
        }
        Ok(progress)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::expr::col;
    use crate::memory::{MemoryConfig, MemoryPool};
    use crate::operators::joined_schema;
    use crate::testing::{drive, sorted_rows};

    fn side(name: &str, values: Vec<Option<i32>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new(name, DataType::Int32, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(values))]).expect("batch")
    }

    fn less_than(join_type: JoinType, build: JoinSide) -> NestedLoopJoin {
        let (l, r) = (side("l", vec![]).schema(), side("r", vec![]).schema());
        let condition =
            Compiled::new(&col("l").lt(col("r")), &joined_schema(&l, &r)).expect("condition");
        NestedLoopJoin::try_new(join_type, l, r, condition, build).expect("valid")
    }

    #[test]
    fn a_left_join_on_less_than_keeps_the_left_rows_without_a_greater_right_one() {
        let inputs = [
            vec![side("l", vec![Some(1), Some(5), None])],
            vec![side("r", vec![Some(2), Some(3)])],
        ];
        for build in [JoinSide::Left, JoinSide::Right] {
            let join = less_than(JoinType::Left, build);
            let out = drive(&join, &inputs, MemoryPool::unbounded()).expect("joins");
            assert_eq!(sorted_rows(&out), vec!["1|2", "1|3", "5|NULL", "NULL|NULL"]);
        }
    }

    #[test]
    fn a_build_side_over_budget_is_resources_exhausted() {
        let join = less_than(JoinType::Inner, JoinSide::Right);
        let pool = MemoryPool::new(MemoryConfig {
            budget: 64,
            spill: true,
            spill_dir: std::env::temp_dir(),
        });
        let inputs = [vec![], vec![side("r", (0..100).map(Some).collect())]];
        let err = drive(&join, &inputs, pool).expect_err("over budget");
        assert!(
            matches!(&err, Error::ResourcesExhausted { operator, .. } if *operator == join.name()),
            "{err}"
        );
    }

    #[test]
    fn the_cross_product_comes_in_blocks_probe_row_by_probe_row() {
        let blocks: Vec<_> = cross_product(3, 2, 4).collect();
        assert_eq!(
            blocks,
            vec![
                (vec![0, 1, 2, 0], vec![0, 0, 0, 1]),
                (vec![1, 2], vec![1, 1]),
            ]
        );
        assert_eq!(cross_product(0, 5, 4).count(), 0);
        assert_eq!(cross_product(5, 0, 4).count(), 0);
    }
}
