//! The thread that reads one subtask's partitions with librdkafka's
//! blocking consumer and hands blocks of messages, one partition per
//! block, to the source.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arrow::array::{BinaryArray, BinaryBuilder};
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Headers as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::client::{BrokerWatch, ClientSettings, broker_error, is_unreachable};
use super::options::Topics;
use super::partitions::{EARLIEST, PartitionRange, TopicPartition, list_partitions};
use crate::{Error, Result};

/// Messages per block at most (the engine's batch size).
pub const BLOCK_MESSAGES: usize = weir_engine::operator::OUTPUT_BATCH_ROWS;

/// Payload bytes per block at most.
const BLOCK_BYTES: usize = 8 << 20;

/// How long a message waits in a block that is not full.
const LINGER: Duration = Duration::from_millis(20);

/// How often, and how long, brokers out of reach are asked whether they
/// are back.
const PROBE: Duration = Duration::from_secs(1);

/// The group id of readers when the table names none (never joined).
const READER_GROUP: &str = "weir-kafka-source";

/// How long one poll of the consumer waits for a message.
const POLL: Duration = Duration::from_millis(50);

/// Consecutive messages of one partition.
#[derive(Debug)]
pub struct Block {
    /// Their partition.
    pub partition: TopicPartition,
    /// Their offsets.
    pub offsets: Vec<i64>,
    /// Their timestamps (ms since the epoch), where they have one.
    pub timestamps: Vec<Option<i64>>,
    /// Their keys.
    pub keys: BinaryArray,
    /// Their values (null: a tombstone).
    pub values: BinaryArray,
    /// Their headers as JSON objects, when the table reads them.
    pub headers: Vec<String>,
}

impl Block {
    /// The offset after the block's last message.
    pub fn next_offset(&self) -> Option<i64> {
        self.offsets.last().map(|o| o + 1)
    }
}

/// What the reader hands the source.
#[derive(Debug)]
pub enum ReaderEvent {
    /// Messages of one partition.
    Block(Box<Block>),
    /// Partitions found while running, now read from their start.
    Found(Vec<PartitionRange>),
}

/// New partitions to look for while running.
#[derive(Debug, Clone)]
pub struct Discovery {
    /// The topics the source reads.
    pub topics: Topics,
    /// How often to look.
    pub interval: Duration,
    /// Which subtask this is, of how many (partitions found go to their
    /// owner).
    pub subtask: usize,
    /// The subtasks.
    pub parallelism: usize,
    /// The partitions known already (read by this subtask or another).
    pub known: BTreeSet<TopicPartition>,
}

/// What a reader reads.
#[derive(Debug)]
pub struct ReaderSpec {
    /// The client's settings.
    pub settings: ClientSettings,
    /// The partitions, from where to where.
    pub ranges: Vec<PartitionRange>,
    /// Partitions to look for, for an unbounded source.
    pub discovery: Option<Discovery>,
    /// Whether the table reads the messages' headers.
    pub headers: bool,
    /// Whether every partition stops: the reader ends when all did.
    pub bounded: bool,
}

/// A running reader thread; it stops when dropped.
#[derive(Debug)]
pub struct Reader {
    stop: Arc<AtomicBool>,
}

impl Reader {
    /// Starts reading `spec`'s partitions; blocks arrive on the returned
    /// receiver, which closes when every partition reached its stop offset
    /// (or after the reader's error).
    ///
    /// # Errors
    /// When the thread cannot be started.
    pub fn start(spec: ReaderSpec) -> Result<(Self, mpsc::Receiver<Result<ReaderEvent>>)> {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel(2);
        let stopped = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("weir-kafka-reader".to_string())
            .spawn(move || {
                if let Err(e) = read(spec, &stopped, &tx) {
                    let _ = tx.blocking_send(Err(e));
                }
            })
            .map_err(|e| Error::Kafka {
                message: format!("cannot start a Kafka reader thread: {e}"),
            })?;
        Ok((Self { stop }, rx))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A partition being read, and its messages not yet handed over.
struct Open {
    stop: Option<i64>,
    block: BlockBuilder,
}

struct BlockBuilder {
    partition: TopicPartition,
    offsets: Vec<i64>,
    timestamps: Vec<Option<i64>>,
    keys: BinaryBuilder,
    values: BinaryBuilder,
    /// The headers of each message as a JSON object (`None`: not read).
    headers: Option<Vec<String>>,
    bytes: usize,
    since: Option<Instant>,
}

impl BlockBuilder {
    fn new(partition: TopicPartition, headers: bool) -> Self {
        Self {
            partition,
            offsets: Vec::new(),
            timestamps: Vec::new(),
            keys: BinaryBuilder::new(),
            values: BinaryBuilder::new(),
            headers: headers.then(Vec::new),
            bytes: 0,
            since: None,
        }
    }

    fn push(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) {
        self.offsets.push(message.offset());
        self.timestamps.push(message.timestamp().to_millis());
        self.keys.append_option(message.key());
        self.values.append_option(message.payload());
        if let Some(headers) = &mut self.headers {
            headers.push(headers_json(message));
        }
        self.bytes += message.payload_len() + message.key().map_or(0, <[u8]>::len);
        self.since.get_or_insert_with(Instant::now);
    }

    fn is_full(&self) -> bool {
        self.offsets.len() >= BLOCK_MESSAGES || self.bytes >= BLOCK_BYTES
    }

    fn is_due(&self, now: Instant) -> bool {
        self.since.is_some_and(|since| now >= since + LINGER)
    }

    fn take(&mut self) -> Option<Block> {
        if self.offsets.is_empty() {
            return None;
        }
        self.bytes = 0;
        self.since = None;
        Some(Block {
            partition: self.partition.clone(),
            offsets: std::mem::take(&mut self.offsets),
            timestamps: std::mem::take(&mut self.timestamps),
            keys: self.keys.finish(),
            values: self.values.finish(),
            headers: self
                .headers
                .as_mut()
                .map(std::mem::take)
                .unwrap_or_default(),
        })
    }
}

/// A message's headers as a JSON object of their values (text, invalid
/// UTF-8 replaced; null for a header without a value; the last of headers
/// of the same name).
fn headers_json(message: &rdkafka::message::BorrowedMessage<'_>) -> String {
    let mut object = serde_json::Map::new();
    if let Some(headers) = message.headers() {
        for header in headers.iter() {
            let value = header.value.map_or(serde_json::Value::Null, |v| {
                serde_json::Value::String(String::from_utf8_lossy(v).into_owned())
            });
            object.insert(header.key.to_string(), value);
        }
    }
    serde_json::Value::Object(object).to_string()
}

/// Reads until every partition reached its stop, `stop` is set or the
/// source went away.
fn read(spec: ReaderSpec, stop: &AtomicBool, tx: &mpsc::Sender<Result<ReaderEvent>>) -> Result<()> {
    let settings = &spec.settings;
    // Offsets out of range (deleted by retention) fail the read rather
    // than skip data silently.
    // A group id lets partitions be added and removed one at a time; the
    // reader never joins the group nor commits to it.
    let group = settings
        .properties
        .get("group.id")
        .map_or(READER_GROUP, String::as_str);
    let consumer = settings.consumer(&[
        ("enable.partition.eof", "true"),
        ("auto.offset.reset", "error"),
        ("group.id", group),
    ])?;
    let mut open: HashMap<String, HashMap<i32, Open>> = HashMap::new();
    assign(&consumer, settings, &spec.ranges, spec.headers, &mut open)?;
    // An unbounded reader left without partitions waits for some.
    let bounded = spec.bounded;
    let mut discovery = spec.discovery;
    let mut next_discovery = discovery.as_ref().map(|d| Instant::now() + d.interval);
    let send = |event: ReaderEvent| tx.blocking_send(Ok(event)).is_ok();
    let mut last_probe = Instant::now();
    let mut next_sweep = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || tx.is_closed() {
            return Ok(());
        }
        if bounded && open.values().all(HashMap::is_empty) {
            return Ok(());
        }
        if let (Some(d), Some(due)) = (&mut discovery, next_discovery)
            && Instant::now() >= due
        {
            let found = discover(&consumer, settings, d);
            if !found.is_empty() {
                assign(&consumer, settings, &found, spec.headers, &mut open)?;
                if !send(ReaderEvent::Found(found)) {
                    return Ok(());
                }
            }
            next_discovery = Some(Instant::now() + d.interval);
        }
        let mut ended = Vec::new();
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                consumer.context().up();
                let Some(partition) = open
                    .get_mut(message.topic())
                    .and_then(|p| p.get_mut(&message.partition()))
                else {
                    continue;
                };
                if partition.stop.is_some_and(|s| message.offset() >= s) {
                    ended.push(partition.block.partition.clone());
                } else {
                    partition.block.push(&message);
                    if partition.stop.is_some_and(|s| message.offset() + 1 >= s) {
                        ended.push(partition.block.partition.clone());
                    }
                    if partition.block.is_full()
                        && let Some(block) = partition.block.take()
                        && !send(ReaderEvent::Block(Box::new(block)))
                    {
                        return Ok(());
                    }
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => {
                consumer.context().up();
                ended.extend(at_stop(&consumer, &open)?);
            }
            // The client reconnects on its own: fail only after the timeout.
            Some(Err(e)) if is_unreachable(&e) => consumer.context().down(&e.to_string()),
            Some(Err(e)) => {
                return Err(Error::Kafka {
                    message: format!("reading from the brokers at {}: {e}", settings.servers()),
                });
            }
            None => {}
        }
        if let Some((since, reason)) = consumer.context().down_since()
            && !reachable_again(&consumer, &open, &mut last_probe)
            && since.elapsed() >= settings.timeout
        {
            return Err(Error::Kafka {
                message: format!(
                    "lost the brokers at {} for {:.0?} (properties.socket.timeout.ms): {reason}",
                    settings.servers(),
                    since.elapsed()
                ),
            });
        }
        // Blocks linger at most LINGER and a quarter: looking at every
        // partition after every message would cost more than reading.
        let now = Instant::now();
        if now < next_sweep && ended.is_empty() {
            continue;
        }
        next_sweep = now + LINGER / 4;
        for partitions in open.values_mut() {
            for partition in partitions.values_mut() {
                if partition.block.is_due(now)
                    && let Some(block) = partition.block.take()
                    && !send(ReaderEvent::Block(Box::new(block)))
                {
                    return Ok(());
                }
            }
        }
        for partition in ended {
            if let Some(mut done) = open
                .get_mut(&partition.topic)
                .and_then(|p| p.remove(&partition.partition))
            {
                if let Some(block) = done.block.take()
                    && !send(ReaderEvent::Block(Box::new(block)))
                {
                    return Ok(());
                }
                let mut list = TopicPartitionList::new();
                list.add_partition(&partition.topic, partition.partition);
                consumer
                    .incremental_unassign(&list)
                    .map_err(|e| broker_error(settings.servers(), "cannot stop reading", &e))?;
            }
        }
    }
}

/// Whether brokers said to be out of reach answer again: asked at most
/// every [`PROBE`] (a quiet consumer hears nothing when they come back).
fn reachable_again(
    consumer: &BaseConsumer<BrokerWatch>,
    open: &HashMap<String, HashMap<i32, Open>>,
    last_probe: &mut Instant,
) -> bool {
    if last_probe.elapsed() < PROBE {
        return false;
    }
    *last_probe = Instant::now();
    let topic = open.keys().next().map(String::as_str);
    let answered = consumer.fetch_metadata(topic, PROBE).is_ok();
    if answered {
        consumer.context().up();
    }
    answered
}

/// Starts reading `ranges` (those with something to read).
fn assign(
    consumer: &BaseConsumer<BrokerWatch>,
    settings: &ClientSettings,
    ranges: &[PartitionRange],
    headers: bool,
    open: &mut HashMap<String, HashMap<i32, Open>>,
) -> Result<()> {
    let mut list = TopicPartitionList::new();
    for range in ranges {
        if range.stop.is_some_and(|stop| stop <= range.start) {
            continue;
        }
        let p = &range.partition;
        list.add_partition_offset(&p.topic, p.partition, Offset::from_raw(range.start))
            .map_err(|e| broker_error(settings.servers(), "cannot read from an offset", &e))?;
        open.entry(p.topic.clone()).or_default().insert(
            p.partition,
            Open {
                stop: range.stop,
                block: BlockBuilder::new(p.clone(), headers),
            },
        );
    }
    if list.count() > 0 {
        consumer
            .incremental_assign(&list)
            .map_err(|e| broker_error(settings.servers(), "cannot read the partitions", &e))?;
    }
    Ok(())
}

/// The open partitions whose position reached their stop (their last
/// offsets were not messages: transaction markers).
fn at_stop(
    consumer: &BaseConsumer<BrokerWatch>,
    open: &HashMap<String, HashMap<i32, Open>>,
) -> Result<Vec<TopicPartition>> {
    let positions = consumer.position().map_err(|e| Error::Kafka {
        message: format!("cannot get the consumer's positions: {e}"),
    })?;
    Ok(positions
        .elements()
        .iter()
        .filter_map(|e| {
            let partition = open.get(e.topic())?.get(&e.partition())?;
            let position = e.offset().to_raw()?;
            partition
                .stop
                .is_some_and(|stop| position >= stop)
                .then(|| partition.block.partition.clone())
        })
        .collect())
}

/// The partitions of this subtask that appeared since `discovery` last
/// looked, from their first offset.
fn discover(
    consumer: &BaseConsumer<BrokerWatch>,
    settings: &ClientSettings,
    discovery: &mut Discovery,
) -> Vec<PartitionRange> {
    let partitions = match list_partitions(consumer, settings, &discovery.topics) {
        Ok(partitions) => partitions,
        // A topic deleted, the brokers busy: look again next time.
        Err(e) => {
            tracing::warn!("looking for new Kafka partitions: {e}");
            return Vec::new();
        }
    };
    discovery.new_partitions(partitions)
}

impl Discovery {
    /// Those of `listed` that are new (a new topic, or a topic grown),
    /// to be read from their first offset, that this subtask owns; all
    /// the new ones become known.
    fn new_partitions(&mut self, listed: Vec<TopicPartition>) -> Vec<PartitionRange> {
        listed
            .into_iter()
            .filter(|partition| self.known.insert(partition.clone()))
            .filter(|partition| partition.owner(self.parallelism) == self.subtask)
            .map(|partition| PartitionRange {
                partition,
                start: EARLIEST,
                stop: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }

    /// A topic grown from 2 partitions to 4, and a new topic: every new
    /// partition is found once, by the subtask that owns it, from its
    /// start; the known ones are not found again.
    #[test]
    fn grown_topics_and_new_topics_give_their_new_partitions_once() {
        let before = [partition("t", 0), partition("t", 1)];
        let after: Vec<TopicPartition> = (0..4)
            .map(|p| partition("t", p))
            .chain([partition("u", 0)])
            .collect();
        let mut found = Vec::new();
        for subtask in 0..3 {
            let mut discovery = Discovery {
                topics: Topics::Named(vec!["t".to_string(), "u".to_string()]),
                interval: Duration::from_secs(1),
                subtask,
                parallelism: 3,
                known: before.iter().cloned().collect(),
            };
            let new = discovery.new_partitions(after.clone());
            assert!(new.iter().all(|r| r.start == EARLIEST && r.stop.is_none()));
            assert!(new.iter().all(|r| r.partition.owner(3) == subtask));
            found.extend(new.into_iter().map(|r| r.partition));
            assert!(discovery.new_partitions(after.clone()).is_empty());
        }
        found.sort();
        assert_eq!(
            found,
            vec![partition("t", 2), partition("t", 3), partition("u", 0)]
        );
    }
}
