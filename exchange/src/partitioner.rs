//! Partitioners decide which subpartition of a producer's result partition
//! each record goes to.

use std::fmt;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use serde::{Deserialize, Serialize};

use crate::event::take_rows;
use crate::hash::{hash_columns, key_group, subtask_for_key_group};
use crate::{Error, Result};

/// How records of an edge are distributed over the consumer subtasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// Producer subtask `i` sends everything to consumer subtask `i`
    /// (equal parallelism, pointwise).
    Forward,
    /// Records with equal keys go to the same consumer: the key's stable hash
    /// picks a key group, and key groups are owned by consumers in ranges.
    Hash {
        /// The key columns, by name.
        keys: Vec<String>,
        /// Number of key groups (the most subtasks the keyed consumer can
        /// ever be scaled to).
        max_parallelism: usize,
    },
    /// Batches go round-robin to every consumer. Which consumer gets which
    /// batch is not deterministic across attempts.
    Rebalance,
    /// Batches go round-robin to the consumers of a pointwise subset
    /// (producer and consumer parallelism may differ). Which consumer gets
    /// which batch is not deterministic across attempts.
    Rescale,
    /// Every batch goes to every consumer.
    Broadcast,
}

impl Partitioner {
    /// A hash partitioner over `keys` with the default 128 key groups.
    pub fn hash<S: Into<String>>(keys: impl IntoIterator<Item = S>) -> Self {
        Partitioner::Hash {
            keys: keys.into_iter().map(Into::into).collect(),
            max_parallelism: DEFAULT_MAX_PARALLELISM,
        }
    }

    /// Whether each producer is wired to every consumer (all-to-all) rather
    /// than to a pointwise subset.
    pub fn is_all_to_all(&self) -> bool {
        matches!(
            self,
            Partitioner::Hash { .. } | Partitioner::Rebalance | Partitioner::Broadcast
        )
    }

    /// Whether the same input always produces the same subpartitions. A
    /// consumer of a non-deterministic partitioner must rerun whenever its
    /// producer reruns (failover rule 3).
    pub fn is_deterministic(&self) -> bool {
        // Round-robin starts at a place of the attempt's, and the order in
        // which a producer's batches come is not fixed either.
        !matches!(self, Partitioner::Rebalance | Partitioner::Rescale)
    }
}

/// Default number of key groups, as in Flink.
pub const DEFAULT_MAX_PARALLELISM: usize = 128;

impl fmt::Display for Partitioner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Partitioner::Forward => f.write_str("forward"),
            Partitioner::Hash { keys, .. } => write!(f, "hash({})", keys.join(", ")),
            Partitioner::Rebalance => f.write_str("rebalance"),
            Partitioner::Rescale => f.write_str("rescale"),
            Partitioner::Broadcast => f.write_str("broadcast"),
        }
    }
}

/// The per-producer state of a partitioner: routes each output batch of one
/// producer subtask to its subpartitions.
#[derive(Debug)]
pub struct PartitionRouter {
    partitioner: Partitioner,
    num_subpartitions: usize,
    /// Hash key column indices, resolved on the first batch.
    key_columns: Option<Vec<usize>>,
    next: usize,
    hashes: Vec<u64>,
}

impl PartitionRouter {
    /// A router for a producer with `num_subpartitions` subpartitions.
    /// `start` is where round-robin partitioners begin.
    pub fn new(partitioner: Partitioner, num_subpartitions: usize, start: usize) -> Self {
        Self {
            partitioner,
            num_subpartitions: num_subpartitions.max(1),
            key_columns: None,
            next: start % num_subpartitions.max(1),
            hashes: Vec::new(),
        }
    }

    /// The partitioner this router applies.
    pub fn partitioner(&self) -> &Partitioner {
        &self.partitioner
    }

    /// The number of subpartitions this router fills.
    pub fn num_subpartitions(&self) -> usize {
        self.num_subpartitions
    }

    /// Splits `batch` into `(subpartition, rows)` pieces. Empty pieces are
    /// left out; with one target the batch is passed on as is.
    ///
    /// # Errors
    /// A hash key column that is missing or cannot be hashed.
    pub fn route(&mut self, batch: RecordBatch) -> Result<Vec<(usize, RecordBatch)>> {
        if batch.num_rows() == 0 {
            return Ok(Vec::new());
        }
        let n = self.num_subpartitions;
        match &self.partitioner {
            Partitioner::Forward => Ok(vec![(0, batch)]),
            Partitioner::Broadcast => Ok((0..n).map(|i| (i, batch.clone())).collect()),
            Partitioner::Rebalance | Partitioner::Rescale => {
                let target = self.next;
                self.next = (self.next + 1) % n;
                Ok(vec![(target, batch)])
            }
            Partitioner::Hash { .. } if n == 1 => Ok(vec![(0, batch)]),
            Partitioner::Hash {
                keys,
                max_parallelism,
            } => {
                let max_parallelism = *max_parallelism;
                if self.key_columns.is_none() {
                    self.key_columns = Some(resolve_keys(&self.partitioner, keys, &batch)?);
                }
                let columns = self.key_columns.as_deref().unwrap_or_default();
                let key_arrays: Vec<ArrayRef> = columns
                    .iter()
                    .map(|&i| std::sync::Arc::clone(batch.column(i)))
                    .collect();
                hash_columns(&key_arrays, &mut self.hashes).map_err(|reason| {
                    Error::Partitioning {
                        partitioner: self.partitioner.to_string(),
                        reason,
                    }
                })?;
                scatter(&batch, &self.hashes, n, |h| {
                    subtask_for_key_group(key_group(h, max_parallelism), max_parallelism, n)
                })
            }
        }
    }
}

fn resolve_keys(
    partitioner: &Partitioner,
    keys: &[String],
    batch: &RecordBatch,
) -> Result<Vec<usize>> {
    let schema = batch.schema();
    keys.iter()
        .map(|k| {
            schema.index_of(k).map_err(|_| Error::Partitioning {
                partitioner: partitioner.to_string(),
                reason: format!(
                    "key column '{k}' not in the input (columns: {})",
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
        })
        .collect()
}

/// Groups rows by target subpartition (a counting sort of row indices) and
/// takes each group out of the batch.
fn scatter(
    batch: &RecordBatch,
    hashes: &[u64],
    n: usize,
    target: impl Fn(u64) -> usize,
) -> Result<Vec<(usize, RecordBatch)>> {
    let targets: Vec<u32> = hashes.iter().map(|&h| target(h) as u32).collect();
    let mut counts = vec![0usize; n];
    for &t in &targets {
        counts[t as usize] += 1;
    }
    if let Some(only) = counts.iter().position(|&c| c == batch.num_rows()) {
        return Ok(vec![(only, batch.clone())]);
    }
    let mut offsets = Vec::with_capacity(n);
    let mut total = 0;
    for &c in &counts {
        offsets.push(total);
        total += c;
    }
    let mut indices = vec![0u32; targets.len()];
    let mut cursor = offsets.clone();
    for (row, &t) in targets.iter().enumerate() {
        indices[cursor[t as usize]] = row as u32;
        cursor[t as usize] += 1;
    }
    let indices = UInt32Array::from(indices);
    let mut pieces = Vec::new();
    for (sub, (&start, &count)) in offsets.iter().zip(&counts).enumerate() {
        if count > 0 {
            let piece = indices.slice(start, count);
            pieces.push((sub, take_rows(batch, &piece)?));
        }
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn batch(keys: Vec<i64>) -> RecordBatch {
        let names: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("k", DataType::Int64, false),
                Field::new("s", DataType::Utf8, false),
            ])),
            vec![
                Arc::new(Int64Array::from(keys)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    }

    #[test]
    fn round_robin_partitioners_are_not_deterministic() {
        // A rerun producer sends its batches elsewhere: consumers that
        // read them must rerun too (failover rule 3).
        assert!(!Partitioner::Rebalance.is_deterministic());
        assert!(!Partitioner::Rescale.is_deterministic());
        for deterministic in [
            Partitioner::Forward,
            Partitioner::Broadcast,
            Partitioner::hash(["k"]),
        ] {
            assert!(deterministic.is_deterministic(), "{deterministic}");
        }
    }

    #[test]
    fn hash_sends_equal_keys_to_one_subpartition_and_loses_nothing() {
        let mut router = PartitionRouter::new(Partitioner::hash(["k"]), 4, 0);
        let mut owner: HashMap<i64, usize> = HashMap::new();
        let mut rows = 0;
        for round in 0..3 {
            let keys: Vec<i64> = (0..1000).map(|i| (i * 7 + round) % 97).collect();
            for (sub, piece) in router.route(batch(keys)).unwrap() {
                rows += piece.num_rows();
                for k in piece.column(0).as_primitive::<Int64Type>().values() {
                    assert_eq!(*owner.entry(*k).or_insert(sub), sub, "key {k} split");
                }
            }
        }
        assert_eq!(rows, 3000);
        assert_eq!(
            owner
                .values()
                .collect::<std::collections::HashSet<_>>()
                .len(),
            4
        );
    }

    #[test]
    fn hash_routing_is_the_same_for_every_router() {
        let keys: Vec<i64> = (0..500).collect();
        let route = |start| {
            let mut r = PartitionRouter::new(Partitioner::hash(["s", "k"]), 3, start);
            r.route(batch(keys.clone())).unwrap()
        };
        let (a, b) = (route(0), route(2));
        assert_eq!(a.len(), b.len());
        for ((sa, ba), (sb, bb)) in a.iter().zip(&b) {
            assert_eq!(sa, sb);
            assert_eq!(ba, bb);
        }
    }

    #[test]
    fn round_robin_broadcast_and_forward() {
        let mut rr = PartitionRouter::new(Partitioner::Rebalance, 3, 1);
        let targets: Vec<usize> = (0..4)
            .map(|_| rr.route(batch(vec![1])).unwrap()[0].0)
            .collect();
        assert_eq!(targets, vec![1, 2, 0, 1]);
        let mut bc = PartitionRouter::new(Partitioner::Broadcast, 3, 0);
        assert_eq!(bc.route(batch(vec![1, 2])).unwrap().len(), 3);
        let mut fw = PartitionRouter::new(Partitioner::Forward, 1, 0);
        assert_eq!(fw.route(batch(vec![1, 2])).unwrap()[0].0, 0);
    }

    #[test]
    fn missing_key_column_names_the_columns() {
        let mut router = PartitionRouter::new(Partitioner::hash(["nope"]), 2, 0);
        let err = router.route(batch(vec![1])).unwrap_err().to_string();
        assert!(err.contains("'nope'") && err.contains("k, s"), "{err}");
    }
}
