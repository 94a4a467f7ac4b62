/// Errors of the scheduler: invalid configuration, unschedulable jobs and
/// jobs that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration key or value is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The job cannot be scheduled as it is (not enough slots, ...).
    #[error("cannot schedule job '{job}': {reason}")]
    Unschedulable {
        /// The job's name.
        job: String,
        /// Why, and what to do about it.
        reason: String,
    },
    /// The job failed for good.
    #[error("job '{job}' failed after {restarts} restart(s): {cause}")]
    JobFailed {
        /// The job's name.
        job: String,
        /// How often regions were restarted before giving up.
        restarts: u32,
        /// Why it stopped restarting, and the last task failure.
        cause: String,
    },
    /// The job was cancelled.
    #[error("job '{job}' was cancelled")]
    Cancelled {
        /// The job's name.
        job: String,
    },
    /// A request to a running job could not be carried out.
    #[error("{0}")]
    Control(String),
    /// A checkpoint cannot be recorded or restored.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The cluster's control plane: a coordinator or worker that cannot
    /// listen, connect, or agree with the other.
    #[error("cluster: {0}")]
    Cluster(String),
    /// An engine error outside of a task (building the job).
    #[error(transparent)]
    Engine(#[from] weir_engine::Error),
    /// An exchange error outside of a task (shuffle root, cleanup).
    #[error(transparent)]
    Exchange(#[from] weir_exchange::Error),
}

/// Result type of the scheduler.
pub type Result<T, E = Error> = std::result::Result<T, E>;
