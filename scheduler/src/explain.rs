//! What a job looks like: its job graph, execution graph and regions, as
//! text or JSON.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde::Serialize;
use weir_engine::Boundedness;
use weir_engine::graph::{ExchangeMode, JobGraph, VertexId};

use crate::Result;
use crate::execution_graph::{ExecutionGraph, SubtaskId};

/// A vertex as explained.
#[derive(Debug, Serialize)]
pub struct ExplainedVertex {
    /// Its id.
    pub id: VertexId,
    /// Its name.
    pub name: String,
    /// The chained operators, in order.
    pub operators: Vec<String>,
    /// Its parallelism.
    pub parallelism: usize,
    /// Whether its source ends (`null` without a source).
    pub boundedness: Option<Boundedness>,
    /// Its subtasks.
    pub subtasks: Vec<SubtaskId>,
}

/// An edge as explained.
#[derive(Debug, Serialize)]
pub struct ExplainedEdge {
    /// Its id (dataset).
    pub id: u32,
    /// Producer vertex.
    pub source: VertexId,
    /// Consumer vertex.
    pub target: VertexId,
    /// Partitioner, as text (`hash(word)`, `forward`, ...).
    pub partitioner: String,
    /// `pipelined` or `blocking`.
    pub mode: ExchangeMode,
    /// `pointwise` or `all-to-all`.
    pub wiring: &'static str,
    /// Number of result partitions (one per producer subtask).
    pub partitions: usize,
    /// Subpartitions per result partition.
    pub subpartitions: Vec<usize>,
}

/// A region as explained.
#[derive(Debug, Serialize)]
pub struct ExplainedRegion {
    /// Its id (topological position).
    pub id: String,
    /// Its subtasks.
    pub subtasks: Vec<SubtaskId>,
    /// Slots it needs.
    pub slots: usize,
    /// Blocking partitions it reads, as `d<edge>/p<producer>`.
    pub inputs: Vec<String>,
    /// Whether a rerun writes the same output.
    pub deterministic: bool,
}

/// A job's plan: the job graph, its execution graph and its regions.
#[derive(Debug, Serialize)]
pub struct Explain {
    /// The job's name.
    pub job: String,
    /// The vertices.
    pub vertices: Vec<ExplainedVertex>,
    /// The edges.
    pub edges: Vec<ExplainedEdge>,
    /// Total number of subtasks.
    pub subtasks: usize,
    /// The pipelined regions in topological order.
    pub regions: Vec<ExplainedRegion>,
}

impl Explain {
    /// Explains `job`.
    ///
    /// # Errors
    /// When the job cannot be expanded into an execution graph.
    pub fn try_new(job: &JobGraph) -> Result<Self> {
        let graph = ExecutionGraph::try_new(Arc::new(job.clone()))?;
        let vertices = job
            .vertices
            .iter()
            .map(|v| ExplainedVertex {
                id: v.id,
                name: v.name.clone(),
                operators: v.chain.names(),
                parallelism: v.parallelism,
                boundedness: v.boundedness(),
                subtasks: graph
                    .subtasks
                    .iter()
                    .filter(|s| s.vertex == v.id)
                    .copied()
                    .collect(),
            })
            .collect();
        let edges = graph
            .results
            .iter()
            .map(|r| ExplainedEdge {
                id: r.dataset,
                source: r.producer,
                target: r.consumer,
                partitioner: r.partitioner.to_string(),
                mode: r.mode,
                wiring: if r.partitioner.is_all_to_all() {
                    "all-to-all"
                } else {
                    "pointwise"
                },
                partitions: r.partitions.len(),
                subpartitions: r.partitions.iter().map(|p| p.subpartitions).collect(),
            })
            .collect();
        let regions = graph
            .regions
            .all()
            .iter()
            .map(|r| ExplainedRegion {
                id: r.id.to_string(),
                subtasks: r.subtasks.iter().map(|&s| graph.subtasks[s]).collect(),
                slots: r.slots,
                inputs: r
                    .consumes
                    .iter()
                    .map(|p| format!("d{}/p{}", p.dataset, p.producer))
                    .collect(),
                deterministic: r.deterministic,
            })
            .collect();
        Ok(Self {
            job: job.name.clone(),
            vertices,
            edges,
            subtasks: graph.subtasks.len(),
            regions,
        })
    }

    /// The plan as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the plan serializes")
    }

    /// The plan in Graphviz's dot language: a box per vertex with its
    /// operators, parallelism and the pipelined regions its subtasks are
    /// in, and an arrow per edge labelled with its partitioner and mode
    /// (dashed when blocking: a region border).
    pub fn to_dot(&self) -> String {
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", quote(&self.job));
        let _ = writeln!(
            out,
            "  rankdir=LR;\n  node [shape=box, fontname=monospace];"
        );
        for v in &self.vertices {
            let regions: Vec<&str> = self
                .regions
                .iter()
                .filter(|r| r.subtasks.iter().any(|s| s.vertex == v.id))
                .map(|r| r.id.as_str())
                .collect();
            let mut label = format!(
                "{} (parallelism {}; regions {})",
                v.id,
                v.parallelism,
                regions.join(", ")
            );
            for op in &v.operators {
                label.push_str("\\l");
                label.push_str(&quote(op));
            }
            let _ = writeln!(out, "  \"{}\" [label=\"{label}\\l\"];", v.id);
        }
        for e in &self.edges {
            let style = match e.mode {
                ExchangeMode::Blocking => "dashed",
                ExchangeMode::Pipelined => "solid",
            };
            let _ = writeln!(
                out,
                "  \"{}\" -> \"{}\" [label=\"{} {}\", style={style}];",
                e.source,
                e.target,
                quote(&e.partitioner),
                e.mode
            );
        }
        let _ = writeln!(out, "}}");
        out
    }
}

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        writeln!(
            out,
            "== JobGraph: {} ({} vertices, {} edges)",
            self.job,
            self.vertices.len(),
            self.edges.len()
        )?;
        for v in &self.vertices {
            let bounded = match v.boundedness {
                Some(Boundedness::Bounded) => " bounded",
                Some(Boundedness::Unbounded) => " unbounded",
                None => "",
            };
            writeln!(out, "{} [parallelism {}{bounded}]", v.id, v.parallelism)?;
            for op in &v.operators {
                writeln!(out, "    {op}")?;
            }
        }
        for e in &self.edges {
            writeln!(
                out,
                "{} -> {}  {}  {}  (edge d{})",
                e.source, e.target, e.partitioner, e.mode, e.id
            )?;
        }
        writeln!(out)?;
        writeln!(out, "== ExecutionGraph ({} subtasks)", self.subtasks)?;
        for v in &self.vertices {
            writeln!(out, "{}: {}", v.id, join(&v.subtasks))?;
        }
        for e in &self.edges {
            writeln!(
                out,
                "d{}: {} -> {}  {} {}, {} partition(s), subpartitions {}",
                e.id,
                e.source,
                e.target,
                e.wiring,
                e.mode,
                e.partitions,
                join(&e.subpartitions)
            )?;
        }
        writeln!(out)?;
        writeln!(out, "== Pipelined regions ({})", self.regions.len())?;
        for r in &self.regions {
            let inputs = if r.inputs.is_empty() {
                "-".to_string()
            } else {
                r.inputs.join(", ")
            };
            writeln!(
                out,
                "{}: [{}]  slots {}  reads {}{}",
                r.id,
                join(&r.subtasks),
                r.slots,
                inputs,
                if r.deterministic {
                    ""
                } else {
                    "  (non-deterministic)"
                }
            )?;
        }
        f.write_str(out.trim_end())
    }
}
