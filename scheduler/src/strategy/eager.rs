//! Eager scheduling: every region at once (streaming jobs, all-pipelined
//! jobs).

use super::SchedulingStrategy;
use crate::region::{RegionId, Regions};
use crate::slot::SlotPool;

/// Deploys every ready region as soon as the job starts. All subtasks of the
/// job run at once and share slots across regions, so the job needs as many
/// slots as its largest vertex parallelism; it fails fast when there are
/// fewer.
#[derive(Debug, Default)]
pub struct EagerStrategy;

impl SchedulingStrategy for EagerStrategy {
    fn name(&self) -> &'static str {
        "eager"
    }

    fn check(&self, regions: &Regions, slots: usize) -> Result<(), String> {
        let needed = regions.widest_vertex();
        if needed > slots {
            return Err(format!(
                "all {} region(s) run at once and need {needed} slot(s), but the cluster has {slots}: \
                 lower the parallelism or raise worker.slots",
                regions.len()
            ));
        }
        Ok(())
    }

    fn select(
        &mut self,
        ready: &[RegionId],
        _regions: &Regions,
        _slots: &mut SlotPool,
    ) -> Vec<RegionId> {
        ready.to_vec()
    }

    fn release(&mut self, _region: RegionId, _regions: &Regions, _slots: &mut SlotPool) {}
}
