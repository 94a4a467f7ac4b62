//! `DISTINCT` aggregates as a grouping: an aggregate whose `DISTINCT`
//! calls share one argument `x` runs in two steps, first grouped by its
//! keys and `x` (one row per distinct value: a hash aggregate that spills
//! like any other), then by its keys alone over those rows. A distinct set
//! is then never one state in memory, however many values it has.
//!
//! The aggregates beside the distinct ones must split in two steps too:
//! `count` (summed, 0 without rows), `sum`, `min` and `max`. DataFusion's
//! own rule does this without `count`, so that `count(DISTINCT x)` beside
//! `count(*)` kept its whole distinct set in one state.

use std::collections::HashSet;
use std::sync::Arc;

use datafusion_common::Result;
use datafusion_common::tree_node::Transformed;
use datafusion_expr::expr::{AggregateFunction, AggregateFunctionParams};
use datafusion_expr::logical_plan::{Aggregate, LogicalPlan, LogicalPlanBuilder};
use datafusion_expr::{Expr, ExprSchemable, cast, col, lit};
use datafusion_functions_aggregate::sum::sum_udaf;
use datafusion_optimizer::optimizer::ApplyOrder;
use datafusion_optimizer::{OptimizerConfig, OptimizerRule};

/// The rule (see the module docs).
#[derive(Debug, Default)]
pub struct DistinctToGroups;

/// The name of the `i`-th grouping key between the two steps.
fn key(i: usize) -> String {
    format!("__weir_key{i}")
}

const DISTINCT: &str = "__weir_distinct";

/// How an aggregate beside the distinct ones splits: what the first step
/// computes, and what the second makes of it.
enum Split {
    /// Counts of the first step summed; 0 without rows.
    Count,
    /// The same function in both steps (`sum`, `min`, `max`).
    Again,
}

fn split_of(call: &AggregateFunction) -> Option<Split> {
    let params = &call.params;
    if params.filter.is_some() || !params.order_by.is_empty() {
        return None;
    }
    match call.func.name() {
        "count" => Some(Split::Count),
        "sum" | "min" | "max" => Some(Split::Again),
        _ => None,
    }
}

/// The one argument every `DISTINCT` call of `aggregates` shares, when
/// there is one and every other call splits.
fn shared_distinct_argument(aggregates: &[Expr]) -> Option<Expr> {
    let mut arguments = HashSet::new();
    for aggregate in aggregates {
        let Expr::AggregateFunction(call) = aggregate else {
            return None;
        };
        let params = &call.params;
        if params.distinct {
            if params.args.len() != 1 || params.filter.is_some() || !params.order_by.is_empty() {
                return None;
            }
            arguments.insert(&params.args[0]);
        } else {
            split_of(call)?;
        }
    }
    match arguments.into_iter().collect::<Vec<_>>().as_slice() {
        [argument] => Some((*argument).clone()),
        _ => None,
    }
}

fn call(of: &AggregateFunction, args: Vec<Expr>) -> Expr {
    Expr::AggregateFunction(AggregateFunction {
        func: Arc::clone(&of.func),
        params: AggregateFunctionParams {
            args,
            distinct: false,
            filter: None,
            order_by: Vec::new(),
            null_treatment: of.params.null_treatment,
        },
    })
}

impl OptimizerRule for DistinctToGroups {
    fn name(&self) -> &str {
        "weir_distinct_to_groups"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let grouping_sets = matches!(aggregate.group_expr.first(), Some(Expr::GroupingSet(_)));
        let Some(argument) = shared_distinct_argument(&aggregate.aggr_expr) else {
            return Ok(Transformed::no(plan));
        };
        if grouping_sets {
            return Ok(Transformed::no(plan));
        }
        Ok(Transformed::yes(in_two_steps(aggregate, argument)?))
    }
}

/// `aggregate` as a grouping by its keys and `argument`, then by its keys.
fn in_two_steps(aggregate: &Aggregate, argument: Expr) -> Result<LogicalPlan> {
    let keys = aggregate.group_expr.len();
    let mut first_keys: Vec<Expr> = aggregate
        .group_expr
        .iter()
        .enumerate()
        .map(|(i, k)| k.clone().alias(key(i)))
        .collect();
    first_keys.push(argument.alias(DISTINCT));
    let (mut first, mut second, mut last) = (Vec::new(), Vec::new(), Vec::new());
    for (j, aggregate_expr) in aggregate.aggr_expr.iter().enumerate() {
        let Expr::AggregateFunction(call_of) = aggregate_expr else {
            unreachable!("checked by shared_distinct_argument");
        };
        let step = format!("__weir_step{j}");
        let out = format!("__weir_out{j}");
        let finished = if call_of.params.distinct {
            second.push(call(call_of, vec![col(DISTINCT)]).alias(&out));
            col(out.as_str())
        } else {
            first.push(call(call_of, call_of.params.args.clone()).alias(&step));
            match split_of(call_of) {
                Some(Split::Count) => {
                    let summed = Expr::AggregateFunction(AggregateFunction::new_udf(
                        sum_udaf(),
                        vec![col(step.as_str())],
                        false,
                        None,
                        Vec::new(),
                        None,
                    ));
                    second.push(summed.alias(&out));
                    datafusion_functions::expr_fn::coalesce(vec![col(out.as_str()), lit(0i64)])
                }
                _ => {
                    second.push(call(call_of, vec![col(step.as_str())]).alias(&out));
                    col(out.as_str())
                }
            }
        };
        last.push(finished);
    }
    let input = Arc::unwrap_or_clone(Arc::clone(&aggregate.input));
    let grouped = LogicalPlanBuilder::from(input)
        .aggregate(first_keys, first)?
        .build()?;
    let second_keys: Vec<Expr> = (0..keys).map(|i| col(key(i).as_str())).collect();
    let regrouped = LogicalPlanBuilder::from(grouped)
        .aggregate(second_keys, second)?
        .build()?;
    // The aggregate's own columns again: names, qualifiers and types.
    let columns: Vec<Expr> = (0..keys)
        .map(|i| col(key(i).as_str()))
        .chain(last)
        .enumerate()
        .map(|(i, expr)| {
            let (qualifier, field) = aggregate.schema.qualified_field(i);
            let typed = if expr.get_type(regrouped.schema())? == *field.data_type() {
                expr
            } else {
                cast(expr, field.data_type().clone())
            };
            Ok(typed.alias_qualified(qualifier.cloned(), field.name()))
        })
        .collect::<Result<_>>()?;
    LogicalPlanBuilder::from(regrouped)
        .project(columns)?
        .build()
}
