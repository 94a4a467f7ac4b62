//! # weir-engine
//!
//! What a job is and how one task of it runs.
//!
//! - [`graph`]: the [`JobGraph`](graph::JobGraph) — vertices that are chains of
//!   operators with a parallelism, and edges with a
//!   [`Partitioner`](weir_exchange::Partitioner) and an
//!   [`ExchangeMode`](graph::ExchangeMode) — and the
//!   [`JobBuilder`](graph::JobBuilder) that assembles one and chains forward
//!   edges of equal parallelism into one task.
//! - [`operator`], [`source`], [`sink`]: the contracts of the pieces a task
//!   runs. Operators are vectorized: whole Arrow record batches in and out.
//! - [`task`]: the task loop that drives one subtask's chain between its input
//!   gates and its result partitions, its CPU work on the shared rayon pool
//!   ([`weir_exchange::cpu`]) and its I/O on tokio.
//! - [`checkpoint`]: what tasks snapshot at checkpoint barriers and
//!   restore from, keyed state by key group.
//! - [`event_time`]: event-time columns and the watermarks sources
//!   generate from them.
//! - [`dataframe`]: the dataframe API that builds relational jobs.
//! - [`expr`]: expressions (DataFusion's `Expr`, typed and evaluated over
//!   record batches) and [`memory`]: the budgets stateful operators spill
//!   under.
//! - [`operators`], [`sources`], [`sinks`]: built-in pieces.
//! - [`testing`]: seeded random data and a driver to test operators
//!   outside a job.
//! - [`duration`]: durations as options spell them.
//! - [`registry`]: the connector registry that `weir-formats` fills, so that
//!   this crate never depends on the formats.
//!
//! The scheduler (`weir-scheduler`) decides where and when tasks run; this
//! crate knows nothing of regions, slots or failover.

pub mod checkpoint;
pub mod dataframe;
pub mod duration;
mod error;
pub mod event_time;
pub mod expr;
pub mod graph;
pub mod memory;
pub mod operator;
pub mod operators;
pub mod registry;
pub mod sink;
pub mod sinks;
pub mod source;
pub mod sources;
pub mod suggest;
pub mod task;
pub mod testing;

pub use error::{Error, Result};
pub use operator::{Operator, OperatorFactory, Output, Progress};
pub use sink::{CheckpointCommit, JobCommit, Sink, SinkFactory};
pub use source::{Boundedness, ScanRequest, Source, SourceFactory};
pub use task::TaskInfo;
pub use weir_exchange::cpu;
