//! The `kafka` source against a real Kafka-protocol broker (tansu on
//! 127.0.0.1): every startup and bounded mode, the formats with keys and
//! metadata columns, bad messages failing, dropped or dead-lettered, and the
//! errors of a missing topic or an unreachable broker.

mod common;
#[path = "support/kafka_broker.rs"]
mod kafka_broker;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use common::*;
use kafka_broker::{Broker, Message};
use weir_engine::dataframe::Dataflow;
use weir_engine::sinks::CollectSink;
use weir_engine::source::METADATA_FROM;
use weir_engine::testing::sorted_rows;
use weir_engine::{Boundedness, SourceFactory};
use weir_scheduler::{JobSummary, MiniCluster};

/// The time of the first message (ms since the epoch).
const BASE: i64 = 1_700_000_000_000;

fn field(name: &str, data_type: DataType) -> Field {
    Field::new(name, data_type, true)
}

fn metadata(name: &str, data_type: DataType, key: &str) -> Field {
    field(name, data_type).with_metadata(HashMap::from([(
        METADATA_FROM.to_string(),
        key.to_string(),
    )]))
}

fn bids() -> SchemaRef {
    Arc::new(Schema::new(vec![
        field("id", DataType::Int64),
        field("price", DataType::Int64),
    ]))
}

/// `n` JSON bids spread over `partitions`, bid `i` in partition
/// `i % partitions` at time `BASE + i`.
fn json_bids(n: i64, partitions: i32) -> Vec<(i32, String, i64)> {
    (0..n)
        .map(|i| {
            (
                (i % i64::from(partitions)) as i32,
                format!(r#"{{"id": {i}, "price": {}}}"#, i * 10),
                BASE + i,
            )
        })
        .collect()
}

fn produce(broker: &Broker, topic: &str, messages: &[(i32, String, i64)]) {
    let messages: Vec<Message<'_>> = messages
        .iter()
        .map(|(partition, value, timestamp)| Message {
            partition: *partition,
            value: Some(value.as_bytes()),
            timestamp: Some(*timestamp),
            ..Message::default()
        })
        .collect();
    broker.produce(topic, &messages);
}

/// Writes `n` bids as [`json_bids`] to `topic` (2 partitions) with the
/// producer's times, those from `marked` on written after the time
/// returned.
fn produce_marked(broker: &Broker, topic: &str, n: i64, marked: i64) -> i64 {
    let bids: Vec<(i32, String, Option<i64>)> = json_bids(n, 2)
        .into_iter()
        .map(|(p, value, _)| (p, value, None))
        .collect();
    let write = |bids: &[(i32, String, Option<i64>)]| {
        let messages: Vec<Message<'_>> = bids
            .iter()
            .map(|(partition, value, _)| Message {
                partition: *partition,
                value: Some(value.as_bytes()),
                ..Message::default()
            })
            .collect();
        broker.produce(topic, &messages);
    };
    write(&bids[..marked as usize]);
    std::thread::sleep(Duration::from_millis(50));
    let mark = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as i64;
    std::thread::sleep(Duration::from_millis(50));
    write(&bids[marked as usize..]);
    mark
}

/// Options of a table of `topic` on `broker`, with `extra`.
fn table_options(broker: &Broker, topic: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut options = vec![
        ("topic".to_string(), topic.to_string()),
        ("properties.bootstrap.servers".to_string(), broker.servers()),
        ("format".to_string(), "json".to_string()),
        ("scan.bounded.mode".to_string(), "latest-offset".to_string()),
        (
            "scan.startup.mode".to_string(),
            "earliest-offset".to_string(),
        ),
    ];
    for (key, value) in extra {
        options.retain(|(k, _)| k != key);
        options.push((key.to_string(), value.to_string()));
    }
    options
}

async fn kafka_source(
    options: &[(String, String)],
    declared: SchemaRef,
) -> weir_engine::Result<Arc<dyn SourceFactory>> {
    let pairs: Vec<(&str, &str)> = options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    declared_source("kafka", &pairs, Some(declared)).await
}

/// Runs a job reading `source` at `parallelism` into a collecting sink:
/// its summary and the rows.
async fn collect(
    source: Arc<dyn SourceFactory>,
    parallelism: usize,
) -> weir_scheduler::Result<(JobSummary, Vec<RecordBatch>)> {
    let flow = Dataflow::new("kafka").with_parallelism(parallelism);
    let (collect, collected) = CollectSink::new();
    flow.read(source).write(Arc::new(collect));
    let summary = MiniCluster::new(config(0)).run(graph(&flow)).await?;
    Ok((summary, collected.batches()))
}

/// Every row a bounded source gives, read at `parallelism`.
async fn read_all(source: Arc<dyn SourceFactory>, parallelism: usize) -> Vec<RecordBatch> {
    assert_eq!(source.boundedness(), Boundedness::Bounded);
    collect(source, parallelism).await.expect("the kafka job").1
}

/// The rows of bounded table `topic` with options `extra`, read at
/// `parallelism`.
async fn read_with(
    broker: &Broker,
    topic: &str,
    parallelism: usize,
    extra: &[(&str, &str)],
) -> Vec<String> {
    let options = table_options(broker, topic, extra);
    let source = kafka_source(&options, bids()).await.expect("a source");
    rows(&read_all(source, parallelism).await)
}

/// A way to read a table: what it is, its options, and the ids of the
/// bids it gives.
type ReadCase<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<i64>);

/// Reads table `t` of [`json_bids`] at `parallelism` as each case says,
/// and checks the bids it gives.
async fn assert_reads(broker: &Broker, parallelism: usize, cases: Vec<ReadCase<'_>>) {
    for (what, extra, ids) in cases {
        let got = read_with(broker, "t", parallelism, &extra).await;
        assert_eq!(got, expected_bids(ids.into_iter()), "{what}");
    }
}

fn rows(batches: &[RecordBatch]) -> Vec<String> {
    sorted_rows(batches)
}

fn expected_bids(ids: impl Iterator<Item = i64>) -> Vec<String> {
    let mut rows: Vec<String> = ids.map(|i| format!("{i}|{}", i * 10)).collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_every_partition_once_at_any_parallelism() {
    let broker = Broker::start();
    broker.create_topic("bids", 3);
    produce(&broker, "bids", &json_bids(3000, 3));
    let declared = Arc::new(Schema::new(vec![
        field("id", DataType::Int64),
        field("price", DataType::Int64),
        metadata("p", DataType::Int32, "partition"),
        metadata("off", DataType::Int64, "offset"),
        metadata("t", DataType::Utf8, "topic"),
        metadata(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            "timestamp",
        ),
    ]));
    for parallelism in [1, 2, 3, 4] {
        let source = kafka_source(&table_options(&broker, "bids", &[]), Arc::clone(&declared))
            .await
            .expect("a kafka source");
        let batches = read_all(source, parallelism).await;
        let mut got = rows(&batches);
        let mut expected: Vec<String> = (0..3000)
            .map(|i: i64| {
                let ts = arrow::temporal_conversions::timestamp_ms_to_datetime(BASE + i)
                    .expect("a time")
                    .format("%Y-%m-%dT%H:%M:%S%.f");
                format!("{i}|{}|{}|{}|bids|{ts}", i * 10, i % 3, i / 3)
            })
            .collect();
        expected.sort();
        got.sort();
        assert_eq!(got.len(), 3000, "at parallelism {parallelism}");
        let differ = got.iter().zip(&expected).find(|(g, e)| g != e);
        assert_eq!(differ, None, "at parallelism {parallelism}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_modes_start_where_flink_starts() {
    let broker = Broker::start();
    broker.create_topic("t", 2);
    let mark = produce_marked(&broker, "t", 100, 60).to_string();
    // A group without offsets fails unless told where to start.
    let options = table_options(
        &broker,
        "t",
        &[
            ("scan.startup.mode", "group-offsets"),
            ("properties.group.id", "g1"),
        ],
    );
    let e = kafka_source(&options, bids())
        .await
        .expect_err("no committed offsets")
        .to_string();
    assert!(
        e.contains("group 'g1' has no committed offset") && e.contains("auto.offset.reset"),
        "{e}"
    );
    // Where group g2 committed: partition 0 from offset 40 (id 80),
    // partition 1 from offset 45 (id 91).
    broker.commit("g2", "t", &[40, 45]);
    let timestamp = ("scan.startup.timestamp-millis", mark.as_str());
    let specific = (
        "scan.startup.specific-offsets",
        "partition:0,offset:45;partition:1,offset:49",
    );
    assert_reads(
        &broker,
        2,
        vec![
            ("earliest", vec![], (0..100).collect()),
            (
                "latest",
                vec![("scan.startup.mode", "latest-offset")],
                vec![],
            ),
            // Bids written after the mark.
            (
                "timestamp",
                vec![("scan.startup.mode", "timestamp"), timestamp],
                (60..100).collect(),
            ),
            // Partition 0 holds the even ids, at offset id / 2; partition
            // 1 the odd.
            (
                "specific offsets",
                vec![("scan.startup.mode", "specific-offsets"), specific],
                vec![90, 92, 94, 96, 98, 99],
            ),
            (
                "group g1, reset to earliest",
                vec![
                    ("scan.startup.mode", "group-offsets"),
                    ("properties.group.id", "g1"),
                    ("properties.auto.offset.reset", "earliest"),
                ],
                (0..100).collect(),
            ),
            (
                "group g2",
                vec![
                    ("scan.startup.mode", "group-offsets"),
                    ("properties.group.id", "g2"),
                ],
                (80..100).step_by(2).chain((91..100).step_by(2)).collect(),
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_modes_end_where_flink_ends() {
    let broker = Broker::start();
    broker.create_topic("t", 2);
    let mark = produce_marked(&broker, "t", 100, 10).to_string();
    // Group g3 committed partition 0 to offset 2 (ids 0, 2), partition 1
    // to offset 1 (id 1).
    broker.commit("g3", "t", &[2, 1]);
    assert_reads(
        &broker,
        1,
        vec![
            (
                "timestamp",
                vec![
                    ("scan.bounded.mode", "timestamp"),
                    ("scan.bounded.timestamp-millis", mark.as_str()),
                ],
                (0..10).collect(),
            ),
            // Partition 1 is not listed: not read.
            (
                "specific offsets",
                vec![
                    ("scan.bounded.mode", "specific-offsets"),
                    ("scan.bounded.specific-offsets", "partition:0,offset:3"),
                ],
                vec![0, 2, 4],
            ),
            (
                "group g3",
                vec![
                    ("scan.bounded.mode", "group-offsets"),
                    ("properties.group.id", "g3"),
                ],
                vec![0, 1, 2],
            ),
        ],
    )
    .await;
    // The end is the end when the job was built: later messages are not read.
    let options = table_options(&broker, "t", &[]);
    let source = kafka_source(&options, bids()).await.expect("a source");
    produce(&broker, "t", &json_bids(10, 2));
    assert_eq!(rows(&read_all(source, 1).await), expected_bids(0..100));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_values_and_raw_messages_decode_as_flink_declares_them() {
    let broker = Broker::start();
    broker.create_topic("csv", 1);
    let messages: Vec<(String, Option<String>)> = (0..20)
        .map(|i| {
            (
                format!("{i}"),
                (i != 7).then(|| format!("name {i},{}", i * 2)),
            )
        })
        .collect();
    let produced: Vec<Message<'_>> = messages
        .iter()
        .map(|(key, value)| Message {
            key: Some(key.as_bytes()),
            value: value.as_deref().map(str::as_bytes),
            ..Message::default()
        })
        .collect();
    broker.produce("csv", &produced);
    let declared = Arc::new(Schema::new(vec![
        field("id", DataType::Int64),
        field("name", DataType::Utf8),
        field("double", DataType::Int64),
        metadata("k", DataType::Binary, "key"),
    ]));
    let options = table_options(
        &broker,
        "csv",
        &[
            ("format", "csv"),
            ("key.format", "csv"),
            ("key.fields", "id"),
            ("value.fields-include", "EXCEPT_KEY"),
        ],
    );
    let source = kafka_source(&options, declared).await.expect("a source");
    let got = rows(&read_all(source, 1).await);
    // The tombstone (message 7) gives no row.
    let mut expected: Vec<String> = (0..20)
        .filter(|&i| i != 7)
        .map(|i: i64| {
            let key: String = i.to_string().bytes().map(|b| format!("{b:02x}")).collect();
            format!("{i}|name {i}|{}|{key}", i * 2)
        })
        .collect();
    expected.sort();
    assert_eq!(got, expected);

    let raw = Arc::new(Schema::new(vec![field("line", DataType::Utf8)]));
    let options = table_options(&broker, "csv", &[("format", "raw")]);
    let source = kafka_source(&options, raw).await.expect("a raw source");
    let got = rows(&read_all(source, 1).await);
    assert_eq!(got.len(), 20);
    assert!(got.contains(&"name 3,6".to_string()), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_fail_naming_where_they_are_or_are_dropped_or_dead_lettered() {
    let broker = Broker::start();
    broker.create_topic("bad", 2);
    let mut messages = json_bids(40, 2);
    messages[21].1 = "{\"id\": oops".to_string();
    produce(&broker, "bad", &messages);
    let source = kafka_source(&table_options(&broker, "bad", &[]), bids())
        .await
        .expect("a source");
    let e = collect(source, 1)
        .await
        .expect_err("a bad message")
        .to_string();
    // Message 21 is the 11th of partition 1: offset 10.
    assert!(
        e.contains("topic 'bad' partition 1") && e.contains("offset 10"),
        "{e}"
    );

    let options = table_options(&broker, "bad", &[("bad-records", "drop")]);
    let source = kafka_source(&options, bids()).await.expect("a source");
    let (summary, batches) = collect(source, 1).await.expect("bad messages dropped");
    assert_eq!(rows(&batches), expected_bids((0..40).filter(|&i| i != 21)));
    assert_eq!(counter(&summary, "bad records dropped"), 1);
    assert_eq!(counter(&summary, "messages read"), 40);

    // Dead letters: to files, and to another topic.
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().display().to_string();
    broker.create_topic("letters", 1);
    for destination in [
        ("bad-records.path", path.as_str()),
        ("bad-records.topic", "letters"),
    ] {
        let options = table_options(
            &broker,
            "bad",
            &[("bad-records", "dead-letter"), destination],
        );
        let source = kafka_source(&options, bids()).await.expect("a source");
        let (summary, batches) = collect(source, 1)
            .await
            .expect("bad messages dead-lettered");
        assert_eq!(rows(&batches).len(), 39);
        assert_eq!(counter(&summary, "bad records dead-lettered"), 1);
    }
    let file = dir.path().join("bad-1-10.jsonl");
    let text = std::fs::read_to_string(&file).expect("the dead letter file");
    let letters = broker.read_all("letters");
    let from_topic = String::from_utf8(letters[0][0].1.clone().expect("a value")).expect("text");
    for letter in [text.trim(), from_topic.as_str()] {
        let letter: serde_json::Value = serde_json::from_str(letter).expect("JSON");
        assert_eq!(letter["topic"], "bad");
        assert_eq!(letter["partition"], 1);
        assert_eq!(letter["offset"], 10);
        assert_eq!(letter["value"], "{\"id\": oops");
        assert!(
            letter["reason"].as_str().is_some_and(|r| !r.is_empty()),
            "{letter}"
        );
    }
    let e = kafka_source(
        &table_options(&broker, "bad", &[("bad-records", "dead-letter")]),
        bids(),
    )
    .await
    .expect_err("nowhere to put them")
    .to_string();
    assert!(
        e.contains("'bad-records.path' (a directory) or 'bad-records.topic'"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_or_broker_is_a_clear_error_in_bounded_time() {
    let broker = Broker::start();
    let e = kafka_source(&table_options(&broker, "nope", &[]), bids())
        .await
        .expect_err("no such topic")
        .to_string();
    assert!(e.contains("topic 'nope'"), "{e}");
    drop(broker);

    // Nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let options = vec![
        ("topic".to_string(), "t".to_string()),
        (
            "properties.bootstrap.servers".to_string(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "properties.socket.timeout.ms".to_string(),
            "2000".to_string(),
        ),
        ("format".to_string(), "json".to_string()),
        (
            "scan.startup.mode".to_string(),
            "earliest-offset".to_string(),
        ),
    ];
    let started = Instant::now();
    let e = kafka_source(&options, bids())
        .await
        .expect_err("no broker")
        .to_string();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert!(
        e.contains(&format!("127.0.0.1:{port}")) && e.contains("cannot get the topics"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_options_and_formats_are_named() {
    let e = weir_formats::registry()
        .source(
            "kafka",
            &options(&[
                ("topic", "t"),
                ("properties.bootstrap.servers", "127.0.0.1:1"),
                ("scan.startup.mod", "earliest-offset"),
            ]),
            Some(bids()),
        )
        .await
        .expect_err("a typo")
        .to_string();
    assert!(e.contains("unknown option 'scan.startup.mod'"), "{e}");
    assert!(e.contains("did you mean 'scan.startup.mode'"), "{e}");
    let e = weir_formats::registry()
        .source(
            "kafka",
            &options(&[
                ("topic", "t"),
                ("properties.bootstrap.servers", "127.0.0.1:1"),
                ("scan.startup.mode", "earliest-offset"),
                ("format", "protobuf"),
            ]),
            Some(bids()),
        )
        .await
        .expect_err("an unknown format")
        .to_string();
    assert!(
        e.contains("invalid value 'protobuf'") && e.contains("json, csv, raw, avro"),
        "{e}"
    );
}

/// A running job whose broker goes away fails within the client's socket
/// timeout (plus a poll), naming the brokers; it does not hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_lost_while_running_fails_the_job_in_bounded_time() {
    let mut broker = Broker::start();
    broker.create_topic("t", 2);
    produce(&broker, "t", &json_bids(100, 2));
    let options = table_options(
        &broker,
        "t",
        &[
            ("scan.bounded.mode", "unbounded"),
            ("properties.socket.timeout.ms", "2000"),
            ("properties.reconnect.backoff.max.ms", "200"),
        ],
    );
    let source = kafka_source(&options, bids()).await.expect("a source");
    assert_eq!(source.boundedness(), Boundedness::Unbounded);
    let flow = Dataflow::new("kafka");
    let (collect, _) = CollectSink::new();
    flow.read(source).write(Arc::new(collect));
    let cluster = MiniCluster::new(config(0));
    let job = tokio::time::timeout(Duration::from_secs(60), cluster.run(graph(&flow)));
    let stop = async {
        // Running and reading by then.
        tokio::time::sleep(Duration::from_secs(2)).await;
        broker.stop();
        Instant::now()
    };
    let (ended, lost) = tokio::join!(job, stop);
    let e = ended
        .expect("the job ends in bounded time")
        .expect_err("the job fails")
        .to_string();
    assert!(
        lost.elapsed() < Duration::from_secs(20),
        "{:?}",
        lost.elapsed()
    );
    assert!(
        e.contains("lost the brokers at") && e.contains(&broker.servers()),
        "{e}"
    );
}
