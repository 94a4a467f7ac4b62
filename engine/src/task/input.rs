//! Input gates: the events a task reads, merged over all its channels.

use futures::stream::{self, BoxStream, SelectAll, StreamExt};
use weir_exchange::blocking::SubpartitionReader;
use weir_exchange::{Error as ExchangeError, Event};

use super::InputChannel;
use crate::Result;

/// An event read from one channel of one input.
#[derive(Debug)]
pub(crate) struct InputEvent {
    pub input: usize,
    pub channel: usize,
    pub event: Event,
}

/// All the channels of all the inputs of a task, read as one stream.
///
/// Pipelined channels are read as events arrive; the channels of a blocking
/// input are read one after the other, so a rerun reads them in the same
/// order.
pub(crate) struct InputGates {
    streams: SelectAll<BoxStream<'static, Result<InputEvent>>>,
    /// Per input, the number of channels.
    pub channels: Vec<usize>,
}

impl InputGates {
    pub fn new(inputs: Vec<Vec<InputChannel>>) -> Self {
        let mut streams = SelectAll::new();
        let channels = inputs.iter().map(Vec::len).collect();
        for (input, gate) in inputs.into_iter().enumerate() {
            let (local, blocking): (Vec<_>, Vec<_>) = gate
                .into_iter()
                .enumerate()
                .partition(|(_, c)| matches!(c, InputChannel::Local(_)));
            for (channel, spec) in local {
                if let InputChannel::Local(rx) = spec {
                    streams.push(local_stream(input, channel, rx));
                }
            }
            if !blocking.is_empty() {
                let sequential = stream::iter(blocking)
                    .map(move |(channel, spec)| blocking_stream(input, channel, spec))
                    .flatten();
                streams.push(sequential.boxed());
            }
        }
        Self { streams, channels }
    }

    /// The next event of any channel; `None` when every channel ended.
    pub async fn next(&mut self) -> Option<Result<InputEvent>> {
        self.streams.next().await
    }
}

fn local_stream(
    input: usize,
    channel: usize,
    rx: weir_exchange::channel::ChannelReceiver,
) -> BoxStream<'static, Result<InputEvent>> {
    stream::unfold(Some(rx), move |rx| async move {
        let rx = rx?;
        match rx.recv().await {
            Some(Event::EndOfPartition) => Some((
                Ok(InputEvent {
                    input,
                    channel,
                    event: Event::EndOfPartition,
                }),
                None,
            )),
            Some(event) => Some((
                Ok(InputEvent {
                    input,
                    channel,
                    event,
                }),
                Some(rx),
            )),
            None => Some((
                Err(ExchangeError::ChannelClosed(
                    "the producer stopped before the end of its partition",
                )
                .into()),
                None,
            )),
        }
    })
    .boxed()
}

fn blocking_stream(
    input: usize,
    channel: usize,
    spec: InputChannel,
) -> BoxStream<'static, Result<InputEvent>> {
    let InputChannel::Blocking {
        root,
        job,
        partition,
        subpartition,
        format,
    } = spec
    else {
        unreachable!("only blocking channels are read from files")
    };
    enum State {
        Unopened,
        Reading(Box<SubpartitionReader>),
        Done,
    }
    let wrap = move |event| InputEvent {
        input,
        channel,
        event,
    };
    stream::unfold(State::Unopened, move |state| {
        let (root, job, partition) = (root.clone(), std::sync::Arc::clone(&job), partition.clone());
        async move {
            let mut reader = match state {
                State::Done => return None,
                State::Reading(reader) => reader,
                State::Unopened => {
                    match SubpartitionReader::open(&root, &job, partition, subpartition, format)
                        .await
                    {
                        Ok(reader) => Box::new(reader),
                        Err(e) => return Some((Err(e.into()), State::Done)),
                    }
                }
            };
            match reader.next_batch().await {
                Ok(Some(batch)) => Some((Ok(wrap(Event::Batch(batch))), State::Reading(reader))),
                Ok(None) => Some((Ok(wrap(Event::EndOfPartition)), State::Done)),
                Err(e) => Some((Err(e.into()), State::Done)),
            }
        }
    })
    .boxed()
}
