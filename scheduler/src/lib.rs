//! # weir-scheduler
//!
//! Where and when a job's tasks run.
//!
//! - [`execution_graph`]: the [`ExecutionGraph`] — every vertex expanded into
//!   subtasks, every edge into result partitions and subpartitions, wired
//!   pointwise or all-to-all.
//! - [`region`]: pipelined regions — the subtasks connected through pipelined
//!   edges (union-find), bordered by blocking edges, in topological order.
//! - [`strategy`]: eager scheduling (everything at once) and lazy
//!   topological scheduling (a region starts when all of its blocking inputs
//!   are complete).
//! - [`slot`]: the slots a worker offers; a slot holds one subtask of each
//!   vertex of a region (slot sharing).
//! - [`failover`]: which regions restart when a task fails (`region`,
//!   `restart-all`) and when they may restart (restart strategies).
//! - [`checkpoint_coordinator`]: periodic checkpoints of streaming jobs,
//!   their metadata and retention, and what restarted tasks resume from.
//! - [`job_master`] and [`mini_cluster`]: run a job end to end; the embedded
//!   mini-cluster is the default way jobs run.
//! - [`region_scheduler`]: each region's state, which run next, and
//!   their slots.
//! - [`partition_tracker`]: which blocking partitions are written, by
//!   which attempt, and which are lost.
//! - [`sink_commit`]: the job-level commit of the sinks, at checkpoints
//!   and when the job ends.
//! - [`deployment`] and [`task_executor`]: the seam through which a job
//!   master runs its subtasks' attempts: what it plans of each, and what
//!   runs them (in this process for the mini-cluster, on workers for a
//!   coordinator).
//! - [`cluster`]: the control plane of a coordinator and its workers.
//! - [`explain`] and [`summary`]: what a job looks like and what it did.

pub mod causes_first;
pub mod checkpoint_coordinator;
pub mod cluster;
mod config;
pub mod deployment;
mod error;
pub mod execution_graph;
pub mod explain;
pub mod failover;
pub mod failure_plan;
pub mod injecting_executor;
pub mod job_control;
pub mod job_master;
pub mod mini_cluster;
pub mod partition_tracker;
pub mod progress;
pub mod region;
pub mod region_scheduler;
pub mod sink_commit;
pub mod slot;
pub mod strategy;
pub mod summary;
pub mod task_executor;

pub use config::{CONFIG_KEYS, FailoverKind, JobConfig};
pub use error::{Error, Result};
pub use execution_graph::{ExecutionGraph, SubtaskId};
pub use failure_plan::FailurePlan;
pub use job_control::{JobControl, SavepointTarget};
pub use mini_cluster::MiniCluster;
pub use progress::{JobProgress, ProgressSnapshot};
pub use region::{RegionId, Regions};
pub use summary::JobSummary;
pub use weir_engine::duration::parse_duration;
