//! Hash aggregation: groups rows by key and folds each group with
//! DataFusion's aggregate functions (`sum`, `count`, `avg`, `min`, `max`,
//! `count(DISTINCT ..)`, any `AggregateUDF`).
//!
//! An aggregate runs in one of three [modes](AggregateMode). Split across a
//! hash exchange on the group keys, `Partial` folds the rows of each
//! subtask into per-group *states* and `Final` merges the states of equal
//! keys into the final values; `Single` does both in one operator.
//!
//! Memory: the group keys (row format) and the accumulators are charged to
//! the task's [`MemoryPool`](crate::memory::MemoryPool). Over budget,
//! `Partial` emits its states and starts again (the final phase merges
//! them); `Final` and `Single` spill their groups as sorted runs of states
//! and merge the runs by key at the end, or fail with
//! [`Error::ResourcesExhausted`](crate::Error::ResourcesExhausted) when
//! spilling is disabled.

mod groups;
mod merge;
mod plan;
mod state;

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use datafusion_common::ScalarValue;
use datafusion_expr::Expr;

pub(crate) use self::groups::GroupOrder;
use self::merge::{MergedGroups, SpilledRuns};
pub(crate) use self::plan::AggregatePlan;
use self::state::GroupBatches;
pub(crate) use self::state::{Emit, GroupedState};
use crate::memory::MemoryReservation;
use crate::{Error, Operator, OperatorFactory, Output, Progress, Result, TaskInfo};

/// The phase of a (possibly two-phase) aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateMode {
    /// Input rows in; group keys and aggregate states out (the state
    /// columns are named by the functions' `state_fields`).
    Partial,
    /// The states of `Partial` in; group keys and final values out.
    Final,
    /// Input rows in; group keys and final values out.
    Single,
}

impl fmt::Display for AggregateMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AggregateMode::Partial => "partial",
            AggregateMode::Final => "final",
            AggregateMode::Single => "single",
        })
    }
}

/// Groups rows by key and computes aggregate functions per group.
///
/// Its output is the group keys, then one column per aggregate (`Final`,
/// `Single`) or per state field (`Partial`), in batches of at most 8192
/// rows, emitted when every input has ended. Without group keys it emits
/// exactly one row, also over no input (`count` is 0, `sum` is NULL); so
/// does each of its [seed groups](Self::with_seed_groups). Groups come out
/// in no defined order.
#[derive(Debug, Clone)]
pub struct HashAggregate {
    plan: Arc<AggregatePlan>,
    /// Key rows whose groups exist over no input, one array per key.
    seeds: Option<Vec<ArrayRef>>,
}

impl HashAggregate {
    /// An aggregate of the rows of `input` grouped by `group_by` (each an
    /// expression over `input` and its output name), computing
    /// `aggregates` (each an `Expr::AggregateFunction`, possibly DISTINCT
    /// or with a FILTER, and its output name).
    ///
    /// `input` is the schema of the rows being aggregated in every mode: a
    /// `Final` aggregate is built with the same arguments as its `Partial`
    /// and consumes the `Partial`'s [output](Self::output_schema).
    ///
    /// # Errors
    /// [`Error::Expr`] when a key or an aggregate does not type against
    /// `input` (unknown column, an argument the function does not take,
    /// not an aggregate function); [`Error::Plan`] without any key or
    /// aggregate.
    pub fn try_new(
        mode: AggregateMode,
        input: &SchemaRef,
        group_by: Vec<(Expr, String)>,
        aggregates: Vec<(Expr, String)>,
    ) -> Result<Self> {
        if group_by.is_empty() && aggregates.is_empty() {
            return Err(Error::Plan(
                "a hash aggregate needs a group key or an aggregate function".into(),
            ));
        }
        let plan = AggregatePlan::try_new(mode, input, &group_by, &aggregates)?;
        Ok(Self {
            plan: Arc::new(plan),
            seeds: None,
        })
    }

    /// The same aggregate, with groups of keys `seeds` (rows of key values)
    /// that exist even when no row of them comes, as the grand total of a
    /// `ROLLUP` over no rows. A `Partial` aggregate holds them in every
    /// subtask (the `Final` merges their empty states into one group); a
    /// `Single` one only at parallelism 1.
    ///
    /// # Errors
    /// [`Error::Plan`] when a seed does not have one value of the key's
    /// type per key.
    pub fn with_seed_groups(mut self, seeds: &[Vec<ScalarValue>]) -> Result<Self> {
        if seeds.is_empty() {
            return Ok(self);
        }
        let keys = &self.plan.key_fields;
        let mut columns = Vec::with_capacity(keys.len());
        for (i, key) in keys.iter().enumerate() {
            let values = seeds.iter().map(|seed| {
                seed.get(i)
                    .ok_or_else(|| {
                        Error::Plan(format!("a seed group has no value of {}", key.name()))
                    })
                    .and_then(|v| {
                        v.cast_to(key.data_type())
                            .map_err(|e| Error::Plan(format!("a seed of {}: {e}", key.name())))
                    })
            });
            let values = values.collect::<Result<Vec<_>>>()?;
            let column = ScalarValue::iter_to_array(values)
                .map_err(|e| Error::Plan(format!("the seeds of {}: {e}", key.name())))?;
            columns.push(column);
        }
        self.seeds = Some(columns);
        Ok(self)
    }

    /// The same aggregate under another name (in plans and errors).
    pub fn with_name(self, name: impl Into<String>) -> Self {
        let mut plan = Arc::unwrap_or_clone(self.plan);
        plan.name = name.into();
        Self {
            plan: Arc::new(plan),
            seeds: self.seeds,
        }
    }

    /// The mode it runs in.
    pub fn mode(&self) -> AggregateMode {
        self.plan.mode
    }

    /// The schema of its output batches.
    pub fn output_schema(&self) -> SchemaRef {
        Arc::clone(&self.plan.output_schema)
    }
}

impl OperatorFactory for HashAggregate {
    fn name(&self) -> String {
        self.plan.name.clone()
    }

    fn is_deterministic(&self) -> bool {
        !self.plan.volatile
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>> {
        let mut state = GroupedState::try_new(&self.plan)?;
        if let Some(seeds) = &self.seeds {
            match self.plan.mode {
                AggregateMode::Partial => state.seed(seeds)?,
                AggregateMode::Single if task.parallelism == 1 => state.seed(seeds)?,
                AggregateMode::Single => {
                    return Err(self.plan.error(
                        "seeding its groups",
                        "an aggregate with seed groups runs in one subtask or in two phases",
                    ));
                }
                AggregateMode::Final => {}
            }
        }
        Ok(Box::new(HashAggregateOperator {
            state,
            runs: SpilledRuns::new(&self.plan),
            reservation: task.memory.reservation(self.name()),
            plan: Arc::clone(&self.plan),
            emitting: None,
        }))
    }
}

struct HashAggregateOperator {
    plan: Arc<AggregatePlan>,
    state: GroupedState,
    runs: SpilledRuns,
    reservation: MemoryReservation,
    /// The result being emitted, once `finish` began.
    emitting: Option<Emitting>,
}

/// The result, emitted batch by batch over calls to `finish`.
enum Emitting {
    /// Nothing was spilled: the groups held in memory.
    Groups(GroupBatches),
    /// The last merge pass of the spilled runs.
    Merging(MergedGroups),
    /// Everything was emitted.
    Finished,
}

impl HashAggregateOperator {
    /// Checks a batch of states against what `Partial` emits.
    fn check_states(&self, batch: &RecordBatch) -> Result<()> {
        let types = |schema: &Schema| {
            schema
                .fields()
                .iter()
                .map(|f| f.data_type().clone())
                .collect::<Vec<_>>()
        };
        let expected = self
            .plan
            .state_schema
            .fields()
            .iter()
            .map(|f| f.data_type());
        let got = batch.schema_ref().fields().iter().map(|f| f.data_type());
        if expected.eq(got) {
            Ok(())
        } else {
            Err(self.plan.error(
                "reading partial states",
                format!(
                    "expected columns of types {:?} (what the partial aggregate emits), got {:?}",
                    types(&self.plan.state_schema),
                    types(batch.schema_ref())
                ),
            ))
        }
    }

    /// Charges the state's memory; over budget, frees it by emitting
    /// (`Partial`) or spilling.
    fn account(&mut self, output: &mut Output) -> Result<()> {
        let size = self.state.size();
        if self.reservation.try_resize(size) {
            return Ok(());
        }
        let keyless = self.plan.key_fields.is_empty();
        if self.plan.mode == AggregateMode::Partial {
            self.state
                .drain(GroupOrder::FirstSeen, Emit::States, &mut |batch| {
                    output.emit(batch);
                    Ok(())
                })?;
        } else if self.reservation.can_spill() && !keyless {
            self.runs.spill(&mut self.state, &self.reservation)?;
        } else {
            return Err(self
                .reservation
                .exhausted(size.saturating_sub(self.reservation.size())));
        }
        self.reservation.free();
        if self.reservation.try_resize(self.state.size()) {
            Ok(())
        } else {
            Err(self.reservation.exhausted(self.state.size()))
        }
    }
}

impl Operator for HashAggregateOperator {
    fn process_batch(
        &mut self,
        _input: usize,
        batch: RecordBatch,
        output: &mut Output,
    ) -> Result<()> {
        if self.plan.consumes_states() {
            self.check_states(&batch)?;
            self.state.merge(&batch)?;
        } else {
            self.state.update(&batch)?;
        }
        self.account(output)
    }

    fn finish(&mut self, output: &mut Output) -> Result<Progress> {
        let emitting = match &mut self.emitting {
            Some(emitting) => emitting,
            empty => empty.insert(if self.runs.is_empty() {
                let emit = match self.plan.mode {
                    AggregateMode::Partial => Emit::States,
                    AggregateMode::Final | AggregateMode::Single => Emit::Values,
                };
                Emitting::Groups(self.state.take_groups(GroupOrder::FirstSeen, emit)?)
            } else {
                Emitting::Merging(self.runs.finish(&mut self.state, &self.reservation)?)
            }),
        };
        let progress = match emitting {
            Emitting::Groups(groups) => output.emit_until_full(|| groups.next_batch())?,
            Emitting::Merging(merged) => output.emit_until_full(|| merged.next_batch())?,
            Emitting::Finished => Progress::Done,
        };
        if progress == Progress::Done {
            *emitting = Emitting::Finished;
            self.reservation.free();
        }
        Ok(progress)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};
    use datafusion_functions_aggregate::expr_fn::{count, sum};

    use super::*;
    use crate::expr::{col, lit};
    use crate::memory::MemoryPool;
    use crate::testing::{drive, sorted_rows};

    fn batch(keys: &[Option<&str>], values: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from(values.to_vec())),
            ],
        )
        .expect("valid batch")
    }

    fn aggregate(mode: AggregateMode, schema: &SchemaRef) -> HashAggregate {
        HashAggregate::try_new(
            mode,
            schema,
            vec![(col("k"), "k".into())],
            vec![
                (sum(col("v")), "total".into()),
                (count(col("v")), "n".into()),
            ],
        )
        .expect("plans")
    }

    #[test]
    fn groups_with_a_null_key_and_null_values() {
        let input = batch(
            &[Some("a"), None, Some("a"), Some("b"), None],
            &[Some(1), Some(2), None, None, Some(5)],
        );
        let single = aggregate(AggregateMode::Single, &input.schema());
        let out = drive(&single, &[vec![input]], MemoryPool::unbounded()).expect("runs");
        assert_eq!(out[0].schema(), single.output_schema());
        assert_eq!(sorted_rows(&out), vec!["NULL|7|2", "a|1|1", "b|NULL|0"]);
    }

    #[test]
    fn final_merges_partial_states() {
        let input = batch(
            &[Some("a"), Some("b"), Some("a")],
            &[Some(1), Some(2), Some(3)],
        );
        let partial = aggregate(AggregateMode::Partial, &input.schema());
        let states = drive(
            &partial,
            &[vec![input.clone(), input.clone()]],
            MemoryPool::unbounded(),
        )
        .expect("partial runs");
        assert_eq!(states[0].schema(), partial.output_schema());
        let last = aggregate(AggregateMode::Final, &input.schema());
        let out = drive(&last, &[states], MemoryPool::unbounded()).expect("final runs");
        assert_eq!(sorted_rows(&out), vec!["a|8|4", "b|4|2"]);
    }

    #[test]
    fn a_global_aggregate_over_no_rows_has_one_row() {
        let input = batch(&[], &[]);
        let single = HashAggregate::try_new(
            AggregateMode::Single,
            &input.schema(),
            vec![],
            vec![(sum(col("v")), "total".into()), (count(lit(1)), "n".into())],
        )
        .expect("plans");
        let out = drive(&single, &[vec![]], MemoryPool::unbounded()).expect("runs");
        assert_eq!(sorted_rows(&out), vec!["NULL|0"]);
    }

    /// Seed groups are in the result over no rows, as over no row of
    /// theirs, and once however many partial subtasks held them.
    #[test]
    fn seed_groups_exist_over_no_rows_and_merge_into_one() {
        let input = batch(
            &[Some("a"), Some("b"), Some("a")],
            &[Some(1), Some(2), Some(3)],
        );
        let schema = input.schema();
        let seeds = [vec![ScalarValue::Utf8(None)], vec![ScalarValue::from("a")]];
        let seeded = |mode| {
            aggregate(mode, &schema)
                .with_seed_groups(&seeds)
                .expect("seeds of the key's type")
        };
        let single = seeded(AggregateMode::Single);
        let out = drive(&single, &[vec![]], MemoryPool::unbounded()).expect("runs");
        assert_eq!(sorted_rows(&out), vec!["NULL|NULL|0", "a|NULL|0"]);
        // Two partial subtasks, one with rows and one without, then the
        // final merge.
        let partial = seeded(AggregateMode::Partial);
        let mut states = drive(&partial, &[vec![input]], MemoryPool::unbounded()).expect("runs");
        states.extend(drive(&partial, &[vec![]], MemoryPool::unbounded()).expect("runs"));
        let last = seeded(AggregateMode::Final);
        let out = drive(&last, &[states], MemoryPool::unbounded()).expect("runs");
        assert_eq!(sorted_rows(&out), vec!["NULL|NULL|0", "a|4|2", "b|2|1"]);
        let wrong = aggregate(AggregateMode::Single, &schema).with_seed_groups(&[vec![]]);
        assert!(wrong.is_err_and(|e| e.to_string().contains("no value of k")));
    }

    #[test]
    fn bad_plans_are_typed_errors() {
        let schema = batch(&[], &[]).schema();
        let not_aggregate = HashAggregate::try_new(
            AggregateMode::Single,
            &schema,
            vec![],
            vec![(col("v") + lit(1), "x".into())],
        )
        .expect_err("not an aggregate");
        assert!(
            matches!(not_aggregate, Error::Expr { .. }),
            "{not_aggregate}"
        );
        let unknown = HashAggregate::try_new(
            AggregateMode::Single,
            &schema,
            vec![(col("nope"), "nope".into())],
            vec![],
        )
        .expect_err("unknown column");
        assert!(unknown.to_string().contains("nope"), "{unknown}");
        let wrong_states = aggregate(AggregateMode::Final, &schema);
        let err = drive(
            &wrong_states,
            &[vec![batch(&[Some("a")], &[Some(1)])]],
            MemoryPool::unbounded(),
        )
        .expect_err("rows are not states");
        assert!(err.to_string().contains("hash_aggregate[final]"), "{err}");
    }
}
