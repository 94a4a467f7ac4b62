//! A deterministic generator of numbered rows.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use weir_exchange::cpu;
use weir_exchange::hash::mix64;

use crate::checkpoint::SplitPosition;
use crate::{Boundedness, Error, Result, Source, SourceFactory, TaskInfo};

/// Generates rows `(seq, key, value)`: `seq` numbers the rows from 0, `key`
/// is a pseudo-random function of `seq` in `0..keys`, `value` one in
/// `0..1000`. Every attempt generates exactly the same rows, so it is the
/// reference input of differential tests.
///
/// Bounded generators split `0..rows` into contiguous ranges, one per
/// subtask; unbounded ones give subtask `i` of `p` the numbers `i + k*p`.
#[derive(Debug, Clone)]
pub struct SequenceGenerator {
    rows: Option<u64>,
    keys: u64,
    seed: u64,
    batch_rows: usize,
    schema: SchemaRef,
}

impl SequenceGenerator {
    /// `rows` rows (`None`: unbounded) over `keys` distinct keys.
    pub fn new(rows: Option<u64>, keys: u64) -> Self {
        Self {
            rows,
            keys: keys.max(1),
            seed: 0,
            batch_rows: 8192,
            schema: Arc::new(Schema::new(vec![
                Field::new("seq", DataType::Int64, false),
                Field::new("key", DataType::Int64, false),
                Field::new("value", DataType::Int64, false),
            ])),
        }
    }

    /// Changes the pseudo-random keys and values.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Rows per generated batch.
    pub fn with_batch_rows(mut self, batch_rows: usize) -> Self {
        self.batch_rows = batch_rows.max(1);
        self
    }
}

impl SourceFactory for SequenceGenerator {
    fn name(&self) -> String {
        match self.rows {
            Some(rows) => format!("generator(rows={rows}, keys={})", self.keys),
            None => format!("generator(unbounded, keys={})", self.keys),
        }
    }

    fn boundedness(&self) -> Boundedness {
        if self.rows.is_some() {
            Boundedness::Bounded
        } else {
            Boundedness::Unbounded
        }
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn estimated_rows(&self) -> Option<u64> {
        self.rows
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Source>> {
        let p = task.parallelism.max(1) as u64;
        let i = task.subtask as u64;
        let split = match self.rows {
            Some(rows) => GeneratorSplit {
                id: i as u32,
                next: rows * i / p,
                end: rows * (i + 1) / p,
                stride: 1,
            },
            None => GeneratorSplit {
                id: i as u32,
                next: i,
                end: u64::MAX,
                stride: p,
            },
        };
        Ok(Box::new(GeneratorReader::new(self.clone(), vec![split])))
    }

    fn restore(&self, _task: &TaskInfo, positions: Vec<SplitPosition>) -> Result<Box<dyn Source>> {
        let splits = positions
            .into_iter()
            .map(|p| {
                let mut split: GeneratorSplit = serde_json::from_value(p.position)
                    .map_err(|e| Error::Checkpoint(format!("generator split {}: {e}", p.split)))?;
                split.id = p.split;
                Ok(split)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(GeneratorReader::new(self.clone(), splits)))
    }
}

/// The rows `next, next + stride, ...` below `end` of one split.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
struct GeneratorSplit {
    #[serde(skip)]
    id: u32,
    next: u64,
    end: u64,
    stride: u64,
}

/// The splits of one subtask, read in turns.
struct GeneratorReader {
    spec: SequenceGenerator,
    splits: Vec<GeneratorSplit>,
    /// The split read last.
    current: usize,
}

impl GeneratorReader {
    fn new(spec: SequenceGenerator, splits: Vec<GeneratorSplit>) -> Self {
        Self {
            spec,
            splits,
            current: 0,
        }
    }

    fn generate(
        spec: &SequenceGenerator,
        from: u64,
        count: usize,
        stride: u64,
    ) -> Result<RecordBatch> {
        let seqs: Vec<i64> = (0..count as u64)
            .map(|k| (from + k * stride) as i64)
            .collect();
        let keys = seqs
            .iter()
            .map(|&s| (mix64(s as u64 ^ spec.seed) % spec.keys) as i64);
        let values = seqs
            .iter()
            .map(|&s| (mix64((s as u64).rotate_left(17) ^ spec.seed ^ 0xa5a5) % 1000) as i64);
        Ok(RecordBatch::try_new(
            Arc::clone(&spec.schema),
            vec![
                Arc::new(Int64Array::from(seqs.clone())),
                Arc::new(keys.collect::<Int64Array>()),
                Arc::new(values.collect::<Int64Array>()),
            ],
        )?)
    }
}

#[async_trait]
impl Source for GeneratorReader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // The next split with rows left, in turns.
        let n = self.splits.len();
        let Some(index) = (1..=n)
            .map(|k| (self.current + k) % n)
            .find(|&k| self.splits[k].next < self.splits[k].end)
        else {
            return Ok(None);
        };
        self.current = index;
        let split = &mut self.splits[index];
        let remaining = (split.end - split.next).div_ceil(split.stride);
        let count = remaining.min(self.spec.batch_rows as u64) as usize;
        let (spec, from, stride) = (self.spec.clone(), split.next, split.stride);
        split.next = split.next.saturating_add(count as u64 * split.stride);
        let batch = cpu::run(move || Self::generate(&spec, from, count, stride)).await?;
        Ok(Some(batch))
    }

    fn splits(&self) -> Vec<u32> {
        self.splits.iter().map(|s| s.id).collect()
    }

    fn last_split(&self) -> u32 {
        self.splits.get(self.current).map_or(0, |s| s.id)
    }

    fn positions(&self) -> Option<Vec<SplitPosition>> {
        self.splits
            .iter()
            .map(|s| {
                Some(SplitPosition {
                    split: s.id,
                    position: serde_json::to_value(s).ok()?,
                })
            })
            .collect()
    }
}
