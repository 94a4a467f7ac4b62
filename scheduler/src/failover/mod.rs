//! Failover: which regions restart when a task fails.
//!
//! The `region` strategy restarts the smallest set S of regions that gives
//! the same result as a failure-free run:
//! 1. the failed subtask's region;
//! 2. the producer region of every blocking partition that S reads and that
//!    is missing or corrupt, recursively;
//! 3. the consumer regions (that already started) of every region in S whose
//!    output is not deterministic, and transitively their consumers, because
//!    they may have read data that will now differ.
//!
//! Consumers of deterministic regions keep their results. `restart-all`
//! restarts every region.

pub mod restart;

use std::collections::BTreeSet;

use crate::execution_graph::PartitionKey;
use crate::region::{RegionId, Regions};

/// What a failover strategy may ask about the job's state.
pub struct FailoverView<'a> {
    /// The job's regions.
    pub regions: &'a Regions,
    /// Whether a blocking partition is missing or corrupt.
    pub is_lost: &'a dyn Fn(PartitionKey) -> bool,
    /// Whether a region has started (running or finished).
    pub has_started: &'a dyn Fn(RegionId) -> bool,
}

/// Computes the regions to restart after a task failure.
pub trait FailoverStrategy: Send + Sync {
    /// The strategy's configuration name.
    fn name(&self) -> &'static str;

    /// The regions to restart when a subtask of `failed` failed.
    fn regions_to_restart(&self, failed: RegionId, view: &FailoverView<'_>) -> BTreeSet<RegionId>;
}

/// Restarts the failed region and what the three rules add.
#[derive(Debug, Default)]
pub struct RegionFailover;

/// Restarts every region.
#[derive(Debug, Default)]
pub struct RestartAllFailover;

impl FailoverStrategy for RestartAllFailover {
    fn name(&self) -> &'static str {
        "restart-all"
    }

    fn regions_to_restart(&self, _failed: RegionId, view: &FailoverView<'_>) -> BTreeSet<RegionId> {
        view.regions.all().iter().map(|r| r.id).collect()
    }
}

impl FailoverStrategy for RegionFailover {
    fn name(&self) -> &'static str {
        "region"
    }

    fn regions_to_restart(&self, failed: RegionId, view: &FailoverView<'_>) -> BTreeSet<RegionId> {
        let regions = view.regions;
        let mut restart = BTreeSet::from([failed]);
        // Regions whose output will change: their started consumers must
        // rerun too.
        let mut changed = BTreeSet::new();
        let mut work = vec![failed];
        while let Some(region) = work.pop() {
            let info = regions.get(region);
            // Rule 2: producers of lost inputs.
            for &partition in &info.consumes {
                if (view.is_lost)(partition)
                    && let Some(producer) = regions.producer_of(partition)
                    && restart.insert(producer)
                {
                    work.push(producer);
                }
            }
            // Rule 3: consumers of non-deterministic output.
            if !info.deterministic || changed.contains(&region) {
                changed.insert(region);
                for &consumer in regions.consumers_of(region) {
                    if (view.has_started)(consumer) && changed.insert(consumer) {
                        restart.insert(consumer);
                        work.push(consumer);
                    }
                }
            }
        }
        restart
    }
}
