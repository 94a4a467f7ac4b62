//! The per-subpartition index of a partition file, shared by both formats,
//! and the checks a reader applies to it before trusting it.

use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::{Error, ResultPartitionId};

/// Version of the index layout; readers reject any other.
pub(super) const INDEX_VERSION: u32 = 1;

/// One block: a run of consecutive batches of one subpartition, encoded
/// together and checksummed as one byte range of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BlockEntry {
    /// The subpartition the block belongs to.
    pub subpartition: u32,
    /// The Parquet row group holding the block (Parquet files only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_group: Option<u32>,
    /// Offset of the block's first byte in the file.
    pub offset: u64,
    /// Length of the block in bytes.
    pub length: u64,
    /// Rows in the block.
    pub rows: u64,
    /// CRC32 of the block's bytes.
    pub crc32: u32,
}

impl BlockEntry {
    /// The end offset (exclusive), or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.length)
    }
}

/// The index of a partition file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct PartitionIndex {
    /// [`INDEX_VERSION`] when written.
    pub version: u32,
    /// The number of subpartitions (consumers) of the partition.
    pub num_subpartitions: u32,
    /// The end of the data region: the header and every block.
    pub data_len: u64,
    /// The compression the blocks were written with (informational).
    pub compression: String,
    /// Every block, in file order; per subpartition this is write order.
    pub blocks: Vec<BlockEntry>,
}

impl PartitionIndex {
    /// An empty index whose data region starts at `data_len`.
    pub fn new(num_subpartitions: u32, data_len: u64, compression: String) -> Self {
        Self {
            version: INDEX_VERSION,
            num_subpartitions,
            data_len,
            compression,
            blocks: Vec::new(),
        }
    }

    /// Checks the index is self-consistent: the blocks tile the data region
    /// `[first_offset, data_len)` without gaps or overlaps, in order, each
    /// names an existing subpartition and holds at least one row, and (for
    /// Parquet) the i-th block is row group i.
    pub fn validate(&self, first_offset: u64, row_groups: bool) -> Result<(), String> {
        if self.version != INDEX_VERSION {
            return Err(format!(
                "unsupported index version {} (expected {INDEX_VERSION})",
                self.version
            ));
        }
        if self.num_subpartitions == 0 {
            return Err("index has zero subpartitions".to_string());
        }
        let mut expected_offset = first_offset;
        for (i, block) in self.blocks.iter().enumerate() {
            if block.subpartition >= self.num_subpartitions {
                return Err(format!(
                    "block {i} names subpartition {} of {}",
                    block.subpartition, self.num_subpartitions
                ));
            }
            if block.offset != expected_offset {
                return Err(format!(
                    "block {i} starts at {} instead of {expected_offset}",
                    block.offset
                ));
            }
            if block.length == 0 || block.rows == 0 {
                return Err(format!("block {i} is empty"));
            }
            let expected_row_group = row_groups.then(|| u32::try_from(i).ok()).flatten();
            if block.row_group != expected_row_group {
                return Err(format!(
                    "block {i} names row group {:?} instead of {expected_row_group:?}",
                    block.row_group
                ));
            }
            expected_offset = block
                .end()
                .ok_or_else(|| format!("block {i} overflows the file"))?;
        }
        if expected_offset != self.data_len {
            return Err(format!(
                "blocks end at {expected_offset} but the data region ends at {}",
                self.data_len
            ));
        }
        Ok(())
    }
}

/// A partition file being read or written: names it in errors.
#[derive(Debug, Clone)]
pub(super) struct PartitionFile {
    pub partition: ResultPartitionId,
    pub path: Path,
}

impl PartitionFile {
    /// [`Error::PartitionCorrupt`] for this file.
    pub fn corrupt(&self, reason: impl Into<String>) -> Error {
        Error::PartitionCorrupt {
            partition: self.partition.clone(),
            path: self.path.to_string(),
            reason: reason.into(),
        }
    }

    /// [`Error::PartitionNotFound`] for this file.
    pub fn not_found(&self) -> Error {
        Error::PartitionNotFound {
            partition: self.partition.clone(),
            path: self.path.to_string(),
        }
    }

    /// Maps an object store error: a missing object is
    /// [`Error::PartitionNotFound`], anything else stays an I/O failure.
    pub fn store_error(&self, error: object_store::Error) -> Error {
        match error {
            object_store::Error::NotFound { .. } => self.not_found(),
            other => Error::ObjectStore(other),
        }
    }
}

/// CRC32 of `bytes`.
pub(super) fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(subpartition: u32, offset: u64, length: u64) -> BlockEntry {
        BlockEntry {
            subpartition,
            row_group: None,
            offset,
            length,
            rows: 1,
            crc32: 0,
        }
    }

    #[test]
    fn validate_accepts_tiling_blocks() {
        let mut index = PartitionIndex::new(2, 8, "none".into());
        assert_eq!(index.validate(8, false), Ok(()));
        index.blocks = vec![block(1, 8, 10), block(0, 18, 5)];
        index.data_len = 23;
        assert_eq!(index.validate(8, false), Ok(()));
    }

    #[test]
    fn validate_rejects_gaps_overlaps_and_bad_subpartitions() {
        let mut index = PartitionIndex::new(2, 23, "none".into());
        index.blocks = vec![block(1, 8, 10), block(0, 19, 4)];
        assert!(index.validate(8, false).is_err());
        index.blocks = vec![block(1, 8, 10), block(2, 18, 5)];
        assert!(index.validate(8, false).is_err());
        index.blocks = vec![block(1, 8, 10), block(0, 18, 6)];
        assert!(index.validate(8, false).is_err());
        index.blocks = vec![block(1, 8, u64::MAX)];
        assert!(index.validate(8, false).is_err());
        index.blocks = vec![block(1, 8, 15)];
        assert!(index.validate(8, true).is_err());
        index.version = 2;
        index.blocks = vec![block(1, 8, 15)];
        assert!(index.validate(8, false).is_err());
    }
}
