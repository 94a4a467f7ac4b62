//! The exactly-once `kafka` sink's transactions, on librdkafka's mock
//! cluster, which runs Kafka's transactional protocol (producer ids,
//! epochs and fencing, commits and aborts) but writes no commit markers: a
//! consumer there reads aborted messages too. What a read-committed
//! consumer of a real broker would see is therefore read through what weir
//! committed: the offsets its committed transactions wrote.
//!
//! Streaming jobs whose tasks fail or are killed at random instants, and
//! batch jobs whose tasks fail, commit every row exactly once; a zombie
//! attempt is fenced; an unbounded job without checkpoints is refused.

mod common;
#[path = "support/kafka_broker.rs"]
mod kafka_broker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use weir_engine::dataframe::Dataflow;
use weir_engine::expr::col;
use weir_engine::graph::{RuntimeMode, VertexId};
use weir_engine::memory::MemoryPool;
use weir_engine::sources::SequenceGenerator;
use weir_engine::testing::Rng;
use weir_engine::{CheckpointCommit, SinkFactory};
use weir_formats::kafka::KafkaSinkFactory;
use weir_scheduler::{FailurePlan, JobConfig, JobSummary, MiniCluster};

const ROWS: u64 = 100_000;
const TOPIC: &str = "out";
const PARTITIONS: i32 = 2;

/// A mock cluster of one broker with the output topic.
fn cluster() -> MockCluster<'static, DefaultProducerContext> {
    let mock = MockCluster::new(1).expect("a mock cluster");
    mock.create_topic(TOPIC, PARTITIONS, 1).expect("a topic");
    mock
}

/// An exactly-once sink of rows of `schema` into the topic, each subtask
/// writing its own partition.
async fn kafka_sink(servers: &str, schema: &SchemaRef) -> Arc<KafkaSinkFactory> {
    let options = options(&[
        ("topic", TOPIC),
        ("properties.bootstrap.servers", servers),
        ("format", "json"),
        ("sink.partitioner", "fixed"),
        ("sink.delivery-guarantee", "exactly-once"),
        ("sink.transactional-id-prefix", "weir-test"),
    ]);
    Arc::new(
        KafkaSinkFactory::open(&options, schema)
            .await
            .expect("an exactly-once sink"),
    )
}

/// The numbers `0..ROWS` from a generator, written into `kafka` by a job
/// at parallelism 2 in `mode`, checkpointing every 20 ms when streaming,
/// with `plan`'s failures.
async fn run(
    servers: &str,
    mode: RuntimeMode,
    plan: FailurePlan,
) -> (Arc<KafkaSinkFactory>, JobSummary) {
    let flow = Dataflow::new("exactly-once-kafka").with_parallelism(2);
    let generator = SequenceGenerator::new(Some(ROWS), 7).with_batch_rows(100);
    let numbers = flow
        .read(Arc::new(generator))
        .select(vec![col("seq")])
        .expect("selects");
    let kafka = kafka_sink(servers, numbers.schema()).await;
    numbers.write(Arc::clone(&kafka) as Arc<dyn SinkFactory>);
    let checkpoints = tempfile::tempdir().expect("a directory");
    let mut config: JobConfig = config(10);
    config.runtime_mode = Some(mode);
    if mode == RuntimeMode::Streaming {
        config.checkpoint_interval = Some(Duration::from_millis(20));
        config.checkpoint_dir = checkpoints.path().display().to_string();
    }
    let graph = config.build(flow.builder()).expect("builds");
    let summary = MiniCluster::new(config)
        .run_with_failures(graph, plan)
        .await
        .expect("the job survives its failures");
    (kafka, summary)
}

/// The number in each message of the topic, by partition and offset,
/// aborted ones included (the mock writes no markers).
fn messages(servers: &str) -> Vec<BTreeMap<i64, i64>> {
    kafka_broker::read_partitions(servers, TOPIC)
        .into_iter()
        .map(|partition| {
            partition
                .into_iter()
                .map(|(offset, (_, value))| {
                    let row: serde_json::Value =
                        serde_json::from_slice(&value.expect("a value")).expect("JSON");
                    (offset, row["seq"].as_i64().expect("a number"))
                })
                .collect()
        })
        .collect()
}

/// How often each number is in a transaction `kafka` committed.
fn committed_numbers(servers: &str, kafka: &KafkaSinkFactory) -> BTreeMap<i64, usize> {
    let messages = messages(servers);
    let mut seen = BTreeMap::new();
    for transaction in kafka.committed_transactions() {
        for (partition, (first, last)) in &transaction.offsets {
            for (_, seq) in messages[*partition as usize].range(first..=last) {
                *seen.entry(*seq).or_insert(0) += 1;
            }
        }
    }
    seen
}

/// The ids of the transactions `kafka` committed, in order.
fn committed_ids(kafka: &KafkaSinkFactory) -> Vec<String> {
    kafka
        .committed_transactions()
        .into_iter()
        .map(|t| t.transactional_id)
        .collect()
}

fn assert_exactly_once(seen: &BTreeMap<i64, usize>, what: &str) {
    assert_eq!(seen.len() as u64, ROWS, "{what}: every number is committed");
    let repeated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "{what}: committed twice: {repeated:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_commits_every_row_once_whatever_fails() {
    let mut rng = Rng::new(16);
    let mut aborted_some = false;
    for round in 0..4 {
        let mock = cluster();
        let servers = mock.bootstrap_servers();
        // A subtask of the job's one vertex (the source chained to the
        // sink) fails at a random row, or is killed at a random instant,
        // on its first two attempts.
        let mut plan = FailurePlan::none();
        for attempt in 0..2 {
            let vertex = VertexId(0);
            let subtask = rng.below(2) as u32;
            let at = 1_000 + rng.below(ROWS / 3);
            plan = match round % 2 {
                0 => plan.fail_task(vertex, subtask, attempt, at),
                _ => plan.kill_task_at(vertex, subtask, attempt, at),
            };
        }
        let (kafka, summary) = run(&servers, RuntimeMode::Streaming, plan).await;
        assert!(summary.restarts >= 1, "round {round}: {summary}");
        let seen = committed_numbers(&servers, &kafka);
        assert_exactly_once(&seen, &format!("round {round}: {summary}"));
        // What failed attempts wrote is in the topic, uncommitted.
        let written: usize = messages(&servers).iter().map(BTreeMap::len).sum();
        aborted_some |= written as u64 > ROWS;
        assert!(
            kafka.committed_transactions().len() > 2,
            "round {round}: one transaction per checkpoint, not one per job"
        );
    }
    assert!(aborted_some, "no failure left rows to abort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_commits_its_final_attempts_when_it_ends() {
    let mock = cluster();
    let servers = mock.bootstrap_servers();
    let plan = FailurePlan::none().fail_task(VertexId(0), 1, 0, 3_000);
    let (kafka, summary) = run(&servers, RuntimeMode::Batch, plan).await;
    assert_eq!(summary.restarts, 1, "{summary}");
    assert_exactly_once(&committed_numbers(&servers, &kafka), "batch");
    // One transaction per subtask: the final attempts'.
    assert_eq!(kafka.committed_transactions().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_job_without_checkpoints_is_refused() {
    let mock = cluster();
    let servers = mock.bootstrap_servers();
    let flow = Dataflow::new("never-commits");
    let numbers = flow.read(Arc::new(SequenceGenerator::new(None, 7)));
    let kafka = kafka_sink(&servers, numbers.schema()).await;
    numbers.write(kafka);
    let mut config = config(0);
    config.runtime_mode = Some(RuntimeMode::Streaming);
    let graph = config.build(flow.builder()).expect("builds");
    let e = tokio::time::timeout(Duration::from_secs(30), MiniCluster::new(config).run(graph))
        .await
        .expect("refused at once")
        .expect_err("refused")
        .to_string();
    assert!(e.contains("execution.checkpointing.interval"), "{e}");
    assert!(e.contains("exactly-once"), "{e}");
}

/// Builds the sink's subtask 0 as attempt `attempt` would.
fn subtask(kafka: &KafkaSinkFactory, attempt: u32) -> Box<dyn weir_engine::Sink> {
    let mut task = weir_engine::testing::task_info(MemoryPool::unbounded());
    task.attempt = attempt;
    kafka.create(&task).expect("a subtask")
}

/// Ten numbers from `from`.
fn numbers(schema: &SchemaRef, from: i64) -> RecordBatch {
    let seq = Int64Array::from_iter_values(from..from + 10);
    RecordBatch::try_new(Arc::clone(schema), vec![Arc::new(seq)]).expect("a batch")
}

/// A producer that another took over (a zombie: a process thought dead,
/// or the same job started twice) is fenced: the broker refuses its
/// commit for its old epoch, and the commit fails naming the transaction;
/// nothing of it counts as committed. (The mock cluster does not fence
/// producers itself: it answers the zombie's commit as a broker that did.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_commit_fails_naming_its_transaction() {
    let mock = cluster();
    let servers = mock.bootstrap_servers();
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("seq", DataType::Int64, false)]));
    let kafka = kafka_sink(&servers, &schema).await;
    let mut zombie = subtask(&kafka, 0);
    zombie
        .write_batch(numbers(&schema, 0))
        .await
        .expect("writes");
    let committables = [zombie
        .prepare_commit(1)
        .await
        .expect("prepares")
        .expect("a transaction")];
    mock.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH],
    );
    let commit = CheckpointCommit {
        job_id: "zombie",
        checkpoint: 1,
        committables: &committables,
        decided_by: Some("completed"),
    };
    let e = kafka
        .commit_checkpoint(&commit)
        .await
        .expect_err("the zombie is fenced")
        .to_string();
    assert!(
        e.contains("cannot commit transaction 'weir-test-0-1'"),
        "{e}"
    );
    assert!(e.contains("another producer took over"), "{e}");
    assert!(kafka.committed_transactions().is_empty());
}

/// A job resumed from a checkpoint in a new process commits the
/// checkpoint's transaction that the process which took it did not (it
/// died first), with the producer id and epoch the checkpoint recorded;
/// one that Kafka aborted meanwhile fails the job, naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_job_commits_what_the_dead_run_did_not() {
    let mock = cluster();
    let servers = mock.bootstrap_servers();
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("seq", DataType::Int64, false)]));
    // The first run prepares checkpoint 1, which completes, and dies
    // before it commits.
    let dead = kafka_sink(&servers, &schema).await;
    let mut writer = subtask(&dead, 0);
    writer
        .write_batch(numbers(&schema, 0))
        .await
        .expect("writes");
    let committables = [writer
        .prepare_commit(1)
        .await
        .expect("prepares")
        .expect("a transaction")];
    let recorded: weir_formats::kafka::transactions::Committable =
        serde_json::from_value(committables[0].clone()).expect("a committable");
    assert!(recorded.waiting[0].producer.is_some(), "{recorded:?}");
    let restored = CheckpointCommit {
        job_id: "resumed",
        checkpoint: 1,
        committables: &committables,
        decided_by: None,
    };
    // A run whose commit finds the transaction aborted fails, naming it.
    let aborted = kafka_sink(&servers, &schema).await;
    mock.request_errors(
        RDKafkaApiKey::EndTxn,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_TXN_STATE],
    );
    let e = aborted
        .commit_checkpoint(&restored)
        .await
        .expect_err("an aborted transaction")
        .to_string();
    assert!(
        e.contains("'weir-test-0-1'") && e.contains("Kafka aborted it"),
        "{e}"
    );
    // The resumed run commits it.
    let resumed = kafka_sink(&servers, &schema).await;
    resumed
        .commit_checkpoint(&restored)
        .await
        .expect("commits the dead run's transaction");
    assert_eq!(committed_ids(&resumed), ["weir-test-0-1"]);
    let expected: BTreeMap<i64, usize> = (0..10).map(|n| (n, 1)).collect();
    assert_eq!(committed_numbers(&servers, &resumed), expected);
    assert!(dead.committed_transactions().is_empty());
}

/// A checkpoint that completes after one that failed commits both
/// checkpoints' transactions (the failed one's committable carried with
/// it). Resumed in a new process, each is committed once, and only then
/// are the later ids fenced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_job_commits_a_failed_checkpoints_transaction_once() {
    let mock = cluster();
    let servers = mock.bootstrap_servers();
    let schema: SchemaRef = Arc::new(Schema::new(vec![Field::new("seq", DataType::Int64, false)]));
    let dead = kafka_sink(&servers, &schema).await;
    let mut writer = subtask(&dead, 0);
    let mut committables = Vec::new();
    for (checkpoint, from) in [(1, 0), (2, 10)] {
        writer
            .write_batch(numbers(&schema, from))
            .await
            .expect("writes");
        let committable = writer.prepare_commit(checkpoint).await.expect("prepares");
        committables.push(committable.expect("a transaction"));
    }
    // Checkpoint 1 failed; checkpoint 2 carries its committable.
    let restored = CheckpointCommit {
        job_id: "resumed",
        checkpoint: 2,
        committables: &committables,
        decided_by: None,
    };
    let resumed = kafka_sink(&servers, &schema).await;
    resumed
        .commit_checkpoint(&restored)
        .await
        .expect("commits the dead run's transactions");
    assert_eq!(committed_ids(&resumed), ["weir-test-0-1", "weir-test-0-2"]);
    let expected: BTreeMap<i64, usize> = (0..20).map(|n| (n, 1)).collect();
    assert_eq!(committed_numbers(&servers, &resumed), expected);
}
