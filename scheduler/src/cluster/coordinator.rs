//! The coordinator's resource manager: the workers registered, their
//! slots, and whether they are alive.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::broadcast;

use super::proto::WorkerStatus;
use super::{Heartbeats, VERSION};
use crate::{Error, Result};

/// A worker the coordinator knows.
#[derive(Debug)]
struct Worker {
    slots: u32,
    host: String,
    /// Where its own service listens.
    address: String,
    /// The slots the attempts deployed on it take.
    used: u32,
    last_heartbeat: Instant,
    lost: bool,
}

impl Worker {
    /// Its slots no attempt takes; none when it is lost.
    fn free(&self) -> u32 {
        if self.lost {
            0
        } else {
            self.slots.saturating_sub(self.used)
        }
    }
}

/// Where an attempt (or a region of them) was placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The worker's id.
    pub worker: String,
    /// Where its service listens.
    pub address: String,
}

/// The workers registered with a coordinator.
#[derive(Debug, Clone)]
pub struct ResourceManager {
    heartbeats: Heartbeats,
    workers: Arc<Mutex<Workers>>,
    /// Tells job masters of the workers declared lost.
    lost: broadcast::Sender<String>,
}

#[derive(Debug, Default)]
struct Workers {
    registered: u64,
    by_id: BTreeMap<String, Worker>,
}

impl ResourceManager {
    /// No worker yet; workers keep to `heartbeats`.
    pub fn new(heartbeats: Heartbeats) -> Self {
        Self {
            heartbeats,
            workers: Arc::default(),
            lost: broadcast::channel(64).0,
        }
    }

    /// How often workers send heartbeats, and when they are lost.
    pub fn heartbeats(&self) -> Heartbeats {
        self.heartbeats
    }

    /// The ids of the workers declared lost from now on.
    pub fn lost_workers(&self) -> broadcast::Receiver<String> {
        self.lost.subscribe()
    }

    /// Places `slots` slots, each on the alive worker with the most slots
    /// free at that moment, among those heard from within three heartbeat
    /// intervals when there are any (one that went silent is likely gone,
    /// though not yet declared lost); `None`, placing nothing, when the
    /// alive workers have fewer slots free.
    pub fn place(&self, slots: u32) -> Option<Vec<Placement>> {
        let mut workers = self.lock();
        let free: u32 = workers.by_id.values().map(Worker::free).sum();
        if free < slots {
            return None;
        }
        let recent = self.heartbeats.interval * 3;
        let placed = (0..slots)
            .map(|_| {
                let (id, worker) = workers
                    .by_id
                    .iter_mut()
                    .filter(|(_, w)| w.free() > 0)
                    .max_by_key(|(id, w)| {
                        (
                            w.last_heartbeat.elapsed() <= recent,
                            w.free(),
                            std::cmp::Reverse(registration_number(id)),
                        )
                    })
                    .expect("enough slots are free");
                worker.used += 1;
                Placement {
                    worker: id.clone(),
                    address: worker.address.clone(),
                }
            })
            .collect();
        Some(placed)
    }

    /// The slots free on the alive workers, and how many workers are alive.
    pub fn free_slots(&self) -> (u32, usize) {
        let workers = self.lock();
        let alive = workers.by_id.values().filter(|w| !w.lost).count();
        (workers.by_id.values().map(Worker::free).sum(), alive)
    }

    /// Gives back `slots` slots of worker `id`.
    pub fn release(&self, id: &str, slots: u32) {
        if let Some(worker) = self.lock().by_id.get_mut(id) {
            worker.used = worker.used.saturating_sub(slots);
        }
    }

    /// Whether worker `id` is registered and not lost.
    pub fn is_alive(&self, id: &str) -> bool {
        self.lock().by_id.get(id).is_some_and(|w| !w.lost)
    }

    fn lock(&self) -> MutexGuard<'_, Workers> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker of `version` offers `slots`: its id.
    ///
    /// # Errors
    /// When it runs another weir version, or offers no slot.
    pub fn register(&self, slots: u32, host: &str, address: &str, version: &str) -> Result<String> {
        if version != VERSION {
            return Err(Error::Cluster(format!(
                "a worker of weir {version} cannot join a coordinator of weir {VERSION}: run \
                 the same version on every machine"
            )));
        }
        if slots == 0 {
            return Err(Error::Cluster(
                "a worker offers at least one slot (--slots)".to_string(),
            ));
        }
        let mut workers = self.lock();
        workers.registered += 1;
        let id = format!("worker-{}", workers.registered);
        workers.by_id.insert(
            id.clone(),
            Worker {
                slots,
                host: host.to_string(),
                address: address.to_string(),
                used: 0,
                last_heartbeat: Instant::now(),
                lost: false,
            },
        );
        tracing::info!("{id} registered from {host} with {slots} slot(s)");
        Ok(id)
    }

    /// A heartbeat of worker `id`: whether the coordinator still counts it
    /// (a lost worker registers again).
    pub fn heartbeat(&self, id: &str) -> bool {
        match self.lock().by_id.get_mut(id) {
            Some(worker) if !worker.lost => {
                worker.last_heartbeat = Instant::now();
                true
            }
            _ => false,
        }
    }

    /// Declares lost, at `now`, the workers silent for longer than the
    /// heartbeat timeout; returns them.
    pub fn sweep(&self, now: Instant) -> Vec<String> {
        let timeout = self.heartbeats.timeout;
        let mut lost = Vec::new();
        for (id, worker) in &mut self.lock().by_id {
            if !worker.lost && now.duration_since(worker.last_heartbeat) > timeout {
                worker.lost = true;
                tracing::warn!(
                    "{id} on {} is lost: no heartbeat for {timeout:?} (its {} slot(s) are gone)",
                    worker.host,
                    worker.slots
                );
                lost.push(id.clone());
            }
        }
        for id in &lost {
            // Nobody listening: no job runs.
            let _ = self.lost.send(id.clone());
        }
        lost
    }

    /// Worker `id` leaves (it was told to stop): it counts as lost at
    /// once, and the attempts it ran fail over. Whether it was alive.
    pub fn deregister(&self, id: &str) -> bool {
        let left = match self.lock().by_id.get_mut(id) {
            Some(worker) if !worker.lost => {
                worker.lost = true;
                tracing::warn!(
                    "{id} on {} left (its {} slot(s) are gone)",
                    worker.host,
                    worker.slots
                );
                true
            }
            _ => false,
        };
        if left {
            let _ = self.lost.send(id.to_string());
        }
        left
    }

    /// The slots of the workers alive.
    pub fn slots(&self) -> u32 {
        self.lock()
            .by_id
            .values()
            .filter(|w| !w.lost)
            .map(|w| w.slots)
            .sum()
    }

    /// Every worker registered, alive or lost, in the order they came.
    pub fn workers(&self) -> Vec<WorkerStatus> {
        let now = Instant::now();
        let workers = self.lock();
        let mut list: Vec<(&String, &Worker)> = workers.by_id.iter().collect();
        list.sort_by_key(|(id, _)| registration_number(id));
        list.into_iter()
            .map(|(id, worker)| WorkerStatus {
                worker_id: id.clone(),
                slots: worker.slots,
                host: worker.host.clone(),
                state: if worker.lost { "lost" } else { "alive" }.to_string(),
                silent_ms: now.duration_since(worker.last_heartbeat).as_millis() as u64,
            })
            .collect()
    }
}

/// The order in which worker `id` registered (ids are `worker-N`).
fn registration_number(id: &str) -> u64 {
    id.strip_prefix("worker-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Declares silent workers lost, every half heartbeat interval, until the
/// process ends.
pub async fn sweep_forever(manager: ResourceManager) {
    let mut ticks = tokio::time::interval(manager.heartbeats.interval / 2);
    loop {
        ticks.tick().await;
        manager.sweep(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn manager() -> ResourceManager {
        ResourceManager::new(Heartbeats {
            interval: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
        })
    }

    /// A manager with workers of 2 and 3 slots, and their ids.
    fn two_workers() -> (ResourceManager, String, String) {
        let manager = manager();
        let a = manager
            .register(2, "a", "http://a:1", VERSION)
            .expect("registers");
        let b = manager
            .register(3, "b", "http://b:1", VERSION)
            .expect("registers");
        (manager, a, b)
    }

    #[test]
    fn silent_workers_are_lost_and_must_register_again() {
        let (manager, a, b) = two_workers();
        assert_eq!(manager.slots(), 5);
        assert!(manager.heartbeat(&a));
        let later = Instant::now() + Duration::from_secs(1);
        assert_eq!(manager.sweep(later), vec![a.clone(), b.clone()]);
        assert_eq!(manager.slots(), 0);
        assert!(manager.sweep(later).is_empty(), "lost once");
        assert!(!manager.heartbeat(&a), "a lost worker registers again");
        let again = manager
            .register(2, "a", "http://a:1", VERSION)
            .expect("registers");
        assert_ne!(again, a);
        let states: Vec<(String, String)> = manager
            .workers()
            .into_iter()
            .map(|w| (w.worker_id, w.state))
            .collect();
        assert_eq!(
            states,
            vec![
                (a, "lost".to_string()),
                (b, "lost".to_string()),
                (again, "alive".to_string())
            ]
        );
    }

    /// The workers `manager` places `slots` slots on, in order.
    fn placed(manager: &ResourceManager, slots: u32) -> Vec<String> {
        manager
            .place(slots)
            .expect("placed")
            .into_iter()
            .map(|p| p.worker)
            .collect()
    }

    #[test]
    fn slots_go_to_the_alive_worker_with_the_most_free_and_never_beyond() {
        let (manager, a, b) = two_workers();
        let first = manager.place(1).expect("placed");
        assert_eq!(
            (first[0].worker.as_str(), first[0].address.as_str()),
            (b.as_str(), "http://b:1")
        );
        // a and b have 2 free: the first registered, then b.
        assert_eq!(placed(&manager, 2), [a.clone(), b.clone()]);
        assert_eq!(manager.free_slots(), (2, 2));
        // Three slots do not fit in two: nothing is placed.
        assert!(manager.place(3).is_none());
        assert_eq!(placed(&manager, 2), [a.clone(), b.clone()]);
        assert!(manager.place(1).is_none(), "every slot is taken");
        manager.release(&b, 2);
        assert_eq!(placed(&manager, 1), std::slice::from_ref(&b));
        manager.sweep(Instant::now() + Duration::from_secs(1));
        assert_eq!(manager.free_slots(), (0, 0));
        assert!(manager.place(1).is_none(), "no worker is alive");
    }

    #[test]
    fn a_worker_gone_silent_gets_nothing_new_while_another_answers() {
        let (manager, a, b) = two_workers();
        let silent = Instant::now()
            .checked_sub(Duration::from_millis(400))
            .expect("the clock runs");
        manager.lock().by_id.get_mut(&b).expect("b").last_heartbeat = silent;
        // b has the most slots free, but has not been heard from for four
        // intervals (not yet the timeout): a, until it is full.
        assert_eq!(placed(&manager, 3), [a.clone(), a.clone(), b.clone()]);
        assert!(manager.is_alive(&b));
        // With a silent too, the one with the most slots free.
        manager.release(&a, 1);
        manager.lock().by_id.get_mut(&a).expect("a").last_heartbeat = silent;
        assert_eq!(placed(&manager, 1), [b]);
    }

    #[test]
    fn workers_of_another_version_or_without_slots_are_refused() {
        let manager = manager();
        let e = manager
            .register(2, "a", "http://a:1", "0.0.0-other")
            .expect_err("refused");
        assert!(e.to_string().contains("weir 0.0.0-other"), "{e}");
        assert!(e.to_string().contains("same version"), "{e}");
        let e = manager
            .register(0, "a", "http://a:1", VERSION)
            .expect_err("refused");
        assert!(e.to_string().contains("--slots"), "{e}");
        assert!(manager.workers().is_empty());
    }
}
