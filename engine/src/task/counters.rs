//! Named counters a task's source, operators and sink keep (files and row
//! groups read, bad records dropped, files written...), reported with the
//! task and summed per vertex in the job summary.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A task's named counters; clones share the same counts.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    counts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
}

impl Counters {
    /// Adds `n` to the counter `name`.
    pub fn add(&self, name: &'static str, n: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry(name).or_default() += n;
    }

    /// The counter `name` (0 when never added to).
    pub fn get(&self, name: &str) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(name).copied().unwrap_or(0)
    }

    /// Every counter, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
