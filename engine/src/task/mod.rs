//! The task runtime: one subtask attempt driving its operator chain between
//! its input gates and its result partitions.
//!
//! A task is an async loop on tokio. It reads events from its inputs (or its
//! source) and queues them, a few ahead, on its CPU worker: the chain and the
//! partitioners live on the CPU pool ([`weir_exchange::cpu::Worker`]), which
//! processes the events in order and splits the results. The task writes the
//! pieces to its outputs (pipelined channels or blocking partition files)
//! and its sink as they come back. Backpressure flows naturally: a full
//! channel makes the task wait, so it stops reading its own input.

mod chain;
mod checkpointing;
mod counters;
mod hook;
mod input;
mod metrics;
mod output;
mod run;
mod scan_progress;

use std::fmt;
use std::sync::Arc;

use weir_exchange::blocking::{BlockingFormat, BlockingOptions};
use weir_exchange::channel::{ChannelReceiver, ChannelSender};
use weir_exchange::{Partitioner, ResultPartitionId, ShuffleRoot};

use crate::graph::{Chain, VertexId};
use crate::memory::MemoryPool;

pub use chain::OperatorChain;
pub use counters::Counters;
pub use hook::TaskHook;
pub use metrics::{LiveMetrics, PartitionWritten, TaskMetrics, TaskReport};
pub use run::{CPU_QUEUE_DEPTH, run_task};
pub use scan_progress::ScanProgress;

/// Who a running task is.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    /// The job's id (unique per run).
    pub job_id: Arc<str>,
    /// The vertex this task belongs to.
    pub vertex: VertexId,
    /// The vertex's display name.
    pub vertex_name: Arc<str>,
    /// This subtask's index within the vertex.
    pub subtask: usize,
    /// The vertex's parallelism.
    pub parallelism: usize,
    /// The attempt number of this execution (0 for the first).
    pub attempt: u32,
    /// The job's number of key groups.
    pub max_parallelism: usize,
    /// The memory budget the task's stateful operators share.
    pub memory: MemoryPool,
    /// The task's named counters (reported with the task).
    pub counters: Counters,
    /// Its records and bytes so far (reported with the task, and read live
    /// by the job master).
    pub metrics: LiveMetrics,
    /// The input rows its source has covered, for a source task (read live
    /// by the job master).
    pub scanned: ScanProgress,
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}) [{}/{}] attempt {}",
            self.vertex_name,
            self.vertex,
            self.subtask + 1,
            self.parallelism,
            self.attempt
        )
    }
}

/// One channel of an input gate: where one producer subpartition is read.
#[derive(Debug)]
pub enum InputChannel {
    /// A pipelined channel from a producer in the same process.
    Local(ChannelReceiver),
    /// A subpartition of a complete blocking partition file.
    Blocking {
        /// The root holding the file.
        root: ShuffleRoot,
        /// The job whose partition it is.
        job: Arc<str>,
        /// The partition to read.
        partition: ResultPartitionId,
        /// The subpartition to read.
        subpartition: usize,
        /// The file's format.
        format: BlockingFormat,
    },
}

/// Where one output (one outgoing edge) of a task goes.
#[derive(Debug)]
pub enum OutputTarget {
    /// One pipelined channel per subpartition.
    Pipelined(Vec<ChannelSender>),
    /// One blocking partition file with `num_subpartitions` subpartitions.
    Blocking {
        /// The root the file goes under.
        root: ShuffleRoot,
        /// The job whose partition it is.
        job: Arc<str>,
        /// The partition this attempt writes.
        partition: ResultPartitionId,
        /// How many consumers read it.
        num_subpartitions: usize,
        /// Format and compression.
        options: BlockingOptions,
    },
}

/// One output of a task.
#[derive(Debug)]
pub struct OutputSpec {
    /// The edge (dataset) this output feeds.
    pub dataset: u32,
    /// How records are split over subpartitions.
    pub partitioner: Partitioner,
    /// Where the subpartitions go.
    pub target: OutputTarget,
}

/// Everything a task needs to run: built by the scheduler when it deploys a
/// subtask attempt.
#[derive(Debug)]
pub struct TaskDeployment {
    /// Who the task is.
    pub info: TaskInfo,
    /// What it runs.
    pub chain: Chain,
    /// Its input gates, one per input of the chain's head, each with the
    /// channels it reads.
    pub inputs: Vec<Vec<InputChannel>>,
    /// Its outputs, one per outgoing edge.
    pub outputs: Vec<OutputSpec>,
    /// A test's hook into the task (`None` outside tests).
    pub hook: Option<Arc<dyn TaskHook>>,
    /// How it takes part in checkpoints (streaming jobs that take them).
    pub checkpoints: Option<crate::checkpoint::CheckpointSetup>,
}
