//! The cluster verbs: `weir coordinator`, `weir worker` and `weir workers`,
//! and the client side of `weir run`, `list`, `status` and `cancel` with
//! `--coordinator`.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use async_trait::async_trait;
use tonic::transport::Channel;
use weir_engine::graph::JobGraph;
use weir_scheduler::JobConfig;
use weir_scheduler::cluster::proto::coordinator_client::CoordinatorClient;
use weir_scheduler::cluster::proto::{
    JobRef, JobSpec, ListJobsRequest, ListWorkersRequest, Setting,
};
use weir_scheduler::cluster::worker::{WorkerConfig, coordinator_endpoint};
use weir_scheduler::cluster::{Heartbeats, JobPlanner, loopback_address, service, worker};

use crate::jobs::{Script, session};

/// Plans the jobs clients submit, as `weir run` plans a script: the
/// settings over the defaults, the tables, then the script's statements;
/// the job is its INSERT INTO statements.
struct ScriptPlanner;

#[async_trait]
impl JobPlanner for ScriptPlanner {
    async fn plan(&self, spec: &JobSpec) -> std::result::Result<(JobGraph, JobConfig), String> {
        // Planning holds state that stays on one thread: it runs on a
        // blocking thread of its own (with the deep stack SQL needs, as
        // every thread of the runtime has).
        let spec = spec.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(plan_script(spec)))
            .await
            .map_err(|e| format!("planning the job failed: {e}"))?
    }
}

/// The job of `spec`, planned.
async fn plan_script(spec: JobSpec) -> std::result::Result<(JobGraph, JobConfig), String> {
    let mut config = JobConfig::default();
    for setting in &spec.settings {
        config
            .set(&setting.key, &setting.value)
            .map_err(|e| format!("setting {}: {e}", setting.key))?;
    }
    let script = Script::new(spec.name.clone(), spec.script.clone());
    let mut session = session(&spec.tables, config).map_err(|e| format!("{e:#}"))?;
    let planned = session
        .execute(script.text())
        .await
        .map_err(|e| e.render(script.name(), script.text()))?;
    if !planned.queries.is_empty() {
        return Err(format!(
            "{} has queries (SELECT): on a coordinator, jobs write their rows with INSERT \
                 INTO; run queries without --coordinator",
            script.name()
        ));
    }
    let job = session
        .insert_job(&planned)
        .await
        .map_err(|e| e.render(script.name(), script.text()))?
        .ok_or_else(|| format!("{} has no INSERT INTO: nothing to run", script.name()))?;
    Ok((job, session.config().clone()))
}

/// Serves a coordinator on `bind` until the process ends. Says where it
/// listens on standard output first (the port, when `bind` asks for any).
pub async fn coordinator(bind: &str, interval: Duration, timeout: Duration) -> Result<()> {
    if interval.is_zero() || timeout <= interval {
        bail!(
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
    service::serve(
        listener,
        Heartbeats { interval, timeout },
        Arc::new(ScriptPlanner),
    )
    .await?;
    Ok(())
}

/// Runs a worker offering `slots` (default: the cores) to `coordinator`,
/// its own service on `bind`.
pub async fn worker(coordinator: String, slots: Option<u32>, bind: &str) -> Result<()> {
    let slots = match slots {
        Some(slots) => slots,
        None => std::thread::available_parallelism()?.get() as u32,
    };
    let bind: SocketAddr = loopback_address(bind)?;
    worker::run(
        WorkerConfig {
            coordinator,
            slots,
            bind,
        },
        Arc::new(ScriptPlanner),
    )
    .await?;
    Ok(())
}

async fn connect(coordinator: &str) -> Result<CoordinatorClient<Channel>> {
    let channel = coordinator_endpoint(coordinator)?
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {coordinator}"))?;
    Ok(CoordinatorClient::new(channel))
}

/// Prints the workers `coordinator` knows, one per line: id, state, slots,
/// host and how long since its last heartbeat.
pub async fn workers(coordinator: &str) -> Result<()> {
    let list = connect(coordinator)
        .await?
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

/// A job to submit: `script` with `tables` (their paths made absolute:
/// the workers read them) and `settings`.
pub fn job_spec(
    script: &Script,
    tables: &[String],
    settings: Vec<weir::config::Setting>,
) -> Result<JobSpec> {
    let tables = tables
        .iter()
        .map(|table| {
            let Some((name, location)) = table.split_once('=') else {
                return Ok(table.clone());
            };
            let (prefix, path) = match location.split_once(':') {
                Some((connector, path)) if !path.starts_with("//") => {
                    (format!("{connector}:"), path)
                }
                _ => (String::new(), location),
            };
            if path.contains("://") || std::path::Path::new(path).is_absolute() {
                return Ok(table.clone());
            }
            let absolute = std::path::absolute(path).with_context(|| format!("locating {path}"))?;
            Ok(format!("{name}={prefix}{}", absolute.display()))
        })
        .collect::<Result<_>>()?;
    Ok(JobSpec {
        name: script.name().to_string(),
        script: script.text().to_string(),
        tables,
        settings: settings
            .into_iter()
            .map(|s| Setting {
                key: s.key,
                value: s.value,
            })
            .collect(),
    })
}

/// Submits `spec` to `coordinator`; unless `detached`, follows the job to
/// its end, showing its progress on a terminal, and prints its summary.
///
/// # Errors
/// The coordinator cannot be reached or refuses the job, or the job
/// fails or is cancelled.
pub async fn submit(coordinator: &str, spec: JobSpec, detached: bool) -> Result<()> {
    let mut client = connect(coordinator).await?;
    let accepted = client
        .submit_job(spec)
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    if detached {
        println!("{}", accepted.job_id);
        return Ok(());
    }
    eprintln!(
        "job {} ('{}') runs on {coordinator}",
        accepted.job_id, accepted.name
    );
    let mut updates = client
        .watch_job(JobRef {
            job_id: accepted.job_id.clone(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    let terminal = std::io::stderr().is_terminal();
    loop {
        let update = updates
            .message()
            .await
            .with_context(|| format!("lost the coordinator at {coordinator}"))?
            .with_context(|| format!("the coordinator at {coordinator} stopped answering"))?;
        match update.state.as_str() {
            "running" => {
                if terminal {
                    eprint!(
                        "\r{}/{} regions finished, {} restart(s)",
                        update.regions_finished, update.regions, update.restarts
                    );
                }
            }
            "finished" => {
                if terminal {
                    eprintln!();
                }
                eprintln!("{}", update.summary);
                return Ok(());
            }
            _ => {
                if terminal {
                    eprintln!();
                }
                bail!("{}", update.error);
            }
        }
    }
}

/// Prints the jobs of `coordinator`, one per line: id, state, how long it
/// ran and its name.
pub async fn list(coordinator: &str) -> Result<()> {
    for job in jobs(coordinator).await? {
        println!(
            "{}\t{}\t{:.1} s\t{}",
            job.job_id,
            job.state,
            job.running_ms as f64 / 1000.0,
            job.name
        );
    }
    Ok(())
}

async fn jobs(coordinator: &str) -> Result<Vec<weir_scheduler::cluster::proto::JobStatus>> {
    Ok(connect(coordinator)
        .await?
        .list_jobs(ListJobsRequest {})
        .await
        .with_context(|| format!("the coordinator at {coordinator} did not answer"))?
        .into_inner()
        .jobs)
}

/// Prints the state of job `job` (its id or the start of it) of
/// `coordinator`.
pub async fn status(coordinator: &str, job: &str) -> Result<()> {
    let matching: Vec<_> = jobs(coordinator)
        .await?
        .into_iter()
        .filter(|j| j.job_id.starts_with(job))
        .collect();
    match matching.as_slice() {
        [one] => {
            println!(
                "{}\t{}\t{:.1} s\t{}",
                one.job_id,
                one.state,
                one.running_ms as f64 / 1000.0,
                one.name
            );
            Ok(())
        }
        [] => bail!("no job '{job}' on {coordinator}"),
        _ => bail!(
            "'{job}' is the start of {} job ids: give more of it",
            matching.len()
        ),
    }
}

/// Cancels job `job` of `coordinator`.
pub async fn cancel(coordinator: &str, job: &str) -> Result<()> {
    connect(coordinator)
        .await?
        .cancel_job(JobRef {
            job_id: job.to_string(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
    Ok(())
}
