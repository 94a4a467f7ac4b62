//! Failure injection for tests: fail chosen tasks at chosen records, kill
//! them after chosen progress, delete or corrupt chosen partition files.

use weir_engine::graph::VertexId;

/// A task failure to inject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFailure {
    /// The vertex.
    pub vertex: VertexId,
    /// The subtask index.
    pub subtask: u32,
    /// The attempt that fails (later attempts run normally).
    pub attempt: u32,
    /// The task fails when its input count reaches this record (1-based).
    pub at_record: u64,
}

/// A task to kill, wherever it is (reading, writing, taking part in a
/// checkpoint), as a crash would, once it made some progress: tied to
/// records, not to time, a kill lands the same on a fast or a loaded
/// machine, in debug and release builds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskKill {
    /// The vertex.
    pub vertex: VertexId,
    /// The subtask index.
    pub subtask: u32,
    /// The attempt that is killed (later attempts run normally).
    pub attempt: u32,
    /// The records it has read and written when it is killed (at whatever
    /// it awaits next).
    pub at_records: u64,
}

/// What to do to a partition file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionDamage {
    /// Delete the file.
    Delete,
    /// Flip bytes in the file's footer, which every reader checks.
    Corrupt,
}

/// A complete partition file to damage just before a given consumer
/// subtask is first deployed, so that consumer (and any later one) finds it
/// missing or corrupt while earlier consumers already read it intact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFault {
    /// The edge (dataset).
    pub dataset: u32,
    /// The producer subtask index.
    pub producer: u32,
    /// The consumer subtask before whose first deployment the file is
    /// damaged.
    pub before: (VertexId, u32),
    /// Delete or corrupt.
    pub damage: PartitionDamage,
}

/// The failures to inject into one job run.
#[derive(Debug, Clone, Default)]
pub struct FailurePlan {
    /// Task failures.
    pub records: Vec<RecordFailure>,
    /// Task kills.
    pub kills: Vec<TaskKill>,
    /// Checkpoints whose metadata cannot be written.
    pub metadata_failures: Vec<u64>,
    /// Checkpoints whose tasks cannot upload their state.
    pub upload_failures: Vec<u64>,
    /// Damaged partition files.
    pub partitions: Vec<PartitionFault>,
    /// Damage done to a state file of the checkpoint a job first restarts
    /// from, just before it restarts.
    pub restored_checkpoint: Option<PartitionDamage>,
}

impl FailurePlan {
    /// No failures.
    pub fn none() -> Self {
        Self::default()
    }

    /// Fails subtask `subtask` of `vertex` on attempt `attempt` when its
    /// input count reaches `at_record`.
    pub fn fail_task(
        mut self,
        vertex: VertexId,
        subtask: u32,
        attempt: u32,
        at_record: u64,
    ) -> Self {
        self.records.push(RecordFailure {
            vertex,
            subtask,
            attempt,
            at_record,
        });
        self
    }

    /// Kills subtask `subtask` of `vertex` on attempt `attempt` once it has
    /// read and written `at_records` records together, if it still runs:
    /// the task stops at whatever it awaits then.
    pub fn kill_task_at(
        mut self,
        vertex: VertexId,
        subtask: u32,
        attempt: u32,
        at_records: u64,
    ) -> Self {
        self.kills.push(TaskKill {
            vertex,
            subtask,
            attempt,
            at_records,
        });
        self
    }

    /// Damages the partition of producer `producer` on edge `dataset` just
    /// before subtask `before` (vertex, index) is first deployed.
    pub fn damage_partition(
        mut self,
        dataset: u32,
        producer: u32,
        before: (VertexId, u32),
        damage: PartitionDamage,
    ) -> Self {
        self.partitions.push(PartitionFault {
            dataset,
            producer,
            before,
            damage,
        });
        self
    }

    /// Deletes or corrupts a state file of the checkpoint the job first
    /// restarts from, just before it restarts: the restart must fall back
    /// to an older checkpoint, or fail saying why.
    pub fn damage_restored_checkpoint(mut self, damage: PartitionDamage) -> Self {
        self.restored_checkpoint = Some(damage);
        self
    }

    /// Makes the tasks' state uploads of checkpoint `checkpoint` fail (a
    /// file stands where its directory goes; local checkpoint
    /// directories only): the tasks decline it.
    pub fn fail_checkpoint_uploads(mut self, checkpoint: u64) -> Self {
        self.upload_failures.push(checkpoint);
        self
    }

    /// Makes the metadata of checkpoint `checkpoint` impossible to write
    /// (a local checkpoint directory only): the checkpoint fails after
    /// every task took part.
    pub fn fail_checkpoint_metadata(mut self, checkpoint: u64) -> Self {
        self.metadata_failures.push(checkpoint);
        self
    }

    pub(crate) fn fails_checkpoint_uploads(&self, checkpoint: u64) -> bool {
        self.upload_failures.contains(&checkpoint)
    }

    pub(crate) fn fails_checkpoint_metadata(&self, checkpoint: u64) -> bool {
        self.metadata_failures.contains(&checkpoint)
    }

    /// Whether it fails or kills tasks (see [`fail_task`](Self::fail_task)
    /// and [`kill_task_at`](Self::kill_task_at)).
    pub(crate) fn touches_tasks(&self) -> bool {
        !self.records.is_empty() || !self.kills.is_empty()
    }

    pub(crate) fn kill(&self, vertex: VertexId, subtask: u32, attempt: u32) -> Option<u64> {
        self.kills
            .iter()
            .find(|k| k.vertex == vertex && k.subtask == subtask && k.attempt == attempt)
            .map(|k| k.at_records)
    }

    pub(crate) fn record_failure(
        &self,
        vertex: VertexId,
        subtask: u32,
        attempt: u32,
    ) -> Option<u64> {
        self.records
            .iter()
            .find(|f| f.vertex == vertex && f.subtask == subtask && f.attempt == attempt)
            .map(|f| f.at_record)
    }

    pub(crate) fn damage_before(
        &self,
        vertex: VertexId,
        subtask: u32,
    ) -> impl Iterator<Item = &PartitionFault> {
        self.partitions
            .iter()
            .filter(move |f| f.before == (vertex, subtask))
    }
}
