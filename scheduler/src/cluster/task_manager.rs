//! A worker's own service: it plans each job it is given (checking that
//! its plan is the coordinator's), runs the attempts deployed on it in
//! this process, and reports how each ended to the coordinator.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tonic::{Request, Response, Status};
use weir_engine::checkpoint::CheckpointAck;
use weir_exchange::ShuffleRoot;
use weir_exchange::checkpoint_store::CheckpointStore;
use weir_exchange::event::Barrier;
use weir_exchange::remote::ExchangeRegistry;

use super::access::{Authorized, Token};
use super::proto::coordinator_client::CoordinatorClient;
use super::proto::worker_server::Worker;
use super::proto::{self, task_end};
use super::rows::RowForwarder;
use super::{JobPlanner, fingerprint, plan_part, wire};
use crate::deployment::{AttemptPlan, JobRuntime, Peer, RemoteWiring};
use crate::execution_graph::ExecutionGraph;
use crate::task_executor::{InProcessExecutor, TaskExecutor, TaskOutcome};

/// What a job's tasks on this worker are told.
enum Command {
    /// Attempts to run, and how they reach the rest of their region.
    Deploy(Vec<AttemptPlan>, Option<RemoteWiring>),
    Cancel(Vec<usize>),
}

/// A job with attempts deployed on this worker.
struct JobTasks {
    fingerprint: u64,
    commands: mpsc::UnboundedSender<Command>,
    /// The options of its stores (for the savepoints it resumes from).
    store_options: BTreeMap<String, String>,
    /// Where its tasks acknowledge checkpoints, when it takes them.
    acks: Option<mpsc::UnboundedSender<CheckpointAck>>,
    /// The barriers' way into its source subtasks, with their attempts.
    triggers: Triggers,
}

type Triggers = Arc<Mutex<HashMap<usize, (u32, mpsc::UnboundedSender<Barrier>)>>>;

impl JobTasks {
    /// The plans of `attempts`, with the handles their tasks take part in
    /// checkpoints through.
    fn plans(&self, attempts: Vec<proto::AttemptPlan>) -> Result<Vec<AttemptPlan>, Status> {
        let mut plans = Vec::new();
        for attempt in attempts {
            let triggered = attempt.triggered;
            let mut plan = wire::attempt_from_wire(attempt, &self.store_options)
                .map_err(Status::invalid_argument)?;
            plan.handles.acks = self.acks.clone();
            if triggered {
                let (tx, rx) = mpsc::unbounded_channel();
                self.triggers
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(plan.subtask, (plan.attempt, tx));
                plan.handles.triggers = Some(rx);
            }
            plans.push(plan);
        }
        Ok(plans)
    }
}

/// The attempts a worker runs, job by job.
#[derive(Clone)]
pub struct TaskManager {
    planner: Arc<dyn JobPlanner>,
    coordinator: CoordinatorClient<Authorized>,
    /// The id the coordinator gave this worker (empty until it did).
    worker_id: Arc<Mutex<String>>,
    jobs: Arc<tokio::sync::Mutex<HashMap<String, JobTasks>>>,
    /// The outgoing remote channels of its attempts.
    exchange: Arc<ExchangeRegistry>,
    /// The secret of calls to other workers' exchange services.
    token: Token,
    /// Its own shuffle directory, for jobs whose shuffle root is not
    /// shared by every worker.
    shuffle: ShuffleRoot,
}

impl TaskManager {
    /// Runs jobs planned by `planner`, reporting to `coordinator`; calls
    /// other workers with `token`'s secret; writes the blocking partitions
    /// of jobs without a shared shuffle root under `shuffle`.
    pub fn new(
        planner: Arc<dyn JobPlanner>,
        coordinator: CoordinatorClient<Authorized>,
        token: Token,
        shuffle: ShuffleRoot,
    ) -> Self {
        Self {
            planner,
            coordinator,
            worker_id: Arc::default(),
            jobs: Arc::default(),
            exchange: Arc::default(),
            token,
            shuffle,
        }
    }

    /// Where its attempts offer their outgoing remote channels (served by
    /// the worker's exchange service).
    pub fn exchange(&self) -> Arc<ExchangeRegistry> {
        Arc::clone(&self.exchange)
    }

    /// The id the coordinator gave this worker (empty before it did).
    pub fn worker_id(&self) -> String {
        self.worker_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the id the coordinator gave this worker.
    pub fn registered_as(&self, id: &str) {
        *self.worker_id.lock().unwrap_or_else(|p| p.into_inner()) = id.to_string();
    }

    /// Stops every attempt of every job: the coordinator that deployed
    /// them is gone, or forgot this worker.
    pub async fn cancel_everything(&self) {
        let dropped = std::mem::take(&mut *self.jobs.lock().await);
        if !dropped.is_empty() {
            tracing::warn!(
                "cancelling the attempts of {} job(s): their coordinator is gone",
                dropped.len()
            );
        }
    }

    /// Deploys the attempts of `deployment`, planning its job first when
    /// they are its first here.
    async fn deploy_attempts(&self, deployment: proto::Deployment) -> Result<(), Status> {
        let mut jobs = self.jobs.lock().await;
        let job_id = deployment.job_id.clone();
        let job = match jobs.entry(job_id.clone()) {
            std::collections::hash_map::Entry::Occupied(job) => job.into_mut(),
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(self.start_job(&deployment).await?)
            }
        };
        if job.fingerprint != deployment.fingerprint {
            return Err(differs(&job_id));
        }
        let plans = job.plans(deployment.attempts)?;
        let wiring = Some(RemoteWiring {
            registry: Arc::clone(&self.exchange),
            peers: deployment
                .peers
                .into_iter()
                .map(|peer| {
                    let at = Peer {
                        address: peer.address,
                        attempt: peer.attempt,
                    };
                    (peer.subtask as usize, at)
                })
                .collect(),
            access: self.token.remote_access(),
        });
        job.commands
            .send(Command::Deploy(plans, wiring))
            .map_err(|_| Status::unavailable("the job's tasks stopped"))
    }

    /// Plans the job of `deployment` and starts running its tasks here.
    async fn start_job(&self, deployment: &proto::Deployment) -> Result<JobTasks, Status> {
        let job_id = deployment.job_id.as_str();
        let expected = deployment.fingerprint;
        let spec = deployment
            .spec
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("a deployment without its job"))?;
        let rows = Arc::new(RowForwarder::new(job_id, self.coordinator.clone()));
        let part = plan_part(self.planner.as_ref(), spec, rows)
            .await
            .map_err(|e| {
                Status::failed_precondition(format!("job {job_id} does not plan here: {e}"))
            })?;
        let (job, config) = (part.job, part.config);
        if fingerprint(&job) != expected {
            return Err(differs(job_id));
        }
        let graph = ExecutionGraph::try_new(Arc::new(job))
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        // A shared root every worker reads; else this worker's own, whose
        // partitions it serves to the others (the job's local directory,
        // a place on the coordinator's machine, is not even created here).
        let precondition = |e: weir_exchange::Error| Status::failed_precondition(e.to_string());
        let (url, options) = (&config.shuffle_root, &config.store_options);
        let root = match ShuffleRoot::names_shared(url, options).map_err(precondition)? {
            true => ShuffleRoot::try_new(url, options).map_err(precondition)?,
            false => self.shuffle.clone(),
        };
        let checkpoints = match deployment.checkpoint_job_dir.as_str() {
            "" => None,
            dir => {
                let store = CheckpointStore::try_new(&config.checkpoint_dir, &config.store_options)
                    .map_err(|e| Status::failed_precondition(e.to_string()))?;
                Some((store, dir.to_string()))
            }
        };
        let acks = checkpoints.as_ref().map(|_| {
            let (acks, taken) = mpsc::unbounded_channel();
            tokio::spawn(self.reporter(job_id).acknowledge(taken));
            acks
        });
        let runtime = JobRuntime::new(job_id.into(), Arc::new(graph), root, &config, checkpoints);
        let (commands, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run_job(runtime, receiver, self.reporter(job_id)));
        Ok(JobTasks {
            fingerprint: expected,
            commands,
            store_options: config.store_options.clone(),
            acks,
            triggers: Triggers::default(),
        })
    }

    fn reporter(&self, job_id: &str) -> Reporter {
        Reporter {
            job_id: job_id.to_string(),
            worker_id: Arc::clone(&self.worker_id),
            coordinator: self.coordinator.clone(),
        }
    }
}

fn differs(job_id: &str) -> Status {
    Status::failed_precondition(format!(
        "this worker plans job {job_id} differently from the coordinator: run the same weir \
         version, with the same connectors, everywhere"
    ))
}

#[tonic::async_trait]
impl Worker for TaskManager {
    async fn deploy(
        &self,
        request: Request<proto::Deployment>,
    ) -> Result<Response<proto::Deployed>, Status> {
        self.deploy_attempts(request.into_inner()).await?;
        Ok(Response::new(proto::Deployed {}))
    }

    async fn cancel(
        &self,
        request: Request<proto::CancelTasks>,
    ) -> Result<Response<proto::Cancelled>, Status> {
        let request = request.into_inner();
        if let Some(job) = self.jobs.lock().await.get(&request.job_id) {
            let subtasks = request.subtasks.iter().map(|&s| s as usize).collect();
            let _ = job.commands.send(Command::Cancel(subtasks));
        }
        Ok(Response::new(proto::Cancelled {}))
    }

    async fn inject_barrier(
        &self,
        request: Request<proto::BarrierInjection>,
    ) -> Result<Response<proto::BarrierInjected>, Status> {
        let injection = request.into_inner();
        let jobs = self.jobs.lock().await;
        let triggers = jobs
            .get(&injection.job_id)
            .map(|job| job.triggers.lock().unwrap_or_else(|p| p.into_inner()));
        let sent = triggers
            .as_ref()
            .and_then(|t| t.get(&(injection.subtask as usize)))
            .filter(|(attempt, _)| *attempt == injection.attempt)
            .is_some_and(|(_, trigger)| {
                trigger
                    .send(Barrier {
                        checkpoint_id: injection.checkpoint_id,
                        timestamp_ms: injection.timestamp_ms,
                    })
                    .is_ok()
            });
        if !sent {
            return Err(Status::not_found(format!(
                "attempt {} of subtask {} of job {} does not run here",
                injection.attempt, injection.subtask, injection.job_id
            )));
        }
        Ok(Response::new(proto::BarrierInjected {}))
    }

    async fn release_job(
        &self,
        request: Request<proto::JobRef>,
    ) -> Result<Response<proto::Released>, Status> {
        // Dropping its commands stops what still runs of it.
        let job = request.into_inner().job_id;
        self.jobs.lock().await.remove(&job);
        self.exchange.forget_job(&job);
        Ok(Response::new(proto::Released {}))
    }
}

/// Runs the attempts of one job deployed here until the job is released,
/// then removes its spill files here, and its partitions when they are in
/// this worker's own directory.
async fn run_job(
    runtime: JobRuntime,
    mut commands: mpsc::UnboundedReceiver<Command>,
    reporter: Reporter,
) {
    let spill_dir = runtime.spill_dir.clone();
    let own_partitions = (!runtime.root.is_shared()).then(|| runtime.root.clone());
    let runtime = Arc::new(runtime);
    let mut executor = InProcessExecutor::new(Arc::clone(&runtime));
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Deploy(plans, wiring)) => {
                    tracing::info!(
                        "running {} attempt(s) of job {}",
                        plans.len(),
                        reporter.job_id
                    );
                    for attempt in runtime.materialize_with(plans, wiring.as_ref()) {
                        executor.start(attempt);
                    }
                }
                Some(Command::Cancel(subtasks)) => {
                    for s in subtasks {
                        executor.cancel(s);
                    }
                }
                None => {
                    executor.cancel_all().await;
                    if let Some(root) = own_partitions
                        && let Err(e) = root.remove_job(&reporter.job_id).await
                    {
                        tracing::warn!(
                            "could not remove the partitions of job {}: {e}",
                            reporter.job_id
                        );
                    }
                    if spill_dir.exists()
                        && let Err(e) = tokio::fs::remove_dir_all(&spill_dir).await
                    {
                        tracing::warn!(
                            "could not remove the spill files at {}: {e}",
                            spill_dir.display()
                        );
                    }
                    return;
                }
            },
            outcome = executor.next_outcome(), if !executor.is_idle() => {
                if let Some(outcome) = outcome {
                    tokio::spawn(reporter.clone().report(outcome));
                }
            }
        }
    }
}

/// Tells the coordinator how attempts of a job ended.
#[derive(Clone)]
struct Reporter {
    job_id: String,
    worker_id: Arc<Mutex<String>>,
    coordinator: CoordinatorClient<Authorized>,
}

impl Reporter {
    /// Hands the checkpoint acknowledgements of the job's tasks to the
    /// coordinator, in order, until the job is released here.
    async fn acknowledge(mut self, mut acks: mpsc::UnboundedReceiver<CheckpointAck>) {
        while let Some(ack) = acks.recv().await {
            let ack = wire::ack_to_wire(&self.job_id, &ack);
            // One not delivered fails its checkpoint: the job goes on.
            if let Err(status) = self.coordinator.acknowledge_checkpoint(ack).await {
                tracing::warn!(
                    "could not acknowledge a checkpoint of job {}: {status}",
                    self.job_id
                );
            }
        }
    }

    /// Reports `outcome`, trying again for a while when the coordinator
    /// does not answer (past that, the coordinator counts this worker
    /// lost, and its attempts with it).
    async fn report(mut self, outcome: TaskOutcome) {
        let result = match &outcome.result {
            Ok(report) => task_end::Result::Report(wire::report_to_wire(report)),
            Err(error) => task_end::Result::Failure(wire::failure_to_wire(error)),
        };
        let end = proto::TaskEnd {
            worker_id: self
                .worker_id
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            job_id: self.job_id.clone(),
            subtask: outcome.subtask as u32,
            attempt: outcome.attempt,
            result: Some(result),
        };
        for _ in 0..20 {
            match self.coordinator.task_ended(end.clone()).await {
                Ok(_) => return,
                Err(status) => {
                    tracing::warn!(
                        "could not report the end of subtask {} of job {}: {status}",
                        end.subtask,
                        end.job_id
                    );
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }
}
