//! Memory budgets: what a task's stateful operators may hold before they
//! spill.
//!
//! Every task gets a [`MemoryPool`] with a budget (its share of the slot it
//! runs in). Each operator that buffers (aggregate, join, sort, ...) takes a
//! [`MemoryReservation`] from it and grows the reservation before it buffers
//! more. The pool is shared fairly: while `n` operators hold reservations,
//! none may hold more than `budget / n`. When a reservation cannot grow, the
//! operator spills to a [`SpillWriter`] (if spilling is enabled) or fails with
//! [`Error::ResourcesExhausted`] naming itself and the budget.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use weir_exchange::spill::{SpillFile, SpillReader, SpillWriter};

use crate::{Error, Result};

/// How much memory a task may use and where it spills.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Bytes the task's operators may reserve together.
    pub budget: usize,
    /// Whether operators spill when over budget (otherwise they fail).
    pub spill: bool,
    /// The directory spill files go to.
    pub spill_dir: PathBuf,
}

impl MemoryConfig {
    /// No limit: nothing ever spills (tests and tools that run operators
    /// outside a job).
    pub fn unbounded() -> Self {
        Self {
            budget: usize::MAX,
            spill: false,
            spill_dir: std::env::temp_dir().join("weir-spill"),
        }
    }
}

/// A task's memory budget, shared by its operators.
#[derive(Debug, Clone)]
pub struct MemoryPool {
    inner: Arc<PoolInner>,
}

#[derive(Debug)]
struct PoolInner {
    config: MemoryConfig,
    state: Mutex<PoolState>,
    spilled_bytes: AtomicU64,
    spill_files: AtomicU64,
}

#[derive(Debug, Default)]
struct PoolState {
    used: usize,
    consumers: usize,
}

impl MemoryPool {
    /// A pool with the given budget and spilling.
    pub fn new(config: MemoryConfig) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                config,
                state: Mutex::new(PoolState::default()),
                spilled_bytes: AtomicU64::new(0),
                spill_files: AtomicU64::new(0),
            }),
        }
    }

    /// A pool without a limit.
    pub fn unbounded() -> Self {
        Self::new(MemoryConfig::unbounded())
    }

    /// The pool's budget in bytes.
    pub fn budget(&self) -> usize {
        self.inner.config.budget
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.state().used
    }

    /// Bytes written to spill files so far (on disk).
    pub fn spilled_bytes(&self) -> u64 {
        self.inner.spilled_bytes.load(Ordering::Relaxed)
    }

    /// Spill files written so far.
    pub fn spill_files(&self) -> u64 {
        self.inner.spill_files.load(Ordering::Relaxed)
    }

    /// A new, empty reservation for `operator` (its name in errors); it
    /// counts towards the fair share until dropped.
    pub fn reservation(&self, operator: impl Into<String>) -> MemoryReservation {
        self.state().consumers += 1;
        MemoryReservation {
            pool: self.clone(),
            operator: operator.into(),
            size: 0,
        }
    }

    fn state(&self) -> MutexGuard<'_, PoolState> {
        self.inner
            .state
            .lock()
            .expect("the memory pool's lock is not poisoned")
    }
}

/// The memory one operator holds, in bytes, returned to the pool on drop.
#[derive(Debug)]
pub struct MemoryReservation {
    pool: MemoryPool,
    operator: String,
    size: usize,
}

impl MemoryReservation {
    /// Bytes held.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Grows by `bytes` if the pool has them free and the result stays
    /// within this operator's fair share; otherwise changes nothing and
    /// returns `false`.
    pub fn try_grow(&mut self, bytes: usize) -> bool {
        let budget = self.pool.budget();
        let mut state = self.pool.state();
        let share = budget / state.consumers.max(1);
        let fits_share = self.size.saturating_add(bytes) <= share;
        let fits_pool = state.used.saturating_add(bytes) <= budget;
        if fits_share && fits_pool {
            state.used += bytes;
            self.size += bytes;
            true
        } else {
            false
        }
    }

    /// Sets the reservation to `bytes`, growing or shrinking it; `false`
    /// (and no change) when growing does not fit.
    pub fn try_resize(&mut self, bytes: usize) -> bool {
        if bytes >= self.size {
            self.try_grow(bytes - self.size)
        } else {
            self.shrink(self.size - bytes);
            true
        }
    }

    /// Returns `bytes` (at most what is held) to the pool.
    pub fn shrink(&mut self, bytes: usize) {
        let bytes = bytes.min(self.size);
        self.pool.state().used -= bytes;
        self.size -= bytes;
    }

    /// Returns everything held to the pool.
    pub fn free(&mut self) {
        self.shrink(self.size);
    }

    /// Whether the operator may spill when it does not fit.
    pub fn can_spill(&self) -> bool {
        self.pool.inner.config.spill
    }

    /// The error of an operator that needs `requested` more bytes and may
    /// not (or can no longer) spill.
    pub fn exhausted(&self, requested: usize) -> Error {
        Error::ResourcesExhausted {
            operator: self.operator.clone(),
            budget: self.pool.budget(),
            held: self.size,
            requested,
            spill: self.can_spill(),
        }
    }

    /// Starts a spill file for batches of `schema`.
    ///
    /// # Errors
    /// When the spill directory or file cannot be created.
    pub fn spill_writer(&self, schema: &SchemaRef) -> Result<SpillWriter> {
        SpillWriter::create(&self.pool.inner.config.spill_dir, schema)
            .map_err(|e| self.spill_error(e))
    }

    /// Counts a finished spill file in the task's metrics.
    pub fn record_spill(&self, file: &SpillFile) {
        let inner = &self.pool.inner;
        inner
            .spilled_bytes
            .fetch_add(file.file_bytes(), Ordering::Relaxed);
        inner.spill_files.fetch_add(1, Ordering::Relaxed);
    }

    /// A spill error of this operator.
    pub fn spill_error(&self, error: weir_exchange::spill::SpillError) -> Error {
        Error::Spill {
            operator: self.operator.clone(),
            source: error,
        }
    }

    /// Reads a spill file of this operator back, batch by batch. The
    /// reader owns what it needs, so an operator can keep it between calls.
    ///
    /// # Errors
    /// When the file cannot be opened.
    pub fn read_spill(&self, file: &SpillFile) -> Result<SpillBatches> {
        Ok(SpillBatches {
            reader: file.read().map_err(|e| self.spill_error(e))?,
            operator: self.operator.clone(),
        })
    }
}

/// The batches of a spill file read back, in order; errors name the operator
/// that spilled (see [`MemoryReservation::read_spill`]).
#[derive(Debug)]
pub struct SpillBatches {
    reader: SpillReader,
    operator: String,
}

impl Iterator for SpillBatches {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next().map(|batch| {
            batch.map_err(|source| Error::Spill {
                operator: self.operator.clone(),
                source,
            })
        })
    }
}

impl Drop for MemoryReservation {
    fn drop(&mut self) {
        let mut state = self.pool.state();
        state.used -= self.size;
        state.consumers -= 1;
    }
}

/// Parses a size: a number of bytes, optionally followed by a unit (`b`,
/// `kb`, `mb`, `gb`, `tb` or `kib`, `mib`, ...; both mean powers of 1024, as
/// in Flink's memory options), case-insensitive, with or without a space.
pub fn parse_bytes(value: &str) -> Option<usize> {
    let value = value.trim().to_ascii_lowercase();
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let number: usize = number.parse().ok()?;
    let shift = match unit.trim() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    number.checked_mul(1usize.checked_shl(shift)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_bytes("4096"), Some(4096));
        assert_eq!(parse_bytes("64 mb"), Some(64 << 20));
        assert_eq!(parse_bytes("1GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("12 parsecs"), None);
    }

    fn pool(budget: usize) -> MemoryPool {
        MemoryPool::new(MemoryConfig {
            budget,
            spill: true,
            spill_dir: std::env::temp_dir(),
        })
    }

    #[test]
    fn a_lone_operator_may_take_the_whole_budget() {
        let pool = pool(1000);
        let mut r = pool.reservation("sort");
        assert!(r.try_grow(1000));
        assert!(!r.try_grow(1));
        assert_eq!(pool.used(), 1000);
        r.shrink(400);
        assert_eq!((r.size(), pool.used()), (600, 600));
        drop(r);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn operators_share_the_budget_fairly() {
        let pool = pool(1000);
        let mut a = pool.reservation("aggregate");
        let mut b = pool.reservation("join");
        assert!(a.try_grow(500));
        assert!(!a.try_grow(1), "a holds its fair share");
        assert!(b.try_grow(500));
        drop(b);
        assert!(a.try_grow(500), "alone again, a may take everything");
        assert!(a.try_resize(10));
        assert_eq!(pool.used(), 10);
    }

    #[test]
    fn the_exhausted_error_names_operator_and_budget() {
        let pool = MemoryPool::new(MemoryConfig {
            budget: 4096,
            spill: false,
            spill_dir: std::env::temp_dir(),
        });
        let r = pool.reservation("hash-aggregate(sum(x) by k)");
        let message = r.exhausted(10_000).to_string();
        assert!(message.contains("hash-aggregate(sum(x) by k)"), "{message}");
        assert!(message.contains("4096"), "{message}");
        assert!(!r.can_spill());
    }
}
