//! Jobs and helpers shared by the scheduler's end-to-end tests.

#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use weir_engine::SourceFactory;
use weir_engine::expr::aggregate::count;
use weir_engine::expr::{Compiled, col, lit};
use weir_engine::graph::{ExchangeMode, JobBuilder, JobGraph, ShuffleMode};
use weir_engine::operators::{AggregateMode, Filter, HashAggregate, MapBatches};
use weir_engine::sinks::{CollectSink, Collected};
use weir_engine::sources::SequenceGenerator;
use weir_exchange::Partitioner;
use weir_scheduler::failover::restart::RestartStrategy;
use weir_scheduler::{FailoverKind, JobConfig};

/// A three-stage batch job, each stage its own vertex:
/// `A: generator -> filter` --(hash(key), blocking)--> `B: count per key`
/// --(`b_to_c`, blocking)--> `C: pass-through -> collect`.
pub struct ThreeStage {
    pub graph: JobGraph,
    pub output: Collected,
}

pub fn three_stage(
    rows: u64,
    parallelism: [usize; 3],
    a_to_b: Partitioner,
    b_to_c: Partitioner,
) -> ThreeStage {
    let mut job = JobBuilder::new("three-stage");
    let generator = SequenceGenerator::new(Some(rows), 97).with_batch_rows(256);
    let predicate = Compiled::new(&col("value").lt(lit(700i64)), &generator.schema())
        .expect("the predicate compiles");
    let source = job.source(Arc::new(generator));
    job.set_parallelism(source, parallelism[0]);
    let filtered = job.operator(Arc::new(Filter::new(predicate)), [source.forward()]);
    job.set_parallelism(filtered, parallelism[0]);
    let counted = job.operator(
        count_per_key(AggregateMode::Partial),
        [filtered.with(a_to_b).blocking()],
    );
    job.set_parallelism(counted, parallelism[1]);
    let passed = job.operator(
        Arc::new(MapBatches::new(
            "pass",
            Arc::new(|b: &RecordBatch| Ok(b.clone())),
        )),
        [counted.with(b_to_c).blocking()],
    );
    job.set_parallelism(passed, parallelism[2]);
    let (sink, output) = CollectSink::new();
    let sink_node = job.sink(Arc::new(sink), [passed.forward()]);
    job.set_parallelism(sink_node, parallelism[2]);
    let graph = job
        .build(ShuffleMode::AllBlocking, 8)
        .expect("the job builds");
    assert_eq!(graph.vertices.len(), 3);
    assert!(graph.edges.iter().all(|e| e.mode == ExchangeMode::Blocking));
    ThreeStage { graph, output }
}

/// A configuration for tests: partitions in memory, no restart delay.
pub fn test_config(slots: usize) -> JobConfig {
    JobConfig {
        slots,
        shuffle_root: "memory://".to_string(),
        restart: RestartStrategy::FixedDelay {
            attempts: 10,
            delay: std::time::Duration::ZERO,
        },
        failover: FailoverKind::Region,
        ..JobConfig::default()
    }
}

/// All rows of `batches` in one batch, sorted by every column.
pub fn sorted(batches: &[RecordBatch]) -> RecordBatch {
    let schema = batches.first().expect("the job produced output").schema();
    let all = concat_batches(&schema, batches).unwrap();
    let columns: Vec<SortColumn> = all
        .columns()
        .iter()
        .map(|c| SortColumn {
            values: Arc::clone(c),
            options: None,
        })
        .collect();
    let indices = lexsort_to_indices(&columns, None).unwrap();
    take_record_batch(&all, &indices).unwrap()
}

/// Counts the generator's rows per `key` (output `key`, `count`), in `mode`;
/// the final phase reads what the partial one emits.
pub fn count_per_key(mode: AggregateMode) -> Arc<HashAggregate> {
    let input = SequenceGenerator::new(Some(1), 1).schema();
    Arc::new(
        HashAggregate::try_new(
            mode,
            &input,
            vec![(col("key"), "key".to_string())],
            vec![(count(lit(1)), "count".to_string())],
        )
        .expect("the count plans"),
    )
}
