//! Controlling a running job from outside it: take a savepoint, stop it
//! (with a final savepoint or without), or cancel it.
//!
//! A [`JobControl`] is handed to [`MiniCluster::run_with_control`]
//! (crate::MiniCluster::run_with_control) and kept by the caller; requests
//! reach the job's master, which answers once they are done.

use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

use crate::{Error, Result};

/// Where a savepoint goes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SavepointTarget {
    /// A directory of its own, `savepoint-<job>-<n>`, under the job's
    /// `execution.checkpointing.savepoint-dir`.
    Configured,
    /// This directory or object store URL; a savepoint it held is replaced
    /// once the new one is whole.
    Dir(String),
}

/// A request to a running job.
#[derive(Debug)]
pub(crate) enum ControlRequest {
    /// Take a savepoint; answered with its URL.
    Savepoint {
        target: SavepointTarget,
        reply: oneshot::Sender<Result<String>>,
    },
    /// Stop the job, after a savepoint if one is asked for; answered with
    /// the savepoint's URL.
    Stop {
        savepoint: Option<SavepointTarget>,
        reply: oneshot::Sender<Result<Option<String>>>,
    },
    /// End the job now, committing nothing more.
    Cancel,
}

/// The handle of a running job.
#[derive(Debug, Clone)]
pub struct JobControl {
    requests: UnboundedSender<ControlRequest>,
    receiver: Arc<Mutex<Option<UnboundedReceiver<ControlRequest>>>>,
    job_id: Arc<OnceLock<String>>,
}

impl Default for JobControl {
    fn default() -> Self {
        let (requests, receiver) = unbounded_channel();
        Self {
            requests,
            receiver: Arc::new(Mutex::new(Some(receiver))),
            job_id: Arc::default(),
        }
    }
}

impl JobControl {
    /// The id of the job, once it started.
    pub fn job_id(&self) -> Option<&str> {
        self.job_id.get().map(String::as_str)
    }

    pub(crate) fn start(&self, job_id: &str) -> Option<UnboundedReceiver<ControlRequest>> {
        let _ = self.job_id.set(job_id.to_string());
        self.receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Takes a savepoint of the running job; the job goes on.
    ///
    /// # Errors
    /// When the job is not running, takes no checkpoints (a batch job),
    /// has no savepoint directory configured for
    /// [`SavepointTarget::Configured`], or the savepoint fails.
    pub async fn savepoint(&self, target: SavepointTarget) -> Result<String> {
        let (reply, answer) = oneshot::channel();
        self.send(ControlRequest::Savepoint { target, reply })?;
        answer.await.map_err(|_| not_running())?
    }

    /// Stops the job: with a final savepoint when asked (everything up to
    /// it committed, nothing after), then ends it. The job's run returns
    /// successfully.
    ///
    /// # Errors
    /// When the job is not running or the savepoint fails (the job goes
    /// on).
    pub async fn stop(&self, savepoint: Option<SavepointTarget>) -> Result<Option<String>> {
        let (reply, answer) = oneshot::channel();
        self.send(ControlRequest::Stop { savepoint, reply })?;
        answer.await.map_err(|_| not_running())?
    }

    /// Cancels the job: it ends at once, its uncommitted output discarded.
    ///
    /// # Errors
    /// When the job is not running.
    pub fn cancel(&self) -> Result<()> {
        self.send(ControlRequest::Cancel)
    }

    fn send(&self, request: ControlRequest) -> Result<()> {
        self.requests.send(request).map_err(|_| not_running())
    }
}

fn not_running() -> Error {
    Error::Control("the job is not running".to_string())
}
