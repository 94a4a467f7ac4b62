//! Lazy and eager scheduling, slots, and restart strategies.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{sorted, test_config, three_stage};
use weir_engine::graph::{JobBuilder, ShuffleMode, VertexId};
use weir_engine::operators::AggregateMode;
use weir_engine::sinks::CollectSink;
use weir_engine::sources::SequenceGenerator;
use weir_exchange::Partitioner;
use weir_scheduler::failover::restart::RestartStrategy;
use weir_scheduler::summary::RegionEventKind;
use weir_scheduler::{Error, ExecutionGraph, FailurePlan, MiniCluster};

fn hash() -> Partitioner {
    Partitioner::hash(["key"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lazy_scheduling_starts_a_region_only_after_its_inputs_are_complete() {
    for slots in [1, 2, 3, 8] {
        let job = three_stage(5_000, [2, 3, 2], hash(), Partitioner::Rebalance);
        let graph = ExecutionGraph::try_new(Arc::new(job.graph.clone())).unwrap();
        let regions = &graph.regions;
        let summary = MiniCluster::new(test_config(slots))
            .run(job.graph)
            .await
            .unwrap();
        assert_eq!(summary.regions, 7);
        let mut finished_at: HashMap<_, usize> = HashMap::new();
        let mut deployed = Vec::new();
        let mut running = 0usize;
        for (position, event) in summary.timeline.iter().enumerate() {
            match event.kind {
                RegionEventKind::Deployed => {
                    let region = regions.get(event.region);
                    for input in &region.consumes {
                        let producer = regions.producer_of(*input).unwrap();
                        assert!(
                            finished_at.contains_key(&producer),
                            "{} started before its input region {producer} finished (slots {slots})",
                            event.region
                        );
                    }
                    deployed.push(event.region);
                    running += region.slots;
                    assert!(running <= slots, "more than {slots} slot(s) in use");
                }
                RegionEventKind::Finished => {
                    finished_at.insert(event.region, position);
                    running -= regions.get(event.region).slots;
                }
                RegionEventKind::Restarted => panic!("no failure was injected"),
            }
        }
        assert_eq!(finished_at.len(), 7, "slots {slots}");
        let mut in_order = deployed.clone();
        in_order.sort();
        assert_eq!(
            deployed, in_order,
            "regions start in topological order (slots {slots})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_slot_runs_a_multi_region_job_with_the_same_result() {
    let wide = three_stage(5_000, [3, 2, 2], hash(), hash());
    MiniCluster::new(test_config(8))
        .run(wide.graph)
        .await
        .unwrap();
    let narrow = three_stage(5_000, [3, 2, 2], hash(), hash());
    let summary = MiniCluster::new(test_config(1))
        .run(narrow.graph)
        .await
        .unwrap();
    assert_eq!(summary.regions, 7);
    assert_eq!(
        sorted(&narrow.output.batches()),
        sorted(&wide.output.batches())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_and_blocking_shuffles_give_the_same_result() {
    let build = |mode| {
        let mut job = JobBuilder::new("modes").with_parallelism(2);
        let source = job.source(Arc::new(SequenceGenerator::new(Some(30_000), 50)));
        let partial = job.operator(
            common::count_per_key(AggregateMode::Partial),
            [source.forward()],
        );
        let counted = job.operator(
            common::count_per_key(AggregateMode::Final),
            [partial.hash(["key"])],
        );
        let (sink, output) = CollectSink::new();
        job.sink(Arc::new(sink), [counted.rebalance()]);
        (job.build(mode, 2).unwrap(), output)
    };
    let (blocking, blocking_out) = build(ShuffleMode::AllBlocking);
    let (pipelined, pipelined_out) = build(ShuffleMode::AllPipelined);
    let (auto, auto_out) = build(ShuffleMode::Auto);
    let cluster = MiniCluster::new(test_config(2));
    assert_eq!(cluster.run(blocking).await.unwrap().regions, 6);
    assert_eq!(cluster.run(pipelined).await.unwrap().regions, 1);
    assert_eq!(cluster.run(auto).await.unwrap().regions, 1);
    let expected = sorted(&blocking_out.batches());
    assert_eq!(sorted(&pipelined_out.batches()), expected);
    assert_eq!(sorted(&auto_out.batches()), expected);
    let total: i64 = expected
        .column(1)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .values()
        .iter()
        .sum();
    assert_eq!(total, 30_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_few_slots_is_a_clear_error() {
    // A pipelined region of parallelism 4 cannot run on 2 slots.
    let mut job = JobBuilder::new("wide").with_parallelism(4);
    let source = job.source(Arc::new(SequenceGenerator::new(Some(100), 5)));
    job.sink(Arc::new(CollectSink::new().0), [source.rebalance()]);
    let graph = job.build(ShuffleMode::AllPipelined, 2).unwrap();
    let err = MiniCluster::new(test_config(2))
        .run(graph)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unschedulable { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("needs 4 slot(s), but the cluster has 2"),
        "{err}"
    );
    // An unbounded job runs eagerly: every subtask at once.
    let mut job = JobBuilder::new("stream").with_parallelism(3);
    let source = job.source(Arc::new(SequenceGenerator::new(None, 5)));
    job.sink(Arc::new(CollectSink::new().0), [source.forward()]);
    let graph = job.build(ShuffleMode::AllBlocking, 2).unwrap();
    let err = MiniCluster::new(test_config(2))
        .run(graph)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("run at once and need 3 slot(s)"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_strategies_bound_attempts_and_delays() {
    // none: the first failure fails the job and names the task.
    let job = three_stage(2_000, [1, 1, 1], hash(), hash());
    let mut config = test_config(2);
    config.restart = RestartStrategy::None;
    let err = MiniCluster::new(config)
        .run_with_failures(
            job.graph,
            FailurePlan::none().fail_task(VertexId(1), 0, 0, 3),
        )
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("restart strategy 'none' allows no restart"),
        "{message}"
    );
    assert!(
        message.contains("injected failure") && message.contains("v1.0"),
        "{message}"
    );

    // fixed-delay with 2 attempts: a task failing on attempts 0, 1 and 2
    // exhausts them.
    let job = three_stage(2_000, [1, 1, 1], hash(), hash());
    let mut config = test_config(2);
    config.restart = RestartStrategy::FixedDelay {
        attempts: 2,
        delay: Duration::from_millis(1),
    };
    let plan = (0..3).fold(FailurePlan::none(), |p, attempt| {
        p.fail_task(VertexId(0), 0, attempt, 10)
    });
    let err = MiniCluster::new(config)
        .run_with_failures(job.graph, plan.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::JobFailed { restarts: 2, .. }), "{err}");
    assert!(
        err.to_string().contains("exhausted its 2 attempt(s)"),
        "{err}"
    );

    // With 3 attempts the same failures are survived, each restart waiting
    // the configured delay.
    let job = three_stage(2_000, [1, 1, 1], hash(), hash());
    let mut config = test_config(2);
    let delay = Duration::from_millis(60);
    config.restart = RestartStrategy::FixedDelay { attempts: 3, delay };
    let summary = MiniCluster::new(config)
        .run_with_failures(job.graph, plan)
        .await
        .unwrap();
    assert_eq!(summary.restarts, 3);
    let events = &summary.timeline;
    for (i, restart) in events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == RegionEventKind::Restarted)
    {
        let redeploy = events[i..]
            .iter()
            .find(|e| e.region == restart.region && e.kind == RegionEventKind::Deployed)
            .unwrap();
        assert!(
            redeploy.at_ms >= restart.at_ms + delay.as_millis() as u64,
            "{events:?}"
        );
    }

    // exponential-delay: waits grow between restarts.
    let job = three_stage(2_000, [1, 1, 1], hash(), hash());
    let mut config = test_config(2);
    config.restart = RestartStrategy::ExponentialDelay {
        initial: Duration::from_millis(20),
        max: Duration::from_secs(1),
        multiplier: 3.0,
        attempts: 5,
    };
    let plan = (0..2).fold(FailurePlan::none(), |p, attempt| {
        p.fail_task(VertexId(2), 0, attempt, 1)
    });
    let summary = MiniCluster::new(config)
        .run_with_failures(job.graph, plan)
        .await
        .unwrap();
    assert_eq!(summary.restarts, 2);
    assert!(
        summary.wall_time >= Duration::from_millis(80),
        "{:?}",
        summary.wall_time
    );

    // failure-rate: more failures than allowed within the interval fail the
    // job.
    let job = three_stage(2_000, [1, 1, 1], hash(), hash());
    let mut config = test_config(2);
    config.restart = RestartStrategy::FailureRate {
        max_failures: 1,
        interval: Duration::from_secs(60),
        delay: Duration::ZERO,
    };
    let plan = (0..2).fold(FailurePlan::none(), |p, attempt| {
        p.fail_task(VertexId(1), 0, attempt, 2)
    });
    let err = MiniCluster::new(config)
        .run_with_failures(job.graph, plan)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("2 failures within"), "{err}");
}
