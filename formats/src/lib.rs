//! # weir-formats
//!
//! weir's connectors: the sources and sinks that read and write the outside
//! world. Each connector registers in the engine's
//! [`ConnectorRegistry`](weir_engine::registry::ConnectorRegistry) under its
//! name, which is how SQL's `'connector' = '...'` and the command line find
//! it; [`register_all`] registers every connector of this crate.
//!
//! - [`text`]: lines of text files (local or object store), one row per line.
//! - [`parquet`]: pruning Parquet reads with a scan's filters.

pub mod error;
pub mod file_sink;
pub mod file_source;
pub mod hive;
pub mod ipc;
pub mod listing;
pub mod options;
pub mod parquet;
pub mod schema_merge;
pub mod text;

pub use error::{Error, Result};

use std::sync::Arc;

use weir_engine::registry::ConnectorRegistry;

/// Registers every connector of this crate.
pub fn register_all(registry: &mut ConnectorRegistry) {
    registry.register_source(Arc::new(text::TextConnector));
    registry.register_source(Arc::new(parquet::ParquetConnector));
    registry.register_sink(Arc::new(parquet::ParquetConnector));
    registry.register_source(Arc::new(ipc::IpcConnector));
    registry.register_sink(Arc::new(ipc::IpcConnector));
}

/// A registry with every connector of this crate.
pub fn registry() -> ConnectorRegistry {
    let mut registry = ConnectorRegistry::new();
    register_all(&mut registry);
    registry
}
