//! Scheduling strategies: which regions to deploy, and when.

mod eager;
mod lazy;

pub use eager::EagerStrategy;
pub use lazy::LazyTopologicalStrategy;

use crate::region::{RegionId, Regions};
use crate::slot::SlotPool;

/// Decides which ready regions to deploy.
///
/// A region is *ready* when every blocking partition it reads is complete;
/// the job master tracks readiness and asks the strategy which ready regions
/// to deploy now.
pub trait SchedulingStrategy: Send + Sync {
    /// The strategy's name in plans and summaries.
    fn name(&self) -> &'static str;

    /// Checks, before anything runs, that the job can run on `slots` slots.
    ///
    /// # Errors
    /// A message saying what is short and what to do about it.
    fn check(&self, regions: &Regions, slots: usize) -> Result<(), String>;

    /// Picks the regions to deploy from `ready` (ascending ids, i.e.
    /// topological order), taking their slots from `slots`.
    fn select(
        &mut self,
        ready: &[RegionId],
        regions: &Regions,
        slots: &mut SlotPool,
    ) -> Vec<RegionId>;

    /// Gives back the slots of a region that finished or was cancelled.
    fn release(&mut self, region: RegionId, regions: &Regions, slots: &mut SlotPool);
}
