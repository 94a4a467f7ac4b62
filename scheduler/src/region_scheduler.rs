//! The scheduler part of a job master: where each pipelined region is in
//! its life, which regions to deploy next (the scheduling strategy picks
//! among those whose inputs are written, within the free slots), and the
//! slots they hold.

use std::time::Instant;

use crate::execution_graph::PartitionKey;
use crate::region::{RegionId, Regions};
use crate::slot::SlotPool;
use crate::strategy::SchedulingStrategy;

/// Where a region is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionState {
    /// Not deployed; deployable once its blocking inputs are written.
    Waiting,
    /// Deployed; `unfinished` subtasks still running.
    Running {
        /// Its subtasks that did not finish yet.
        unfinished: usize,
    },
    /// Every subtask finished.
    Finished,
    /// Cancelled after a failure; waits until `at` under the restart
    /// strategy, then for its inputs again.
    Restarting {
        /// When it may run again.
        at: Instant,
    },
}

/// The regions of one job, and their slots.
pub struct RegionScheduler {
    strategy: Box<dyn SchedulingStrategy>,
    slots: SlotPool,
    states: Vec<RegionState>,
}

impl RegionScheduler {
    /// Schedules `regions` by `strategy` on `slots`; every region waits.
    pub fn new(strategy: Box<dyn SchedulingStrategy>, slots: SlotPool, regions: &Regions) -> Self {
        Self {
            strategy,
            slots,
            states: vec![RegionState::Waiting; regions.len()],
        }
    }

    /// The strategy's name, for summaries.
    pub fn strategy(&self) -> &'static str {
        self.strategy.name()
    }

    /// Checks, before anything runs, that the slots can run `regions`.
    ///
    /// # Errors
    /// What is short, and what to do about it.
    pub fn check(&self, regions: &Regions) -> Result<(), String> {
        self.strategy.check(regions, self.slots.total())
    }

    /// The state of `region`.
    pub fn state(&self, region: RegionId) -> RegionState {
        self.states[region.0 as usize]
    }

    /// The regions to deploy now, which count as running from here on:
    /// those whose restart is due wait again, and the strategy picks among
    /// the waiting ones whose inputs `is_written`, taking their slots.
    pub fn select(
        &mut self,
        regions: &Regions,
        now: Instant,
        is_written: impl Fn(&PartitionKey) -> bool,
    ) -> Vec<RegionId> {
        for state in &mut self.states {
            if let RegionState::Restarting { at } = *state
                && at <= now
            {
                *state = RegionState::Waiting;
            }
        }
        let ready: Vec<RegionId> = regions
            .all()
            .iter()
            .filter(|r| self.state(r.id) == RegionState::Waiting)
            .filter(|r| r.consumes.iter().all(&is_written))
            .map(|r| r.id)
            .collect();
        let selected = self.strategy.select(&ready, regions, &mut self.slots);
        for &region in &selected {
            self.states[region.0 as usize] = RegionState::Running {
                unfinished: regions.get(region).subtasks.len(),
            };
        }
        selected
    }

    /// A subtask of `region` finished. Returns whether the region did
    /// (its slots are free then).
    pub fn subtask_finished(&mut self, region: RegionId, regions: &Regions) -> bool {
        let RegionState::Running { unfinished } = &mut self.states[region.0 as usize] else {
            return false;
        };
        *unfinished -= 1;
        if *unfinished > 0 {
            return false;
        }
        self.states[region.0 as usize] = RegionState::Finished;
        self.strategy.release(region, regions, &mut self.slots);
        true
    }

    /// `region` is cancelled to run again from `at`; a running one gives
    /// back its slots.
    pub fn restart(&mut self, region: RegionId, regions: &Regions, at: Instant) {
        if let RegionState::Running { .. } = self.state(region) {
            self.strategy.release(region, regions, &mut self.slots);
        }
        self.states[region.0 as usize] = RegionState::Restarting { at };
    }

    /// Whether `region` was deployed (and not restarted since).
    pub fn has_started(&self, region: RegionId) -> bool {
        matches!(
            self.state(region),
            RegionState::Running { .. } | RegionState::Finished
        )
    }

    /// Whether every region finished.
    pub fn all_finished(&self) -> bool {
        self.states.iter().all(|s| *s == RegionState::Finished)
    }

    /// How many regions finished.
    pub fn finished(&self) -> usize {
        self.states
            .iter()
            .filter(|s| **s == RegionState::Finished)
            .count()
    }

    /// When the next restart is due, if a region waits for one.
    pub fn next_restart(&self) -> Option<Instant> {
        self.states
            .iter()
            .filter_map(|s| match s {
                RegionState::Restarting { at } => Some(*at),
                _ => None,
            })
            .min()
    }

    /// The regions that wait to be deployed.
    pub fn waiting(&self) -> Vec<RegionId> {
        (0..self.states.len() as u32)
            .map(RegionId)
            .filter(|r| self.state(*r) == RegionState::Waiting)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use weir_engine::graph::{JobBuilder, ShuffleMode};
    use weir_engine::sinks::CollectSink;
    use weir_engine::sources::SequenceGenerator;

    use super::*;
    use crate::ExecutionGraph;
    use crate::strategy::LazyTopologicalStrategy;

    /// A source and a sink of parallelism 1 across a blocking edge: two
    /// regions, the second reading the first's partition.
    fn two_regions() -> ExecutionGraph {
        let mut builder = JobBuilder::new("two").with_parallelism(1);
        let source = builder.source(Arc::new(SequenceGenerator::new(Some(10), 1)));
        builder.sink(Arc::new(CollectSink::new().0), [source.rebalance()]);
        let job = builder.build(ShuffleMode::AllBlocking, 1).expect("builds");
        ExecutionGraph::try_new(Arc::new(job)).expect("an execution graph")
    }

    #[test]
    fn regions_run_when_their_inputs_are_written_and_slots_are_free() {
        let graph = two_regions();
        let regions = &graph.regions;
        let (first, second) = (RegionId(0), RegionId(1));
        let input = regions.get(second).consumes[0];
        let mut scheduler =
            RegionScheduler::new(Box::new(LazyTopologicalStrategy), SlotPool::new(1), regions);
        scheduler.check(regions).expect("one slot is enough");
        let now = Instant::now();
        assert_eq!(scheduler.select(regions, now, |_| false), vec![first]);
        assert!(scheduler.has_started(first) && !scheduler.has_started(second));
        // The input is not written yet: nothing else runs.
        assert!(scheduler.select(regions, now, |_| false).is_empty());
        assert!(scheduler.subtask_finished(first, regions));
        assert_eq!(scheduler.finished(), 1);
        let written = |p: &PartitionKey| *p == input;
        assert_eq!(scheduler.select(regions, now, written), vec![second]);
        assert!(scheduler.subtask_finished(second, regions));
        assert!(scheduler.all_finished());
    }

    #[test]
    fn a_restarted_region_gives_back_its_slots_and_waits_for_its_time() {
        let graph = two_regions();
        let regions = &graph.regions;
        let first = RegionId(0);
        let mut scheduler =
            RegionScheduler::new(Box::new(LazyTopologicalStrategy), SlotPool::new(1), regions);
        let now = Instant::now();
        assert_eq!(scheduler.select(regions, now, |_| false), vec![first]);
        let at = now + Duration::from_secs(5);
        scheduler.restart(first, regions, at);
        assert_eq!(scheduler.state(first), RegionState::Restarting { at });
        assert_eq!(scheduler.next_restart(), Some(at));
        assert!(!scheduler.has_started(first));
        // Not before its time; then again, with the slot it gave back.
        assert!(scheduler.select(regions, now, |_| false).is_empty());
        assert_eq!(scheduler.select(regions, at, |_| false), vec![first]);
        assert_eq!(scheduler.next_restart(), None);
        assert_eq!(scheduler.waiting(), vec![RegionId(1)]);
    }
}
