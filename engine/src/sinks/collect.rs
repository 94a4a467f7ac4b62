//! A sink that hands the job's output back to the caller.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use async_trait::async_trait;

use crate::{Result, Sink, SinkFactory, TaskInfo};

/// Collects every batch it receives in memory. Each subtask attempt collects
/// on its own and publishes its batches when it finishes, replacing what an
/// earlier attempt of the same subtask published: a rerun never duplicates
/// output and a failed attempt's partial output is never seen.
#[derive(Debug, Clone, Default)]
pub struct CollectSink {
    collected: Collected,
}

/// The output of a [`CollectSink`], readable after (or while) the job runs.
#[derive(Debug, Clone, Default)]
pub struct Collected {
    by_subtask: Arc<Mutex<BTreeMap<usize, Published>>>,
}

/// The batches one subtask published, and the attempt that published them.
type Published = (u32, Vec<RecordBatch>);

impl CollectSink {
    /// A new sink and the handle to read what it collects.
    pub fn new() -> (Self, Collected) {
        let sink = Self::default();
        let collected = sink.collected.clone();
        (sink, collected)
    }
}

impl Collected {
    /// The published batches, subtask by subtask in the order received.
    pub fn batches(&self) -> Vec<RecordBatch> {
        let map = self.by_subtask.lock().unwrap_or_else(|p| p.into_inner());
        map.values().flat_map(|(_, b)| b.iter().cloned()).collect()
    }

    /// The number of published rows.
    pub fn num_rows(&self) -> usize {
        self.batches().iter().map(RecordBatch::num_rows).sum()
    }

    fn publish(&self, subtask: usize, attempt: u32, batches: Vec<RecordBatch>) {
        let mut map = self.by_subtask.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&subtask) {
            Some((published, _)) if *published > attempt => {}
            _ => {
                map.insert(subtask, (attempt, batches));
            }
        }
    }
}

#[async_trait]
impl SinkFactory for CollectSink {
    fn name(&self) -> String {
        "collect".to_string()
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Sink>> {
        Ok(Box::new(CollectWriter {
            collected: self.collected.clone(),
            subtask: task.subtask,
            attempt: task.attempt,
            batches: Vec::new(),
        }))
    }
}

struct CollectWriter {
    collected: Collected,
    subtask: usize,
    attempt: u32,
    batches: Vec<RecordBatch>,
}

#[async_trait]
impl Sink for CollectWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.batches.push(batch);
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        self.collected.publish(
            self.subtask,
            self.attempt,
            std::mem::take(&mut self.batches),
        );
        Ok(())
    }
}
