//! The Kafka sink: each subtask produces its rows as messages, one per
//! row, and makes them durable at every checkpoint and at its end.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, SchemaRef, TimeUnit, TimestampMillisecondType};
use async_trait::async_trait;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use weir_engine::registry::ConnectorOptions;
use weir_engine::source::METADATA_FROM;
use weir_engine::task::Counters;
use weir_engine::{Sink, SinkFactory, TaskInfo};

use super::client::{BrokerWatch, ClientSettings, off_workers};
use super::encode::{MessageEncoder, project};
use super::layout::{Layout, schema_of};
use super::options::{DeliveryGuarantee, SinkOptions, SinkPartitioner};
use crate::{Error, Result};

/// How long a full producer queue is waited on before a send is tried
/// again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);

/// How rows become messages: the key's and the value's columns and
/// formats.
#[derive(Debug)]
struct Encoding {
    value: MessageEncoder,
    value_columns: Vec<usize>,
    value_schema: SchemaRef,
    key: Option<(MessageEncoder, Vec<usize>, SchemaRef)>,
    /// The column of the messages' timestamps (`METADATA FROM
    /// 'timestamp'`), if any.
    timestamp: Option<usize>,
    /// The column of the messages' headers (`METADATA FROM 'headers'`, a
    /// JSON object of text values), if any.
    headers: Option<usize>,
}

/// A message to send.
#[derive(Debug, Default)]
struct Outgoing {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    /// Milliseconds since the epoch (`None`: the time of sending).
    timestamp: Option<i64>,
    headers: Vec<(String, Option<String>)>,
}

fn is_time(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Timestamp(_, _))
}

impl Encoding {
    fn new(schema: &SchemaRef, options: &ConnectorOptions) -> Result<Self> {
        let (mut timestamp, mut headers) = (None, None);
        let mut data = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            match field.metadata().get(METADATA_FROM).map(String::as_str) {
                None => data.push(i),
                Some("timestamp") if is_time(field.data_type()) => timestamp = Some(i),
                Some("headers") if field.data_type() == &DataType::Utf8 => headers = Some(i),
                Some(key) => {
                    return Err(Error::DeclaredColumns {
                        connector: "kafka",
                        message: format!(
                            "column '{}': the Kafka sink writes the metadata 'timestamp' \
                             (a TIMESTAMP column) and 'headers' (a STRING column), not \
                             '{key}' of type {}: declare it VIRTUAL",
                            field.name(),
                            field.data_type()
                        ),
                    });
                }
            }
        }
        let all: Vec<&Field> = schema.fields().iter().map(AsRef::as_ref).collect();
        let columns: Vec<&Field> = data.iter().map(|&i| all[i]).collect();
        let layout = Layout::new(&columns, options)?;
        // The layout's columns are the data columns; the batch's are all.
        let in_batch = |indices: &[usize]| indices.iter().map(|&i| data[i]).collect::<Vec<_>>();
        let value_schema = Arc::new(schema_of(&columns, &layout.value_columns));
        let value = MessageEncoder::new(
            layout.value.option,
            &layout.value.name,
            &value_schema,
            options,
            layout.value.prefix,
        )?;
        let key = match &layout.key {
            None => None,
            Some(choice) => {
                let key_schema = Arc::new(schema_of(&columns, &layout.key_columns));
                let key = MessageEncoder::new(
                    choice.option,
                    &choice.name,
                    &key_schema,
                    options,
                    choice.prefix,
                )?;
                Some((key, in_batch(&layout.key_columns), key_schema))
            }
        };
        Ok(Self {
            value,
            value_columns: in_batch(&layout.value_columns),
            value_schema,
            key,
            timestamp,
            headers,
        })
    }

    /// The message of each row of `batch`.
    fn encode(&self, batch: &RecordBatch) -> Result<Vec<Outgoing>> {
        let values =
            self.value
                .encode(&project(batch, &self.value_columns, &self.value_schema)?)?;
        let keys = match &self.key {
            Some((encoder, columns, schema)) => {
                encoder.encode(&project(batch, columns, schema)?)?
            }
            None => vec![None; batch.num_rows()],
        };
        let times: Vec<Option<i64>> = match self.timestamp {
            Some(column) => {
                let millis = cast(
                    batch.column(column),
                    &DataType::Timestamp(TimeUnit::Millisecond, None),
                )?;
                millis
                    .as_primitive::<TimestampMillisecondType>()
                    .iter()
                    .collect()
            }
            None => vec![None; batch.num_rows()],
        };
        let mut messages: Vec<Outgoing> = keys
            .into_iter()
            .zip(values)
            .zip(times)
            .map(|((key, value), timestamp)| Outgoing {
                key,
                value,
                timestamp,
                headers: Vec::new(),
            })
            .collect();
        if let Some(column) = self.headers {
            let name = batch.schema().field(column).name().clone();
            for (message, text) in messages
                .iter_mut()
                .zip(batch.column(column).as_string::<i32>())
            {
                message.headers = text
                    .map(|t| parse_headers(&name, t))
                    .transpose()?
                    .unwrap_or_default();
            }
        }
        Ok(messages)
    }
}

/// Headers from a JSON object of text (or null) values.
fn parse_headers(column: &str, text: &str) -> Result<Vec<(String, Option<String>)>> {
    let bad = || Error::Kafka {
        message: format!("column '{column}': headers are a JSON object of text values, not {text}"),
    };
    let serde_json::Value::Object(object) = serde_json::from_str(text).map_err(|_| bad())? else {
        return Err(bad());
    };
    object
        .into_iter()
        .map(|(key, value)| match value {
            serde_json::Value::Null => Ok((key, None)),
            serde_json::Value::String(v) => Ok((key, Some(v))),
            _ => Err(bad()),
        })
        .collect()
}

/// Builds the subtasks of a Kafka sink.
#[derive(Debug)]
pub struct KafkaSinkFactory {
    options: SinkOptions,
    settings: ClientSettings,
    encoding: Arc<Encoding>,
    /// The topic's partitions when the job was built.
    partitions: i32,
}

impl KafkaSinkFactory {
    /// A sink of rows of `schema` with `options`, checking that the topic
    /// exists.
    ///
    /// # Errors
    /// Invalid options, or a topic the brokers do not have.
    pub async fn open(options: &ConnectorOptions, schema: &SchemaRef) -> Result<Self> {
        let sink = SinkOptions::from_options(options)?;
        let encoding = Encoding::new(schema, options)?;
        let settings = ClientSettings::new(sink.properties.clone())?;
        let partitions = {
            let (settings, topic) = (settings.clone(), sink.topic.clone());
            off_workers(move || {
                let consumer = settings.consumer(&[])?;
                let topics = super::options::Topics::Named(vec![topic]);
                Ok(super::partitions::list_partitions(&consumer, &settings, &topics)?.len() as i32)
            })
            .await?
        };
        Ok(Self {
            options: sink,
            settings,
            encoding: Arc::new(encoding),
            partitions,
        })
    }
}

#[async_trait]
impl SinkFactory for KafkaSinkFactory {
    fn name(&self) -> String {
        format!("kafka({})", self.options.topic)
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Sink>> {
        let mut overrides = Vec::new();
        if !self.settings.properties.contains_key("partitioner") {
            // Kafka's Java client's partitioner, as Flink's default.
            overrides.push(("partitioner", "murmur2_random"));
        }
        if self.options.guarantee == DeliveryGuarantee::AtLeastOnce {
            // Retries write no duplicates.
            overrides.push(("enable.idempotence", "true"));
        }
        let producer = self.settings.producer(&overrides)?;
        let partitions = self.partitions.max(1);
        Ok(Box::new(KafkaSink {
            producer: Arc::new(producer),
            topic: self.options.topic.clone(),
            encoding: Arc::clone(&self.encoding),
            partitioner: self.options.partitioner,
            partitions,
            next: (task.subtask as i32) % partitions,
            guarantee: self.options.guarantee,
            counters: task.counters.clone(),
        }))
    }
}

/// One subtask of a Kafka sink.
struct KafkaSink {
    producer: Arc<ThreadedProducer<BrokerWatch>>,
    topic: String,
    encoding: Arc<Encoding>,
    partitioner: SinkPartitioner,
    partitions: i32,
    /// The partition of the next row (`fixed`, `round-robin`).
    next: i32,
    guarantee: DeliveryGuarantee,
    counters: Counters,
}

impl KafkaSink {
    fn partition(&mut self) -> Option<i32> {
        match self.partitioner {
            SinkPartitioner::Default => None,
            SinkPartitioner::Fixed => Some(self.next),
            SinkPartitioner::RoundRobin => {
                let partition = self.next;
                self.next = (self.next + 1) % self.partitions;
                Some(partition)
            }
        }
    }

    /// Fails when a message could not be delivered.
    fn check_delivered(&self) -> Result<()> {
        match self.producer.context().undelivered() {
            Some(reason) => Err(Error::Kafka { message: reason }),
            None => Ok(()),
        }
    }

    /// Waits until every message sent is delivered or failed.
    async fn flush(&self) -> Result<()> {
        let producer = Arc::clone(&self.producer);
        off_workers(move || {
            // Each message is delivered or fails within
            // `message.timeout.ms`.
            producer.flush(Timeout::Never).map_err(|e| Error::Kafka {
                message: format!("cannot flush the messages: {e}"),
            })
        })
        .await?;
        self.check_delivered()
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> weir_engine::Result<()> {
        self.check_delivered()?;
        let encoding = Arc::clone(&self.encoding);
        let payloads = weir_engine::cpu::run(move || encoding.encode(&batch)).await?;
        let mut bytes = 0;
        for message in &payloads {
            bytes += message.key.as_ref().map_or(0, Vec::len)
                + message.value.as_ref().map_or(0, Vec::len);
            let partition = self.partition();
            loop {
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic);
                if let Some(key) = &message.key {
                    record = record.key(key.as_slice());
                }
                if let Some(value) = &message.value {
                    record = record.payload(value.as_slice());
                }
                if let Some(partition) = partition {
                    record = record.partition(partition);
                }
                if let Some(time) = message.timestamp {
                    record = record.timestamp(time);
                }
                if !message.headers.is_empty() {
                    let headers =
                        message
                            .headers
                            .iter()
                            .fold(OwnedHeaders::new(), |h, (key, value)| {
                                h.insert(Header {
                                    key,
                                    value: value.as_deref(),
                                })
                            });
                    record = record.headers(headers);
                }
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(QUEUE_FULL_WAIT).await;
                    }
                    Err((e, _)) => {
                        return Err(Error::Kafka {
                            message: format!("cannot send to topic '{}': {e}", self.topic),
                        }
                        .into());
                    }
                }
            }
        }
        self.counters.add("messages written", payloads.len() as u64);
        self.counters.add("bytes written", bytes as u64);
        Ok(())
    }

    async fn finish(&mut self) -> weir_engine::Result<()> {
        Ok(self.flush().await?)
    }

    /// At least once: every message sent before the barrier is delivered
    /// before the checkpoint completes; a restart from it sends what
    /// followed again. Without a guarantee, nothing is waited for.
    async fn prepare_commit(
        &mut self,
        _checkpoint: u64,
    ) -> weir_engine::Result<Option<serde_json::Value>> {
        match self.guarantee {
            DeliveryGuarantee::AtLeastOnce => self.flush().await?,
            DeliveryGuarantee::None => self.check_delivered()?,
        }
        Ok(None)
    }
}
