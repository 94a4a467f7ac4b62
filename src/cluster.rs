//! The cluster verbs: `weir coordinator`, `weir worker` and `weir workers`.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use weir_scheduler::cluster::proto::ListWorkersRequest;
use weir_scheduler::cluster::proto::coordinator_client::CoordinatorClient;
use weir_scheduler::cluster::worker::{WorkerConfig, coordinator_endpoint};
use weir_scheduler::cluster::{Heartbeats, coordinator, loopback_address, worker};

/// Serves a coordinator on `bind` until the process ends. Says where it
/// listens on standard output first (the port, when `bind` asks for any).
pub async fn coordinator(bind: &str, interval: Duration, timeout: Duration) -> Result<()> {
    if interval.is_zero() || timeout <= interval {
        anyhow::bail!(
            "--heartbeat-timeout ({timeout:?}) must be longer than --heartbeat-interval \
             ({interval:?}), which is not zero"
        );
    }
    let address = loopback_address(bind)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    println!("coordinator listening on http://{local}");
    std::io::stdout().flush()?;
    coordinator::serve(listener, Heartbeats { interval, timeout }).await?;
    Ok(())
}

/// Runs a worker offering `slots` (default: the cores) to `coordinator`.
pub async fn worker(coordinator: String, slots: Option<u32>) -> Result<()> {
    let slots = match slots {
        Some(slots) => slots,
        None => std::thread::available_parallelism()?.get() as u32,
    };
    worker::run(WorkerConfig { coordinator, slots }).await?;
    Ok(())
}

/// Prints the workers `coordinator` knows, one per line: id, state, slots,
/// host and how long since its last heartbeat.
pub async fn workers(coordinator: &str) -> Result<()> {
    let channel = coordinator_endpoint(coordinator)?
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {coordinator}"))?;
    let list = CoordinatorClient::new(channel)
        .list_workers(ListWorkersRequest {})
        .await
        .with_context(|| format!("the coordinator at {coordinator} did not answer"))?
        .into_inner();
    for worker in list.workers {
        println!(
            "{}\t{}\t{} slot(s)\t{}\tlast heard {} ms ago",
            worker.worker_id, worker.state, worker.slots, worker.host, worker.silent_ms
        );
    }
    Ok(())
}
