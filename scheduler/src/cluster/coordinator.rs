//! The coordinator's resource manager: the workers registered, their
//! slots, and whether they are alive.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::proto::coordinator_server::{Coordinator, CoordinatorServer};
use super::proto::{
    HeartbeatReply, ListWorkersRequest, RegisterWorker, Registered, WorkerHeartbeat, WorkerList,
    WorkerStatus,
};
use super::{Heartbeats, VERSION};
use crate::{Error, Result};

/// A worker the coordinator knows.
#[derive(Debug)]
struct Worker {
    slots: u32,
    host: String,
    last_heartbeat: Instant,
    lost: bool,
}

/// The workers registered with a coordinator.
#[derive(Debug, Clone)]
pub struct ResourceManager {
    heartbeats: Heartbeats,
    workers: Arc<Mutex<Workers>>,
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
        }
    }

    fn lock(&self) -> MutexGuard<'_, Workers> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A worker of `version` offers `slots`: its id.
    ///
    /// # Errors
    /// When it runs another weir version, or offers no slot.
    pub fn register(&self, slots: u32, host: &str, version: &str) -> Result<String> {
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
        lost
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
        list.sort_by_key(|(id, _)| id[7..].parse::<u64>().unwrap_or(u64::MAX));
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

#[tonic::async_trait]
impl Coordinator for ResourceManager {
    async fn register(
        &self,
        request: Request<RegisterWorker>,
    ) -> std::result::Result<Response<Registered>, Status> {
        let RegisterWorker {
            slots,
            version,
            host,
        } = request.into_inner();
        let worker_id = ResourceManager::register(self, slots, &host, &version)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        Ok(Response::new(Registered {
            worker_id,
            heartbeat_interval_ms: self.heartbeats.interval.as_millis() as u64,
            heartbeat_timeout_ms: self.heartbeats.timeout.as_millis() as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<WorkerHeartbeat>,
    ) -> std::result::Result<Response<HeartbeatReply>, Status> {
        let known = ResourceManager::heartbeat(self, &request.into_inner().worker_id);
        Ok(Response::new(HeartbeatReply { known }))
    }

    async fn list_workers(
        &self,
        _: Request<ListWorkersRequest>,
    ) -> std::result::Result<Response<WorkerList>, Status> {
        Ok(Response::new(WorkerList {
            workers: self.workers(),
        }))
    }
}

/// Serves a coordinator on `listener` until the process ends, declaring
/// silent workers lost as it goes.
///
/// # Errors
/// When the server stops on an error.
pub async fn serve(listener: tokio::net::TcpListener, heartbeats: Heartbeats) -> Result<()> {
    let manager = ResourceManager::new(heartbeats);
    let sweeper = manager.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(heartbeats.interval / 2);
        loop {
            ticks.tick().await;
            sweeper.sweep(Instant::now());
        }
    });
    Server::builder()
        .add_service(CoordinatorServer::new(manager))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await
        .map_err(|e| Error::Cluster(format!("the coordinator stopped: {e}")))
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

    #[test]
    fn silent_workers_are_lost_and_must_register_again() {
        let manager = manager();
        let a = manager.register(2, "a", VERSION).expect("registers");
        let b = manager.register(3, "b", VERSION).expect("registers");
        assert_eq!(manager.slots(), 5);
        assert!(manager.heartbeat(&a));
        let later = Instant::now() + Duration::from_secs(1);
        assert_eq!(manager.sweep(later), vec![a.clone(), b.clone()]);
        assert_eq!(manager.slots(), 0);
        assert!(manager.sweep(later).is_empty(), "lost once");
        assert!(!manager.heartbeat(&a), "a lost worker registers again");
        let again = manager.register(2, "a", VERSION).expect("registers");
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

    #[test]
    fn workers_of_another_version_or_without_slots_are_refused() {
        let manager = manager();
        let e = manager
            .register(2, "a", "0.0.0-other")
            .expect_err("refused");
        assert!(e.to_string().contains("weir 0.0.0-other"), "{e}");
        assert!(e.to_string().contains("same version"), "{e}");
        let e = manager.register(0, "a", VERSION).expect_err("refused");
        assert!(e.to_string().contains("--slots"), "{e}");
        assert!(manager.workers().is_empty());
    }
}
