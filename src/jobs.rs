//! Running and explaining jobs: SQL scripts and the built-in examples.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use weir::sql::{Insert, Query, Session, SqlError};
use weir_engine::graph::{JobGraph, RuntimeMode};
use weir_engine::registry::ConnectorOptions;
use weir_engine::sinks::CollectSink;
use weir_scheduler::explain::Explain;
use weir_scheduler::{JobConfig, JobControl, MiniCluster, SavepointTarget};

use crate::JobOptions;
use crate::control;
use crate::examples;
use crate::output::{RowFormat, RowPrinter};
use crate::progress::{ProgressMode, Screen, run_job};

/// How jobs run from the command line: their progress shown, Ctrl-C and
/// requests of `weir savepoint`/`stop`/`cancel` taken (see
/// [`control`](crate::control)).
pub struct Running {
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Where Ctrl-C stops a streaming job with a savepoint (it cancels
    /// without).
    pub stop_savepoint: Option<SavepointTarget>,
}

impl Running {
    /// Runs `graph` on `cluster`.
    ///
    /// # Errors
    /// As the job: it cannot be scheduled, fails for good, or is cancelled;
    /// or a streaming job is to stop with a savepoint into the configured
    /// savepoint directory, and none is.
    pub async fn run(
        &self,
        cluster: &MiniCluster,
        graph: JobGraph,
    ) -> weir_scheduler::Result<weir_scheduler::JobSummary> {
        self.run_on(cluster, graph, Arc::default(), JobControl::default())
            .await
    }

    /// Runs `graph` on `cluster` under `control`, its progress bar (if
    /// any) on `screen`.
    ///
    /// # Errors
    /// As [`Running::run`].
    pub async fn run_on(
        &self,
        cluster: &MiniCluster,
        graph: JobGraph,
        screen: Arc<Screen>,
        control: JobControl,
    ) -> weir_scheduler::Result<weir_scheduler::JobSummary> {
        let streaming = graph.mode == RuntimeMode::Streaming;
        if streaming
            && self.stop_savepoint == Some(SavepointTarget::Configured)
            && cluster.config().savepoint_dir.is_none()
        {
            return Err(weir_scheduler::Error::Control(
                "--stop-with-savepoint needs a directory, or \
                 execution.checkpointing.savepoint-dir set"
                    .to_string(),
            ));
        }
        let job = run_job(cluster, graph, self.progress, control.clone(), screen);
        control::controlled(&control, streaming, self.stop_savepoint.as_ref(), job).await
    }
}

/// Whether `job` names a script rather than a built-in job.
pub fn is_script(job: &str) -> bool {
    job.ends_with(".sql") || Path::new(job).is_file()
}

/// The text of a script and the name errors call it by.
pub struct Script {
    name: String,
    text: String,
}

impl Script {
    /// The script in file `path`.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn read(path: &str) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the script {path}"))?;
        Ok(Self {
            name: path.to_string(),
            text,
        })
    }

    /// The statements of `file` followed by `sql`.
    ///
    /// # Errors
    /// The file cannot be read, or there are no statements at all.
    pub fn inline(file: Option<&Path>, sql: Option<&str>) -> Result<Self> {
        let mut text = match file {
            Some(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the script {}", path.display()))?,
            None => String::new(),
        };
        if let Some(sql) = sql {
            if !text.trim_end().is_empty() {
                if !text.trim_end().ends_with(';') {
                    text.push(';');
                }
                text.push('\n');
            }
            text.push_str(sql);
        }
        if text.trim().is_empty() {
            bail!("no SQL to run: give a query (weir sql \"SELECT ...\") or a script (-f FILE)");
        }
        let name = match file {
            Some(path) => path.display().to_string(),
            None => "<command line>".to_string(),
        };
        Ok(Self { name, text })
    }

    /// A script named `name` (for errors) of `text`.
    pub fn new(name: String, text: String) -> Self {
        Self { name, text }
    }

    /// What errors call it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its statements.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn error(&self, e: SqlError) -> anyhow::Error {
        anyhow!("{}", e.render(&self.name, &self.text))
    }
}

/// A session with the command line's `--table`s registered.
pub fn session(tables: &[String], config: JobConfig) -> Result<Session> {
    let registry = weir_formats::registry();
    let connectors = registry.connector_names();
    let mut session = Session::new(registry, config);
    for table in tables {
        let (name, location) = table
            .split_once('=')
            .with_context(|| format!("--table '{table}' is not of the form name=path"))?;
        let (connector, path) = match location.split_once(':') {
            Some((c, path)) if connectors.contains(&c) => (c.to_string(), path),
            _ => (connector_of(location)?, location),
        };
        let options = ConnectorOptions::from([("path".to_string(), path.to_string())]);
        session
            .register_table(name.trim(), &connector, options)
            .map_err(|e| anyhow!("--table {table}: {e}"))?;
    }
    Ok(session)
}

/// The connector of a path, by its extension (for a directory, by the
/// extension of the files in it).
fn connector_of(path: &str) -> Result<String> {
    let by_extension = |p: &Path| match p.extension().and_then(|e| e.to_str()) {
        Some("parquet") => Some("parquet"),
        Some("csv") => Some("csv"),
        Some("json" | "jsonl" | "ndjson") => Some("json"),
        Some("arrow" | "ipc" | "feather" | "arrows") => Some("ipc"),
        _ => None,
    };
    /// The format of the first data file under `dir` (partition
    /// directories included; hidden and `_` names skipped, as reads do).
    fn first_under(
        dir: &Path,
        by_extension: &dyn Fn(&Path) -> Option<&'static str>,
    ) -> Option<&'static str> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|e| e.ok())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        entries.iter().find_map(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                return None;
            }
            let path = e.path();
            if path.is_dir() {
                first_under(&path, by_extension)
            } else {
                by_extension(&path)
            }
        })
    }
    let local = Path::new(path);
    let found = by_extension(local).or_else(|| first_under(local, &by_extension));
    found.map(str::to_string).with_context(|| {
        format!(
            "cannot tell the format of '{path}' from its extension: write --table name=parquet:{path} (or csv:, json:, ipc:)"
        )
    })
}

/// The jobs of a script, all built before any runs: each query's, then
/// the one of its inserts.
struct ScriptJobs {
    queries: Vec<QueryRun>,
    inserts: Option<(Vec<Insert>, JobGraph)>,
    /// The settings after the script's statements, which the inserts run
    /// with.
    config: JobConfig,
}

/// A query's job, printing its rows as they come.
struct QueryRun {
    query: Query,
    graph: JobGraph,
    printer: Arc<RowPrinter>,
    /// Where the job's progress bar and rows share the terminal.
    screen: Arc<Screen>,
    control: JobControl,
}

async fn build_jobs(
    script: &Script,
    tables: &[String],
    config: JobConfig,
    format: RowFormat,
) -> Result<ScriptJobs> {
    let mut session = session(tables, config)?;
    let planned = session
        .execute(&script.text)
        .await
        .map_err(|e| script.error(e))?;
    if planned.queries.is_empty() && planned.inserts.is_empty() {
        bail!(
            "{} has no SELECT or INSERT INTO: nothing to run",
            script.name
        );
    }
    let inserts = session
        .insert_job(&planned)
        .await
        .map_err(|e| script.error(e))?;
    let queries = planned
        .queries
        .into_iter()
        .enumerate()
        .map(|(i, query)| query_run(&session, &format!("query {}", i + 1), query, format))
        .collect::<Result<_, SqlError>>()
        .map_err(|e| script.error(e))?;
    Ok(ScriptJobs {
        queries,
        inserts: inserts.map(|graph| (planned.inserts, graph)),
        config: session.config().clone(),
    })
}

/// The job of `query`, printing its rows to standard output in `format` as
/// they come: on arrival, or, with checkpoints, once the checkpoint after
/// them completed (so that a restart never prints them twice).
fn query_run(
    session: &Session,
    name: &str,
    query: Query,
    format: RowFormat,
) -> Result<QueryRun, SqlError> {
    let screen = Arc::<Screen>::default();
    let control = JobControl::default();
    let stdout = std::io::stdout();
    let shared = stdout.is_terminal().then(|| Arc::clone(&screen));
    let checkpointed = query.config.checkpoint_interval.is_some();
    let mut printer = None;
    let (graph, _) = session.query_job_into(name, &query, |schema| {
        let out = RowPrinter::new(Box::new(stdout), schema, format, shared, control.clone());
        let out = Arc::new(out);
        printer = Some(Arc::clone(&out));
        Arc::new(CollectSink::delivering(out, checkpointed))
    })?;
    let printer = printer.expect("the sink was made");
    if graph.mode == RuntimeMode::Streaming {
        printer.streaming();
    }
    Ok(QueryRun {
        query,
        graph,
        printer,
        screen,
        control,
    })
}

/// Runs every query of `script` (printing its rows), then its inserts as
/// one job; with `summaries`, prints each job's summary after it.
pub async fn run_script(
    script: &Script,
    tables: &[String],
    config: JobConfig,
    format: RowFormat,
    summaries: bool,
    running: &Running,
) -> Result<()> {
    let jobs = build_jobs(script, tables, config, format).await?;
    for query in jobs.queries {
        let outcome = running
            .run_on(
                &MiniCluster::new(query.query.config),
                query.graph,
                query.screen,
                query.control,
            )
            .await;
        if query.printer.closed() {
            // The reader of the rows left (`weir sql ... | head`): so do we.
            return Ok(());
        }
        // The rows printed stand: their table, CSV or JSON is closed even
        // when the job failed or was cancelled after printing some.
        if outcome.is_ok() || query.printer.rows() > 0 {
            query.printer.finish()?;
        }
        let summary = outcome?;
        if summaries {
            eprintln!("{summary}");
        } else {
            eprintln!(
                "{} row(s) in {:.3} s",
                query.printer.rows(),
                summary.wall_time.as_secs_f64()
            );
        }
    }
    if let Some((_, graph)) = jobs.inserts {
        let summary = running.run(&MiniCluster::new(jobs.config), graph).await?;
        eprintln!("{summary}");
    }
    Ok(())
}

/// A job to explain: its logical plan (SQL jobs) and its graphs.
pub struct Explained {
    logical: Option<String>,
    /// The job graph, execution graph and regions.
    pub graph: Explain,
}

/// The jobs of `script`, explained.
pub async fn explain_script(
    script: &Script,
    tables: &[String],
    config: JobConfig,
) -> Result<Vec<Explained>> {
    let jobs = build_jobs(script, tables, config, RowFormat::Table).await?;
    let mut explained = Vec::new();
    for job in &jobs.queries {
        explained.push(Explained {
            logical: Some(job.query.plan.display_indent().to_string()),
            graph: Explain::try_new(&job.graph)?,
        });
    }
    if let Some((inserts, graph)) = &jobs.inserts {
        let plans: Vec<String> = inserts
            .iter()
            .map(|i| format!("INSERT INTO {}\n{}", i.table, i.plan.display_indent()))
            .collect();
        explained.push(Explained {
            logical: Some(plans.join("\n\n")),
            graph: Explain::try_new(graph)?,
        });
    }
    Ok(explained)
}

/// Built-in job `name`, explained.
pub async fn explain_example(
    name: &str,
    options: &JobOptions,
    config: &JobConfig,
) -> Result<Vec<Explained>> {
    let (graph, _) = example_job(name, options, config).await?;
    Ok(vec![Explained {
        logical: None,
        graph: Explain::try_new(&graph)?,
    }])
}

/// The jobs as text: each one's logical plan, then its graphs.
pub fn explain_text(jobs: &[Explained]) -> String {
    let mut out = Vec::new();
    for job in jobs {
        let mut text = String::new();
        if let Some(plan) = &job.logical {
            text.push_str("== Logical plan\n");
            text.push_str(plan);
            text.push_str("\n\n");
        }
        text.push_str(&job.graph.to_string());
        out.push(text);
    }
    out.join("\n\n")
}

/// The jobs as a JSON array of `{logical_plan, graph}` objects.
pub fn explain_json(jobs: &[Explained]) -> String {
    let values: Vec<serde_json::Value> = jobs
        .iter()
        .map(|job| {
            serde_json::json!({
                "logical_plan": job.logical,
                "graph": serde_json::to_value(&job.graph).expect("the plan serializes"),
            })
        })
        .collect();
    if values.len() == 1 {
        serde_json::to_string_pretty(&values[0])
    } else {
        serde_json::to_string_pretty(&values)
    }
    .expect("serializes")
}

async fn example_job(
    name: &str,
    options: &JobOptions,
    config: &JobConfig,
) -> Result<(JobGraph, examples::ExampleJob)> {
    let example = examples::build(
        name,
        options.input.as_deref(),
        options.rows,
        config.parallelism,
    )
    .await?;
    let graph = config.build(example.builder.clone())?;
    Ok((graph, example))
}

/// Runs built-in job `name` and prints its top rows and summary.
pub async fn run_example(
    name: &str,
    options: &JobOptions,
    config: JobConfig,
    top: usize,
    running: &Running,
) -> Result<()> {
    let (graph, example) = example_job(name, options, &config).await?;
    let summary = running.run(&MiniCluster::new(config), graph).await?;
    let batches = example.output.batches();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if let Some(ranked) = examples::top_rows(&batches, example.rank_by, top)? {
        println!(
            "top {} of {rows} result rows by {}:",
            ranked.num_rows(),
            example.rank_by
        );
        println!("{}", arrow::util::pretty::pretty_format_batches(&[ranked])?);
    } else {
        println!("the job produced no rows");
    }
    eprintln!("{summary}");
    Ok(())
}
