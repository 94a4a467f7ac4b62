//! A test's hook into a running task.

use crate::Result;

use super::TaskInfo;

/// What a test sees of a running task, and how it fails it on purpose at
/// an exact record, as a bug in an operator would: the job master and its
/// failover code then meet a real task failure. Deployments made outside
/// tests carry none, and none crosses to a worker process.
pub trait TaskHook: Send + Sync + std::fmt::Debug {
    /// The task `task` read records `before + 1 ..= after`; an error fails
    /// it before it processes them.
    ///
    /// # Errors
    /// The failure the test injects.
    fn records_in(&self, task: &TaskInfo, before: u64, after: u64) -> Result<()>;
}
