//! The dataflow model: what a job runs.

mod builder;

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use weir_exchange::Partitioner;

use crate::event_time::WatermarkStrategy;
use crate::{Boundedness, OperatorFactory, SinkFactory, SourceFactory};

pub use builder::{Input, JobBuilder, NodeId, ShuffleMode};

/// Identifies a vertex of a [`JobGraph`] (its index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct VertexId(pub u32);

impl fmt::Display for VertexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// How an edge moves data between its producer and consumer subtasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeMode {
    /// Records stream to consumers while the producer runs; producer and
    /// consumer run at the same time (same pipelined region).
    Pipelined,
    /// The producer writes its whole output to a file before any consumer
    /// reads it; producer and consumer are in different regions.
    Blocking,
}

impl fmt::Display for ExchangeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExchangeMode::Pipelined => "pipelined",
            ExchangeMode::Blocking => "blocking",
        })
    }
}

/// Whether a job runs as a batch job (lazily, region by region, with
/// blocking exchanges as the shuffle mode says) or as a streaming job (every
/// task at once, every exchange pipelined, watermarks and checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeMode {
    /// Bounded input, run region by region.
    Batch,
    /// Everything at once; the only mode for unbounded input.
    Streaming,
}

impl std::str::FromStr for RuntimeMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "batch" => Ok(RuntimeMode::Batch),
            "streaming" => Ok(RuntimeMode::Streaming),
            other => Err(format!(
                "unknown runtime mode '{other}' (valid: batch, streaming)"
            )),
        }
    }
}

impl fmt::Display for RuntimeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RuntimeMode::Batch => "batch",
            RuntimeMode::Streaming => "streaming",
        })
    }
}

/// The operators one task runs, in order: an optional source, the operators,
/// an optional sink.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// The source at the head, for a source vertex.
    pub source: Option<Arc<dyn SourceFactory>>,
    /// How the source's tasks generate watermarks, if they do.
    pub watermarks: Option<WatermarkStrategy>,
    /// The operators, applied in order.
    pub operators: Vec<Arc<dyn OperatorFactory>>,
    /// The sink at the end, for a sink vertex.
    pub sink: Option<Arc<dyn SinkFactory>>,
    /// Where the records an operator of the chain finds too late go (a
    /// side output), when they are not dropped.
    pub late_sink: Option<Arc<dyn SinkFactory>>,
}

impl Chain {
    /// The names of the chained pieces, in order.
    pub fn names(&self) -> Vec<String> {
        let source = self.source.iter().map(|s| s.name());
        let watermarks = self.watermarks.iter().map(|w| w.to_string());
        let operators = self.operators.iter().map(|o| o.name());
        let sink = self.sink.iter().map(|s| s.name());
        let late = self
            .late_sink
            .iter()
            .map(|s| format!("late records -> {}", s.name()));
        source
            .chain(watermarks)
            .chain(operators)
            .chain(sink)
            .chain(late)
            .collect()
    }

    /// What the chain's state belongs to, to match a savepoint with a job:
    /// its operators by name, and whether it reads a source and writes
    /// sinks, whose connectors and options may change between the two.
    pub fn state_name(&self) -> String {
        let source = self.source.iter().map(|_| "source".to_string());
        let operators = self.operators.iter().map(|o| o.name());
        let sink = self.sink.iter().map(|_| "sink".to_string());
        let late = self
            .late_sink
            .iter()
            .map(|_| "late records -> sink".to_string());
        source
            .chain(operators)
            .chain(sink)
            .chain(late)
            .collect::<Vec<_>>()
            .join(" -> ")
    }

    /// Whether every chained piece is deterministic.
    pub fn is_deterministic(&self) -> bool {
        self.source.as_ref().is_none_or(|s| s.is_deterministic())
            && self.operators.iter().all(|o| o.is_deterministic())
    }
}

/// A vertex: a chain of operators run by `parallelism` subtasks.
#[derive(Debug, Clone)]
pub struct JobVertex {
    /// The vertex's id (its index in the graph).
    pub id: VertexId,
    /// A display name: the chained operators' names joined by ` -> `.
    pub name: String,
    /// How many subtasks run the chain.
    pub parallelism: usize,
    /// What each subtask runs.
    pub chain: Chain,
}

impl JobVertex {
    /// Whether the vertex's source ends (a vertex without a source is bounded
    /// when its inputs are).
    pub fn boundedness(&self) -> Option<Boundedness> {
        self.chain.source.as_ref().map(|s| s.boundedness())
    }
}

/// An edge between two vertices: an intermediate dataset.
#[derive(Debug, Clone, Serialize)]
pub struct JobEdge {
    /// The edge's id (its index in the graph), also the id of the dataset it
    /// carries.
    pub id: u32,
    /// The producing vertex.
    pub source: VertexId,
    /// The consuming vertex.
    pub target: VertexId,
    /// Which input of the consumer this edge feeds (0 for single-input).
    pub target_input: usize,
    /// How records are distributed over the consumer subtasks.
    pub partitioner: Partitioner,
    /// Pipelined or blocking.
    pub mode: ExchangeMode,
}

/// A job's dataflow: vertices (operator chains) and edges. Vertices are
/// numbered in topological order: every edge goes from a lower id to a
/// higher one.
#[derive(Debug, Clone)]
pub struct JobGraph {
    /// The job's name.
    pub name: String,
    /// The vertices, in topological order.
    pub vertices: Vec<JobVertex>,
    /// The edges.
    pub edges: Vec<JobEdge>,
    /// The number of key groups of keyed exchanges and state.
    pub max_parallelism: usize,
    /// How the job runs.
    pub mode: RuntimeMode,
}

impl JobGraph {
    /// The vertex with id `id`.
    pub fn vertex(&self, id: VertexId) -> &JobVertex {
        &self.vertices[id.0 as usize]
    }

    /// The edges into `vertex`, ordered by consumer input.
    pub fn inputs(&self, vertex: VertexId) -> Vec<&JobEdge> {
        let mut edges: Vec<_> = self.edges.iter().filter(|e| e.target == vertex).collect();
        edges.sort_by_key(|e| (e.target_input, e.id));
        edges
    }

    /// The edges out of `vertex`, in id order.
    pub fn outputs(&self, vertex: VertexId) -> Vec<&JobEdge> {
        self.edges.iter().filter(|e| e.source == vertex).collect()
    }
}
