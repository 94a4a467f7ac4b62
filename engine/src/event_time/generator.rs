//! The watermarks of one source task, from the event times of its splits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use weir_exchange::event::WatermarkStatus;

use super::{WatermarkStrategy, max_event_time};
use crate::Result;

/// What a source task sends downstream after a change of its splits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatermarkUpdate {
    /// The task went idle or became active.
    pub status: Option<WatermarkStatus>,
    /// The task's watermark advanced to this.
    pub watermark: Option<i64>,
}

/// One split's event-time progress.
#[derive(Debug, Clone, Copy)]
struct SplitClock {
    /// The largest event time seen, if any record came.
    max_time: Option<i64>,
    /// When the split last produced a record.
    last_active: Instant,
    idle: bool,
}

/// Follows the event times of the splits one source task reads and derives
/// the task's watermark: the minimum over its active splits of the largest
/// time each has seen, less the out-of-orderness and one millisecond (a
/// record at exactly the watermark is late). A split that has produced
/// nothing yet holds the watermark back until it goes idle.
#[derive(Debug)]
pub struct WatermarkGenerator {
    column: usize,
    out_of_orderness_ms: i64,
    idle_timeout: Option<Duration>,
    splits: BTreeMap<u32, SplitClock>,
    /// The last watermark emitted.
    emitted: i64,
    /// Whether the task announced itself idle.
    idle: bool,
}

impl WatermarkGenerator {
    /// A generator for a task reading `splits` of a source of `schema`.
    ///
    /// # Errors
    /// When the strategy's column is not a time column of `schema`.
    pub fn try_new(
        strategy: &WatermarkStrategy,
        schema: &Schema,
        splits: &[u32],
        now: Instant,
    ) -> Result<Self> {
        let clock = SplitClock {
            max_time: None,
            last_active: now,
            idle: false,
        };
        Ok(Self {
            column: strategy.column_index(schema)?,
            out_of_orderness_ms: i64::try_from(strategy.max_out_of_orderness.as_millis())
                .unwrap_or(i64::MAX),
            idle_timeout: strategy.idle_timeout,
            splits: splits.iter().map(|&s| (s, clock)).collect(),
            emitted: i64::MIN,
            idle: false,
        })
    }

    /// What the task announces before anything is read: idle when it reads
    /// no split at all, so that it never holds its consumers back.
    pub fn start(&mut self) -> Option<WatermarkStatus> {
        self.update_status()
    }

    /// A batch of `split` is about to go downstream: the split is active;
    /// the task announces that it is active again if it was idle.
    pub fn activate(&mut self, split: u32, now: Instant) -> Option<WatermarkStatus> {
        let clock = self.splits.entry(split).or_insert(SplitClock {
            max_time: None,
            last_active: now,
            idle: false,
        });
        clock.last_active = now;
        clock.idle = false;
        self.update_status()
    }

    /// A batch of `split` went downstream: the task's new watermark, if it
    /// advanced.
    ///
    /// # Errors
    /// When the time column cannot be read.
    pub fn observe(&mut self, split: u32, batch: &RecordBatch) -> Result<Option<i64>> {
        if let Some(time) = max_event_time(batch.column(self.column))?
            && let Some(clock) = self.splits.get_mut(&split)
        {
            clock.max_time = Some(clock.max_time.map_or(time, |t| t.max(time)));
        }
        Ok(self.advance())
    }

    /// Time has passed: splits quiet for the idle timeout go idle, which may
    /// advance the watermark or make the whole task idle.
    pub fn on_tick(&mut self, now: Instant) -> WatermarkUpdate {
        if let Some(timeout) = self.idle_timeout {
            for clock in self.splits.values_mut() {
                if now.duration_since(clock.last_active) >= timeout {
                    clock.idle = true;
                }
            }
        }
        WatermarkUpdate {
            status: self.update_status(),
            watermark: self.advance(),
        }
    }

    /// When the next active split would go idle, if an idle timeout is set.
    pub fn next_tick(&self) -> Option<Instant> {
        let timeout = self.idle_timeout?;
        self.splits
            .values()
            .filter(|c| !c.idle)
            .map(|c| c.last_active + timeout)
            .min()
    }

    /// The watermark over the active splits, when it moved forward.
    fn advance(&mut self) -> Option<i64> {
        let min = self
            .splits
            .values()
            .filter(|c| !c.idle)
            .map(|c| {
                c.max_time.map_or(i64::MIN, |t| {
                    t.saturating_sub(self.out_of_orderness_ms).saturating_sub(1)
                })
            })
            .min()?;
        (min > self.emitted).then(|| {
            self.emitted = min;
            min
        })
    }

    /// The task is idle when none of its splits is active.
    fn update_status(&mut self) -> Option<WatermarkStatus> {
        let idle = self.splits.values().all(|c| c.idle);
        (idle != self.idle).then(|| {
            self.idle = idle;
            if idle {
                WatermarkStatus::Idle
            } else {
                WatermarkStatus::Active
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};

    use super::*;

    fn times(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    fn generator(splits: &[u32], idle: Option<Duration>) -> (WatermarkGenerator, Instant) {
        let mut strategy =
            WatermarkStrategy::bounded_out_of_orderness("ts", Duration::from_millis(10));
        strategy.idle_timeout = idle;
        let now = Instant::now();
        let schema = times(&[]).schema();
        (
            WatermarkGenerator::try_new(&strategy, &schema, splits, now).expect("generator"),
            now,
        )
    }

    #[test]
    fn the_watermark_is_the_slowest_split_less_the_bound() {
        let (mut g, now) = generator(&[0, 1], None);
        assert_eq!(g.start(), None);
        assert_eq!(g.activate(0, now), None);
        // Split 1 has produced nothing: it holds the watermark back.
        assert_eq!(g.observe(0, &times(&[100, 250])).expect("observes"), None);
        assert_eq!(g.observe(1, &times(&[120])).expect("observes"), Some(109));
        assert_eq!(g.observe(1, &times(&[90])).expect("observes"), None);
        assert_eq!(g.observe(1, &times(&[300])).expect("observes"), Some(239));
    }

    #[test]
    fn quiet_splits_go_idle_and_come_back() {
        let timeout = Duration::from_millis(500);
        let (mut g, start) = generator(&[0, 1], Some(timeout));
        g.observe(0, &times(&[1000])).expect("observes");
        assert_eq!(g.next_tick(), Some(start + timeout));
        let later = start + timeout;
        g.activate(0, later);
        // Split 1 went idle: split 0 alone sets the watermark.
        let tick = g.on_tick(later);
        assert_eq!(
            tick,
            WatermarkUpdate {
                status: None,
                watermark: Some(989)
            }
        );
        // Both idle: the task is.
        let tick = g.on_tick(later + timeout);
        assert_eq!(tick.status, Some(WatermarkStatus::Idle));
        assert_eq!(g.next_tick(), None);
        assert_eq!(
            g.activate(1, later + timeout),
            Some(WatermarkStatus::Active)
        );
        assert_eq!(g.observe(1, &times(&[2000])).expect("observes"), Some(1989));
    }

    #[test]
    fn a_task_without_splits_is_idle_from_the_start() {
        let (mut g, _) = generator(&[], None);
        assert_eq!(g.start(), Some(WatermarkStatus::Idle));
    }
}
