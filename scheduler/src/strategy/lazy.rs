//! Lazy topological scheduling: batch jobs, region by region.

use super::SchedulingStrategy;
use crate::region::{RegionId, Regions};
use crate::slot::SlotPool;

/// Deploys ready regions in topological order as slots free up. A region
/// that does not fit in the free slots waits, and so do the regions after
/// it, so regions start in topological order.
#[derive(Debug, Default)]
pub struct LazyTopologicalStrategy;

impl SchedulingStrategy for LazyTopologicalStrategy {
    fn name(&self) -> &'static str {
        "lazy-topological"
    }

    fn check(&self, regions: &Regions, slots: usize) -> Result<(), String> {
        match regions.all().iter().find(|r| r.slots > slots) {
            Some(region) => Err(format!(
                "region {} runs {} subtasks of one vertex at once and needs {} slot(s), but the \
                 cluster has {slots}: lower the parallelism, raise worker.slots, or make more \
                 exchanges blocking (execution.batch-shuffle-mode = all-blocking)",
                region.id, region.slots, region.slots
            )),
            None => Ok(()),
        }
    }

    fn select(
        &mut self,
        ready: &[RegionId],
        regions: &Regions,
        slots: &mut SlotPool,
    ) -> Vec<RegionId> {
        let mut chosen = Vec::new();
        for &region in ready {
            if !slots.try_allocate(regions.get(region).slots) {
                break;
            }
            chosen.push(region);
        }
        chosen
    }

    fn release(&mut self, region: RegionId, regions: &Regions, slots: &mut SlotPool) {
        slots.release(regions.get(region).slots);
    }
}
