//! The hash table of a hash join: the build rows, their keys in row format,
//! and chains of the rows that share a key hash.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::RecordBatch;
use arrow::row::Rows;

use super::Candidates;
use super::keys::hash_rows;
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
    keys: Rows,
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
    pub(crate) fn try_new(batch: RecordBatch, keys: Rows, operator: &str) -> Result<Self> {
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
        for (row, hash) in (0..rows).zip(hash_rows(&keys, TABLE_SEED)) {
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
        keys: &'a Rows,
        block: usize,
        first_only: bool,
    ) -> impl Iterator<Item = Result<Candidates>> + 'a {
        let hashes = hash_rows(keys, TABLE_SEED);
        let mut cursor = ProbeCursor::default();
        std::iter::from_fn(move || {
            (cursor.row < hashes.len())
                .then(|| Ok(self.next_block(keys, &hashes, &mut cursor, block, first_only)))
        })
    }

    fn next_block(
        &self,
        keys: &Rows,
        hashes: &[u64],
        cursor: &mut ProbeCursor,
        block: usize,
        first_only: bool,
    ) -> Candidates {
        let (mut build, mut probe) = (Vec::with_capacity(block), Vec::with_capacity(block));
        while cursor.row < hashes.len() {
            let probe_row = cursor.row;
            let mut entry = match cursor.chain.take() {
                Some(entry) => entry,
                None => self.heads.get(&hashes[probe_row]).copied().unwrap_or(0),
            };
            while entry != 0 {
                let build_row = entry - 1;
                entry = self.next[build_row as usize];
                if self.keys.row(build_row as usize) == keys.row(probe_row) {
                    build.push(build_row);
                    probe.push(probe_row as u32);
                    if first_only {
                        entry = 0;
                    }
                    if build.len() == block {
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

    fn keys(values: &[i32]) -> (RecordBatch, Rows) {
        let column: ArrayRef = Arc::new(Int32Array::from(values.to_vec()));
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int32, false)]));
        let converter = RowConverter::new(vec![SortField::new(DataType::Int32)]).expect("row type");
        let rows = converter
            .convert_columns(std::slice::from_ref(&column))
            .expect("rows");
        (
            RecordBatch::try_new(schema, vec![column]).expect("batch"),
            rows,
        )
    }

    fn pairs(table: &JoinTable, probe: &Rows, block: usize, first_only: bool) -> Vec<(u32, u32)> {
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
        let (batch, build) = keys(&[1, 2, 1, 1, 3, 1]);
        let table = JoinTable::try_new(batch, build, "test").expect("table");
        let (_, probe) = keys(&[1, 3, 4, 1]);
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
        let (batch, build) = keys(&[]);
        let table = JoinTable::try_new(batch, build, "test").expect("table");
        let (_, probe) = keys(&[1, 2]);
        assert!(pairs(&table, &probe, 4, false).is_empty());
    }
}
