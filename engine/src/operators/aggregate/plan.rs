//! What a hash aggregate computes, typed once per job: the group keys, the
//! aggregate functions with their arguments, and the schemas of the rows
//! each phase consumes and produces.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion_common::DFSchema;
use datafusion_common::tree_node::TreeNode;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{Expr, GroupsAccumulator};
use datafusion_optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion_physical_expr::aggregate::{AggregateFunctionExpr, LoweredAggregateBuilder};
use datafusion_physical_expr::{GroupsAccumulatorAdapter, PhysicalExpr};

use super::AggregateMode;
use crate::expr::{Compiled, renamed};
use crate::{Error, Result};

/// A hash aggregate's typed description, shared by all its subtasks.
#[derive(Debug, Clone)]
pub(crate) struct AggregatePlan {
    pub(crate) mode: AggregateMode,
    pub(crate) name: String,
    /// The schema of the rows being aggregated.
    pub(crate) input_schema: SchemaRef,
    /// The group keys over the input rows (evaluated in `Partial` and
    /// `Single`; in `Final` the keys are the leading state columns).
    pub(crate) group_by: Vec<Compiled>,
    pub(crate) key_fields: Vec<FieldRef>,
    pub(crate) aggregates: Vec<PlannedAggregate>,
    /// Group keys then every aggregate's state columns: what `Partial`
    /// emits, `Final` consumes and spill runs hold.
    pub(crate) state_schema: SchemaRef,
    /// What this mode emits.
    pub(crate) output_schema: SchemaRef,
    /// Whether a key or an aggregate's argument is volatile (`random()`).
    pub(crate) volatile: bool,
}

/// One aggregate function, planned against the input rows.
#[derive(Debug, Clone)]
pub(crate) struct PlannedAggregate {
    pub(crate) function: Arc<AggregateFunctionExpr>,
    /// Arguments, then the expressions of an `ORDER BY` inside the call.
    arguments: Vec<Arc<dyn PhysicalExpr>>,
    filter: Option<Arc<dyn PhysicalExpr>>,
    /// Its columns in the state schema.
    pub(crate) states: Range<usize>,
}

impl AggregatePlan {
    /// Types the group keys and aggregates against `input` (the schema of
    /// the rows being aggregated, in every mode).
    pub(crate) fn try_new(
        mode: AggregateMode,
        input: &Schema,
        group_by: &[(Expr, String)],
        aggregates: &[(Expr, String)],
    ) -> Result<Self> {
        let group_by_exprs = group_by
            .iter()
            .map(|(expr, _)| Compiled::new(expr, input))
            .collect::<Result<Vec<_>>>()?;
        let key_fields: Vec<FieldRef> = group_by_exprs
            .iter()
            .zip(group_by)
            .map(|(expr, (_, name))| renamed(expr, name))
            .collect();
        let mut state_fields = key_fields.clone();
        let mut planned = Vec::with_capacity(aggregates.len());
        for (expr, name) in aggregates {
            let aggregate = PlannedAggregate::try_new(expr, name, input, state_fields.len())?;
            let fields = aggregate
                .function
                .state_fields()
                .map_err(|e| expr_error(expr, e))?;
            state_fields.extend(fields);
            planned.push(aggregate);
        }
        let state_schema = Arc::new(Schema::new(state_fields));
        let output_schema = match mode {
            AggregateMode::Partial => Arc::clone(&state_schema),
            AggregateMode::Final | AggregateMode::Single => {
                let mut fields = key_fields.clone();
                fields.extend(planned.iter().map(|a| a.function.field()));
                Arc::new(Schema::new(fields))
            }
        };
        let keys: Vec<&str> = group_by.iter().map(|(_, name)| name.as_str()).collect();
        let functions: Vec<String> = aggregates
            .iter()
            .map(|(expr, name)| {
                // An aliased expression already shows its name.
                let shown = expr.to_string();
                if expr.schema_name().to_string() == *name {
                    shown
                } else {
                    format!("{shown} AS {name}")
                }
            })
            .collect();
        Ok(Self {
            mode,
            name: format!(
                "hash_aggregate[{mode}](by {}; {})",
                keys.join(", "),
                functions.join(", ")
            ),
            input_schema: Arc::new(input.clone()),
            group_by: group_by_exprs,
            key_fields,
            aggregates: planned,
            state_schema,
            output_schema,
            volatile: group_by
                .iter()
                .chain(aggregates)
                .any(|(e, _)| e.is_volatile()),
        })
    }

    /// Whether this mode consumes state rows (`Final`) rather than input
    /// rows.
    pub(crate) fn consumes_states(&self) -> bool {
        self.mode == AggregateMode::Final
    }

    /// A row converter for the group keys (row bytes compare as the keys).
    pub(crate) fn key_converter(&self) -> Result<RowConverter> {
        let fields = self
            .key_fields
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect();
        RowConverter::new(fields).map_err(|e| self.error("setting up its group keys", e))
    }

    /// Fresh accumulators, one per aggregate, holding no group.
    pub(crate) fn accumulators(&self) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        self.aggregates
            .iter()
            .map(|a| {
                a.accumulator()
                    .map_err(|e| self.error(format!("creating {}", a.function.name()), e))
            })
            .collect()
    }

    /// An error of this operator while `doing` something.
    pub(crate) fn error(&self, doing: impl fmt::Display, cause: impl fmt::Display) -> Error {
        Error::Operator {
            operator: self.name.clone(),
            message: format!("{doing}: {cause}"),
        }
    }
}

impl PlannedAggregate {
    fn try_new(expr: &Expr, name: &str, input: &Schema, first_state: usize) -> Result<Self> {
        let mut unaliased = expr;
        while let Expr::Alias(alias) = unaliased {
            unaliased = &alias.expr;
        }
        if !matches!(unaliased, Expr::AggregateFunction(_)) {
            return Err(Error::Expr {
                expr: expr.to_string(),
                message: "is not an aggregate function".into(),
            });
        }
        let fail = |e| expr_error(expr, e);
        let dfschema = DFSchema::try_from(input.clone()).map_err(fail)?;
        let coerced = unaliased
            .clone()
            .rewrite(&mut TypeCoercionRewriter::new(&dfschema))
            .map_err(fail)?
            .data;
        let lowered = LoweredAggregateBuilder::new(
            &coerced,
            &dfschema,
            input,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
        .with_name(name)
        .build()
        .map_err(fail)?;
        let expressions = lowered.aggregate.all_expressions();
        let mut arguments = expressions.args;
        arguments.extend(expressions.order_by_exprs);
        let states = lowered.aggregate.state_fields().map_err(fail)?.len();
        Ok(Self {
            function: lowered.aggregate,
            arguments,
            filter: lowered.filter,
            states: first_state..first_state + states,
        })
    }

    /// A groups accumulator: the function's own when it has one, else one
    /// accumulator per group behind an adapter (DISTINCT aggregates).
    fn accumulator(&self) -> datafusion_common::Result<Box<dyn GroupsAccumulator>> {
        if self.function.groups_accumulator_supported() {
            self.function.create_groups_accumulator()
        } else {
            let function = Arc::clone(&self.function);
            Ok(Box::new(GroupsAccumulatorAdapter::new(move || {
                function.create_accumulator()
            })))
        }
    }

    /// The argument columns of `batch`, and the rows its `FILTER` keeps.
    pub(crate) fn arguments(
        &self,
        batch: &RecordBatch,
    ) -> datafusion_common::Result<(Vec<ArrayRef>, Option<BooleanArray>)> {
        let rows = batch.num_rows();
        let values = self
            .arguments
            .iter()
            .map(|e| e.evaluate(batch).and_then(|v| v.into_array(rows)))
            .collect::<datafusion_common::Result<Vec<_>>>()?;
        let filter = match &self.filter {
            Some(filter) => {
                let keep = filter.evaluate(batch)?.into_array(rows)?;
                Some(datafusion_common::cast::as_boolean_array(&keep)?.clone())
            }
            None => None,
        };
        Ok((values, filter))
    }
}

fn expr_error(expr: &Expr, e: datafusion_common::DataFusionError) -> Error {
    Error::Expr {
        expr: expr.to_string(),
        message: e.strip_backtrace(),
    }
}
