//! A task's part in checkpoints: barriers injected at sources, aligned
//! over the channels of other tasks, state written out asynchronously and
//! acknowledged; and restoring the state of a checkpoint before the task
//! starts.

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use tokio::task::JoinSet;
use weir_exchange::checkpoint_store::{CheckpointStore, StateFile};
use weir_exchange::event::Barrier;

use super::TaskInfo;
use super::input::Alignment;
use crate::checkpoint::{
    CheckpointAck, CheckpointSetup, KEY_GROUP_COLUMN, SplitPosition, TaskCheckpoint, TaskRestore,
    in_key_groups, key_group_range,
};
use crate::{Error, Result};

/// What a task needs to take part in checkpoints.
pub(super) struct Participant {
    store: CheckpointStore,
    job_dir: String,
    acks: tokio::sync::mpsc::UnboundedSender<CheckpointAck>,
    triggers: Option<tokio::sync::mpsc::UnboundedReceiver<Barrier>>,
    /// A barrier the coordinator asked a source task to inject, waiting for
    /// the read in flight to end.
    pending: Option<Barrier>,
    /// The split positions recorded for each injected barrier, until its
    /// snapshot comes back from the chain.
    positions: VecDeque<(u64, Option<Vec<SplitPosition>>)>,
    /// The barrier being aligned over the input channels, and on how many
    /// it arrived.
    aligning: Option<(Barrier, usize)>,
    alignment: Alignment,
    uploads: JoinSet<()>,
    vertex: u32,
    subtask: usize,
    attempt: u32,
}

impl Participant {
    pub fn new(setup: CheckpointSetup, info: &TaskInfo, alignment: Alignment) -> Self {
        Self {
            store: setup.store,
            job_dir: setup.job_dir,
            acks: setup.acks,
            triggers: setup.triggers,
            pending: None,
            positions: VecDeque::new(),
            aligning: None,
            alignment,
            uploads: JoinSet::new(),
            vertex: info.vertex.0,
            subtask: info.subtask,
            attempt: info.attempt,
        }
    }

    /// Whether a source task waits for the coordinator's next barrier.
    pub fn awaits_trigger(&self) -> bool {
        self.triggers.is_some() && self.pending.is_none()
    }

    /// The next barrier to inject; never for tasks that inject none.
    pub async fn next_trigger(&mut self) -> Option<Barrier> {
        match &mut self.triggers {
            Some(triggers) => triggers.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Keeps `barrier` until the source's read in flight ends.
    pub fn trigger(&mut self, barrier: Barrier) {
        self.pending = Some(barrier);
    }

    /// The barrier to inject now that a read ended, recording where the
    /// source's splits are.
    pub fn inject(&mut self, positions: Option<Vec<SplitPosition>>) -> Option<Barrier> {
        let barrier = self.pending.take()?;
        self.positions.push_back((barrier.checkpoint_id, positions));
        Some(barrier)
    }

    /// A barrier arrived on one of `open` channels: the barrier to pass on
    /// once it arrived on all of them.
    pub fn arrive(&mut self, barrier: Barrier, open: usize) -> Option<Barrier> {
        let (_, arrived) = self.aligning.get_or_insert((barrier, 0));
        *arrived += 1;
        self.aligned(open)
    }

    /// A channel ended, leaving `open`: the barrier being aligned, if the
    /// channels left all delivered it.
    pub fn channel_ended(&mut self, open: usize) -> Option<Barrier> {
        self.aligned(open)
    }

    fn aligned(&mut self, open: usize) -> Option<Barrier> {
        match self.aligning {
            Some((barrier, arrived)) if arrived >= open => {
                self.aligning = None;
                Some(barrier)
            }
            _ => None,
        }
    }

    /// Every channel reads again after an aligned barrier was passed on.
    pub fn release(&self) {
        self.alignment.release();
    }

    /// The chain snapshotted `barrier`: writes the state out in the
    /// background and acknowledges it, or declines the checkpoint when a
    /// part of the task could not snapshot.
    pub fn complete(
        &mut self,
        barrier: Barrier,
        states: std::result::Result<Vec<Option<Vec<RecordBatch>>>, String>,
        committable: std::result::Result<Option<serde_json::Value>, String>,
        late_committable: std::result::Result<Option<serde_json::Value>, String>,
    ) {
        let checkpoint = barrier.checkpoint_id;
        let splits = match self.positions.front() {
            Some((id, _)) if *id == checkpoint => self.positions.pop_front().and_then(|(_, p)| p),
            _ => Some(Vec::new()),
        };
        let prepared = (|| {
            let splits = splits.ok_or("its source cannot resume from a position")?;
            Ok::<_, String>((splits, states?, (committable?, late_committable?)))
        })();
        let (splits, states, (committable, late_committable)) = match prepared {
            Ok(prepared) => prepared,
            Err(reason) => {
                self.ack(checkpoint, Err(reason));
                return;
            }
        };
        let (store, acks) = (self.store.clone(), self.acks.clone());
        let prefix = format!(
            "{}/chk-{checkpoint}/{}-{}-{}",
            self.job_dir, self.vertex, self.subtask, self.attempt
        );
        let (vertex, subtask) = (self.vertex, self.subtask);
        self.uploads.spawn(async move {
            let outcome = write_states(&store, &prefix, states)
                .await
                .map(|operators| TaskCheckpoint {
                    splits,
                    operators,
                    committable,
                    late_committable,
                });
            // The coordinator may be gone (the job ended): nothing to tell.
            let _ = acks.send(CheckpointAck {
                checkpoint,
                vertex,
                subtask,
                outcome: outcome.map_err(|e| e.to_string()),
            });
        });
    }

    /// Waits for the state uploads still in flight: a task reports its
    /// end only once nothing of it writes any more (the job may remove
    /// its checkpoints as soon as it ended).
    pub async fn drain_uploads(&mut self) {
        while self.uploads.join_next().await.is_some() {}
    }

    fn ack(&self, checkpoint: u64, outcome: std::result::Result<TaskCheckpoint, String>) {
        let _ = self.acks.send(CheckpointAck {
            checkpoint,
            vertex: self.vertex,
            subtask: self.subtask,
            outcome,
        });
    }
}

/// Writes each operator's state as a file under `prefix`.
async fn write_states(
    store: &CheckpointStore,
    prefix: &str,
    states: Vec<Option<Vec<RecordBatch>>>,
) -> Result<Vec<Option<StateFile>>> {
    let mut files = Vec::with_capacity(states.len());
    for (i, state) in states.into_iter().enumerate() {
        files.push(match state {
            Some(batches) if !batches.is_empty() => {
                let schema = batches[0].schema();
                let path = format!("{prefix}-op{i}.arrow");
                Some(store.write_state(&path, &schema, &batches).await?)
            }
            _ => None,
        });
    }
    Ok(files)
}

/// The state of each operator of the chain as `restore` says, narrowed to
/// the key groups of this subtask (state without key groups: the files of
/// the old subtasks whose index maps onto this one).
///
/// # Errors
/// A state file that is missing or corrupt.
pub(super) async fn restored_states(
    store: &CheckpointStore,
    restore: &TaskRestore,
    info: &TaskInfo,
) -> Result<Vec<Vec<RecordBatch>>> {
    let range = key_group_range(info.subtask, info.parallelism, info.max_parallelism);
    let mut states = Vec::with_capacity(restore.operators.len());
    for files in &restore.operators {
        let mut state = Vec::new();
        for (old_subtask, file) in files {
            let batches = store.read_state(file).await.map_err(Error::from)?;
            for batch in batches {
                if batch.schema().index_of(KEY_GROUP_COLUMN).is_ok() {
                    state.push(in_key_groups(&batch, &range)?);
                } else if old_subtask % info.parallelism == info.subtask {
                    state.push(batch);
                }
            }
        }
        states.push(state);
    }
    Ok(states)
}
