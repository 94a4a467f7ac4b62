//! Spill partitions of a grace hash join: when the build side does not fit
//! its budget, both sides' rows go to spill files by the hash of their keys,
//! so that equal keys land in partitions of the same number, which are then
//! joined one pair at a time. A partition that still does not fit is split
//! again with the hash of the next level, whose seed differs.

use arrow::array::{RecordBatch, UInt32Array};
use arrow::datatypes::SchemaRef;
use weir_exchange::event::take_rows;
use weir_exchange::spill::{SpillFile, SpillWriter};

use super::keys::EncodedKeys;
use crate::Result;
use crate::memory::MemoryReservation;

/// Partitions each level splits into.
pub(crate) const FANOUT: usize = 16;

/// Levels of partitioning before a partition that still does not fit fails
/// (its rows share too few keys to be split further).
pub(crate) const MAX_LEVEL: u64 = 4;

/// One side's rows, written to a spill file per hash partition.
#[derive(Debug)]
pub(crate) struct SpillPartitions {
    level: u64,
    schema: SchemaRef,
    writers: Vec<Option<SpillWriter>>,
}

impl SpillPartitions {
    /// Partitions of batches of `schema` at `level` (1 for the first split).
    pub(crate) fn new(schema: SchemaRef, level: u64) -> Self {
        Self {
            level,
            schema,
            writers: (0..FANOUT).map(|_| None).collect(),
        }
    }

    /// The level of these partitions.
    pub(crate) fn level(&self) -> u64 {
        self.level
    }

    /// Writes each row of `batch` (with non-NULL keys `keys`) to its
    /// partition.
    ///
    /// # Errors
    /// When a spill file cannot be written.
    pub(crate) fn write(
        &mut self,
        batch: &RecordBatch,
        keys: &EncodedKeys,
        reservation: &MemoryReservation,
    ) -> Result<()> {
        // Counting sort of the rows by partition, then one `take` and a
        // slice per partition.
        let partitions: Vec<usize> = keys
            .hashes(self.level)
            .into_iter()
            .map(|hash| (hash % FANOUT as u64) as usize)
            .collect();
        let mut starts = [0usize; FANOUT + 1];
        for &p in &partitions {
            starts[p + 1] += 1;
        }
        for p in 0..FANOUT {
            starts[p + 1] += starts[p];
        }
        let mut fill = starts;
        let mut order = vec![0u32; partitions.len()];
        for (row, &p) in partitions.iter().enumerate() {
            order[fill[p]] = row as u32;
            fill[p] += 1;
        }
        let sorted = take_rows(batch, &UInt32Array::from(order))?;
        for p in 0..FANOUT {
            let rows = starts[p + 1] - starts[p];
            if rows == 0 {
                continue;
            }
            let writer = match &mut self.writers[p] {
                Some(writer) => writer,
                empty => empty.insert(reservation.spill_writer(&self.schema)?),
            };
            writer
                .write(&sorted.slice(starts[p], rows))
                .map_err(|e| reservation.spill_error(e))?;
        }
        Ok(())
    }

    /// Completes the files: one per partition, `None` for an empty one.
    ///
    /// # Errors
    /// When a spill file cannot be completed.
    pub(crate) fn finish(self, reservation: &MemoryReservation) -> Result<Vec<Option<SpillFile>>> {
        self.writers
            .into_iter()
            .map(|writer| {
                writer
                    .map(|w| {
                        let file = w.finish().map_err(|e| reservation.spill_error(e))?;
                        reservation.record_spill(&file);
                        Ok(file)
                    })
                    .transpose()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use arrow::row::{RowConverter, SortField};

    use super::*;
    use crate::memory::{MemoryConfig, MemoryPool};

    #[test]
    fn equal_keys_land_in_the_same_partition_and_no_row_is_lost() {
        let dir = std::env::temp_dir().join(format!("weir-grace-test-{}", std::process::id()));
        let pool = MemoryPool::new(MemoryConfig {
            budget: 1 << 20,
            spill: true,
            spill_dir: dir.clone(),
        });
        let reservation = pool.reservation("test");
        let column: ArrayRef = Arc::new(Int64Array::from_iter_values((0..500).map(|i| i % 250)));
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).expect("batch");
        let converter = RowConverter::new(vec![SortField::new(DataType::Int64)]).expect("rows");
        let keys = EncodedKeys::Rows(converter.convert_columns(batch.columns()).expect("rows"));
        let mut partitions = SpillPartitions::new(schema, 1);
        partitions
            .write(&batch, &keys, &reservation)
            .expect("write");
        partitions
            .write(&batch, &keys, &reservation)
            .expect("write again");
        let files = partitions.finish(&reservation).expect("finish");
        assert_eq!(files.len(), FANOUT);
        let mut seen = vec![None; 250];
        let mut rows = 0;
        for (p, file) in files.iter().enumerate() {
            let Some(file) = file else { continue };
            for batch in file.read().expect("read") {
                let batch = batch.expect("batch");
                rows += batch.num_rows();
                for &k in batch.column(0).as_primitive::<Int64Type>().values() {
                    let partition = seen[k as usize].get_or_insert(p);
                    assert_eq!(*partition, p, "key {k} in two partitions");
                }
            }
        }
        assert_eq!(rows, 1000);
        assert!(files.iter().flatten().count() > FANOUT / 2);
        assert_eq!(pool.spill_files(), files.iter().flatten().count() as u64);
        drop(files);
        assert_eq!(std::fs::read_dir(&dir).expect("list").count(), 0);
        std::fs::remove_dir(&dir).expect("remove the empty directory");
    }
}
