//! The execution graph: a job graph expanded into subtasks and result
//! partitions.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use weir_engine::graph::{ExchangeMode, JobGraph, VertexId};
use weir_exchange::Partitioner;

use crate::{Error, Result};

/// One subtask: a vertex and an index below its parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubtaskId {
    /// The vertex.
    pub vertex: VertexId,
    /// The subtask's index within the vertex.
    pub index: u32,
}

impl fmt::Display for SubtaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.vertex, self.index)
    }
}

impl Serialize for SubtaskId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Identifies a blocking or pipelined result partition: the output of one
/// producer subtask on one edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct PartitionKey {
    /// The edge (dataset).
    pub dataset: u32,
    /// The producer subtask's index.
    pub producer: u32,
}

/// The output of one producer subtask on one edge and who reads it.
#[derive(Debug, Clone, Serialize)]
pub struct ResultPartition {
    /// The producer subtask's index.
    pub producer: u32,
    /// Number of subpartitions (one per consumer it feeds).
    pub subpartitions: usize,
    /// `(consumer subtask index, subpartition)` pairs.
    pub consumers: Vec<(u32, usize)>,
}

/// One edge of the job, expanded: the result partitions of every producer
/// subtask.
#[derive(Debug, Clone, Serialize)]
pub struct IntermediateResult {
    /// The edge's id (dataset id).
    pub dataset: u32,
    /// The producing vertex.
    pub producer: VertexId,
    /// The consuming vertex.
    pub consumer: VertexId,
    /// Which input of the consumer.
    pub consumer_input: usize,
    /// How records are distributed.
    pub partitioner: Partitioner,
    /// Pipelined or blocking.
    pub mode: ExchangeMode,
    /// One partition per producer subtask.
    pub partitions: Vec<ResultPartition>,
}

/// A job graph expanded into subtasks and partitions.
#[derive(Debug, Clone)]
pub struct ExecutionGraph {
    /// The job graph.
    pub job: Arc<JobGraph>,
    /// Every subtask, numbered densely vertex by vertex.
    pub subtasks: Vec<SubtaskId>,
    /// The first dense number of each vertex.
    vertex_offsets: Vec<usize>,
    /// One result per edge, indexed by dataset id.
    pub results: Vec<IntermediateResult>,
    /// The pipelined regions of the subtasks.
    pub regions: crate::Regions,
}

impl ExecutionGraph {
    /// Expands `job`.
    ///
    /// # Errors
    /// A forward edge between vertices of different parallelism.
    pub fn try_new(job: Arc<JobGraph>) -> Result<Self> {
        let mut subtasks = Vec::new();
        let mut vertex_offsets = Vec::new();
        for vertex in &job.vertices {
            vertex_offsets.push(subtasks.len());
            subtasks.extend((0..vertex.parallelism as u32).map(|index| SubtaskId {
                vertex: vertex.id,
                index,
            }));
        }
        let results = job
            .edges
            .iter()
            .map(|edge| {
                let p = job.vertex(edge.source).parallelism;
                let c = job.vertex(edge.target).parallelism;
                let partitions =
                    wire(&edge.partitioner, p, c).map_err(|reason| Error::Unschedulable {
                        job: job.name.clone(),
                        reason: format!("edge {} -> {}: {reason}", edge.source, edge.target),
                    })?;
                Ok(IntermediateResult {
                    dataset: edge.id,
                    producer: edge.source,
                    consumer: edge.target,
                    consumer_input: edge.target_input,
                    partitioner: edge.partitioner.clone(),
                    mode: edge.mode,
                    partitions,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut graph = Self {
            job,
            subtasks,
            vertex_offsets,
            results,
            regions: crate::Regions::default(),
        };
        graph.pipeline_blocking_cycles();
        Ok(graph)
    }

    /// Computes the regions. A blocking edge whose producer and consumer
    /// ended up in one region (regions that depended on each other in a cycle
    /// were merged) cannot wait for itself: such edges become pipelined and
    /// the regions are computed again.
    fn pipeline_blocking_cycles(&mut self) {
        loop {
            let regions = crate::Regions::compute(self);
            let inside = self.results.iter().position(|r| {
                r.mode == ExchangeMode::Blocking
                    && r.partitions.iter().any(|p| {
                        let producer = regions.region_of(self.dense(SubtaskId {
                            vertex: r.producer,
                            index: p.producer,
                        }));
                        p.consumers.iter().any(|&(c, _)| {
                            regions.region_of(self.dense(SubtaskId {
                                vertex: r.consumer,
                                index: c,
                            })) == producer
                        })
                    })
            });
            match inside {
                Some(i) => self.results[i].mode = ExchangeMode::Pipelined,
                None => {
                    self.regions = regions;
                    return;
                }
            }
        }
    }

    /// The dense number of a subtask.
    pub fn dense(&self, id: SubtaskId) -> usize {
        self.vertex_offsets[id.vertex.0 as usize] + id.index as usize
    }

    /// The channels subtask `consumer` of the consuming vertex reads from
    /// `result`: `(producer index, subpartition)` in producer order.
    pub fn consumed_channels(
        &self,
        result: &IntermediateResult,
        consumer: u32,
    ) -> Vec<(u32, usize)> {
        result
            .partitions
            .iter()
            .flat_map(|p| {
                p.consumers
                    .iter()
                    .filter(|(c, _)| *c == consumer)
                    .map(move |(_, sub)| (p.producer, *sub))
            })
            .collect()
    }

    /// The results read by `vertex`, ordered by its input number.
    pub fn inputs_of(&self, vertex: VertexId) -> Vec<&IntermediateResult> {
        let mut inputs: Vec<_> = self
            .results
            .iter()
            .filter(|r| r.consumer == vertex)
            .collect();
        inputs.sort_by_key(|r| (r.consumer_input, r.dataset));
        inputs
    }

    /// The results written by `vertex`.
    pub fn outputs_of(&self, vertex: VertexId) -> Vec<&IntermediateResult> {
        self.results
            .iter()
            .filter(|r| r.producer == vertex)
            .collect()
    }
}

/// Wires `p` producer subtasks to `c` consumer subtasks.
fn wire(
    partitioner: &Partitioner,
    p: usize,
    c: usize,
) -> std::result::Result<Vec<ResultPartition>, String> {
    if partitioner.is_all_to_all() {
        return Ok((0..p as u32)
            .map(|producer| ResultPartition {
                producer,
                subpartitions: c,
                consumers: (0..c as u32)
                    .map(|consumer| (consumer, consumer as usize))
                    .collect(),
            })
            .collect());
    }
    if *partitioner == Partitioner::Forward && p != c {
        return Err(format!("forward needs equal parallelism, not {p} and {c}"));
    }
    // Pointwise: with fewer producers, each feeds a contiguous range of
    // consumers; with more, each consumer reads a contiguous range of
    // producers.
    Ok((0..p)
        .map(|producer| {
            let consumers: Vec<(u32, usize)> = if p >= c {
                vec![((producer * c / p) as u32, 0)]
            } else {
                let (start, end) = ((producer * c).div_ceil(p), ((producer + 1) * c).div_ceil(p));
                (start..end)
                    .enumerate()
                    .map(|(sub, consumer)| (consumer as u32, sub))
                    .collect()
            };
            ResultPartition {
                producer: producer as u32,
                subpartitions: consumers.len(),
                consumers,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumers_of(parts: &[ResultPartition]) -> Vec<Vec<u32>> {
        parts
            .iter()
            .map(|p| p.consumers.iter().map(|c| c.0).collect())
            .collect()
    }

    #[test]
    fn pointwise_wiring_covers_every_consumer_once() {
        let up = wire(&Partitioner::Rescale, 2, 5).unwrap();
        assert_eq!(consumers_of(&up), vec![vec![0, 1, 2], vec![3, 4]]);
        let down = wire(&Partitioner::Rescale, 5, 2).unwrap();
        assert_eq!(
            consumers_of(&down),
            vec![vec![0], vec![0], vec![0], vec![1], vec![1]]
        );
        let fwd = wire(&Partitioner::Forward, 3, 3).unwrap();
        assert_eq!(consumers_of(&fwd), vec![vec![0], vec![1], vec![2]]);
        assert!(wire(&Partitioner::Forward, 3, 2).is_err());
    }

    #[test]
    fn all_to_all_wiring_gives_every_consumer_its_subpartition() {
        let parts = wire(&Partitioner::hash(["k"]), 2, 3).unwrap();
        assert_eq!(parts.len(), 2);
        assert!(
            parts
                .iter()
                .all(|p| p.subpartitions == 3 && p.consumers == vec![(0, 0), (1, 1), (2, 2)])
        );
    }
}
