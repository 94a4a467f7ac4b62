//! The dataframe API: relational jobs built from sources with `filter`,
//! `select`, `union`, ... and `write`, producing a [`JobGraph`] with the
//! exchanges each step needs.
//!
//! ```ignore
//! let flow = Dataflow::new("orders-by-customer").with_parallelism(4);
//! let orders = flow.read(orders_source);
//! orders
//!     .filter(col("amount").gt(lit(100)))?
//!     .select(vec![col("customer"), col("amount")])?
//!     .write(sink)?;
//! let graph = flow.build(ShuffleMode::AllBlocking, slots)?;
//! ```
//!
//! Each step types its expressions against the schema of its input, so a
//! misspelt column or a type error is reported while the job is built, not
//! when it runs. Steps that keep rows where they are (filter, select) are
//! chained onto their input; steps that need rows of a key together insert
//! a hash exchange on that key, unless the input is already partitioned so.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion_common::ScalarValue;
use datafusion_expr::cast;
use datafusion_expr::type_coercion::binary::comparison_coercion;
use datafusion_expr::utils::split_conjunction_owned;
use weir_exchange::Partitioner;

use crate::event_time::WatermarkStrategy;
use crate::expr::{Compiled, Expr, SortExpr, column_list, named};
use crate::graph::{Input, JobBuilder, JobGraph, NodeId, ShuffleMode};
use crate::operators::{
    AggregateMode, AtMostOneRow, Distinct, Expand, Filter, HashAggregate, HashJoin, IntervalJoin,
    JoinSide, JoinType, Limit, NestedLoopJoin, Project, Sort, SortKey, TopN, Union, Window,
    WindowAggregate, WindowJoin, joined_schema,
};
use crate::{Boundedness, Error, OperatorFactory, Result, SinkFactory, SourceFactory};

/// Below this many estimated bytes, a join input is broadcast to every
/// subtask of the other side instead of both being hash-partitioned.
pub const DEFAULT_BROADCAST_THRESHOLD: u64 = 10 << 20;

/// How the rows of a dataframe are spread over its subtasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Partitioning {
    /// No known relation between rows and subtasks.
    Any,
    /// Rows with equal values of these columns are in the same subtask.
    Hash(Vec<String>),
}

/// A job under construction: the sources read and the steps applied to
/// them. Cheap to clone; every [`DataFrame`] holds one.
#[derive(Clone)]
pub struct Dataflow {
    state: Rc<RefCell<FlowState>>,
}

struct FlowState {
    builder: JobBuilder,
    parallelism: usize,
    broadcast_threshold: u64,
}

impl fmt::Debug for Dataflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dataflow").finish_non_exhaustive()
    }
}

impl Dataflow {
    /// A new job named `name`, with parallelism 1 until told otherwise.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            state: Rc::new(RefCell::new(FlowState {
                builder: JobBuilder::new(name),
                parallelism: 1,
                broadcast_threshold: DEFAULT_BROADCAST_THRESHOLD,
            })),
        }
    }

    /// The parallelism of every step that does not need one subtask.
    pub fn with_parallelism(self, parallelism: usize) -> Self {
        self.state.borrow_mut().parallelism = parallelism.max(1);
        self
    }

    /// The estimated size under which a join input is broadcast.
    pub fn with_broadcast_threshold(self, bytes: u64) -> Self {
        self.state.borrow_mut().broadcast_threshold = bytes;
        self
    }

    /// Reads the columns `projection` (all when `None`) of the rows of
    /// `source` that pass `filter`, letting the source skip what it can
    /// prove the filter rejects ([`SourceFactory::scan`]).
    ///
    /// # Errors
    /// [`Error::Plan`] for an unknown column; [`Error::Expr`] when the filter
    /// does not type against the source's schema; the source's own error.
    pub fn scan(
        &self,
        source: Arc<dyn SourceFactory>,
        projection: Option<&[&str]>,
        filter: Option<Expr>,
    ) -> Result<DataFrame> {
        self.scan_with_watermarks(source, projection, filter, None)
    }

    /// As [`scan`](Self::scan), with the source's tasks generating
    /// watermarks as `watermarks` says (its time column is read whether or
    /// not the projection keeps it).
    ///
    /// # Errors
    /// As [`scan`](Self::scan); a watermark column that is not a time
    /// column of the source.
    pub fn scan_with_watermarks(
        &self,
        source: Arc<dyn SourceFactory>,
        projection: Option<&[&str]>,
        filter: Option<Expr>,
        watermarks: Option<WatermarkStrategy>,
    ) -> Result<DataFrame> {
        let schema = source.schema();
        let index_of = |name: &str| {
            schema.index_of(name).map_err(|_| {
                Error::Plan(format!(
                    "source '{}' has no column '{name}' (columns: {})",
                    source.name(),
                    column_list(&schema)
                ))
            })
        };
        // The source reads the projected columns and those the filter needs.
        let read = projection
            .map(|names| {
                let mut read = names
                    .iter()
                    .map(|n| index_of(n))
                    .collect::<Result<Vec<_>>>()?;
                let needed = filter
                    .iter()
                    .flat_map(Expr::column_refs)
                    .map(|c| c.name.as_str())
                    .chain(watermarks.iter().map(|w| w.column.as_str()));
                for column in needed {
                    let i = index_of(column)?;
                    if !read.contains(&i) {
                        read.push(i);
                    }
                }
                Ok::<_, Error>(read)
            })
            .transpose()?;
        // Each conjunct on its own: a source may use some and not others
        // (partition columns prune files, file columns row groups).
        let request = crate::ScanRequest {
            projection: read,
            filters: filter
                .clone()
                .map(split_conjunction_owned)
                .unwrap_or_default(),
        };
        let read = source.scan(&request)?.unwrap_or(source);
        let scanned = match watermarks {
            Some(strategy) => self.read_with_watermarks(read, strategy)?,
            None => self.read(read),
        };
        let filtered = match filter {
            Some(filter) => scanned.filter(filter)?,
            None => scanned,
        };
        match projection {
            Some(names) => filtered.select(names.iter().map(|n| crate::expr::column(n)).collect()),
            None => Ok(filtered),
        }
    }

    /// Reads `source`.
    pub fn read(&self, source: Arc<dyn SourceFactory>) -> DataFrame {
        let schema = source.schema();
        let estimated_bytes = source.estimated_bytes();
        let bounded = source.boundedness() == Boundedness::Bounded;
        let parallelism = self.parallelism();
        let node = {
            let mut state = self.state.borrow_mut();
            let node = state.builder.source(source);
            state.builder.set_parallelism(node, parallelism);
            node
        };
        DataFrame {
            flow: self.clone(),
            node,
            schema,
            parallelism,
            partitioning: Partitioning::Any,
            estimated_bytes,
            bounded,
        }
    }

    /// Reads `source`, its tasks generating watermarks as `strategy` says.
    ///
    /// # Errors
    /// [`Error::Plan`] when the strategy's column is not a time column of
    /// the source.
    pub fn read_with_watermarks(
        &self,
        source: Arc<dyn SourceFactory>,
        strategy: WatermarkStrategy,
    ) -> Result<DataFrame> {
        strategy.column_index(&source.schema())?;
        let df = self.read(source);
        self.state
            .borrow_mut()
            .builder
            .set_watermarks(df.node, strategy)?;
        Ok(df)
    }

    /// The job as built so far, to build with other settings (chaining, max
    /// parallelism) than [`build`](Self::build) takes.
    pub fn builder(&self) -> JobBuilder {
        self.state.borrow().builder.clone()
    }

    /// Builds the job graph (see [`JobBuilder::build`]).
    ///
    /// # Errors
    /// As [`JobBuilder::build`].
    pub fn build(&self, shuffle_mode: ShuffleMode, slots: usize) -> Result<JobGraph> {
        self.state.borrow().builder.build(shuffle_mode, slots)
    }

    fn parallelism(&self) -> usize {
        self.state.borrow().parallelism
    }

    fn add(
        &self,
        factory: Arc<dyn OperatorFactory>,
        inputs: Vec<Input>,
        parallelism: usize,
    ) -> NodeId {
        let mut state = self.state.borrow_mut();
        let node = state.builder.operator(factory, inputs);
        state.builder.set_parallelism(node, parallelism);
        node
    }
}

/// Rows of a known schema, at some step of a [`Dataflow`].
#[derive(Debug, Clone)]
pub struct DataFrame {
    flow: Dataflow,
    node: NodeId,
    schema: SchemaRef,
    parallelism: usize,
    partitioning: Partitioning,
    estimated_bytes: Option<u64>,
    /// Whether the rows end (every source upstream is bounded).
    bounded: bool,
}

impl DataFrame {
    /// The columns of the rows.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Whether the rows end (every source upstream is bounded).
    pub fn is_bounded(&self) -> bool {
        self.bounded
    }

    /// How the rows are spread over subtasks.
    pub fn partitioning(&self) -> &Partitioning {
        &self.partitioning
    }

    /// This dataframe with its size estimated at `bytes` (what decides
    /// whether a join broadcasts it), for steps whose output the planner
    /// knows to be small, such as a one-row aggregate.
    pub fn with_estimated_bytes(mut self, bytes: Option<u64>) -> DataFrame {
        self.estimated_bytes = bytes;
        self
    }

    /// The rows for which `predicate` is true.
    ///
    /// # Errors
    /// [`Error::Expr`] when the predicate does not type against the schema.
    pub fn filter(&self, predicate: Expr) -> Result<DataFrame> {
        let filter = Filter::new(Compiled::new(&predicate, &self.schema)?);
        Ok(self.chained(Arc::new(filter), Arc::clone(&self.schema)))
    }

    /// The values of `exprs` for every row; columns are named after the
    /// expressions (use `.alias(...)` to name them).
    ///
    /// # Errors
    /// [`Error::Expr`] when an expression does not type against the schema.
    pub fn select(&self, exprs: Vec<Expr>) -> Result<DataFrame> {
        // Every column as it is, in order: nothing to do.
        let fields = self.schema.fields();
        let identity = exprs.len() == fields.len()
            && exprs.iter().zip(fields.iter()).all(|(e, f)| {
                matches!(e, Expr::Column(c) if c.relation.is_none() && &c.name == f.name())
            });
        if identity {
            return Ok(self.clone());
        }
        let compiled = named(exprs)
            .into_iter()
            .map(|(e, name)| Ok((Compiled::new(&e, &self.schema)?, name)))
            .collect::<Result<Vec<_>>>()?;
        let project = Project::new(compiled);
        let schema = Arc::clone(project.schema());
        let kept = self.kept_partitioning(&schema);
        let mut out = self.chained(Arc::new(project), schema);
        out.partitioning = kept;
        Ok(out)
    }

    /// Every row once for each of `projections`: the values of each
    /// projection's expressions, all projections naming the same columns
    /// in the same order with the same types (the rows of the grouping
    /// sets of `GROUPING SETS`, `ROLLUP` or `CUBE`, read in one pass).
    ///
    /// # Errors
    /// [`Error::Expr`] when an expression does not type against the schema;
    /// [`Error::Plan`] when the projections do not agree on their columns.
    pub fn expand(&self, projections: Vec<Vec<Expr>>) -> Result<DataFrame> {
        let count = projections.len() as u64;
        let compiled = projections
            .into_iter()
            .map(|projection| {
                named(projection)
                    .into_iter()
                    .map(|(e, name)| Ok((Compiled::new(&e, &self.schema)?, name)))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;
        let expand = Expand::try_new(compiled)?;
        let schema = Arc::clone(expand.schema());
        let kept = self.kept_partitioning(&schema);
        let mut out = self.chained(Arc::new(expand), schema);
        out.partitioning = kept;
        out.estimated_bytes = self.estimated_bytes.map(|b| b.saturating_mul(count));
        Ok(out)
    }

    /// The rows of this dataframe and of `other` (UNION ALL). Columns are
    /// matched by position; names come from this dataframe, and a column is
    /// nullable if it is on either side.
    ///
    /// # Errors
    /// [`Error::Plan`] when the sides differ in number or types of columns.
    pub fn union(&self, other: &DataFrame) -> Result<DataFrame> {
        let (left, right) = (self.schema.fields(), other.schema.fields());
        let mismatch = left.len() != right.len()
            || left
                .iter()
                .zip(right.iter())
                .any(|(l, r)| l.data_type() != r.data_type());
        if mismatch {
            return Err(Error::Plan(format!(
                "union of different columns: {} and {}",
                self.schema, other.schema
            )));
        }
        let schema = Arc::new(Schema::new(
            left.iter()
                .zip(right.iter())
                .map(|(l, r)| {
                    l.as_ref()
                        .clone()
                        .with_nullable(l.is_nullable() || r.is_nullable())
                })
                .collect::<Vec<_>>(),
        ));
        let parallelism = self.parallelism.max(other.parallelism);
        let node = self.flow.add(
            Arc::new(Union::new(Arc::clone(&schema))),
            vec![self.node.rebalance(), other.node.rebalance()],
            parallelism,
        );
        Ok(DataFrame {
            flow: self.flow.clone(),
            node,
            schema,
            parallelism,
            partitioning: Partitioning::Any,
            estimated_bytes: self
                .estimated_bytes
                .zip(other.estimated_bytes)
                .map(|(a, b)| a + b),
            bounded: self.bounded && other.bounded,
        })
    }

    /// One row per distinct value of `group_by` with the values of
    /// `aggregates` (DataFusion aggregate expressions such as `sum(col("x"))`,
    /// `count_distinct(...)`), columns named after the expressions. In two
    /// phases: a partial aggregate in every subtask, a hash exchange on the
    /// group columns, and the final aggregate; in one phase when the rows
    /// are already partitioned by the group columns or there is one subtask.
    /// Without `group_by`, one row, computed finally in one subtask.
    ///
    /// # Errors
    /// [`Error::Expr`] when an expression does not type against the schema
    /// or is not an aggregate.
    pub fn aggregate(&self, group_by: Vec<Expr>, aggregates: Vec<Expr>) -> Result<DataFrame> {
        self.aggregate_seeded(group_by, aggregates, &[])
    }

    /// [`aggregate`](Self::aggregate), with groups of keys `seeds` (rows of
    /// key values) that are in the result even when no row of them comes,
    /// their aggregates as over no rows: the grand total of a `ROLLUP` or
    /// `CUBE` over no input.
    ///
    /// # Errors
    /// As [`aggregate`](Self::aggregate); [`Error::Plan`] when a seed does
    /// not have a value of each key's type.
    pub fn aggregate_seeded(
        &self,
        group_by: Vec<Expr>,
        aggregates: Vec<Expr>,
        seeds: &[Vec<ScalarValue>],
    ) -> Result<DataFrame> {
        self.ends(
            "an aggregate",
            "aggregate per event-time window (window_aggregate; TUMBLE, HOP, CUMULATE or SESSION in SQL)",
        )?;
        let (group_by, aggregates) = (named(group_by), named(aggregates));
        let keys: Vec<String> = group_by.iter().map(|(_, name)| name.clone()).collect();
        let make = |mode| {
            HashAggregate::try_new(mode, &self.schema, group_by.clone(), aggregates.clone())?
                .with_seed_groups(seeds)
        };
        self.two_phase(&keys, make, |agg: &HashAggregate| agg.output_schema())
    }

    /// One row per group of `group_by` and event-time `window` over the
    /// times in `time_column`, with the group columns, `window_start`,
    /// `window_end` and the values of `aggregates`; each row is emitted
    /// when the watermark passes its window's end (or at the end of
    /// bounded input). The rows of each group meet in one subtask through
    /// a hash exchange on the group columns (all in one subtask without
    /// `group_by`).
    ///
    /// # Errors
    /// [`Error::Plan`] when `time_column` is not a time column;
    /// [`Error::Expr`] when an expression does not type or is not an
    /// aggregate.
    pub fn window_aggregate(
        &self,
        window: Window,
        time_column: &str,
        group_by: Vec<Expr>,
        aggregates: Vec<Expr>,
    ) -> Result<DataFrame> {
        self.window_aggregate_late_to(window, time_column, group_by, aggregates, None)
    }

    /// As [`window_aggregate`](Self::window_aggregate), with the records
    /// whose windows all fired already (late records) written, as they
    /// came in, to `late` when given (a side output committed with the
    /// job's checkpoints) rather than dropped.
    ///
    /// # Errors
    /// As [`window_aggregate`](Self::window_aggregate).
    pub fn window_aggregate_late_to(
        &self,
        window: Window,
        time_column: &str,
        group_by: Vec<Expr>,
        aggregates: Vec<Expr>,
        late: Option<Arc<dyn SinkFactory>>,
    ) -> Result<DataFrame> {
        let (input, group_by) = self.with_group_columns(named(group_by))?;
        let keys: Vec<String> = group_by.iter().map(|(_, name)| name.clone()).collect();
        let mut aggregate = WindowAggregate::try_new(
            window,
            &input.schema,
            time_column,
            group_by,
            named(aggregates),
        )?;
        if late.is_some() {
            aggregate = aggregate.with_late_records();
        }
        let schema = aggregate.output_schema();
        let out = if keys.is_empty() {
            input.gathered(Arc::new(aggregate), schema)
        } else {
            let node = self.flow.add(
                Arc::new(aggregate),
                vec![input.keyed_input(&keys, self.parallelism)],
                self.parallelism,
            );
            DataFrame {
                flow: self.flow.clone(),
                node,
                schema,
                parallelism: self.parallelism,
                partitioning: Partitioning::Hash(keys),
                estimated_bytes: self.estimated_bytes,
                bounded: self.bounded,
            }
        };
        if let Some(late) = late {
            self.flow
                .state
                .borrow_mut()
                .builder
                .set_late_sink(out.node, late)?;
        }
        Ok(out)
    }

    /// This dataframe with a column for each group expression that is not a
    /// column already (named as the expression), and the group keys as
    /// those columns.
    fn with_group_columns(
        &self,
        group_by: Vec<(Expr, String)>,
    ) -> Result<(DataFrame, Vec<(Expr, String)>)> {
        let computed: Vec<Expr> = group_by
            .iter()
            .filter(|(e, name)| !matches!(e, Expr::Column(c) if &c.name == name))
            .map(|(e, name)| e.clone().alias(name))
            .collect();
        let keys = group_by
            .iter()
            .map(|(_, name)| (crate::expr::column(name), name.clone()))
            .collect();
        if computed.is_empty() {
            return Ok((self.clone(), keys));
        }
        let mut exprs: Vec<Expr> = self
            .schema
            .fields()
            .iter()
            .map(|f| crate::expr::column(f.name()))
            .collect();
        exprs.extend(computed);
        Ok((self.select(exprs)?, keys))
    }

    /// These rows, gathered into one subtask, failing the job when there
    /// is more than one (a scalar subquery that may give several rows);
    /// `what` names them in the error.
    ///
    /// # Errors
    /// [`Error::Plan`] over unbounded input.
    pub fn at_most_one_row(&self, what: &str) -> Result<DataFrame> {
        self.ends(
            "a scalar subquery",
            "give its value from bounded input, or join on a key",
        )?;
        let check = AtMostOneRow::new(what);
        Ok(self.gathered(Arc::new(check), Arc::clone(&self.schema)))
    }

    /// The distinct rows (SELECT DISTINCT), in two phases as
    /// [`aggregate`](Self::aggregate).
    ///
    /// # Errors
    /// [`Error::Plan`] when a column's type cannot be grouped on.
    pub fn distinct(&self) -> Result<DataFrame> {
        self.ends(
            "DISTINCT",
            "group the rows per event-time window (window_aggregate)",
        )?;
        let keys: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let make = |mode| Distinct::try_new(mode, &self.schema);
        self.two_phase(&keys, make, |d: &Distinct| d.output_schema())
    }

    /// This dataframe (left) joined with `right` on equal `on` columns
    /// (left name, right name), with an optional residual `filter` over the
    /// columns of both. Without `on`, the filter is the join condition
    /// (a nested-loop join: broadcast as below, or in one subtask). Column names must differ between the sides (rename
    /// with [`select`](Self::select) and `.alias(...)`).
    ///
    /// When one side is estimated below the broadcast threshold and the join
    /// type does not need its unmatched rows, that side is broadcast to
    /// every subtask of the other and built into the hash table; otherwise
    /// both sides are hash-partitioned on the keys (cast to a common type
    /// first, so equal values meet) and the smaller estimated side builds.
    ///
    /// # Errors
    /// [`Error::Plan`] on clashing column names or keys without a common
    /// type; [`Error::Expr`] when a key or the filter does not type.
    pub fn join(
        &self,
        right: &DataFrame,
        join_type: JoinType,
        on: &[(&str, &str)],
        filter: Option<Expr>,
    ) -> Result<DataFrame> {
        self.keyed_join(right, join_type, on, filter, false)
    }

    /// [`join`](Self::join) where a NULL key matches a NULL key (`IS NOT
    /// DISTINCT FROM`), as `INTERSECT` and `EXCEPT` compare rows.
    ///
    /// # Errors
    /// As [`join`](Self::join); [`Error::Plan`] without keys.
    pub fn join_matching_nulls(
        &self,
        right: &DataFrame,
        join_type: JoinType,
        on: &[(&str, &str)],
        filter: Option<Expr>,
    ) -> Result<DataFrame> {
        if on.is_empty() {
            return Err(Error::Plan(
                "a join where NULL keys match needs keys".to_string(),
            ));
        }
        self.keyed_join(right, join_type, on, filter, true)
    }

    fn keyed_join(
        &self,
        right: &DataFrame,
        join_type: JoinType,
        on: &[(&str, &str)],
        filter: Option<Expr>,
        nulls_equal: bool,
    ) -> Result<DataFrame> {
        for side in [self, right] {
            side.ends(
                "a join",
                "join the rows of event-time windows (window_join), rows close in time (interval_join), or bounded inputs",
            )?;
        }
        if let Some(clash) = self
            .schema
            .fields()
            .iter()
            .find(|f| right.schema.field_with_name(f.name()).is_ok())
        {
            return Err(Error::Plan(format!(
                "join: column '{}' is on both sides; rename one side's with select(... .alias(...))",
                clash.name()
            )));
        }
        if on.is_empty() && filter.is_none() {
            return Err(Error::Plan(
                "a join without equal keys needs a condition (the filter)".into(),
            ));
        }
        let left_keys: Vec<String> = on.iter().map(|(l, _)| l.to_string()).collect();
        let right_keys: Vec<String> = on.iter().map(|(_, r)| r.to_string()).collect();
        let threshold = self.flow.state.borrow().broadcast_threshold;
        let small = |df: &DataFrame| df.estimated_bytes.is_some_and(|b| b <= threshold);
        let (broadcast_right, broadcast_left) = (
            small(right) && join_type.can_broadcast(JoinSide::Right),
            small(self) && join_type.can_broadcast(JoinSide::Left),
        );
        let JoinPlacement {
            left,
            right,
            inputs,
            build,
            parallelism,
            partitioning,
        } = if broadcast_right || broadcast_left {
            let build = if broadcast_right && (!broadcast_left || right.smaller_than(self)) {
                JoinSide::Right
            } else {
                JoinSide::Left
            };
            JoinPlacement::broadcast(self, right, build)
        } else if on.is_empty() {
            JoinPlacement::gathered(self, right)
        } else {
            let types = self.key_types(right, &left_keys, &right_keys)?;
            let left = self.with_key_types(&left_keys, &types)?;
            let right = right.with_key_types(&right_keys, &types)?;
            let partitioning = match join_type {
                JoinType::Inner | JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti => {
                    Partitioning::Hash(left_keys.clone())
                }
                JoinType::Right | JoinType::RightSemi | JoinType::RightAnti => {
                    Partitioning::Hash(right_keys.clone())
                }
                JoinType::Full => Partitioning::Any,
            };
            JoinPlacement::partitioned(left, right, &left_keys, &right_keys, partitioning)
        };
        let (on, filter) = compile_join(&left, &right, &left_keys, &right_keys, filter)?;
        let (lschema, rschema) = (Arc::clone(&left.schema), Arc::clone(&right.schema));
        let (join, schema): (Arc<dyn OperatorFactory>, SchemaRef) = if on.is_empty() {
            let condition = filter.expect("checked above: a join without keys has a condition");
            let join = NestedLoopJoin::try_new(join_type, lschema, rschema, condition, build)?;
            let schema = Arc::clone(join.schema());
            (Arc::new(join), schema)
        } else {
            let mut join = HashJoin::try_new(join_type, lschema, rschema, on, filter, build)?;
            if nulls_equal {
                join = join.matching_nulls();
            }
            let schema = Arc::clone(join.schema());
            (Arc::new(join), schema)
        };
        let node = self.flow.add(join, inputs, parallelism);
        Ok(DataFrame {
            flow: self.flow.clone(),
            node,
            schema,
            parallelism,
            partitioning,
            estimated_bytes: None,
            bounded: true,
        })
    }

    /// This dataframe (left) joined with `right` window by window: the rows
    /// of both that fall in the same `window` (tumbling, sliding or
    /// cumulating) over their time columns `times` (left, right) and have
    /// equal `on` columns, as a `join_type` join (inner, left, right or
    /// full) with an optional residual `filter`. Each window's rows come
    /// out once, when the watermark passes its end, as the left columns,
    /// the right columns, `window_start` and `window_end`. Both sides are
    /// hash-partitioned on the keys.
    ///
    /// # Errors
    /// As [`join`](Self::join), and [`Error::Plan`] for a session window,
    /// a semi or anti join, or time columns that are not times of one
    /// type.
    pub fn window_join(
        &self,
        right: &DataFrame,
        window: Window,
        times: (&str, &str),
        join_type: JoinType,
        on: &[(&str, &str)],
        filter: Option<Expr>,
    ) -> Result<DataFrame> {
        let keyed = self.keyed_pair(right, "window join", on, filter)?;
        let join = WindowJoin::try_new(
            window,
            join_type,
            Arc::clone(&keyed.left.schema),
            Arc::clone(&keyed.right.schema),
            times,
            keyed.on.clone(),
            keyed.filter.clone(),
        )?;
        let schema = Arc::clone(join.schema());
        Ok(keyed.joined(Arc::new(join), schema, join_type))
    }

    /// This dataframe (left) joined with `right` on equal `on` columns and
    /// times close to each other: a right row matches a left row when
    /// `bounds.0 <= right time - left time <= bounds.1` (milliseconds,
    /// over the time columns `times`), as a `join_type` join (inner, left,
    /// right or full) with an optional residual `filter`. Pairs come out as
    /// soon as both rows are there; rows are forgotten once the watermark
    /// shows they can match no more (when an outer join emits them
    /// unmatched). Both sides are hash-partitioned on the keys.
    ///
    /// # Errors
    /// As [`join`](Self::join), and [`Error::Plan`] for a semi or anti
    /// join, bounds the wrong way round or time columns that are not
    /// times.
    pub fn interval_join(
        &self,
        right: &DataFrame,
        join_type: JoinType,
        times: (&str, &str),
        bounds: (i64, i64),
        on: &[(&str, &str)],
        filter: Option<Expr>,
    ) -> Result<DataFrame> {
        let keyed = self.keyed_pair(right, "interval join", on, filter)?;
        let join = IntervalJoin::try_new(
            join_type,
            Arc::clone(&keyed.left.schema),
            Arc::clone(&keyed.right.schema),
            times,
            bounds,
            keyed.on.clone(),
            keyed.filter.clone(),
        )?;
        let schema = Arc::clone(join.schema());
        Ok(keyed.joined(Arc::new(join), schema, join_type))
    }

    /// The two sides of a keyed join of `what` (window or interval), each
    /// with its keys cast to their common types, the compiled keys and
    /// residual filter.
    fn keyed_pair(
        &self,
        right: &DataFrame,
        what: &str,
        on: &[(&str, &str)],
        filter: Option<Expr>,
    ) -> Result<KeyedPair> {
        if let Some(clash) = self
            .schema
            .fields()
            .iter()
            .find(|f| right.schema.field_with_name(f.name()).is_ok())
        {
            return Err(Error::Plan(format!(
                "{what}: column '{}' is on both sides; rename one side's with select(... .alias(...))",
                clash.name()
            )));
        }
        if on.is_empty() {
            return Err(Error::Plan(format!("a {what} needs equal keys")));
        }
        let left_keys: Vec<String> = on.iter().map(|(l, _)| l.to_string()).collect();
        let right_keys: Vec<String> = on.iter().map(|(_, r)| r.to_string()).collect();
        let types = self.key_types(right, &left_keys, &right_keys)?;
        let left = self.with_key_types(&left_keys, &types)?;
        let right = right.with_key_types(&right_keys, &types)?;
        let (on, filter) = compile_join(&left, &right, &left_keys, &right_keys, filter)?;
        Ok(KeyedPair {
            left,
            right,
            left_keys,
            right_keys,
            on,
            filter,
        })
    }

    /// The rows in the order of `keys` (built with `expr.sort(asc,
    /// nulls_first)`), in one subtask: the sort is external, so it spills
    /// when the rows do not fit its memory.
    ///
    /// # Errors
    /// [`Error::Expr`] when a key does not type against the schema, or
    /// [`Error::Plan`] when its type cannot be sorted.
    pub fn sort(&self, keys: Vec<SortExpr>) -> Result<DataFrame> {
        self.ends("a sort", "sort bounded input, or the rows of each window")?;
        let sort = Sort::try_new(self.sort_keys(&keys)?)?;
        Ok(self.gathered(Arc::new(sort), Arc::clone(&self.schema)))
    }

    /// Rows `offset..offset + fetch` in the order of `keys`: each subtask
    /// keeps its best `offset + fetch` rows, and one subtask picks the
    /// overall best of those.
    ///
    /// # Errors
    /// As [`sort`](Self::sort).
    pub fn top_n(&self, keys: Vec<SortExpr>, offset: usize, fetch: usize) -> Result<DataFrame> {
        self.ends("ORDER BY ... LIMIT", "rank bounded input")?;
        let keys = self.sort_keys(&keys)?;
        let mut input = self.clone();
        if self.parallelism > 1 {
            let local = TopN::try_new(keys.clone(), 0, offset + fetch)?;
            input = self.chained(Arc::new(local), Arc::clone(&self.schema));
        }
        let top = TopN::try_new(keys, offset, fetch)?;
        Ok(input.gathered(Arc::new(top), Arc::clone(&self.schema)))
    }

    /// Skips `offset` rows and keeps the next `fetch` (all when `None`).
    /// Without an order before it, which rows is not defined.
    pub fn limit(&self, offset: usize, fetch: Option<usize>) -> DataFrame {
        let mut input = self.clone();
        if self.parallelism > 1
            && let Some(fetch) = fetch
        {
            let local = Limit::new(0, Some(offset + fetch));
            input = self.chained(Arc::new(local), Arc::clone(&self.schema));
        }
        input.gathered(
            Arc::new(Limit::new(offset, fetch)),
            Arc::clone(&self.schema),
        )
    }

    /// Writes the rows to `sink`, one sink subtask per subtask of this step.
    pub fn write(&self, sink: Arc<dyn SinkFactory>) {
        let mut state = self.flow.state.borrow_mut();
        let node = state.builder.sink(sink, [self.node.forward()]);
        state.builder.set_parallelism(node, self.parallelism);
    }

    /// Fails when the rows never end: `what` would wait for their end
    /// forever; `instead` says what to do.
    fn ends(&self, what: &str, instead: &str) -> Result<()> {
        if self.bounded {
            Ok(())
        } else {
            Err(Error::Plan(format!(
                "{what} over unbounded input would never emit anything: {instead}"
            )))
        }
    }

    /// A step on the same subtasks, chained onto this one.
    fn chained(&self, factory: Arc<dyn OperatorFactory>, schema: SchemaRef) -> DataFrame {
        let node = self
            .flow
            .add(factory, vec![self.node.forward()], self.parallelism);
        DataFrame {
            flow: self.flow.clone(),
            node,
            schema,
            parallelism: self.parallelism,
            partitioning: self.partitioning.clone(),
            estimated_bytes: self.estimated_bytes,
            bounded: self.bounded,
        }
    }

    /// Plans a grouping step made by `make` for a mode, grouping on the
    /// output columns `keys`: one phase when the rows with equal keys are
    /// already together, else partial, exchange, final.
    fn two_phase<F: OperatorFactory + 'static>(
        &self,
        keys: &[String],
        make: impl Fn(AggregateMode) -> Result<F>,
        schema_of: impl Fn(&F) -> SchemaRef,
    ) -> Result<DataFrame> {
        let together = self.parallelism == 1
            || (!keys.is_empty() && self.partitioning == Partitioning::Hash(keys.to_vec()));
        if together {
            let single = make(AggregateMode::Single)?;
            let schema = schema_of(&single);
            let mut out = self.chained(Arc::new(single), schema);
            out.partitioning = self.kept_partitioning(&out.schema);
            return Ok(out);
        }
        let partial = make(AggregateMode::Partial)?;
        let partial_schema = schema_of(&partial);
        let partial = self.chained(Arc::new(partial), partial_schema);
        let last = make(AggregateMode::Final)?;
        let schema = schema_of(&last);
        if keys.is_empty() {
            return Ok(partial.gathered(Arc::new(last), schema));
        }
        let node = self.flow.add(
            Arc::new(last),
            vec![partial.keyed_input(keys, self.parallelism)],
            self.parallelism,
        );
        Ok(DataFrame {
            flow: self.flow.clone(),
            node,
            schema,
            parallelism: self.parallelism,
            partitioning: Partitioning::Hash(keys.to_vec()),
            estimated_bytes: self.estimated_bytes,
            bounded: self.bounded,
        })
    }

    /// The input edge that brings every row of this step to a step in one
    /// subtask.
    fn gather_input(&self) -> Input {
        if self.parallelism == 1 {
            self.node.forward()
        } else {
            self.node.rebalance()
        }
    }

    /// Whether this side is estimated smaller than `other` (an unknown size
    /// counts as large).
    fn smaller_than(&self, other: &DataFrame) -> bool {
        match (self.estimated_bytes, other.estimated_bytes) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            _ => false,
        }
    }

    /// The common type of each key pair.
    fn key_types(
        &self,
        right: &DataFrame,
        left_keys: &[String],
        right_keys: &[String],
    ) -> Result<Vec<DataType>> {
        left_keys
            .iter()
            .zip(right_keys)
            .map(|(l, r)| {
                let field = |df: &DataFrame, name: &str| {
                    df.schema
                        .field_with_name(name)
                        .map(|f| f.data_type().clone())
                        .map_err(|e| Error::Plan(format!("join key: {e}")))
                };
                let (lt, rt) = (field(self, l)?, field(right, r)?);
                comparison_coercion(&lt, &rt).ok_or_else(|| {
                    Error::Plan(format!(
                        "join keys {l} ({lt}) and {r} ({rt}) have no common type"
                    ))
                })
            })
            .collect()
    }

    /// This dataframe with the `keys` columns cast to `types` where they
    /// differ (the other columns as they are).
    fn with_key_types(&self, keys: &[String], types: &[DataType]) -> Result<DataFrame> {
        let cast_to: Vec<Option<&DataType>> = self
            .schema
            .fields()
            .iter()
            .map(|f| {
                keys.iter()
                    .position(|k| k == f.name())
                    .map(|i| &types[i])
                    .filter(|t| *t != f.data_type())
            })
            .collect();
        if cast_to.iter().all(Option::is_none) {
            return Ok(self.clone());
        }
        let exprs = self
            .schema
            .fields()
            .iter()
            .zip(cast_to)
            .map(|(f, to)| {
                let column = crate::expr::column(f.name());
                match to {
                    Some(to) => cast(column, to.clone()).alias(f.name()),
                    None => column,
                }
            })
            .collect();
        self.select(exprs)
    }

    /// The input edge that brings rows with equal `keys` to the same
    /// subtask of a step with `parallelism` subtasks: forward when they
    /// already are, else a hash exchange.
    fn keyed_input(&self, keys: &[String], parallelism: usize) -> Input {
        if self.partitioning == Partitioning::Hash(keys.to_vec()) && self.parallelism == parallelism
        {
            self.node.forward()
        } else {
            self.node.with(Partitioner::hash(keys.iter().cloned()))
        }
    }

    /// A step in one subtask reading every subtask of this one (as is when
    /// this one has one subtask).
    fn gathered(&self, factory: Arc<dyn OperatorFactory>, schema: SchemaRef) -> DataFrame {
        let node = self.flow.add(factory, vec![self.gather_input()], 1);
        DataFrame {
            flow: self.flow.clone(),
            node,
            schema,
            parallelism: 1,
            partitioning: Partitioning::Any,
            estimated_bytes: self.estimated_bytes,
            bounded: self.bounded,
        }
    }

    fn sort_keys(&self, keys: &[SortExpr]) -> Result<Vec<SortKey>> {
        keys.iter()
            .map(|k| SortKey::compile(k, &self.schema))
            .collect()
    }

    /// This dataframe's partitioning as seen through a step with output
    /// `schema`: kept only while every key column is still there.
    fn kept_partitioning(&self, schema: &Schema) -> Partitioning {
        match &self.partitioning {
            Partitioning::Hash(keys) if keys.iter().all(|k| schema.field_with_name(k).is_ok()) => {
                self.partitioning.clone()
            }
            _ => Partitioning::Any,
        }
    }
}

/// The two sides of a keyed streaming join (window or interval), their
/// keys cast to common types.
struct KeyedPair {
    left: DataFrame,
    right: DataFrame,
    left_keys: Vec<String>,
    right_keys: Vec<String>,
    on: Vec<(Compiled, Compiled)>,
    filter: Option<Compiled>,
}

impl KeyedPair {
    /// The join `factory` (of output `schema`) over both sides, each
    /// hash-partitioned on its keys.
    fn joined(
        self,
        factory: Arc<dyn OperatorFactory>,
        schema: SchemaRef,
        join_type: JoinType,
    ) -> DataFrame {
        let flow = self.left.flow.clone();
        let parallelism = flow.parallelism();
        let inputs = vec![
            self.left.keyed_input(&self.left_keys, parallelism),
            self.right.keyed_input(&self.right_keys, parallelism),
        ];
        let partitioning = match join_type {
            JoinType::Inner | JoinType::Left => Partitioning::Hash(self.left_keys),
            JoinType::Right => Partitioning::Hash(self.right_keys),
            _ => Partitioning::Any,
        };
        let node = flow.add(factory, inputs, parallelism);
        DataFrame {
            flow,
            node,
            schema,
            parallelism,
            partitioning,
            estimated_bytes: None,
            bounded: self.left.bounded && self.right.bounded,
        }
    }
}

/// Where a join runs and how its two inputs reach it.
struct JoinPlacement {
    left: DataFrame,
    right: DataFrame,
    inputs: Vec<Input>,
    build: JoinSide,
    parallelism: usize,
    partitioning: Partitioning,
}

impl JoinPlacement {
    /// The `build` side broadcast to every subtask of the other, which
    /// stays where it is.
    fn broadcast(left: &DataFrame, right: &DataFrame, build: JoinSide) -> Self {
        let edge = |df: &DataFrame, side| {
            if side == build {
                df.node.broadcast()
            } else {
                df.node.forward().pipelined()
            }
        };
        Self {
            inputs: vec![edge(left, JoinSide::Left), edge(right, JoinSide::Right)],
            parallelism: match build {
                JoinSide::Right => left.parallelism,
                JoinSide::Left => right.parallelism,
            },
            left: left.clone(),
            right: right.clone(),
            build,
            partitioning: Partitioning::Any,
        }
    }

    /// Both sides in one subtask, where every pair can meet; the smaller
    /// builds.
    fn gathered(left: &DataFrame, right: &DataFrame) -> Self {
        Self {
            inputs: vec![left.gather_input(), right.gather_input()],
            build: Self::smaller(left, right),
            left: left.clone(),
            right: right.clone(),
            parallelism: 1,
            partitioning: Partitioning::Any,
        }
    }

    /// Both sides hash-partitioned on their keys over the job's
    /// parallelism; the smaller builds.
    fn partitioned(
        left: DataFrame,
        right: DataFrame,
        left_keys: &[String],
        right_keys: &[String],
        partitioning: Partitioning,
    ) -> Self {
        let parallelism = left.flow.parallelism();
        Self {
            inputs: vec![
                left.keyed_input(left_keys, parallelism),
                right.keyed_input(right_keys, parallelism),
            ],
            build: Self::smaller(&left, &right),
            left,
            right,
            parallelism,
            partitioning,
        }
    }

    /// The side estimated smaller (the right when it cannot tell).
    fn smaller(left: &DataFrame, right: &DataFrame) -> JoinSide {
        if left.smaller_than(right) {
            JoinSide::Left
        } else {
            JoinSide::Right
        }
    }
}

/// A join's pairs of key columns, compiled.
type JoinKeyPairs = Vec<(Compiled, Compiled)>;

/// The pairs of key columns of a join of `left` and `right`, and its
/// `filter`, compiled against their schemas.
fn compile_join(
    left: &DataFrame,
    right: &DataFrame,
    left_keys: &[String],
    right_keys: &[String],
    filter: Option<Expr>,
) -> Result<(JoinKeyPairs, Option<Compiled>)> {
    let on = left_keys
        .iter()
        .zip(right_keys)
        .map(|(l, r)| {
            Ok((
                Compiled::new(&crate::expr::column(l), &left.schema)?,
                Compiled::new(&crate::expr::column(r), &right.schema)?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let both = joined_schema(&left.schema, &right.schema);
    let filter = filter.map(|f| Compiled::new(&f, &both)).transpose()?;
    Ok((on, filter))
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::DataType;

    use super::*;
    use crate::expr::{col, lit};
    use crate::graph::ExchangeMode;
    use crate::sources::MemorySource;
    use crate::testing::{ColumnKind, ColumnSpec, Rng, random_batch};

    fn source(seed: u64) -> Arc<MemorySource> {
        let columns = [
            ColumnSpec::new("k", ColumnKind::Int64, 10),
            ColumnSpec::new("v", ColumnKind::Int32, 100).with_nulls(0.1),
        ];
        let batch = random_batch(&mut Rng::new(seed), &columns, 100);
        Arc::new(MemorySource::try_new("t", batch.schema(), vec![batch]).expect("one schema"))
    }

    #[test]
    fn filter_and_select_chain_onto_the_source() {
        let flow = Dataflow::new("chain").with_parallelism(3);
        let out = flow
            .read(source(1))
            .filter(col("v").gt(lit(10)))
            .and_then(|df| df.select(vec![col("k"), (col("v") * lit(2i64)).alias("w")]))
            .expect("plans");
        assert_eq!(out.schema().field(1).name(), "w");
        assert_eq!(out.schema().field(1).data_type(), &DataType::Int64);
        let (sink, _) = crate::sinks::CollectSink::new();
        out.write(Arc::new(sink));
        let graph = flow.build(ShuffleMode::AllBlocking, 3).expect("builds");
        assert_eq!(graph.vertices.len(), 1, "one chained vertex");
        assert_eq!(graph.vertices[0].parallelism, 3);
    }

    #[test]
    fn selecting_every_column_in_order_adds_no_step() {
        let flow = Dataflow::new("identity");
        let df = flow.read(source(6));
        let same = df.select(vec![col("k"), col("v")]).expect("plans");
        assert_eq!(same.node, df.node, "no project step");
        let swapped = df.select(vec![col("v"), col("k")]).expect("plans");
        assert_ne!(swapped.node, df.node);
    }

    #[test]
    fn a_misspelt_column_fails_while_building() {
        let flow = Dataflow::new("typo");
        let err = flow
            .read(source(2))
            .filter(col("vv").gt(lit(1)))
            .expect_err("no column vv");
        assert!(err.to_string().contains("vv"), "{err}");
    }

    #[test]
    fn union_rebalances_both_sides_into_one_step() {
        let flow = Dataflow::new("union").with_parallelism(2);
        let both = flow
            .read(source(3))
            .union(&flow.read(source(4)))
            .expect("same columns");
        let (sink, _) = crate::sinks::CollectSink::new();
        both.write(Arc::new(sink));
        let graph = flow.build(ShuffleMode::AllBlocking, 2).expect("builds");
        assert_eq!(graph.vertices.len(), 3);
        assert_eq!(graph.edges.len(), 2);
        assert!(graph.edges.iter().all(|e| e.mode == ExchangeMode::Blocking));
        let other = flow.read(source(5)).select(vec![col("k")]).expect("plans");
        assert!(both.union(&other).is_err());
    }
}
