//! Built-in sources: in-memory batches and a deterministic generator, and
//! the reader of a subtask left without splits. File and Kafka sources
//! live in `weir-formats`.

mod generator;
mod memory;
mod splitless;

pub use generator::SequenceGenerator;
pub use memory::MemorySource;
pub use splitless::SplitlessReader;
