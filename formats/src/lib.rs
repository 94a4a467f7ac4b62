//! # weir-formats
//!
//! weir's connectors: the sources and sinks that read and write the outside
//! world. Each connector registers in the engine's
//! [`ConnectorRegistry`](weir_engine::registry::ConnectorRegistry) under its
//! name, which is how SQL's `'connector' = '...'` and the command line find
//! it; [`register_all`] registers every connector of this crate.
//!
//! Connectors:
//! - [`parquet`]: Parquet tables, read by row group with projection,
//!   statistics, page-index and row-filter pushdown; written with a codec,
//!   row group and page sizes.
//! - [`ipc`]: Arrow IPC files (and streams).
//! - [`csv`] and [`json`]: CSV and JSON-lines files: options, schema
//!   inference or a schema string ([`schema_string`]), decoders that keep
//!   or report [`bad_records`], encoders.
//! - [`text`]: lines of text files, one row per line.
//! - [`datagen`]: generated rows of the columns a table declares, random
//!   or in sequence, the same at any parallelism.
//! - [`nexmark`]: the Nexmark benchmark's people, auctions and bids.
//! - [`kafka`]: Kafka topics, read by partition with offsets in
//!   checkpoints, and written at least once.
//! - [`print`] and [`blackhole`]: sinks that print every row (as Flink
//!   does) or discard them.
//!
//! What the file connectors share:
//! - [`listing`]: a table's files — a file, a directory or a glob in any
//!   object store (local paths, `file://`, `s3://`, `memory://`) — and
//!   [`hive`] partition directories as columns;
//! - [`file_source`]: splitting files over subtasks, projections, partition
//!   columns; [`schema_merge`]: one schema for files that differ;
//! - [`file_sink`]: writes staged per attempt and committed with the job,
//!   hive-partitioned, rolling files, append / overwrite / error-if-exists;
//! - [`options`] and [`error`]: options and errors naming the file, line or
//!   option at fault.

pub mod bad_records;
pub mod blackhole;
pub mod csv;
pub mod datagen;
pub mod error;
pub mod file_sink;
pub mod file_source;
pub mod hive;
pub mod ipc;
pub mod json;
pub mod kafka;
pub mod listing;
pub mod nexmark;
pub mod options;
pub mod parquet;
pub mod print;
pub mod schema_merge;
pub mod schema_string;
mod separate;
pub mod text;
pub mod text_source;
mod throttle;

#[cfg(test)]
mod test_batches;

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
    registry.register_source(Arc::new(csv::CsvConnector));
    registry.register_sink(Arc::new(csv::CsvConnector));
    registry.register_source(Arc::new(json::JsonConnector));
    registry.register_sink(Arc::new(json::JsonConnector));
    registry.register_source(Arc::new(datagen::DatagenConnector));
    registry.register_source(Arc::new(nexmark::NexmarkConnector));
    registry.register_source(Arc::new(kafka::KafkaConnector));
    registry.register_sink(Arc::new(kafka::KafkaConnector));
    registry.register_sink(Arc::new(print::PrintConnector));
    registry.register_sink(Arc::new(blackhole::BlackholeConnector));
}

/// A registry with every connector of this crate.
pub fn registry() -> ConnectorRegistry {
    let mut registry = ConnectorRegistry::new();
    register_all(&mut registry);
    registry
}
