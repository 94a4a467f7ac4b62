//! The `kafka` sink against a real Kafka-protocol broker (tansu on
//! 127.0.0.1): rows written as messages with their keys, read back by the
//! `kafka` source and by a plain consumer; the partitioners; the errors of
//! a missing topic and of options the sink does not take.

mod common;
#[path = "support/kafka_broker.rs"]
mod kafka_broker;

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::*;
use kafka_broker::Broker;
use weir_engine::dataframe::Dataflow;
use weir_engine::sinks::CollectSink;
use weir_engine::testing::sorted_rows;
use weir_scheduler::MiniCluster;

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
            assert!(keys.insert(key), "one message per row");
        }
    }
    assert_eq!(keys.len(), 1000);
    // The same key always goes to the same partition, and the keys spread.
    assert!(partitions.iter().all(|p| !p.is_empty()));

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
    // Subtask 0 writes partition 0, subtask 1 partition 1.
    assert_eq!(counts[2], 0, "{counts:?}");
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
            "not available yet",
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
