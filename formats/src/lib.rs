//! # weir-formats
//!
//! weir's connectors: the sources and sinks that read and write the outside
//! world. Each connector registers in the engine's
//! [`ConnectorRegistry`](weir_engine::registry::ConnectorRegistry) under its
//! name, which is how SQL's `'connector' = '...'` and the command line find
//! it; [`register_all`] registers every connector of this crate.
//!
//! - [`text`]: lines of text files (local or object store), one row per line.
//! - [`csv`]: the CSV format: options, schema inference, decoder, encoder.
//! - [`json`]: the JSON-lines format: schema inference, decoder, encoder.
//! - [`bad_records`]: what decoders do with records they cannot decode.
//! - [`schema_string`]: schemas given as text (`id BIGINT, name VARCHAR`).

pub mod bad_records;
pub mod csv;
pub mod error;
pub mod json;
pub mod schema_string;
mod separate;
pub mod text;

#[cfg(test)]
mod test_batches;

pub use error::{Error, Result};

use std::sync::Arc;

use weir_engine::registry::ConnectorRegistry;

/// Registers every connector of this crate.
pub fn register_all(registry: &mut ConnectorRegistry) {
    registry.register_source(Arc::new(text::TextConnector));
}

/// A registry with every connector of this crate.
pub fn registry() -> ConnectorRegistry {
    let mut registry = ConnectorRegistry::new();
    register_all(&mut registry);
    registry
}
