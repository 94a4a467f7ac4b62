//! The job configuration of the end-to-end tests that run SQL in this
//! process.

use weir_scheduler::JobConfig;

/// A job in runtime mode `mode` at `parallelism`, with four slots and its
/// shuffle files in memory.
pub fn in_memory(mode: &str, parallelism: usize) -> JobConfig {
    let mut config = JobConfig::default();
    for (key, value) in [
        ("execution.runtime-mode", mode),
        ("parallelism.default", &parallelism.to_string()),
        ("worker.slots", "4"),
        ("shuffle.root", "memory://"),
    ] {
        config.set(key, value).expect("valid");
    }
    config
}
