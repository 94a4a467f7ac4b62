//! The hash table of a hash join: the build rows, their encoded keys, and
//! chains of the rows that share a key hash.

use arrow::array::RecordBatch;
use arrow::row::Rows;

use super::Candidates;
use super::keys::{EncodedKeys, keys_hashed};
use crate::{Error, Result};

/// The seed of the table's hashes (spill partitioning uses others).
const TABLE_SEED: u64 = 0;

/// The build side of a hash join, indexed by key.
///
/// Its index has a power of two of places, at least twice as many as rows;
/// a key's first place is the top bits of its hash. The rows of a key (or
/// of keys whose hashes share a place) are a chain: each row links to the
/// row of its key put in before it (plus one; zero ends a chain), as
/// DuckDB's pointer table and DataFusion's `JoinHashMap` chain theirs.
#[derive(Debug)]
pub(crate) struct JoinTable {
    batch: RecordBatch,
    /// How far a hash is shifted right to give its place.
    shift: u32,
    index: Index,
}

/// How a table finds the rows of a key.
#[derive(Debug)]
enum Index {
    /// A single integer key: open addressing, each distinct key in the
    /// place its hash gives or the first free one after it, with the head
    /// of its chain. A probe reads one place or a few neighbours (one
    /// cache miss), and every row along a chain matches.
    Integers {
        places: Vec<IntegerPlace>,
        next: Vec<u32>,
    },
    /// A single integer key whose values span at most a few times as many
    /// numbers as there are rows (as keys numbered from 1 do): the head of
    /// each key's chain at its distance from the smallest, no hash, no
    /// comparison (DuckDB's perfect hash join). A head has [`MORE`] set
    /// when its chain has more than one row.
    Direct {
        min: i64,
        heads: Vec<u32>,
        next: Vec<u32>,
    },
    /// Keys in row format: each place holds the head of the chain of the
    /// rows whose hashes give it, keys compared along the chain.
    Rows {
        places: Vec<u32>,
        keys: Rows,
        next: Vec<u32>,
    },
}

/// The bit of a direct index's head saying its chain has more rows.
const MORE: u32 = 1 << 31;

/// The direct index's smallest key, when `values` span at most four
/// numbers per row (and the rows fit beside [`MORE`]).
fn dense_minimum(values: &[i64]) -> Option<i64> {
    let (min, max) = (values.iter().min()?, values.iter().max()?);
    let span = i128::from(*max) - i128::from(*min) + 1;
    let limit = (values.len() as i128 * 4).max(1024);
    (span <= limit && values.len() < MORE as usize).then_some(*min)
}

/// A place of an integer index: a key and the head of its chain (zero:
/// free), and whether the chain has more than one row.
#[derive(Debug, Clone, Copy, Default)]
struct IntegerPlace {
    key: i64,
    head: u32,
    more: bool,
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
        if u32::try_from(batch.num_rows()).map_or(true, |n| n == u32::MAX) {
            return Err(Error::Operator {
                operator: operator.to_string(),
                message: format!(
                    "a hash table holds at most {} rows, not {}",
                    u32::MAX - 1,
                    batch.num_rows()
                ),
            });
        }
        let size = (batch.num_rows() * 2).max(16).next_power_of_two();
        let shift = 64 - size.trailing_zeros();
        let mut next = vec![0; batch.num_rows()];
        let index = match keys {
            EncodedKeys::Integers(values) if let Some(min) = dense_minimum(&values) => {
                let max = values.iter().max().copied().unwrap_or(min);
                let mut heads = vec![0u32; (max - min) as usize + 1];
                for (row, &key) in values.iter().enumerate() {
                    let head = &mut heads[(key - min) as usize];
                    let row = row as u32 + 1;
                    next[row as usize - 1] = *head & !MORE;
                    *head = if *head == 0 { row } else { row | MORE };
                }
                Index::Direct { min, heads, next }
            }
            EncodedKeys::Integers(values) => {
                let mut places = vec![IntegerPlace::default(); size];
                let mask = size - 1;
                keys_hashed(&values, TABLE_SEED, |row, hash| {
                    let key = values[row];
                    let mut at = (hash >> shift) as usize;
                    loop {
                        let place = &mut places[at];
                        if place.head == 0 {
                            *place = IntegerPlace {
                                key,
                                head: row as u32 + 1,
                                more: false,
                            };
                            break;
                        }
                        if place.key == key {
                            next[row] = std::mem::replace(&mut place.head, row as u32 + 1);
                            place.more = true;
                            break;
                        }
                        at = (at + 1) & mask;
                    }
                });
                Index::Integers { places, next }
            }
            EncodedKeys::Rows(rows) => {
                let mut places = vec![0u32; size];
                for (row, hash) in EncodedKeys::hashes_of_rows(&rows, TABLE_SEED).enumerate() {
                    let head = &mut places[(hash >> shift) as usize];
                    next[row] = std::mem::replace(head, row as u32 + 1);
                }
                Index::Rows {
                    places,
                    keys: rows,
                    next,
                }
            }
        };
        Ok(Self {
            batch,
            shift,
            index,
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
            + match &self.index {
                Index::Integers { places, next } => {
                    places.capacity() * size_of::<IntegerPlace>() + next.capacity() * 4
                }
                Index::Direct { heads, next, .. } => (heads.capacity() + next.capacity()) * 4,
                Index::Rows { places, keys, next } => {
                    keys.size() + (places.capacity() + next.capacity()) * 4
                }
            }
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
        // The chain of every probe row first: the index is read for one
        // row without waiting for the others, so cache misses overlap.
        let mut heads = Vec::with_capacity(keys.len());
        // For integer keys, whether each chain has more than one row.
        let mut more = Vec::new();
        let matched = match (&self.index, keys) {
            (Index::Integers { places, .. }, EncodedKeys::Integers(values)) => {
                more.reserve(values.len());
                let mask = places.len() - 1;
                keys_hashed(values, TABLE_SEED, |row, hash| {
                    let mut at = (hash >> self.shift) as usize;
                    let place = loop {
                        let place = places[at];
                        if place.head == 0 || place.key == values[row] {
                            break place;
                        }
                        at = (at + 1) & mask;
                    };
                    heads.push(place.head);
                    more.push(place.more);
                });
                Ok(())
            }
            (
                Index::Direct {
                    min, heads: index, ..
                },
                EncodedKeys::Integers(values),
            ) => {
                more.reserve(values.len());
                for &key in values {
                    let head = match key.checked_sub(*min) {
                        Some(at) if (at as u64) < index.len() as u64 => index[at as usize],
                        _ => 0,
                    };
                    heads.push(head & !MORE);
                    more.push(head & MORE != 0);
                }
                Ok(())
            }
            (Index::Rows { places, .. }, EncodedKeys::Rows(rows)) => {
                heads.extend(
                    EncodedKeys::hashes_of_rows(rows, TABLE_SEED)
                        .map(|hash| places[(hash >> self.shift) as usize]),
                );
                Ok(())
            }
            _ => Err(Error::Operator {
                operator: "hash join".to_string(),
                message: "a probe batch's keys are encoded unlike the table's".to_string(),
            }),
        };
        let mut cursor = ProbeCursor::default();
        let mut failed = matched.err();
        std::iter::from_fn(move || {
            if let Some(e) = failed.take() {
                return Some(Err(e));
            }
            (cursor.row < heads.len()).then(|| {
                let mut probe = Probe {
                    heads: &heads,
                    cursor: &mut cursor,
                    block,
                    first_only,
                };
                Ok(match (&self.index, keys) {
                    (Index::Integers { next, .. } | Index::Direct { next, .. }, _) => probe
                        .next_block(|b, p| {
                            // A chain of one row ends without reading it.
                            let last = heads[p] as usize == b + 1 && !more[p];
                            (true, if last { 0 } else { next[b] })
                        }),
                    (
                        Index::Rows {
                            keys: build, next, ..
                        },
                        EncodedKeys::Rows(keys),
                    ) => probe.next_block(|b, p| (build.row(b) == keys.row(p), next[b])),
                    (Index::Rows { .. }, EncodedKeys::Integers(_)) => (Vec::new(), Vec::new()),
                })
            })
        })
    }
}

/// Probing one batch, from where its previous block stopped.
struct Probe<'a> {
    /// The chain of each probe row.
    heads: &'a [u32],
    cursor: &'a mut ProbeCursor,
    block: usize,
    first_only: bool,
}

impl Probe<'_> {
    /// The next block of candidate pairs. `step(build row, probe row)`
    /// tells whether the two rows' keys are equal, and the next row of the
    /// build row's chain.
    fn next_block(&mut self, step: impl Fn(usize, usize) -> (bool, u32)) -> Candidates {
        let cursor = &mut *self.cursor;
        let (mut build, mut probe) = (
            Vec::with_capacity(self.block),
            Vec::with_capacity(self.block),
        );
        while cursor.row < self.heads.len() {
            let probe_row = cursor.row;
            let mut entry = cursor.chain.take().unwrap_or(self.heads[probe_row]);
            while entry != 0 {
                let build_row = entry - 1;
                let (equal, next) = step(build_row as usize, probe_row);
                entry = next;
                if equal {
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

    /// How a test's keys are encoded.
    #[derive(Clone, Copy)]
    enum Encoding {
        Rows,
        /// Integers as given: a direct index.
        Dense,
        /// Integers spread far apart: open addressing.
        Sparse,
    }

    const ENCODINGS: [Encoding; 3] = [Encoding::Rows, Encoding::Dense, Encoding::Sparse];

    /// A batch of keys `values`, encoded as `encoding` says.
    fn keys(values: &[i32], encoding: Encoding) -> (RecordBatch, EncodedKeys) {
        let column: ArrayRef = Arc::new(Int32Array::from(values.to_vec()));
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int32, false)]));
        let converter = RowConverter::new(vec![SortField::new(DataType::Int32)]).expect("row type");
        let spread = |factor: i64| values.iter().map(|&v| i64::from(v) * factor).collect();
        let keys = match encoding {
            Encoding::Dense => EncodedKeys::Integers(spread(1)),
            Encoding::Sparse => EncodedKeys::Integers(spread(1 << 40)),
            Encoding::Rows => EncodedKeys::Rows(
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
        for encoding in ENCODINGS {
            probe_resumes_chains(encoding);
        }
    }

    fn probe_resumes_chains(encoding: Encoding) {
        let (batch, build) = keys(&[1, 2, 1, 1, 3, 1], encoding);
        let table = JoinTable::try_new(batch, build, "test").expect("table");
        assert!(matches!(
            (encoding, &table.index),
            (Encoding::Rows, Index::Rows { .. })
                | (Encoding::Dense, Index::Direct { .. })
                | (Encoding::Sparse, Index::Integers { .. })
        ));
        let (_, probe) = keys(&[1, 3, 4, 1, -5, 0], encoding);
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
        for encoding in ENCODINGS {
            let (batch, build) = keys(&[], encoding);
            let table = JoinTable::try_new(batch, build, "test").expect("table");
            let (_, probe) = keys(&[1, 2], encoding);
            assert!(pairs(&table, &probe, 4, false).is_empty());
        }
    }

    #[test]
    fn keys_encoded_unlike_the_table_are_an_error() {
        let (batch, build) = keys(&[1], Encoding::Sparse);
        let table = JoinTable::try_new(batch, build, "test").expect("table");
        let (_, probe) = keys(&[1], Encoding::Rows);
        let mut blocks = table.candidates(&probe, 4, false);
        assert!(blocks.next().expect("a block").is_err());
    }
}
