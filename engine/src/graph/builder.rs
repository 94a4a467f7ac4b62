//! Assembling a [`JobGraph`] from sources, operators and sinks.

use std::sync::Arc;

use weir_exchange::Partitioner;

use super::{Chain, ExchangeMode, JobEdge, JobGraph, JobVertex, RuntimeMode, VertexId};
use crate::event_time::WatermarkStrategy;
use crate::{Boundedness, Error, OperatorFactory, Result, SinkFactory, SourceFactory};

/// A node added to a [`JobBuilder`]: a source, an operator or a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeId(usize);

/// An input of a node: where it reads from and how records get there.
#[derive(Debug, Clone)]
pub struct Input {
    from: NodeId,
    partitioner: Partitioner,
    mode: Option<ExchangeMode>,
}

impl NodeId {
    /// Reads this node's output one-to-one (equal parallelism); chained into
    /// one task when possible.
    pub fn forward(self) -> Input {
        self.with(Partitioner::Forward)
    }

    /// Reads this node's output partitioned by the hash of `keys`.
    pub fn hash<S: Into<String>>(self, keys: impl IntoIterator<Item = S>) -> Input {
        self.with(Partitioner::hash(keys))
    }

    /// Reads this node's output round-robin over all consumers.
    pub fn rebalance(self) -> Input {
        self.with(Partitioner::Rebalance)
    }

    /// Reads this node's output round-robin over a pointwise subset.
    pub fn rescale(self) -> Input {
        self.with(Partitioner::Rescale)
    }

    /// Every consumer reads all of this node's output.
    pub fn broadcast(self) -> Input {
        self.with(Partitioner::Broadcast)
    }

    /// Reads this node's output with the given partitioner.
    pub fn with(self, partitioner: Partitioner) -> Input {
        Input {
            from: self,
            partitioner,
            mode: None,
        }
    }
}

impl Input {
    /// Forces a blocking exchange on this input, whatever the shuffle mode.
    pub fn blocking(mut self) -> Self {
        self.mode = Some(ExchangeMode::Blocking);
        self
    }

    /// Forces a pipelined exchange on this input, whatever the shuffle mode.
    pub fn pipelined(mut self) -> Self {
        self.mode = Some(ExchangeMode::Pipelined);
        self
    }
}

/// Which exchange mode edges get when the job does not say
/// (`execution.batch-shuffle-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShuffleMode {
    /// Every exchange of a bounded job is blocking (default for batch).
    #[default]
    AllBlocking,
    /// Every exchange is pipelined.
    AllPipelined,
    /// Pipelined when the slots can run the whole job at once, blocking
    /// otherwise.
    Auto,
}

impl std::str::FromStr for ShuffleMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all-blocking" => Ok(ShuffleMode::AllBlocking),
            "all-pipelined" => Ok(ShuffleMode::AllPipelined),
            "auto" => Ok(ShuffleMode::Auto),
            other => Err(format!(
                "unknown batch shuffle mode '{other}' (valid: all-blocking, all-pipelined, auto)"
            )),
        }
    }
}

impl std::fmt::Display for ShuffleMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ShuffleMode::AllBlocking => "all-blocking",
            ShuffleMode::AllPipelined => "all-pipelined",
            ShuffleMode::Auto => "auto",
        })
    }
}

#[derive(Debug, Clone)]
enum NodeKind {
    Source(Arc<dyn SourceFactory>),
    Operator(Arc<dyn OperatorFactory>),
    Sink(Arc<dyn SinkFactory>),
}

#[derive(Debug, Clone)]
struct Node {
    kind: NodeKind,
    parallelism: Option<usize>,
    inputs: Vec<Input>,
    watermarks: Option<WatermarkStrategy>,
    late_sink: Option<Arc<dyn SinkFactory>>,
}

/// Assembles a job from sources, operators and sinks.
///
/// ```ignore
/// let mut job = JobBuilder::new("count");
/// let numbers = job.source(generator);
/// let counted = job.operator(count, [numbers.hash(["key"])]);
/// job.sink(collect, [counted.forward()]);
/// let graph = job.build(ShuffleMode::AllBlocking, slots)?;
/// ```
#[derive(Debug, Clone)]
pub struct JobBuilder {
    name: String,
    nodes: Vec<Node>,
    parallelism: usize,
    max_parallelism: usize,
    chaining: bool,
    mode: Option<RuntimeMode>,
}

impl JobBuilder {
    /// A new, empty job.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            nodes: Vec::new(),
            parallelism: 1,
            max_parallelism: weir_exchange::partitioner::DEFAULT_MAX_PARALLELISM,
            chaining: true,
            mode: None,
        }
    }

    /// Runs the job in `mode`; `None` (the default) picks streaming when a
    /// source is unbounded and batch otherwise.
    pub fn with_runtime_mode(mut self, mode: Option<RuntimeMode>) -> Self {
        self.mode = mode;
        self
    }

    /// The parallelism of nodes that do not set their own.
    pub fn with_parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism.max(1);
        self
    }

    /// The number of key groups of hash exchanges (the largest parallelism a
    /// keyed vertex can have).
    pub fn with_max_parallelism(mut self, max_parallelism: usize) -> Self {
        self.max_parallelism = max_parallelism.max(1);
        self
    }

    /// Switches operator chaining on or off (on by default).
    pub fn with_chaining(mut self, chaining: bool) -> Self {
        self.chaining = chaining;
        self
    }

    /// Adds a source.
    pub fn source(&mut self, factory: Arc<dyn SourceFactory>) -> NodeId {
        self.push(NodeKind::Source(factory), Vec::new())
    }

    /// Adds an operator reading `inputs` (input `i` of the operator is the
    /// `i`-th element).
    pub fn operator(
        &mut self,
        factory: Arc<dyn OperatorFactory>,
        inputs: impl IntoIterator<Item = Input>,
    ) -> NodeId {
        self.push(NodeKind::Operator(factory), inputs.into_iter().collect())
    }

    /// Adds a sink reading `inputs`.
    pub fn sink(
        &mut self,
        factory: Arc<dyn SinkFactory>,
        inputs: impl IntoIterator<Item = Input>,
    ) -> NodeId {
        self.push(NodeKind::Sink(factory), inputs.into_iter().collect())
    }

    /// Makes the tasks of source `node` generate watermarks as `strategy`
    /// says.
    ///
    /// # Errors
    /// [`Error::Plan`] when `node` is not a source.
    pub fn set_watermarks(&mut self, node: NodeId, strategy: WatermarkStrategy) -> Result<()> {
        if !matches!(self.nodes[node.0].kind, NodeKind::Source(_)) {
            return Err(Error::Plan(format!(
                "watermarks are generated by sources, and '{}' is not one",
                self.name_of(node.0)
            )));
        }
        self.nodes[node.0].watermarks = Some(strategy);
        Ok(())
    }

    /// Sends the records operator `node` finds too late to `sink` (a side
    /// output written with the operator's task) instead of dropping them.
    ///
    /// # Errors
    /// [`Error::Plan`] when `node` is not an operator.
    pub fn set_late_sink(&mut self, node: NodeId, sink: Arc<dyn SinkFactory>) -> Result<()> {
        if !matches!(self.nodes[node.0].kind, NodeKind::Operator(_)) {
            return Err(Error::Plan(format!(
                "late records come from operators, and '{}' is not one",
                self.name_of(node.0)
            )));
        }
        self.nodes[node.0].late_sink = Some(sink);
        Ok(())
    }

    /// Sets the parallelism of one node.
    pub fn set_parallelism(&mut self, node: NodeId, parallelism: usize) {
        self.nodes[node.0].parallelism = Some(parallelism.max(1));
    }

    fn push(&mut self, kind: NodeKind, inputs: Vec<Input>) -> NodeId {
        self.nodes.push(Node {
            kind,
            parallelism: None,
            inputs,
            watermarks: None,
            late_sink: None,
        });
        NodeId(self.nodes.len() - 1)
    }

    fn parallelism_of(&self, node: usize) -> usize {
        self.nodes[node].parallelism.unwrap_or(self.parallelism)
    }

    fn name_of(&self, node: usize) -> String {
        match &self.nodes[node].kind {
            NodeKind::Source(f) => f.name(),
            NodeKind::Operator(f) => f.name(),
            NodeKind::Sink(f) => f.name(),
        }
    }

    /// Builds the job graph: chains forward edges of equal parallelism and
    /// resolves the exchange mode of every other edge.
    ///
    /// `slots` is what the cluster offers, used by [`ShuffleMode::Auto`].
    ///
    /// # Errors
    /// A job without sources, a node without inputs, a forward edge between
    /// different parallelisms, a blocking edge in a streaming job, an
    /// unbounded source in a batch job, or a keyed edge whose consumer
    /// exceeds the max parallelism.
    pub fn build(&self, shuffle_mode: ShuffleMode, slots: usize) -> Result<JobGraph> {
        self.validate()?;
        let unbounded = self.nodes.iter().position(|n| match &n.kind {
            NodeKind::Source(s) => s.boundedness() == Boundedness::Unbounded,
            _ => false,
        });
        let mode = match (self.mode, unbounded) {
            (Some(RuntimeMode::Batch), Some(source)) => {
                return Err(Error::Plan(format!(
                    "source '{}' is unbounded, so the job cannot run in batch mode: \
                     run it in streaming mode (execution.runtime-mode = streaming)",
                    self.name_of(source)
                )));
            }
            (Some(mode), _) => mode,
            (None, Some(_)) => RuntimeMode::Streaming,
            (None, None) => RuntimeMode::Batch,
        };
        let streaming = mode == RuntimeMode::Streaming;
        let default_mode = if streaming {
            ExchangeMode::Pipelined
        } else {
            match shuffle_mode {
                ShuffleMode::AllBlocking => ExchangeMode::Blocking,
                ShuffleMode::AllPipelined => ExchangeMode::Pipelined,
                ShuffleMode::Auto => {
                    let widest = (0..self.nodes.len()).map(|n| self.parallelism_of(n)).max();
                    if widest.unwrap_or(1) <= slots {
                        ExchangeMode::Pipelined
                    } else {
                        ExchangeMode::Blocking
                    }
                }
            }
        };

        // Assign every node to a chain. Nodes were added after their inputs,
        // so one pass in order sees every input's chain first.
        let mut out_degree = vec![0usize; self.nodes.len()];
        for node in &self.nodes {
            for input in &node.inputs {
                out_degree[input.from.0] += 1;
            }
        }
        let mut chain_of = vec![usize::MAX; self.nodes.len()];
        let mut chains: Vec<Vec<usize>> = Vec::new();
        for (id, node) in self.nodes.iter().enumerate() {
            let chained_to = match node.inputs.as_slice() {
                [only] if self.chainable(only, id, out_degree[only.from.0]) => Some(only.from.0),
                _ => None,
            };
            match chained_to {
                Some(prev) => {
                    chain_of[id] = chain_of[prev];
                    chains[chain_of[prev]].push(id);
                }
                None => {
                    chain_of[id] = chains.len();
                    chains.push(vec![id]);
                }
            }
        }

        let vertices = chains
            .iter()
            .enumerate()
            .map(|(i, nodes)| self.vertex(VertexId(i as u32), nodes))
            .collect::<Vec<_>>();

        let mut edges = Vec::new();
        for (id, node) in self.nodes.iter().enumerate() {
            for (input_index, input) in node.inputs.iter().enumerate() {
                let (from, to) = (chain_of[input.from.0], chain_of[id]);
                if from == to {
                    continue;
                }
                let exchange = input.mode.unwrap_or(default_mode);
                if exchange == ExchangeMode::Blocking && streaming {
                    return Err(Error::Plan(format!(
                        "'{}' reads '{}' through a blocking exchange, but the job runs in \
                         streaming mode: streaming jobs need pipelined exchanges",
                        self.name_of(id),
                        self.name_of(input.from.0)
                    )));
                }
                edges.push(JobEdge {
                    id: edges.len() as u32,
                    source: VertexId(from as u32),
                    target: VertexId(to as u32),
                    target_input: input_index,
                    partitioner: match &input.partitioner {
                        Partitioner::Hash { keys, .. } => Partitioner::Hash {
                            keys: keys.clone(),
                            max_parallelism: self.max_parallelism,
                        },
                        other => other.clone(),
                    },
                    mode: exchange,
                });
            }
        }
        Ok(JobGraph {
            name: self.name.clone(),
            vertices,
            edges,
            max_parallelism: self.max_parallelism,
            mode,
        })
    }

    fn chainable(&self, input: &Input, to: usize, from_out_degree: usize) -> bool {
        self.chaining
            && input.partitioner == Partitioner::Forward
            && input.mode != Some(ExchangeMode::Blocking)
            && from_out_degree == 1
            && self.parallelism_of(input.from.0) == self.parallelism_of(to)
    }

    fn validate(&self) -> Result<()> {
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Source(_)))
        {
            return Err(Error::Plan(format!("job '{}' has no source", self.name)));
        }
        for (id, node) in self.nodes.iter().enumerate() {
            let name = self.name_of(id);
            if let (NodeKind::Source(source), Some(strategy)) = (&node.kind, &node.watermarks) {
                strategy.column_index(&source.schema())?;
            }
            match (&node.kind, node.inputs.is_empty()) {
                (NodeKind::Source(_), false) => {
                    return Err(Error::Plan(format!("source '{name}' cannot have inputs")));
                }
                (NodeKind::Operator(_) | NodeKind::Sink(_), true) => {
                    return Err(Error::Plan(format!("'{name}' has no input")));
                }
                _ => {}
            }
            for input in &node.inputs {
                let from = input.from.0;
                if matches!(self.nodes[from].kind, NodeKind::Sink(_)) {
                    return Err(Error::Plan(format!(
                        "'{name}' reads from sink '{}': sinks have no output",
                        self.name_of(from)
                    )));
                }
                let (p_from, p_to) = (self.parallelism_of(from), self.parallelism_of(id));
                if input.partitioner == Partitioner::Forward && p_from != p_to {
                    return Err(Error::Plan(format!(
                        "forward edge '{}' -> '{name}' joins parallelism {p_from} to {p_to}: \
                         use rebalance, rescale or hash",
                        self.name_of(from)
                    )));
                }
                if matches!(input.partitioner, Partitioner::Hash { .. })
                    && p_to > self.max_parallelism
                {
                    return Err(Error::Plan(format!(
                        "'{name}' has parallelism {p_to}, more than the max parallelism {}",
                        self.max_parallelism
                    )));
                }
            }
        }
        Ok(())
    }

    fn vertex(&self, id: VertexId, nodes: &[usize]) -> JobVertex {
        let mut chain = Chain::default();
        for &n in nodes {
            match &self.nodes[n].kind {
                NodeKind::Source(f) => {
                    chain.source = Some(Arc::clone(f));
                    chain.watermarks.clone_from(&self.nodes[n].watermarks);
                }
                NodeKind::Operator(f) => {
                    chain.operators.push(Arc::clone(f));
                    if let Some(late) = &self.nodes[n].late_sink {
                        chain.late_sink = Some(Arc::clone(late));
                    }
                }
                NodeKind::Sink(f) => chain.sink = Some(Arc::clone(f)),
            }
        }
        JobVertex {
            id,
            name: chain.names().join(" -> "),
            parallelism: self.parallelism_of(nodes[0]),
            chain,
        }
    }
}
