//! Topic partitions: which exist, which subtask reads each, and the offsets
//! where each starts and stops, resolved once per job.

use std::collections::BTreeMap;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::client::{BrokerWatch, ClientSettings, broker_error};
use super::options::{BoundedMode, ScanOptions, StartupMode, Topics};
use crate::{Error, Result};

/// The offset that stands for a partition's first, whatever it is by then
/// (librdkafka's `OFFSET_BEGINNING`): where partitions created while a
/// job runs start.
pub const EARLIEST: i64 = -2;

/// One partition of one topic: a split of a Kafka source.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition's number.
    pub partition: i32,
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "topic '{}' partition {}", self.topic, self.partition)
    }
}

impl TopicPartition {
    /// The subtask of `parallelism` that reads this partition: the topic's
    /// partitions go round-robin from a subtask that depends on the
    /// topic's name, so that several topics spread evenly. Every subtask
    /// computes the same owner on its own, which is how partitions found
    /// while running find their reader.
    pub fn owner(&self, parallelism: usize) -> usize {
        let parallelism = parallelism.max(1);
        // FNV-1a: stable across runs and platforms.
        let hash = self.topic.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        let start = (hash % parallelism as u64) as usize;
        (start + self.partition.max(0) as usize) % parallelism
    }
}

/// Where reading one partition starts, and where it stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRange {
    /// The partition.
    pub partition: TopicPartition,
    /// The offset of the first message read ([`EARLIEST`]: the first there
    /// is).
    pub start: i64,
    /// The offset before which reading stops (`None`: unbounded).
    pub stop: Option<i64>,
}

/// The partitions of the topics `topics` names, in order, as the brokers
/// know them now.
///
/// # Errors
/// [`Error::Kafka`] when the brokers cannot be reached in time, or a named
/// topic does not exist.
pub fn list_partitions(
    consumer: &BaseConsumer<BrokerWatch>,
    settings: &ClientSettings,
    topics: &Topics,
) -> Result<Vec<TopicPartition>> {
    let asked = match topics {
        Topics::Named(names) if names.len() == 1 => Some(names[0].as_str()),
        _ => None,
    };
    let metadata = consumer
        .fetch_metadata(asked, settings.timeout)
        .map_err(|e| broker_error(settings.servers(), "cannot get the topics", &e))?;
    let mut found = Vec::new();
    for topic in metadata.topics() {
        if !topics.includes(topic.name()) {
            continue;
        }
        if let Some(error) = topic.error() {
            let code = RDKafkaErrorCode::from(error);
            if matches!(topics, Topics::Named(_)) {
                return Err(Error::Kafka {
                    message: format!("topic '{}' at {}: {code}", topic.name(), settings.servers()),
                });
            }
            continue;
        }
        found.extend(topic.partitions().iter().map(|p| TopicPartition {
            topic: topic.name().to_string(),
            partition: p.id(),
        }));
    }
    if let Topics::Named(names) = topics {
        for name in names {
            if !found.iter().any(|p| &p.topic == name) {
                return Err(Error::Kafka {
                    message: format!(
                        "topic '{name}' does not exist at {} (create it first, or check 'topic')",
                        settings.servers()
                    ),
                });
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The offsets of every partition's first message, and of the message
/// after its last (the end), by partition.
fn watermarks(
    consumer: &BaseConsumer<BrokerWatch>,
    settings: &ClientSettings,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, (i64, i64)>> {
    partitions
        .iter()
        .map(|p| {
            consumer
                .fetch_watermarks(&p.topic, p.partition, settings.timeout)
                .map(|marks| (p.clone(), marks))
                .map_err(|e| {
                    broker_error(
                        settings.servers(),
                        &format!("cannot get the offsets of {p}"),
                        &e,
                    )
                })
        })
        .collect()
}

/// The offsets where the records at or after `millis` start, by partition
/// (`None` where no record is that recent).
fn offsets_at(
    consumer: &BaseConsumer<BrokerWatch>,
    settings: &ClientSettings,
    partitions: &[TopicPartition],
    millis: i64,
) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition_offset(&p.topic, p.partition, Offset::Offset(millis))
            .map_err(|e| broker_error(settings.servers(), "cannot ask for offsets", &e))?;
    }
    let found = consumer
        .offsets_for_times(list, settings.timeout)
        .map_err(|e| {
            broker_error(
                settings.servers(),
                &format!("cannot find the offsets at time {millis}"),
                &e,
            )
        })?;
    Ok(offsets_of(&found))
}

/// The group's committed offsets, by partition (`None` where it has none).
fn committed(
    consumer: &BaseConsumer<BrokerWatch>,
    settings: &ClientSettings,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Option<i64>>> {
    let mut list = TopicPartitionList::new();
    for p in partitions {
        list.add_partition(&p.topic, p.partition);
    }
    let found = consumer
        .committed_offsets(list, settings.timeout)
        .map_err(|e| {
            broker_error(
                settings.servers(),
                "cannot get the group's committed offsets",
                &e,
            )
        })?;
    Ok(offsets_of(&found))
}

/// The offset of each partition of `list` (`None` where it has none).
fn offsets_of(list: &TopicPartitionList) -> BTreeMap<TopicPartition, Option<i64>> {
    list.elements()
        .iter()
        .map(|e| {
            let partition = TopicPartition {
                topic: e.topic().to_string(),
                partition: e.partition(),
            };
            (partition, e.offset().to_raw().filter(|o| *o >= 0))
        })
        .collect()
}

/// Where each of `partitions` starts and stops under `scan`'s modes,
/// resolved against the brokers now (a blocking call).
///
/// # Errors
/// [`Error::Kafka`] when the brokers cannot answer; [`Error::Option`] when
/// the group has no offset for a partition and
/// `properties.auto.offset.reset` does not say what to do.
pub fn resolve_ranges(
    consumer: &BaseConsumer<BrokerWatch>,
    settings: &ClientSettings,
    scan: &ScanOptions,
    partitions: &[TopicPartition],
) -> Result<Vec<PartitionRange>> {
    let marks = watermarks(consumer, settings, partitions)?;
    let needs_group = matches!(
        scan.startup,
        StartupMode::GroupOffsets | StartupMode::Specific(_)
    ) || matches!(scan.bounded, BoundedMode::GroupOffsets);
    let group = if needs_group && scan.properties.contains_key("group.id") {
        committed(consumer, settings, partitions)?
    } else {
        BTreeMap::new()
    };
    let at_time = |millis| offsets_at(consumer, settings, partitions, millis);
    let start_times = match scan.startup {
        StartupMode::Timestamp(millis) => at_time(millis)?,
        _ => BTreeMap::new(),
    };
    let stop_times = match scan.bounded {
        BoundedMode::Timestamp(millis) => at_time(millis)?,
        _ => BTreeMap::new(),
    };
    partitions
        .iter()
        .map(|p| {
            let (low, high) = marks[p];
            let committed = group.get(p).copied().flatten();
            let start = match &scan.startup {
                StartupMode::Earliest => low,
                StartupMode::Latest => high,
                StartupMode::Timestamp(_) => start_times.get(p).copied().flatten().unwrap_or(high),
                StartupMode::GroupOffsets => match committed {
                    Some(offset) => offset,
                    None => reset_offset(scan, p, low, high)?,
                },
                StartupMode::Specific(offsets) => offsets
                    .get(&p.partition)
                    .copied()
                    .or(committed)
                    .unwrap_or(low),
            };
            let stop = match &scan.bounded {
                BoundedMode::Unbounded => None,
                BoundedMode::Latest => Some(high),
                BoundedMode::GroupOffsets => Some(committed.unwrap_or(start)),
                BoundedMode::Timestamp(_) => {
                    Some(stop_times.get(p).copied().flatten().unwrap_or(high))
                }
                BoundedMode::Specific(offsets) => {
                    Some(offsets.get(&p.partition).copied().unwrap_or(start))
                }
            };
            Ok(PartitionRange::within(p.clone(), start, stop, (low, high)))
        })
        .collect()
}

impl PartitionRange {
    /// Reading `partition` from `start` to `stop`, the start moved into
    /// the offsets the partition holds (`low` to `high`), and the stop not
    /// before the start.
    fn within(
        partition: TopicPartition,
        start: i64,
        stop: Option<i64>,
        (low, high): (i64, i64),
    ) -> Self {
        let start = start.clamp(low, high.max(low));
        Self {
            partition,
            start,
            stop: stop.map(|s| s.max(start)),
        }
    }
}

/// Where a partition the group has no offset for starts, by
/// `properties.auto.offset.reset` (as Flink: without it, the job fails).
fn reset_offset(
    scan: &ScanOptions,
    partition: &TopicPartition,
    low: i64,
    high: i64,
) -> Result<i64> {
    match scan
        .properties
        .get("auto.offset.reset")
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        Some("earliest" | "smallest" | "beginning") => Ok(low),
        Some("latest" | "largest" | "end") => Ok(high),
        _ => Err(Error::Option {
            option: "scan.startup.mode".to_string(),
            message: format!(
                "group '{}' has no committed offset for {partition}: set \
                 'properties.auto.offset.reset' to 'earliest' or 'latest', or another \
                 'scan.startup.mode'",
                scan.properties.get("group.id").map_or("", String::as_str)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_spread_evenly_from_a_topic_dependent_subtask() {
        let of = |topic: &str, partition| TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        for parallelism in 1..=5 {
            let mut count = vec![0; parallelism];
            for p in 0..10 {
                count[of("bids", p).owner(parallelism)] += 1;
            }
            let (min, max) = (count.iter().min(), count.iter().max());
            assert!(max.unwrap() - min.unwrap() <= 1, "{count:?}");
        }
        assert_eq!(of("bids", 0).owner(1), 0);
        // Consecutive partitions go to consecutive subtasks.
        let first = of("t", 0).owner(3);
        assert_eq!(of("t", 1).owner(3), (first + 1) % 3);
    }

    /// A start past the partition's end (a group's or a given offset)
    /// starts at the end, and a bounded read that stops at the end reads
    /// nothing rather than wait for the old start.
    #[test]
    fn a_start_past_the_end_reads_to_the_end_only() {
        let p = TopicPartition {
            topic: "t".to_string(),
            partition: 0,
        };
        let range = PartitionRange::within(p.clone(), 1000, Some(100), (10, 100));
        assert_eq!((range.start, range.stop), (100, Some(100)));
        let range = PartitionRange::within(p.clone(), 3, Some(50), (10, 100));
        assert_eq!((range.start, range.stop), (10, Some(50)));
        let range = PartitionRange::within(p, 40, None, (10, 100));
        assert_eq!((range.start, range.stop), (40, None));
    }
}
