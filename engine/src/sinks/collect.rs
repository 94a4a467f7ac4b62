//! A sink that hands the job's output back to the caller.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::{CheckpointCommit, Result, Sink, SinkFactory, TaskInfo};

/// Collects every batch it receives in memory. Each subtask attempt collects
/// on its own and publishes its batches when it finishes, replacing what an
/// earlier attempt of the same subtask published: a rerun never duplicates
/// output and a failed attempt's partial output is never seen.
///
/// In checkpoints it commits in two phases: at a barrier, an attempt stages
/// what it collected since the previous one; when the checkpoint
/// completes, the staged batches are committed for good. An attempt that
/// resumes from a checkpoint adds to what was committed; whatever a failed
/// attempt staged after it is never seen: exactly once.
#[derive(Debug, Clone, Default)]
pub struct CollectSink {
    collected: Collected,
}

/// The output of a [`CollectSink`], readable after (or while) the job runs.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    inner: Arc<Mutex<CollectedState>>,
}

#[derive(Debug, Default)]
struct CollectedState {
    /// Per subtask: the batches of completed checkpoints, in order.
    committed: BTreeMap<usize, Vec<RecordBatch>>,
    /// Batches staged at a barrier, by (subtask, attempt, checkpoint).
    staged: BTreeMap<(usize, u32, u64), Vec<RecordBatch>>,
    /// Per subtask: what its last attempt published when it finished.
    published: BTreeMap<usize, Published>,
}

impl CollectedState {
    /// Takes what `attempt` of `subtask` staged up to `checkpoint`, in
    /// order.
    fn take_staged(&mut self, subtask: usize, attempt: u32, checkpoint: u64) -> Vec<RecordBatch> {
        let keys: Vec<_> = self
            .staged
            .range((subtask, attempt, 0)..=(subtask, attempt, checkpoint))
            .map(|(k, _)| *k)
            .collect();
        keys.into_iter()
            .flat_map(|k| self.staged.remove(&k).unwrap_or_default())
            .collect()
    }
}

/// The batches one subtask published, and the attempt that published them.
type Published = (u32, Vec<RecordBatch>);

impl CollectSink {
    /// A new sink and the handle to read what it collects.
    pub fn new() -> (Self, Collected) {
        let sink = Self::default();
        let collected = sink.collected.clone();
        (sink, collected)
    }
}

impl Collected {
    /// The committed and published batches, subtask by subtask in the
    /// order received.
    pub fn batches(&self) -> Vec<RecordBatch> {
        let state = self.lock();
        let subtasks: std::collections::BTreeSet<usize> = state
            .committed
            .keys()
            .chain(state.published.keys())
            .copied()
            .collect();
        subtasks
            .into_iter()
            .flat_map(|s| {
                let committed = state.committed.get(&s).into_iter().flatten();
                let published = state.published.get(&s).into_iter().flat_map(|(_, b)| b);
                committed.chain(published).cloned().collect::<Vec<_>>()
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CollectedState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The number of published rows.
    pub fn num_rows(&self) -> usize {
        self.batches().iter().map(RecordBatch::num_rows).sum()
    }

    /// A finished attempt publishes what it staged and did not commit yet
    /// (its last checkpoints may have failed), then `batches`.
    fn publish(&self, subtask: usize, attempt: u32, batches: Vec<RecordBatch>) {
        let mut state = self.lock();
        let mut all = state.take_staged(subtask, attempt, u64::MAX);
        all.extend(batches);
        match state.published.get(&subtask) {
            Some((published, _)) if *published > attempt => {}
            _ => {
                state.published.insert(subtask, (attempt, all));
            }
        }
    }

    fn stage(&self, key: (usize, u32, u64), batches: Vec<RecordBatch>) {
        self.lock().staged.insert(key, batches);
    }

    /// Commits what the attempt of `key` staged up to its checkpoint
    /// (including checkpoints that failed before it); nothing when it was
    /// committed already.
    fn commit(&self, (subtask, attempt, checkpoint): (usize, u32, u64)) {
        let mut state = self.lock();
        let batches = state.take_staged(subtask, attempt, checkpoint);
        state.committed.entry(subtask).or_default().extend(batches);
    }
}

#[async_trait]
impl SinkFactory for CollectSink {
    fn name(&self) -> String {
        "collect".to_string()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Sink>> {
        Ok(Box::new(CollectWriter {
            collected: self.collected.clone(),
            subtask: task.subtask,
            attempt: task.attempt,
            batches: Vec::new(),
        }))
    }

    async fn commit_checkpoint(&self, commit: &CheckpointCommit<'_>) -> Result<()> {
        for committable in commit.committables {
            let key: (usize, u32, u64) = serde_json::from_value(committable.clone())
                .map_err(|e| crate::Error::Checkpoint(format!("collect sink: {e}")))?;
            self.collected.commit(key);
        }
        Ok(())
    }
}

struct CollectWriter {
    collected: Collected,
    subtask: usize,
    attempt: u32,
    batches: Vec<RecordBatch>,
}

#[async_trait]
impl Sink for CollectWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.batches.push(batch);
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        self.collected.publish(
            self.subtask,
            self.attempt,
            std::mem::take(&mut self.batches),
        );
        Ok(())
    }

    async fn prepare_commit(&mut self, checkpoint: u64) -> Result<Option<serde_json::Value>> {
        let key = (self.subtask, self.attempt, checkpoint);
        self.collected.stage(key, std::mem::take(&mut self.batches));
        Ok(Some(serde_json::json!(key)))
    }
}
