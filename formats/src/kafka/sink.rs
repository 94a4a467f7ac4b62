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
use weir_engine::{CheckpointCommit, JobCommit, Sink, SinkFactory, TaskInfo};

use super::client::{BrokerWatch, ClientSettings, off_workers, release};
use super::encode::{MessageEncoder, project};
use super::layout::{Layout, schema_of};
use super::options::{DeliveryGuarantee, SinkOptions, SinkPartitioner};
use super::transactions::{Committable, CommittedTransaction, Ledger};
use crate::{Error, Result};

/// How long a full producer queue is waited on before a send is tried
/// again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(2);

/// How often a flush looks whether the producer's queue is empty.
const FLUSH_WAIT: Duration = Duration::from_millis(1);

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
        let value = MessageEncoder::new(&layout.value, &value_schema, options)?;
        let key = match &layout.key {
            None => None,
            Some(choice) => {
                let key_schema = Arc::new(schema_of(&columns, &layout.key_columns));
                let key = MessageEncoder::new(choice, &key_schema, options)?;
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
    /// The transactions of an exactly-once sink.
    ledger: Option<Arc<Ledger>>,
}

/// How long a transaction may stay open (librdkafka's
/// `transaction.timeout.ms`), unless the properties say: the longest that
/// brokers accept by default (their `transaction.max.timeout.ms`), so that
/// a checkpoint interval of minutes does not time transactions out.
const TRANSACTION_TIMEOUT_MS: &str = "900000";

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
        let ledger = match &sink.guarantee {
            DeliveryGuarantee::ExactlyOnce { prefix } => {
                let mut overrides = producer_overrides(&settings);
                if !settings.properties.contains_key("transaction.timeout.ms") {
                    overrides.push(("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS));
                }
                let overrides = overrides
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string()))
                    .collect();
                Some(Arc::new(Ledger::new(
                    prefix.clone(),
                    settings.clone(),
                    overrides,
                )))
            }
            _ => None,
        };
        Ok(Self {
            options: sink,
            settings,
            encoding: Arc::new(encoding),
            partitions,
            ledger,
        })
    }

    /// The transactions an exactly-once sink committed so far, in the
    /// order of their commits (none for the other guarantees): what a
    /// consumer reading committed messages sees.
    pub fn committed_transactions(&self) -> Vec<CommittedTransaction> {
        self.ledger
            .as_ref()
            .map(|l| l.committed())
            .unwrap_or_default()
    }

    fn committables(&self, commit: &CheckpointCommit<'_>) -> Result<Vec<Committable>> {
        commit
            .committables
            .iter()
            .map(|value| {
                serde_json::from_value(value.clone()).map_err(|e| Error::Kafka {
                    message: format!(
                        "{}: checkpoint {} holds a transaction that is not one: {e}",
                        self.name(),
                        commit.checkpoint
                    ),
                })
            })
            .collect()
    }
}

/// The properties every producer of a sink gets.
fn producer_overrides(settings: &ClientSettings) -> Vec<(&'static str, &'static str)> {
    let mut overrides = Vec::new();
    if !settings.properties.contains_key("partitioner") {
        // Kafka's Java client's partitioner, as Flink's default.
        overrides.push(("partitioner", "murmur2_random"));
    }
    overrides
}

#[async_trait]
impl SinkFactory for KafkaSinkFactory {
    fn name(&self) -> String {
        format!("kafka({})", self.options.topic)
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Sink>> {
        let producer = match &self.ledger {
            // Each transaction has a producer of its own.
            Some(_) => None,
            None => {
                let mut overrides = producer_overrides(&self.settings);
                if self.options.guarantee == DeliveryGuarantee::AtLeastOnce {
                    // Retries write no duplicates.
                    overrides.push(("enable.idempotence", "true"));
                }
                Some(Arc::new(self.settings.producer(&overrides)?))
            }
        };
        let partitions = self.partitions.max(1);
        Ok(Box::new(KafkaSink {
            producer,
            transactions: self.ledger.as_ref().map(|ledger| Transactions {
                ledger: Arc::clone(ledger),
                subtask: task.subtask,
                attempt: task.attempt,
                next: None,
            }),
            topic: self.options.topic.clone(),
            encoding: Arc::clone(&self.encoding),
            partitioner: self.options.partitioner,
            partitions,
            next: (task.subtask as i32) % partitions,
            flushes: self.options.guarantee == DeliveryGuarantee::AtLeastOnce,
            counters: task.counters.clone(),
        }))
    }

    fn needs_checkpoints(&self) -> Option<String> {
        self.ledger.as_ref().map(|_| {
            "'sink.delivery-guarantee' = 'exactly-once' commits a Kafka transaction when a \
             checkpoint completes: set 'execution.checkpointing.interval', or use \
             'at-least-once'"
                .to_string()
        })
    }

    async fn commit_checkpoint(&self, commit: &CheckpointCommit<'_>) -> weir_engine::Result<()> {
        let Some(ledger) = &self.ledger else {
            return Ok(());
        };
        let committables = self.committables(commit)?;
        Ok(ledger
            .commit(&committables, commit.decided_by.is_none())
            .await?)
    }

    async fn commit_job(&self, commit: &JobCommit) -> weir_engine::Result<()> {
        match &self.ledger {
            Some(ledger) => Ok(ledger.commit_job(&commit.attempts).await?),
            None => Ok(()),
        }
    }

    async fn abort_job(&self, _job_id: &str) -> weir_engine::Result<()> {
        match &self.ledger {
            Some(ledger) => Ok(ledger.abort_job().await?),
            None => Ok(()),
        }
    }
}

/// Where a subtask of an exactly-once sink is in its transactions.
struct Transactions {
    ledger: Arc<Ledger>,
    subtask: usize,
    attempt: u32,
    /// The number of its next transaction (`None`: the attempt did not
    /// start its transactions yet).
    next: Option<u64>,
}

impl Transactions {
    /// The number of the next transaction, fencing what earlier attempts
    /// left first.
    async fn next(&mut self) -> Result<u64> {
        if let Some(next) = self.next {
            return Ok(next);
        }
        let next = self.ledger.start(self.subtask, self.attempt).await?;
        self.next = Some(next);
        Ok(next)
    }

    /// A checkpoint: the open transaction (`producer`, flushed) waits for
    /// it to complete. Returns what commits the subtask's transactions up
    /// to it.
    async fn prepare(
        &mut self,
        producer: Option<Arc<ThreadedProducer<BrokerWatch>>>,
    ) -> Result<Committable> {
        let next = self.next().await?;
        let Some(producer) = producer else {
            return Ok(self.ledger.committable(self.subtask, next - 1));
        };
        let committable = self
            .ledger
            .prepared(self.subtask, self.attempt, next, producer)?;
        self.next = Some(next + 1);
        Ok(committable)
    }
}

/// One subtask of a Kafka sink.
struct KafkaSink {
    /// The producer of the messages (`None`: an exactly-once sink between
    /// two transactions).
    producer: Option<Arc<ThreadedProducer<BrokerWatch>>>,
    transactions: Option<Transactions>,
    topic: String,
    encoding: Arc<Encoding>,
    partitioner: SinkPartitioner,
    partitions: i32,
    /// The partition of the next row (`fixed`, `round-robin`).
    next: i32,
    /// Whether checkpoints wait for every message sent to be delivered
    /// (at least once; exactly once commits transactions instead).
    flushes: bool,
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

    /// The producer of the messages, beginning a transaction when an
    /// exactly-once sink has none open.
    async fn producer(&mut self) -> Result<Arc<ThreadedProducer<BrokerWatch>>> {
        if let Some(producer) = &self.producer {
            return Ok(Arc::clone(producer));
        }
        let transactions = self
            .transactions
            .as_mut()
            .expect("only an exactly-once sink is without a producer");
        let number = transactions.next().await?;
        let producer = transactions
            .ledger
            .begin(transactions.subtask, number)
            .await?;
        self.producer = Some(Arc::clone(&producer));
        Ok(producer)
    }

    /// Fails when a message could not be delivered.
    fn check_delivered(&self) -> Result<()> {
        match self
            .producer
            .as_ref()
            .and_then(|p| p.context().undelivered())
        {
            Some(reason) => Err(Error::Kafka { message: reason }),
            None => Ok(()),
        }
    }

    /// Waits until every message sent is delivered or failed (each is
    /// within `message.timeout.ms`).
    async fn flush(&self) -> Result<()> {
        let Some(producer) = self.producer.clone() else {
            return Ok(());
        };
        // Sends at once what lingers. rdkafka's own flush then waits for
        // delivery reports in steps of 100 ms, though the producer's thread
        // serves them: watching the queue drain takes a millisecond.
        let _ = producer.flush(Timeout::After(Duration::ZERO));
        while producer.in_flight_count() > 0 {
            tokio::time::sleep(FLUSH_WAIT).await;
        }
        self.check_delivered()
    }

    /// Flushes the open transaction of an exactly-once sink, which then
    /// waits for its commit. Returns what commits it.
    async fn prepare_transaction(&mut self) -> Result<Committable> {
        self.flush().await?;
        let producer = self.producer.take();
        self.transactions
            .as_mut()
            .expect("an exactly-once sink")
            .prepare(producer)
            .await
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        if let Some(producer) = self.producer.take() {
            release(producer);
        }
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> weir_engine::Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.check_delivered()?;
        let producer = self.producer().await?;
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
                match producer.send(record) {
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
        if self.transactions.is_some() {
            // Committed with the job, or with the checkpoint a job stopped
            // with a savepoint ended with.
            self.prepare_transaction().await?;
            return Ok(());
        }
        Ok(self.flush().await?)
    }

    /// At least once: every message sent before the barrier is delivered
    /// before the checkpoint completes; a restart from it sends what
    /// followed again. Exactly once: the messages sent since the last
    /// barrier are a transaction, committed when the checkpoint completes.
    /// Without a guarantee, nothing is waited for.
    async fn prepare_commit(
        &mut self,
        _checkpoint: u64,
    ) -> weir_engine::Result<Option<serde_json::Value>> {
        if self.transactions.is_some() {
            let committable = self.prepare_transaction().await?;
            return Ok(Some(
                serde_json::to_value(committable).expect("a committable serializes"),
            ));
        }
        match self.flushes {
            true => self.flush().await?,
            false => self.check_delivered()?,
        }
        Ok(None)
    }
}
