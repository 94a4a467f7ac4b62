//! A Kafka table's columns, and how each comes from a message: from its
//! value, from its key (`key.fields`), or from its metadata
//! (`col BIGINT METADATA FROM 'offset'`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray, UInt32Array,
};
use arrow::compute::{cast, take};
use arrow::datatypes::{Field, Schema, SchemaRef};
use weir_engine::registry::ConnectorOptions;
use weir_engine::source::METADATA_FROM;

use super::format::{MessageFormat, Rows};
use super::layout::{Layout, schema_of};
use super::reader::Block;
use crate::bad_records::BadRecords;
use crate::schema_string::nullable;
use crate::{Error, Result};

/// Metadata a column can read from its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metadata {
    /// The topic (STRING).
    Topic,
    /// The partition (INT).
    Partition,
    /// The offset (BIGINT).
    Offset,
    /// The message's timestamp (TIMESTAMP_LTZ(3)).
    Timestamp,
    /// The key's bytes (BYTES).
    Key,
    /// The headers, as a JSON object of their values (STRING).
    Headers,
}

impl Metadata {
    const KEYS: [(&'static str, Metadata); 6] = [
        ("topic", Metadata::Topic),
        ("partition", Metadata::Partition),
        ("offset", Metadata::Offset),
        ("timestamp", Metadata::Timestamp),
        ("key", Metadata::Key),
        ("headers", Metadata::Headers),
    ];

    fn parse(column: &str, key: &str) -> Result<Self> {
        Self::KEYS
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, m)| *m)
            .ok_or_else(|| Error::DeclaredColumns {
                connector: "kafka",
                message: format!(
                    "column '{column}': unknown metadata '{key}' (valid: {})",
                    Self::KEYS.map(|(n, _)| n).join(", ")
                ),
            })
    }
}

/// Where one column of the table comes from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// This column of the decoded value.
    Value(usize),
    /// This column of the decoded key.
    Key(usize),
    /// The message's metadata.
    Metadata(Metadata),
}

/// A message that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage {
    /// Its index in its block.
    pub message: usize,
    /// Its offset.
    pub offset: i64,
    /// Why.
    pub reason: String,
}

/// The rows of one block.
#[derive(Debug)]
pub struct BlockRows {
    /// The table's rows, one per good message.
    pub batch: RecordBatch,
    /// Messages skipped: tombstones (null values).
    pub tombstones: u64,
    /// The bad messages (under `bad-records` = `drop` or `dead-letter`).
    pub bad: Vec<BadMessage>,
}

/// How a table's columns come from its messages.
#[derive(Debug)]
pub struct TableColumns {
    schema: SchemaRef,
    origins: Vec<Origin>,
    value: MessageFormat,
    value_schema: SchemaRef,
    key: Option<(MessageFormat, SchemaRef)>,
    policy: BadRecords,
}

impl TableColumns {
    /// The option names this reads.
    pub const OPTION_NAMES: &'static [&'static str] = &[BadRecords::OPTION];

    /// The columns `declared` for a table with `options`.
    ///
    /// # Errors
    /// [`Error::Option`] or [`Error::DeclaredColumns`] naming what is
    /// missing or wrong.
    pub fn new(declared: &Schema, options: &ConnectorOptions) -> Result<Self> {
        let policy = BadRecords::from_options(options)?;
        let physical: Vec<&Field> = declared
            .fields()
            .iter()
            .filter(|f| !f.metadata().contains_key(METADATA_FROM))
            .map(AsRef::as_ref)
            .collect();
        let layout = Layout::new(&physical, options)?;
        let value_declared = schema_of(&physical, &layout.value_columns);
        let value = MessageFormat::new(&layout.value, &value_declared, options)?;
        let value_schema = value.schema(&value_declared);
        let key = match &layout.key {
            None => None,
            Some(choice) => {
                let key_declared = schema_of(&physical, &layout.key_columns);
                let key = MessageFormat::new(choice, &key_declared, options)?;
                let schema = key.schema(&key_declared);
                Some((key, schema))
            }
        };
        let origins = declared
            .fields()
            .iter()
            .map(|field| {
                if let Some(key) = field.metadata().get(METADATA_FROM) {
                    return Metadata::parse(field.name(), key).map(Origin::Metadata);
                }
                if let Ok(i) = value_schema.index_of(field.name()) {
                    return Ok(Origin::Value(i));
                }
                let (_, key_schema) = key
                    .as_ref()
                    .expect("a column outside the value is a key field");
                Ok(Origin::Key(key_schema.index_of(field.name())?))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            schema: nullable(declared),
            origins,
            value,
            value_schema,
            key,
            policy,
        })
    }

    /// Whether a column reads the messages' headers.
    pub fn reads_headers(&self) -> bool {
        self.origins
            .iter()
            .any(|o| matches!(o, Origin::Metadata(Metadata::Headers)))
    }

    /// The table's schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The table's rows from the messages of `block`, one per message that
    /// decodes; the others fail the read or are dropped (`bad-records`).
    ///
    /// # Errors
    /// [`Error::BadRecord`] for the first bad message under `fail`, naming
    /// its topic, partition and offset.
    pub fn decode(&self, block: &Block) -> Result<BlockRows> {
        let values = self.value.decode(&self.value_schema, &block.values)?;
        let keys = match &self.key {
            Some((format, schema)) => Some(format.decode(schema, &block.keys)?),
            None => None,
        };
        let messages = block.offsets.len();
        // The row of each message in the value's and key's rows.
        let value_rows = rows_by_message(&values, messages);
        let key_rows = keys.as_ref().map(|k| rows_by_message(k, messages));
        let mut bad: Vec<(u32, String)> = values.bad.clone();
        if let Some(keys) = &keys {
            bad.extend(keys.bad.iter().map(|(m, r)| (*m, format!("key: {r}"))));
            bad.sort_by_key(|(m, _)| *m);
            bad.dedup_by_key(|(m, _)| *m);
        }
        if let (BadRecords::Fail, Some((message, reason))) = (self.policy, bad.first()) {
            return Err(Error::BadMessage {
                partition: block.partition.to_string(),
                offset: block.offsets[*message as usize],
                reason: reason.clone(),
            });
        }
        let is_bad = |m: usize| bad.binary_search_by_key(&(m as u32), |(b, _)| *b).is_ok();
        let kept: Vec<usize> = (0..messages)
            .filter(|&m| value_rows[m].is_some() && !is_bad(m))
            .collect();
        let tombstones = (0..messages)
            .filter(|&m| block.values.is_null(m) && value_rows[m].is_none())
            .count() as u64;
        let columns = self
            .origins
            .iter()
            .zip(self.schema.fields())
            .map(|(origin, field)| {
                let column = match origin {
                    Origin::Value(i) => {
                        let rows: UInt32Array = kept.iter().map(|&m| value_rows[m]).collect();
                        take(values.batch.column(*i), &rows, None)?
                    }
                    Origin::Key(i) => {
                        let (keys, key_rows) = (keys.as_ref(), key_rows.as_ref());
                        let (keys, key_rows) = keys.zip(key_rows).expect("key columns have keys");
                        let rows: UInt32Array = kept.iter().map(|&m| key_rows[m]).collect();
                        take(keys.batch.column(*i), &rows, None)?
                    }
                    Origin::Metadata(metadata) => metadata_column(*metadata, block, &kept),
                };
                fit(column, field)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new_with_options(
            self.schema(),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(kept.len())),
        )?;
        Ok(BlockRows {
            batch,
            tombstones,
            bad: bad
                .into_iter()
                .map(|(m, reason)| BadMessage {
                    message: m as usize,
                    offset: block.offsets[m as usize],
                    reason,
                })
                .collect(),
        })
    }
}

/// The row of each message in `rows` (`None`: it gave none).
fn rows_by_message(rows: &Rows, messages: usize) -> Vec<Option<u32>> {
    let mut by_message = vec![None; messages];
    for (row, &message) in (0..).zip(&rows.messages) {
        by_message[message as usize] = Some(row);
    }
    by_message
}

/// A metadata column for the `kept` messages of `block`.
fn metadata_column(metadata: Metadata, block: &Block, kept: &[usize]) -> ArrayRef {
    match metadata {
        Metadata::Topic => Arc::new(StringArray::from_iter_values(
            kept.iter().map(|_| block.partition.topic.as_str()),
        )),
        Metadata::Partition => Arc::new(Int32Array::from_iter_values(
            kept.iter().map(|_| block.partition.partition),
        )),
        Metadata::Offset => Arc::new(Int64Array::from_iter_values(
            kept.iter().map(|&m| block.offsets[m]),
        )),
        Metadata::Timestamp => Arc::new(
            kept.iter()
                .map(|&m| block.timestamps[m])
                .collect::<TimestampMillisecondArray>()
                .with_timezone("+00:00"),
        ),
        Metadata::Key => Arc::new(
            kept.iter()
                .map(|&m| (!block.keys.is_null(m)).then(|| block.keys.value(m)))
                .collect::<BinaryArray>(),
        ),
        Metadata::Headers => Arc::new(StringArray::from_iter_values(
            kept.iter().map(|&m| block.headers[m].as_str()),
        )),
    }
}

/// `column` as the declared type of `field`.
fn fit(column: ArrayRef, field: &Field) -> Result<ArrayRef> {
    if column.data_type() == field.data_type() {
        return Ok(column);
    }
    cast(&column, field.data_type()).map_err(|e| Error::DeclaredColumns {
        connector: "kafka",
        message: format!(
            "column '{}' is declared {} but its metadata is {}: {e}",
            field.name(),
            field.data_type(),
            column.data_type()
        ),
    })
}
