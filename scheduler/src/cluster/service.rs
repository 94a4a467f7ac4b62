//! The coordinator's gRPC service: workers register and report through
//! it, clients submit, watch, list and cancel jobs.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::access::{MAX_MESSAGE_BYTES, Token};
use super::coordinator::{ResourceManager, sweep_forever};
use super::dispatcher::{Dispatcher, JobState};
use super::proto::coordinator_server::{Coordinator, CoordinatorServer};
use super::proto::{self, JobUpdate, Setting};
use super::recovery::JobRecords;
use super::{Heartbeats, JobPlanner, config_of};
use crate::{Error, Result, SavepointTarget};

/// How often a watched job's progress is sent.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// A coordinator: its resource manager and its dispatcher.
#[derive(Clone)]
pub struct CoordinatorService {
    resources: ResourceManager,
    dispatcher: Dispatcher,
}

impl CoordinatorService {
    /// A coordinator as `config` says, planning jobs with `planner`.
    ///
    /// # Errors
    /// Its state directory is not a URL of a store weir reads.
    pub fn new(config: CoordinatorConfig, planner: Arc<dyn JobPlanner>) -> Result<Self> {
        let resources = ResourceManager::new(config.heartbeats);
        let mut dispatcher = Dispatcher::new(planner, resources.clone(), config.token);
        if let Some(url) = &config.state {
            let options = config_of(&config.settings).map_err(Error::Cluster)?;
            dispatcher = dispatcher.with_records(JobRecords::try_new(url, &options.store_options)?);
        }
        Ok(Self {
            dispatcher: dispatcher.with_settings(config.settings),
            resources,
        })
    }
}

/// How a coordinator runs.
#[derive(Debug, Clone, Default)]
pub struct CoordinatorConfig {
    /// How often its workers send heartbeats, and when they are lost.
    pub heartbeats: Heartbeats,
    /// The secret every call must carry, when it has one.
    pub token: Token,
    /// The settings of its own configuration (file and environment):
    /// every job runs with them, under the settings of its client.
    pub settings: Vec<Setting>,
    /// Where it records its running jobs (a directory or object store
    /// URL), to resume them when started again with the same.
    pub state: Option<String>,
}

/// Serves a coordinator on `listener` until the process ends, declaring
/// silent workers lost as it goes.
///
/// # Errors
/// When the server stops on an error.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: CoordinatorConfig,
    planner: Arc<dyn JobPlanner>,
) -> Result<()> {
    let check = config.token.check();
    let tls = config.token.clone();
    let service = CoordinatorService::new(config, planner)?;
    tokio::spawn(sweep_forever(service.resources.clone()));
    service.dispatcher.recover().await?;
    let server = CoordinatorServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tls.server()?
        .add_service(InterceptedService::new(server, check))
        .serve_with_incoming(weir_exchange::remote::incoming(listener))
        .await
        .map_err(|e| Error::Cluster(format!("the coordinator stopped: {e}")))
}

fn status(e: Error) -> Status {
    match e {
        Error::Control(message) => Status::not_found(message),
        other => Status::failed_precondition(other.to_string()),
    }
}

/// Where a savepoint asked for with `dir` goes (empty: the job's
/// configured savepoint directory).
fn target(dir: String) -> SavepointTarget {
    match dir.is_empty() {
        true => SavepointTarget::Configured,
        false => SavepointTarget::Dir(dir),
    }
}

type Updates = Pin<Box<dyn Stream<Item = std::result::Result<JobUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl Coordinator for CoordinatorService {
    async fn register(
        &self,
        request: Request<proto::RegisterWorker>,
    ) -> std::result::Result<Response<proto::Registered>, Status> {
        let proto::RegisterWorker {
            slots,
            version,
            host,
            address,
        } = request.into_inner();
        let worker_id = self
            .resources
            .register(slots, &host, &address, &version)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let heartbeats = self.resources.heartbeats();
        Ok(Response::new(proto::Registered {
            worker_id,
            heartbeat_interval_ms: heartbeats.interval.as_millis() as u64,
            heartbeat_timeout_ms: heartbeats.timeout.as_millis() as u64,
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<proto::WorkerHeartbeat>,
    ) -> std::result::Result<Response<proto::HeartbeatReply>, Status> {
        let known = self.resources.heartbeat(&request.into_inner().worker_id);
        Ok(Response::new(proto::HeartbeatReply { known }))
    }

    async fn deregister(
        &self,
        request: Request<proto::WorkerHeartbeat>,
    ) -> std::result::Result<Response<proto::HeartbeatReply>, Status> {
        let known = self.resources.deregister(&request.into_inner().worker_id);
        Ok(Response::new(proto::HeartbeatReply { known }))
    }

    async fn list_workers(
        &self,
        _: Request<proto::ListWorkersRequest>,
    ) -> std::result::Result<Response<proto::WorkerList>, Status> {
        Ok(Response::new(proto::WorkerList {
            workers: self.resources.workers(),
        }))
    }

    async fn describe_script(
        &self,
        request: Request<proto::JobSpec>,
    ) -> std::result::Result<Response<proto::ScriptParts>, Status> {
        let parts = self
            .dispatcher
            .describe(request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(parts))
    }

    async fn submit_job(
        &self,
        request: Request<proto::JobSpec>,
    ) -> std::result::Result<Response<proto::JobAccepted>, Status> {
        let accepted = self
            .dispatcher
            .submit(request.into_inner())
            .await
            .map_err(status)?;
        Ok(Response::new(accepted))
    }

    async fn acknowledge_checkpoint(
        &self,
        request: Request<proto::CheckpointAck>,
    ) -> std::result::Result<Response<proto::CheckpointAckReply>, Status> {
        self.dispatcher.acknowledge(request.into_inner());
        Ok(Response::new(proto::CheckpointAckReply {}))
    }

    async fn deliver_rows(
        &self,
        request: Request<proto::Rows>,
    ) -> std::result::Result<Response<proto::RowsAccepted>, Status> {
        self.dispatcher
            .deliver_rows(request.into_inner())
            .map_err(status)?;
        Ok(Response::new(proto::RowsAccepted {}))
    }

    type WatchJobStream = Updates;

    async fn watch_job(
        &self,
        request: Request<proto::JobRef>,
    ) -> std::result::Result<Response<Updates>, Status> {
        let watched = self
            .dispatcher
            .watch(&request.into_inner().job_id)
            .map_err(status)?;
        let updates = futures::stream::unfold(Some(watched), |watched| async move {
            let mut watched = watched?;
            // Wakes on the job's end, on rows, or to send its progress.
            tokio::select! {
                _ = watched.state.changed() => {}
                () = watched.rows.arrival() => {}
                () = tokio::time::sleep(WATCH_EVERY) => {}
            }
            let now = watched.state.borrow().clone();
            let snapshot = watched.progress.snapshot();
            // Taken after the state: the rows of an ended job are all in.
            let rows = watched.rows.take();
            let mut update = JobUpdate {
                state: now.name().to_string(),
                regions: snapshot.regions as u32,
                regions_finished: snapshot.regions_finished as u32,
                restarts: snapshot.restarts,
                summary: String::new(),
                error: String::new(),
                rows,
            };
            let next = match now {
                JobState::Running => Some(watched),
                JobState::Finished(summary) => {
                    update.summary = summary;
                    None
                }
                ended @ (JobState::Failed(_)
                | JobState::Cancelled(_)
                | JobState::Resuming
                | JobState::Resumed(_)) => {
                    update.error = ended.message();
                    None
                }
            };
            Some((Ok(update), next))
        });
        Ok(Response::new(Box::pin(updates)))
    }

    async fn list_jobs(
        &self,
        _: Request<proto::ListJobsRequest>,
    ) -> std::result::Result<Response<proto::JobList>, Status> {
        Ok(Response::new(proto::JobList {
            jobs: self.dispatcher.list(),
        }))
    }

    async fn cancel_job(
        &self,
        request: Request<proto::JobRef>,
    ) -> std::result::Result<Response<proto::JobControlReply>, Status> {
        self.dispatcher
            .cancel(&request.into_inner().job_id)
            .map_err(status)?;
        Ok(Response::new(proto::JobControlReply {}))
    }

    async fn trigger_savepoint(
        &self,
        request: Request<proto::SavepointRequest>,
    ) -> std::result::Result<Response<proto::SavepointReply>, Status> {
        let request = request.into_inner();
        let url = self
            .dispatcher
            .savepoint(&request.job_id, target(request.dir))
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SavepointReply { url }))
    }

    async fn stop_job(
        &self,
        request: Request<proto::StopRequest>,
    ) -> std::result::Result<Response<proto::SavepointReply>, Status> {
        let request = request.into_inner();
        let savepoint = request.savepoint.then(|| target(request.dir));
        let url = self
            .dispatcher
            .stop(&request.job_id, savepoint)
            .await
            .map_err(status)?;
        Ok(Response::new(proto::SavepointReply {
            url: url.unwrap_or_default(),
        }))
    }

    async fn task_ended(
        &self,
        request: Request<proto::TaskEnd>,
    ) -> std::result::Result<Response<proto::TaskEndAck>, Status> {
        self.dispatcher.task_ended(request.into_inner());
        Ok(Response::new(proto::TaskEndAck {}))
    }
}
