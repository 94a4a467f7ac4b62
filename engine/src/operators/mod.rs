//! Built-in operators that exercise the runtime. The relational operators
//! (joins, aggregates, sort) build on the same [`Operator`](crate::Operator)
//! contract.

mod count_by_key;
mod filter;
mod hash_join;
mod join;
mod map;
mod nested_loop_join;

pub use count_by_key::CountByKey;
pub use filter::Filter;
pub use hash_join::HashJoin;
pub use join::{JoinSide, JoinType, joined_schema};
pub use map::MapBatches;
pub use nested_loop_join::NestedLoopJoin;

use arrow::array::RecordBatch;

/// A function over a whole batch, shared by every subtask of an operator.
pub type BatchFn<T> = std::sync::Arc<dyn Fn(&RecordBatch) -> crate::Result<T> + Send + Sync>;
