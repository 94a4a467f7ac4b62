//! What a job master decides about each attempt it deploys (an
//! [`AttemptPlan`]), and how the side that runs attempts turns the plans of
//! a region into task deployments ([`JobRuntime::materialize`]).
//!
//! The split is the seam of the cluster: a plan holds only what the job
//! master decides while the job runs (attempt numbers, which attempt of
//! each blocking input to read, the memory budget, the state to resume
//! from), so it crosses the network as a few numbers; the runtime rebuilds
//! everything else (operator chains, channels, partitioners, files) from
//! the job's execution graph, which both sides hold.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use weir_engine::checkpoint::{CheckpointAck, CheckpointSetup, TaskRestore};
use weir_engine::graph::ExchangeMode;
use weir_engine::memory::{MemoryConfig, MemoryPool};
use weir_engine::task::{
    Counters, InputChannel, LiveMetrics, OutputSpec, OutputTarget, ScanProgress, TaskDeployment,
    TaskHook, TaskInfo,
};
use weir_exchange::ResultPartitionId;
use weir_exchange::ShuffleRoot;
use weir_exchange::blocking::BlockingOptions;
use weir_exchange::channel::{ChannelBounds, ChannelReceiver, ChannelSender, pipelined_channel};
use weir_exchange::checkpoint_store::CheckpointStore;
use weir_exchange::event::Barrier;
use weir_exchange::remote::{
    ChannelKey, ExchangeRegistry, RemoteAccess, RemoteInput, remote_input, served_partitions,
};

use crate::execution_graph::{ExecutionGraph, IntermediateResult};
use crate::partition_tracker::PartitionRead;
use crate::{JobConfig, SubtaskId};

/// What the job master decided about one attempt of a subtask.
#[derive(Debug)]
pub struct AttemptPlan {
    /// The subtask, by its dense index in the execution graph.
    pub subtask: usize,
    /// The subtask, by vertex and index.
    pub id: SubtaskId,
    /// Which attempt of it this is.
    pub attempt: u32,
    /// Where it reads each blocking partition it reads, by dataset and
    /// producer index.
    pub reads: BTreeMap<(u32, u32), PartitionRead>,
    /// The bytes its stateful operators may reserve together.
    pub memory_budget: usize,
    /// What it resumes from, when the job restarted from a checkpoint.
    pub restore: Option<TaskRestore>,
    /// What the job master watches it through.
    pub handles: AttemptHandles,
}

/// What a job master watches an attempt through: shared with the task
/// when it runs in this process, kept up to date from the worker's reports
/// when it runs on one.
#[derive(Debug, Default)]
pub struct AttemptHandles {
    /// Its records and bytes so far.
    pub metrics: LiveMetrics,
    /// Its named counters so far.
    pub counters: Counters,
    /// The input rows its source covered, for a source subtask.
    pub scanned: ScanProgress,
    /// Where it acknowledges checkpoints, in a job that takes them.
    pub acks: Option<UnboundedSender<CheckpointAck>>,
    /// The barriers to inject, for a source subtask of a job that takes
    /// checkpoints.
    pub triggers: Option<UnboundedReceiver<Barrier>>,
    /// A test's hook into the task, when it runs in this process (a hook
    /// never crosses to a worker).
    pub hook: Option<Arc<dyn TaskHook>>,
}

/// How attempts deployed in this process reach the attempts of their
/// region that run in others: their pipelined channels cross over Arrow
/// Flight.
#[derive(Debug, Clone)]
pub struct RemoteWiring {
    /// Where this process offers its outgoing remote channels.
    pub registry: Arc<ExchangeRegistry>,
    /// The attempts of the region that run elsewhere, by dense subtask.
    pub peers: HashMap<usize, Peer>,
    /// How this process calls the others' exchange services.
    pub access: RemoteAccess,
}

/// An attempt of a subtask that runs in another process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its process's exchange service, as `http://HOST:PORT`.
    pub address: String,
    /// Its attempt.
    pub attempt: u32,
}

/// The ends of what attempts deployed together exchange, made once for
/// all of them.
struct Wires {
    /// The senders of each producer's pipelined channels, by dataset and
    /// producer.
    senders: HashMap<(u32, u32), Vec<ChannelSender>>,
    /// The receivers of pipelined channels, by dataset, consumer and
    /// producer.
    receivers: HashMap<(u32, u32, u32), ChannelReceiver>,
    /// The roots of the processes serving partitions read, by address.
    served: HashMap<Arc<str>, ShuffleRoot>,
}

/// An attempt ready to run.
pub struct Attempt {
    /// The subtask, by its dense index in the execution graph.
    pub subtask: usize,
    /// Which attempt of it this is.
    pub attempt: u32,
    /// What it runs, and where its data comes from and goes.
    pub deployment: TaskDeployment,
}

/// What every attempt of a job shares, wherever it runs: the job's
/// execution graph and where its files go.
#[derive(Debug)]
pub struct JobRuntime {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The job, expanded.
    pub graph: Arc<ExecutionGraph>,
    /// Where blocking partitions are written.
    pub root: ShuffleRoot,
    /// How blocking partitions are written.
    pub blocking: BlockingOptions,
    /// The bounds of pipelined channels.
    pub channel: ChannelBounds,
    /// Whether operators over budget spill.
    pub spill: bool,
    /// The job's own spill directory.
    pub spill_dir: PathBuf,
    /// Where the job's checkpoints go and their directory there, for a job
    /// that takes them.
    pub checkpoints: Option<(CheckpointStore, String)>,
}

impl JobRuntime {
    /// The runtime of job `job_id` with `config`, its partitions under
    /// `root`.
    pub fn new(
        job_id: Arc<str>,
        graph: Arc<ExecutionGraph>,
        root: ShuffleRoot,
        config: &JobConfig,
        checkpoints: Option<(CheckpointStore, String)>,
    ) -> Self {
        Self {
            spill_dir: config.spill_dir.join(&*job_id),
            job_id,
            graph,
            root,
            blocking: config.blocking.clone(),
            channel: config.channel,
            spill: config.spill,
            checkpoints,
        }
    }

    /// The deployments of attempts deployed together (a region, or the
    /// part of one that runs in this process): the pipelined channels
    /// between them are made here, so each producer holds its senders and
    /// each consumer its receivers.
    pub fn materialize(&self, plans: Vec<AttemptPlan>) -> Vec<Attempt> {
        self.materialize_with(plans, None)
    }

    /// The deployments of attempts deployed together in this process,
    /// the rest of their region running in others as `remote` says: the
    /// pipelined channels between two of them here stay in memory, those
    /// to or from another process cross over Arrow Flight.
    ///
    /// # Panics
    /// A channel crosses to a subtask that is neither here nor among the
    /// peers of `remote`.
    pub fn materialize_with(
        &self,
        plans: Vec<AttemptPlan>,
        remote: Option<&RemoteWiring>,
    ) -> Vec<Attempt> {
        let mut senders: HashMap<(u32, u32), Vec<ChannelSender>> = HashMap::new();
        let mut receivers: HashMap<(u32, u32, u32), ChannelReceiver> = HashMap::new();
        let here: HashSet<usize> = plans.iter().map(|p| p.subtask).collect();
        for plan in &plans {
            for result in self.graph.outputs_of(plan.id.vertex) {
                if result.mode != ExchangeMode::Pipelined {
                    continue;
                }
                let partition = &result.partitions[plan.id.index as usize];
                let mut channels: Vec<Option<ChannelSender>> =
                    (0..partition.subpartitions).map(|_| None).collect();
                for &(consumer, subpartition) in &partition.consumers {
                    let (tx, rx) = pipelined_channel(self.channel);
                    channels[subpartition] = Some(tx);
                    let dense = self.graph.dense(SubtaskId {
                        vertex: result.consumer,
                        index: consumer,
                    });
                    if here.contains(&dense) {
                        receivers.insert((result.dataset, consumer, plan.id.index), rx);
                        continue;
                    }
                    let remote = remote.expect("a consumer elsewhere comes with its wiring");
                    let key = ChannelKey {
                        job: self.job_id.to_string(),
                        dataset: result.dataset,
                        producer: plan.id.index,
                        consumer,
                        attempt: plan.attempt,
                    };
                    remote.registry.register(key, rx);
                }
                senders.insert(
                    (result.dataset, plan.id.index),
                    channels
                        .into_iter()
                        .map(|c| c.expect("every subpartition has a consumer"))
                        .collect(),
                );
            }
        }
        let mut wires = Wires {
            senders,
            receivers,
            served: HashMap::new(),
        };
        plans
            .into_iter()
            .map(|plan| Attempt {
                subtask: plan.subtask,
                attempt: plan.attempt,
                deployment: self.deployment(plan, &mut wires, remote),
            })
            .collect()
    }

    /// The consuming end of the pipelined channel from subtask `producer`
    /// of `result` to subtask `consumer`: made with its producer here,
    /// else read from its producer's process.
    fn pipelined_input(
        &self,
        result: &IntermediateResult,
        producer: u32,
        consumer: u32,
        receivers: &mut HashMap<(u32, u32, u32), ChannelReceiver>,
        remote: Option<&RemoteWiring>,
    ) -> ChannelReceiver {
        if let Some(receiver) = receivers.remove(&(result.dataset, consumer, producer)) {
            return receiver;
        }
        let remote = remote.expect("a producer elsewhere comes with its wiring");
        let dense = self.graph.dense(SubtaskId {
            vertex: result.producer,
            index: producer,
        });
        let peer = &remote.peers[&dense];
        remote_input(RemoteInput {
            address: peer.address.clone(),
            key: ChannelKey {
                job: self.job_id.to_string(),
                dataset: result.dataset,
                producer,
                consumer,
                attempt: peer.attempt,
            },
            bounds: self.channel,
            access: remote.access.clone(),
        })
    }

    /// The root a consumer reads partition `read` from: this process's
    /// own, or the one of the process serving it.
    fn partition_root(
        &self,
        read: &PartitionRead,
        served: &mut HashMap<Arc<str>, ShuffleRoot>,
        remote: Option<&RemoteWiring>,
    ) -> ShuffleRoot {
        let Some(address) = &read.served_by else {
            return self.root.clone();
        };
        served
            .entry(Arc::clone(address))
            .or_insert_with(|| {
                let access = remote.map(|r| r.access.clone()).unwrap_or_default();
                served_partitions(address, &access)
            })
            .clone()
    }

    fn deployment(
        &self,
        plan: AttemptPlan,
        wires: &mut Wires,
        remote: Option<&RemoteWiring>,
    ) -> TaskDeployment {
        let AttemptPlan {
            id,
            attempt,
            reads,
            memory_budget,
            restore,
            handles,
            ..
        } = plan;
        let vertex = self.graph.job.vertex(id.vertex);
        let inputs = self
            .graph
            .inputs_of(id.vertex)
            .into_iter()
            .map(|result| {
                self.graph
                    .consumed_channels(result, id.index)
                    .into_iter()
                    .map(|(producer, subpartition)| match result.mode {
                        ExchangeMode::Pipelined => InputChannel::Local(self.pipelined_input(
                            result,
                            producer,
                            id.index,
                            &mut wires.receivers,
                            remote,
                        )),
                        ExchangeMode::Blocking => {
                            let read = reads
                                .get(&(result.dataset, producer))
                                .expect("a region is deployed once its inputs are written");
                            InputChannel::Blocking {
                                root: self.partition_root(read, &mut wires.served, remote),
                                job: Arc::clone(&self.job_id),
                                partition: ResultPartitionId {
                                    dataset: result.dataset,
                                    producer,
                                    attempt: read.attempt,
                                },
                                subpartition,
                                format: self.blocking.format,
                            }
                        }
                    })
                    .collect()
            })
            .collect();
        let outputs = self
            .graph
            .outputs_of(id.vertex)
            .into_iter()
            .map(|result| OutputSpec {
                dataset: result.dataset,
                partitioner: result.partitioner.clone(),
                target: match result.mode {
                    ExchangeMode::Pipelined => OutputTarget::Pipelined(
                        wires
                            .senders
                            .remove(&(result.dataset, id.index))
                            .expect("senders were made for the producer"),
                    ),
                    ExchangeMode::Blocking => OutputTarget::Blocking {
                        root: self.root.clone(),
                        job: Arc::clone(&self.job_id),
                        partition: ResultPartitionId {
                            dataset: result.dataset,
                            producer: id.index,
                            attempt,
                        },
                        num_subpartitions: result.partitions[id.index as usize].subpartitions,
                        options: self.blocking.clone(),
                    },
                },
            })
            .collect();
        let AttemptHandles {
            metrics,
            counters,
            scanned,
            acks,
            triggers,
            hook,
        } = handles;
        let checkpoints = match (&self.checkpoints, acks) {
            (Some((store, job_dir)), Some(acks)) => Some(CheckpointSetup {
                store: store.clone(),
                job_dir: job_dir.clone(),
                acks,
                triggers,
                restore,
            }),
            _ => None,
        };
        TaskDeployment {
            info: TaskInfo {
                job_id: Arc::clone(&self.job_id),
                vertex: id.vertex,
                vertex_name: vertex.name.as_str().into(),
                subtask: id.index as usize,
                parallelism: vertex.parallelism,
                attempt,
                max_parallelism: self.graph.job.max_parallelism,
                memory: MemoryPool::new(MemoryConfig {
                    budget: memory_budget,
                    spill: self.spill,
                    spill_dir: self.spill_dir.clone(),
                }),
                counters,
                metrics,
                scanned,
            },
            chain: vertex.chain.clone(),
            inputs,
            outputs,
            hook,
            checkpoints,
        }
    }
}
