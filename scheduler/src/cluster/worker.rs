//! A worker process: it serves its own service (the attempts the
//! coordinator deploys on it, see [`super::task_manager`]), registers its
//! slots and that service's address with the coordinator, sends
//! heartbeats, and registers again when the coordinator forgot it (it
//! restarted, or declared the worker lost) or stopped answering for the
//! heartbeat timeout; then the attempts it ran are cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_flight::flight_service_server::FlightServiceServer;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Endpoint;
use weir_exchange::ShuffleRoot;
use weir_exchange::remote::{self, ExchangeService};

use super::access::{Authorized, MAX_MESSAGE_BYTES, Token};
use super::proto::coordinator_client::CoordinatorClient;
use super::proto::worker_server::WorkerServer;
use super::proto::{RegisterWorker, WorkerHeartbeat};
use super::task_manager::TaskManager;
use super::{Heartbeats, JobPlanner, VERSION};
use crate::{Error, Result};

/// How long a worker waits before it tries to reach its coordinator again.
const RETRY: Duration = Duration::from_millis(500);

/// What a worker process offers, and to whom.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// The coordinator, as `http://HOST:PORT`.
    pub coordinator: String,
    /// The slots it offers.
    pub slots: u32,
    /// Where its own service listens (port 0: any free one).
    pub bind: SocketAddr,
    /// The cluster's secret: its calls carry it, its service checks it.
    pub token: Token,
    /// The host the coordinator reaches its service at, when not the one
    /// it binds (one bound to all interfaces, 0.0.0.0).
    pub advertise: Option<String>,
    /// Its own shuffle directory: where the blocking partitions of its
    /// attempts go when a job's shuffle root is a local directory, served
    /// to consumers on other workers. `None`: a fresh temporary directory,
    /// removed when the worker stops.
    pub shuffle_dir: Option<std::path::PathBuf>,
}

/// How long a worker that is told to stop takes at most to leave.
pub const LEAVING: Duration = Duration::from_secs(5);

/// Runs a worker until `stop` completes: registered with the coordinator
/// whenever it can be, running the attempts it deploys, which `planner`
/// plans. Stopped, it takes nothing new, tells the coordinator it leaves
/// (the attempts it ran fail over to other workers at once), cancels them
/// and returns, within [`LEAVING`].
///
/// # Errors
/// When its service cannot listen, or the coordinator refuses the worker
/// for good (another weir version, no slots), or its URL is not one.
pub async fn run(
    config: WorkerConfig,
    planner: Arc<dyn JobPlanner>,
    stop: impl Future<Output = ()>,
) -> Result<()> {
    let endpoint = config
        .token
        .endpoint(&config.coordinator)
        .map_err(|e| Error::Cluster(format!("the coordinator {e}")))?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| Error::Cluster(format!("cannot listen on {}: {e}", config.bind)))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::Cluster(format!("cannot tell where it listens: {e}")))?;
    let address = match &config.advertise {
        Some(host) => format!("{}://{host}:{}", config.token.scheme(), address.port()),
        None if address.ip().is_unspecified() => {
            return Err(Error::Cluster(format!(
                "bound to {address}, the worker needs --advertise HOST: where the \
                 coordinator reaches it"
            )));
        }
        None => format!("{}://{address}", config.token.scheme()),
    };
    let token = &config.token;
    let (shuffle, _temporary) = own_shuffle_root(config.shuffle_dir.as_deref())?;
    let tasks = TaskManager::new(
        planner,
        token.coordinator(&endpoint),
        token.clone(),
        shuffle.clone(),
    );
    let service = WorkerServer::new(tasks.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let exchange = ExchangeService::new(tasks.exchange()).serving(shuffle);
    let exchange = FlightServiceServer::new(exchange)
        .max_decoding_message_size(remote::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(remote::MAX_MESSAGE_BYTES);
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = token
        .server()?
        .add_service(InterceptedService::new(service, token.check()))
        .add_service(InterceptedService::new(exchange, token.check()))
        .serve_with_incoming_shutdown(remote::incoming(listener), async {
            let _ = stopped.await;
        });
    tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!("the worker's service stopped: {e}");
        }
    });
    tracing::info!("the worker's service listens on {address}");
    tokio::select! {
        outcome = serve(&config, &endpoint, &tasks, &address) => outcome,
        () = stop => {
            // Takes nothing new from here on.
            let _ = stopping.send(());
            leave(&tasks, token.coordinator(&endpoint)).await;
            Ok(())
        }
    }
}

/// The worker's own shuffle root: `dir`, or a fresh temporary directory
/// (removed when the returned guard is dropped).
///
/// # Errors
/// When the directory cannot be made.
fn own_shuffle_root(
    dir: Option<&std::path::Path>,
) -> Result<(ShuffleRoot, Option<tempfile::TempDir>)> {
    let cannot = |e: &dyn std::fmt::Display| {
        Error::Cluster(format!("cannot make the worker's shuffle directory: {e}"))
    };
    let (dir, temporary) = match dir {
        Some(dir) => (dir.to_path_buf(), None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("weir-worker-shuffle-")
                .tempdir()
                .map_err(|e| cannot(&e))?;
            (temporary.path().to_path_buf(), Some(temporary))
        }
    };
    let url = dir.display().to_string();
    let root = ShuffleRoot::try_new(&url, &Default::default()).map_err(|e| cannot(&e))?;
    Ok((root, temporary))
}

/// Tells the coordinator this worker leaves and cancels what it runs,
/// within [`LEAVING`] whatever the coordinator does.
async fn leave(tasks: &TaskManager, mut coordinator: CoordinatorClient<Authorized>) {
    let id = tasks.worker_id();
    tracing::warn!("stopping: {id} leaves; the attempts it runs fail over to other workers");
    if !id.is_empty() {
        let request = WorkerHeartbeat { worker_id: id };
        let told = tokio::time::timeout(LEAVING / 2, coordinator.deregister(request)).await;
        if !matches!(told, Ok(Ok(_))) {
            tracing::warn!("the coordinator did not hear that this worker leaves");
        }
    }
    let _ = tokio::time::timeout(LEAVING / 2, tasks.cancel_everything()).await;
}

/// Registers with the coordinator and keeps registered, for good.
async fn serve(
    config: &WorkerConfig,
    endpoint: &Endpoint,
    tasks: &TaskManager,
    address: &str,
) -> Result<()> {
    let token = &config.token;
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".to_string());
    let mut waiting_since: Option<Instant> = None;
    loop {
        // Whatever ran was deployed by a coordinator that is gone or
        // forgot this worker.
        tasks.cancel_everything().await;
        let mut client = match endpoint.connect().await {
            Ok(channel) => token.coordinator_over(channel),
            Err(e) => {
                if waiting_since.is_none() {
                    tracing::warn!("waiting for the coordinator at {}: {e}", config.coordinator);
                    waiting_since = Some(Instant::now());
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let registered = client
            .register(RegisterWorker {
                slots: config.slots,
                version: VERSION.to_string(),
                host: host.clone(),
                address: address.to_string(),
            })
            .await;
        let registered = match registered {
            Ok(reply) => reply.into_inner(),
            Err(status)
                if matches!(
                    status.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::Unauthenticated
                ) =>
            {
                return Err(Error::Cluster(format!(
                    "the coordinator at {} refused this worker: {}",
                    config.coordinator,
                    status.message()
                )));
            }
            Err(status) => {
                tracing::warn!("registering with {}: {status}", config.coordinator);
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        waiting_since = None;
        let heartbeats = Heartbeats {
            interval: Duration::from_millis(registered.heartbeat_interval_ms.max(1)),
            timeout: Duration::from_millis(registered.heartbeat_timeout_ms.max(1)),
        };
        tasks.registered_as(&registered.worker_id);
        tracing::info!(
            "registered with {} as {} ({} slot(s))",
            config.coordinator,
            registered.worker_id,
            config.slots
        );
        beat(&mut client, &registered.worker_id, heartbeats, config).await;
    }
}

/// Sends heartbeats until the coordinator forgets this worker or stays
/// silent for the timeout.
async fn beat(
    client: &mut CoordinatorClient<Authorized>,
    worker_id: &str,
    heartbeats: Heartbeats,
    config: &WorkerConfig,
) {
    let mut last_answer = Instant::now();
    loop {
        tokio::time::sleep(heartbeats.interval).await;
        let request = WorkerHeartbeat {
            worker_id: worker_id.to_string(),
        };
        match tokio::time::timeout(heartbeats.timeout, client.heartbeat(request)).await {
            Ok(Ok(reply)) if reply.get_ref().known => last_answer = Instant::now(),
            Ok(Ok(_)) => {
                tracing::warn!(
                    "the coordinator at {} no longer knows {worker_id}: registering again",
                    config.coordinator
                );
                return;
            }
            Ok(Err(_)) | Err(_) => {
                if last_answer.elapsed() >= heartbeats.timeout {
                    tracing::warn!(
                        "lost the coordinator at {} (no answer for {:?}): registering again",
                        config.coordinator,
                        heartbeats.timeout
                    );
                    return;
                }
            }
        }
    }
}
