//! The regions each failover strategy restarts, on graph shapes beyond a
//! chain: a diamond, three levels of blocking edges with partitions lost
//! at two levels (rule 2, recursive), a non-deterministic producer two
//! levels above a finished consumer (rule 3, transitive), and
//! `restart-all`. Every edge is blocking and every vertex has one subtask,
//! so each vertex is a region of its own. The diamond and the three levels
//! also run, with partitions lost, to the rows of the run without.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use weir_engine::SourceFactory as _;
use weir_engine::graph::{Input, JobBuilder, NodeId, ShuffleMode, VertexId};
use weir_engine::operators::{MapBatches, Union};
use weir_engine::sinks::{CollectSink, Collected};
use weir_engine::sources::SequenceGenerator;
use weir_exchange::Partitioner;
use weir_scheduler::execution_graph::PartitionKey;
use weir_scheduler::failover::{
    FailoverStrategy, FailoverView, RegionFailover, RestartAllFailover,
};
use weir_scheduler::failure_plan::PartitionDamage;
use weir_scheduler::{ExecutionGraph, FailurePlan, JobSummary, MiniCluster, RegionId, SubtaskId};

/// A graph under construction, its vertices named in creation order.
struct Shape {
    job: JobBuilder,
    names: Vec<&'static str>,
}

impl Shape {
    fn new() -> (Self, NodeId) {
        let mut job = JobBuilder::new("shape").with_parallelism(1);
        let generator = SequenceGenerator::new(Some(3_000), 7).with_batch_rows(100);
        let source = job.source(Arc::new(generator));
        (
            Self {
                job,
                names: vec!["S"],
            },
            source,
        )
    }

    fn pass(&mut self, name: &'static str, inputs: Vec<Input>) -> NodeId {
        self.names.push(name);
        let pass = MapBatches::new(name, Arc::new(|b: &RecordBatch| Ok(b.clone())));
        self.job.operator(Arc::new(pass), inputs)
    }

    fn union(&mut self, name: &'static str, inputs: Vec<Input>) -> NodeId {
        self.names.push(name);
        let schema = SequenceGenerator::new(Some(1), 1).schema();
        self.job.operator(Arc::new(Union::new(schema)), inputs)
    }

    fn sink(mut self, input: NodeId) -> Built {
        self.names.push("K");
        let (sink, output) = CollectSink::new();
        self.job
            .sink(Arc::new(sink), [input.hash(["key"]).blocking()]);
        let graph = self.job.build(ShuffleMode::AllBlocking, 4).expect("builds");
        assert_eq!(graph.vertices.len(), self.names.len(), "no chaining");
        Built {
            graph: ExecutionGraph::try_new(Arc::new(graph)).expect("expands"),
            names: self.names,
            output,
        }
    }
}

struct Built {
    graph: ExecutionGraph,
    names: Vec<&'static str>,
    output: Collected,
}

fn hash(node: NodeId) -> Input {
    node.hash(["key"]).blocking()
}

fn rebalance(node: NodeId) -> Input {
    node.with(Partitioner::Rebalance).blocking()
}

impl Built {
    fn vertex(&self, name: &str) -> VertexId {
        let index = self.names.iter().position(|n| *n == name).expect("named");
        self.graph.job.vertices[index].id
    }

    fn region(&self, name: &str) -> RegionId {
        let dense = self.graph.dense(SubtaskId {
            vertex: self.vertex(name),
            index: 0,
        });
        self.graph.regions.region_of(dense)
    }

    fn name_of(&self, region: RegionId) -> &'static str {
        self.names
            .iter()
            .find(|n| self.region(n) == region)
            .expect("a vertex")
    }

    /// The id of the edge from `from` to `to`.
    fn dataset(&self, from: &str, to: &str) -> u32 {
        let (from, to) = (self.vertex(from), self.vertex(to));
        let edge = self
            .graph
            .job
            .edges
            .iter()
            .find(|e| e.source == from && e.target == to);
        edge.expect("an edge").id
    }

    /// `plan`, and the output of `from` to `to` deleted just before `to`
    /// first runs.
    fn lose(&self, plan: FailurePlan, from: &str, to: &str) -> FailurePlan {
        let before = (self.vertex(to), 0);
        plan.damage_partition(self.dataset(from, to), 0, before, PartitionDamage::Delete)
    }

    /// Runs the job under `plan`, one region at a time: its summary, its
    /// rows (sorted) and the vertices that ran again.
    async fn run(self, plan: FailurePlan) -> (JobSummary, Vec<String>, BTreeSet<&'static str>) {
        let job = (*self.graph.job).clone();
        let summary = MiniCluster::new(common::test_config(1))
            .run_with_failures(job, plan)
            .await
            .expect("the job survives");
        let rerun = summary
            .rerun_regions()
            .into_iter()
            .map(|r| self.name_of(r))
            .collect();
        let rows = weir_engine::testing::sorted_rows(&self.output.batches());
        (summary, rows, rerun)
    }

    /// The partitions vertex `name` writes.
    fn output_of(&self, name: &str) -> Vec<PartitionKey> {
        let vertex = self.vertex(name);
        self.graph
            .job
            .edges
            .iter()
            .filter(|e| e.source == vertex)
            .map(|e| PartitionKey {
                dataset: e.id,
                producer: 0,
            })
            .collect()
    }

    /// The vertices `strategy` restarts when `failed` fails, the outputs
    /// of `lost` are gone and every region has run.
    fn restarts(
        &self,
        strategy: &dyn FailoverStrategy,
        failed: &str,
        lost: &[&str],
    ) -> BTreeSet<&'static str> {
        let lost: Vec<PartitionKey> = lost.iter().flat_map(|v| self.output_of(v)).collect();
        let view = FailoverView {
            regions: &self.graph.regions,
            is_lost: &|p| lost.contains(&p),
            has_started: &|_| true,
        };
        strategy
            .regions_to_restart(self.region(failed), &view)
            .into_iter()
            .map(|r| self.name_of(r))
            .collect()
    }
}

fn names(items: &[&'static str]) -> BTreeSet<&'static str> {
    items.iter().copied().collect()
}

/// How one vertex feeds another.
type Edge = fn(NodeId) -> Input;

/// S -> A, S -> B, (A, B) -> U -> K; S's edge to B is `to_b`.
fn diamond(to_b: Edge) -> Built {
    let (mut shape, s) = Shape::new();
    let a = shape.pass("A", vec![hash(s)]);
    let b = shape.pass("B", vec![to_b(s)]);
    let u = shape.union("U", vec![hash(a), hash(b)]);
    shape.sink(u)
}

#[test]
fn a_diamond_restarts_only_what_its_failure_reaches() {
    let built = diamond(hash);
    // A alone: its input is still there.
    assert_eq!(built.restarts(&RegionFailover, "A", &[]), names(&["A"]));
    // Its input lost: its producer too, whose deterministic output lets B
    // and the union keep what they read.
    assert_eq!(
        built.restarts(&RegionFailover, "A", &["S"]),
        names(&["S", "A"])
    );
    // The union with both inputs lost reaches both branches.
    assert_eq!(
        built.restarts(&RegionFailover, "U", &["A", "B"]),
        names(&["A", "B", "U"])
    );
    // S feeds B round-robin: B read batches a rerun of S deals otherwise,
    // so B reruns, and the union after it.
    let built = diamond(rebalance);
    assert_eq!(
        built.restarts(&RegionFailover, "A", &["S"]),
        names(&["S", "A", "B", "U", "K"])
    );
}

#[test]
fn lost_partitions_two_levels_up_restart_both_producers() {
    let (mut shape, s) = Shape::new();
    let a = shape.pass("A", vec![hash(s)]);
    let b = shape.pass("B", vec![hash(a)]);
    let c = shape.pass("C", vec![hash(b)]);
    let built = shape.sink(c);
    assert_eq!(
        built.restarts(&RegionFailover, "C", &["B", "A"]),
        names(&["A", "B", "C"])
    );
    // A lost partition no restarted region reads is left alone.
    assert_eq!(built.restarts(&RegionFailover, "C", &["A"]), names(&["C"]));
}

#[test]
fn a_non_deterministic_producer_reruns_its_consumers_transitively() {
    let (mut shape, s) = Shape::new();
    let a = shape.pass("A", vec![rebalance(s)]);
    let b = shape.pass("B", vec![hash(a)]);
    let built = shape.sink(b);
    // A fails and its input is lost: S reruns and deals its rows anew, so
    // A's output changes, and B and the sink, which finished, rerun too.
    assert_eq!(
        built.restarts(&RegionFailover, "A", &["S"]),
        names(&["S", "A", "B", "K"])
    );
}

#[test]
fn restart_all_restarts_every_region() {
    let built = diamond(hash);
    assert_eq!(
        built.restarts(&RestartAllFailover, "A", &[]),
        names(&["S", "A", "B", "U", "K"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_with_lost_partitions_gives_the_rows_of_a_run_without() {
    let shapes: [(Edge, bool); 2] = [(hash, false), (rebalance, true)];
    for (to_b, round_robin) in shapes {
        let (_, expected, _) = diamond(to_b).run(FailurePlan::none()).await;
        assert_eq!(expected.len(), 6_000, "every row through both branches");
        // The union loses A's output: A reruns from S's, the union after.
        let built = diamond(to_b);
        let plan = built.lose(FailurePlan::none(), "A", "U");
        let (summary, rows, rerun) = built.run(plan).await;
        assert_eq!(rows, expected, "{summary}");
        assert_eq!(rerun, names(&["A", "U"]), "{summary}");
        // B loses S's output after A read it: S reruns; when it deals its
        // rows round-robin, A (finished) reruns too, as B does anyway.
        let built = diamond(to_b);
        let plan = built.lose(FailurePlan::none(), "S", "B");
        let (summary, rows, rerun) = built.run(plan).await;
        assert_eq!(rows, expected, "{summary}");
        let mut wanted = names(&["S", "B"]);
        if round_robin {
            wanted.insert("A");
        }
        assert_eq!(rerun, wanted, "{summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_lost_at_two_levels_are_found_in_one_failover() {
    let three_levels = || {
        let (mut shape, s) = Shape::new();
        let a = shape.pass("A", vec![hash(s)]);
        let b = shape.pass("B", vec![hash(a)]);
        let c = shape.pass("C", vec![hash(b)]);
        shape.sink(c)
    };
    let (_, expected, _) = three_levels().run(FailurePlan::none()).await;
    assert_eq!(expected.len(), 3_000);
    // C finds B's output gone, and B's input is gone too: one restart
    // reruns A, B and C.
    let built = three_levels();
    let plan = built.lose(FailurePlan::none(), "B", "C").damage_partition(
        built.dataset("A", "B"),
        0,
        (built.vertex("C"), 0),
        PartitionDamage::Delete,
    );
    let (summary, rows, rerun) = built.run(plan).await;
    assert_eq!(rows, expected, "{summary}");
    assert_eq!(rerun, names(&["A", "B", "C"]), "{summary}");
    assert_eq!(summary.restarts, 1, "{summary}");
}
