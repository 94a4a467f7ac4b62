//! Pipelined regions: the subtasks that must run at the same time.
//!
//! Subtasks connected through pipelined edges form one region (union-find
//! over pipelined edges); blocking edges are region borders. Where blocking
//! edges would make regions depend on each other in a cycle, those regions
//! are merged. Regions are numbered in topological order: a region only
//! consumes blocking partitions of lower-numbered regions.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::Serialize;
use weir_engine::graph::ExchangeMode;

use crate::execution_graph::{ExecutionGraph, PartitionKey};

/// Identifies a pipelined region (its topological position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RegionId(pub u32);

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// One pipelined region.
#[derive(Debug, Clone, Serialize)]
pub struct PipelinedRegion {
    /// Its id.
    pub id: RegionId,
    /// Its subtasks (dense numbers), ascending.
    pub subtasks: Vec<usize>,
    /// Blocking partitions it reads.
    pub consumes: Vec<PartitionKey>,
    /// Blocking partitions it writes.
    pub produces: Vec<PartitionKey>,
    /// Slots it needs with slot sharing: its largest number of subtasks of
    /// one vertex.
    pub slots: usize,
    /// Whether running it again writes the same blocking partitions.
    pub deterministic: bool,
}

/// The pipelined regions of an execution graph.
#[derive(Debug, Clone, Default)]
pub struct Regions {
    regions: Vec<PipelinedRegion>,
    region_of: Vec<RegionId>,
    producer_of: HashMap<PartitionKey, RegionId>,
    consumers: Vec<BTreeSet<RegionId>>,
    widest_vertex: usize,
}

impl Regions {
    /// Computes the regions of `graph`.
    pub fn compute(graph: &ExecutionGraph) -> Self {
        let n = graph.subtasks.len();
        let mut sets = UnionFind::new(n);
        for result in &graph.results {
            if result.mode != ExchangeMode::Pipelined {
                continue;
            }
            for partition in &result.partitions {
                let producer = graph.dense(sub(result.producer, partition.producer));
                for &(consumer, _) in &partition.consumers {
                    sets.union(producer, graph.dense(sub(result.consumer, consumer)));
                }
            }
        }
        // Preliminary regions: the union-find roots.
        let mut root_index = HashMap::new();
        let mut prelim = vec![0usize; n];
        for (s, slot) in prelim.iter_mut().enumerate() {
            let root = sets.find(s);
            let next = root_index.len();
            *slot = *root_index.entry(root).or_insert(next);
        }
        let count = root_index.len();
        // Dependencies between preliminary regions through blocking edges.
        let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); count];
        for result in graph
            .results
            .iter()
            .filter(|r| r.mode == ExchangeMode::Blocking)
        {
            for partition in &result.partitions {
                let from = prelim[graph.dense(sub(result.producer, partition.producer))];
                for &(consumer, _) in &partition.consumers {
                    let to = prelim[graph.dense(sub(result.consumer, consumer))];
                    if from != to {
                        deps[from].insert(to);
                    }
                }
            }
        }
        // Merge cycles, then order topologically.
        let components = strongly_connected(&deps);
        let order = topological(&components, &deps, &prelim);
        let mut final_of_component = vec![0u32; order.len()];
        for (position, &component) in order.iter().enumerate() {
            final_of_component[component] = position as u32;
        }
        let region_of: Vec<RegionId> = prelim
            .iter()
            .map(|&p| RegionId(final_of_component[components.of[p]]))
            .collect();
        Self::assemble(graph, region_of, order.len())
    }

    fn assemble(graph: &ExecutionGraph, region_of: Vec<RegionId>, count: usize) -> Self {
        let mut regions: Vec<PipelinedRegion> = (0..count)
            .map(|i| PipelinedRegion {
                id: RegionId(i as u32),
                subtasks: Vec::new(),
                consumes: Vec::new(),
                produces: Vec::new(),
                slots: 0,
                deterministic: true,
            })
            .collect();
        for (s, r) in region_of.iter().enumerate() {
            regions[r.0 as usize].subtasks.push(s);
        }
        let mut producer_of = HashMap::new();
        let mut consumers = vec![BTreeSet::new(); count];
        for result in &graph.results {
            let deterministic_edge = result.partitioner.is_deterministic();
            for partition in &result.partitions {
                let producer = region_of[graph.dense(sub(result.producer, partition.producer))];
                if !deterministic_edge {
                    regions[producer.0 as usize].deterministic = false;
                }
                if result.mode != ExchangeMode::Blocking {
                    continue;
                }
                let key = PartitionKey {
                    dataset: result.dataset,
                    producer: partition.producer,
                };
                producer_of.insert(key, producer);
                regions[producer.0 as usize].produces.push(key);
                for &(consumer, _) in &partition.consumers {
                    let region = region_of[graph.dense(sub(result.consumer, consumer))];
                    let consumes = &mut regions[region.0 as usize].consumes;
                    if !consumes.contains(&key) {
                        consumes.push(key);
                    }
                    consumers[producer.0 as usize].insert(region);
                }
            }
        }
        for region in &mut regions {
            let mut per_vertex: HashMap<_, usize> = HashMap::new();
            for &s in &region.subtasks {
                let vertex = graph.subtasks[s].vertex;
                *per_vertex.entry(vertex).or_default() += 1;
                if !graph.job.vertex(vertex).chain.is_deterministic() {
                    region.deterministic = false;
                }
            }
            region.slots = per_vertex.values().copied().max().unwrap_or(0);
            region.consumes.sort();
        }
        let widest_vertex = graph
            .job
            .vertices
            .iter()
            .map(|v| v.parallelism)
            .max()
            .unwrap_or(0);
        Self {
            regions,
            region_of,
            producer_of,
            consumers,
            widest_vertex,
        }
    }

    /// All regions, in topological order.
    pub fn all(&self) -> &[PipelinedRegion] {
        &self.regions
    }

    /// One region.
    pub fn get(&self, id: RegionId) -> &PipelinedRegion {
        &self.regions[id.0 as usize]
    }

    /// The number of regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether there are no regions.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// The largest parallelism of a vertex: the slots needed to run every
    /// region at once with slot sharing.
    pub fn widest_vertex(&self) -> usize {
        self.widest_vertex
    }

    /// The region of a subtask (dense number).
    pub fn region_of(&self, subtask: usize) -> RegionId {
        self.region_of[subtask]
    }

    /// The region that writes a blocking partition.
    pub fn producer_of(&self, partition: PartitionKey) -> Option<RegionId> {
        self.producer_of.get(&partition).copied()
    }

    /// The regions that read blocking partitions of `region`.
    pub fn consumers_of(&self, region: RegionId) -> &BTreeSet<RegionId> {
        &self.consumers[region.0 as usize]
    }
}

fn sub(vertex: weir_engine::graph::VertexId, index: u32) -> crate::SubtaskId {
    crate::SubtaskId { vertex, index }
}

struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (low, high) = (ra.min(rb), ra.max(rb));
            self.parent[high] = low;
        }
    }
}

/// Strongly connected components (Tarjan, iterative).
struct Components {
    of: Vec<usize>,
    count: usize,
}

fn strongly_connected(deps: &[BTreeSet<usize>]) -> Components {
    let n = deps.len();
    let adjacency: Vec<Vec<usize>> = deps.iter().map(|d| d.iter().copied().collect()).collect();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut of = vec![usize::MAX; n];
    let mut count = 0;
    let mut next_index = 0;
    for start in 0..n {
        if index[start] != usize::MAX {
            continue;
        }
        let mut work = vec![(start, 0usize)];
        while let Some(&mut (v, ref mut edge)) = work.last_mut() {
            if *edge == 0 && index[v] == usize::MAX {
                index[v] = next_index;
                low[v] = next_index;
                next_index += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = adjacency[v].get(*edge) {
                *edge += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == index[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    of[w] = count;
                    if w == v {
                        break;
                    }
                }
                count += 1;
            }
        }
    }
    Components { of, count }
}

/// Orders components so that every dependency goes forward; ties are broken
/// by the smallest subtask, so the order is stable.
fn topological(components: &Components, deps: &[BTreeSet<usize>], prelim: &[usize]) -> Vec<usize> {
    let count = components.count;
    let mut first_subtask = vec![usize::MAX; count];
    for (s, &p) in prelim.iter().enumerate() {
        let c = components.of[p];
        first_subtask[c] = first_subtask[c].min(s);
    }
    let mut edges = vec![BTreeSet::new(); count];
    let mut indegree = vec![0usize; count];
    for (from, targets) in deps.iter().enumerate() {
        for &to in targets {
            let (cf, ct) = (components.of[from], components.of[to]);
            if cf != ct && edges[cf].insert(ct) {
                indegree[ct] += 1;
            }
        }
    }
    let mut ready: BTreeSet<(usize, usize)> = (0..count)
        .filter(|&c| indegree[c] == 0)
        .map(|c| (first_subtask[c], c))
        .collect();
    let mut order = Vec::with_capacity(count);
    while let Some((_, c)) = ready.pop_first() {
        order.push(c);
        for &next in &edges[c] {
            indegree[next] -= 1;
            if indegree[next] == 0 {
                ready.insert((first_subtask[next], next));
            }
        }
    }
    order
}
