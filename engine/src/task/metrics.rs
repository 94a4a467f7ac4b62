//! What a task counts.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use weir_exchange::ResultPartitionId;
use weir_exchange::blocking::PartitionFileStats;

/// Records and bytes a task moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskMetrics {
    /// Records that came in (from inputs or the source).
    pub rows_in: u64,
    /// Bytes that came in (Arrow memory of the received slices).
    pub bytes_in: u64,
    /// Records the chain emitted.
    pub rows_out: u64,
    /// Bytes the chain emitted.
    pub bytes_out: u64,
    /// Bytes written to spill files (on disk).
    pub spilled_bytes: u64,
    /// Spill files written.
    pub spill_files: u64,
}

impl TaskMetrics {
    /// Adds another task's counts to these.
    pub fn add(&mut self, other: &TaskMetrics) {
        self.rows_in += other.rows_in;
        self.bytes_in += other.bytes_in;
        self.rows_out += other.rows_out;
        self.bytes_out += other.bytes_out;
        self.spilled_bytes += other.spilled_bytes;
        self.spill_files += other.spill_files;
    }
}

/// A task's counts so far, shared with the job master, which reads them
/// for a task that reports none (stopped or cancelled).
#[derive(Debug, Clone, Default)]
pub struct LiveMetrics(Arc<Mutex<TaskMetrics>>);

impl LiveMetrics {
    /// Replaces the counts.
    pub fn set(&self, metrics: TaskMetrics) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = metrics;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> TaskMetrics {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A blocking partition a task wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionWritten {
    /// The edge (dataset) it belongs to.
    pub dataset: u32,
    /// Its id.
    pub partition: ResultPartitionId,
    /// What the file holds.
    pub stats: PartitionFileStats,
}

/// What a task reports when it finished successfully.
#[derive(Debug, Clone, Default)]
pub struct TaskReport {
    /// Its counts.
    pub metrics: TaskMetrics,
    /// The blocking partitions it completed.
    pub partitions: Vec<PartitionWritten>,
    /// The named counters of its source, operators and sink.
    pub counters: BTreeMap<&'static str, u64>,
}
