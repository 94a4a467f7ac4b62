//! Built-in operators that exercise the runtime. The relational operators
//! (joins, aggregates, sort) build on the same [`Operator`](crate::Operator)
//! contract.

mod count_by_key;
mod filter;
mod limit;
mod map;
mod sort;
mod sort_key;
mod top_n;

pub use count_by_key::CountByKey;
pub use filter::Filter;
pub use limit::Limit;
pub use map::MapBatches;
pub use sort::Sort;
pub use sort_key::SortKey;
pub use top_n::TopN;

use arrow::array::RecordBatch;

/// A function over a whole batch, shared by every subtask of an operator.
pub type BatchFn<T> = std::sync::Arc<dyn Fn(&RecordBatch) -> crate::Result<T> + Send + Sync>;
