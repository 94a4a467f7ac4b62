//! The `kafka` connector: topics as sources and sinks, with Flink's option
//! names.
//!
//! ```sql
//! CREATE TABLE bids (
//!     auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3),
//!     kafka_offset BIGINT METADATA FROM 'offset',
//!     WATERMARK FOR date_time AS date_time - INTERVAL '5' SECOND
//! ) WITH (
//!     'connector' = 'kafka',
//!     'topic' = 'bids',
//!     'properties.bootstrap.servers' = '127.0.0.1:9092',
//!     'scan.startup.mode' = 'earliest-offset',
//!     'format' = 'json'
//! );
//! ```
//!
//! Source options:
//! - `topic` (several separated by `;`) or `topic-pattern` (a regular
//!   expression the whole name matches);
//! - `properties.*`: passed to the client (librdkafka) without the prefix;
//!   `properties.bootstrap.servers` is required, `properties.group.id`
//!   for the group's offsets;
//! - `scan.startup.mode`: `group-offsets` (the default), `earliest-offset`,
//!   `latest-offset`, `timestamp` (`scan.startup.timestamp-millis`),
//!   `specific-offsets` (`scan.startup.specific-offsets`, as
//!   `partition:0,offset:42;partition:1,offset:300`);
//! - `scan.bounded.mode`: `unbounded` (the default), `latest-offset`,
//!   `group-offsets`, `timestamp` (`scan.bounded.timestamp-millis`),
//!   `specific-offsets` (`scan.bounded.specific-offsets`): a bounded source
//!   reads up to there and ends, and the job can run in batch mode;
//! - `scan.topic-partition-discovery.interval` (default 5 minutes, `0`
//!   for never): how often an unbounded source looks for new partitions
//!   and new topics matching its pattern, which it reads from their start;
//! - `format` or `value.format` (`json`, `csv`, `raw`, `avro`) with the
//!   format's options (`csv.*`, `avro.schema`, or `value.csv.*`...),
//!   `key.format` with
//!   `key.fields` (the columns the key holds, separated by `;`) and
//!   `key.csv.*`..., `value.fields-include` (`ALL`, the default, or
//!   `EXCEPT_KEY`);
//! - `bad-records`: `fail` (the default, naming the topic, partition and
//!   offset), `drop` (counted in the job's summary) or `dead-letter`: the
//!   message, its coordinates and the reason as JSON to files under
//!   `bad-records.path` or to the topic `bad-records.topic`.
//!
//! Sink options: `topic` (one), `properties.*`, the formats and key
//! options as above, `sink.partitioner` (`default`: by the key's hash, as
//! Kafka's Java client; `fixed`: each subtask one partition;
//! `round-robin`), `sink.delivery-guarantee` (`at-least-once`, the
//! default: every message is delivered before a checkpoint completes;
//! `none`; `exactly-once` with `sink.transactional-id-prefix`: a Kafka
//! transaction per subtask per checkpoint, see [`transactions`]).
//!
//! Columns declared `METADATA FROM` read the message's `topic`,
//! `partition`, `offset`, `timestamp`, `key` or `headers` (a JSON object
//! of the headers' values, as STRING); a sink writes `timestamp` and
//! `headers` columns with its messages.
//!
//! Each partition is a split: partitions go to subtasks round-robin from a
//! subtask that depends on the topic, and each has its own watermark. The
//! offset of every partition is part of checkpoints and savepoints, and a
//! job resumes exactly there, at any parallelism. Where reading starts and
//! stops is resolved once, when the job is built, so that every attempt of
//! a subtask reads the same messages.
//!
//! The client's blocking calls run on threads of their own: each subtask
//! reads on one thread with librdkafka's consumer and decodes on the CPU
//! pool; metadata and offsets are asked for on tokio's blocking threads.

mod avro;
mod client;
mod columns;
mod dead_letter;
mod encode;
mod end_txn;
mod format;
mod layout;
mod options;
mod partitions;
mod reader;
mod sink;
mod source;
pub mod transactions;

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::registry::{ConnectorOptions, SinkConnector, SourceConnector};
use weir_engine::{SinkFactory, SourceFactory};
use weir_exchange::store_url::STORE_OPTIONS;

pub use client::ClientSettings;
pub use columns::TableColumns;
pub use dead_letter::DeadLetters;
pub use layout::Layout;
pub use options::{
    BoundedMode, DeliveryGuarantee, ScanOptions, SinkOptions, SinkPartitioner, StartupMode, Topics,
};
pub use partitions::{PartitionRange, TopicPartition};
pub use sink::KafkaSinkFactory;
pub use source::KafkaSourceFactory;

use crate::{Error, Result};

/// Reads Kafka topics (see the [module](self)).
#[derive(Debug)]
pub struct KafkaConnector;

#[async_trait]
impl SourceConnector for KafkaConnector {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn option_names(&self) -> Vec<&'static str> {
        option_names()
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        declared: Option<SchemaRef>,
    ) -> weir_engine::Result<Arc<dyn SourceFactory>> {
        Ok(open_source(options, declared).await?)
    }
}

#[async_trait]
impl SinkConnector for KafkaConnector {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn option_names(&self) -> Vec<&'static str> {
        option_names()
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        schema: SchemaRef,
    ) -> weir_engine::Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(KafkaSinkFactory::open(options, &schema).await?))
    }
}

/// The options of a Kafka table, read as a source or written as a sink:
/// as in Flink, one table is both, and each ignores the other's options.
fn option_names() -> Vec<&'static str> {
    let mut names = vec![
        "topic-pattern",
        "scan.startup.mode",
        "scan.startup.timestamp-millis",
        "scan.startup.specific-offsets",
        "scan.bounded.mode",
        "scan.bounded.timestamp-millis",
        "scan.bounded.specific-offsets",
        "scan.topic-partition-discovery.interval",
    ];
    names.extend_from_slice(SinkOptions::OPTION_NAMES);
    names.extend_from_slice(TableColumns::OPTION_NAMES);
    names.extend_from_slice(Layout::OPTION_NAMES);
    names.extend_from_slice(DeadLetters::OPTION_NAMES);
    names.extend(STORE_OPTIONS);
    names
}

async fn open_source(
    options: &ConnectorOptions,
    declared: Option<SchemaRef>,
) -> Result<Arc<dyn SourceFactory>> {
    let declared = declared.ok_or_else(|| Error::DeclaredColumns {
        connector: "kafka",
        message: "a Kafka table needs its columns declared: CREATE TABLE t (col TYPE, ...) \
            WITH ('connector' = 'kafka', ...)"
            .to_string(),
    })?;
    let scan = ScanOptions::from_options(options)?;
    let columns = TableColumns::new(&declared, options)?;
    let settings = ClientSettings::new(scan.properties.clone())?;
    let dead_letters = DeadLetters::from_options(options, &settings)?;
    let ranges = {
        let (scan, settings) = (scan.clone(), settings.clone());
        client::off_workers(move || {
            let consumer = settings.consumer(&[])?;
            let partitions = partitions::list_partitions(&consumer, &settings, &scan.topics)?;
            partitions::resolve_ranges(&consumer, &settings, &scan, &partitions)
        })
        .await?
    };
    Ok(Arc::new(KafkaSourceFactory::new(
        &scan,
        settings,
        ranges,
        columns,
        dead_letters,
    )))
}
