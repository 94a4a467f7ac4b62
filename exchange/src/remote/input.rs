//! The consuming end of a remote channel: a local channel fed from the
//! producer's process over Flight, granting a credit for each batch it
//! took.

use arrow_flight::decode::{DecodedPayload, FlightDataDecoder};
use arrow_flight::error::FlightError;
use arrow_flight::{FlightData, FlightDescriptor};
use futures::StreamExt;
use tokio::sync::mpsc;

use super::ChannelKey;
use super::client::{RemoteAccess, flight_client};
use super::codec::{credit, decode_event, metadata_only};
use crate::channel::{ChannelBounds, ChannelReceiver, ChannelSender, pipelined_channel};
use crate::event::Event;
use crate::{Error, Result};

/// Where a remote channel comes from.
#[derive(Debug, Clone)]
pub struct RemoteInput {
    /// The producer's process, as `http://HOST:PORT`.
    pub address: String,
    /// The channel.
    pub key: ChannelKey,
    /// The bounds of the local channel it feeds; its batches are also the
    /// credits first granted.
    pub bounds: ChannelBounds,
    /// How to call the producer's process.
    pub access: RemoteAccess,
}

/// The receiving end of a local channel fed with the events of the remote
/// channel `input` names; it ends without the end of the partition when
/// the producer (or the connection to it) fails.
pub fn remote_input(input: RemoteInput) -> ChannelReceiver {
    let (sender, receiver) = pipelined_channel(input.bounds);
    tokio::spawn(async move {
        let key = input.key.clone();
        if let Err(e) = pump(input, sender).await {
            tracing::warn!("remote channel {key} failed: {e}");
        }
    });
    receiver
}

async fn pump(input: RemoteInput, sender: ChannelSender) -> Result<()> {
    let remote = |e: &dyn std::fmt::Display| {
        Error::Remote(format!("reading {} from {}: {e}", input.key, input.address))
    };
    let mut client = flight_client(&input.address, &input.access)?;
    let descriptor =
        FlightDescriptor::new_cmd(serde_json::to_vec(&input.key).expect("a key serializes"));
    let initial = input.bounds.max_batches.max(1) as u32;
    let (grants, granted) = mpsc::unbounded_channel();
    let first = metadata_only(credit(initial)).with_descriptor(descriptor);
    let outgoing = futures::stream::once(async { first }).chain(futures::stream::unfold(
        granted,
        |mut granted: mpsc::UnboundedReceiver<FlightData>| async move {
            granted.recv().await.map(|grant| (grant, granted))
        },
    ));
    let incoming = client
        .do_exchange(outgoing)
        .await
        .map_err(|e| remote(&e.message()))?
        .into_inner();
    let mut decoder = FlightDataDecoder::new(incoming.map(|m| m.map_err(FlightError::from)));
    while let Some(message) = decoder.next().await {
        let message = message.map_err(|e| remote(&e))?;
        match message.payload {
            DecodedPayload::RecordBatch(batch) => {
                sender.send(Event::Batch(batch)).await?;
                // Taken on: one more may come.
                let _ = grants.send(metadata_only(credit(1)));
            }
            DecodedPayload::Schema(_) => {}
            DecodedPayload::None => {
                let event = decode_event(&message.inner.app_metadata)?;
                let end = matches!(event, Event::EndOfPartition);
                sender.send(event).await?;
                if end {
                    return Ok(());
                }
            }
        }
    }
    Err(remote(&"the stream ended before the end of the partition"))
}
