//! The Kafka client: its configuration from `properties.*`, the broker
//! errors it reports, and the blocking calls (metadata, offsets) run off
//! tokio's workers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};

use crate::{Error, Result};

/// How long a call to the brokers may take, and how long the brokers may
/// be out of reach while running, when `properties.socket.timeout.ms` does
/// not say (librdkafka's default for that property).
pub const DEFAULT_BROKER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a client was given: its properties, and the timeout derived from
/// them.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// librdkafka properties, as given (`properties.*`).
    pub properties: BTreeMap<String, String>,
    /// How long a call may take, and the brokers may be unreachable.
    pub timeout: Duration,
}

impl ClientSettings {
    /// Settings from the client's `properties`.
    ///
    /// # Errors
    /// [`Error::Option`] when `socket.timeout.ms` is not a number.
    pub fn new(properties: BTreeMap<String, String>) -> Result<Self> {
        let timeout = match properties.get("socket.timeout.ms") {
            None => DEFAULT_BROKER_TIMEOUT,
            Some(ms) => Duration::from_millis(ms.trim().parse().map_err(|_| Error::Option {
                option: "properties.socket.timeout.ms".to_string(),
                message: format!("'{ms}' is not a number of milliseconds"),
            })?),
        };
        Ok(Self {
            properties,
            timeout,
        })
    }

    /// The brokers, for messages.
    pub fn servers(&self) -> &str {
        self.properties
            .get("bootstrap.servers")
            .map_or("", String::as_str)
    }

    /// A client configuration with the properties, then `overrides`.
    pub fn config(&self, overrides: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        for (key, value) in overrides {
            config.set(*key, *value);
        }
        config.set_log_level(RDKafkaLogLevel::Warning);
        config
    }

    /// A consumer that reads assigned partitions, never commits on its own
    /// and tells where the brokers went.
    ///
    /// # Errors
    /// [`Error::Option`] when librdkafka refuses a property.
    pub fn consumer(&self, overrides: &[(&str, &str)]) -> Result<BaseConsumer<BrokerWatch>> {
        let mut settings = vec![
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
        ];
        settings.extend_from_slice(overrides);
        self.config(&settings)
            .create_with_context(BrokerWatch::default())
            .map_err(|e| client_error(&e))
    }

    /// A producer that tells which messages it could not deliver, with
    /// the properties and `overrides`.
    ///
    /// # Errors
    /// [`Error::Option`] when librdkafka refuses a property.
    pub fn producer(&self, overrides: &[(&str, &str)]) -> Result<ThreadedProducer<BrokerWatch>> {
        self.config(overrides)
            .create_with_context(BrokerWatch::default())
            .map_err(|e| client_error(&e))
    }
}

/// An error creating a client: a property librdkafka refuses.
pub fn client_error(e: &KafkaError) -> Error {
    Error::Option {
        option: "properties.*".to_string(),
        message: format!("the Kafka client refuses its configuration: {e}"),
    }
}

/// The first and last offset of the messages a producer delivered, by
/// partition.
pub type WrittenOffsets = Arc<Mutex<BTreeMap<i32, (i64, i64)>>>;

/// Since when every broker has been out of reach, as the client reports it,
/// the first message a producer could not deliver, and where its messages
/// went when asked.
#[derive(Debug, Clone, Default)]
pub struct BrokerWatch {
    /// Whether `down_since` is set: readers ask at every message.
    down: Arc<AtomicBool>,
    down_since: Arc<Mutex<Option<(Instant, String)>>>,
    undelivered: Arc<Mutex<Option<String>>>,
    written: Option<WrittenOffsets>,
    producer_id: Arc<Mutex<Option<ProducerId>>>,
}

/// The id and epoch a producer got from the brokers (Kafka's
/// InitProducerId), which its transactions carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProducerId {
    /// The producer id.
    pub id: i64,
    /// Its epoch.
    pub epoch: i16,
}

impl ProducerId {
    /// The id in librdkafka's log of it (`debug` = `eos`):
    /// `Acquired PID{Id:1000,Epoch:0}` (facility `GETPID`).
    fn from_log(message: &str) -> Option<Self> {
        let rest = message.split_once("Acquired PID{Id:")?.1;
        let (id, rest) = rest.split_once(",Epoch:")?;
        let epoch = rest.split_once('}')?.0;
        Some(Self {
            id: id.parse().ok()?,
            epoch: epoch.parse().ok()?,
        })
    }
}

impl BrokerWatch {
    /// A watch that also records the offsets of the messages delivered.
    pub fn recording_offsets() -> Self {
        Self {
            written: Some(WrittenOffsets::default()),
            ..Self::default()
        }
    }

    /// The offsets of the messages delivered (empty unless recorded).
    pub fn written(&self) -> WrittenOffsets {
        self.written.clone().unwrap_or_default()
    }

    /// The producer's id and epoch, when librdkafka logged them (with
    /// `debug` = `eos` and the log level at debug).
    pub fn producer_id(&self) -> Option<ProducerId> {
        *self.producer_id.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why the first message that could not be delivered was not.
    pub fn undelivered(&self) -> Option<String> {
        self.undelivered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Since when, and why, when the brokers are all out of reach.
    pub fn down_since(&self) -> Option<(Instant, String)> {
        if !self.down.load(Ordering::Acquire) {
            return None;
        }
        self.lock().clone()
    }

    /// The brokers answered.
    pub fn up(&self) {
        if self.down.load(Ordering::Acquire) {
            *self.lock() = None;
            self.down.store(false, Ordering::Release);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, String)>> {
        self.down_since.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The brokers are out of reach, since now unless they were already.
    pub fn down(&self, reason: &str) {
        self.lock()
            .get_or_insert_with(|| (Instant::now(), reason.to_string()));
        self.down.store(true, Ordering::Release);
    }
}

/// Whether `error` says the brokers are out of reach for now (the client
/// reconnects on its own), rather than that something is wrong.
pub fn is_unreachable(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
        )
    )
}

impl ClientContext for BrokerWatch {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        if facility == "GETPID"
            && let Some(id) = ProducerId::from_log(message)
        {
            *self.producer_id.lock().unwrap_or_else(|p| p.into_inner()) = Some(id);
        }
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => {
                tracing::error!(target: "librdkafka", "{facility} {message}");
            }
            RDKafkaLogLevel::Warning => {
                tracing::warn!(target: "librdkafka", "{facility} {message}")
            }
            // Only the transactional producers log below warnings, for
            // their producer ids: the rest is detail.
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
                tracing::debug!(target: "librdkafka", "{facility} {message}");
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if is_unreachable(&error) {
            self.down(reason);
        } else if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            // The end of a partition is news to the reader, not a problem.
            tracing::warn!("Kafka client: {error}: {reason}");
        }
    }
}

impl ConsumerContext for BrokerWatch {}

impl ProducerContext for BrokerWatch {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let (Ok(message), Some(written)) = (result, &self.written) {
            let offset = message.offset();
            written
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(message.partition())
                .and_modify(|(first, last)| {
                    *first = (*first).min(offset);
                    *last = (*last).max(offset);
                })
                .or_insert((offset, offset));
        }
        if let Err((error, message)) = result {
            self.undelivered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| {
                    format!(
                        "a message to topic '{}' partition {} was not delivered: {error}",
                        message.topic(),
                        message.partition()
                    )
                });
        }
    }
}

/// Runs blocking client calls on tokio's blocking threads, never on its
/// workers or the CPU pool.
///
/// # Errors
/// `f`'s error, or [`Error::Option`]-free [`Error::Kafka`] when the thread
/// panicked.
pub async fn off_workers<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Kafka {
            message: format!("a Kafka client call panicked: {e}"),
        })?
}

/// Drops `client` on one of tokio's blocking threads (inline outside a
/// runtime): dropping librdkafka's last handle of a client joins its
/// threads and waits for what it still sends.
pub fn release<T: Send + 'static>(client: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || drop(client));
        }
        Err(_) => drop(client),
    }
}

/// An error of a call to the brokers at `servers`, saying what was asked.
pub fn broker_error(servers: &str, what: &str, e: &KafkaError) -> Error {
    Error::Kafka {
        message: format!("{what} from the brokers at {servers}: {e}"),
    }
}
