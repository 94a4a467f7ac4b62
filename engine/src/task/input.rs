//! Input gates: the events a task reads, merged over all its channels.

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use futures::stream::{self, BoxStream, SelectAll, StreamExt};
use weir_exchange::blocking::SubpartitionReader;
use weir_exchange::event::WatermarkStatus;
use weir_exchange::{Error as ExchangeError, Event};

use super::InputChannel;
use crate::{Result, Source};

/// Where a task's events come from: its source, or its input gates.
pub(crate) enum TaskInput {
    Source(Box<dyn Source>),
    Gates(InputGates),
}

impl TaskInput {
    /// Where the splits of a source are (`None` for input gates, or a
    /// source that cannot say).
    pub fn positions(&self) -> Option<Vec<crate::checkpoint::SplitPosition>> {
        match self {
            Self::Source(source) => source.positions(),
            Self::Gates(_) => None,
        }
    }

    /// The next event, handing the input back so that the read can be kept
    /// pending across other work (a source's read need not be cancel-safe).
    /// `None` when the input ended; a source's batches come as input 0, on
    /// the channel numbered by their split.
    pub async fn next(self) -> (Self, Option<Result<InputEvent>>) {
        match self {
            Self::Source(mut source) => {
                let event = source.next_batch().await.transpose().map(|batch| {
                    batch.map(|batch| InputEvent {
                        input: 0,
                        channel: source.last_split() as usize,
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
/// order. A pipelined channel that delivered a checkpoint barrier is not
/// read again until the barrier arrived on every channel and the task
/// [releases](Alignment::release) them (aligned checkpoints): what follows
/// a barrier belongs to the next checkpoint.
pub(crate) struct InputGates {
    streams: SelectAll<BoxStream<'static, Result<InputEvent>>>,
}

/// Whether a channel waits for the others to deliver a barrier, and the
/// task to wake when it may be read again.
type Waiting = (bool, Option<Waker>);

/// Which pipelined channels wait for the others to deliver a barrier.
#[derive(Debug, Clone, Default)]
pub(crate) struct Alignment {
    blocked: Arc<Mutex<Vec<Waiting>>>,
}

impl Alignment {
    /// A new channel; its index in the alignment.
    fn add(&self) -> usize {
        let mut blocked = self.lock();
        blocked.push((false, None));
        blocked.len() - 1
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether channel `id` waits; if so, wakes `waker` when it is released.
    fn waits(&self, id: usize, waker: &Waker) -> bool {
        let mut blocked = self.lock();
        let (waiting, wake) = &mut blocked[id];
        if *waiting {
            *wake = Some(waker.clone());
        }
        *waiting
    }

    fn block(&self, id: usize) {
        self.lock()[id].0 = true;
    }

    /// Every channel reads again.
    pub fn release(&self) {
        for (waiting, waker) in self.lock().iter_mut() {
            *waiting = false;
            if let Some(waker) = waker.take() {
                waker.wake();
            }
        }
    }
}

impl InputGates {
    pub fn new(inputs: Vec<Vec<InputChannel>>, alignment: &Alignment) -> Self {
        let mut streams = SelectAll::new();
        for (input, gate) in inputs.into_iter().enumerate() {
            let (local, blocking): (Vec<_>, Vec<_>) = gate
                .into_iter()
                .enumerate()
                .partition(|(_, c)| matches!(c, InputChannel::Local(_)));
            for (channel, spec) in local {
                if let InputChannel::Local(rx) = spec {
                    streams.push(aligned(local_stream(input, channel, rx), alignment.clone()));
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

/// `stream`, held back after each barrier until `alignment` releases it.
fn aligned(
    mut stream: BoxStream<'static, Result<InputEvent>>,
    alignment: Alignment,
) -> BoxStream<'static, Result<InputEvent>> {
    let id = alignment.add();
    stream::poll_fn(move |cx| {
        if alignment.waits(id, cx.waker()) {
            return Poll::Pending;
        }
        let next = stream.poll_next_unpin(cx);
        if let Poll::Ready(Some(Ok(InputEvent {
            event: Event::Barrier(_),
            ..
        }))) = &next
        {
            alignment.block(id);
        }
        next
    })
    .boxed()
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
        let (root, job, partition) = (root.clone(), Arc::clone(&job), partition.clone());
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

/// Which channels of which inputs are still open, the event time they
/// reached and whether they are idle: a task's watermark is the minimum over
/// its open, active channels, and the task is idle when all of them are.
pub(crate) struct InputProgress {
    open: Vec<usize>,
    watermarks: Vec<Vec<i64>>,
    idle: Vec<Vec<bool>>,
    current: i64,
    /// Whether the task announced itself idle downstream.
    task_idle: bool,
}

/// What one event on a channel means for the task.
#[derive(Debug, Default)]
pub(crate) struct ProgressChange {
    /// The channel was its input's last open one.
    pub input_ended: bool,
    /// The task went idle or became active.
    pub status: Option<WatermarkStatus>,
    /// The task's watermark advanced to this.
    pub watermark: Option<i64>,
}

impl InputProgress {
    /// Progress over inputs with the given numbers of channels.
    pub fn new(channels: &[usize]) -> Self {
        Self {
            open: channels.to_vec(),
            watermarks: channels.iter().map(|&n| vec![i64::MIN; n]).collect(),
            idle: channels.iter().map(|&n| vec![false; n]).collect(),
            current: i64::MIN,
            task_idle: false,
        }
    }

    /// The channels that have not ended.
    pub fn open_channels_count(&self) -> usize {
        self.open.iter().sum()
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

    /// A channel went idle or became active again.
    pub fn on_status(
        &mut self,
        input: usize,
        channel: usize,
        status: WatermarkStatus,
    ) -> ProgressChange {
        self.idle[input][channel] = status == WatermarkStatus::Idle;
        ProgressChange {
            input_ended: false,
            status: self.update_status(),
            watermark: self.advance(),
        }
    }

    /// A channel reached its end of partition.
    pub fn on_end(&mut self, input: usize, channel: usize) -> ProgressChange {
        self.watermarks[input][channel] = i64::MAX;
        self.idle[input][channel] = false;
        self.open[input] -= 1;
        ProgressChange {
            input_ended: self.open[input] == 0,
            status: self.update_status(),
            watermark: self.advance(),
        }
    }

    /// The open channels: those that have not ended.
    fn open_channels(&self) -> impl Iterator<Item = (i64, bool)> + '_ {
        self.watermarks
            .iter()
            .flatten()
            .zip(self.idle.iter().flatten())
            .filter(|(w, _)| **w != i64::MAX)
            .map(|(w, idle)| (*w, *idle))
    }

    /// The task is idle when it has open channels and all are idle.
    fn update_status(&mut self) -> Option<WatermarkStatus> {
        let idle = {
            let mut open = self.open_channels().peekable();
            open.peek().is_some() && open.all(|(_, idle)| idle)
        };
        (idle != self.task_idle).then(|| {
            self.task_idle = idle;
            if idle {
                WatermarkStatus::Idle
            } else {
                WatermarkStatus::Active
            }
        })
    }

    /// The minimum over the active open channels, when it moved forward.
    fn advance(&mut self) -> Option<i64> {
        let min = self
            .open_channels()
            .filter(|(_, idle)| !idle)
            .map(|(w, _)| w)
            .min()?;
        (min > self.current).then(|| {
            self.current = min;
            min
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_channels_do_not_hold_the_watermark_back() {
        let mut p = InputProgress::new(&[2, 1]);
        assert_eq!(p.on_watermark(0, 0, 10), None);
        assert_eq!(p.on_watermark(0, 1, 20), None);
        assert_eq!(p.on_watermark(1, 0, 5), Some(5));
        let change = p.on_status(1, 0, WatermarkStatus::Idle);
        assert_eq!((change.status, change.watermark), (None, Some(10)));
        p.on_status(0, 0, WatermarkStatus::Idle);
        let change = p.on_status(0, 1, WatermarkStatus::Idle);
        assert_eq!(change.status, Some(WatermarkStatus::Idle));
        // Back from idle behind the others: the watermark never goes back.
        let change = p.on_status(1, 0, WatermarkStatus::Active);
        assert_eq!(
            (change.status, change.watermark),
            (Some(WatermarkStatus::Active), None)
        );
        let end = p.on_end(1, 0);
        assert!(end.input_ended);
        // Only idle channels are left open.
        assert_eq!(end.status, Some(WatermarkStatus::Idle));
    }

    #[test]
    fn ended_channels_release_the_watermark() {
        let mut p = InputProgress::new(&[2]);
        assert_eq!(p.on_watermark(0, 0, 7), None);
        let end = p.on_end(0, 1);
        assert_eq!((end.input_ended, end.watermark), (false, Some(7)));
        let end = p.on_end(0, 0);
        assert_eq!(
            (end.input_ended, end.watermark, end.status),
            (true, None, None)
        );
    }
}
