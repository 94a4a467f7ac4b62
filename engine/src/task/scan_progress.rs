//! How far a source subtask has got through its input, read live while the
//! task runs (progress bars and log lines).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The rows of its input a source subtask has covered so far: the task adds
/// every row its source emits, and a source that passes over rows without
/// emitting them (pruned row groups, rows a pushed-down filter removed,
/// bad records dropped) adds those itself. Clones share the count.
#[derive(Debug, Clone, Default)]
pub struct ScanProgress {
    rows: Arc<AtomicU64>,
}

impl ScanProgress {
    /// Counts `rows` more rows as covered.
    pub fn add(&self, rows: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
    }

    /// The rows covered so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
}
