//! Dataframe jobs end to end on the mini-cluster: the same job at
//! parallelism 1 and 4, with blocking and pipelined exchanges, and with a
//! task failing on purpose, gives exactly the rows a naive reference
//! computes.

mod common;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::DataType;
use common::test_config;
use weir_engine::dataframe::Dataflow;
use weir_engine::expr::{Compiled, Expr, SortExpr, cast, col, lit, named};
use weir_engine::graph::{JobGraph, ShuffleMode, VertexId};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{
    AggregateMode, Distinct, Filter, HashAggregate, HashJoin, JoinSide, JoinType, NestedLoopJoin,
    Project, Sort, SortKey, joined_schema,
};
use weir_engine::sinks::{CollectSink, Collected};
use weir_engine::sources::MemorySource;
use weir_engine::testing::{
    ColumnKind, ColumnSpec, Rng, drive, random_batch, rebatch, rows, sorted_rows,
};
use weir_scheduler::{FailurePlan, JobConfig, MiniCluster};

fn columns() -> Vec<ColumnSpec> {
    vec![
        ColumnSpec::new("k", ColumnKind::Int64, 50).with_nulls(0.05),
        ColumnSpec::new("s", ColumnKind::Utf8, 20).with_nulls(0.1),
        ColumnSpec::new("d", ColumnKind::Decimal, 1000).with_nulls(0.1),
    ]
}

fn table(seed: u64, rows: usize) -> Vec<RecordBatch> {
    let batch = random_batch(&mut Rng::new(seed), &columns(), rows);
    rebatch(&[batch], 97)
}

fn source(name: &str, batches: &[RecordBatch]) -> Arc<MemorySource> {
    let schema = batches[0].schema();
    Arc::new(MemorySource::try_new(name, schema, batches.to_vec()).expect("one schema"))
}

/// `left` filtered on `k > 0`, union all `right`, both projected to
/// `(s, d, k * 2 AS k2)`.
fn filter_select_union(
    left: &[RecordBatch],
    right: &[RecordBatch],
    parallelism: usize,
    mode: ShuffleMode,
) -> (JobGraph, Collected) {
    let flow = Dataflow::new("filter-select-union").with_parallelism(parallelism);
    let projection = || vec![col("s"), col("d"), (col("k") * lit(2i64)).alias("k2")];
    let kept = flow
        .read(source("left", left))
        .filter(col("k").gt(lit(0i64)))
        .and_then(|df| df.select(projection()))
        .expect("left plans");
    let other = flow
        .read(source("right", right))
        .select(projection())
        .expect("right plans");
    let (sink, output) = CollectSink::new();
    kept.union(&other)
        .expect("same columns")
        .write(Arc::new(sink));
    (flow.build(mode, parallelism).expect("builds"), output)
}

/// What `filter_select_union` must produce, row by row.
fn reference(left: &[RecordBatch], right: &[RecordBatch]) -> Vec<String> {
    let project = |line: &String| {
        let cells: Vec<&str> = line.split('|').collect();
        let k2 = cells[0]
            .parse::<i64>()
            .map_or("NULL".to_string(), |k| (k * 2).to_string());
        format!("{}|{}|{k2}", cells[1], cells[2])
    };
    let mut expected: Vec<String> = rows(left)
        .iter()
        .filter(|l| l.split('|').next().and_then(|k| k.parse::<i64>().ok()) > Some(0))
        .chain(rows(right).iter())
        .map(project)
        .collect();
    expected.sort();
    expected
}

/// Runs `graph` with `plan`: its restarts and its sorted output rows.
async fn run(graph: JobGraph, output: &Collected, plan: FailurePlan) -> (u32, Vec<String>) {
    let summary = MiniCluster::new(test_config(4))
        .run_with_failures(graph, plan)
        .await
        .expect("the job succeeds");
    (summary.restarts, sorted_rows(&output.batches()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_select_union_matches_the_reference() {
    let (left, right) = (table(1, 3000), table(2, 2000));
    let expected = reference(&left, &right);
    for parallelism in [1, 4] {
        for mode in [ShuffleMode::AllBlocking, ShuffleMode::AllPipelined] {
            let (graph, output) = filter_select_union(&left, &right, parallelism, mode);
            let (restarts, got) = run(graph, &output, FailurePlan::none()).await;
            assert_eq!(restarts, 0);
            assert_eq!(got, expected, "parallelism {parallelism}, {mode}");
        }
    }
}

/// A plan failing one random subtask (of the first `subtasks`) of a random
/// vertex of `graph` on its first attempt, after at most `max_record`
/// records.
fn random_failure(rng: &mut Rng, graph: &JobGraph, subtasks: u64, max_record: u64) -> FailurePlan {
    let vertex = rng.below(graph.vertices.len() as u64) as u32;
    let subtask = rng.below(subtasks) as u32;
    FailurePlan::none().fail_task(VertexId(vertex), subtask, 0, 1 + rng.below(max_record))
}

/// Asserts that each of `outputs` collected exactly the rows of `expected`
/// (as multisets), naming the output with `label`.
fn assert_outputs(
    outputs: &[Collected],
    expected: &[Vec<String>],
    label: impl Fn(usize) -> String,
) {
    assert_eq!(outputs.len(), expected.len());
    for (i, (output, expected)) in outputs.iter().zip(expected).enumerate() {
        assert_eq!(&sorted_rows(&output.batches()), expected, "{}", label(i));
    }
}

/// Runs the job `job` builds `rounds` times with `memory_per_slot` bytes per
/// slot: once as is, then each time with a random task failing. Every time
/// the outputs must be `expected`, something must have spilled, and no
/// spill file may be left behind.
async fn spill_and_fail(
    memory_per_slot: usize,
    rounds: usize,
    rng: &mut Rng,
    max_record: u64,
    job: impl Fn() -> (JobGraph, Vec<Collected>),
    expected: &[Vec<String>],
) {
    let spill_dir = tempfile::tempdir().expect("temp dir");
    let config = JobConfig {
        memory_per_slot,
        spill_dir: spill_dir.path().to_path_buf(),
        ..test_config(4)
    };
    for round in 0..rounds {
        let (graph, outputs) = job();
        let plan = if round == 0 {
            FailurePlan::none()
        } else {
            random_failure(rng, &graph, 2, max_record)
        };
        let summary = MiniCluster::new(config.clone())
            .run_with_failures(graph, plan)
            .await
            .expect("the job succeeds");
        let spilled: u64 = summary.vertices.iter().map(|v| v.metrics.spill_files).sum();
        assert!(spilled > 0, "round {round}: the job spilled");
        assert_outputs(&outputs, expected, |i| format!("round {round}, output {i}"));
        let left_behind = std::fs::read_dir(spill_dir.path()).expect("list").count();
        assert_eq!(
            left_behind, 0,
            "round {round}: no spill file is left behind"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_task_changes_nothing() {
    let (left, right) = (table(3, 3000), table(4, 2000));
    let expected = reference(&left, &right);
    let mut rng = Rng::new(5);
    for round in 0..6 {
        let (graph, output) = filter_select_union(&left, &right, 2, ShuffleMode::AllBlocking);
        let plan = random_failure(&mut rng, &graph, 2, 500);
        let (restarts, got) = run(graph, &output, plan).await;
        assert_eq!(restarts, 1, "round {round}: the failure happened");
        assert_eq!(got, expected, "round {round}");
    }
}

/// The ORDER BY of the ordering tests: every column, so the order is total.
fn order() -> Vec<SortExpr> {
    vec![
        col("k").sort(false, true),
        col("s").sort(true, false),
        col("d").sort(true, true),
    ]
}

/// `left` filtered on `k > 0` and sorted by [`order`], computed by the
/// filter and sort operators alone in one subtask.
fn sorted_reference(left: &[RecordBatch]) -> Vec<String> {
    let schema = left[0].schema();
    let compile = |e: &Expr| Compiled::new(e, &schema).expect("compiles");
    let filter = Filter::new(compile(&col("k").gt(lit(0i64))));
    let kept = drive(&filter, &[left.to_vec()], MemoryPool::unbounded()).expect("filters");
    let keys = order()
        .iter()
        .map(|k| SortKey::compile(k, &schema).expect("compiles"))
        .collect();
    let sort = Sort::try_new(keys).expect("sortable keys");
    rows(&drive(&sort, &[kept], MemoryPool::unbounded()).expect("sorts"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sort_top_n_and_limit_keep_the_reference_order() {
    let left = table(6, 4000);
    let expected = sorted_reference(&left);
    for parallelism in [1, 4] {
        for mode in [ShuffleMode::AllBlocking, ShuffleMode::AllPipelined] {
            let flow = Dataflow::new("ordered").with_parallelism(parallelism);
            let kept = flow
                .read(source("left", &left))
                .filter(col("k").gt(lit(0i64)))
                .expect("plans");
            let (all, all_out) = CollectSink::new();
            kept.sort(order()).expect("sorts").write(Arc::new(all));
            let (top, top_out) = CollectSink::new();
            kept.top_n(order(), 5, 20)
                .expect("plans")
                .write(Arc::new(top));
            let (page, page_out) = CollectSink::new();
            kept.sort(order())
                .expect("sorts")
                .limit(3, Some(10))
                .write(Arc::new(page));
            let graph = flow.build(mode, parallelism).expect("builds");
            MiniCluster::new(test_config(4))
                .run(graph)
                .await
                .expect("the job succeeds");
            let context = format!("parallelism {parallelism}, {mode}");
            assert_eq!(rows(&all_out.batches()), expected, "{context}");
            assert_eq!(rows(&top_out.batches()), expected[5..25], "{context}");
            assert_eq!(rows(&page_out.batches()), expected[3..13], "{context}");
        }
    }
}

/// The aggregations of the grouping tests over `left`: by `(k, s)`, with
/// no group, and the distinct `(k, s)` pairs.
fn aggregations(
    left: &[RecordBatch],
    parallelism: usize,
    mode: ShuffleMode,
) -> (JobGraph, Vec<Collected>) {
    let flow = Dataflow::new("aggregations").with_parallelism(parallelism);
    let table = flow.read(source("left", left));
    let outputs = [
        table.aggregate(vec![col("k"), col("s")], measures()),
        table.aggregate(vec![], measures()),
        table
            .select(vec![col("k"), col("s")])
            .and_then(|df| df.distinct()),
    ]
    .map(|planned| {
        let (sink, output) = CollectSink::new();
        planned.expect("plans").write(Arc::new(sink));
        output
    });
    (
        flow.build(mode, parallelism).expect("builds"),
        outputs.into(),
    )
}

fn measures() -> Vec<Expr> {
    use weir_engine::expr::aggregate::{avg, count, count_distinct, max, sum};
    vec![
        count(lit(1)).alias("n"),
        sum(col("d")),
        avg(col("d")),
        max(col("s")),
        count_distinct(col("d")),
    ]
}

/// What [`aggregations`] must produce, from the operators run in one
/// subtask over all rows.
fn aggregation_reference(left: &[RecordBatch]) -> Vec<Vec<String>> {
    let schema = left[0].schema();
    let single = |group_by| {
        HashAggregate::try_new(
            AggregateMode::Single,
            &schema,
            named(group_by),
            named(measures()),
        )
        .expect("plans")
    };
    let compile = |e: &Expr| Compiled::new(e, &schema).expect("compiles");
    let project = Project::new(vec![
        (compile(&col("k")), "k".into()),
        (compile(&col("s")), "s".into()),
    ]);
    let pairs = drive(&project, &[left.to_vec()], MemoryPool::unbounded()).expect("projects");
    let distinct = Distinct::try_new(AggregateMode::Single, project.schema()).expect("plans");
    let run = |factory: &dyn weir_engine::OperatorFactory, input: Vec<RecordBatch>| {
        sorted_rows(&drive(factory, &[input], MemoryPool::unbounded()).expect("runs"))
    };
    vec![
        run(&single(vec![col("k"), col("s")]), left.to_vec()),
        run(&single(vec![]), left.to_vec()),
        run(&distinct, pairs),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregations_match_the_single_phase_operators() {
    let left = table(7, 5000);
    let expected = aggregation_reference(&left);
    for parallelism in [1, 4] {
        for mode in [ShuffleMode::AllBlocking, ShuffleMode::AllPipelined] {
            let (graph, outputs) = aggregations(&left, parallelism, mode);
            MiniCluster::new(test_config(4))
                .run(graph)
                .await
                .expect("the job succeeds");
            assert_outputs(&outputs, &expected, |i| {
                format!("output {i}, parallelism {parallelism}, {mode}")
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregations_spill_and_survive_failures_with_identical_results() {
    let left = table(8, 20_000);
    let expected = aggregation_reference(&left);
    let job = || aggregations(&left, 2, ShuffleMode::AllBlocking);
    spill_and_fail(64 << 10, 4, &mut Rng::new(9), 2000, job, &expected).await;
}

/// The right side of the join tests: `table(seed)` with its columns renamed
/// to `k2, s2, d2`, and `k2` an `Int32` (the left `k` is an `Int64`, so the
/// planner has to bring the keys to one type).
fn right_side(flow: &Dataflow, right: &[RecordBatch]) -> weir_engine::dataframe::DataFrame {
    flow.read(source("right", right))
        .select(vec![
            cast(col("k"), DataType::Int32).alias("k2"),
            col("s").alias("s2"),
            col("d").alias("d2"),
        ])
        .expect("renames")
}

/// Every join type of `left` with the renamed `right` on `k = k2`, half of
/// them with the residual filter `d <= d2`.
fn joins(
    left: &[RecordBatch],
    right: &[RecordBatch],
    parallelism: usize,
    broadcast_threshold: u64,
) -> (JobGraph, Vec<Collected>) {
    let flow = Dataflow::new("joins")
        .with_parallelism(parallelism)
        .with_broadcast_threshold(broadcast_threshold);
    let l = flow.read(source("left", left));
    let r = right_side(&flow, right);
    let outputs = JoinType::ALL
        .iter()
        .enumerate()
        .map(|(i, &join_type)| {
            let filter = (i % 2 == 1).then(|| col("d").lt_eq(col("d2")));
            let (sink, output) = CollectSink::new();
            l.join(&r, join_type, &[("k", "k2")], filter)
                .expect("plans")
                .write(Arc::new(sink));
            output
        })
        .collect();
    (
        flow.build(ShuffleMode::AllBlocking, parallelism)
            .expect("builds"),
        outputs,
    )
}

/// The rows [`right_side`] reads, computed by the renaming projection alone.
fn renamed_right(right: &[RecordBatch]) -> Vec<RecordBatch> {
    let schema = right[0].schema();
    let compile = |e: &Expr| Compiled::new(e, &schema).expect("compiles");
    let rename = Project::new(vec![
        (compile(&cast(col("k"), DataType::Int32)), "k2".into()),
        (compile(&col("s")), "s2".into()),
        (compile(&col("d")), "d2".into()),
    ]);
    drive(&rename, &[right.to_vec()], MemoryPool::unbounded()).expect("renames")
}

/// What [`joins`] must produce: the renaming projection and the hash join
/// alone in one subtask.
fn join_reference(left: &[RecordBatch], right: &[RecordBatch]) -> Vec<Vec<String>> {
    let renamed = renamed_right(right);
    let (lschema, rschema) = (left[0].schema(), renamed[0].schema());
    let both = joined_schema(&lschema, &rschema);
    JoinType::ALL
        .iter()
        .enumerate()
        .map(|(i, &join_type)| {
            let filter = (i % 2 == 1)
                .then(|| Compiled::new(&col("d").lt_eq(col("d2")), &both).expect("compiles"));
            let on = vec![(
                Compiled::new(&col("k"), &lschema).expect("compiles"),
                Compiled::new(&col("k2"), &rschema).expect("compiles"),
            )];
            let join = HashJoin::try_new(
                join_type,
                Arc::clone(&lschema),
                Arc::clone(&rschema),
                on,
                filter,
                JoinSide::Right,
            )
            .expect("plans");
            let out = drive(
                &join,
                &[left.to_vec(), renamed.clone()],
                MemoryPool::unbounded(),
            )
            .expect("joins");
            sorted_rows(&out)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_match_the_operator_alone_partitioned_and_broadcast() {
    let (left, right) = (table(10, 3000), table(11, 1500));
    let expected = join_reference(&left, &right);
    for parallelism in [1, 4] {
        for threshold in [0, u64::MAX] {
            let (graph, outputs) = joins(&left, &right, parallelism, threshold);
            let broadcasts = graph
                .edges
                .iter()
                .filter(|e| e.partitioner == weir_exchange::Partitioner::Broadcast)
                .count();
            assert_eq!(broadcasts > 0, threshold > 0, "threshold {threshold}");
            MiniCluster::new(test_config(4))
                .run(graph)
                .await
                .expect("the job succeeds");
            assert_outputs(&outputs, &expected, |i| {
                let join_type = JoinType::ALL[i];
                format!("{join_type:?}, parallelism {parallelism}, broadcast threshold {threshold}")
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_spill_and_survive_failures_with_identical_results() {
    let (left, right) = (table(12, 6000), table(13, 6000));
    let expected = join_reference(&left, &right);
    let job = || joins(&left, &right, 2, 0);
    spill_and_fail(256 << 10, 3, &mut Rng::new(14), 1000, job, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joins_without_keys_match_the_nested_loop_operator_alone() {
    let (left, right) = (table(15, 400), table(16, 300));
    let types = [
        JoinType::Inner,
        JoinType::Left,
        JoinType::Full,
        JoinType::LeftAnti,
        JoinType::RightSemi,
    ];
    let condition = || col("k").lt(col("k2") - lit(40i32));
    // The reference: the renaming projection and the nested-loop join alone.
    let renamed = renamed_right(&right);
    let (lschema, rschema) = (left[0].schema(), renamed[0].schema());
    let both = joined_schema(&lschema, &rschema);
    let expected: Vec<Vec<String>> = types
        .iter()
        .map(|&join_type| {
            let join = NestedLoopJoin::try_new(
                join_type,
                Arc::clone(&lschema),
                Arc::clone(&rschema),
                Compiled::new(&condition(), &both).expect("compiles"),
                JoinSide::Right,
            )
            .expect("plans");
            let out = drive(
                &join,
                &[left.clone(), renamed.clone()],
                MemoryPool::unbounded(),
            )
            .expect("joins");
            sorted_rows(&out)
        })
        .collect();
    for threshold in [0, u64::MAX] {
        let flow = Dataflow::new("theta-joins")
            .with_parallelism(4)
            .with_broadcast_threshold(threshold);
        let l = flow.read(source("left", &left));
        let r = right_side(&flow, &right);
        let outputs: Vec<Collected> = types
            .iter()
            .map(|&join_type| {
                let (sink, output) = CollectSink::new();
                l.join(&r, join_type, &[], Some(condition()))
                    .expect("plans")
                    .write(Arc::new(sink));
                output
            })
            .collect();
        MiniCluster::new(test_config(4))
            .run(flow.build(ShuffleMode::AllBlocking, 4).expect("builds"))
            .await
            .expect("the job succeeds");
        assert_outputs(&outputs, &expected, |i| {
            format!("{:?}, broadcast threshold {threshold}", types[i])
        });
    }
    let flow = Dataflow::new("no-condition");
    let err = flow
        .read(source("left", &left))
        .join(&right_side(&flow, &right), JoinType::Inner, &[], None)
        .expect_err("needs a condition");
    assert!(err.to_string().contains("needs a condition"), "{err}");
}
