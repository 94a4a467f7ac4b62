//! The group table: a hash map from a group's keys to its group index.
//! Indexes are dense and in first-seen order, as DataFusion's
//! `GroupsAccumulator`s expect.
//!
//! A single integer key is indexed by its value (see
//! [`integer_keys`](crate::operators::integer_keys)); any other keys by
//! their bytes in Arrow's row format.

use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::buffer::{BooleanBuffer, NullBuffer};
use arrow::compute::take;
use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use arrow::row::RowConverter;
use datafusion_common::HashMap;

use crate::operators::integer_keys::{is_integer, narrow, widen};

/// Groups by key; a table without key columns has exactly one group.
pub(crate) struct GroupTable {
    converter: RowConverter,
    index: GroupIndex,
}

/// How a table finds the group of a key.
enum GroupIndex {
    /// No keys: one group.
    Keyless,
    /// One integer key.
    Integers(IntegerGroups),
    /// Keys in row format.
    Rows {
        index: HashMap<Box<[u8]>, usize>,
        key_bytes: usize,
    },
}

/// The groups of a single integer key.
struct IntegerGroups {
    /// The key's type.
    data_type: DataType,
    /// The group of each non-NULL key.
    index: HashMap<i64, usize>,
    /// The key of each group, by group index (0 for the NULL group).
    keys: Vec<i64>,
    /// The group of NULL, once seen.
    null: Option<usize>,
}

/// The order in which [`GroupTable::drain`] hands out groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupOrder {
    /// By group index: the order accumulators emit their values in.
    FirstSeen,
    /// By key bytes: the order of a spill run.
    Key,
}

/// The keys of groups taken out of a table.
pub(crate) enum DrainedKeys {
    /// In row format.
    Rows(Vec<Box<[u8]>>),
    /// As the key column.
    Column(ArrayRef),
}

impl DrainedKeys {
    /// How many groups.
    pub(crate) fn len(&self) -> usize {
        match self {
            DrainedKeys::Rows(rows) => rows.len(),
            DrainedKeys::Column(column) => column.len(),
        }
    }
}

/// Groups taken out of a table: their keys, and (when not in first-seen
/// order) the group index of each.
pub(crate) struct DrainedGroups {
    pub(crate) keys: DrainedKeys,
    pub(crate) indices: Option<Vec<u64>>,
}

impl GroupTable {
    /// An empty table for keys of `key_types`, converted by `converter`.
    pub(crate) fn new(converter: RowConverter, key_types: &[&DataType]) -> Self {
        let index = match key_types {
            [] => GroupIndex::Keyless,
            [key] if is_integer(key) => GroupIndex::Integers(IntegerGroups {
                data_type: (*key).clone(),
                index: HashMap::default(),
                keys: Vec::new(),
                null: None,
            }),
            _ => GroupIndex::Rows {
                index: HashMap::default(),
                key_bytes: 0,
            },
        };
        Self { converter, index }
    }

    /// Groups held.
    pub(crate) fn len(&self) -> usize {
        match &self.index {
            GroupIndex::Keyless => 1,
            GroupIndex::Integers(groups) => groups.keys.len(),
            GroupIndex::Rows { index, .. } => index.len(),
        }
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
        groups.reserve(rows);
        match &mut self.index {
            GroupIndex::Keyless => groups.resize(rows, 0),
            GroupIndex::Integers(table) => table.intern(&keys[0], groups)?,
            GroupIndex::Rows { index, key_bytes } => {
                let converted = self.converter.convert_columns(keys)?;
                for row in converted.iter() {
                    let bytes = row.as_ref();
                    let group = match index.get(bytes) {
                        Some(&group) => group,
                        None => {
                            let group = index.len();
                            index.insert(bytes.into(), group);
                            *key_bytes += bytes.len();
                            group
                        }
                    };
                    groups.push(group);
                }
            }
        }
        Ok(())
    }

    /// Bytes held by the table.
    pub(crate) fn size(&self) -> usize {
        self.converter.size()
            + match &self.index {
                GroupIndex::Keyless => 0,
                GroupIndex::Integers(groups) => {
                    groups.keys.capacity() * size_of::<i64>()
                        + groups.index.capacity() * (size_of::<(i64, usize)>() + 1)
                }
                GroupIndex::Rows { index, key_bytes } => {
                    key_bytes + index.capacity() * (size_of::<(Box<[u8]>, usize)>() + 1)
                }
            }
    }

    /// Takes every group out, leaving the table empty.
    ///
    /// # Errors
    /// When integer keys cannot be turned back into their column.
    pub(crate) fn drain(&mut self, order: GroupOrder) -> Result<DrainedGroups, ArrowError> {
        match &mut self.index {
            GroupIndex::Keyless => Ok(DrainedGroups {
                keys: DrainedKeys::Rows(vec![Box::default()]),
                indices: None,
            }),
            GroupIndex::Integers(groups) => {
                let column = groups.drain()?;
                match order {
                    GroupOrder::FirstSeen => Ok(DrainedGroups {
                        keys: DrainedKeys::Column(column),
                        indices: None,
                    }),
                    GroupOrder::Key => {
                        let rows = self
                            .converter
                            .convert_columns(std::slice::from_ref(&column))?;
                        let mut order: Vec<u32> = (0..column.len() as u32).collect();
                        order.sort_unstable_by(|&a, &b| {
                            rows.row(a as usize).cmp(&rows.row(b as usize))
                        });
                        let indices = order.iter().map(|&group| u64::from(group)).collect();
                        Ok(DrainedGroups {
                            keys: DrainedKeys::Column(take(
                                &column,
                                &UInt32Array::from(order),
                                None,
                            )?),
                            indices: Some(indices),
                        })
                    }
                }
            }
            GroupIndex::Rows { index, key_bytes } => {
                *key_bytes = 0;
                let index = std::mem::take(index);
                Ok(match order {
                    GroupOrder::FirstSeen => {
                        let mut keys = vec![Box::<[u8]>::default(); index.len()];
                        for (key, group) in index {
                            keys[group] = key;
                        }
                        DrainedGroups {
                            keys: DrainedKeys::Rows(keys),
                            indices: None,
                        }
                    }
                    GroupOrder::Key => {
                        let mut groups: Vec<_> = index.into_iter().collect();
                        groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                        let indices = groups.iter().map(|(_, group)| *group as u64).collect();
                        DrainedGroups {
                            keys: DrainedKeys::Rows(
                                groups.into_iter().map(|(key, _)| key).collect(),
                            ),
                            indices: Some(indices),
                        }
                    }
                })
            }
        }
    }
}

impl IntegerGroups {
    /// Writes the group of every value of `column` to `groups`, adding
    /// the groups not seen yet.
    fn intern(&mut self, column: &ArrayRef, groups: &mut Vec<usize>) -> Result<(), ArrowError> {
        let values = widen(column)?.ok_or_else(|| {
            ArrowError::InvalidArgumentError(format!(
                "a {} key where {} keys were expected",
                column.data_type(),
                self.data_type
            ))
        })?;
        let valid = column.logical_nulls().filter(|n| n.null_count() > 0);
        for (row, value) in values.into_iter().enumerate() {
            let group = match &valid {
                Some(valid) if valid.is_null(row) => match self.null {
                    Some(group) => group,
                    None => {
                        let group = self.add(0);
                        self.null = Some(group);
                        group
                    }
                },
                _ => match self.index.get(&value) {
                    Some(&group) => group,
                    None => {
                        let group = self.add(value);
                        self.index.insert(value, group);
                        group
                    }
                },
            };
            groups.push(group);
        }
        Ok(())
    }

    /// A new group of key `value`.
    fn add(&mut self, value: i64) -> usize {
        self.keys.push(value);
        self.keys.len() - 1
    }

    /// The key column of every group, by group index, leaving none.
    fn drain(&mut self) -> Result<ArrayRef, ArrowError> {
        self.index = HashMap::default();
        let keys = std::mem::take(&mut self.keys);
        let nulls = self.null.take().map(|group| {
            let mut valid = vec![true; keys.len()];
            valid[group] = false;
            NullBuffer::new(BooleanBuffer::from(valid))
        });
        narrow(keys, nulls, &self.data_type)
    }
}
