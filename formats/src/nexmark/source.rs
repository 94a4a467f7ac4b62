//! The Nexmark source: events of one kind, or all of them, as record
//! batches.

use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use nexmark::EventGenerator;
use nexmark::config::NexmarkConfig;
use nexmark::event::EventType;
use weir_engine::checkpoint::SplitPosition;
use weir_engine::task::Counters;
use weir_engine::{Boundedness, ScanRequest, Source, SourceFactory, TaskInfo};
use weir_exchange::cpu;

use super::columns::EventColumns;
use super::{NexmarkTable, table_schema};
use crate::throttle::Throttle;

/// Events per generated batch (fewer when throttled).
const BATCH_EVENTS: usize = 8192;

/// Nexmark's own event rate, when none is given.
const DEFAULT_EVENTS_PER_SECOND: u64 = 10_000;

/// How many events, how fast and how out of order.
#[derive(Debug, Clone, Copy)]
pub(super) struct Rates {
    /// Events of the table's kind in all (`None`: unbounded).
    pub events: Option<u64>,
    /// Events per second, of event time and of production.
    pub per_second: Option<u64>,
    /// Events are reversed in groups of this many.
    pub group: u64,
    /// The time of the first event (ms since the epoch).
    pub base_time: u64,
}

/// Nexmark events of one kind or all (see the [module](super) for the
/// options).
#[derive(Debug, Clone)]
pub struct NexmarkSource {
    table: NexmarkTable,
    /// The table's columns produced, in order.
    columns: Vec<usize>,
    schema: SchemaRef,
    rates: Rates,
}

impl NexmarkSource {
    pub(super) fn new(table: NexmarkTable, columns: Vec<usize>, rates: Rates) -> Self {
        let all = table_schema(table);
        let schema = Arc::new(Schema::new(
            columns
                .iter()
                .map(|&i| all.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        Self {
            table,
            columns,
            schema,
            rates,
        }
    }

    fn kind(&self) -> &'static str {
        match self.table {
            NexmarkTable::Person => "person",
            NexmarkTable::Auction => "auction",
            NexmarkTable::Bid => "bid",
            NexmarkTable::Events => "events",
        }
    }
}

impl SourceFactory for NexmarkSource {
    fn name(&self) -> String {
        match self.rates.events {
            Some(events) => format!("nexmark({}, events={events})", self.kind()),
            None => format!("nexmark({}, unbounded)", self.kind()),
        }
    }

    fn boundedness(&self) -> Boundedness {
        match self.rates.events {
            Some(_) => Boundedness::Bounded,
            None => Boundedness::Unbounded,
        }
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn estimated_rows(&self) -> Option<u64> {
        self.rates.events
    }

    fn scan(&self, request: &ScanRequest) -> weir_engine::Result<Option<Arc<dyn SourceFactory>>> {
        let Some(projection) = &request.projection else {
            return Ok(None);
        };
        let columns = projection
            .iter()
            .map(|&i| {
                self.columns.get(i).copied().ok_or_else(|| {
                    weir_engine::Error::Plan(format!(
                        "{} has {} columns, no column {i}",
                        self.name(),
                        self.columns.len()
                    ))
                })
            })
            .collect::<weir_engine::Result<Vec<_>>>()?;
        Ok(Some(Arc::new(Self::new(self.table, columns, self.rates))))
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Source>> {
        let p = task.parallelism.max(1) as u64;
        let i = task.subtask as u64;
        let split = NexmarkSplit {
            split: i as u32,
            offset: i,
            step: p,
            // Events i, i + p, ...: as many as are below the total.
            left: self.rates.events.map(|n| n.saturating_sub(i).div_ceil(p)),
        };
        Ok(Box::new(self.reader(task, vec![split])))
    }

    fn restore(
        &self,
        task: &TaskInfo,
        positions: Vec<SplitPosition>,
    ) -> weir_engine::Result<Box<dyn Source>> {
        let splits = positions
            .into_iter()
            .map(|p| {
                let mut split: NexmarkSplit = serde_json::from_value(p.position).map_err(|e| {
                    weir_engine::Error::Checkpoint(format!("nexmark split {}: {e}", p.split))
                })?;
                split.split = p.split;
                Ok(split)
            })
            .collect::<weir_engine::Result<Vec<_>>>()?;
        Ok(Box::new(self.reader(task, splits)))
    }
}

impl NexmarkSource {
    fn reader(&self, task: &TaskInfo, splits: Vec<NexmarkSplit>) -> NexmarkReader {
        let rate = self.rates.per_second.unwrap_or(DEFAULT_EVENTS_PER_SECOND) as usize;
        let config = NexmarkConfig {
            first_rate: rate,
            next_rate: rate,
            base_time: self.rates.base_time,
            ..NexmarkConfig::default()
        };
        let kind = match self.table {
            NexmarkTable::Person => Some(EventType::Person),
            NexmarkTable::Auction => Some(EventType::Auction),
            NexmarkTable::Bid => Some(EventType::Bid),
            NexmarkTable::Events => None,
        };
        let generators = splits
            .iter()
            .map(|s| {
                let generator = EventGenerator::new(config.clone());
                let generator = match kind {
                    Some(kind) => generator.with_type_filter(kind),
                    None => generator,
                };
                Some(generator.with_offset(s.offset).with_step(s.step.max(1)))
            })
            .collect();
        let p = task.parallelism.max(1) as f64;
        NexmarkReader {
            generators,
            splits,
            current: 0,
            source: self.clone(),
            group: self.rates.group.min(BATCH_EVENTS as u64) as usize,
            throttle: self
                .rates
                .per_second
                .map(|total| Throttle::new(total as f64 / p, BATCH_EVENTS)),
            counters: task.counters.clone(),
        }
    }
}

/// Where one split is: the offset of its next event (of its kind), the
/// distance between its events, and how many are left (bounded tables).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct NexmarkSplit {
    #[serde(skip)]
    split: u32,
    offset: u64,
    step: u64,
    left: Option<u64>,
}

/// The events of one subtask: its splits, read in turns.
struct NexmarkReader {
    /// One per split; on the CPU pool while a batch is generated.
    generators: Vec<Option<EventGenerator>>,
    splits: Vec<NexmarkSplit>,
    /// The split read last.
    current: usize,
    source: NexmarkSource,
    group: usize,
    throttle: Option<Throttle>,
    counters: Counters,
}

#[async_trait]
impl Source for NexmarkReader {
    async fn next_batch(&mut self) -> weir_engine::Result<Option<RecordBatch>> {
        let mut wanted = BATCH_EVENTS;
        if let Some(throttle) = &mut self.throttle {
            throttle.wait().await;
            wanted = throttle.batch_rows();
        }
        // Whole reversed groups, but for the last.
        wanted = (wanted / self.group).max(1) * self.group;
        // The next split with events left, in turns.
        let n = self.splits.len();
        let Some(index) = (1..=n)
            .map(|k| (self.current + k) % n)
            .find(|&k| self.splits[k].left != Some(0))
        else {
            return Ok(None);
        };
        self.current = index;
        let split = &mut self.splits[index];
        let count = split.left.map_or(wanted, |left| wanted.min(left as usize));
        let mut generator = self.generators[index]
            .take()
            .expect("the generator is back");
        let (source, group) = (self.source.clone(), self.group);
        let (generator, batch) = cpu::run(move || {
            let batch = events_batch(&source, &mut generator, count, group);
            (generator, batch)
        })
        .await;
        split.offset = generator.offset();
        self.generators[index] = Some(generator);
        let batch = batch?;
        if let Some(left) = &mut split.left {
            *left -= count as u64;
        }
        if let Some(throttle) = &mut self.throttle {
            throttle.emitted(count as u64);
        }
        self.counters.add("events generated", count as u64);
        Ok(Some(batch))
    }

    fn splits(&self) -> Vec<u32> {
        self.splits.iter().map(|s| s.split).collect()
    }

    fn last_split(&self) -> u32 {
        self.splits.get(self.current).map_or(0, |s| s.split)
    }

    fn positions(&self) -> Option<Vec<SplitPosition>> {
        self.splits
            .iter()
            .map(|s| {
                Some(SplitPosition {
                    split: s.split,
                    position: serde_json::to_value(s).ok()?,
                })
            })
            .collect()
    }
}

/// The next `count` events of `generator` as a batch of `source`'s
/// columns, reversed within groups of `group` events.
fn events_batch(
    source: &NexmarkSource,
    generator: &mut EventGenerator,
    count: usize,
    group: usize,
) -> weir_engine::Result<RecordBatch> {
    let all = table_schema(source.table);
    let mut columns = EventColumns::new(source.table, count);
    for event in generator.by_ref().take(count) {
        columns.push(&event);
    }
    let batch = RecordBatch::try_new(all, columns.finish()?)?;
    let batch = batch.project(&source.columns)?;
    if group <= 1 {
        return Ok(batch);
    }
    Ok(take_record_batch(&batch, &reversed(count, group))?)
}

/// The order of `count` events reversed within groups of `group` (the last
/// group may be shorter): each event is out of order by up to a group.
fn reversed(count: usize, group: usize) -> UInt32Array {
    let mut order = Vec::with_capacity(count);
    for start in (0..count).step_by(group) {
        let n = group.min(count - start);
        order.extend((0..n).rev().map(|j| (start + j) as u32));
    }
    UInt32Array::from(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_reversed() {
        let order: Vec<u32> = reversed(10, 4).values().to_vec();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        for (position, source) in order.iter().enumerate() {
            assert_eq!(position / 4, *source as usize / 4, "{order:?}");
        }
        assert_eq!(order, vec![3, 2, 1, 0, 7, 6, 5, 4, 9, 8]);
    }
}
