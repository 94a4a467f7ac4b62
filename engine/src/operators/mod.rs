//! Built-in operators that exercise the runtime. The relational operators
//! (joins, aggregates, sort) build on the same [`Operator`](crate::Operator)
//! contract.

mod aggregate;
mod count_by_key;
mod distinct;
mod filter;
mod map;

pub use aggregate::{AggregateMode, HashAggregate};
pub use count_by_key::CountByKey;
pub use distinct::Distinct;
pub use filter::Filter;
pub use map::MapBatches;

use arrow::array::RecordBatch;

/// A function over a whole batch, shared by every subtask of an operator.
pub type BatchFn<T> = std::sync::Arc<dyn Fn(&RecordBatch) -> crate::Result<T> + Send + Sync>;
