//! Where a Kafka source puts the messages it cannot decode under
//! `'bad-records' = 'dead-letter'`: files under `bad-records.path`, or
//! another topic, `bad-records.topic`. Each bad message becomes one JSON
//! object: its topic, partition, offset, key and value (as text, invalid
//! UTF-8 replaced) and the reason.
//!
//! Dead letters are written before the batch they were cut from goes on,
//! so a checkpoint never records an offset past a message whose dead
//! letter is not durable. A block's dead letters go to one file named by
//! the partition and the first bad offset, so that a replay after a
//! restart writes the same file again rather than another.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, BinaryArray};
use object_store::{ObjectStoreExt as _, PutPayload};
use rdkafka::producer::{FutureProducer, FutureRecord};
use weir_engine::registry::ConnectorOptions;
use weir_exchange::store_url::StoreUrl;

use super::client::ClientSettings;
use super::columns::BadMessage;
use super::reader::Block;
use crate::bad_records::BadRecords;
use crate::{Error, Result};

/// Where dead letters go.
#[derive(Clone)]
pub enum DeadLetters {
    /// JSON-lines files in this directory.
    Files(StoreUrl),
    /// Messages of this topic, written by this producer.
    Topic(String, Arc<FutureProducer>),
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Files(dir) => write!(f, "Files({})", dir.url_of(dir.path())),
            Self::Topic(topic, _) => write!(f, "Topic({topic})"),
        }
    }
}

impl DeadLetters {
    /// The option names this reads.
    pub const OPTION_NAMES: &'static [&'static str] = &["bad-records.path", "bad-records.topic"];

    /// Where `options` send dead letters: required with `'bad-records' =
    /// 'dead-letter'`, refused otherwise.
    ///
    /// # Errors
    /// [`Error::Option`] for a missing, needless or invalid destination.
    pub fn from_options(
        options: &ConnectorOptions,
        settings: &ClientSettings,
    ) -> Result<Option<Self>> {
        let policy = BadRecords::from_options(options)?;
        let (path, topic) = (
            options.get("bad-records.path"),
            options.get("bad-records.topic"),
        );
        match (policy, path, topic) {
            (BadRecords::DeadLetter, Some(_), Some(_)) => Err(Error::Option {
                option: "bad-records.topic".to_string(),
                message: "give either 'bad-records.path' or 'bad-records.topic', not both"
                    .to_string(),
            }),
            (BadRecords::DeadLetter, Some(path), None) => StoreUrl::parse(path, options)
                .map(|dir| Some(Self::Files(dir)))
                .map_err(|e| Error::Option {
                    option: "bad-records.path".to_string(),
                    message: e.to_string(),
                }),
            (BadRecords::DeadLetter, None, Some(topic)) => {
                let producer = settings
                    .config(&[("enable.idempotence", "true")])
                    .create()
                    .map_err(|e| super::client::client_error(&e))?;
                Ok(Some(Self::Topic(topic.clone(), Arc::new(producer))))
            }
            (BadRecords::DeadLetter, None, None) => Err(Error::Option {
                option: "bad-records.path".to_string(),
                message: "'dead-letter' needs 'bad-records.path' (a directory) or \
                    'bad-records.topic' (a topic) for the bad messages"
                    .to_string(),
            }),
            (_, Some(_), _) | (_, _, Some(_)) => Err(Error::Option {
                option: if path.is_some() {
                    "bad-records.path"
                } else {
                    "bad-records.topic"
                }
                .to_string(),
                message: "is only used with 'bad-records' = 'dead-letter'".to_string(),
            }),
            _ => Ok(None),
        }
    }

    /// Writes the dead letters of the `bad` messages of `block`, and waits
    /// until they are durable.
    ///
    /// # Errors
    /// [`Error::Store`] or [`Error::Kafka`] when they cannot be written.
    pub async fn write(&self, block: &Block, bad: &[BadMessage], timeout: Duration) -> Result<()> {
        let Some(first) = bad.first() else {
            return Ok(());
        };
        let letters: Vec<(Option<Vec<u8>>, String)> = bad
            .iter()
            .map(|b| (value(&block.keys, b.message), letter(block, b)))
            .collect();
        match self {
            Self::Files(dir) => {
                let name = format!(
                    "{}-{}-{}.jsonl",
                    block.partition.topic, block.partition.partition, first.offset
                );
                let file = dir.path().clone().join(name);
                let mut text = String::new();
                for (_, letter) in &letters {
                    text.push_str(letter);
                    text.push('\n');
                }
                dir.store()
                    .put(&file, PutPayload::from(text.into_bytes()))
                    .await
                    .map_err(|source| Error::Store {
                        url: dir.url_of(&file),
                        source,
                    })?;
            }
            Self::Topic(topic, producer) => {
                for (key, letter) in &letters {
                    let mut record: FutureRecord<'_, [u8], str> =
                        FutureRecord::to(topic).payload(letter.as_str());
                    if let Some(key) = key {
                        record = record.key(key.as_slice());
                    }
                    producer
                        .send(record, timeout)
                        .await
                        .map_err(|(e, _)| Error::Kafka {
                            message: format!("cannot write a dead letter to topic '{topic}': {e}"),
                        })?;
                }
            }
        }
        Ok(())
    }
}

/// Message `index`'s bytes in `array`, if not null.
fn value(array: &BinaryArray, index: usize) -> Option<Vec<u8>> {
    (!array.is_null(index)).then(|| array.value(index).to_vec())
}

/// The JSON of one dead letter.
fn letter(block: &Block, bad: &BadMessage) -> String {
    let text = |array: &BinaryArray| {
        value(array, bad.message).map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    serde_json::json!({
        "topic": block.partition.topic,
        "partition": block.partition.partition,
        "offset": bad.offset,
        "key": text(&block.keys),
        "value": text(&block.values),
        "reason": bad.reason,
    })
    .to_string()
}
