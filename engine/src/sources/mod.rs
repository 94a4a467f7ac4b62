//! Built-in sources: in-memory batches and a deterministic generator. File
//! and Kafka sources live in `weir-formats`.

mod generator;
mod memory;

pub use generator::SequenceGenerator;
pub use memory::MemorySource;
