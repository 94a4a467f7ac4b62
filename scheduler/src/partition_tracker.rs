//! The partition tracker: which result partitions of a job's blocking
//! edges exist, written by which attempt of their producer, and which of
//! them are known to be lost (their files gone or unreadable), so that
//! failover reruns their producers (failover rule 2).

use std::collections::HashMap;

use crate::execution_graph::PartitionKey;

/// Where a partition the tracker knows is in its life. A partition it does
/// not know is not written (yet, or again since its producer restarted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionState {
    /// Complete, as attempt `attempt` of its producer wrote it.
    Complete {
        /// The producer's attempt.
        attempt: u32,
    },
    /// Was complete, but cannot be read any more.
    Lost {
        /// The producer's attempt that wrote it.
        attempt: u32,
    },
}

/// The blocking result partitions of one job.
#[derive(Debug, Default)]
pub struct PartitionTracker {
    partitions: HashMap<PartitionKey, PartitionState>,
}

impl PartitionTracker {
    /// Attempt `attempt` of its producer completed `partition`.
    pub fn completed(&mut self, partition: PartitionKey, attempt: u32) {
        self.partitions
            .insert(partition, PartitionState::Complete { attempt });
    }

    /// The state of `partition`, `None` when it is not written.
    pub fn state(&self, partition: &PartitionKey) -> Option<PartitionState> {
        self.partitions.get(partition).copied()
    }

    /// The attempt that wrote `partition`, lost or not: consumers read
    /// that attempt's files.
    pub fn attempt(&self, partition: &PartitionKey) -> Option<u32> {
        self.state(partition).map(|state| match state {
            PartitionState::Complete { attempt } | PartitionState::Lost { attempt } => attempt,
        })
    }

    /// Whether `partition` was written (consumers may be deployed; if it
    /// turns out lost, they fail and failover reruns its producer).
    pub fn is_written(&self, partition: &PartitionKey) -> bool {
        self.partitions.contains_key(partition)
    }

    /// Whether `partition` is known to be lost.
    pub fn is_lost(&self, partition: &PartitionKey) -> bool {
        matches!(self.state(partition), Some(PartitionState::Lost { .. }))
    }

    /// A consumer could not read `partition` as attempt `attempt` wrote
    /// it. Says nothing about a partition a later attempt wrote since.
    pub fn lost(&mut self, partition: PartitionKey, attempt: u32) {
        if self.attempt(&partition) == Some(attempt) {
            self.partitions
                .insert(partition, PartitionState::Lost { attempt });
        }
    }

    /// The producers of `partitions` run again: they are not written.
    pub fn forget<'a>(&mut self, partitions: impl IntoIterator<Item = &'a PartitionKey>) {
        for partition in partitions {
            self.partitions.remove(partition);
        }
    }

    /// Every written partition that is not known lost, with its attempt.
    pub fn complete(&self) -> impl Iterator<Item = (PartitionKey, u32)> + '_ {
        self.partitions
            .iter()
            .filter_map(|(key, state)| match state {
                PartitionState::Complete { attempt } => Some((*key, *attempt)),
                PartitionState::Lost { .. } => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(dataset: u32, producer: u32) -> PartitionKey {
        PartitionKey { dataset, producer }
    }

    #[test]
    fn partitions_go_from_written_to_lost_to_rewritten() {
        let mut tracker = PartitionTracker::default();
        let p = key(1, 0);
        assert!(!tracker.is_written(&p));
        tracker.completed(p, 0);
        assert_eq!(
            tracker.state(&p),
            Some(PartitionState::Complete { attempt: 0 })
        );
        assert_eq!(tracker.complete().collect::<Vec<_>>(), vec![(p, 0)]);
        tracker.lost(p, 0);
        assert!(tracker.is_lost(&p) && tracker.is_written(&p));
        assert_eq!(tracker.attempt(&p), Some(0), "consumers still name it");
        assert_eq!(tracker.complete().count(), 0);
        // Its producer reruns: forgotten, then written by the new attempt.
        tracker.forget([&p]);
        assert_eq!(tracker.state(&p), None);
        tracker.completed(p, 1);
        assert_eq!(
            tracker.state(&p),
            Some(PartitionState::Complete { attempt: 1 })
        );
    }

    #[test]
    fn a_loss_reported_about_an_older_attempt_changes_nothing() {
        let mut tracker = PartitionTracker::default();
        let p = key(2, 3);
        tracker.completed(p, 2);
        tracker.lost(p, 1);
        assert_eq!(
            tracker.state(&p),
            Some(PartitionState::Complete { attempt: 2 })
        );
        // Nor about a partition not written.
        tracker.lost(key(9, 9), 0);
        assert!(!tracker.is_written(&key(9, 9)));
    }
}
