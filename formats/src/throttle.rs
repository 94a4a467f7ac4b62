//! Holding a generating source to a rate: records per second, per subtask.

use std::time::Duration;

use tokio::time::Instant;

/// Throttled subtasks emit about this many batches per second.
const BATCHES_PER_SECOND: f64 = 10.0;

/// Holds one subtask to its share of a table's rate (`rows-per-second`,
/// `events-per-second`): it emits batches of about a tenth of a second's
/// records, each when it is due.
#[derive(Debug)]
pub(crate) struct Throttle {
    /// Records per second for this subtask.
    rate: f64,
    batch_rows: usize,
    started: Option<Instant>,
    emitted: u64,
}

impl Throttle {
    /// `rate` records per second, in batches of at most `max_batch_rows`.
    pub(crate) fn new(rate: f64, max_batch_rows: usize) -> Self {
        Self {
            rate,
            batch_rows: ((rate / BATCHES_PER_SECOND).ceil() as usize).clamp(1, max_batch_rows),
            started: None,
            emitted: 0,
        }
    }

    /// The records of the next batch.
    pub(crate) fn batch_rows(&self) -> usize {
        self.batch_rows
    }

    /// Counts `records` emitted.
    pub(crate) fn emitted(&mut self, records: u64) {
        self.emitted += records;
    }

    /// Waits until the records emitted so far are due.
    pub(crate) async fn wait(&mut self) {
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = Duration::try_from_secs_f64(self.emitted as f64 / self.rate)
            .ok()
            .and_then(|wait| started.checked_add(wait));
        match due {
            Some(due) => tokio::time::sleep_until(due).await,
            // Not due before the clock ends: a rate that small never is.
            None => std::future::pending().await,
        }
    }
}
