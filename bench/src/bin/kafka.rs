//! Kafka throughput runner: weir's `kafka` sink and source through a
//! running broker, side by side in the same run with a bare librdkafka
//! producer and consumer on the same broker, then Nexmark-like queries
//! reading their bids from a topic.
//!
//! ```text
//! cargo run --release -p weir-bench --bin kafka -- --servers 127.0.0.1:9092 \
//!     --messages 1000000 --sizes 100,1000 --parallelism 2
//! ```
//!
//! `bench/kafka-compare.sh` starts a local broker (tansu) and runs this.
//! For each message size (bytes of JSON), with one topic partition per
//! subtask:
//!
//! - `sink`: a weir job writes `--messages` bids (Nexmark's, their `extra`
//!   padded to the size) as JSON to a topic, at least once;
//! - `raw-producer`: librdkafka's producer alone, set up as the sink's
//!   (idempotent), writes as many messages of the same size (made before
//!   the clock starts) to another topic;
//! - `raw-consumer`: librdkafka's consumer alone reads the sink's topic
//!   from the start to the end of each partition, one consumer and thread
//!   per partition (as weir's subtasks);
//! - `source`: a weir job reads the same messages (JSON, decoded into
//!   columns) into a `blackhole`;
//!
//! then the queries of `bench/src/bin/streaming.rs` (`q0`, `q1`, `q2`,
//! `tumble`, ...) in streaming mode over the first size's topic. Prints
//! one JSON line per case: messages (events), bytes, seconds, messages and
//! MB per second, and both per core (per subtask; the broker shares the
//! machine).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use weir_bench::runner::{self, NEXMARK_QUERIES, or_exit, run_inserts};

/// The allocator of the `weir` binary, so that jobs here run as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 2023-11-14 00:00:00 UTC: the first bid's time.
const BASE_TIME_MS: u64 = 1_699_920_000_000;

/// How long a broker call may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The bytes of a bid's JSON without its `extra`: what the padding adds to.
const BID_JSON_BYTES: usize = 96;

struct Args {
    servers: String,
    messages: u64,
    sizes: Vec<usize>,
    parallelism: usize,
    queries: Vec<String>,
}

fn args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        servers: String::new(),
        messages: 1_000_000,
        sizes: vec![100, 1000],
        parallelism: 2,
        queries: ["q0", "q1", "q2", "tumble"].map(String::from).to_vec(),
    };
    let number = |flag: &str, value: Option<String>| {
        value
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("{flag} takes a whole number"))
    };
    let list = |flag: &str, value: Option<String>| {
        value
            .ok_or_else(|| format!("{flag} takes a list"))
            .map(|v| {
                v.split(',')
                    .map(|q| q.trim().to_string())
                    .filter(|q| !q.is_empty())
                    .collect::<Vec<_>>()
            })
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--servers" => parsed.servers = args.next().ok_or("--servers takes HOST:PORT")?,
            "--messages" => parsed.messages = number("--messages", args.next())?.max(1),
            "--parallelism" => {
                parsed.parallelism = number("--parallelism", args.next())?.max(1) as usize;
            }
            "--sizes" => {
                parsed.sizes = list("--sizes", args.next())?
                    .iter()
                    .map(|s| {
                        s.parse()
                            .map_err(|_| format!("--sizes: '{s}' is not a size"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--queries" => parsed.queries = list("--queries", args.next())?,
            "--bench" => {}
            flag => return Err(format!("unknown argument {flag}")),
        }
    }
    if parsed.servers.is_empty() {
        return Err("--servers HOST:PORT is required: a running Kafka broker".to_string());
    }
    if let Some(q) = parsed
        .queries
        .iter()
        .find(|q| !NEXMARK_QUERIES.iter().any(|(name, ..)| name == q))
    {
        return Err(format!("unknown query '{q}'"));
    }
    Ok(parsed)
}

fn client(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", servers);
    config
}

fn create_topic(servers: &str, name: &str, partitions: i32) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> =
        client(servers).create().map_err(|e| e.to_string())?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = block_on(admin.create_topics([&topic], &options)).map_err(|e| e.to_string())?;
    for result in results {
        result.map_err(|(topic, e)| format!("cannot create {topic}: {e}"))?;
    }
    Ok(())
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// One line of results.
fn report(case: &str, size: Option<usize>, messages: u64, bytes: u64, seconds: f64, cores: usize) {
    let per_second = messages as f64 / seconds;
    let mb_per_second = bytes as f64 / seconds / 1e6;
    let line = serde_json::json!({
        "engine": if case.starts_with("raw") { "librdkafka" } else { "weir" },
        "case": case,
        "message_bytes": size,
        "messages": messages,
        "bytes": bytes,
        "parallelism": cores,
        "seconds": (seconds * 1e3).round() / 1e3,
        "messages_per_second": per_second.round(),
        "messages_per_second_per_core": (per_second / cores as f64).round(),
        "mb_per_second": (mb_per_second * 10.0).round() / 10.0,
        "mb_per_second_per_core": (mb_per_second / cores as f64 * 10.0).round() / 10.0,
    });
    println!("{line}");
}

/// The bid table on `topic`, ending at `ends` (offsets by partition).
fn bid_table(servers: &str, topic: &str, ends: &BTreeMap<i32, i64>) -> String {
    let ends: Vec<String> = ends
        .iter()
        .map(|(p, o)| format!("partition:{p},offset:{o}"))
        .collect();
    format!(
        "CREATE TABLE bid (
           auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), extra VARCHAR,
           WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
         ) WITH ('connector' = 'kafka', 'topic' = '{topic}',
                 'properties.bootstrap.servers' = '{servers}',
                 'scan.startup.mode' = 'earliest-offset',
                 'scan.bounded.mode' = 'specific-offsets',
                 'scan.bounded.specific-offsets' = '{}',
                 'format' = 'json');",
        ends.join(";")
    )
}

/// weir writes `messages` bids of about `size` bytes of JSON to `topic`.
fn weir_sink(
    runtime: &tokio::runtime::Runtime,
    args: &Args,
    topic: &str,
    size: usize,
) -> Result<(f64, u64), String> {
    let pad = size.saturating_sub(BID_JSON_BYTES);
    let text = format!(
        "SET 'parallelism.default' = '{p}';
         SET 'worker.slots' = '{p}';
         CREATE TABLE generated (auction BIGINT, bidder BIGINT, price BIGINT,
           date_time TIMESTAMP(3))
         WITH ('connector' = 'nexmark', 'table' = 'bid',
               'number-of-events' = '{n}', 'base-time' = '{BASE_TIME_MS}');
         CREATE TABLE out (auction BIGINT, bidder BIGINT, price BIGINT,
           date_time TIMESTAMP(3), extra VARCHAR)
         WITH ('connector' = 'kafka', 'topic' = '{topic}',
               'properties.bootstrap.servers' = '{servers}', 'format' = 'json');
         INSERT INTO out
         SELECT auction, bidder, price, date_time, rpad('', {pad}, 'x') FROM generated;",
        p = args.parallelism,
        n = args.messages,
        servers = args.servers,
    );
    let start = Instant::now();
    let summary = runtime.block_on(run_inserts(&text))?;
    let seconds = start.elapsed().as_secs_f64();
    let bytes = summary
        .vertices
        .iter()
        .map(|v| v.counters.get("bytes written").copied().unwrap_or(0))
        .sum();
    Ok((seconds, bytes))
}

/// librdkafka's producer alone writes `messages` messages of `size` bytes.
fn raw_producer(args: &Args, topic: &str, size: usize) -> Result<(f64, u64), String> {
    let payloads: Vec<Vec<u8>> = (0..args.messages.min(100_000))
        .map(|i| {
            let mut json = format!(
                r#"{{"auction":{},"bidder":{},"price":{},"date_time":"2023-11-14T00:00:00.000","extra":""#,
                1000 + i % 1000,
                1000 + i,
                i * 7 % 10_000_000
            );
            json.extend(std::iter::repeat_n('x', size.saturating_sub(json.len() + 2)));
            json.push_str("\"}");
            json.into_bytes()
        })
        .collect();
    // As weir's at-least-once sink sets it up.
    let producer: ThreadedProducer<DefaultProducerContext> = client(&args.servers)
        .set("linger.ms", "5")
        .set("partitioner", "murmur2_random")
        .set("enable.idempotence", "true")
        .create()
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut bytes = 0;
    for i in 0..args.messages {
        let payload = &payloads[(i % payloads.len() as u64) as usize];
        bytes += payload.len() as u64;
        let key = (i % 1000).to_string();
        let mut record = BaseRecord::to(topic)
            .key(key.as_str())
            .payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    std::thread::sleep(Duration::from_millis(1));
                    record = back;
                }
                Err((e, _)) => return Err(e.to_string()),
            }
        }
    }
    producer.flush(TIMEOUT).map_err(|e| e.to_string())?;
    Ok((start.elapsed().as_secs_f64(), bytes))
}

/// librdkafka's consumer alone reads every message of `topic`, one
/// consumer and thread per partition as weir's subtasks: the messages and
/// bytes read, and where each partition ends.
fn raw_consumer(args: &Args, topic: &str) -> Result<(f64, u64, BTreeMap<i32, i64>), String> {
    let start = Instant::now();
    let threads: Vec<_> = (0..args.parallelism as i32)
        .map(|partition| {
            let (servers, topic) = (args.servers.clone(), topic.to_string());
            std::thread::spawn(move || read_partition(&servers, &topic, partition))
        })
        .collect();
    let mut ends = BTreeMap::new();
    let (mut messages, mut bytes, mut last) = (0, 0, start);
    for (partition, thread) in (0..).zip(threads) {
        let (read, size, end, at) = thread.join().map_err(|_| "a reader panicked")??;
        messages += read;
        bytes += size;
        ends.insert(partition, end);
        last = last.max(at);
    }
    let seconds = (last - start).as_secs_f64();
    if messages != args.messages {
        return Err(format!(
            "{topic} holds {messages} messages, not {}",
            args.messages
        ));
    }
    Ok((seconds, bytes, ends))
}

/// Reads partition `partition` of `topic` from its start to its end: the
/// messages, their bytes, the offset after the last, and when the last
/// came.
fn read_partition(
    servers: &str,
    topic: &str,
    partition: i32,
) -> Result<(u64, u64, i64, Instant), String> {
    let consumer: BaseConsumer = client(servers)
        .set("group.id", "weir-bench-raw")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    consumer.assign(&list).map_err(|e| e.to_string())?;
    let (mut messages, mut bytes, mut end, mut last) = (0, 0, 0, Instant::now());
    // tansu reports the end of a partition at the start of its last batch
    // of messages: after the end, read on until nothing more comes.
    let mut wait = TIMEOUT;
    loop {
        match consumer.poll(wait) {
            Some(Ok(m)) => {
                messages += 1;
                bytes += m.payload_len() as u64;
                end = m.offset() + 1;
                last = Instant::now();
            }
            Some(Err(KafkaError::PartitionEOF(_))) => wait = AFTER_END,
            Some(Err(e)) => return Err(e.to_string()),
            // The time is until the last message.
            None if wait == AFTER_END => return Ok((messages, bytes, end, last)),
            None => return Err(format!("no message from {topic} in {TIMEOUT:?}")),
        }
    }
}

/// How long a reader waits for more messages after a partition's end.
const AFTER_END: Duration = Duration::from_millis(500);

/// weir reads the messages of `topic` up to `ends` into a blackhole.
fn weir_source(
    runtime: &tokio::runtime::Runtime,
    args: &Args,
    topic: &str,
    ends: &BTreeMap<i32, i64>,
    query: (&str, &str),
) -> Result<(f64, u64), String> {
    let (columns, sql) = query;
    let text = format!(
        "SET 'execution.runtime-mode' = 'streaming';
         SET 'parallelism.default' = '{p}';
         SET 'worker.slots' = '{p}';
         {}
         CREATE TABLE sink ({columns}) WITH ('connector' = 'blackhole');
         INSERT INTO sink {sql};",
        bid_table(&args.servers, topic, ends),
        p = args.parallelism,
    );
    let start = Instant::now();
    let summary = runtime.block_on(run_inserts(&text))?;
    let seconds = start.elapsed().as_secs_f64();
    let read: u64 = summary
        .vertices
        .iter()
        .map(|v| v.counters.get("messages read").copied().unwrap_or(0))
        .sum();
    if read != args.messages {
        return Err(format!("weir read {read} messages, not {}", args.messages));
    }
    Ok((seconds, read))
}

fn main() {
    let args = or_exit(args());
    let runtime = runner::runtime(args.parallelism);
    let cores = args.parallelism;
    let partitions = args.parallelism as i32;
    let mut first_topic = None;
    let mut run = || -> Result<(), String> {
        for &size in &args.sizes {
            let topic = format!("bench-{size}-{}", std::process::id());
            let raw_topic = format!("{topic}-raw");
            create_topic(&args.servers, &topic, partitions)?;
            create_topic(&args.servers, &raw_topic, partitions)?;
            let (seconds, bytes) = weir_sink(&runtime, &args, &topic, size)?;
            report("sink", Some(size), args.messages, bytes, seconds, cores);
            let (seconds, bytes) = raw_producer(&args, &raw_topic, size)?;
            report(
                "raw-producer",
                Some(size),
                args.messages,
                bytes,
                seconds,
                cores,
            );
            let (seconds, bytes, ends) = raw_consumer(&args, &topic)?;
            report(
                "raw-consumer",
                Some(size),
                args.messages,
                bytes,
                seconds,
                cores,
            );
            let q0 = NEXMARK_QUERIES[0];
            let (seconds, read) = weir_source(&runtime, &args, &topic, &ends, (q0.1, q0.2))?;
            report("source", Some(size), read, bytes, seconds, cores);
            first_topic.get_or_insert((topic, ends, bytes));
        }
        let Some((topic, ends, bytes)) = &first_topic else {
            return Ok(());
        };
        for query in &args.queries {
            let (_, columns, sql) = NEXMARK_QUERIES
                .iter()
                .find(|(name, ..)| name == query)
                .expect("checked");
            let (seconds, read) = weir_source(&runtime, &args, topic, ends, (columns, sql))?;
            report(
                &format!("nexmark-{query}"),
                None,
                read,
                *bytes,
                seconds,
                cores,
            );
        }
        Ok(())
    };
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
