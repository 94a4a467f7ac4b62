//! Pipelined regions of canonical graphs.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use weir_engine::graph::{JobBuilder, ShuffleMode};
use weir_engine::operators::AggregateMode;
use weir_engine::sinks::CollectSink;
use weir_engine::sources::SequenceGenerator;
use weir_exchange::Partitioner;
use weir_scheduler::ExecutionGraph;

fn regions_of(graph: weir_engine::graph::JobGraph) -> (ExecutionGraph, Vec<BTreeSet<String>>) {
    let graph = ExecutionGraph::try_new(Arc::new(graph)).unwrap();
    let regions = &graph.regions;
    let sets = regions
        .all()
        .iter()
        .map(|r| {
            r.subtasks
                .iter()
                .map(|&s| graph.subtasks[s].to_string())
                .collect()
        })
        .collect();
    (graph, sets)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn all_pipelined_is_one_region() {
    let mut builder = JobBuilder::new("pipelined").with_parallelism(2);
    let source = builder.source(Arc::new(SequenceGenerator::new(Some(10), 3)));
    let counted = builder.operator(
        common::count_per_key(AggregateMode::Partial),
        [source.hash(["key"])],
    );
    builder.sink(Arc::new(CollectSink::new().0), [counted.rebalance()]);
    let (graph, regions) = regions_of(builder.build(ShuffleMode::AllPipelined, 4).unwrap());
    assert_eq!(regions.len(), 1);
    assert_eq!(regions[0].len(), graph.subtasks.len());
}

#[test]
fn all_blocking_is_one_region_per_subtask() {
    let job = common::three_stage(
        100,
        [2, 3, 2],
        Partitioner::hash(["key"]),
        Partitioner::Rebalance,
    );
    let (graph, regions) = regions_of(job.graph);
    assert_eq!(graph.subtasks.len(), 7);
    assert_eq!(regions.len(), 7);
    assert!(regions.iter().all(|r| r.len() == 1));
    // Topological: every producer's region comes before its consumers'.
    let order: Vec<String> = regions
        .iter()
        .map(|r| r.iter().next().unwrap().clone())
        .collect();
    assert_eq!(
        order,
        vec!["v0.0", "v0.1", "v1.0", "v1.1", "v1.2", "v2.0", "v2.1"]
    );
}

#[test]
fn mixed_graph_splits_at_blocking_edges_and_follows_pointwise_wiring() {
    // v0 (2) --rescale, pipelined--> v1 (4) --hash, blocking--> v2 (2)
    //   --forward, pipelined (chained)--> sink
    let mut builder = JobBuilder::new("mixed");
    let source = builder.source(Arc::new(SequenceGenerator::new(Some(10), 3)));
    builder.set_parallelism(source, 2);
    let spread = builder.operator(
        common::count_per_key(AggregateMode::Partial),
        [source.rescale().pipelined()],
    );
    builder.set_parallelism(spread, 4);
    let counted = builder.operator(
        common::count_per_key(AggregateMode::Final),
        [spread.hash(["key"]).blocking()],
    );
    builder.set_parallelism(counted, 2);
    let sink = builder.sink(Arc::new(CollectSink::new().0), [counted.forward()]);
    builder.set_parallelism(sink, 2);
    let (_, regions) = regions_of(builder.build(ShuffleMode::AllBlocking, 4).unwrap());
    assert_eq!(
        regions,
        vec![
            set(&["v0.0", "v1.0", "v1.1"]),
            set(&["v0.1", "v1.2", "v1.3"]),
            set(&["v2.0"]),
            set(&["v2.1"]),
        ]
    );
}

#[test]
fn regions_that_depend_on_each_other_in_a_cycle_are_merged() {
    // v0 --pipelined--> v2 and v0 --blocking--> v1 --blocking--> v2:
    // v2 shares a region with v0 but also waits for v1, which waits for v0.
    let mut builder = JobBuilder::new("cycle").with_parallelism(1);
    let source = builder.source(Arc::new(SequenceGenerator::new(Some(10), 3)));
    let middle = builder.operator(
        common::count_per_key(AggregateMode::Partial),
        [source.hash(["key"]).blocking()],
    );
    let join_like = builder.operator(
        common::count_per_key(AggregateMode::Partial),
        [
            source.hash(["key"]).pipelined(),
            middle.hash(["key"]).blocking(),
        ],
    );
    builder.sink(Arc::new(CollectSink::new().0), [join_like.forward()]);
    let (graph, regions) = regions_of(builder.build(ShuffleMode::AllBlocking, 4).unwrap());
    assert_eq!(regions, vec![set(&["v0.0", "v1.0", "v2.0"])]);
    // The blocking edges inside the merged region became pipelined.
    assert!(
        graph
            .results
            .iter()
            .all(|r| r.mode == weir_engine::graph::ExchangeMode::Pipelined)
    );
}

#[test]
fn chaining_merges_forward_edges_of_equal_parallelism_and_can_be_switched_off() {
    let build = |chaining| {
        let mut builder = JobBuilder::new("chain")
            .with_parallelism(2)
            .with_chaining(chaining);
        let source = builder.source(Arc::new(SequenceGenerator::new(Some(10), 3)));
        let counted = builder.operator(
            common::count_per_key(AggregateMode::Partial),
            [source.forward()],
        );
        builder.sink(Arc::new(CollectSink::new().0), [counted.forward()]);
        builder.build(ShuffleMode::AllBlocking, 4).unwrap()
    };
    assert_eq!(build(true).vertices.len(), 1);
    let unchained = build(false);
    assert_eq!(unchained.vertices.len(), 3);
    assert!(
        unchained
            .edges
            .iter()
            .all(|e| e.partitioner == Partitioner::Forward)
    );
}
