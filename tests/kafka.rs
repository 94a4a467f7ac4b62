//! Kafka end to end, against a real Kafka-protocol broker (tansu on
//! 127.0.0.1): a windowed aggregation from a topic of 3 partitions into
//! another topic gives in streaming mode, at parallelism 1 and 3, the rows
//! batch mode gives over the same messages; `weir run` stopped with a
//! savepoint and resumed at another parallelism reads every message once;
//! partitions of topics created while a job runs are read; metadata
//! columns read and write the messages' coordinates and timestamps; a run
//! killed with SIGKILL mid-stream and resumed from its checkpoints loses
//! no message, and one into an exactly-once sink commits every message
//! once; the README's example jobs run.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/config.rs"]
mod config;
#[path = "../formats/tests/support/kafka_broker.rs"]
mod kafka_broker;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use cli::{
    kill_after_first_checkpoint, output, running_job, stderr, streaming_settings, text, weir,
};
use kafka_broker::{Broker, Message};
use rdkafka::mocking::MockCluster;
use weir::sql::Session;
use weir_scheduler::MiniCluster;

/// The time of the first bid (ms since the epoch).
const BASE: i64 = 1_700_000_000_000;

/// `n` bids from `first` on as JSON, spread over `partitions`: auction
/// `i % 7`, price `i % 100`, times 37 ms apart and up to 600 ms out of
/// order.
fn bids(first: i64, n: i64, partitions: i32) -> Vec<(i32, String)> {
    (first..first + n)
        .map(|i| {
            let ms = BASE + i * 37 - (i * 7919 % 600);
            let time = arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
                .expect("a time")
                .format("%Y-%m-%d %H:%M:%S%.3f");
            (
                (i % i64::from(partitions)) as i32,
                format!(
                    r#"{{"id": {i}, "auction": {}, "price": {}, "date_time": "{time}"}}"#,
                    i % 7,
                    i % 100
                ),
            )
        })
        .collect()
}

fn produce(broker: &Broker, topic: &str, bids: &[(i32, String)]) {
    let messages: Vec<Message<'_>> = bids
        .iter()
        .map(|(partition, value)| Message {
            partition: *partition,
            value: Some(value.as_bytes()),
            ..Message::default()
        })
        .collect();
    broker.produce(topic, &messages);
}

/// The values of every message of `topic`, sorted.
fn values(broker: &Broker, topic: &str) -> Vec<String> {
    let mut values: Vec<String> = broker
        .read_all(topic)
        .into_iter()
        .flatten()
        .map(|(_, value)| String::from_utf8(value.expect("a value")).expect("text"))
        .collect();
    values.sort();
    values
}

/// The sum of the counts in field `field` of JSON rows `rows`.
fn total(rows: &[String], field: &str) -> u64 {
    rows.iter()
        .map(|row| {
            serde_json::from_str::<serde_json::Value>(row).expect("JSON")[field]
                .as_u64()
                .expect("a count")
        })
        .sum()
}

/// The `bid` table on the topics `topics` names (`'topic' = '...'` or
/// `'topic-pattern' = '...'`), with `extra` options.
fn bid_table(servers: &str, topics: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE bid (
            id BIGINT, auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
            WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
        ) WITH (
            'connector' = 'kafka', {topics},
            'properties.bootstrap.servers' = '{servers}',
            'scan.startup.mode' = 'earliest-offset',
            'format' = 'json'{extra}
        );"
    )
}

/// The `bid` table on every message of topic `bids` now.
fn bounded_bids(servers: &str) -> String {
    bid_table(
        servers,
        "'topic' = 'bids'",
        ", 'scan.bounded.mode' = 'latest-offset'",
    )
}

/// A table writing JSON to `topic`, with `extra` options.
fn output_table(servers: &str, name: &str, topic: &str, columns: &str, extra: &str) -> String {
    format!(
        "CREATE TABLE {name} ({columns}) WITH (
            'connector' = 'kafka', 'topic' = '{topic}',
            'properties.bootstrap.servers' = '{servers}', 'format' = 'json'{extra}
        );"
    )
}

async fn run_inserts(script: &str, mode: &str, parallelism: usize) {
    let config = config::in_memory(mode, parallelism);
    let mut session = Session::new(weir_formats::registry(), config.clone());
    let script = session.execute(script).await.expect("the script plans");
    let graph = session
        .insert_job(&script)
        .await
        .expect("the insert plans")
        .expect("an insert");
    MiniCluster::new(config)
        .run(graph)
        .await
        .expect("the job runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_from_a_topic_into_a_topic_match_batch_mode() {
    let broker = Broker::start();
    broker.create_topic("bids", 3);
    produce(&broker, "bids", &bids(0, 3000, 3));
    let runs = [("batch", 1), ("streaming", 1), ("streaming", 3)];
    for (mode, parallelism) in runs {
        let out = format!("windows-{mode}-{parallelism}");
        broker.create_topic(&out, 2);
        let script = format!(
            "{}
            {}
            INSERT INTO windows
            SELECT auction, window_start, window_end, count(*) AS bids, sum(price) AS total
            FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
            GROUP BY window_start, window_end, auction;",
            bounded_bids(&broker.servers()),
            output_table(
                &broker.servers(),
                "windows",
                &out,
                "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), \
                 bids BIGINT, total BIGINT",
                "",
            ),
        );
        run_inserts(&script, mode, parallelism).await;
    }
    let batch = values(&broker, "windows-batch-1");
    // 3000 bids 37 ms apart: 111 s of bids, 12 windows of 7 auctions.
    assert!(batch.len() > 70, "{batch:?}");
    assert_eq!(total(&batch, "bids"), 3000);
    for (mode, parallelism) in &runs[1..] {
        assert_eq!(
            values(&broker, &format!("windows-{mode}-{parallelism}")),
            batch,
            "{mode} at parallelism {parallelism}"
        );
    }
}

/// The rows of the script's query, in batch mode.
async fn query(script: &str) -> Vec<String> {
    let config = config::in_memory("batch", 1);
    let mut session = Session::new(weir_formats::registry(), config.clone());
    let planned = session.execute(script).await.expect("the script plans");
    let job = session
        .query_job("query", &planned.queries[0])
        .expect("the query plans");
    MiniCluster::new(config)
        .run(job.graph)
        .await
        .expect("the query runs");
    weir_engine::testing::sorted_rows(&job.output.batches())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_columns_read_and_write_the_messages_coordinates() {
    let broker = Broker::start();
    broker.create_topic("bids", 3);
    broker.create_topic("stamped", 1);
    produce(&broker, "bids", &bids(0, 300, 3));
    let servers = broker.servers();
    let table = |name: &str, topic: &str| {
        format!(
            "CREATE TABLE {name} (
                id BIGINT, price BIGINT,
                part INT METADATA FROM 'partition' VIRTUAL,
                off BIGINT METADATA FROM 'offset' VIRTUAL,
                `timestamp` TIMESTAMP(3) METADATA,
                headers STRING METADATA
            ) WITH (
                'connector' = 'kafka', 'topic' = '{topic}',
                'properties.bootstrap.servers' = '{servers}',
                'properties.batch.num.messages' = '1',
                'scan.startup.mode' = 'earliest-offset',
                'scan.bounded.mode' = 'latest-offset', 'format' = 'json'
            );"
        )
    };
    let rows = query(&format!(
        "{} SELECT part, count(*), min(off), max(off), min(id), max(headers) FROM bids \
         GROUP BY part;",
        table("bids", "bids")
    ))
    .await;
    assert_eq!(
        rows,
        ["0|100|0|99|0|{}", "1|100|0|99|1|{}", "2|100|0|99|2|{}"]
    );
    // Written with each bid's id + 1 s as its time and its id as a header,
    // read back as such (a time of 0 is no time to the client: it writes
    // the time of sending).
    run_inserts(
        &format!(
            "{} {} INSERT INTO stamped SELECT id, price, CAST(id + 1000 AS TIMESTAMP(3)), \
             concat('{{\"id\": \"', CAST(id AS VARCHAR), '\"}}') FROM bids;",
            table("bids", "bids"),
            table("stamped", "stamped")
        ),
        "batch",
        1,
    )
    .await;
    let rows = query(&format!(
        "{} SELECT count(*) FROM stamped WHERE CAST(`timestamp` AS BIGINT) = id + 1000 \
         AND headers = concat('{{\"id\":\"', CAST(id AS VARCHAR), '\"}}');",
        table("stamped", "stamped")
    ))
    .await;
    assert_eq!(rows, ["300"]);
}

/// Waits until `topic` holds at least `n` messages; their values.
fn await_messages(broker: &Broker, topic: &str, n: usize, job: &mut Child) -> Vec<String> {
    let started = Instant::now();
    loop {
        let found = values(broker, topic);
        if found.len() >= n {
            return found;
        }
        if let Some(status) = job.try_wait().expect("waits") {
            panic!(
                "the job ended with {} of {n} messages: {status}: {}",
                found.len(),
                stderr(job)
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{} of {n} messages in {topic}",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A script copying the ids of the bids of `topics` into topic `ids` at
/// `parallelism`, checkpointing, with `extra` options on the source.
fn copy_script(
    dir: &Path,
    broker: &Broker,
    parallelism: usize,
    topics: &str,
    extra: &str,
) -> String {
    let path = dir.join(format!("copy-{parallelism}.sql"));
    std::fs::write(
        &path,
        format!(
            "SET 'execution.checkpointing.interval' = '300 ms';
             SET 'execution.checkpointing.savepoint-dir' = '{}';
             SET 'parallelism.default' = '{parallelism}';
             SET 'worker.slots' = '4';
             {}
             {}
             INSERT INTO ids SELECT id, price FROM bid;",
            dir.join("savepoints").display(),
            bid_table(&broker.servers(), topics, extra),
            output_table(
                &broker.servers(),
                "ids",
                "ids",
                "id BIGINT, price BIGINT",
                ""
            ),
        ),
    )
    .expect("writes the script");
    path.display().to_string()
}

fn start(tmp: &Path, script: &str, from: Option<&str>) -> Child {
    let mut command = weir(tmp);
    command.args(["run", script, "--progress", "none"]);
    if let Some(savepoint) = from {
        command.args(["--from-savepoint", savepoint]);
    }
    command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts")
}

fn stop_with_savepoint(tmp: &Path, id: &str, job: Child) -> String {
    let stopped = output({
        let mut c = weir(tmp);
        c.args(["stop", id, "--savepoint"]);
        c
    });
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let job = job.wait_with_output().expect("ends");
    assert!(job.status.success(), "{}", text(&job.stderr));
    text(&stopped.stdout)
        .trim()
        .strip_prefix("stopped with a savepoint at ")
        .expect("where the savepoint is")
        .to_string()
}

/// The ids of the copied messages, each with how often it was copied.
fn copied_ids(values: &[String]) -> BTreeMap<i64, usize> {
    let mut ids = BTreeMap::new();
    for value in values {
        let row: serde_json::Value = serde_json::from_str(value).expect("JSON");
        *ids.entry(row["id"].as_i64().expect("an id")).or_default() += 1;
    }
    ids
}

/// Where the ids below `n` that `ids` lacks are: as runs of ids by input
/// partition (`id % 3`), and the output topic's messages per partition
/// read twice, which tells a loss from a read of the topic cut short.
fn missing_report(broker: &Broker, topic: &str, ids: &BTreeMap<i64, usize>, n: i64) -> String {
    let mut runs: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
    for id in (0..n).filter(|id| !ids.contains_key(id)) {
        let partition = runs.entry(id % 3).or_default();
        match partition.last_mut() {
            Some((_, last)) if *last + 3 == id => *last = id,
            _ => partition.push((id, id)),
        }
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|(partition, runs)| {
            let first: Vec<_> = runs.iter().take(10).collect();
            format!(
                "input partition {partition}: {} run(s), first {first:?}",
                runs.len()
            )
        })
        .collect();
    let per_partition = || -> Vec<usize> { broker.read_all(topic).iter().map(Vec::len).collect() };
    format!(
        "missing: {runs:?}; output messages per partition: {:?}, read again: {:?}",
        per_partition(),
        per_partition()
    )
}

#[test]
fn a_job_resumed_from_a_savepoint_at_another_parallelism_reads_every_message_once() {
    let tmp = tempfile::tempdir().expect("a directory");
    let broker = Broker::start();
    broker.create_topic("bids", 3);
    broker.create_topic("ids", 2);
    produce(&broker, "bids", &bids(0, 1000, 3));
    let group = ", 'properties.group.id' = 'copier'";
    let first_script = copy_script(tmp.path(), &broker, 1, "'topic' = 'bids'", group);
    let mut first = start(tmp.path(), &first_script, None);
    let id = running_job(tmp.path(), &mut first);
    await_messages(&broker, "ids", 1000, &mut first);
    let savepoint = stop_with_savepoint(tmp.path(), &id, first);
    // The last checkpoint's offsets went to the group, for monitoring.
    let deadline = Instant::now() + Duration::from_secs(10);
    while broker.committed("copier", "bids") != [Some(334), Some(333), Some(333)] {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            broker.committed("copier", "bids")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Written while no job runs: the resumed job starts where the first
    // stopped, on three subtasks now.
    produce(&broker, "bids", &bids(1000, 1000, 3));
    let second_script = copy_script(tmp.path(), &broker, 3, "'topic' = 'bids'", group);
    let mut second = start(tmp.path(), &second_script, Some(&savepoint));
    let id = running_job(tmp.path(), &mut second);
    let found = await_messages(&broker, "ids", 2000, &mut second);
    stop_with_savepoint(tmp.path(), &id, second);
    let ids = copied_ids(&found);
    assert_eq!(ids.len(), 2000);
    assert!(ids.values().all(|n| *n == 1), "copied twice: {ids:?}");
    assert_eq!(values(&broker, "ids").len(), 2000, "nothing after the stop");
}

/// tansu has no CreatePartitions: new partitions come with a new topic
/// matching the pattern, found the same way (the brokers' metadata).
#[test]
fn partitions_of_topics_created_while_a_job_runs_are_read() {
    let tmp = tempfile::tempdir().expect("a directory");
    let broker = Broker::start();
    broker.create_topic("bids-a", 2);
    broker.create_topic("ids", 1);
    produce(&broker, "bids-a", &bids(0, 100, 2));
    let script = copy_script(
        tmp.path(),
        &broker,
        2,
        "'topic-pattern' = 'bids-.*'",
        ", 'scan.topic-partition-discovery.interval' = '200 ms'",
    );
    let mut job = start(tmp.path(), &script, None);
    let id = running_job(tmp.path(), &mut job);
    await_messages(&broker, "ids", 100, &mut job);
    broker.create_topic("bids-b", 3);
    broker.create_topic("other", 1);
    produce(&broker, "bids-b", &bids(100, 100, 3));
    produce(&broker, "other", &bids(200, 10, 1));
    await_messages(&broker, "ids", 200, &mut job);
    stop_with_savepoint(tmp.path(), &id, job);
    // Read once the job stopped: what it copied, all of it.
    let ids = copied_ids(&values(&broker, "ids"));
    let expected: BTreeMap<i64, usize> = (0..200).map(|id| (id, 1)).collect();
    assert_eq!(
        ids, expected,
        "every bid of both topics once, none of the topic not matching"
    );
}

/// The README's Kafka walk-through: the example jobs of `data/jobs`, with
/// the broker's address in place of 127.0.0.1:9092.
#[test]
fn the_example_jobs_fill_window_and_read_topics() {
    let tmp = tempfile::tempdir().expect("a directory");
    let broker = Broker::start();
    broker.create_topic("bids", 3);
    broker.create_topic("bids_per_window", 1);
    let job = |name: &str| {
        let text = std::fs::read_to_string(Path::new("data/jobs").join(name))
            .expect("the example job")
            .replace("127.0.0.1:9092", &broker.servers());
        let path = tmp.path().join(name);
        std::fs::write(&path, text).expect("writes");
        path.display().to_string()
    };
    let fill = output({
        let mut c = weir(tmp.path());
        c.args(["run", &job("kafka_fill_bids.sql"), "--progress", "none"]);
        c
    });
    assert!(fill.status.success(), "{}", text(&fill.stderr));
    assert!(
        text(&fill.stderr).contains("messages written: 1000000"),
        "{}",
        text(&fill.stderr)
    );
    let mut windows = start(tmp.path(), &job("kafka_bids_per_window.sql"), None);
    let id = running_job(tmp.path(), &mut windows);
    await_messages(&broker, "bids_per_window", 100, &mut windows);
    let cancelled = output({
        let mut c = weir(tmp.path());
        c.args(["cancel", &id]);
        c
    });
    assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    windows.wait().expect("ends");
    let read = output({
        let mut c = weir(tmp.path());
        c.args(["run", &job("kafka_read_windows.sql"), "--progress", "none"]);
        c
    });
    assert!(read.status.success(), "{}", text(&read.stderr));
    let table = text(&read.stdout);
    assert!(
        table.contains("| auction | window_start") && table.lines().count() == 14,
        "{table}"
    );
}

/// A `weir run` process killed with SIGKILL at its first completed
/// checkpoint or some milliseconds after, then resumed from its checkpoints (`--from-savepoint` of the
/// job's checkpoint directory): the output topic holds every input
/// message (at least once).
#[test]
fn a_run_killed_mid_stream_and_resumed_from_its_checkpoint_loses_nothing() {
    let tmp = tempfile::tempdir().expect("a directory");
    let broker = Broker::start();
    broker.create_topic("bids", 3);
    produce(&broker, "bids", &bids(0, 50_000, 3));
    let mut landed = 0;
    for (trial, delay_ms) in [0u64, 20, 60].into_iter().enumerate() {
        let out = format!("ids-{trial}");
        broker.create_topic(&out, 2);
        let checkpoints = tmp.path().join(format!("checkpoints-{trial}"));
        let script = tmp.path().join(format!("copy-{trial}.sql"));
        std::fs::write(
            &script,
            format!(
                "{}
                 {}
                 {}
                 INSERT INTO ids SELECT id, price FROM bid;",
                streaming_settings(&checkpoints, "20 ms"),
                bounded_bids(&broker.servers()),
                output_table(
                    &broker.servers(),
                    "ids",
                    &out,
                    "id BIGINT, price BIGINT",
                    ""
                ),
            ),
        )
        .expect("writes the script");
        let script = script.display().to_string();
        let mut job = start(tmp.path(), &script, None);
        let killed =
            kill_after_first_checkpoint(&mut job, &checkpoints, Duration::from_millis(delay_ms));
        landed += usize::from(killed.mid_stream);
        let Some(job_dir) = killed.job_dir else {
            panic!(
                "trial {trial}: the job ended before a checkpoint: {}",
                stderr(&mut job)
            );
        };
        let resumed = output({
            let mut c = weir(tmp.path());
            c.args(["run", &script, "--progress", "none", "--from-savepoint"])
                .arg(&job_dir);
            c
        });
        assert!(resumed.status.success(), "{}", text(&resumed.stderr));
        let ids = copied_ids(&values(&broker, &out));
        assert_eq!(
            ids.len(),
            50_000,
            "trial {trial}: every message copied; {}",
            missing_report(&broker, &out, &ids, 50_000)
        );
    }
    assert!(
        landed >= 2,
        "{landed} of 3 kills fell mid-stream: the test tests little"
    );
}

/// Event time from the messages' own timestamps: a watermark on a
/// `timestamp` metadata column gives, in streaming mode, the windows batch
/// mode gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_over_the_message_timestamps_match_batch_mode() {
    let broker = Broker::start();
    broker.create_topic("clicks", 2);
    let clicks: Vec<String> = (0..2000)
        .map(|i| format!(r#"{{"user": {}}}"#, i % 5))
        .collect();
    let messages: Vec<Message<'_>> = clicks
        .iter()
        .enumerate()
        .map(|(i, value)| Message {
            partition: (i % 2) as i32,
            value: Some(value.as_bytes()),
            timestamp: Some(BASE + i as i64 * 50 - (i as i64 * 7919 % 300)),
            ..Message::default()
        })
        .collect();
    broker.produce("clicks", &messages);
    for (mode, parallelism) in [("batch", 1), ("streaming", 2)] {
        let out = format!("per-user-{mode}");
        broker.create_topic(&out, 1);
        let script = format!(
            "CREATE TABLE clicks (
                `user` BIGINT,
                ts TIMESTAMP(3) METADATA FROM 'timestamp' VIRTUAL,
                WATERMARK FOR ts AS ts - INTERVAL '1' SECOND
            ) WITH (
                'connector' = 'kafka', 'topic' = 'clicks',
                'properties.bootstrap.servers' = '{servers}',
                'scan.startup.mode' = 'earliest-offset',
                'scan.bounded.mode' = 'latest-offset', 'format' = 'json'
            );
            {}
            INSERT INTO per_user
            SELECT `user`, window_start, count(*) AS clicks
            FROM TABLE(TUMBLE(TABLE clicks, DESCRIPTOR(ts), INTERVAL '5' SECOND))
            GROUP BY `user`, window_start, window_end;",
            output_table(
                &broker.servers(),
                "per_user",
                &out,
                "`user` BIGINT, window_start TIMESTAMP(3), clicks BIGINT",
                "",
            ),
            servers = broker.servers(),
        );
        run_inserts(&script, mode, parallelism).await;
    }
    let batch = values(&broker, "per-user-batch");
    assert_eq!(total(&batch, "clicks"), 2000);
    assert_eq!(values(&broker, "per-user-streaming"), batch);
}

/// A committed transaction: its id, and the first and last offset it
/// wrote to each partition.
type Commit = (String, Vec<(i32, i64, i64)>);

/// The committed transactions that `weir run`'s log (at `info` for the
/// Kafka connector) names.
fn logged_commits(log: &str) -> BTreeSet<Commit> {
    log.lines()
        .filter_map(|line| {
            let rest = line.split_once("committed Kafka transaction '")?.1;
            let (id, rest) = rest.split_once("': offsets ")?;
            let offsets = rest
                .trim()
                .split(',')
                .filter(|range| !range.is_empty())
                .map(|range| {
                    let (partition, span) = range.split_once(':').expect("p:first-last");
                    let (first, last) = span.split_once('-').expect("first-last");
                    (
                        partition.parse().expect("a partition"),
                        first.parse().expect("an offset"),
                        last.parse().expect("an offset"),
                    )
                })
                .collect();
            Some((id.to_string(), offsets))
        })
        .collect()
}

/// `weir run` into an exactly-once sink, killed with SIGKILL at random
/// instants after a checkpoint and resumed from its latest checkpoint each
/// time, until a run ends: the transactions its runs committed hold every
/// row exactly once. Kills fall anywhere, between the commits of a
/// checkpoint's transactions too (the next run commits the rest). The broker is
/// librdkafka's mock cluster in this process (tansu 0.6 has no EndTxn),
/// which writes no commit markers: the committed messages are those in
/// the offsets of the transactions the runs logged as committed.
#[test]
fn exactly_once_runs_killed_at_random_commit_every_message_once() {
    const MESSAGES: i64 = 20_000;
    let tmp = tempfile::tempdir().expect("a directory");
    let mock = MockCluster::new(1).expect("a mock cluster");
    mock.create_topic("ids", 2, 1).expect("a topic");
    let servers = mock.bootstrap_servers();
    // Each subtask writes its own partition, so that a transaction's
    // messages are one offset range of it.
    let sink = ", 'sink.partitioner' = 'fixed', 'sink.delivery-guarantee' = 'exactly-once', \
                'sink.transactional-id-prefix' = 'copy'";
    let script = |run: usize| {
        let path = tmp.path().join(format!("copy-{run}.sql"));
        std::fs::write(
            &path,
            format!(
                "{}
                 CREATE TABLE numbers (id BIGINT) WITH (
                     'connector' = 'datagen', 'rows-per-second' = '5000',
                     'fields.id.kind' = 'sequence', 'fields.id.start' = '0',
                     'fields.id.end' = '{}'
                 );
                 {}
                 INSERT INTO ids SELECT id FROM numbers;",
                streaming_settings(&tmp.path().join(format!("checkpoints-{run}")), "20 ms"),
                MESSAGES - 1,
                output_table(&servers, "ids", "ids", "id BIGINT", sink),
            ),
        )
        .expect("writes the script");
        path.display().to_string()
    };
    let run = |script: &str, from: Option<&Path>| {
        let mut command = weir(tmp.path());
        command
            .args(["run", script, "--progress", "none"])
            .env("WEIR_LOG", "warn,weir_formats::kafka=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(checkpoint) = from {
            command.arg("--from-savepoint").arg(checkpoint);
        }
        command.spawn().expect("starts")
    };
    let mut rng = weir_engine::testing::Rng::new(42);
    let mut commits = BTreeSet::new();
    let mut from: Option<std::path::PathBuf> = None;
    let mut kills = 0;
    for attempt in 0.. {
        let mut job = run(&script(attempt), from.as_deref());
        if attempt == 6 {
            // The last run ends.
            let status = job.wait().expect("ends");
            let log = stderr(&mut job);
            assert!(status.success(), "{log}");
            commits.extend(logged_commits(&log));
            break;
        }
        let checkpoints = tmp.path().join(format!("checkpoints-{attempt}"));
        let delay = Duration::from_millis(rng.below(300));
        let killed = kill_after_first_checkpoint(&mut job, &checkpoints, delay);
        kills += usize::from(killed.mid_stream);
        let log = stderr(&mut job);
        commits.extend(logged_commits(&log));
        let Some(job_dir) = killed.job_dir else {
            panic!("run {attempt} ended before its first checkpoint: {log}");
        };
        from = Some(job_dir);
    }
    assert!(
        kills >= 4,
        "{kills} of 6 kills fell mid-stream: the test tests little"
    );
    // The mock writes no transaction markers: aborted messages are read
    // too.
    let messages = kafka_broker::read_partitions(&servers, "ids");
    let mut copied = BTreeMap::new();
    for (_, offsets) in &commits {
        for (partition, first, last) in offsets {
            for (_, (_, value)) in messages[*partition as usize].range(first..=last) {
                let row: serde_json::Value =
                    serde_json::from_slice(value.as_deref().expect("a value")).expect("JSON");
                *copied
                    .entry(row["id"].as_i64().expect("an id"))
                    .or_insert(0) += 1;
            }
        }
    }
    let twice: Vec<_> = copied.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(twice.is_empty(), "committed twice: {twice:?}");
    assert_eq!(copied.len() as i64, MESSAGES, "every message is committed");
}
