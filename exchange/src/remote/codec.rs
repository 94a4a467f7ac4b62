//! Events as Flight messages: a batch as Arrow IPC (its schema first, and
//! its dictionaries), every other event as the application metadata of a
//! message without data; credits, from the consumer, the same way.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions};
use arrow_flight::FlightData;
use bytes::Bytes;

use crate::event::{Barrier, Event, WatermarkStatus};
use crate::{Error, Result};

const WATERMARK: u8 = 1;
const ACTIVE: u8 = 2;
const IDLE: u8 = 3;
const BARRIER: u8 = 4;
const END_OF_PARTITION: u8 = 5;
const CREDIT: u8 = 6;

/// Encodes the events of one stream: the schema goes once, before the
/// first batch (again when it changes), dictionaries as they are needed.
pub(super) struct EventEncoder {
    generator: IpcDataGenerator,
    tracker: DictionaryTracker,
    options: IpcWriteOptions,
    context: IpcWriteContext,
    schema: Option<SchemaRef>,
}

impl EventEncoder {
    pub(super) fn new() -> Self {
        Self {
            generator: IpcDataGenerator::default(),
            tracker: DictionaryTracker::new(false),
            options: IpcWriteOptions::default(),
            context: IpcWriteContext::default(),
            schema: None,
        }
    }

    /// The messages of `event`, in order.
    pub(super) fn encode(&mut self, event: &Event) -> Result<Vec<FlightData>> {
        let tag = |tag: u8, payload: &[u8]| {
            let mut metadata = Vec::with_capacity(1 + payload.len());
            metadata.push(tag);
            metadata.extend_from_slice(payload);
            vec![metadata_only(metadata)]
        };
        Ok(match event {
            Event::Batch(batch) => self.batch(batch)?,
            Event::Watermark(ts) => tag(WATERMARK, &ts.to_le_bytes()),
            Event::WatermarkStatus(WatermarkStatus::Active) => tag(ACTIVE, &[]),
            Event::WatermarkStatus(WatermarkStatus::Idle) => tag(IDLE, &[]),
            Event::Barrier(barrier) => {
                let mut payload = barrier.checkpoint_id.to_le_bytes().to_vec();
                payload.extend_from_slice(&barrier.timestamp_ms.to_le_bytes());
                tag(BARRIER, &payload)
            }
            Event::EndOfPartition => tag(END_OF_PARTITION, &[]),
        })
    }

    fn batch(&mut self, batch: &RecordBatch) -> Result<Vec<FlightData>> {
        let mut messages = Vec::new();
        if self.schema.as_ref() != Some(&batch.schema()) {
            self.tracker = DictionaryTracker::new(false);
            let schema = self.generator.schema_to_bytes_with_dictionary_tracker(
                &batch.schema(),
                &mut self.tracker,
                &self.options,
            );
            messages.push(data(schema));
            self.schema = Some(batch.schema());
        }
        let (dictionaries, encoded) =
            self.generator
                .encode(batch, &mut self.tracker, &self.options, &mut self.context)?;
        messages.extend(dictionaries.into_iter().map(data));
        messages.push(data(encoded));
        Ok(messages)
    }
}

/// A message of `metadata` and no data: its header is an IPC message of
/// no kind, as Flight readers expect of one.
pub(super) fn metadata_only(metadata: impl Into<Bytes>) -> FlightData {
    static NO_DATA: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let header = NO_DATA.get_or_init(|| {
        let mut builder = flatbuffers::FlatBufferBuilder::new();
        let mut message = arrow::ipc::MessageBuilder::new(&mut builder);
        message.add_version(arrow::ipc::MetadataVersion::V5);
        message.add_header_type(arrow::ipc::MessageHeader::NONE);
        message.add_bodyLength(0);
        let message = message.finish();
        builder.finish(message, None);
        Bytes::copy_from_slice(builder.finished_data())
    });
    FlightData::new()
        .with_data_header(header.clone())
        .with_app_metadata(metadata)
}

fn data(encoded: arrow::ipc::writer::EncodedData) -> FlightData {
    FlightData::new()
        .with_data_header(encoded.ipc_message)
        .with_data_body(encoded.arrow_data)
}

/// The event an application-metadata message carries.
///
/// # Errors
/// [`Error::Remote`] for metadata that is no event.
pub(super) fn decode_event(metadata: &[u8]) -> Result<Event> {
    let bad = || Error::Remote(format!("a message that is no event: {metadata:?}"));
    let (&tag, payload) = metadata.split_first().ok_or_else(bad)?;
    let word = |at: usize| -> Result<[u8; 8]> {
        payload
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)
    };
    Ok(match tag {
        WATERMARK => Event::Watermark(i64::from_le_bytes(word(0)?)),
        ACTIVE => Event::WatermarkStatus(WatermarkStatus::Active),
        IDLE => Event::WatermarkStatus(WatermarkStatus::Idle),
        BARRIER => Event::Barrier(Barrier {
            checkpoint_id: u64::from_le_bytes(word(0)?),
            timestamp_ms: i64::from_le_bytes(word(8)?),
        }),
        END_OF_PARTITION => Event::EndOfPartition,
        _ => return Err(bad()),
    })
}

/// A consumer's grant of `credits` more batches.
pub(super) fn credit(credits: u32) -> Bytes {
    let mut metadata = vec![CREDIT];
    metadata.extend_from_slice(&credits.to_le_bytes());
    metadata.into()
}

/// The credits a consumer's message grants.
///
/// # Errors
/// [`Error::Remote`] for a message that grants none.
pub(super) fn credits_of(metadata: &[u8]) -> Result<u32> {
    match metadata {
        [CREDIT, rest @ ..] if rest.len() == 4 => {
            Ok(u32::from_le_bytes(rest.try_into().expect("four bytes")))
        }
        _ => Err(Error::Remote(format!(
            "a consumer's message that grants no credit: {metadata:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_events_and_credits_survive_the_trip() {
        let mut encoder = EventEncoder::new();
        for event in [
            Event::Watermark(-5),
            Event::WatermarkStatus(WatermarkStatus::Idle),
            Event::WatermarkStatus(WatermarkStatus::Active),
            Event::Barrier(Barrier {
                checkpoint_id: 7,
                timestamp_ms: 1_700_000_000_000,
            }),
            Event::EndOfPartition,
        ] {
            let messages = encoder.encode(&event).expect("encodes");
            assert_eq!(messages.len(), 1);
            let back = decode_event(&messages[0].app_metadata).expect("decodes");
            assert_eq!(format!("{back:?}"), format!("{event:?}"));
        }
        assert!(decode_event(&[WATERMARK, 1]).is_err());
        assert!(decode_event(&[]).is_err());
        assert_eq!(credits_of(&credit(42)).expect("a credit"), 42);
        assert!(credits_of(&[CREDIT]).is_err());
    }
}
