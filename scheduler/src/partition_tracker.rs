//! The partition tracker: which result partitions of a job's blocking
//! edges exist, written by which attempt of their producer, and which of
//! them are known to be lost (their files gone or unreadable), so that
//! failover reruns their producers (failover rule 2).
//!
//! On a cluster whose shuffle root is each worker's own directory, a
//! partition lives on the worker that wrote it (its [`PartitionHost`]),
//! and is lost with it.

use std::collections::HashMap;
use std::sync::Arc;

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

/// The worker holding a partition in its own shuffle directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionHost {
    /// The worker's id.
    pub worker: Arc<str>,
    /// Where its exchange service serves the partition, `http://HOST:PORT`.
    pub address: Arc<str>,
}

/// Where a consumer reads a partition: which attempt of its producer, and
/// from which process when not from the job's shuffle root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRead {
    /// The attempt of its producer that wrote it.
    pub attempt: u32,
    /// The exchange service serving it (`http://HOST:PORT`), when it is
    /// in another process's own shuffle directory.
    pub served_by: Option<Arc<str>>,
}

/// The blocking result partitions of one job.
#[derive(Debug, Default)]
pub struct PartitionTracker {
    partitions: HashMap<PartitionKey, PartitionState>,
    /// The worker holding each partition that lives on one.
    hosts: HashMap<PartitionKey, PartitionHost>,
}

impl PartitionTracker {
    /// Attempt `attempt` of its producer completed `partition`, which
    /// lives on `host` when it stays on the worker that wrote it.
    pub fn completed(
        &mut self,
        partition: PartitionKey,
        attempt: u32,
        host: Option<PartitionHost>,
    ) {
        self.partitions
            .insert(partition, PartitionState::Complete { attempt });
        match host {
            Some(host) => self.hosts.insert(partition, host),
            None => self.hosts.remove(&partition),
        };
    }

    /// Where consumers read `partition`, `None` when it is not written.
    pub fn read(&self, partition: &PartitionKey) -> Option<PartitionRead> {
        Some(PartitionRead {
            attempt: self.attempt(partition)?,
            served_by: self
                .hosts
                .get(partition)
                .map(|host| Arc::clone(&host.address)),
        })
    }

    /// The worker holding `partition`, when one does.
    pub fn host(&self, partition: &PartitionKey) -> Option<&PartitionHost> {
        self.hosts.get(partition)
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

    /// Every complete partition held by `worker` is lost: a worker that
    /// cannot serve one of its partitions is taken to have lost them all.
    pub fn lost_on(&mut self, worker: &str) {
        let on_it: Vec<PartitionKey> = self
            .hosts
            .iter()
            .filter(|(_, host)| &*host.worker == worker)
            .map(|(key, _)| *key)
            .collect();
        for key in on_it {
            if let Some(PartitionState::Complete { attempt }) = self.state(&key) {
                self.lost(key, attempt);
            }
        }
    }

    /// The producers of `partitions` run again: they are not written.
    pub fn forget<'a>(&mut self, partitions: impl IntoIterator<Item = &'a PartitionKey>) {
        for partition in partitions {
            self.partitions.remove(partition);
            self.hosts.remove(partition);
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
        tracker.completed(p, 0, None);
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
        tracker.completed(p, 1, None);
        assert_eq!(
            tracker.state(&p),
            Some(PartitionState::Complete { attempt: 1 })
        );
    }

    #[test]
    fn a_loss_reported_about_an_older_attempt_changes_nothing() {
        let mut tracker = PartitionTracker::default();
        let p = key(2, 3);
        tracker.completed(p, 2, None);
        tracker.lost(p, 1);
        assert_eq!(
            tracker.state(&p),
            Some(PartitionState::Complete { attempt: 2 })
        );
        // Nor about a partition not written.
        tracker.lost(key(9, 9), 0);
        assert!(!tracker.is_written(&key(9, 9)));
    }

    #[test]
    fn a_partition_on_a_worker_is_read_from_it_until_rewritten_elsewhere() {
        let mut tracker = PartitionTracker::default();
        let host = |worker: &str| PartitionHost {
            worker: worker.into(),
            address: format!("http://{worker}:1").into(),
        };
        let p = key(3, 0);
        tracker.completed(p, 0, Some(host("w1")));
        assert_eq!(tracker.host(&p), Some(&host("w1")));
        assert_eq!(
            tracker.read(&p),
            Some(PartitionRead {
                attempt: 0,
                served_by: Some("http://w1:1".into())
            })
        );
        // Rewritten on the shared root: read from there.
        tracker.forget([&p]);
        assert_eq!(tracker.host(&p), None);
        tracker.completed(p, 1, None);
        assert_eq!(
            tracker.read(&p),
            Some(PartitionRead {
                attempt: 1,
                served_by: None
            })
        );
        assert_eq!(tracker.read(&key(8, 8)), None);
        // What one worker holds is lost together.
        let (q, r) = (key(3, 1), key(3, 2));
        tracker.completed(q, 0, Some(host("w2")));
        tracker.completed(r, 0, Some(host("w3")));
        tracker.lost_on("w2");
        assert!(tracker.is_lost(&q) && !tracker.is_lost(&r) && !tracker.is_lost(&p));
    }
}
