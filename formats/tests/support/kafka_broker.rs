//! A real Kafka-protocol broker for the tests: tansu, started on a free
//! port of 127.0.0.1 with its in-memory storage, one per test that asks,
//! and stopped when dropped.
//!
//! tansu is installed once with `cargo install tansu --version 0.6.0
//! --locked --features dynostore` into a cache directory outside the work
//! tree (`$WEIR_TOOLS_DIR`, else `$XDG_CACHE_HOME/weir/tools`, else
//! `~/.cache/weir/tools`), under an exclusive file lock so that test
//! binaries running at the same time install it once; its build takes
//! about 15 minutes on two cores. `.ci/run` installs it before the tests.
//! The formats crate's tests and the root package's share this file.

#![allow(dead_code)]

#[path = "install_once.rs"]
mod install_once;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use install_once::install_once;
use rdkafka::ClientConfig;
use rdkafka::Message as _;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// The tansu release the tests run.
const TANSU_VERSION: &str = "0.6.0";

/// How long the broker may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client call of the tests may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The directory tools are installed into.
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEIR_TOOLS_DIR") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME is set");
    cache.join("weir").join("tools")
}

/// The tansu executable, installed on first use (see the module docs).
///
/// # Panics
/// When it cannot be installed; the message says how to install it.
pub fn tansu() -> PathBuf {
    static TANSU: OnceLock<PathBuf> = OnceLock::new();
    TANSU.get_or_init(install_tansu).clone()
}

fn install_tansu() -> PathBuf {
    let root = tools_dir();
    let binary = root.join("bin").join("tansu");
    install_once(
        &root,
        "tansu.lock",
        || binary.exists(),
        || {
            eprintln!(
                "installing the tansu Kafka broker {TANSU_VERSION} into {} (once, about 15 minutes)",
                root.display()
            );
            let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(["install", "tansu", "--version", TANSU_VERSION])
                .args(["--locked", "--features", "dynostore", "--root"])
                .arg(&root)
                .stdin(Stdio::null())
                .status()
                .unwrap_or_else(|e| panic!("cannot run cargo install: {e}"));
            assert!(
                status.success() && binary.exists(),
                "`cargo install tansu --version {TANSU_VERSION} --locked --features dynostore --root {}` \
             failed ({status}): the Kafka tests need a Kafka-protocol broker",
                root.display()
            );
        },
    );
    binary
}

/// A running broker.
pub struct Broker {
    child: Child,
    port: u16,
}

impl Broker {
    /// Starts a broker on a free loopback port and waits until it listens.
    pub fn start() -> Self {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu())
            .arg("broker")
            .args(["--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .env_remove("CLUSTER_ID")
            .env_remove("SCHEMA_REGISTRY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start tansu: {e}"));
        let mut broker = Self { child, port };
        broker.wait_listening();
        broker
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("tansu exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {addr} within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The broker's address, as `properties.bootstrap.servers` takes it.
    pub fn servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Stops the broker (the brokers are lost to running clients).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.servers());
        config
    }

    /// Creates topic `name` with `partitions` partitions.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> =
            self.config().create().expect("an admin client");
        let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT));
        let results = block_on(admin.create_topics([&topic], &options)).expect("create topics");
        for result in results {
            result.unwrap_or_else(|(topic, e)| panic!("cannot create topic {topic}: {e}"));
        }
    }

    /// Writes `messages` (partition, key, value, timestamp) to `topic`, in
    /// order, and waits until the broker has them all.
    pub fn produce(&self, topic: &str, messages: &[Message<'_>]) {
        // One message per batch: tansu answers a ListOffsets for the latest
        // offset with the last batch's first offset + 1 (not the offset
        // after its last message), and for a time with the first batch
        // written after it (not by the messages' timestamps). With one
        // message per batch, written in order, its answers are Kafka's.
        let producer: BaseProducer = self
            .config()
            .set("linger.ms", "0")
            .set("batch.num.messages", "1")
            .create()
            .expect("a producer");
        for message in messages {
            let mut record: BaseRecord<'_, [u8], [u8]> =
                BaseRecord::to(topic).partition(message.partition);
            if let Some(key) = message.key {
                record = record.key(key);
            }
            if let Some(value) = message.value {
                record = record.payload(value);
            }
            if let Some(timestamp) = message.timestamp {
                record = record.timestamp(timestamp);
            }
            if !message.headers.is_empty() {
                let mut headers = OwnedHeaders::new();
                for (key, value) in &message.headers {
                    headers = headers.insert(Header {
                        key,
                        value: Some(*value),
                    });
                }
                record = record.headers(headers);
            }
            let mut record = record;
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, back)) => {
                        assert!(
                            matches!(
                                e.rdkafka_error_code(),
                                Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                            ),
                            "cannot produce: {e}"
                        );
                        producer.poll(Duration::from_millis(10));
                        record = back;
                    }
                }
            }
        }
        producer
            .flush(CALL_TIMEOUT)
            .expect("every message delivered");
    }

    /// The offsets group `group` committed for the partitions of `topic`
    /// (`None` where it has none).
    pub fn committed(&self, group: &str, topic: &str) -> Vec<Option<i64>> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", group)
            .create()
            .expect("a consumer");
        let metadata = consumer
            .fetch_metadata(Some(topic), CALL_TIMEOUT)
            .expect("metadata");
        let mut list = TopicPartitionList::new();
        for p in 0..metadata.topics()[0].partitions().len() as i32 {
            list.add_partition(topic, p);
        }
        consumer
            .committed_offsets(list, CALL_TIMEOUT)
            .expect("committed offsets")
            .elements()
            .iter()
            .map(|e| e.offset().to_raw().filter(|o| *o >= 0))
            .collect()
    }

    /// Commits `offsets` (by partition of `topic`) for group `group`.
    pub fn commit(&self, group: &str, topic: &str, offsets: &[i64]) {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", group)
            .create()
            .expect("a consumer");
        let mut list = TopicPartitionList::new();
        for (p, offset) in (0..).zip(offsets) {
            list.add_partition_offset(topic, p, Offset::Offset(*offset))
                .expect("a partition");
        }
        consumer
            .commit(&list, rdkafka::consumer::CommitMode::Sync)
            .expect("committed");
    }

    /// Every message of `topic` now, by partition, as (key, value): read
    /// until every partition reports its end (not up to the offsets a
    /// ListOffsets request gives, which tansu gets wrong for batches of
    /// several messages).
    pub fn read_all(&self, topic: &str) -> Vec<Vec<Received>> {
        read_partitions(&self.servers(), topic)
            .into_iter()
            .map(|partition| partition.into_values().collect())
            .collect()
    }
}

/// Every message of `topic` at the brokers `servers` now, by partition
/// and offset, as (key, value), read until every partition reports its
/// end.
pub fn read_partitions(servers: &str, topic: &str) -> Vec<BTreeMap<i64, Received>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("enable.partition.eof", "true")
        .set("group.id", "weir-tests")
        .create()
        .expect("a consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .expect("metadata");
    let partitions = metadata.topics()[0].partitions().len();
    let mut list = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .expect("a partition");
    }
    consumer.assign(&list).expect("assigned");
    let mut out = vec![BTreeMap::new(); partitions];
    let mut ended = vec![false; partitions];
    let deadline = Instant::now() + CALL_TIMEOUT;
    while ended.iter().any(|e| !e) {
        assert!(Instant::now() < deadline, "cannot read all of {topic}");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let message = (m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec));
                out[m.partition() as usize].insert(m.offset(), message);
            }
            Some(Err(KafkaError::PartitionEOF(p))) => ended[p as usize] = true,
            Some(Err(e)) => panic!("cannot read {topic}: {e}"),
            None => {}
        }
    }
    out
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A message read back: its key and value.
pub type Received = (Option<Vec<u8>>, Option<Vec<u8>>);

/// A message to produce.
#[derive(Debug, Clone, Default)]
pub struct Message<'a> {
    /// Its partition.
    pub partition: i32,
    /// Its key.
    pub key: Option<&'a [u8]>,
    /// Its value (`None`: a tombstone).
    pub value: Option<&'a [u8]>,
    /// Its timestamp (ms since the epoch); the producer's clock otherwise.
    pub timestamp: Option<i64>,
    /// Its headers.
    pub headers: Vec<(&'a str, &'a [u8])>,
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs an admin future to its end (the admin client polls on a thread of
/// its own: no runtime needed).
fn block_on<F: Future>(future: F) -> F::Output {
    futures::executor::block_on(future)
}
