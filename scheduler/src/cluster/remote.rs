//! The task executor of a job on a coordinator: deploys each region's
//! attempts on a worker, and hears how they ended from the workers, or
//! that their worker was lost.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc};
use weir_engine::checkpoint::CheckpointAck;
use weir_exchange::event::Barrier;

use super::access::{Authorized, Token};
use super::coordinator::{Placement, ResourceManager};
use super::proto::worker_client::WorkerClient;
use super::proto::{self, task_end};
use super::wire;
use crate::deployment::AttemptPlan;
use crate::partition_tracker::PartitionHost;
use crate::task_executor::{TaskExecutor, TaskOutcome};

/// An attempt running on a worker.
struct Placed {
    attempt: u32,
    worker: String,
    /// The slots its region took there, given back with its last attempt.
    slots: u32,
    /// The attempts of its region still running (shared by them).
    region: Arc<std::sync::Mutex<usize>>,
}

/// An attempt that could not be deployed: subtask, attempt and why.
type Undeployed = (usize, u32, weir_engine::Error);

/// Why deploying on `worker` failed with `status`: a worker that refuses
/// the deployment (it plans the job otherwise) would refuse it again.
fn undeployed(worker: &str, status: &tonic::Status) -> weir_engine::Error {
    let refused = status.code() == tonic::Code::FailedPrecondition;
    weir_engine::Error::Remote {
        message: format!("deploying on {worker} failed: {}", status.message()),
        not_retryable: refused.then(|| "the worker cannot run the job as planned".to_string()),
        lost_partition: None,
    }
}

/// What a job's status says while regions of it wait for slots.
pub type SlotWait = Arc<std::sync::Mutex<Option<String>>>;

/// How often regions waiting for slots look again.
const SLOTS_AGAIN: Duration = Duration::from_millis(200);

/// A region's attempts waiting for the slots they need, since when.
struct Waiting {
    plans: Vec<AttemptPlan>,
    since: Instant,
}

/// What every deployment of a job carries.
#[derive(Debug, Clone)]
pub struct RemoteJob {
    /// The job's id.
    pub job_id: Arc<str>,
    /// The job as its client wrote it, for the workers to plan.
    pub spec: proto::JobSpec,
    /// What the coordinator's plan of it looks like.
    pub fingerprint: u64,
    /// For a job that takes checkpoints: their directory in its
    /// checkpoint store.
    pub checkpoint_job_dir: Option<String>,
    /// How long a region waits for the slots it needs before it fails.
    pub slot_request_timeout: Duration,
    /// Where the job's status learns that regions wait for slots.
    pub slot_wait: SlotWait,
}

/// Where a job's checkpoint acknowledgements go, once its job master
/// said (with its first deployment).
pub type AckSlot = Arc<std::sync::Mutex<Option<mpsc::UnboundedSender<CheckpointAck>>>>;

/// Runs a job's attempts on the workers of a coordinator.
pub struct RemoteExecutor {
    job: RemoteJob,
    resources: ResourceManager,
    acks: AckSlot,
    /// The attempts that run, by subtask.
    placed: HashMap<usize, Placed>,
    /// The workers that ran an attempt of the job, with their address.
    used: HashMap<String, String>,
    clients: HashMap<String, WorkerClient<Authorized>>,
    /// The secret its calls carry.
    token: Token,
    /// Ends of attempts, as workers report them.
    ended: mpsc::UnboundedReceiver<proto::TaskEnd>,
    /// Ends found here: deployments that failed, workers lost.
    failed: VecDeque<TaskOutcome>,
    /// Deployments that could not be made, and why.
    undeployed: (
        mpsc::UnboundedSender<Undeployed>,
        mpsc::UnboundedReceiver<Undeployed>,
    ),
    lost: broadcast::Receiver<String>,
    /// Regions waiting for slots, in the order they came.
    waiting: VecDeque<Waiting>,
}

impl RemoteExecutor {
    /// Runs `job` on the workers of `resources`; the ends of its attempts
    /// come through `ended`, and the workers' checkpoint acknowledgements
    /// go where `acks` says.
    pub fn new(
        job: RemoteJob,
        resources: ResourceManager,
        ended: mpsc::UnboundedReceiver<proto::TaskEnd>,
        acks: AckSlot,
    ) -> Self {
        Self {
            job,
            acks,
            lost: resources.lost_workers(),
            resources,
            placed: HashMap::new(),
            used: HashMap::new(),
            clients: HashMap::new(),
            token: Token::default(),
            ended,
            failed: VecDeque::new(),
            undeployed: mpsc::unbounded_channel(),
            waiting: VecDeque::new(),
        }
    }

    /// Calls the workers with `token`'s secret.
    pub fn with_token(self, token: Token) -> Self {
        Self { token, ..self }
    }

    fn client(&mut self, placement: &Placement) -> Option<WorkerClient<Authorized>> {
        if let Some(client) = self.clients.get(&placement.worker) {
            return Some(client.clone());
        }
        let endpoint = self.token.endpoint(&placement.address).ok()?;
        let client = self.token.worker(&endpoint);
        self.clients
            .insert(placement.worker.clone(), client.clone());
        Some(client)
    }

    /// Takes subtask `s` off its worker, giving its region's slots back
    /// with the region's last attempt.
    fn unplace(&mut self, s: usize) -> Option<Placed> {
        let placed = self.placed.remove(&s)?;
        let mut left = placed.region.lock().unwrap_or_else(|p| p.into_inner());
        *left -= 1;
        if *left == 0 {
            self.resources.release(&placed.worker, placed.slots);
        }
        drop(left);
        Some(placed)
    }

    /// Fails every attempt that ran on `worker`, which is lost.
    fn worker_lost(&mut self, worker: &str) {
        let on_it: Vec<usize> = self
            .placed
            .iter()
            .filter(|(_, p)| p.worker == worker)
            .map(|(s, _)| *s)
            .collect();
        for s in on_it {
            if let Some(placed) = self.unplace(s) {
                self.failed.push_back(TaskOutcome {
                    subtask: s,
                    attempt: placed.attempt,
                    host: None,
                    result: Err(weir_engine::Error::Remote {
                        message: format!(
                            "{worker} was lost (no heartbeat for the heartbeat timeout) while \
                             it ran this attempt"
                        ),
                        not_retryable: None,
                        lost_partition: None,
                    }),
                });
            }
        }
    }

    /// The outcome of attempt end `end`, if it is of an attempt that runs.
    fn outcome(&mut self, end: proto::TaskEnd) -> Option<TaskOutcome> {
        let s = end.subtask as usize;
        if self.placed.get(&s).is_none_or(|p| p.attempt != end.attempt) {
            return None;
        }
        let placed = self.unplace(s)?;
        let host = self.used.get(&placed.worker).map(|address| PartitionHost {
            worker: placed.worker.as_str().into(),
            address: address.as_str().into(),
        });
        let result = match end.result {
            Some(task_end::Result::Report(report)) => Ok(wire::report_from_wire(report)),
            Some(task_end::Result::Failure(failure)) => Err(wire::failure_from_wire(failure)),
            None => Err(weir_engine::Error::Remote {
                message: "the worker reported the attempt's end without saying how".to_string(),
                not_retryable: None,
                lost_partition: None,
            }),
        };
        Some(TaskOutcome {
            subtask: s,
            attempt: end.attempt,
            result,
            host,
        })
    }
}

impl RemoteExecutor {
    /// Fails the attempts of `plans`, for `why`.
    fn fail_all(&mut self, plans: Vec<AttemptPlan>, why: &str) {
        for plan in plans {
            self.failed.push_back(TaskOutcome {
                subtask: plan.subtask,
                attempt: plan.attempt,
                host: None,
                result: Err(weir_engine::Error::Remote {
                    message: why.to_string(),
                    not_retryable: None,
                    lost_partition: None,
                }),
            });
        }
    }

    /// Deploys `plans` on the worker of `placement`, where they take
    /// `slots` slots; the rest of their region runs on `peers`.
    fn deploy_on(
        &mut self,
        placement: Placement,
        mut plans: Vec<AttemptPlan>,
        slots: u32,
        peers: Vec<proto::Peer>,
    ) {
        let region = Arc::new(std::sync::Mutex::new(plans.len()));
        for plan in &plans {
            self.placed.insert(
                plan.subtask,
                Placed {
                    attempt: plan.attempt,
                    worker: placement.worker.clone(),
                    slots,
                    region: Arc::clone(&region),
                },
            );
        }
        self.used
            .insert(placement.worker.clone(), placement.address.clone());
        // What the worker itself holds, it reads from its own directory.
        for plan in &mut plans {
            for read in plan.reads.values_mut() {
                if read.served_by.as_deref() == Some(placement.address.as_str()) {
                    read.served_by = None;
                }
            }
        }
        let attempts: Vec<(usize, u32)> = plans.iter().map(|p| (p.subtask, p.attempt)).collect();
        let request = proto::Deployment {
            job_id: self.job.job_id.to_string(),
            spec: Some(self.job.spec.clone()),
            fingerprint: self.job.fingerprint,
            attempts: plans.iter().map(wire::attempt_to_wire).collect(),
            checkpoint_job_dir: self.job.checkpoint_job_dir.clone().unwrap_or_default(),
            peers,
        };
        let client = self.client(&placement);
        for plan in &mut plans {
            if let Some(acks) = plan.handles.acks.take() {
                let mut slot = self.acks.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(acks);
            }
            if let (Some(triggers), Some(client)) = (plan.handles.triggers.take(), &client) {
                let injection = proto::BarrierInjection {
                    job_id: self.job.job_id.to_string(),
                    subtask: plan.subtask as u32,
                    attempt: plan.attempt,
                    ..Default::default()
                };
                tokio::spawn(inject_barriers(triggers, client.clone(), injection));
            }
        }
        let failures = self.undeployed.0.clone();
        let Some(mut client) = client else {
            let status = tonic::Status::invalid_argument(format!(
                "its address {} is not a URL",
                placement.address
            ));
            for (s, attempt) in attempts {
                let _ = failures.send((s, attempt, undeployed(&placement.worker, &status)));
            }
            return;
        };
        let worker = placement.worker;
        tokio::spawn(async move {
            if let Err(status) = client.deploy(request).await {
                for (s, attempt) in attempts {
                    let _ = failures.send((s, attempt, undeployed(&worker, &status)));
                }
            }
        });
    }
}

/// Hands the barriers the job master injects at a source subtask to its
/// worker, until the attempt ends (the job master drops their sender).
async fn inject_barriers(
    mut triggers: mpsc::UnboundedReceiver<Barrier>,
    mut client: WorkerClient<Authorized>,
    injection: proto::BarrierInjection,
) {
    while let Some(barrier) = triggers.recv().await {
        let request = proto::BarrierInjection {
            checkpoint_id: barrier.checkpoint_id,
            timestamp_ms: barrier.timestamp_ms,
            ..injection.clone()
        };
        // A barrier that does not arrive fails its checkpoint (it is
        // never acknowledged): the job goes on to the next.
        if let Err(status) = client.inject_barrier(request).await {
            tracing::warn!(
                "could not inject checkpoint {}'s barrier at subtask {}: {status}",
                barrier.checkpoint_id,
                injection.subtask
            );
        }
    }
}

/// The slots attempts deployed together take: as many as the most
/// subtasks of one vertex among them (slot sharing).
fn slots_of(plans: &[AttemptPlan]) -> u32 {
    let mut per_vertex: HashMap<u32, u32> = HashMap::new();
    for plan in plans {
        *per_vertex.entry(plan.id.vertex.0).or_default() += 1;
    }
    per_vertex.into_values().max().unwrap_or(0)
}

impl RemoteExecutor {
    /// Deploys the regions waiting for slots, in the order they came, as
    /// long as the slots they need are free; fails those that waited for
    /// longer than the job allows. Tells the job's status what still
    /// waits.
    fn place_waiting(&mut self) {
        while let Some(first) = self.waiting.front() {
            let slots = slots_of(&first.plans).max(1);
            if let Some(placements) = self.resources.place(slots) {
                let region = self.waiting.pop_front().expect("a first region");
                self.deploy_region(region.plans, placements);
                continue;
            }
            let timeout = self.job.slot_request_timeout;
            if first.since.elapsed() < timeout {
                break;
            }
            let region = self.waiting.pop_front().expect("a first region");
            let (free, alive) = self.resources.free_slots();
            let why = format!(
                "no {slots} slot(s) free for {timeout:?} (slot.request.timeout): the {alive} \
                 alive worker(s) have {free}"
            );
            self.fail_all(region.plans, &why);
        }
        let note = self.waiting.front().map(|first| {
            let (free, alive) = self.resources.free_slots();
            let slots: u32 = self
                .waiting
                .iter()
                .map(|region| slots_of(&region.plans).max(1))
                .sum();
            format!(
                "waiting {} s for {slots} slot(s) for {} region(s): the {alive} alive \
                 worker(s) have {free} free; start workers, or lower the job's parallelism",
                first.since.elapsed().as_secs(),
                self.waiting.len()
            )
        });
        let mut told = self.job.slot_wait.lock().unwrap_or_else(|p| p.into_inner());
        if told.is_none()
            && let Some(note) = &note
        {
            tracing::warn!("job {}: {note}", self.job.job_id);
        }
        *told = note;
    }

    /// Deploys the attempts of a region on the slots `slot_workers` took
    /// for it.
    fn deploy_region(&mut self, plans: Vec<AttemptPlan>, slot_workers: Vec<Placement>) {
        // Slot k of the region holds subtask k of each of its vertices
        // (slot sharing).
        let slots = slot_workers.len();
        let mut groups: BTreeMap<String, (Placement, Vec<AttemptPlan>)> = BTreeMap::new();
        let mut everyone = Vec::new();
        for plan in plans {
            let placement = &slot_workers[plan.id.index as usize % slots];
            everyone.push((plan.subtask, plan.attempt, placement.clone()));
            groups
                .entry(placement.worker.clone())
                .or_insert_with(|| (placement.clone(), Vec::new()))
                .1
                .push(plan);
        }
        for (worker, (placement, group)) in groups {
            let taken = slot_workers.iter().filter(|p| p.worker == worker).count();
            let peers = everyone
                .iter()
                .filter(|(_, _, p)| p.worker != worker)
                .map(|(subtask, attempt, p)| proto::Peer {
                    subtask: *subtask as u32,
                    attempt: *attempt,
                    address: p.address.clone(),
                })
                .collect();
            self.deploy_on(placement, group, taken as u32, peers);
        }
    }
}

#[async_trait]
impl TaskExecutor for RemoteExecutor {
    fn deploy(&mut self, plans: Vec<AttemptPlan>) {
        self.waiting.push_back(Waiting {
            plans,
            since: Instant::now(),
        });
        self.place_waiting();
    }

    fn cancel(&mut self, subtask: usize) {
        for region in &mut self.waiting {
            region.plans.retain(|plan| plan.subtask != subtask);
        }
        self.waiting.retain(|region| !region.plans.is_empty());
        let Some(placed) = self.unplace(subtask) else {
            return;
        };
        let Some(address) = self.used.get(&placed.worker).cloned() else {
            return;
        };
        let placement = Placement {
            worker: placed.worker,
            address,
        };
        if let Some(mut client) = self.client(&placement) {
            let request = proto::CancelTasks {
                job_id: self.job.job_id.to_string(),
                subtasks: vec![subtask as u32],
            };
            tokio::spawn(async move {
                // A worker that cannot be reached runs nothing of the job
                // for long: it is lost, or finds its coordinator lost.
                let _ = client.cancel(request).await;
            });
        }
    }

    async fn cancel_all(&mut self) {
        self.waiting.clear();
        self.place_waiting();
        let running: Vec<usize> = self.placed.keys().copied().collect();
        for s in running {
            self.unplace(s);
        }
        let workers: BTreeSet<(String, String)> = self.used.drain().collect();
        let job = proto::JobRef {
            job_id: self.job.job_id.to_string(),
        };
        let releases = workers.into_iter().filter_map(|(worker, address)| {
            let mut client = self.client(&Placement { worker, address })?;
            let job = job.clone();
            Some(async move {
                let _ = tokio::time::timeout(Duration::from_secs(5), client.release_job(job)).await;
            })
        });
        futures::future::join_all(releases.collect::<Vec<_>>()).await;
    }

    fn is_idle(&self) -> bool {
        self.placed.is_empty() && self.failed.is_empty() && self.waiting.is_empty()
    }

    fn waiting(&self) -> usize {
        self.waiting.iter().map(|region| region.plans.len()).sum()
    }

    fn has_lost(&self, worker: &str) -> bool {
        !self.resources.is_alive(worker)
    }

    async fn next_outcome(&mut self) -> Option<TaskOutcome> {
        loop {
            // Slots given back by attempts that ended, or brought by
            // workers that registered.
            self.place_waiting();
            if let Some(outcome) = self.failed.pop_front() {
                return Some(outcome);
            }
            tokio::select! {
                () = tokio::time::sleep(SLOTS_AGAIN), if !self.waiting.is_empty() => {}
                Some(end) = self.ended.recv() => {
                    if let Some(outcome) = self.outcome(end) {
                        return Some(outcome);
                    }
                }
                Some((s, attempt, error)) = self.undeployed.1.recv() => {
                    if self.placed.get(&s).is_some_and(|p| p.attempt == attempt) {
                        self.unplace(s);
                        return Some(TaskOutcome {
                            subtask: s,
                            attempt,
                            result: Err(error),
                            host: None,
                        });
                    }
                }
                lost = self.lost.recv() => match lost {
                    Ok(worker) => self.worker_lost(&worker),
                    // Missed some: fail what runs on any worker now lost.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let workers: BTreeSet<String> =
                            self.placed.values().map(|p| p.worker.clone()).collect();
                        for worker in workers {
                            if !self.resources.is_alive(&worker) {
                                self.worker_lost(&worker);
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_engine::graph::VertexId;

    use super::*;
    use crate::SubtaskId;
    use crate::cluster::Heartbeats;
    use crate::deployment::AttemptHandles;

    /// Attempt 0 of subtask `s` of a one-vertex region.
    fn plan(s: usize) -> AttemptPlan {
        AttemptPlan {
            subtask: s,
            id: SubtaskId {
                vertex: VertexId(0),
                index: s as u32,
            },
            attempt: 0,
            reads: Default::default(),
            memory_budget: 1 << 20,
            restore: None,
            handles: AttemptHandles::default(),
        }
    }

    #[tokio::test]
    async fn a_region_waits_for_slots_then_fails_when_none_come_in_time() {
        let resources = ResourceManager::new(Heartbeats {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
        });
        let slot_wait = SlotWait::default();
        let job = RemoteJob {
            job_id: "job-1".into(),
            spec: proto::JobSpec::default(),
            fingerprint: 0,
            checkpoint_job_dir: None,
            slot_request_timeout: Duration::from_millis(300),
            slot_wait: Arc::clone(&slot_wait),
        };
        let (_ends, ended) = mpsc::unbounded_channel();
        let mut executor = RemoteExecutor::new(job, resources, ended, AckSlot::default());
        executor.deploy(vec![plan(0), plan(1)]);
        assert!(!executor.is_idle(), "a waiting region is not idle");
        assert_eq!(executor.waiting(), 2);
        let note = slot_wait.lock().expect("a note").clone();
        assert!(
            note.as_deref()
                .is_some_and(|n| n
                    .contains("for 2 slot(s) for 1 region(s): the 0 alive worker(s) have 0 free")),
            "{note:?}"
        );
        let waited = Instant::now();
        let mut failed = Vec::new();
        while failed.len() < 2 {
            let outcome = executor.next_outcome().await.expect("an outcome");
            let error = outcome.result.expect_err("failed");
            assert!(
                error.to_string().contains("no 2 slot(s) free for 300ms"),
                "{error}"
            );
            assert!(error.why_not_retryable().is_none(), "it may restart");
            failed.push(outcome.subtask);
        }
        assert!(waited.elapsed() >= Duration::from_millis(250));
        failed.sort_unstable();
        assert_eq!(failed, [0, 1]);
        assert!(executor.is_idle());
        assert_eq!(*slot_wait.lock().expect("a note"), None);
    }
}
