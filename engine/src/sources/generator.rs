//! A deterministic generator of numbered rows.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use weir_exchange::cpu;
use weir_exchange::hash::mix64;

use crate::{Boundedness, Result, Source, SourceFactory, TaskInfo};

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
        let (next, end, stride) = match self.rows {
            Some(rows) => (rows * i / p, rows * (i + 1) / p, 1),
            None => (i, u64::MAX, p),
        };
        Ok(Box::new(GeneratorReader {
            spec: self.clone(),
            next,
            end,
            stride,
        }))
    }
}

struct GeneratorReader {
    spec: SequenceGenerator,
    next: u64,
    end: u64,
    stride: u64,
}

impl GeneratorReader {
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
        if self.next >= self.end {
            return Ok(None);
        }
        let remaining = (self.end - self.next).div_ceil(self.stride);
        let count = remaining.min(self.spec.batch_rows as u64) as usize;
        let (spec, from, stride) = (self.spec.clone(), self.next, self.stride);
        let batch = cpu::run(move || Self::generate(&spec, from, count, stride)).await?;
        self.next = self.next.saturating_add(count as u64 * self.stride);
        Ok(Some(batch))
    }
}
