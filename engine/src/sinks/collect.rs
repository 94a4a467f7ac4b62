//! A sink that hands the job's output back to the caller: kept in memory
//! until the job ends, or delivered as soon as it is final.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
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
///
/// A delivering sink ([`CollectSink::delivering`]) keeps nothing: it hands
/// each batch to a [`RowsOut`] once it is final, so that memory stays
/// bounded under an unbounded job. With checkpoints, a batch is final when
/// its checkpoint completes (exactly once, across restarts). Without, it
/// is final as soon as it arrives, as Flink's `collect()` without
/// checkpointing: a subtask that delivered rows cannot run again without
/// repeating them, and its restart fails the job, saying so.
#[derive(Debug, Clone, Default)]
pub struct CollectSink {
    collected: Collected,
}

/// Where a delivering [`CollectSink`] hands rows over: a terminal printing
/// a query's rows while its job runs.
pub trait RowsOut: Send + Sync + Debug {
    /// Takes `batch`, which no restart will take back, from the attempt
    /// `from` names.
    ///
    /// # Errors
    /// The rows cannot go where they go (a closed pipe, or a coordinator
    /// that refuses the rows of a rerun): the job fails.
    fn deliver(&self, from: RowsFrom, batch: &RecordBatch) -> std::io::Result<()>;
}

/// The attempt of a subtask that delivers rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowsFrom {
    /// The subtask's index.
    pub subtask: usize,
    /// Its attempt.
    pub attempt: u32,
}

/// When a delivering sink's batches are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Final {
    /// When they arrive.
    OnArrival,
    /// When the checkpoint after them completes (or their subtask ends).
    AtCheckpoints,
}

/// The output of a [`CollectSink`], readable after (or while) the job runs.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    inner: Arc<Mutex<CollectedState>>,
    /// Where final batches go instead of being kept.
    out: Option<(Arc<dyn RowsOut>, Final)>,
}

#[derive(Debug, Default)]
struct CollectedState {
    /// Subtasks that delivered rows no checkpoint covers: running one
    /// again would deliver them twice.
    delivered: BTreeSet<usize>,
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

    /// A sink that hands every batch to `out` once it is final: at the
    /// completion of the checkpoint after it when `checkpointed`, on
    /// arrival otherwise.
    pub fn delivering(out: Arc<dyn RowsOut>, checkpointed: bool) -> Self {
        let at = if checkpointed {
            Final::AtCheckpoints
        } else {
            Final::OnArrival
        };
        Self {
            collected: Collected {
                inner: Arc::default(),
                out: Some((out, at)),
            },
        }
    }
}

impl Collected {
    /// The committed and published batches, subtask by subtask in the
    /// order received.
    pub fn batches(&self) -> Vec<RecordBatch> {
        let state = self.lock();
        let subtasks: BTreeSet<usize> = state
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
    fn publish(&self, subtask: usize, attempt: u32, batches: Vec<RecordBatch>) -> Result<()> {
        let mut state = self.lock();
        let mut all = state.take_staged(subtask, attempt, u64::MAX);
        all.extend(batches);
        if self.out.is_some() {
            let from = RowsFrom { subtask, attempt };
            return self.deliver(&mut state, from, &all, false);
        }
        match state.published.get(&subtask) {
            Some((published, _)) if *published > attempt => {}
            _ => {
                state.published.insert(subtask, (attempt, all));
            }
        }
        Ok(())
    }

    /// Hands `batches` of attempt `from` to the sink's [`RowsOut`], noting
    /// whether a checkpoint `covered` them.
    fn deliver(
        &self,
        state: &mut CollectedState,
        from: RowsFrom,
        batches: &[RecordBatch],
        covered: bool,
    ) -> Result<()> {
        let Some((out, _)) = &self.out else {
            return Ok(());
        };
        for batch in batches.iter().filter(|b| b.num_rows() > 0) {
            out.deliver(from, batch)
                .map_err(|e| crate::Error::Operator {
                    operator: "collect".to_string(),
                    message: format!("the rows could not be delivered: {e}"),
                })?;
            if !covered {
                state.delivered.insert(from.subtask);
            }
        }
        Ok(())
    }

    /// Fails the attempt `task` of a subtask that delivered rows no
    /// checkpoint covers: running it again would deliver them twice.
    fn check_rerun(&self, task: &TaskInfo) -> Result<()> {
        if task.attempt > 0 && self.lock().delivered.contains(&task.subtask) {
            return Err(crate::Error::Operator {
                operator: "collect".to_string(),
                message: format!(
                    "subtask {} restarted after its rows were printed, and running it again \
                     would print them twice; run the query again (with \
                     execution.checkpointing.interval set, a restart resumes after the rows \
                     already printed)",
                    task.subtask
                ),
            });
        }
        Ok(())
    }

    fn stage(&self, key: (usize, u32, u64), batches: Vec<RecordBatch>) {
        self.lock().staged.insert(key, batches);
    }

    /// Commits what the attempt of `key` staged up to its checkpoint
    /// (including checkpoints that failed before it); nothing when it was
    /// committed already.
    fn commit(&self, (subtask, attempt, checkpoint): (usize, u32, u64)) -> Result<()> {
        let mut state = self.lock();
        let batches = state.take_staged(subtask, attempt, checkpoint);
        if self.out.is_some() {
            let from = RowsFrom { subtask, attempt };
            return self.deliver(&mut state, from, &batches, true);
        }
        state.committed.entry(subtask).or_default().extend(batches);
        Ok(())
    }
}

#[async_trait]
impl SinkFactory for CollectSink {
    fn name(&self) -> String {
        "collect".to_string()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Sink>> {
        self.collected.check_rerun(task)?;
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
            self.collected.commit(key)?;
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

impl CollectWriter {
    fn from(&self) -> RowsFrom {
        RowsFrom {
            subtask: self.subtask,
            attempt: self.attempt,
        }
    }
}

#[async_trait]
impl Sink for CollectWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if let Some((_, Final::OnArrival)) = self.collected.out {
            let mut state = self.collected.lock();
            return self
                .collected
                .deliver(&mut state, self.from(), &[batch], false);
        }
        self.batches.push(batch);
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        self.collected.publish(
            self.subtask,
            self.attempt,
            std::mem::take(&mut self.batches),
        )
    }

    async fn prepare_commit(&mut self, checkpoint: u64) -> Result<Option<serde_json::Value>> {
        let key = (self.subtask, self.attempt, checkpoint);
        self.collected.stage(key, std::mem::take(&mut self.batches));
        Ok(Some(serde_json::json!(key)))
    }
}
