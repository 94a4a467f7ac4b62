//! Built-in operators, one per file, all on the
//! [`Operator`](crate::Operator) contract: vectorized over record batches,
//! incremental, their state held in memory under the task's budget.

mod aggregate;
mod distinct;
mod expand;
mod filter;
mod hash_join;
mod integer_keys;
mod interval_join;
mod join;
mod limit;
mod map;
mod nested_loop_join;
mod project;
mod run_merge;
mod single_row;
mod sort;
mod sort_key;
mod top_n;
mod union;
mod window;

pub use aggregate::{AggregateMode, HashAggregate};
pub use distinct::Distinct;
pub use expand::Expand;
pub use filter::Filter;
pub use hash_join::HashJoin;
pub use interval_join::IntervalJoin;
pub use join::{JoinSide, JoinType, joined_schema};
pub use limit::Limit;
pub use map::MapBatches;
pub use nested_loop_join::NestedLoopJoin;
pub use project::Project;
pub use single_row::AtMostOneRow;
pub use sort::Sort;
pub use sort_key::SortKey;
pub use top_n::TopN;
pub use union::Union;
pub use window::{WINDOW_END, WINDOW_START, Window, WindowAggregate, WindowJoin};

use arrow::array::RecordBatch;

/// A function over a whole batch, shared by every subtask of an operator.
pub type BatchFn<T> = std::sync::Arc<dyn Fn(&RecordBatch) -> crate::Result<T> + Send + Sync>;
