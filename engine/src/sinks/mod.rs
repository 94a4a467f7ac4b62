//! Built-in sinks. File and Kafka sinks live in `weir-formats`.

mod collect;

pub use collect::{CollectSink, Collected, RowsFrom, RowsOut};
