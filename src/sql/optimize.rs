//! The logical rewrites weir applies before translating a plan: DataFusion's
//! analyzer (type coercion) and a chosen set of its optimizer rules.

use std::sync::Arc;

use datafusion_common::Result;
use datafusion_common::config::ConfigOptions;
use datafusion_expr::LogicalPlan;
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::common_subexpr_eliminate::CommonSubexprEliminate;
use datafusion_optimizer::decorrelate_predicate_subquery::DecorrelatePredicateSubquery;
use datafusion_optimizer::eliminate_cross_join::EliminateCrossJoin;
use datafusion_optimizer::eliminate_duplicated_expr::EliminateDuplicatedExpr;
use datafusion_optimizer::eliminate_filter::EliminateFilter;
use datafusion_optimizer::eliminate_group_by_constant::EliminateGroupByConstant;
use datafusion_optimizer::eliminate_join::EliminateJoin;
use datafusion_optimizer::eliminate_limit::EliminateLimit;
use datafusion_optimizer::eliminate_outer_join::EliminateOuterJoin;
use datafusion_optimizer::extract_equijoin_predicate::ExtractEquijoinPredicate;
use datafusion_optimizer::filter_null_join_keys::FilterNullJoinKeys;
use datafusion_optimizer::optimize_projections::OptimizeProjections;
use datafusion_optimizer::optimize_unions::OptimizeUnions;
use datafusion_optimizer::propagate_empty_relation::PropagateEmptyRelation;
use datafusion_optimizer::push_down_filter::PushDownFilter;
use datafusion_optimizer::push_down_limit::PushDownLimit;
use datafusion_optimizer::replace_distinct_aggregate::ReplaceDistinctWithAggregate;
use datafusion_optimizer::rewrite_set_comparison::RewriteSetComparison;
use datafusion_optimizer::scalar_subquery_to_join::ScalarSubqueryToJoin;
use datafusion_optimizer::simplify_expressions::SimplifyExpressions;
use datafusion_optimizer::{Optimizer, OptimizerContext, OptimizerRule};

use super::distinct_groups::DistinctToGroups;

/// The optimizer rules, in the order they run:
/// - set comparisons (`ANY`/`ALL`) and nested unions flattened, expressions
///   simplified and constants folded, `DISTINCT` as a grouping;
/// - subqueries (`IN`, `EXISTS`, scalar) decorrelated into joins;
/// - equality predicates taken out as join keys, and comma joins with
///   equalities in `WHERE` turned into inner joins in the order that
///   connects them (a cross join only where nothing connects two inputs);
/// - filters and limits pushed down towards (and into) the scans, null keys
///   filtered before inner joins, outer joins made inner where a filter
///   rejects the padded rows;
/// - `DISTINCT` aggregates of one argument grouped in two steps, so that
///   they spill (see [`DistinctToGroups`]), repeated
///   subexpressions computed once, unused columns never read.
fn rules() -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
    vec![
        Arc::new(RewriteSetComparison::new()),
        Arc::new(OptimizeUnions::new()),
        Arc::new(SimplifyExpressions::new()),
        Arc::new(ReplaceDistinctWithAggregate::new()),
        Arc::new(EliminateJoin::new()),
        Arc::new(DecorrelatePredicateSubquery::new()),
        Arc::new(ScalarSubqueryToJoin::new()),
        Arc::new(ExtractEquijoinPredicate::new()),
        Arc::new(EliminateDuplicatedExpr::new()),
        Arc::new(EliminateFilter::new()),
        Arc::new(EliminateCrossJoin::new()),
        Arc::new(EliminateLimit::new()),
        Arc::new(PropagateEmptyRelation::new()),
        Arc::new(FilterNullJoinKeys::default()),
        Arc::new(EliminateOuterJoin::new()),
        Arc::new(PushDownLimit::new()),
        Arc::new(PushDownFilter::new()),
        Arc::new(DistinctToGroups),
        Arc::new(EliminateGroupByConstant::new()),
        Arc::new(CommonSubexprEliminate::new()),
        Arc::new(OptimizeProjections::new()),
    ]
}

/// `plan` analyzed (types coerced) and optimized.
///
/// # Errors
/// A plan that does not type, or a rule's failure.
pub fn optimize(plan: LogicalPlan, options: &ConfigOptions) -> Result<LogicalPlan> {
    let analyzed = Analyzer::new().execute_and_check(plan, options, |_, _| {})?;
    let context = OptimizerContext::new_with_config_options(Arc::new(options.clone()));
    Optimizer::with_rules(rules()).optimize(analyzed, &context, |_, _| {})
}
