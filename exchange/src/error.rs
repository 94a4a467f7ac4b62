use crate::shuffle_root::ResultPartitionId;

/// Errors of the exchange layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A blocking result partition that a consumer needs does not exist
    /// (never written, deleted, or lost with its worker).
    #[error("result partition {partition} not found at {path}")]
    PartitionNotFound {
        /// The partition that is missing.
        partition: ResultPartitionId,
        /// Where it was expected.
        path: String,
    },
    /// A blocking result partition exists but cannot be trusted: truncated,
    /// a checksum mismatch, or an unreadable index.
    #[error("result partition {partition} at {path} is corrupt: {reason}")]
    PartitionCorrupt {
        /// The partition that is corrupt.
        partition: ResultPartitionId,
        /// Where it was read.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// A checkpoint file that a restore needs does not exist.
    #[error("checkpoint file {path} not found")]
    CheckpointNotFound {
        /// Where it was expected.
        path: String,
    },
    /// A checkpoint file exists but does not match what its checkpoint
    /// recorded (truncated, damaged) or cannot be decoded.
    #[error("checkpoint file {path} is corrupt: {reason}")]
    CheckpointCorrupt {
        /// Where it was read.
        path: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The other side of a pipelined channel went away.
    #[error("pipelined channel closed: {0}")]
    ChannelClosed(&'static str),
    /// A remote channel failed: its producer's process could not be
    /// reached, or answered with what is no event.
    #[error("remote channel: {0}")]
    Remote(String),
    /// A partitioner could not route a batch (for instance, a hash key column
    /// is missing or of a type that cannot be hashed).
    #[error("partitioner {partitioner}: {reason}")]
    Partitioning {
        /// The partitioner, as displayed in plans.
        partitioner: String,
        /// What went wrong.
        reason: String,
    },
    /// A blocking partition file could not be written (a full disk, a
    /// store gone away).
    #[error("writing the shuffle partition {path} under the shuffle root {root}: {source}")]
    PartitionWrite {
        /// The shuffle root (`shuffle.root`).
        root: String,
        /// The file within it.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// A shuffle root URL or an exchange option is invalid.
    #[error("invalid exchange configuration: {0}")]
    Config(String),
    /// An Arrow error.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// A Parquet error.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// An object store error.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    /// An I/O error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Result type of the exchange layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The partition this error reports as missing or corrupt, if any.
    /// Failover uses it to decide which producer region must run again.
    pub fn lost_partition(&self) -> Option<&ResultPartitionId> {
        match self {
            Error::PartitionNotFound { partition, .. }
            | Error::PartitionCorrupt { partition, .. } => Some(partition),
            _ => None,
        }
    }
}
