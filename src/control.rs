//! Controlling running jobs from the command line.
//!
//! While `weir run` runs a job, it listens on a Unix socket of its own,
//! `$TMPDIR/weir-jobs/<job id>.sock` (a directory only its user can
//! enter), for requests of `weir savepoint`, `weir stop` and `weir
//! cancel`, one JSON line each, answered with one JSON line. Ctrl-C cancels
//! the job, or stops it with a savepoint when `--stop-with-savepoint` asks;
//! a second Ctrl-C exits at once.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use weir_scheduler::{JobControl, SavepointTarget};

/// A request to a running job.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Take a savepoint; the job goes on.
    Savepoint {
        /// Where it goes.
        target: SavepointTarget,
    },
    /// Stop the job, with a final savepoint when asked.
    Stop {
        /// Where the savepoint goes.
        savepoint: Option<SavepointTarget>,
    },
    /// Cancel the job.
    Cancel,
}

/// Where a savepoint asked for with `dir` goes (without: under the job's
/// `execution.checkpointing.savepoint-dir`): a local directory is made
/// absolute here, as the job may run in another directory.
///
/// # Errors
/// When the current directory is unknown.
pub fn savepoint_target(dir: Option<String>) -> Result<SavepointTarget> {
    let Some(dir) = dir else {
        return Ok(SavepointTarget::Configured);
    };
    if dir.contains("://") {
        return Ok(SavepointTarget::Dir(dir));
    }
    let absolute = std::path::absolute(&dir).with_context(|| format!("locating {dir}"))?;
    Ok(SavepointTarget::Dir(absolute.display().to_string()))
}

/// The answer to a request.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Reply {
    /// Done; the savepoint's URL when one was taken.
    Ok(Option<String>),
    /// Why it failed.
    Error(String),
}

/// The directory of the sockets of running jobs.
fn jobs_dir() -> PathBuf {
    std::env::temp_dir().join("weir-jobs")
}

/// The socket of job `id`.
fn socket_of(id: &str) -> PathBuf {
    jobs_dir().join(format!("{id}.sock"))
}

/// Runs `job` (a future running a job through `control`), serving requests
/// on its socket and taking Ctrl-C as a request to stop (with a savepoint
/// to `stop_savepoint` when given) or cancel. A `streaming` job's id is
/// shown with how to take a savepoint of it or stop it.
pub async fn controlled<F: Future>(
    control: &JobControl,
    streaming: bool,
    stop_savepoint: Option<&SavepointTarget>,
    job: F,
) -> F::Output {
    tokio::pin!(job);
    let serve = serve(control, streaming);
    tokio::pin!(serve);
    let mut interrupted = false;
    // The stop asked for by Ctrl-C, ended with the job.
    let mut stopping = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            outcome = &mut job => return outcome,
            () = &mut serve => {}
            _ = tokio::signal::ctrl_c() => {
                if interrupted {
                    eprintln!("interrupted again: exiting");
                    std::process::exit(130);
                }
                interrupted = true;
                let control = control.clone();
                match stop_savepoint {
                    Some(target) => {
                        eprintln!("stopping the job with a savepoint (Ctrl-C again to exit at once)");
                        let target = target.clone();
                        // The job ends when the savepoint is taken.
                        stopping.spawn(async move {
                            if let Err(e) = control.stop(Some(target)).await {
                                eprintln!("the savepoint failed: {e}; cancelling");
                                let _ = control.cancel();
                            }
                        });
                    }
                    None => {
                        eprintln!("cancelling the job (Ctrl-C again to exit at once)");
                        let _ = control.cancel();
                    }
                }
            }
        }
    }
}

/// Serves requests on the job's socket while the job runs; never ends.
async fn serve(control: &JobControl, streaming: bool) {
    // The job id is known once the job started.
    let id = loop {
        if let Some(id) = control.job_id() {
            break id.to_string();
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    let listener = match bind(&id) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!("job {id} cannot be controlled from outside: {e:#}");
            return std::future::pending().await;
        }
    };
    let _remove = SocketFile(socket_of(&id));
    if streaming {
        eprintln!(
            "job {id} running (weir savepoint {id} [DIR], weir stop {id} [--savepoint [DIR]])"
        );
    }
    // The requests being answered, ended with the job.
    let mut requests = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let control = control.clone();
        // One request per connection, answered while the job goes on.
        requests.spawn(async move {
            if let Err(e) = answer(stream, &control).await {
                tracing::warn!("a control request failed: {e:#}");
            }
        });
    }
}

fn bind(id: &str) -> Result<UnixListener> {
    let dir = jobs_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("restricting {}", dir.display()))?;
    let path = socket_of(id);
    UnixListener::bind(&path).with_context(|| format!("listening on {}", path.display()))
}

/// Removes the socket file when the job ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn answer(stream: UnixStream, control: &JobControl) -> Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    if BufReader::new(read).read_line(&mut line).await? == 0 {
        // A look whether the job runs (`weir list`), not a request.
        return Ok(());
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(e) => Reply::Error(format!("not a request: {e}")),
        Ok(Request::Savepoint { target }) => match control.savepoint(target).await {
            Ok(url) => Reply::Ok(Some(url)),
            Err(e) => Reply::Error(e.to_string()),
        },
        Ok(Request::Stop { savepoint }) => match control.stop(savepoint).await {
            Ok(url) => Reply::Ok(url),
            Err(e) => Reply::Error(e.to_string()),
        },
        Ok(Request::Cancel) => match control.cancel() {
            Ok(()) => Reply::Ok(None),
            Err(e) => Reply::Error(e.to_string()),
        },
    };
    let mut text = serde_json::to_string(&reply)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    Ok(())
}

/// Sends `request` to the running job `id` (or the only one whose id
/// starts with it) and returns the savepoint URL it answered with.
///
/// # Errors
/// No such job, or the job's error.
pub async fn send(id: &str, request: &Request) -> Result<Option<String>> {
    let path = find(id)?;
    let stream = UnixStream::connect(&path)
        .await
        .with_context(|| format!("job {id} does not answer (is it still running?)"))?;
    let (read, mut write) = stream.into_split();
    let mut text = serde_json::to_string(request)?;
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    match serde_json::from_str::<Reply>(&line).context("the job's answer")? {
        Reply::Ok(url) => Ok(url),
        Reply::Error(e) => Err(anyhow!(e)),
    }
}

/// The ids of the jobs running on this machine under this user.
pub fn running() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(jobs_dir()) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".sock").map(str::to_string)
        })
        .filter(|id| std::os::unix::net::UnixStream::connect(socket_of(id)).is_ok())
        .collect();
    ids.sort();
    ids
}

fn find(id: &str) -> Result<PathBuf> {
    let exact = socket_of(id);
    if Path::new(&exact).exists() {
        return Ok(exact);
    }
    let matching: Vec<String> = running()
        .into_iter()
        .filter(|running| running.starts_with(id))
        .collect();
    match matching.as_slice() {
        [one] => Ok(socket_of(one)),
        [] => bail!(
            "no running job '{id}' (running: {})",
            list_or_none(&running())
        ),
        _ => bail!("'{id}' names several jobs: {}", matching.join(", ")),
    }
}

fn list_or_none(ids: &[String]) -> String {
    if ids.is_empty() {
        "none".to_string()
    } else {
        ids.join(", ")
    }
}
