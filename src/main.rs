//! `weir`: the command-line job runner of the weir dataflow engine.
//!
//! `weir run job.sql` runs a SQL script on the embedded mini-cluster and
//! prints its results and a summary; `weir sql` runs ad-hoc queries;
//! `weir explain` prints a job's logical plan, job graph, execution graph
//! and pipelined regions.

mod cluster;
mod control;
mod examples;
mod jobs;
mod output;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use weir_scheduler::JobConfig;

use crate::output::RowFormat;
use crate::progress::ProgressMode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "weir",
    version,
    about = "A columnar batch/stream dataflow engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a SQL script (a `.sql` file) or a built-in example job on the
    /// embedded mini-cluster; print the rows of its queries and a summary.
    Run {
        /// The script, or the name of a built-in job (see `weir examples`).
        job: String,
        #[command(flatten)]
        options: JobOptions,
        /// How query rows are printed.
        #[arg(long, value_enum, default_value_t = RowFormat::Table)]
        format: RowFormat,
        /// Rows printed of a built-in job's output.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// How the progress of jobs running over a second is shown.
        #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
        progress: ProgressMode,
        /// Start from this savepoint (or retained checkpoint), at any
        /// parallelism.
        #[arg(short = 's', long, value_name = "DIR")]
        from_savepoint: Option<String>,
        /// With `--from-savepoint`: start afresh the parts of the job the
        /// savepoint holds no state of, and drop state no part claims.
        #[arg(long, requires = "from_savepoint")]
        allow_non_restored_state: bool,
        /// On Ctrl-C, stop a streaming job with a savepoint into DIR
        /// (without DIR: under `execution.checkpointing.savepoint-dir`);
        /// without this flag Ctrl-C cancels.
        #[arg(long, value_name = "DIR", num_args = 0..=1)]
        stop_with_savepoint: Option<Option<String>>,
        /// Run the script's INSERT INTO job on the workers of this
        /// coordinator (http://HOST:PORT) instead of the embedded
        /// mini-cluster.
        #[arg(long, value_name = "URL")]
        coordinator: Option<String>,
        /// With `--coordinator`: print the job's id and return, leaving it
        /// to run.
        #[arg(long, requires = "coordinator")]
        detached: bool,
    },
    /// Take a savepoint of a running streaming job (`weir list` names
    /// them); the job goes on.
    Savepoint {
        /// The job's id, or the start of it.
        job: String,
        /// Where the savepoint goes (a directory or object store URL);
        /// without: a directory of its own under the job's
        /// `execution.checkpointing.savepoint-dir`.
        dir: Option<String>,
        /// The coordinator that runs the job (without: a `weir run` of
        /// this machine).
        #[arg(long, value_name = "URL")]
        coordinator: Option<String>,
    },
    /// Stop a running job, with a final savepoint when asked: everything
    /// up to it is committed, nothing after.
    Stop {
        /// The job's id, or the start of it.
        job: String,
        /// Take a final savepoint, into DIR (without DIR: under the job's
        /// `execution.checkpointing.savepoint-dir`).
        #[arg(long, value_name = "DIR", num_args = 0..=1)]
        savepoint: Option<Option<String>>,
        /// The coordinator that runs the job (without: a `weir run` of
        /// this machine).
        #[arg(long, value_name = "URL")]
        coordinator: Option<String>,
    },
    /// Cancel a running job: its uncommitted output is discarded.
    Cancel {
        /// The job's id, or the start of it.
        job: String,
        /// The coordinator that runs it (without: a `weir run` of this
        /// machine).
        #[arg(long, value_name = "URL")]
        coordinator: Option<String>,
    },
    /// List the jobs `weir run` runs on this machine, or those of a
    /// coordinator.
    List {
        /// List the jobs of this coordinator (running and ended).
        #[arg(long, value_name = "URL")]
        coordinator: Option<String>,
    },
    /// Show the state of a job of a coordinator.
    Status {
        /// The job's id, or the start of it.
        job: String,
        /// The coordinator that runs it.
        #[arg(long, value_name = "URL")]
        coordinator: String,
    },
    /// Run SQL queries and print their rows, over tables declared in a
    /// script (`-f`) or on the command line (`--table`).
    Sql {
        /// The statements to run (after those of `-f`).
        sql: Option<String>,
        /// A script to run first.
        #[arg(short, long, value_name = "FILE")]
        file: Option<PathBuf>,
        #[command(flatten)]
        options: JobOptions,
        /// How rows are printed.
        #[arg(long, value_enum, default_value_t = RowFormat::Table)]
        format: RowFormat,
        /// How the progress of jobs running over a second is shown.
        #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
        progress: ProgressMode,
        /// Run the queries on the workers of this coordinator
        /// (http://HOST:PORT) instead of the embedded mini-cluster.
        #[arg(long, value_name = "URL")]
        coordinator: Option<String>,
    },
    /// Print a job's logical plan, JobGraph, ExecutionGraph and pipelined
    /// regions.
    Explain {
        /// The script, or the name of a built-in job.
        job: String,
        #[command(flatten)]
        options: JobOptions,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
    },
    /// List the built-in example jobs.
    Examples,
    /// Start a coordinator: workers register their slots with it, and
    /// `weir run --coordinator` runs jobs on them.
    Coordinator {
        /// Where to listen, HOST:PORT (beyond loopback only with an access
        /// token).
        #[arg(long, default_value = "127.0.0.1:6123")]
        bind: String,
        /// Between two heartbeats of a worker.
        #[arg(long, default_value = "2s", value_parser = parse_duration)]
        heartbeat_interval: Duration,
        /// Without a heartbeat until a worker is lost (and, for a worker,
        /// without an answer until its coordinator is).
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        heartbeat_timeout: Duration,
        /// A file holding the cluster's access token [default:
        /// $WEIR_CLUSTER_TOKEN_FILE, else $WEIR_CLUSTER_TOKEN]; needed to
        /// listen beyond loopback.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Where it records its running jobs (a directory or object store
        /// URL): started again with the same, it resumes their streaming
        /// jobs from their latest checkpoint.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<String>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// Start a worker that offers its slots to a coordinator.
    Worker {
        /// The coordinator, http://HOST:PORT.
        #[arg(long)]
        coordinator: String,
        /// The slots it offers [default: cores].
        #[arg(long)]
        slots: Option<u32>,
        /// Where its own service listens, HOST:PORT (port 0: any free
        /// one; beyond loopback only with an access token).
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        /// The host name or address the coordinator reaches this worker
        /// at (needed when bound to all interfaces, e.g. a pod's IP).
        #[arg(long, value_name = "HOST")]
        advertise: Option<String>,
        /// A file holding the cluster's access token [default:
        /// $WEIR_CLUSTER_TOKEN_FILE, else $WEIR_CLUSTER_TOKEN].
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Where the blocking partitions of its tasks go when a job's
        /// shuffle root is a local directory; it serves them to the other
        /// workers [default: a temporary directory, removed on exit].
        #[arg(long, value_name = "DIR")]
        shuffle_dir: Option<PathBuf>,
        #[command(flatten)]
        tls: TlsArgs,
    },
    /// List the workers a coordinator knows, alive or lost.
    Workers {
        /// The coordinator, http://HOST:PORT.
        #[arg(long)]
        coordinator: String,
    },
}

/// The PEM files of a coordinator's or worker's TLS.
#[derive(Args)]
struct TlsArgs {
    /// Its certificate: its services speak TLS (https:// URLs) [default:
    /// $WEIR_CLUSTER_TLS_CERT].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of its certificate [default: $WEIR_CLUSTER_TLS_KEY].
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// The certificate authority it checks the services it calls with
    /// (https:// URLs) [default: $WEIR_CLUSTER_TLS_CA; clients read it
    /// too].
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
}

impl From<TlsArgs> for weir_scheduler::cluster::access::TlsFiles {
    fn from(args: TlsArgs) -> Self {
        Self {
            cert: args.tls_cert,
            key: args.tls_key,
            ca: args.tls_ca,
        }
    }
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    weir_scheduler::parse_duration(text)
        .ok_or_else(|| format!("'{text}' is not a duration, e.g. '500 ms', '10s' or '1 min'"))
}

/// How `explain` prints.
#[derive(Clone, Copy, ValueEnum)]
enum ExplainFormat {
    Text,
    Json,
    Dot,
}

#[derive(Args)]
struct JobOptions {
    /// Default parallelism of the job's vertices [default: cores].
    #[arg(short, long)]
    parallelism: Option<usize>,
    /// A configuration option, `key=value` (repeatable), e.g.
    /// `-D execution.batch-shuffle-mode=all-pipelined`.
    #[arg(short = 'D', long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The configuration file [default: $WEIR_CONFIG, else ./weir.toml if
    /// present].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// A table for the queries, `name=path` or `name=connector:path`; the
    /// connector is taken from the file extension when not given
    /// (repeatable).
    #[arg(long = "table", value_name = "NAME=PATH")]
    tables: Vec<String>,
    /// Input path of built-in jobs that read files.
    #[arg(long)]
    input: Option<String>,
    /// Rows generated by built-in jobs with a generator.
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
}

impl JobOptions {
    fn config(&self) -> Result<JobConfig> {
        weir::config::load(
            self.config.as_deref(),
            &|name| std::env::var(name).ok(),
            &self.flags()?,
        )
    }

    /// The options set over the defaults, for a job submitted to a
    /// coordinator (checked here first).
    fn settings(&self) -> Result<Vec<weir::config::Setting>> {
        self.config()?;
        weir::config::settings(
            self.config.as_deref(),
            &|name| std::env::var(name).ok(),
            &self.flags()?,
        )
    }

    fn flags(&self) -> Result<Vec<(String, String)>> {
        let mut flags = Vec::new();
        if let Some(p) = self.parallelism {
            flags.push(("parallelism.default".to_string(), p.to_string()));
        }
        for option in &self.set {
            let (key, value) = option
                .split_once('=')
                .with_context(|| format!("option '{option}' is not of the form key=value"))?;
            flags.push((key.trim().to_string(), value.trim().to_string()));
        }
        Ok(flags)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WEIR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    quiet_caught_panics();
    let cli = Cli::parse();
    // Parsing, planning and translating SQL recurse over expressions that
    // generated SQL nests thousands deep: they run on a thread with a stack
    // of the CPU pool's size (taken only as it is used), as do the tokio
    // workers that poll tasks.
    let outcome = std::thread::Builder::new()
        .name("weir-main".to_string())
        .stack_size(weir_exchange::cpu::STACK_BYTES)
        .spawn(move || {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_name(WORKER_THREADS)
                .thread_stack_size(weir_exchange::cpu::STACK_BYTES)
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(run(cli)))
        })
        .map_err(anyhow::Error::from)
        .and_then(|main| {
            main.join()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("weir's main thread panicked")))
        });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // As shells report a process interrupted by Ctrl-C.
            let cancelled = e
                .downcast_ref::<weir_scheduler::Error>()
                .is_some_and(|e| matches!(e, weir_scheduler::Error::Cancelled { .. }));
            if cancelled {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// The name of the tokio threads that run tasks.
const WORKER_THREADS: &str = "weir-worker";

/// Panics inside tasks (on tokio's workers or the CPU pool) are caught and
/// fail their task with their message, as bad input or a bug of the
/// operator: Rust's report of them (message and backtrace on standard
/// error) goes to the debug log instead of the user's screen. A panic
/// anywhere else is reported as Rust does.
fn quiet_caught_panics() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or_default();
        if name == WORKER_THREADS || weir_exchange::cpu::on_pool() {
            tracing::debug!("panic on {name} (caught): {info}");
        } else {
            report(info);
        }
    }));
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Coordinator {
            bind,
            heartbeat_interval,
            heartbeat_timeout,
            token_file,
            state_dir,
            tls,
        } => {
            cluster::coordinator(
                &bind,
                heartbeat_interval,
                heartbeat_timeout,
                token_file.as_deref(),
                &tls.into(),
                state_dir,
            )
            .await
        }
        Command::Worker {
            coordinator,
            slots,
            bind,
            advertise,
            token_file,
            shuffle_dir,
            tls,
        } => {
            cluster::worker(
                coordinator,
                slots,
                &bind,
                advertise,
                (token_file.as_deref(), &tls.into()),
                shuffle_dir,
            )
            .await
        }
        Command::Workers { coordinator } => cluster::workers(&coordinator).await,
        Command::Examples => {
            for (name, about) in examples::EXAMPLES {
                println!("{name:<10} {about}");
            }
            Ok(())
        }
        Command::Explain {
            job,
            options,
            format,
        } => {
            let config = options.config()?;
            let explained = if jobs::is_script(&job) {
                let script = jobs::Script::read(&job)?;
                jobs::explain_script(&script, &options.tables, config).await?
            } else {
                jobs::explain_example(&job, &options, &config).await?
            };
            match format {
                ExplainFormat::Text => println!("{}", jobs::explain_text(&explained)),
                ExplainFormat::Json => println!("{}", jobs::explain_json(&explained)),
                ExplainFormat::Dot => {
                    for job in &explained {
                        print!("{}", job.graph.to_dot());
                    }
                }
            }
            Ok(())
        }
        Command::Run {
            job,
            options,
            format,
            top,
            progress,
            from_savepoint,
            allow_non_restored_state,
            stop_with_savepoint,
            coordinator,
            detached,
        } => {
            if let Some(coordinator) = coordinator {
                if stop_with_savepoint.is_some() {
                    anyhow::bail!(
                        "--stop-with-savepoint is for jobs of this machine: stop a job of a \
                         coordinator with `weir stop JOB --savepoint --coordinator URL`"
                    );
                }
                if !jobs::is_script(&job) {
                    anyhow::bail!("only SQL scripts run on a coordinator, not built-in jobs");
                }
                let script = jobs::Script::read(&job)?;
                let mut spec = cluster::job_spec(&script, &options.tables, options.settings()?)?;
                if let Some(savepoint) = from_savepoint {
                    spec.restore_from = cluster::absolute(&savepoint)?;
                    spec.allow_non_restored = allow_non_restored_state;
                }
                return cluster::run_script(&coordinator, spec, format, true, detached).await;
            }
            let mut config = options.config()?;
            config.restore_from = from_savepoint;
            config.allow_non_restored = allow_non_restored_state;
            let running = jobs::Running {
                progress,
                stop_savepoint: stop_with_savepoint
                    .map(control::savepoint_target)
                    .transpose()?,
            };
            if jobs::is_script(&job) {
                let script = jobs::Script::read(&job)?;
                jobs::run_script(&script, &options.tables, config, format, true, &running).await
            } else {
                jobs::run_example(&job, &options, config, top, &running).await
            }
        }
        Command::Sql {
            sql,
            file,
            options,
            format,
            progress,
            coordinator,
        } => {
            let script = jobs::Script::inline(file.as_deref(), sql.as_deref())?;
            if let Some(coordinator) = coordinator {
                let spec = cluster::job_spec(&script, &options.tables, options.settings()?)?;
                return cluster::run_script(&coordinator, spec, format, false, false).await;
            }
            let config = options.config()?;
            let running = jobs::Running {
                progress,
                stop_savepoint: None,
            };
            jobs::run_script(&script, &options.tables, config, format, false, &running).await
        }
        Command::Savepoint {
            job,
            dir,
            coordinator: Some(coordinator),
        } => {
            let dir = dir.map(|d| cluster::absolute(&d)).transpose()?;
            println!("{}", cluster::savepoint(&coordinator, &job, dir).await?);
            Ok(())
        }
        Command::Stop {
            job,
            savepoint,
            coordinator: Some(coordinator),
        } => {
            let savepoint = savepoint
                .map(|dir| dir.map(|d| cluster::absolute(&d)).transpose())
                .transpose()?;
            match cluster::stop(&coordinator, &job, savepoint).await? {
                Some(url) => println!("stopped with a savepoint at {url}"),
                None => println!("stopped"),
            }
            Ok(())
        }
        Command::Savepoint {
            job,
            dir,
            coordinator: None,
        } => {
            let target = control::savepoint_target(dir)?;
            let url = control::send(&job, &control::Request::Savepoint { target }).await?;
            println!("{}", url.unwrap_or_default());
            Ok(())
        }
        Command::Stop {
            job,
            savepoint,
            coordinator: None,
        } => {
            let savepoint = savepoint.map(control::savepoint_target).transpose()?;
            match control::send(&job, &control::Request::Stop { savepoint }).await? {
                Some(url) => println!("stopped with a savepoint at {url}"),
                None => println!("stopped"),
            }
            Ok(())
        }
        Command::Cancel {
            job,
            coordinator: Some(coordinator),
        } => {
            cluster::cancel(&coordinator, &job).await?;
            println!("cancelled");
            Ok(())
        }
        Command::Cancel {
            job,
            coordinator: None,
        } => {
            control::send(&job, &control::Request::Cancel).await?;
            println!("cancelled");
            Ok(())
        }
        Command::List {
            coordinator: Some(coordinator),
        } => cluster::list(&coordinator).await,
        Command::Status { job, coordinator } => cluster::status(&coordinator, &job).await,
        Command::List { coordinator: None } => {
            for id in control::running() {
                println!("{id}");
            }
            Ok(())
        }
    }
}
