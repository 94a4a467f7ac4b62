//! Built-in operators, one per file, all on the
//! [`Operator`](crate::Operator) contract: vectorized over record batches,
//! incremental, their state held in memory under the task's budget.

mod count_by_key;
mod filter;
mod map;
mod project;
mod union;

pub use count_by_key::CountByKey;
pub use filter::Filter;
pub use map::MapBatches;
pub use project::Project;
pub use union::Union;

use arrow::array::RecordBatch;

/// A function over a whole batch, shared by every subtask of an operator.
pub type BatchFn<T> = std::sync::Arc<dyn Fn(&RecordBatch) -> crate::Result<T> + Send + Sync>;
