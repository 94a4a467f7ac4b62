//! Pipelined local channels with credit-based backpressure.
//!
//! A channel connects one subpartition of a producer to one consumer subtask
//! in the same process. It holds at most `max_bytes` of batches and at most
//! `max_batches` batches (a single batch larger than `max_bytes` still passes
//! when the channel is empty, so nothing deadlocks). A producer that finds no
//! credit waits until the consumer takes something out: a slow consumer holds
//! its producer back and memory stays flat. Control events (watermarks,
//! barriers, end of partition) carry no bytes and are never held back, but
//! keep their place in the order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::{Error, Event, Result};

/// Bounds of a pipelined channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelBounds {
    /// Most bytes of batches buffered in the channel.
    pub max_bytes: usize,
    /// Most batches buffered in the channel.
    pub max_batches: usize,
}

impl Default for ChannelBounds {
    fn default() -> Self {
        Self {
            max_bytes: 4 << 20,
            max_batches: 16,
        }
    }
}

#[derive(Debug, Default)]
struct Queue {
    events: VecDeque<(Event, usize)>,
    bytes: usize,
    batches: usize,
    sender_gone: bool,
    receiver_gone: bool,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    bounds: ChannelBounds,
    /// Wakes the receiver when an event arrives or the sender goes.
    to_receiver: Notify,
    /// Wakes the sender when credit returns or the receiver goes.
    to_sender: Notify,
    peak_bytes: AtomicUsize,
}

/// Sending end of a pipelined channel.
#[derive(Debug)]
pub struct ChannelSender {
    shared: Arc<Shared>,
}

/// Receiving end of a pipelined channel.
#[derive(Debug)]
pub struct ChannelReceiver {
    shared: Arc<Shared>,
}

/// Observes a channel's buffer from outside (for metrics and tests).
#[derive(Debug, Clone)]
pub struct ChannelProbe {
    shared: Arc<Shared>,
}

/// Creates a pipelined channel with the given bounds.
pub fn pipelined_channel(bounds: ChannelBounds) -> (ChannelSender, ChannelReceiver) {
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue::default()),
        bounds,
        to_receiver: Notify::new(),
        to_sender: Notify::new(),
        peak_bytes: AtomicUsize::new(0),
    });
    (
        ChannelSender {
            shared: Arc::clone(&shared),
        },
        ChannelReceiver { shared },
    )
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue inconsistent
        // (every update is a single push or pop), so poisoning is ignored.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ChannelSender {
    /// Sends `event`, waiting for credit when the channel is full.
    ///
    /// # Errors
    /// [`Error::ChannelClosed`] when the receiver is gone.
    pub async fn send(&self, event: Event) -> Result<()> {
        let size = event.memory_size();
        let is_batch = matches!(event, Event::Batch(_));
        loop {
            {
                let mut q = self.shared.lock();
                if q.receiver_gone {
                    return Err(Error::ChannelClosed("the consumer is gone"));
                }
                let bounds = self.shared.bounds;
                let fits = !is_batch
                    || q.batches == 0
                    || (q.bytes + size <= bounds.max_bytes && q.batches < bounds.max_batches);
                if fits {
                    q.bytes += size;
                    q.batches += usize::from(is_batch);
                    self.shared.peak_bytes.fetch_max(q.bytes, Ordering::Relaxed);
                    q.events.push_back((event, size));
                    drop(q);
                    self.shared.to_receiver.notify_one();
                    return Ok(());
                }
            }
            // One waiter per side: a notification between the check above
            // and this await is kept as a permit, so no wake-up is lost.
            self.shared.to_sender.notified().await;
        }
    }

    /// A probe that observes this channel's buffer.
    pub fn probe(&self) -> ChannelProbe {
        ChannelProbe {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for ChannelSender {
    fn drop(&mut self) {
        self.shared.lock().sender_gone = true;
        self.shared.to_receiver.notify_one();
    }
}

impl ChannelReceiver {
    /// Receives the next event; `None` once the sender is gone and everything
    /// it sent was received.
    pub async fn recv(&self) -> Option<Event> {
        loop {
            {
                let mut q = self.shared.lock();
                if let Some((event, size)) = q.events.pop_front() {
                    q.bytes -= size;
                    q.batches -= usize::from(matches!(event, Event::Batch(_)));
                    drop(q);
                    self.shared.to_sender.notify_one();
                    return Some(event);
                }
                if q.sender_gone {
                    return None;
                }
            }
            self.shared.to_receiver.notified().await;
        }
    }
}

impl Drop for ChannelReceiver {
    fn drop(&mut self) {
        let mut q = self.shared.lock();
        q.receiver_gone = true;
        q.events.clear();
        drop(q);
        self.shared.to_sender.notify_one();
    }
}

impl ChannelProbe {
    /// The most bytes the channel ever buffered at once.
    pub fn peak_bytes(&self) -> usize {
        self.shared.peak_bytes.load(Ordering::Relaxed)
    }

    /// The bytes buffered right now.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lock().bytes
    }

    /// The channel's bounds.
    pub fn bounds(&self) -> ChannelBounds {
        self.shared.bounds
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: usize) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)])),
            vec![Arc::new(Int64Array::from_iter_values(0..rows as i64))],
        )
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_consumer_bounds_buffered_bytes() {
        let one = Event::Batch(batch(1024)).memory_size();
        let bounds = ChannelBounds {
            max_bytes: one * 3,
            max_batches: 100,
        };
        let (tx, rx) = pipelined_channel(bounds);
        let probe = tx.probe();
        let producer = tokio::spawn(async move {
            for _ in 0..200 {
                tx.send(Event::Batch(batch(1024))).await.unwrap();
            }
            tx.send(Event::EndOfPartition).await.unwrap();
        });
        let mut received = 0;
        while let Some(event) = rx.recv().await {
            if let Event::Batch(b) = event {
                received += b.num_rows();
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        producer.await.unwrap();
        assert_eq!(received, 200 * 1024);
        assert!(
            probe.peak_bytes() <= bounds.max_bytes,
            "peak {}",
            probe.peak_bytes()
        );
        assert!(
            probe.peak_bytes() >= one * 2,
            "the channel never filled: {}",
            probe.peak_bytes()
        );
    }

    #[tokio::test]
    async fn oversized_batch_passes_an_empty_channel_and_order_is_kept() {
        let (tx, rx) = pipelined_channel(ChannelBounds {
            max_bytes: 1,
            max_batches: 1,
        });
        tx.send(Event::Batch(batch(10))).await.unwrap();
        tx.send(Event::Watermark(5)).await.unwrap();
        drop(tx);
        assert!(matches!(rx.recv().await, Some(Event::Batch(_))));
        assert!(matches!(rx.recv().await, Some(Event::Watermark(5))));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn sender_learns_when_receiver_is_gone() {
        let (tx, rx) = pipelined_channel(ChannelBounds::default());
        drop(rx);
        assert!(matches!(
            tx.send(Event::Watermark(1)).await,
            Err(Error::ChannelClosed(_))
        ));
    }
}
