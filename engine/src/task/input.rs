//! Input gates: the events a task reads, merged over all its channels.

use futures::stream::{self, BoxStream, SelectAll, StreamExt};
use weir_exchange::blocking::SubpartitionReader;
use weir_exchange::{Error as ExchangeError, Event};

use super::InputChannel;
use crate::{Result, Source};

/// Where a task's events come from: its source, or its input gates.
pub(crate) enum TaskInput {
    Source(Box<dyn Source>),
    Gates(InputGates),
}

impl TaskInput {
    /// The next event, handing the input back so that the read can be kept
    /// pending across other work (a source's read need not be cancel-safe).
    /// `None` when the input ended; a source's batches come as input 0.
    pub async fn next(self) -> (Self, Option<Result<InputEvent>>) {
        match self {
            Self::Source(mut source) => {
                let event = source.next_batch().await.transpose().map(|batch| {
                    batch.map(|batch| InputEvent {
                        input: 0,
                        channel: 0,
                        event: Event::Batch(batch),
                    })
                });
                (Self::Source(source), event)
            }
            Self::Gates(mut gates) => {
                let event = gates.next().await;
                (Self::Gates(gates), event)
            }
        }
    }
}

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
}

impl InputGates {
    pub fn new(inputs: Vec<Vec<InputChannel>>) -> Self {
        let mut streams = SelectAll::new();
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
        Self { streams }
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

/// Which channels of which inputs are still open, and the event time they
/// reached: a task's watermark is the minimum over all its channels.
pub(crate) struct InputProgress {
    open: Vec<usize>,
    watermarks: Vec<Vec<i64>>,
    current: i64,
}

/// What the end of one channel means for the task.
pub(crate) struct ChannelEnded {
    /// The channel was its input's last open one.
    pub input_ended: bool,
    /// The task's watermark advanced to this.
    pub watermark: Option<i64>,
}

impl InputProgress {
    /// Progress over inputs with the given numbers of channels.
    pub fn new(channels: &[usize]) -> Self {
        Self {
            open: channels.to_vec(),
            watermarks: channels.iter().map(|&n| vec![i64::MIN; n]).collect(),
            current: i64::MIN,
        }
    }

    /// Inputs without any channel: they ended before the task started.
    pub fn empty_inputs(&self) -> Vec<usize> {
        (0..self.open.len())
            .filter(|&i| self.open[i] == 0)
            .collect()
    }

    /// A watermark arrived on a channel; the task's new watermark if it
    /// advanced.
    pub fn on_watermark(&mut self, input: usize, channel: usize, watermark: i64) -> Option<i64> {
        let slot = &mut self.watermarks[input][channel];
        *slot = (*slot).max(watermark);
        self.advance()
    }

    /// A channel reached its end of partition.
    pub fn on_end(&mut self, input: usize, channel: usize) -> ChannelEnded {
        self.watermarks[input][channel] = i64::MAX;
        self.open[input] -= 1;
        ChannelEnded {
            input_ended: self.open[input] == 0,
            watermark: self.advance(),
        }
    }

    /// The minimum over all channels, when it moved forward and some channel
    /// is still open.
    fn advance(&mut self) -> Option<i64> {
        let min = self
            .watermarks
            .iter()
            .flatten()
            .copied()
            .min()
            .unwrap_or(i64::MAX);
        (min > self.current && min != i64::MAX).then(|| {
            self.current = min;
            min
        })
    }
}
