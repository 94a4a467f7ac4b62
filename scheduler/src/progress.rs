//! A running job's progress, read live by whoever started it (the command
//! line draws a progress bar or writes log lines from it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use weir_engine::task::ScanProgress;

/// A handle on the progress of one job, updated by its job master; clones
/// share it. Read it with [`JobProgress::snapshot`] while the job runs.
#[derive(Debug, Clone, Default)]
pub struct JobProgress {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    regions: usize,
    regions_finished: usize,
    restarts: u32,
    checkpoints: u64,
    rows_expected: Option<u64>,
    /// The scan progress of the current attempt of every deployed source
    /// subtask, by dense subtask index.
    sources: HashMap<usize, ScanProgress>,
}

/// What a job has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressSnapshot {
    /// Input rows the current attempts of the source subtasks have covered.
    pub rows_scanned: u64,
    /// The input rows of all the sources, when every source can tell.
    pub rows_expected: Option<u64>,
    /// Pipelined regions whose subtasks all finished.
    pub regions_finished: usize,
    /// Pipelined regions of the job (0 until the job master starts).
    pub regions: usize,
    /// Restarts so far.
    pub restarts: u32,
    /// Checkpoints completed so far.
    pub checkpoints: u64,
}

impl JobProgress {
    /// What the job has done so far.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let state = self.lock();
        ProgressSnapshot {
            rows_scanned: state.sources.values().map(ScanProgress::rows).sum(),
            rows_expected: state.rows_expected,
            regions_finished: state.regions_finished,
            regions: state.regions,
            restarts: state.restarts,
            checkpoints: state.checkpoints,
        }
    }

    /// Starts the count for a job of `regions` regions whose sources cover
    /// `rows_expected` rows.
    pub(crate) fn start(&self, regions: usize, rows_expected: Option<u64>) {
        let mut state = self.lock();
        *state = State {
            regions,
            rows_expected,
            ..State::default()
        };
    }

    /// The scan progress of a new attempt of source subtask `subtask`, which
    /// replaces the previous attempt's.
    pub(crate) fn source_attempt(&self, subtask: usize) -> ScanProgress {
        let scanned = ScanProgress::default();
        self.lock().sources.insert(subtask, scanned.clone());
        scanned
    }

    /// Drops what the cancelled attempt of `subtask` had covered.
    pub(crate) fn forget(&self, subtask: usize) {
        self.lock().sources.remove(&subtask);
    }

    /// Records the regions finished and the restarts so far.
    pub(crate) fn update(&self, regions_finished: usize, restarts: u32) {
        let mut state = self.lock();
        state.regions_finished = regions_finished;
        state.restarts = restarts;
    }

    /// Counts a completed checkpoint.
    pub(crate) fn checkpoint_completed(&self) {
        self.lock().checkpoints += 1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}
