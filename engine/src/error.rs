/// Errors of the engine: building jobs and running tasks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An exchange error (partitions, channels).
    #[error(transparent)]
    Exchange(#[from] weir_exchange::Error),
    /// An Arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The job is not valid as built (cycles, mismatched parallelism, ...).
    #[error("invalid job: {0}")]
    Plan(String),
    /// A connector option has a value it cannot take.
    #[error("option '{option}': {message}")]
    InvalidOption {
        /// The option's name.
        option: String,
        /// What is wrong with its value.
        message: String,
    },
    /// An operator failed on its input.
    #[error("operator '{operator}': {message}")]
    Operator {
        /// The operator's name.
        operator: String,
        /// What went wrong.
        message: String,
    },
    /// A connector (source or sink) failed or was misconfigured.
    #[error("connector '{connector}': {message}")]
    Connector {
        /// The connector's name.
        connector: String,
        /// What went wrong.
        message: String,
    },
    /// The input is invalid: a corrupt or truncated file, a malformed
    /// record, schemas that disagree. Running again fails the same way.
    #[error("bad input: {message}")]
    BadInput {
        /// What is wrong, naming the file and the line, row group or column.
        message: String,
    },
    /// A failure injected on purpose by a test's failure plan.
    #[error("injected failure in {task} at record {record}")]
    InjectedFailure {
        /// The failing task, as `vertex[subtask] attempt N`.
        task: String,
        /// The record count at which it failed.
        record: u64,
    },
    /// A task killed on purpose by a test's failure plan, wherever it was.
    #[error("injected kill of {task} at {records} records")]
    InjectedKill {
        /// The killed task, as `vertex[subtask] attempt N`.
        task: String,
        /// The records it had read and written.
        records: u64,
    },
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An operator needs more memory than its budget allows and may not
    /// spill (or spilling cannot make room).
    #[error(
        "resources exhausted: operator '{operator}' needs {requested} more bytes, holds {held}, \
         and the task's memory budget is {budget} bytes{}",
        if *spill { "" } else { " (spilling is disabled: raise the budget or enable spilling)" }
    )]
    ResourcesExhausted {
        /// The operator's name.
        operator: String,
        /// The task's budget in bytes.
        budget: usize,
        /// Bytes the operator holds.
        held: usize,
        /// Bytes it asked for.
        requested: usize,
        /// Whether spilling was enabled.
        spill: bool,
    },
    /// Writing or reading a spill file failed.
    #[error("operator '{operator}': {source}")]
    Spill {
        /// The operator that spilled.
        operator: String,
        /// What failed, naming the file.
        #[source]
        source: weir_exchange::spill::SpillError,
    },
    /// Taking part in a checkpoint, or restoring one, failed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A task failed in another process (a worker), or the process was
    /// lost: what the failure was there.
    #[error("{message}")]
    Remote {
        /// The failure, as the other process put it.
        message: String,
        /// Why running the task again would fail the same way, when it
        /// would.
        not_retryable: Option<String>,
        /// The blocking partition it found missing or corrupt, if any.
        lost_partition: Option<weir_exchange::ResultPartitionId>,
    },
    /// An expression could not be planned or evaluated.
    #[error("expression {expr}: {message}")]
    Expr {
        /// The expression, as displayed.
        expr: String,
        /// What went wrong (names the columns involved).
        message: String,
    },
}

/// Result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether running the same task again may succeed (Flink's
    /// recoverable failures): lost partitions, I/O, injected failures. An
    /// invalid job, an expression or operator failing on its input (a
    /// division by zero, a bad cast, a panic), bad input or an operator over
    /// its memory budget fails the same way every time: the job fails at
    /// once.
    pub fn is_retryable(&self) -> bool {
        use arrow::error::ArrowError;
        match self {
            // An operator or an expression failing on its input, a bad
            // input, a job that cannot run as built: deterministic.
            Error::Plan(_)
            | Error::InvalidOption { .. }
            | Error::Operator { .. }
            | Error::ResourcesExhausted { .. }
            | Error::Expr { .. }
            | Error::BadInput { .. } => false,
            Error::Remote { not_retryable, .. } => not_retryable.is_none(),
            Error::Arrow(e) => matches!(
                e,
                ArrowError::IoError(..) | ArrowError::ExternalError(_) | ArrowError::MemoryError(_)
            ),
            _ => true,
        }
    }

    /// Why running the task again would fail the same way, when it would
    /// (see [`Error::is_retryable`]).
    pub fn why_not_retryable(&self) -> Option<&str> {
        if self.is_retryable() {
            return None;
        }
        Some(match self {
            Error::Remote {
                not_retryable: Some(why),
                ..
            } => why,
            Error::Plan(_) | Error::InvalidOption { .. } => "the job is invalid as built",
            Error::ResourcesExhausted { .. } => "the task's memory budget is too small",
            Error::BadInput { .. } => "the input is invalid",
            _ => "the failure follows from the data and the query",
        })
    }

    /// Whether a pipelined input closed before its end: its producer
    /// stopped, and the producer's own failure says why.
    pub fn is_input_closed(&self) -> bool {
        matches!(
            self,
            Error::Exchange(weir_exchange::Error::ChannelClosed(_))
        )
    }

    /// The blocking partition this error reports as missing or corrupt.
    pub fn lost_partition(&self) -> Option<&weir_exchange::ResultPartitionId> {
        match self {
            Error::Exchange(e) => e.lost_partition(),
            Error::Remote { lost_partition, .. } => lost_partition.as_ref(),
            _ => None,
        }
    }
}
