//! Benchmarks of weir's relational operators on one core, over the `events`
//! table (see `weir_bench::events`): filter + project, hash aggregate at 10,
//! 10K and as many groups as rows, hash join build + probe, and sort in
//! memory and spilling. `bench/peers/operators.py` runs the same operations
//! in DuckDB and DataFusion (one thread each) for the reference ratios.
//!
//! Run with `cargo bench -p weir-bench --bench operators`; `bench/README.md`
//! lists figures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weir_bench::events::{build_batches, events_batches};
use weir_engine::OperatorFactory;
use weir_engine::expr::aggregate::{count, sum};
use weir_engine::expr::{Compiled, col, lit};
use weir_engine::memory::{MemoryConfig, MemoryPool};
use weir_engine::operators::{
    AggregateMode, Filter, HashAggregate, HashJoin, JoinSide, JoinType, Project, Sort, SortKey,
};
use weir_engine::testing::drive;

/// Rows of the `events` table every benchmark reads.
const ROWS: usize = 10_000_000;
/// Rows of the join's build side.
const BUILD_ROWS: usize = 1_000_000;
/// Rows per input batch.
const BATCH_ROWS: usize = 8192;
/// The budget of the spilling sort: a fraction of the table's 480 MB.
const SPILL_BUDGET: usize = 64 << 20;

fn pool(budget: usize) -> MemoryPool {
    MemoryPool::new(MemoryConfig {
        budget,
        spill: true,
        spill_dir: std::env::temp_dir().join("weir-bench-spill"),
    })
}

/// Times `iters` runs of `operators`, each over all of `input`, the output
/// of one feeding the next.
fn time_chain(
    operators: &[&dyn OperatorFactory],
    input: &[RecordBatch],
    budget: usize,
    iters: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        let mut batches = input.to_vec();
        for op in operators {
            batches = drive(*op, &[batches], pool(budget)).expect("the operator runs");
        }
        black_box(batches);
    }
    start.elapsed()
}

fn operators(c: &mut Criterion) {
    let input = events_batches(ROWS, BATCH_ROWS);
    let schema = input[0].schema();
    let compile = |e| Compiled::new(&e, &schema).expect("compiles");
    let mut group = c.benchmark_group("operators");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(ROWS as u64));

    let filter = Filter::new(compile(
        col("v").lt(lit(500i64)).and(col("x").gt(lit(10.0))),
    ));
    // A filter keeps its input's schema, so the projection types against it.
    let project = Project::new(vec![
        (compile(col("k10k")), "k10k".into()),
        (compile(col("v") * lit(2i64) + lit(1i64)), "w".into()),
    ]);
    group.bench_function("filter-project", |b| {
        b.iter_custom(|iters| time_chain(&[&filter, &project], &input, usize::MAX, iters))
    });

    for key in ["k10", "k10k", "kall"] {
        let aggregate = HashAggregate::try_new(
            AggregateMode::Single,
            &schema,
            vec![(col(key), key.to_string())],
            vec![
                (sum(col("v")), "s".to_string()),
                (count(lit(1)), "c".to_string()),
            ],
        )
        .expect("plans");
        let name = key.trim_start_matches('k');
        group.bench_function(format!("aggregate/{name}"), |b| {
            b.iter_custom(|iters| time_chain(&[&aggregate], &input, usize::MAX, iters))
        });
    }

    let build = build_batches(BUILD_ROWS, BATCH_ROWS);
    let probe_key = Project::new(vec![
        (compile(col("kall") % lit(BUILD_ROWS as i64)), "pk".into()),
        (compile(col("v")), "v".into()),
    ]);
    let join = HashJoin::try_new(
        JoinType::Inner,
        Arc::clone(probe_key.schema()),
        build[0].schema(),
        vec![(
            Compiled::new(&col("pk"), probe_key.schema()).expect("compiles"),
            Compiled::new(&col("bk"), &build[0].schema()).expect("compiles"),
        )],
        None,
        JoinSide::Right,
    )
    .expect("plans");
    group.bench_function("join/1m-build", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let probe = drive(&probe_key, std::slice::from_ref(&input), pool(usize::MAX))
                    .expect("projects");
                let joined =
                    drive(&join, &[probe, build.clone()], pool(usize::MAX)).expect("joins");
                black_box(joined);
            }
            start.elapsed()
        })
    });

    let sort = Sort::try_new(vec![
        SortKey::asc(compile(col("kall"))),
        SortKey::asc(compile(col("v"))),
    ])
    .expect("sortable");
    group.bench_function("sort/in-memory", |b| {
        b.iter_custom(|iters| time_chain(&[&sort], &input, usize::MAX, iters))
    });
    group.bench_function("sort/spilling", |b| {
        b.iter_custom(|iters| time_chain(&[&sort], &input, SPILL_BUDGET, iters))
    });
    group.finish();
}

criterion_group!(benches, operators);
criterion_main!(benches);
