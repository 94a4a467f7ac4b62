//! The group table: a hash map from the row-format bytes of a group's keys
//! to its group index. Indexes are dense and in first-seen order, as
//! DataFusion's `GroupsAccumulator`s expect.

use arrow::array::ArrayRef;
use arrow::error::ArrowError;
use arrow::row::RowConverter;
use datafusion_common::HashMap;

/// Groups by key; a table without key columns has exactly one group.
pub(crate) struct GroupTable {
    converter: RowConverter,
    keyless: bool,
    index: HashMap<Box<[u8]>, usize>,
    key_bytes: usize,
}

/// The order in which [`GroupTable::drain`] hands out groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupOrder {
    /// By group index: the order accumulators emit their values in.
    FirstSeen,
    /// By key bytes: the order of a spill run.
    Key,
}

/// Groups taken out of a table: their keys in row format, and (when not in
/// first-seen order) the group index of each.
pub(crate) struct DrainedGroups {
    pub(crate) keys: Vec<Box<[u8]>>,
    pub(crate) indices: Option<Vec<u64>>,
}

impl GroupTable {
    /// An empty table for keys converted by `converter`.
    pub(crate) fn new(converter: RowConverter, keyless: bool) -> Self {
        Self {
            converter,
            keyless,
            index: HashMap::default(),
            key_bytes: 0,
        }
    }

    /// Groups held.
    pub(crate) fn len(&self) -> usize {
        if self.keyless { 1 } else { self.index.len() }
    }

    /// Looks up the group of every row of `keys` (a batch of `rows` rows),
    /// adding the groups not seen yet; writes the group indexes to `groups`.
    pub(crate) fn intern(
        &mut self,
        keys: &[ArrayRef],
        rows: usize,
        groups: &mut Vec<usize>,
    ) -> Result<(), ArrowError> {
        groups.clear();
        if self.keyless {
            groups.resize(rows, 0);
            return Ok(());
        }
        let converted = self.converter.convert_columns(keys)?;
        groups.reserve(converted.num_rows());
        for row in converted.iter() {
            let bytes = row.as_ref();
            let group = match self.index.get(bytes) {
                Some(&group) => group,
                None => {
                    let group = self.index.len();
                    self.index.insert(bytes.into(), group);
                    self.key_bytes += bytes.len();
                    group
                }
            };
            groups.push(group);
        }
        Ok(())
    }

    /// Bytes held by the table.
    pub(crate) fn size(&self) -> usize {
        let entry = size_of::<(Box<[u8]>, usize)>() + 1;
        self.converter.size() + self.key_bytes + self.index.capacity() * entry
    }

    /// Takes every group out, leaving the table empty.
    pub(crate) fn drain(&mut self, order: GroupOrder) -> DrainedGroups {
        self.key_bytes = 0;
        let index = std::mem::take(&mut self.index);
        if self.keyless {
            return DrainedGroups {
                keys: vec![Box::default()],
                indices: None,
            };
        }
        match order {
            GroupOrder::FirstSeen => {
                let mut keys = vec![Box::<[u8]>::default(); index.len()];
                for (key, group) in index {
                    keys[group] = key;
                }
                DrainedGroups {
                    keys,
                    indices: None,
                }
            }
            GroupOrder::Key => {
                let mut groups: Vec<_> = index.into_iter().collect();
                groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let indices = groups.iter().map(|(_, group)| *group as u64).collect();
                DrainedGroups {
                    keys: groups.into_iter().map(|(key, _)| key).collect(),
                    indices: Some(indices),
                }
            }
        }
    }
}
