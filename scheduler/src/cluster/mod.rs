//! The cluster's control plane, as Flink's JobManager and TaskManagers
//! have it: a coordinator whose resource manager takes the slots workers
//! register, and workers that keep telling it they are alive. Both sides
//! watch the other: the coordinator declares a worker lost after the
//! heartbeat timeout without a heartbeat, and a worker that hears nothing
//! from its coordinator for as long registers again.
//!
//! A client submits a job as its SQL script and settings ([`proto::JobSpec`]);
//! the coordinator's dispatcher plans it, and its job master deploys the
//! attempts of each region on a worker ([`remote::RemoteExecutor`]), which
//! plans the same job, checks that its plan is the coordinator's, and runs
//! them ([`task_manager`]). A region's slots go to the workers with the
//! most free slots: its pipelined channels between two subtasks of one
//! worker stay in memory, those between workers cross over Arrow Flight
//! (`weir_exchange::remote`, served on the worker's port). Blocking
//! partitions go to the job's shuffle root when it is an object store
//! every worker reads; otherwise to the worker's own shuffle directory,
//! which its exchange service serves to the others, and the partition
//! tracker records which worker holds each, so that they are lost with it.

pub mod access;
pub mod coordinator;
pub mod dispatcher;
pub mod recovery;
pub mod remote;
pub mod rows;
pub mod service;
pub mod task_manager;
pub mod wire;
pub mod worker;

use std::hash::{Hash, Hasher};
use std::time::Duration;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::graph::JobGraph;
use weir_engine::sinks::RowsOut;

use crate::JobConfig;

/// One job of a script: a query, or its INSERT INTO statements together.
pub struct ScriptPart {
    /// The job.
    pub job: JobGraph,
    /// The settings it runs with.
    pub config: JobConfig,
    /// For a query: the schema of its rows.
    pub rows: Option<SchemaRef>,
}

/// Turns a job as its client wrote it into its graph and settings: the
/// coordinator and every worker plan each job, and must get the same.
#[async_trait]
pub trait JobPlanner: Send + Sync + 'static {
    /// The jobs of the script of `spec`: its queries in order, their rows
    /// delivered to `rows`, then its INSERT INTO statements as one job.
    ///
    /// # Errors
    /// The script does not plan (the message names the statement).
    async fn plan(
        &self,
        spec: &proto::JobSpec,
        rows: Arc<dyn RowsOut>,
    ) -> Result<Vec<ScriptPart>, String>;
}

/// The defaults with `settings` applied over them, in order: how every
/// process of a cluster configures a job.
///
/// # Errors
/// An unknown option or a bad value, naming the option.
pub fn config_of(settings: &[proto::Setting]) -> Result<JobConfig, String> {
    let mut config = JobConfig::default();
    for setting in settings {
        config
            .set(&setting.key, &setting.value)
            .map_err(|e| format!("setting {}: {e}", setting.key))?;
    }
    Ok(config)
}

/// The part of the script of `spec` that `spec.part` names.
///
/// # Errors
/// The script does not plan, or has no such part.
pub async fn plan_part(
    planner: &dyn JobPlanner,
    spec: &proto::JobSpec,
    rows: Arc<dyn RowsOut>,
) -> Result<ScriptPart, String> {
    let mut parts = planner.plan(spec, rows).await?;
    let count = parts.len();
    let part = spec.part as usize;
    if part >= count {
        return Err(format!(
            "{} makes {count} job(s): there is no job {part} of it",
            spec.name
        ));
    }
    Ok(parts.swap_remove(part))
}

/// What a plan of a job looks like, as a number: the vertices (name,
/// parallelism, chain) and edges (partitioning, exchange mode) in order.
/// Two processes that planned the same job get the same number.
pub fn fingerprint(job: &JobGraph) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    for vertex in &job.vertices {
        vertex.name.hash(&mut hasher);
        vertex.parallelism.hash(&mut hasher);
        vertex.chain.names().hash(&mut hasher);
    }
    for edge in &job.edges {
        format!("{edge:?}").hash(&mut hasher);
    }
    job.max_parallelism.hash(&mut hasher);
    hasher.finish()
}

/// The gRPC messages and services, generated from `proto/cluster.proto`.
#[allow(
    missing_docs,
    unused_qualifications,
    clippy::all,
    clippy::pedantic,
    clippy::restriction
)]
pub mod proto {
    tonic::include_proto!("weir.cluster");
}

/// The weir version of this process: a coordinator takes workers of its
/// own version only.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How often workers send heartbeats, and how long each side waits for
/// the other before it counts it as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeats {
    /// Between two heartbeats of a worker.
    pub interval: Duration,
    /// Without a heartbeat (or an answer to one) until the other side is
    /// lost.
    pub timeout: Duration,
}

impl Default for Heartbeats {
    /// Flink's defaults scaled down five times (`heartbeat.interval` 10 s,
    /// `heartbeat.timeout` 50 s): lost workers fail over within seconds.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
        }
    }
}
