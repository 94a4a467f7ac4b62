//! The Kafka source: each subtask reads the partitions it owns, from the
//! offsets resolved when the job was built or recorded by a checkpoint.

use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use weir_engine::checkpoint::SplitPosition;
use weir_engine::task::{Counters, ScanProgress};
use weir_engine::{Boundedness, Source, SourceFactory, TaskInfo};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::client::{BrokerWatch, ClientSettings, broker_error};
use super::columns::TableColumns;
use super::dead_letter::DeadLetters;
use super::options::{BoundedMode, ScanOptions, Topics};
use super::partitions::{EARLIEST, PartitionRange, TopicPartition};
use super::reader::{Discovery, Reader, ReaderEvent, ReaderSpec};

/// How long a source waits for messages before it returns an empty batch
/// (so that barriers and idleness go on while a topic is quiet).
const QUIET: Duration = Duration::from_millis(100);

/// A split's position in a checkpoint: the offset of the next message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Position {
    topic: String,
    partition: i32,
    offset: i64,
}

/// Builds the subtasks of a Kafka source (see the [module](super)).
#[derive(Debug)]
pub struct KafkaSourceFactory {
    topics: Topics,
    settings: ClientSettings,
    /// Every partition known when the job was built, from where to where.
    ranges: Vec<PartitionRange>,
    /// Whether every partition stops (`scan.bounded.mode`).
    bounded: bool,
    discovery: Option<Duration>,
    columns: Arc<TableColumns>,
    /// Commits completed checkpoints' offsets to the group.
    committer: GroupCommitter,
    /// Where bad messages go, under `'bad-records' = 'dead-letter'`.
    dead_letters: Option<DeadLetters>,
}

/// Commits completed checkpoints' offsets to a group, on a thread of its
/// own started on first use: in the checkpoints' order, only the latest
/// when several wait. The thread ends with the factory.
#[derive(Default)]
struct GroupCommitter(Mutex<Option<Sender<CheckpointOffsets>>>);

/// A completed checkpoint's number and offsets.
type CheckpointOffsets = (u64, Vec<Position>);

impl GroupCommitter {
    fn commit(&self, settings: &ClientSettings, checkpoint: u64, offsets: Vec<Position>) {
        let mut sender = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let sender = sender.get_or_insert_with(|| {
            let (sender, waiting) = channel::<CheckpointOffsets>();
            let settings = settings.clone();
            std::thread::spawn(move || {
                let mut consumer = None;
                while let Ok(mut latest) = waiting.recv() {
                    while let Ok(later) = waiting.try_recv() {
                        latest = later;
                    }
                    let (checkpoint, offsets) = latest;
                    if let Err(e) = commit_offsets(&mut consumer, &settings, &offsets) {
                        tracing::warn!("committing the offsets of checkpoint {checkpoint}: {e}");
                    }
                }
            });
            sender
        });
        // Only fails when the thread is gone (it panicked): logged there.
        let _ = sender.send((checkpoint, offsets));
    }
}

impl std::fmt::Debug for GroupCommitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupCommitter")
    }
}

impl KafkaSourceFactory {
    /// A source of `ranges`, resolved from `scan`, with `columns`.
    pub fn new(
        scan: &ScanOptions,
        settings: ClientSettings,
        ranges: Vec<PartitionRange>,
        columns: TableColumns,
        dead_letters: Option<DeadLetters>,
    ) -> Self {
        Self {
            topics: scan.topics.clone(),
            settings,
            ranges,
            bounded: scan.bounded != BoundedMode::Unbounded,
            discovery: scan.discovery,
            columns: Arc::new(columns),
            committer: GroupCommitter::default(),
            dead_letters,
        }
    }

    /// A reader of `ranges` for `task`, which knows of `known` partitions.
    fn open(
        &self,
        task: &TaskInfo,
        ranges: Vec<PartitionRange>,
        known: BTreeSet<TopicPartition>,
    ) -> weir_engine::Result<Box<dyn Source>> {
        let discovery = match (self.bounded, self.discovery) {
            (false, Some(interval)) => Some(Discovery {
                topics: self.topics.clone(),
                interval,
                subtask: task.subtask,
                parallelism: task.parallelism,
                known,
            }),
            _ => None,
        };
        let splits: Vec<(TopicPartition, i64)> = ranges
            .iter()
            .map(|r| (r.partition.clone(), r.start))
            .collect();
        let (reader, events) = Reader::start(ReaderSpec {
            settings: self.settings.clone(),
            ranges,
            discovery,
            headers: self.columns.reads_headers(),
            bounded: self.bounded,
        })?;
        Ok(Box::new(KafkaSource {
            columns: Arc::clone(&self.columns),
            schema: self.columns.schema(),
            index: splits
                .iter()
                .enumerate()
                .map(|(i, (p, _))| (p.clone(), i as u32))
                .collect(),
            splits,
            last: 0,
            events,
            _reader: reader,
            counters: task.counters.clone(),
            scanned: task.scanned.clone(),
            dead_letters: self.dead_letters.clone(),
            timeout: self.settings.timeout,
        }))
    }
}

impl SourceFactory for KafkaSourceFactory {
    fn name(&self) -> String {
        format!("kafka({})", self.topics)
    }

    fn boundedness(&self) -> Boundedness {
        if self.bounded {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    fn schema(&self) -> SchemaRef {
        self.columns.schema()
    }

    fn estimated_rows(&self) -> Option<u64> {
        self.ranges
            .iter()
            .map(|r| r.stop.map(|stop| (stop - r.start).max(0) as u64))
            .sum()
    }

    fn is_deterministic(&self) -> bool {
        // The partitions' messages interleave differently on every run.
        false
    }

    /// Commits the checkpoint's offsets to the group, when the table names
    /// one, for tools that watch a group's lag (see [`GroupCommitter`]).
    /// Failures are logged: recovery reads offsets from checkpoints, never
    /// from the group.
    fn checkpoint_completed(&self, checkpoint: u64, positions: Vec<SplitPosition>) {
        if !self.settings.properties.contains_key("group.id") {
            return;
        }
        let offsets: Vec<Position> = positions
            .into_iter()
            .filter_map(|p| serde_json::from_value(p.position).ok())
            .filter(|p: &Position| p.offset >= 0)
            .collect();
        self.committer.commit(&self.settings, checkpoint, offsets);
    }

    fn split_owner(&self, position: &SplitPosition, parallelism: usize) -> Option<usize> {
        let position: Position = serde_json::from_value(position.position.clone()).ok()?;
        Some(
            TopicPartition {
                topic: position.topic,
                partition: position.partition,
            }
            .owner(parallelism),
        )
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Source>> {
        let ranges = self
            .ranges
            .iter()
            .filter(|r| r.partition.owner(task.parallelism) == task.subtask)
            .cloned()
            .collect();
        let known = self.ranges.iter().map(|r| r.partition.clone()).collect();
        self.open(task, ranges, known)
    }

    fn restore(
        &self,
        task: &TaskInfo,
        positions: Vec<SplitPosition>,
    ) -> weir_engine::Result<Box<dyn Source>> {
        let stops: HashMap<&TopicPartition, Option<i64>> =
            self.ranges.iter().map(|r| (&r.partition, r.stop)).collect();
        let mut ranges = Vec::new();
        for split in positions {
            let position: Position = serde_json::from_value(split.position).map_err(|e| {
                weir_engine::Error::Checkpoint(format!(
                    "a Kafka source cannot resume from position of split {}: {e}",
                    split.split
                ))
            })?;
            let partition = TopicPartition {
                topic: position.topic,
                partition: position.partition,
            };
            if !self.topics.includes(&partition.topic) {
                tracing::warn!(
                    "{partition} is in the checkpoint but not in '{}' any more: not read",
                    self.topics
                );
                continue;
            }
            let stop = stops.get(&partition).copied().flatten();
            ranges.push(PartitionRange {
                partition,
                start: position.offset,
                stop: stop.map(|s| s.max(position.offset)),
            });
        }
        // Partitions this subtask owns that the checkpoint did not have:
        // created since, they are read from their start.
        let resumed: BTreeSet<TopicPartition> =
            ranges.iter().map(|r| r.partition.clone()).collect();
        for range in &self.ranges {
            if range.partition.owner(task.parallelism) == task.subtask
                && !resumed.contains(&range.partition)
            {
                ranges.push(PartitionRange {
                    start: EARLIEST,
                    ..range.clone()
                });
            }
        }
        let mut known: BTreeSet<TopicPartition> =
            self.ranges.iter().map(|r| r.partition.clone()).collect();
        known.extend(resumed);
        self.open(task, ranges, known)
    }
}

/// Commits `offsets` to the table's group with `consumer` (made on first
/// use).
fn commit_offsets(
    consumer: &mut Option<BaseConsumer<BrokerWatch>>,
    settings: &ClientSettings,
    offsets: &[Position],
) -> crate::Result<()> {
    let consumer = match consumer {
        Some(consumer) => consumer,
        None => consumer.insert(settings.consumer(&[])?),
    };
    let mut list = TopicPartitionList::new();
    for p in offsets {
        list.add_partition_offset(&p.topic, p.partition, Offset::Offset(p.offset))
            .map_err(|e| broker_error(settings.servers(), "cannot list offsets", &e))?;
    }
    consumer
        .commit(&list, CommitMode::Sync)
        .map_err(|e| broker_error(settings.servers(), "cannot commit the offsets", &e))
}

/// One subtask of a Kafka source.
struct KafkaSource {
    columns: Arc<TableColumns>,
    schema: SchemaRef,
    /// Each split's partition and the offset of its next message.
    splits: Vec<(TopicPartition, i64)>,
    index: HashMap<TopicPartition, u32>,
    last: u32,
    events: mpsc::Receiver<crate::Result<ReaderEvent>>,
    /// Stops the reader when the source goes.
    _reader: Reader,
    counters: Counters,
    /// The messages covered, for progress (the task counts the rows).
    scanned: ScanProgress,
    dead_letters: Option<DeadLetters>,
    /// How long a dead letter may take to deliver.
    timeout: Duration,
}

impl KafkaSource {
    fn split(&mut self, partition: &TopicPartition, start: i64) -> u32 {
        if let Some(&split) = self.index.get(partition) {
            return split;
        }
        let split = self.splits.len() as u32;
        self.splits.push((partition.clone(), start));
        self.index.insert(partition.clone(), split);
        split
    }
}

#[async_trait]
impl Source for KafkaSource {
    async fn next_batch(&mut self) -> weir_engine::Result<Option<RecordBatch>> {
        loop {
            let event = match tokio::time::timeout(QUIET, self.events.recv()).await {
                Err(_) => return Ok(Some(RecordBatch::new_empty(self.schema()))),
                Ok(None) => return Ok(None),
                Ok(Some(event)) => event?,
            };
            let block = match event {
                ReaderEvent::Found(ranges) => {
                    for range in ranges {
                        self.split(&range.partition, range.start);
                    }
                    continue;
                }
                ReaderEvent::Block(block) => *block,
            };
            let columns = Arc::clone(&self.columns);
            let (block, rows) = weir_engine::cpu::run(move || {
                let rows = columns.decode(&block);
                (block, rows)
            })
            .await;
            let rows = rows?;
            let split = self.split(&block.partition, EARLIEST);
            if let Some(next) = block.next_offset() {
                self.splits[split as usize].1 = next;
            }
            self.last = split;
            self.counters
                .add("messages read", block.offsets.len() as u64);
            if rows.tombstones > 0 {
                self.counters.add("tombstones skipped", rows.tombstones);
            }
            let bad = rows.bad.len() as u64;
            // Messages that give no row are covered all the same.
            self.scanned.add(bad + rows.tombstones);
            match &self.dead_letters {
                _ if bad == 0 => {}
                Some(dead_letters) => {
                    dead_letters.write(&block, &rows.bad, self.timeout).await?;
                    self.counters.add("bad records dead-lettered", bad);
                }
                None => self.counters.add("bad records dropped", bad),
            }
            return Ok(Some(rows.batch));
        }
    }

    fn splits(&self) -> Vec<u32> {
        (0..self.splits.len() as u32).collect()
    }

    fn last_split(&self) -> u32 {
        self.last
    }

    fn positions(&self) -> Option<Vec<SplitPosition>> {
        Some(
            self.splits
                .iter()
                .zip(0..)
                .map(|((partition, offset), split)| SplitPosition {
                    split,
                    position: serde_json::json!(Position {
                        topic: partition.topic.clone(),
                        partition: partition.partition,
                        offset: *offset,
                    }),
                })
                .collect(),
        )
    }
}

impl KafkaSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}
