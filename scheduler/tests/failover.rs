//! Failover differential tests: the same job with and without injected
//! failures gives identical output, and only the regions the failover rules
//! name run again.

mod common;

use std::collections::BTreeSet;

use arrow::array::RecordBatch;
use common::{sorted, test_config, three_stage};
use weir_engine::graph::VertexId;
use weir_engine::testing::Rng;
use weir_exchange::Partitioner;
use weir_scheduler::failure_plan::PartitionDamage;
use weir_scheduler::{
    FailoverKind, FailurePlan, JobConfig, JobProgress, JobSummary, MiniCluster, RegionId, SubtaskId,
};

const ROWS: u64 = 20_000;

fn hash() -> Partitioner {
    Partitioner::hash(["key"])
}

/// Runs the three-stage job under `config` with `plan`: its summary and its
/// sorted output.
async fn run(
    parallelism: [usize; 3],
    b_to_c: Partitioner,
    config: JobConfig,
    plan: FailurePlan,
) -> (JobSummary, RecordBatch) {
    let job = three_stage(ROWS, parallelism, hash(), b_to_c);
    let progress = JobProgress::default();
    let summary = MiniCluster::new(config)
        .run_with(job.graph, plan, progress.clone())
        .await
        .unwrap();
    // Restarted sources count their rows once, from their last attempt.
    let done = progress.snapshot();
    assert_eq!((done.rows_scanned, done.rows_expected), (ROWS, Some(ROWS)));
    assert_eq!(done.regions_finished, done.regions);
    assert_eq!(done.regions, summary.regions);
    assert_eq!(done.restarts, summary.restarts);
    (summary, sorted(&job.output.batches()))
}

/// The output of the failure-free run.
async fn reference(parallelism: [usize; 3], b_to_c: Partitioner) -> RecordBatch {
    run(parallelism, b_to_c, test_config(4), FailurePlan::none())
        .await
        .1
}

fn region_of(summary: &JobSummary, vertex: u32, index: u32) -> RegionId {
    let position = summary
        .attempts
        .iter()
        .position(|(s, _)| {
            *s == SubtaskId {
                vertex: VertexId(vertex),
                index,
            }
        })
        .unwrap();
    summary.region_of[position]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_any_region_reruns_only_that_region() {
    let parallelism = [2, 2, 2];
    let expected = reference(parallelism, hash()).await;
    let mut rng = Rng::new(7);
    for seed in 0..12u32 {
        let vertex = seed % 3;
        let index = rng.below(2) as u32;
        // Records per subtask: ~10000 generated, ~3500 counted, ~48 keys.
        let bound = [ROWS / 2, ROWS / 8, 20][vertex as usize];
        let at = 1 + rng.below(bound);
        let plan = FailurePlan::none().fail_task(VertexId(vertex), index, 0, at);
        let (summary, output) = run(parallelism, hash(), test_config(4), plan).await;
        assert_eq!(
            output, expected,
            "seed {seed}: v{vertex}.{index} at record {at}"
        );
        assert_eq!(summary.restarts, 1, "seed {seed}");
        assert_eq!(
            summary.rerun_regions(),
            BTreeSet::from([region_of(&summary, vertex, index)]),
            "seed {seed}: v{vertex}.{index} at record {at}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_partition_reruns_its_producer_region() {
    let parallelism = [2, 2, 2];
    let expected = reference(parallelism, hash()).await;
    for damage in [PartitionDamage::Delete, PartitionDamage::Corrupt] {
        for producer in 0..2u32 {
            // Damage A's partition just before B.1 first runs; with one slot,
            // B.0 has already read it intact.
            let plan = FailurePlan::none().damage_partition(0, producer, (VertexId(1), 1), damage);
            let (summary, output) = run(parallelism, hash(), test_config(1), plan).await;
            assert_eq!(output, expected, "{damage:?} of d0/p{producer}");
            assert_eq!(
                summary.rerun_regions(),
                BTreeSet::from([region_of(&summary, 0, producer), region_of(&summary, 1, 1)]),
                "{damage:?} of d0/p{producer}: the producer and the failed consumer rerun, B.0 keeps its result"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_of_a_non_deterministic_producer_rerun_with_it() {
    // B -> C is rebalance: when B.0 reruns, C.0 (which already read B.0's
    // old output) must rerun too.
    let parallelism = [2, 2, 2];
    let expected = reference(parallelism, Partitioner::Rebalance).await;
    for producer in 0..2u32 {
        let plan = FailurePlan::none().damage_partition(
            1,
            producer,
            (VertexId(2), 1),
            PartitionDamage::Delete,
        );
        let (summary, output) =
            run(parallelism, Partitioner::Rebalance, test_config(1), plan).await;
        assert_eq!(output, expected, "d1/p{producer}");
        assert_eq!(
            summary.rerun_regions(),
            BTreeSet::from([
                region_of(&summary, 1, producer),
                region_of(&summary, 2, 0),
                region_of(&summary, 2, 1)
            ]),
            "d1/p{producer}"
        );
    }
    // The same damage with a deterministic hash edge leaves C.0 alone.
    let plan =
        FailurePlan::none().damage_partition(1, 0, (VertexId(2), 1), PartitionDamage::Delete);
    let (summary, output) = run(parallelism, hash(), test_config(1), plan).await;
    assert_eq!(
        output, expected,
        "the partitioner of B -> C does not change the result"
    );
    assert_eq!(
        summary.rerun_regions(),
        BTreeSet::from([region_of(&summary, 1, 0), region_of(&summary, 2, 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_all_reruns_every_region() {
    let parallelism = [2, 2, 2];
    let expected = reference(parallelism, hash()).await;
    let mut rng = Rng::new(11);
    for seed in 0..6u32 {
        let vertex = seed % 3;
        let at = 1 + rng.below([ROWS / 2, ROWS / 8, 20][vertex as usize]);
        let mut config = test_config(4);
        config.failover = FailoverKind::RestartAll;
        let plan = FailurePlan::none().fail_task(VertexId(vertex), 0, 0, at);
        let (summary, output) = run(parallelism, hash(), config, plan).await;
        assert_eq!(output, expected, "seed {seed}");
        assert_eq!(
            summary.rerun_regions().len(),
            summary.regions,
            "seed {seed}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_works_with_parquet_partitions_on_local_disk() {
    let dir = tempfile::tempdir().unwrap();
    let parallelism = [2, 3, 1];
    let expected = reference(parallelism, hash()).await;
    let mut config = test_config(2);
    config.shuffle_root = dir.path().display().to_string();
    config.set("shuffle.format", "parquet").unwrap();
    config.set("shuffle.compression", "zstd").unwrap();
    let plan = FailurePlan::none()
        .fail_task(VertexId(1), 2, 0, 5)
        .damage_partition(1, 0, (VertexId(2), 0), PartitionDamage::Corrupt);
    let (summary, output) = run(parallelism, hash(), config, plan).await;
    assert_eq!(output, expected);
    assert_eq!(summary.restarts, 2);
    // Partition files are removed when the job ends...
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // ...also when it fails.
    let job = three_stage(ROWS, parallelism, hash(), hash());
    let mut config = test_config(2);
    config.shuffle_root = dir.path().display().to_string();
    config.set("restart-strategy.type", "none").unwrap();
    let plan = FailurePlan::none().fail_task(VertexId(2), 0, 0, 1);
    assert!(
        MiniCluster::new(config)
            .run_with_failures(job.graph, plan)
            .await
            .is_err()
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}
