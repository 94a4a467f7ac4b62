//! The hash table of a hash join: the build rows, their encoded keys, and
//! chains of the rows that share a key hash.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::RecordBatch;

use super::Candidates;
use super::keys::EncodedKeys;
use crate::{Error, Result};

/// The seed of the table's hashes (spill partitioning uses others).
const TABLE_SEED: u64 = 0;

/// A hasher for keys that already are well-mixed 64-bit hashes.
#[derive(Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }
}

/// The build side of a hash join, indexed by key.
///
/// `heads` maps a key hash to the last build row with that hash (plus one,
/// zero ends a chain) and `next[row]` to the previous one, so the rows of a
/// hash are a chain through `next`, as in DataFusion's `JoinHashMap`.
#[derive(Debug)]
pub(crate) struct JoinTable {
    batch: RecordBatch,
    keys: EncodedKeys,
    heads: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    next: Vec<u32>,
}

/// Where probing a batch stopped when a block was full.
#[derive(Debug, Default)]
struct ProbeCursor {
    /// The probe row to continue with.
    row: usize,
    /// The chain position within that row's chain, if it was begun.
    chain: Option<u32>,
}

impl JoinTable {
    /// Indexes `batch`, whose rows all have non-NULL keys encoded as `keys`.
    ///
    /// # Errors
    /// [`Error::Operator`] naming `operator` when the batch has more rows
    /// than a table indexes (2^32 - 1).
    pub(crate) fn try_new(batch: RecordBatch, keys: EncodedKeys, operator: &str) -> Result<Self> {
        let rows = u32::try_from(batch.num_rows())
            .ok()
            .filter(|&n| n < u32::MAX)
            .ok_or_else(|| Error::Operator {
                operator: operator.to_string(),
                message: format!(
                    "a hash table holds at most {} rows, not {}",
                    u32::MAX - 1,
                    batch.num_rows()
                ),
            })?;
        let mut heads =
            HashMap::with_capacity_and_hasher(batch.num_rows(), BuildHasherDefault::default());
        let mut next = vec![0; batch.num_rows()];
        for (row, hash) in (0..rows).zip(keys.hashes(TABLE_SEED)) {
            if let Some(previous) = heads.insert(hash, row + 1) {
                next[row as usize] = previous;
            }
        }
        Ok(Self {
            batch,
            keys,
            heads,
            next,
        })
    }

    /// The build rows.
    pub(crate) fn batch(&self) -> &RecordBatch {
        &self.batch
    }

    /// The build rows, giving up the index.
    pub(crate) fn into_batch(self) -> RecordBatch {
        self.batch
    }

    /// Bytes held: rows, keys and index.
    pub(crate) fn size(&self) -> usize {
        self.batch.get_array_memory_size()
            + self.keys.size()
            + self.heads.capacity() * (size_of::<u64>() + size_of::<u32>() + 1)
            + self.next.capacity() * size_of::<u32>()
    }

    /// The candidate pairs of a probe batch whose keys are `keys`, block by
    /// block of at most `block` pairs: every pair of rows with equal keys,
    /// or only the first of each probe row if `first_only`.
    pub(crate) fn candidates<'a>(
        &'a self,
        keys: &'a EncodedKeys,
        block: usize,
        first_only: bool,
    ) -> impl Iterator<Item = Result<Candidates>> + 'a {
        let hashes = keys.hashes(TABLE_SEED);
        let mut cursor = ProbeCursor::default();
        std::iter::from_fn(move || {
            (cursor.row < hashes.len()).then(|| {
                let mut probe = Probe {
                    table: self,
                    hashes: &hashes,
                    cursor: &mut cursor,
                    block,
                    first_only,
                };
                match (&self.keys, keys) {
                    (EncodedKeys::Integers(build), EncodedKeys::Integers(keys)) => {
                        Ok(probe.next_block(|b, p| build[b] == keys[p]))
                    }
                    (EncodedKeys::Rows(build), EncodedKeys::Rows(keys)) => {
                        Ok(probe.next_block(|b, p| build.row(b) == keys.row(p)))
                    }
                    _ => Err(Error::Operator {
                        operator: "hash join".to_string(),
                        message: "a probe batch's keys are encoded unlike the table's".to_string(),
                    }),
                }
            })
        })
    }
}

/// Probing one batch, from where its previous block stopped.
struct Probe<'a> {
    table: &'a JoinTable,
    hashes: &'a [u64],
    cursor: &'a mut ProbeCursor,
    block: usize,
    first_only: bool,
}

impl Probe<'_> {
    /// The next block of candidate pairs, `equal(build row, probe row)`
    /// telling whether two rows' keys are equal.
    fn next_block(&mut self, equal: impl Fn(usize, usize) -> bool) -> Candidates {
        let (table, cursor) = (self.table, &mut *self.cursor);
        let (mut build, mut probe) = (
            Vec::with_capacity(self.block),
            Vec::with_capacity(self.block),
        );
        while cursor.row < self.hashes.len() {
            let probe_row = cursor.row;
            let mut entry = match cursor.chain.take() {
                Some(entry) => entry,
                None => table
                    .heads
                    .get(&self.hashes[probe_row])
                    .copied()
                    .unwrap_or(0),
            };
            while entry != 0 {
                let build_row = entry - 1;
                entry = table.next[build_row as usize];
                if equal(build_row as usize, probe_row) {
                    build.push(build_row);
                    probe.push(probe_row as u32);
                    if self.first_only {
                        entry = 0;
                    }
                    if build.len() == self.block {
                        if entry == 0 {
                            cursor.row += 1;
                        } else {
                            cursor.chain = Some(entry);
                        }
                        return (build, probe);
                    }
                }
            }
            cursor.row += 1;
        }
        (build, probe)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::row::{RowConverter, SortField};

    use super::*;

    /// A batch of keys `values`, encoded as integers or as rows.
    fn keys(values: &[i32], integers: bool) -> (RecordBatch, EncodedKeys) {
        let column: ArrayRef = Arc::new(Int32Array::from(values.to_vec()));
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int32, false)]));
        let converter = RowConverter::new(vec![SortField::new(DataType::Int32)]).expect("row type");
        let keys = match integers {
            true => EncodedKeys::Integers(values.iter().map(|&v| i64::from(v)).collect()),
            false => EncodedKeys::Rows(
                converter
                    .convert_columns(std::slice::from_ref(&column))
                    .expect("rows"),
            ),
        };
        (
            RecordBatch::try_new(schema, vec![column]).expect("batch"),
            keys,
        )
    }

    fn pairs(
        table: &JoinTable,
        probe: &EncodedKeys,
        block: usize,
        first_only: bool,
    ) -> Vec<(u32, u32)> {
        let mut pairs = Vec::new();
        for candidates in table.candidates(probe, block, first_only) {
            let (build, probe) = candidates.expect("block");
            assert!(build.len() <= block && build.len() == probe.len());
            pairs.extend(build.into_iter().zip(probe));
        }
        pairs.sort();
        pairs
    }

    #[test]
    fn probing_resumes_a_chain_across_blocks() {
        for integers in [false, true] {
            probe_resumes_chains(integers);
        }
    }

    fn probe_resumes_chains(integers: bool) {
        let (batch, build) = keys(&[1, 2, 1, 1, 3, 1], integers);
        let table = JoinTable::try_new(batch, build, "test").expect("table");
        let (_, probe) = keys(&[1, 3, 4, 1], integers);
        let all = vec![
            (0, 0),
            (0, 3),
            (2, 0),
            (2, 3),
            (3, 0),
            (3, 3),
            (4, 1),
            (5, 0),
            (5, 3),
        ];
        for block in [1, 2, 3, 8192] {
            assert_eq!(pairs(&table, &probe, block, false), all, "block {block}");
        }
        let first = pairs(&table, &probe, 2, true);
        let probe_rows: Vec<u32> = first.iter().map(|&(_, p)| p).collect();
        assert_eq!(first.len(), 3);
        assert!(probe_rows.contains(&0) && probe_rows.contains(&1) && probe_rows.contains(&3));
    }

    #[test]
    fn an_empty_table_matches_nothing() {
        for integers in [false, true] {
            let (batch, build) = keys(&[], integers);
            let table = JoinTable::try_new(batch, build, "test").expect("table");
            let (_, probe) = keys(&[1, 2], integers);
            assert!(pairs(&table, &probe, 4, false).is_empty());
        }
    }

    #[test]
    fn keys_encoded_unlike_the_table_are_an_error() {
        let (batch, build) = keys(&[1], true);
        let table = JoinTable::try_new(batch, build, "test").expect("table");
        let (_, probe) = keys(&[1], false);
        let mut blocks = table.candidates(&probe, 4, false);
        assert!(blocks.next().expect("a block").is_err());
    }
}
