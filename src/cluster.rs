//! The cluster verbs: `weir coordinator`, `weir worker` and `weir workers`,
//! and the client side of `weir run`, `list`, `status` and `cancel` with
//! `--coordinator`.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::SinkFactory;
use weir_engine::sinks::{CollectSink, RowsFrom, RowsOut};
use weir_scheduler::JobControl;
use weir_scheduler::cluster::access::{Authorized, Tls, TlsFiles, Token};
use weir_scheduler::cluster::proto::coordinator_client::CoordinatorClient;
use weir_scheduler::cluster::proto::{
    JobAccepted, JobRef, JobSpec, ListJobsRequest, ListWorkersRequest, SavepointRequest, Setting,
    StopRequest,
};
use weir_scheduler::cluster::rows::from_ipc;
use weir_scheduler::cluster::service::CoordinatorConfig;
use weir_scheduler::cluster::worker::WorkerConfig;
use weir_scheduler::cluster::{Heartbeats, JobPlanner, ScriptPart, config_of, service, worker};

use crate::jobs::{Script, session};
use crate::output::{RowFormat, RowPrinter};

/// Plans the jobs clients submit, as `weir run` plans a script: the
/// settings over the defaults, the tables, then the script's statements;
/// its queries are jobs of their own, then its INSERT INTO statements one.
struct ScriptPlanner;

#[async_trait]
impl JobPlanner for ScriptPlanner {
    async fn plan(
        &self,
        spec: &JobSpec,
        rows: Arc<dyn RowsOut>,
    ) -> std::result::Result<Vec<ScriptPart>, String> {
        // Planning holds state that stays on one thread: it runs on a
        // blocking thread of its own (with the deep stack SQL needs, as
        // every thread of the runtime has).
        let spec = spec.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || runtime.block_on(plan_script(spec, rows)))
            .await
            .map_err(|e| format!("planning the job failed: {e}"))?
    }
}

/// The jobs of the script of `spec`, the rows of its queries delivered to
/// `rows`.
async fn plan_script(
    spec: JobSpec,
    rows: Arc<dyn RowsOut>,
) -> std::result::Result<Vec<ScriptPart>, String> {
    let config = config_of(&spec.settings)?;
    let script = Script::new(spec.name.clone(), spec.script.clone());
    let rendered = |e: weir::sql::SqlError| e.render(script.name(), script.text());
    let mut session = session(&spec.tables, config).map_err(|e| format!("{e:#}"))?;
    let planned = session.execute(script.text()).await.map_err(rendered)?;
    let mut parts = Vec::new();
    for (i, query) in planned.queries.iter().enumerate() {
        if query.config.checkpoint_interval.is_some() {
            return Err(format!(
                "query {} of {} takes checkpoints: queries with checkpoints run without \
                 --coordinator for now",
                i + 1,
                script.name()
            ));
        }
        let sink = |_: &SchemaRef| -> Arc<dyn SinkFactory> {
            Arc::new(CollectSink::delivering(Arc::clone(&rows), false))
        };
        let (job, schema) = session
            .query_job_into(&format!("query {}", i + 1), query, sink)
            .map_err(rendered)?;
        parts.push(ScriptPart {
            job,
            config: query.config.clone(),
            rows: Some(schema),
        });
    }
    if let Some(job) = session.insert_job(&planned).await.map_err(rendered)? {
        parts.push(ScriptPart {
            job,
            config: session.config().clone(),
            rows: None,
        });
    }
    if parts.is_empty() {
        return Err(format!(
            "{} has no SELECT or INSERT INTO: nothing to run",
            script.name()
        ));
    }
    Ok(parts)
}

/// The cluster's secret, from `file` or the environment, and this
/// process's TLS, from `tls` or the environment.
fn token(file: Option<&Path>, tls: &TlsFiles) -> Result<Token> {
    let env = |name: &str| std::env::var(name).ok();
    Ok(Token::load(file, &env)?.with_tls(Tls::load(tls, &env)?))
}

/// Serves a coordinator on `bind` until the process ends. Says where it
/// listens on standard output first (the port, when `bind` asks for any).
/// Calls must carry the secret of `token_file` (or the environment's).
pub async fn coordinator(
    bind: &str,
    interval: Duration,
    timeout: Duration,
    token_file: Option<&Path>,
    tls: &TlsFiles,
    state: Option<String>,
) -> Result<()> {
    if interval.is_zero() || timeout <= interval {
        bail!(
            "--heartbeat-timeout ({timeout:?}) must be longer than --heartbeat-interval \
             ({interval:?}), which is not zero"
        );
    }
    let token = token(token_file, tls)?;
    let address = token.listen_address(bind)?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let local = listener.local_addr()?;
    println!("coordinator listening on {}://{local}", token.scheme());
    std::io::stdout().flush()?;
    let settings = weir::config::settings(None, &|name| std::env::var(name).ok(), &[])?
        .into_iter()
        .map(|s| Setting {
            key: s.key,
            value: s.value,
        })
        .collect();
    let config = CoordinatorConfig {
        heartbeats: Heartbeats { interval, timeout },
        token,
        settings,
        state: state.map(|dir| absolute(&dir)).transpose()?,
    };
    service::serve(listener, config, Arc::new(ScriptPlanner)).await?;
    Ok(())
}

/// Runs a worker offering `slots` (default: the cores) to `coordinator`,
/// its own service on `bind`, with the secret of `token_file` (or the
/// environment's).
pub async fn worker(
    coordinator: String,
    slots: Option<u32>,
    bind: &str,
    advertise: Option<String>,
    (token_file, tls): (Option<&Path>, &TlsFiles),
    shuffle_dir: Option<std::path::PathBuf>,
) -> Result<()> {
    let slots = match slots {
        Some(slots) => slots,
        None => std::thread::available_parallelism()?.get() as u32,
    };
    let token = token(token_file, tls)?;
    let bind = token.listen_address(bind)?;
    worker::run(
        WorkerConfig {
            coordinator,
            slots,
            bind,
            token,
            advertise,
            shuffle_dir: shuffle_dir.map(std::path::absolute).transpose()?,
        },
        Arc::new(ScriptPlanner),
        told_to_stop()?,
    )
    .await?;
    Ok(())
}

/// Completes when the process is told to stop: SIGTERM (as Kubernetes
/// stops a pod) or Ctrl-C.
fn told_to_stop() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    })
}

async fn connect(coordinator: &str) -> Result<CoordinatorClient<Authorized>> {
    let token = token(None, &TlsFiles::default())?;
    let channel = token
        .endpoint(coordinator)
        .with_context(|| "the coordinator")?
        .connect()
        .await
        .with_context(|| format!("cannot reach the coordinator at {coordinator}"))?;
    Ok(token.coordinator_over(channel))
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
            Ok(format!("{name}={prefix}{}", absolute(path)?))
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
        ..JobSpec::default()
    })
}

/// Runs the jobs of the script of `spec` on `coordinator` one after the
/// other, as embedded: each query's rows printed in `format`, then its
/// INSERT INTO job; with `summaries`, each job's summary after it (else a
/// query's row count). `detached`, submits the INSERT INTO job of a script
/// without queries, and prints its id.
///
/// # Errors
/// The coordinator cannot be reached or refuses the script, or a job
/// fails or is cancelled.
pub async fn run_script(
    coordinator: &str,
    spec: JobSpec,
    format: RowFormat,
    summaries: bool,
    detached: bool,
) -> Result<()> {
    let mut client = connect(coordinator).await?;
    let parts = client
        .describe_script(spec.clone())
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    if detached && parts.queries > 0 {
        bail!(
            "{} has queries, whose rows need a client: run it without --detached",
            spec.name
        );
    }
    let count = parts.queries + u32::from(parts.inserts);
    for part in 0..count {
        let spec = JobSpec {
            part,
            ..spec.clone()
        };
        let accepted = client
            .submit_job(spec)
            .await
            .map_err(|status| anyhow::anyhow!("{}", status.message()))?
            .into_inner();
        if detached {
            println!("{}", accepted.job_id);
            continue;
        }
        let printer = match accepted.schema.is_empty() {
            true => None,
            false => {
                let (schema, _) = from_ipc(&accepted.schema)?;
                let stdout = Box::new(std::io::stdout());
                Some(RowPrinter::new(
                    stdout,
                    &schema,
                    format,
                    None,
                    JobControl::default(),
                ))
            }
        };
        let summary = follow(&mut client, coordinator, &accepted, printer.as_ref()).await;
        if let Some(printer) = &printer {
            if printer.closed() {
                // The reader of the rows left (`weir sql ... | head`).
                return Ok(());
            }
            if summary.is_ok() || printer.rows() > 0 {
                printer.finish()?;
            }
        }
        let (summary, wall_time) = summary?;
        match &printer {
            Some(printer) if !summaries => {
                eprintln!("{} row(s) in {wall_time:.3} s", printer.rows());
            }
            _ => eprintln!("{summary}"),
        }
    }
    Ok(())
}

/// Follows job `accepted` to its end, printing its rows with `printer`
/// and, on a terminal, its progress: its summary and how long it ran.
async fn follow(
    client: &mut CoordinatorClient<Authorized>,
    coordinator: &str,
    accepted: &JobAccepted,
    printer: Option<&RowPrinter>,
) -> Result<(String, f64)> {
    let started = std::time::Instant::now();
    let mut updates = client
        .watch_job(JobRef {
            job_id: accepted.job_id.clone(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?
        .into_inner();
    let terminal = std::io::stderr().is_terminal() && printer.is_none();
    loop {
        let update = updates
            .message()
            .await
            .with_context(|| format!("lost the coordinator at {coordinator}"))?
            .with_context(|| format!("the coordinator at {coordinator} stopped answering"))?;
        if let Some(printer) = printer {
            for rows in &update.rows {
                for batch in from_ipc(rows)?.1 {
                    let from = RowsFrom {
                        subtask: 0,
                        attempt: 0,
                    };
                    printer.deliver(from, &batch)?;
                }
            }
            if printer.closed() {
                // Nobody reads the rows any more: the job ends.
                client
                    .cancel_job(JobRef {
                        job_id: accepted.job_id.clone(),
                    })
                    .await
                    .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
                return Ok((String::new(), started.elapsed().as_secs_f64()));
            }
        }
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
                return Ok((update.summary, started.elapsed().as_secs_f64()));
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
            if !one.message.is_empty() {
                println!("{}", one.message);
            }
            Ok(())
        }
        [] => bail!("no job '{job}' on {coordinator}"),
        _ => bail!(
            "'{job}' is the start of {} job ids: give more of it",
            matching.len()
        ),
    }
}

/// `path` made absolute, unless it is a URL: the coordinator and its
/// workers may run in other directories.
///
/// # Errors
/// The current directory is unknown.
pub fn absolute(path: &str) -> Result<String> {
    if path.contains("://") {
        return Ok(path.to_string());
    }
    let absolute = std::path::absolute(path).with_context(|| format!("locating {path}"))?;
    Ok(absolute.display().to_string())
}

/// Takes a savepoint of job `job` of `coordinator` into `dir` (without:
/// under the job's configured savepoint directory): its URL.
pub async fn savepoint(coordinator: &str, job: &str, dir: Option<String>) -> Result<String> {
    let reply = connect(coordinator)
        .await?
        .trigger_savepoint(SavepointRequest {
            job_id: job.to_string(),
            dir: dir.unwrap_or_default(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
    Ok(reply.into_inner().url)
}

/// Stops job `job` of `coordinator`, with a final savepoint when
/// `savepoint` asks (into the directory it names, else the job's
/// configured one): the savepoint's URL.
pub async fn stop(
    coordinator: &str,
    job: &str,
    savepoint: Option<Option<String>>,
) -> Result<Option<String>> {
    let reply = connect(coordinator)
        .await?
        .stop_job(StopRequest {
            job_id: job.to_string(),
            savepoint: savepoint.is_some(),
            dir: savepoint.flatten().unwrap_or_default(),
        })
        .await
        .map_err(|status| anyhow::anyhow!("{}", status.message()))?;
    let url = reply.into_inner().url;
    Ok((!url.is_empty()).then_some(url))
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
