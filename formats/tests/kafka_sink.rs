//! The `kafka` sink against a real Kafka-protocol broker (tansu on
//! 127.0.0.1): rows written as messages with their keys, read back by the
//! `kafka` source and by a plain consumer; the partitioners; tasks failed
//! or killed mid-stream losing no row (at least once); the errors of a
//! missing topic and of options the sink does not take.

mod common;
#[path = "support/kafka_broker.rs"]
mod kafka_broker;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use common::*;
use kafka_broker::Broker;
use weir_engine::dataframe::Dataflow;
use weir_engine::graph::{RuntimeMode, VertexId};
use weir_engine::sinks::CollectSink;
use weir_engine::testing::sorted_rows;
use weir_scheduler::{FailurePlan, JobSummary, MiniCluster};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]))
}

/// `n` rows `(i, "name i")`, in batches of 100.
fn rows(n: i64) -> Vec<RecordBatch> {
    (0..n)
        .step_by(100)
        .map(|start| {
            let ids: Vec<i64> = (start..(start + 100).min(n)).collect();
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(Int64Array::from(ids.clone())),
                    Arc::new(StringArray::from_iter_values(
                        ids.iter().map(|i| format!("name {i}")),
                    )),
                ],
            )
            .expect("a batch")
        })
        .collect()
}

fn sink_options(broker: &Broker, topic: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    // One message per produce request: tansu's answer to where a topic
    // ends (which the source's bounded mode asks) is right only then.
    let mut options = vec![
        ("topic".to_string(), topic.to_string()),
        ("properties.bootstrap.servers".to_string(), broker.servers()),
        ("properties.batch.num.messages".to_string(), "1".to_string()),
        ("format".to_string(), "json".to_string()),
    ];
    options.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    options
}

/// Kafka's murmur2 hash of a key, as its Java client's partitioner
/// computes it (`Utils.murmur2`).
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h = 0x9747_b28c_u32 ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().expect("4 bytes"));
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate().rev() {
            h ^= u32::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^ (h >> 15)
}

fn pairs(options: &[(String, String)]) -> Vec<(&str, &str)> {
    options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

async fn write(broker: &Broker, topic: &str, extra: &[(&str, &str)], parallelism: usize, n: i64) {
    let options = sink_options(broker, topic, extra);
    let kafka = sink("kafka", &pairs(&options), schema()).await;
    let flow = Dataflow::new("to-kafka").with_parallelism(parallelism);
    flow.read(memory_source(&rows(n))).write(kafka);
    MiniCluster::new(config(0))
        .run(graph(&flow))
        .await
        .expect("the job writing to kafka");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_become_keyed_messages_that_the_source_reads_back() {
    let broker = Broker::start();
    broker.create_topic("out", 3);
    write(
        &broker,
        "out",
        &[
            ("key.format", "csv"),
            ("key.fields", "id"),
            ("value.fields-include", "EXCEPT_KEY"),
        ],
        2,
        1000,
    )
    .await;
    let partitions = broker.read_all("out");
    let mut keys = BTreeSet::new();
    for (p, messages) in partitions.iter().enumerate() {
        for (key, value) in messages {
            let key = String::from_utf8(key.clone().expect("a key")).expect("text");
            let value = String::from_utf8(value.clone().expect("a value")).expect("text");
            assert_eq!(
                value,
                format!(r#"{{"name":"name {key}"}}"#),
                "partition {p}"
            );
            // Kafka's Java client's partition of the key.
            let hash = murmur2(key.as_bytes()) & 0x7fff_ffff;
            assert_eq!(p, hash as usize % 3, "the partition of key {key}");
            assert!(keys.insert(key), "one message per row");
        }
    }
    assert_eq!(keys.len(), 1000);

    // Read back through the source, the key column from the key.
    let read = vec![
        ("topic", "out"),
        ("format", "json"),
        ("key.format", "csv"),
        ("key.fields", "id"),
        ("value.fields-include", "EXCEPT_KEY"),
        ("scan.startup.mode", "earliest-offset"),
        ("scan.bounded.mode", "latest-offset"),
    ];
    let servers = broker.servers();
    let mut read_pairs = read.clone();
    read_pairs.push(("properties.bootstrap.servers", &servers));
    let source = declared_source("kafka", &read_pairs, Some(schema()))
        .await
        .expect("a source");
    let flow = Dataflow::new("from-kafka").with_parallelism(3);
    let (collect, collected) = CollectSink::new();
    flow.read(source).write(Arc::new(collect));
    MiniCluster::new(config(0))
        .run(graph(&flow))
        .await
        .expect("the job reading kafka");
    assert_eq!(sorted_rows(&collected.batches()), sorted_rows(&rows(1000)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_and_round_robin_partitioners_place_rows_as_flink_does() {
    let broker = Broker::start();
    broker.create_topic("fixed", 3);
    write(&broker, "fixed", &[("sink.partitioner", "fixed")], 2, 300).await;
    let counts: Vec<usize> = broker.read_all("fixed").iter().map(Vec::len).collect();
    // Subtask 0 writes partition 0, subtask 1 partition 1 (each reads
    // some of the rows), none partition 2.
    assert!(
        counts[0] > 0 && counts[1] > 0 && counts[2] == 0,
        "{counts:?}"
    );
    assert_eq!(counts.iter().sum::<usize>(), 300);

    broker.create_topic("rr", 3);
    write(
        &broker,
        "rr",
        &[("sink.partitioner", "round-robin")],
        1,
        300,
    )
    .await;
    let counts: Vec<usize> = broker.read_all("rr").iter().map(Vec::len).collect();
    assert_eq!(counts, vec![100, 100, 100]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_and_unknown_options_are_named() {
    let broker = Broker::start();
    let options = sink_options(&broker, "nope", &[]);
    let e = weir_formats::registry()
        .sink("kafka", &options_of(&options), schema())
        .await
        .expect_err("no such topic")
        .to_string();
    assert!(e.contains("topic 'nope'"), "{e}");
    broker.create_topic("t", 1);
    for (extra, expected) in [
        (
            ("sink.partitioner", "hash"),
            "invalid value 'hash' (valid: default, fixed, round-robin)",
        ),
        (
            ("sink.delivery-guarantee", "exactly-once"),
            "option 'sink.transactional-id-prefix': is required",
        ),
        (
            ("sink.transactional-id-prefix", "job"),
            "is only used with 'sink.delivery-guarantee' = 'exactly-once'",
        ),
        (("topic-pattern", "t.*"), "not both"),
        (
            ("sink.parallelizm", "2"),
            "unknown option 'sink.parallelizm'",
        ),
    ] {
        let options = sink_options(&broker, "t", &[extra]);
        let e = weir_formats::registry()
            .sink("kafka", &options_of(&options), schema())
            .await
            .expect_err("an invalid option")
            .to_string();
        assert!(e.contains(expected), "{extra:?}: {e}");
    }
}

fn options_of(options: &[(String, String)]) -> weir_engine::registry::ConnectorOptions {
    options.iter().cloned().collect()
}

/// A job copying topic `in` to topic `out` at parallelism 3 in streaming
/// mode, checkpointing every 20 ms, with `plan`'s failures.
async fn copy_with_failures(broker: &Broker, plan: FailurePlan) -> JobSummary {
    let servers = broker.servers();
    let read = [
        ("topic", "in"),
        ("properties.bootstrap.servers", servers.as_str()),
        ("format", "json"),
        ("scan.startup.mode", "earliest-offset"),
        ("scan.bounded.mode", "latest-offset"),
    ];
    let source = declared_source("kafka", &read, Some(schema()))
        .await
        .expect("a source");
    let options = sink_options(broker, "out", &[]);
    let kafka = sink("kafka", &pairs(&options), schema()).await;
    let flow = Dataflow::new("copy").with_parallelism(3);
    flow.read(source).write(kafka);
    let checkpoints = tempfile::tempdir().expect("a directory");
    let mut config = config(10);
    config.runtime_mode = Some(RuntimeMode::Streaming);
    config.checkpoint_interval = Some(Duration::from_millis(20));
    config.checkpoint_dir = checkpoints.path().display().to_string();
    let graph = config.build(flow.builder()).expect("builds");
    MiniCluster::new(config)
        .run_with_failures(graph, plan)
        .await
        .expect("the job survives its failures")
}

/// Tasks that fail or are killed mid-stream restart from the last
/// checkpoint: the output holds every row at least once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_mid_stream_lose_no_row() {
    for seed in 1..=3u64 {
        let broker = Broker::start();
        broker.create_topic("in", 3);
        broker.create_topic("out", 2);
        let rows = rows(3000);
        let messages: Vec<String> = rows
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_primitive::<Int64Type>().clone();
                ids.values().to_vec()
            })
            .map(|i| format!(r#"{{"id": {i}, "name": "name {i}"}}"#))
            .collect();
        let produced: Vec<kafka_broker::Message<'_>> = messages
            .iter()
            .enumerate()
            .map(|(i, value)| kafka_broker::Message {
                partition: (i % 3) as i32,
                value: Some(value.as_bytes()),
                ..kafka_broker::Message::default()
            })
            .collect();
        broker.produce("in", &produced);
        let plan = FailurePlan::none()
            .fail_task(VertexId(0), (seed % 3) as u32, 0, 100 * seed)
            .kill_task_at(VertexId(0), ((seed + 1) % 3) as u32, 0, 300 * seed);
        let summary = copy_with_failures(&broker, plan).await;
        assert!(summary.restarts >= 1, "seed {seed}: {summary:?}");
        let mut copied = BTreeSet::new();
        for (_, value) in broker.read_all("out").into_iter().flatten() {
            let row: serde_json::Value =
                serde_json::from_slice(&value.expect("a value")).expect("JSON");
            copied.insert(row["id"].as_i64().expect("an id"));
        }
        assert_eq!(copied.len(), 3000, "seed {seed}: every row at least once");
    }
}

/// Avro values (and CSV keys) written by the sink read back by the source
/// with the same schema; a message that is not a datum of it is bad.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_values_round_trip_through_a_topic() {
    let broker = Broker::start();
    broker.create_topic("avro", 2);
    let avro_schema = r#"{"type": "record", "name": "row", "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": ["null", "string"]}
    ]}"#;
    let avro = [
        ("format", "avro"),
        ("avro.schema", avro_schema),
        ("key.format", "csv"),
        ("key.fields", "id"),
    ];
    write(&broker, "avro", &avro, 2, 500).await;
    broker.produce(
        "avro",
        &[kafka_broker::Message {
            value: Some(b"not avro"),
            ..kafka_broker::Message::default()
        }],
    );
    let servers = broker.servers();
    let mut read = avro.to_vec();
    read.extend([
        ("topic", "avro"),
        ("properties.bootstrap.servers", servers.as_str()),
        ("scan.startup.mode", "earliest-offset"),
        ("scan.bounded.mode", "latest-offset"),
        ("bad-records", "drop"),
    ]);
    let source = declared_source("kafka", &read, Some(schema()))
        .await
        .expect("a source");
    let flow = Dataflow::new("from-kafka").with_parallelism(2);
    let (collect, collected) = CollectSink::new();
    flow.read(source).write(Arc::new(collect));
    let summary = MiniCluster::new(config(0))
        .run(graph(&flow))
        .await
        .expect("the job reading kafka");
    assert_eq!(sorted_rows(&collected.batches()), sorted_rows(&rows(500)));
    assert_eq!(counter(&summary, "bad records dropped"), 1);
}
