//! The receiving ends of a process's outgoing remote channels, waiting
//! for their consumers to connect.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use super::ChannelKey;
use crate::channel::ChannelReceiver;
use crate::{Error, Result};

/// Outgoing remote channels by key, until their consumer takes them.
#[derive(Debug, Default)]
pub struct ExchangeRegistry {
    channels: Mutex<HashMap<ChannelKey, ChannelReceiver>>,
    registered: Notify,
}

impl ExchangeRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelKey, ChannelReceiver>> {
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Offers the receiving end `receiver` of channel `key` to its
    /// consumer.
    pub fn register(&self, key: ChannelKey, receiver: ChannelReceiver) {
        self.lock().insert(key, receiver);
        self.registered.notify_waiters();
    }

    /// Takes channel `key`, waiting up to `wait` for its producer to offer
    /// it (the consumer may connect first).
    ///
    /// # Errors
    /// [`Error::Remote`] when it is not offered in time.
    pub async fn take(&self, key: &ChannelKey, wait: Duration) -> Result<ChannelReceiver> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let registered = self.registered.notified();
            tokio::pin!(registered);
            registered.as_mut().enable();
            if let Some(receiver) = self.lock().remove(key) {
                return Ok(receiver);
            }
            if tokio::time::timeout_at(deadline, registered).await.is_err() {
                return Err(Error::Remote(format!(
                    "no channel {key} here after {wait:?}: its producer is not running"
                )));
            }
        }
    }

    /// Drops the channels of job `job` nobody took (it ended here).
    pub fn forget_job(&self, job: &str) {
        self.lock().retain(|key, _| key.job != job);
    }

    /// How many channels wait for their consumer.
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }
}
