//! The Kafka connector's options, with Flink's names: which topics, where
//! reading starts and ends, the client's properties.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;
use weir_engine::duration::parse_duration;
use weir_engine::registry::ConnectorOptions;

use crate::{Error, Result};

/// The prefix of options passed to the Kafka client as they are.
pub const PROPERTIES_PREFIX: &str = "properties.";

/// How often a source looks for new partitions and topics by default
/// (Flink's default).
pub const DEFAULT_DISCOVERY_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// Which topics a source reads.
#[derive(Debug, Clone)]
pub enum Topics {
    /// These topics (`topic`, several separated by `;`).
    Named(Vec<String>),
    /// Every topic whose whole name matches (`topic-pattern`).
    Pattern(Regex),
}

impl Topics {
    /// Whether the source reads topic `name`.
    pub fn includes(&self, name: &str) -> bool {
        match self {
            Self::Named(names) => names.iter().any(|n| n == name),
            Self::Pattern(pattern) => pattern.is_match(name),
        }
    }
}

impl std::fmt::Display for Topics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Named(names) => write!(f, "{}", names.join(";")),
            Self::Pattern(pattern) => write!(f, "/{}/", pattern.as_str()),
        }
    }
}

/// Offsets given per partition (`partition:0,offset:42;partition:1,offset:300`).
pub type PartitionOffsets = BTreeMap<i32, i64>;

/// Where a source starts reading each partition (`scan.startup.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMode {
    /// The group's committed offsets (`group-offsets`, the default); where
    /// the group has none, `properties.auto.offset.reset` decides.
    GroupOffsets,
    /// The first offset still kept (`earliest-offset`).
    Earliest,
    /// The end at the time the job starts (`latest-offset`).
    Latest,
    /// The first record at or after this time (`timestamp`, with
    /// `scan.startup.timestamp-millis`).
    Timestamp(i64),
    /// These offsets (`specific-offsets`, with
    /// `scan.startup.specific-offsets`); other partitions start at the
    /// group's offset, else at the earliest.
    Specific(PartitionOffsets),
}

/// Where a source stops reading each partition (`scan.bounded.mode`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundedMode {
    /// It never stops (`unbounded`, the default).
    Unbounded,
    /// At the end as of the job's start (`latest-offset`).
    Latest,
    /// At the group's committed offsets (`group-offsets`).
    GroupOffsets,
    /// Before the first record at or after this time (`timestamp`, with
    /// `scan.bounded.timestamp-millis`).
    Timestamp(i64),
    /// Before these offsets (`specific-offsets`, with
    /// `scan.bounded.specific-offsets`); partitions not listed are not read.
    Specific(PartitionOffsets),
}

/// The options of a Kafka source that say what it reads.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// The topics.
    pub topics: Topics,
    /// The client's properties (`properties.*`, without the prefix).
    pub properties: BTreeMap<String, String>,
    /// Where each partition starts.
    pub startup: StartupMode,
    /// Where each partition ends, if it does.
    pub bounded: BoundedMode,
    /// How often new partitions and topics are looked for (`None`: never).
    pub discovery: Option<Duration>,
}

impl ScanOptions {
    /// The scan options set in `options`.
    ///
    /// # Errors
    /// [`Error::Option`] naming a missing, conflicting or invalid option.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let topics = topics(options)?;
        let properties = client_properties(options)?;
        let startup = match text(options, "scan.startup.mode").unwrap_or("group-offsets") {
            "group-offsets" => StartupMode::GroupOffsets,
            "earliest-offset" => StartupMode::Earliest,
            "latest-offset" => StartupMode::Latest,
            "timestamp" => {
                StartupMode::Timestamp(millis(options, "scan.startup.timestamp-millis")?)
            }
            "specific-offsets" => {
                StartupMode::Specific(partition_offsets(options, "scan.startup.specific-offsets")?)
            }
            other => {
                return Err(invalid(
                    "scan.startup.mode",
                    other,
                    "group-offsets, earliest-offset, latest-offset, timestamp, specific-offsets",
                ));
            }
        };
        refuse_unless(
            options,
            "scan.startup.timestamp-millis",
            matches!(startup, StartupMode::Timestamp(_)),
            "'scan.startup.mode' = 'timestamp'",
        )?;
        refuse_unless(
            options,
            "scan.startup.specific-offsets",
            matches!(startup, StartupMode::Specific(_)),
            "'scan.startup.mode' = 'specific-offsets'",
        )?;
        let bounded = match text(options, "scan.bounded.mode").unwrap_or("unbounded") {
            "unbounded" => BoundedMode::Unbounded,
            "latest-offset" => BoundedMode::Latest,
            "group-offsets" => BoundedMode::GroupOffsets,
            "timestamp" => {
                BoundedMode::Timestamp(millis(options, "scan.bounded.timestamp-millis")?)
            }
            "specific-offsets" => {
                BoundedMode::Specific(partition_offsets(options, "scan.bounded.specific-offsets")?)
            }
            other => {
                return Err(invalid(
                    "scan.bounded.mode",
                    other,
                    "unbounded, latest-offset, group-offsets, timestamp, specific-offsets",
                ));
            }
        };
        refuse_unless(
            options,
            "scan.bounded.timestamp-millis",
            matches!(bounded, BoundedMode::Timestamp(_)),
            "'scan.bounded.mode' = 'timestamp'",
        )?;
        refuse_unless(
            options,
            "scan.bounded.specific-offsets",
            matches!(bounded, BoundedMode::Specific(_)),
            "'scan.bounded.mode' = 'specific-offsets'",
        )?;
        let uses_group = matches!(startup, StartupMode::GroupOffsets)
            || matches!(bounded, BoundedMode::GroupOffsets);
        if uses_group && !properties.contains_key("group.id") {
            return Err(Error::Option {
                option: "properties.group.id".to_string(),
                message: "is required to start or stop at the group's offsets \
                    (or set 'scan.startup.mode' to 'earliest-offset', 'latest-offset', \
                    'timestamp' or 'specific-offsets')"
                    .to_string(),
            });
        }
        let per_partition = matches!(startup, StartupMode::Specific(_))
            || matches!(bounded, BoundedMode::Specific(_));
        if per_partition && !matches!(&topics, Topics::Named(names) if names.len() == 1) {
            return Err(Error::Option {
                option: "topic".to_string(),
                message: "specific offsets name partitions of one topic: give one 'topic'"
                    .to_string(),
            });
        }
        let discovery = match text(options, "scan.topic-partition-discovery.interval") {
            None => Some(DEFAULT_DISCOVERY_INTERVAL),
            Some(value) => match parse_duration(value) {
                Some(interval) if interval.is_zero() => None,
                Some(interval) => Some(interval),
                None => {
                    return Err(Error::Option {
                        option: "scan.topic-partition-discovery.interval".to_string(),
                        message: format!(
                            "'{value}' is not a duration such as '30 s' ('0' turns discovery off)"
                        ),
                    });
                }
            },
        };
        Ok(Self {
            topics,
            properties,
            startup,
            bounded,
            discovery,
        })
    }
}

/// How a sink makes its messages survive failures
/// (`sink.delivery-guarantee`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Messages may be lost when a job fails (`none`).
    None,
    /// Every message is delivered before a checkpoint completes; a restart
    /// writes those after it again (`at-least-once`, the default).
    AtLeastOnce,
    /// The messages between two checkpoints are one Kafka transaction per
    /// subtask, committed when the later checkpoint completes
    /// (`exactly-once`, with `sink.transactional-id-prefix`).
    ExactlyOnce {
        /// The prefix of the transactional ids.
        prefix: String,
    },
}

/// Which partition a sink writes each row to (`sink.partitioner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkPartitioner {
    /// By the key's hash as Kafka's Java client does (murmur2), spread
    /// over partitions without a key (`default`).
    Default,
    /// Each subtask writes one partition (`fixed`).
    Fixed,
    /// Each subtask writes the partitions in turn (`round-robin`).
    RoundRobin,
}

/// The options of a Kafka sink that say where and how it writes.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// The topic.
    pub topic: String,
    /// The client's properties (`properties.*`, without the prefix).
    pub properties: BTreeMap<String, String>,
    /// How messages survive failures.
    pub guarantee: DeliveryGuarantee,
    /// Which partition each row goes to.
    pub partitioner: SinkPartitioner,
}

impl SinkOptions {
    /// The option names this reads.
    pub const OPTION_NAMES: &'static [&'static str] = &[
        "topic",
        "properties.**",
        "sink.delivery-guarantee",
        "sink.partitioner",
        "sink.transactional-id-prefix",
    ];

    /// The sink options set in `options`.
    ///
    /// # Errors
    /// [`Error::Option`] naming a missing or invalid option.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let topic = match topics(options)? {
            Topics::Named(mut names) if names.len() == 1 => names.remove(0),
            _ => {
                return Err(Error::Option {
                    option: "topic".to_string(),
                    message: "a table written to names one topic: give one 'topic'".to_string(),
                });
            }
        };
        let guarantee = match text(options, "sink.delivery-guarantee").unwrap_or("at-least-once") {
            "none" => DeliveryGuarantee::None,
            "at-least-once" => DeliveryGuarantee::AtLeastOnce,
            "exactly-once" => DeliveryGuarantee::ExactlyOnce {
                prefix: transactional_id_prefix(options)?,
            },
            other => {
                return Err(invalid(
                    "sink.delivery-guarantee",
                    other,
                    "none, at-least-once, exactly-once",
                ));
            }
        };
        refuse_unless(
            options,
            "sink.transactional-id-prefix",
            matches!(guarantee, DeliveryGuarantee::ExactlyOnce { .. }),
            "'sink.delivery-guarantee' = 'exactly-once'",
        )?;
        let partitioner = match text(options, "sink.partitioner").unwrap_or("default") {
            "default" => SinkPartitioner::Default,
            "fixed" => SinkPartitioner::Fixed,
            "round-robin" => SinkPartitioner::RoundRobin,
            other => {
                return Err(invalid(
                    "sink.partitioner",
                    other,
                    "default, fixed, round-robin",
                ));
            }
        };
        Ok(Self {
            topic,
            properties: client_properties(options)?,
            guarantee,
            partitioner,
        })
    }
}

/// The prefix of an exactly-once sink's transactional ids, which Flink too
/// requires: the ids of two jobs writing at once must differ.
fn transactional_id_prefix(options: &ConnectorOptions) -> Result<String> {
    let option = "sink.transactional-id-prefix";
    match text(options, option) {
        Some(prefix) if !prefix.is_empty() => Ok(prefix.to_string()),
        _ => Err(Error::Option {
            option: option.to_string(),
            message: "is required with 'sink.delivery-guarantee' = 'exactly-once': a prefix \
                of the Kafka transactional ids, different for every job writing at once"
                .to_string(),
        }),
    }
}

/// The topics of `topic` or `topic-pattern` (exactly one of them).
fn topics(options: &ConnectorOptions) -> Result<Topics> {
    match (text(options, "topic"), text(options, "topic-pattern")) {
        (Some(_), Some(_)) => Err(Error::Option {
            option: "topic-pattern".to_string(),
            message: "give either 'topic' or 'topic-pattern', not both".to_string(),
        }),
        (None, None) => Err(Error::Option {
            option: "topic".to_string(),
            message: "is required: the topic to read (several separated by ';'), \
                or 'topic-pattern' for every topic matching a regular expression"
                .to_string(),
        }),
        (Some(list), None) => {
            let names: Vec<String> = list
                .split(';')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            if names.is_empty() {
                return Err(Error::Option {
                    option: "topic".to_string(),
                    message: "names no topic".to_string(),
                });
            }
            Ok(Topics::Named(names))
        }
        (None, Some(pattern)) => Regex::new(&format!("^(?:{pattern})$"))
            .map(Topics::Pattern)
            .map_err(|e| Error::Option {
                option: "topic-pattern".to_string(),
                message: format!("not a regular expression: {e}"),
            }),
    }
}

/// The client's properties: `properties.*` without the prefix;
/// `properties.bootstrap.servers` is required.
///
/// # Errors
/// [`Error::Option`] when the servers are missing, or a property weir
/// sets itself is given.
pub fn client_properties(options: &ConnectorOptions) -> Result<BTreeMap<String, String>> {
    let properties: BTreeMap<String, String> = options
        .iter()
        .filter_map(|(key, value)| {
            key.strip_prefix(PROPERTIES_PREFIX)
                .map(|k| (k.to_string(), value.clone()))
        })
        .collect();
    if !properties.contains_key("bootstrap.servers") {
        return Err(Error::Option {
            option: "properties.bootstrap.servers".to_string(),
            message: "is required: the brokers to connect to, as 'host:port[,host:port...]'"
                .to_string(),
        });
    }
    for owned in [
        "enable.auto.commit",
        "enable.auto.offset.store",
        "transactional.id",
        "enable.idempotence",
    ] {
        if properties.contains_key(owned) {
            return Err(Error::Option {
                option: format!("{PROPERTIES_PREFIX}{owned}"),
                message: "is set by weir (offsets are kept in checkpoints; the sink's \
                    'sink.delivery-guarantee' decides idempotence and transactions)"
                    .to_string(),
            });
        }
    }
    Ok(properties)
}

/// A trimmed option value, if set.
pub(super) fn text<'a>(options: &'a ConnectorOptions, name: &str) -> Option<&'a str> {
    options.get(name).map(|v| v.trim())
}

/// An error for value `value` of option `option`, listing the valid ones.
pub(super) fn invalid(option: &str, value: &str, valid: &str) -> Error {
    Error::Option {
        option: option.to_string(),
        message: format!("invalid value '{value}' (valid: {valid})"),
    }
}

/// Refuses option `name` unless `applies`, saying what it goes with.
fn refuse_unless(
    options: &ConnectorOptions,
    name: &str,
    applies: bool,
    goes_with: &str,
) -> Result<()> {
    if options.contains_key(name) && !applies {
        return Err(Error::Option {
            option: name.to_string(),
            message: format!("is only used with {goes_with}"),
        });
    }
    Ok(())
}

/// A required time in milliseconds since the epoch.
fn millis(options: &ConnectorOptions, name: &str) -> Result<i64> {
    let value = text(options, name).ok_or_else(|| Error::Option {
        option: name.to_string(),
        message: "is required: milliseconds since 1970-01-01 00:00:00 UTC".to_string(),
    })?;
    value.parse().map_err(|_| Error::Option {
        option: name.to_string(),
        message: format!("'{value}' is not a number of milliseconds"),
    })
}

/// Required offsets per partition, as Flink writes them:
/// `partition:0,offset:42;partition:1,offset:300`.
fn partition_offsets(options: &ConnectorOptions, name: &str) -> Result<PartitionOffsets> {
    let value = text(options, name).ok_or_else(|| Error::Option {
        option: name.to_string(),
        message: "is required: offsets as 'partition:0,offset:42;partition:1,offset:300'"
            .to_string(),
    })?;
    let bad = |part: &str| Error::Option {
        option: name.to_string(),
        message: format!("'{part}' is not 'partition:N,offset:M' with N and M non-negative"),
    };
    let mut offsets = PartitionOffsets::new();
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (partition, offset) = part.split_once(',').ok_or_else(|| bad(part))?;
        let number = |text: &str, key: &str| -> Option<i64> {
            let (k, v) = text.trim().split_once(':')?;
            (k.trim() == key).then_some(())?;
            v.trim().parse::<i64>().ok().filter(|n| *n >= 0)
        };
        let partition = number(partition, "partition")
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| bad(part))?;
        let offset = number(offset, "offset").ok_or_else(|| bad(part))?;
        if offsets.insert(partition, offset).is_some() {
            return Err(Error::Option {
                option: name.to_string(),
                message: format!("partition {partition} is given twice"),
            });
        }
    }
    if offsets.is_empty() {
        return Err(bad(value));
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> ConnectorOptions {
        let mut options: ConnectorOptions = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        options
            .entry("properties.bootstrap.servers".to_string())
            .or_insert_with(|| "127.0.0.1:9092".to_string());
        options
    }

    fn error(pairs: &[(&str, &str)]) -> String {
        ScanOptions::from_options(&options(pairs))
            .expect_err("invalid options")
            .to_string()
    }

    #[test]
    fn flink_defaults_and_lists() {
        let scan = ScanOptions::from_options(&options(&[
            ("topic", "a; b;"),
            ("properties.group.id", "g"),
            ("properties.fetch.min.bytes", "1"),
        ]))
        .expect("valid");
        assert!(matches!(&scan.topics, Topics::Named(n) if n == &["a", "b"]));
        assert_eq!(scan.startup, StartupMode::GroupOffsets);
        assert_eq!(scan.bounded, BoundedMode::Unbounded);
        assert_eq!(scan.discovery, Some(DEFAULT_DISCOVERY_INTERVAL));
        assert_eq!(scan.properties["fetch.min.bytes"], "1");
        assert_eq!(scan.properties["group.id"], "g");
    }

    #[test]
    fn modes_take_their_values() {
        let scan = ScanOptions::from_options(&options(&[
            ("topic", "t"),
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:42;partition:1,offset:300",
            ),
            ("scan.bounded.mode", "timestamp"),
            ("scan.bounded.timestamp-millis", "1700000000000"),
            ("scan.topic-partition-discovery.interval", "0"),
        ]))
        .expect("valid");
        assert_eq!(
            scan.startup,
            StartupMode::Specific(BTreeMap::from([(0, 42), (1, 300)]))
        );
        assert_eq!(scan.bounded, BoundedMode::Timestamp(1_700_000_000_000));
        assert_eq!(scan.discovery, None);
        let scan = ScanOptions::from_options(&options(&[
            ("topic-pattern", "bids-.*"),
            ("scan.startup.mode", "earliest-offset"),
            ("scan.topic-partition-discovery.interval", "30 s"),
        ]))
        .expect("valid");
        assert!(scan.topics.includes("bids-1") && !scan.topics.includes("xbids-1"));
        assert_eq!(scan.discovery, Some(Duration::from_secs(30)));
    }

    #[test]
    fn invalid_options_are_named() {
        assert!(error(&[]).contains("'topic': is required"));
        assert!(error(&[("topic", "a"), ("topic-pattern", "b")]).contains("not both"));
        assert!(error(&[("topic", "a")]).contains("'properties.group.id': is required"));
        let e = error(&[("topic", "a"), ("scan.startup.mode", "earliest")]);
        assert!(e.contains("invalid value 'earliest'") && e.contains("earliest-offset"));
        let e = error(&[("topic", "a"), ("scan.startup.mode", "timestamp")]);
        assert!(
            e.contains("'scan.startup.timestamp-millis': is required"),
            "{e}"
        );
        let e = error(&[
            ("topic", "a"),
            ("scan.startup.mode", "specific-offsets"),
            ("scan.startup.specific-offsets", "partition:0,offset:x"),
        ]);
        assert!(e.contains("'partition:0,offset:x'"), "{e}");
        let e = error(&[
            ("topic", "a"),
            ("scan.startup.mode", "earliest-offset"),
            ("scan.startup.timestamp-millis", "5"),
        ]);
        assert!(
            e.contains("only used with 'scan.startup.mode' = 'timestamp'"),
            "{e}"
        );
        let e = error(&[
            ("topic", "a;b"),
            ("scan.startup.mode", "specific-offsets"),
            ("scan.startup.specific-offsets", "partition:0,offset:1"),
        ]);
        assert!(e.contains("one 'topic'"), "{e}");
        let e = error(&[
            ("topic", "a"),
            ("scan.startup.mode", "earliest-offset"),
            ("properties.enable.auto.commit", "true"),
        ]);
        assert!(e.contains("is set by weir"), "{e}");
        let e = ScanOptions::from_options(&ConnectorOptions::from([(
            "topic".to_string(),
            "a".to_string(),
        )]))
        .expect_err("no servers")
        .to_string();
        assert!(
            e.contains("'properties.bootstrap.servers': is required"),
            "{e}"
        );
    }
}
