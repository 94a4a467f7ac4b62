//! Errors of the connectors.

use weir_engine::Error as EngineError;

/// What can go wrong reading or writing files and object stores. Every
/// variant names the URL or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option is missing, unknown or has an invalid value.
    #[error("option '{option}': {message}")]
    Option {
        /// The option's name.
        option: String,
        /// What is wrong with it.
        message: String,
    },
    /// The object store failed (network, permissions, not found).
    #[error("{url}: {source}")]
    Store {
        /// The URL of the object or prefix.
        url: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// A file is corrupt, truncated or not of the expected format.
    #[error("{file}: {message}")]
    Corrupt {
        /// The file's URL.
        file: String,
        /// What is wrong, as the decoder reports it.
        message: String,
    },
    /// A record cannot be decoded (and `bad-records` is `fail`).
    #[error("{file}, line {line}: {reason}")]
    BadRecord {
        /// The file's URL.
        file: String,
        /// The record's line number (1-based).
        line: u64,
        /// Why it cannot be decoded.
        reason: String,
    },
    /// A Kafka message cannot be decoded (and `bad-records` is `fail`).
    #[error("{partition}, offset {offset}: {reason}")]
    BadMessage {
        /// Its topic and partition.
        partition: String,
        /// Its offset.
        offset: i64,
        /// Why it cannot be decoded.
        reason: String,
    },
    /// Files whose schemas disagree.
    #[error("{message}")]
    SchemaMismatch {
        /// Names both files and the column.
        message: String,
    },
    /// A scan filter cannot be typed against the table's schema (an unknown
    /// column, incompatible types).
    #[error("filter {filter}: {message}")]
    Filter {
        /// The filter, as displayed.
        filter: String,
        /// What is wrong with it.
        message: String,
    },
    /// The declared columns do not suit the connector: it needs them and
    /// none were declared, or it cannot produce a column's type.
    #[error("{message}")]
    DeclaredColumns {
        /// The connector's name.
        connector: &'static str,
        /// What is wrong, naming the column.
        message: String,
    },
    /// The Kafka brokers failed or refused, or a topic or partition is not
    /// there.
    #[error("{message}")]
    Kafka {
        /// What failed, naming the brokers, topic, partition or offset.
        message: String,
    },
    /// Arrow failed on data the connector produced or was given.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Result type of the connectors.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<Error> for EngineError {
    fn from(e: Error) -> Self {
        match e {
            Error::Store { .. } | Error::Arrow(_) => EngineError::Connector {
                connector: "files".to_string(),
                message: e.to_string(),
            },
            Error::Option { option, message } => EngineError::InvalidOption { option, message },
            Error::Kafka { message } => EngineError::Connector {
                connector: "kafka".to_string(),
                message,
            },
            Error::DeclaredColumns { connector, message } => EngineError::Connector {
                connector: connector.to_string(),
                message,
            },
            Error::Filter { filter, message } => EngineError::Expr {
                expr: filter,
                message,
            },
            Error::Corrupt { .. }
            | Error::BadRecord { .. }
            | Error::BadMessage { .. }
            | Error::SchemaMismatch { .. } => EngineError::BadInput {
                message: e.to_string(),
            },
        }
    }
}
