//! What a Parquet file's statistics say about its row groups and pages, as
//! Arrow arrays with one entry per container (row group or page).
//!
//! Bounds are only ever used as bounds: a minimum is a value no greater than
//! any value of the container, a maximum one no smaller. Parquet allows
//! writers to truncate them (`is_min_value_exact`/`is_max_value_exact` are
//! then false, and the page index has no such flags at all), but requires a
//! truncated minimum to stay below the true one and a truncated maximum
//! above, so inexact bounds need no special treatment. Statistics written
//! in an order other than the one Arrow compares in (legacy files' signed
//! byte order for strings, unknown column orders) are not used.

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array, Scalar, UInt64Array};
use arrow::buffer::BooleanBuffer;
use arrow::compute::cast;
use arrow::compute::kernels::cmp;
use arrow::datatypes::{DataType, Field, Float64Type};
use arrow::error::ArrowError;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::basic::{ColumnOrder, SortOrder, Type as PhysicalType};
use parquet::file::page_index::offset_index::PageLocation;
use std::collections::HashMap;

use super::casts::{cast_bounds, value_type};

/// The statistics of the columns a predicate reads, over a run of
/// containers. A column without an entry is unknown.
#[derive(Debug)]
pub(crate) struct Containers {
    len: usize,
    columns: HashMap<String, ColumnStatistics>,
}

impl Containers {
    /// No statistics yet for `len` containers.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            len,
            columns: HashMap::new(),
        }
    }

    /// Adds the statistics of the table column `name`.
    pub(crate) fn insert(&mut self, name: &str, statistics: ColumnStatistics) {
        self.columns.insert(name.to_string(), statistics);
    }

    /// How many containers there are.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The statistics of the table column `name`, if known.
    pub(crate) fn column(&self, name: &str) -> Option<&ColumnStatistics> {
        self.columns.get(name)
    }
}

/// What is known of one column in each container.
#[derive(Debug)]
pub(crate) struct ColumnStatistics {
    /// Lower and upper bounds of the non-null values, in the table's type
    /// (a null entry: no bound known).
    bounds: Option<(ArrayRef, ArrayRef)>,
    /// Whether the container may hold a null.
    pub has_null: BooleanBuffer,
    /// Whether it may hold a non-null value.
    pub has_value: BooleanBuffer,
    /// Whether the values may include NaNs, which the bounds do not cover.
    pub nan: bool,
}

impl ColumnStatistics {
    /// Nothing known about `len` containers.
    pub(crate) fn unknown(len: usize) -> Self {
        Self {
            bounds: None,
            has_null: BooleanBuffer::new_set(len),
            has_value: BooleanBuffer::new_set(len),
            nan: false,
        }
    }

    /// A column the file does not have: every value is null.
    pub(crate) fn all_null(len: usize) -> Self {
        Self {
            has_value: BooleanBuffer::new_unset(len),
            ..Self::unknown(len)
        }
    }

    /// Statistics read in the file's type `file_type`, for a table column of
    /// type `table_type`. Arrays of the wrong length are ignored.
    fn new(
        file_type: &DataType,
        table_type: &DataType,
        bounds: Option<(ArrayRef, ArrayRef)>,
        null_counts: Option<UInt64Array>,
        row_counts: &UInt64Array,
    ) -> Self {
        let len = row_counts.len();
        let nan = value_type(file_type).is_floating();
        let bounds = bounds
            .filter(|(min, max)| min.len() == len && max.len() == len)
            .and_then(|(min, max)| {
                let (min, max) = if nan {
                    (float_bound(&min, true)?, float_bound(&max, false)?)
                } else {
                    (min, max)
                };
                Some((
                    cast_bounds(&min, table_type)?,
                    cast_bounds(&max, table_type)?,
                ))
            });
        let (has_null, has_value) = match null_counts.filter(|n| n.len() == len) {
            Some(nulls) => (
                may(
                    cmp::gt(&nulls, &Scalar::new(UInt64Array::from(vec![0]))),
                    len,
                ),
                may(cmp::neq(&nulls, row_counts), len),
            ),
            None => (BooleanBuffer::new_set(len), BooleanBuffer::new_set(len)),
        };
        Self {
            bounds,
            has_null,
            has_value,
            nan,
        }
    }

    /// The bounds after `casts`, when every cast keeps them bounds.
    pub(crate) fn bounds(&self, casts: &[DataType]) -> Option<(ArrayRef, ArrayRef)> {
        let (mut min, mut max) = self.bounds.clone()?;
        for to in casts {
            min = cast_bounds(&min, to)?;
            max = cast_bounds(&max, to)?;
        }
        Some((min, max))
    }
}

/// Where a comparison result may be true: true or null (unknown) entries,
/// and every entry when the comparison failed.
pub(crate) fn may(result: Result<BooleanArray, ArrowError>, len: usize) -> BooleanBuffer {
    match result {
        Ok(array) if array.len() == len => match array.nulls() {
            Some(nulls) => array.values() | &!nulls.inner(),
            None => array.values().clone(),
        },
        _ => BooleanBuffer::new_set(len),
    }
}

/// Float bounds as bounds in total order: NaN (which some writers store)
/// is no bound, and a zero of either sign may stand for both (writers
/// compare `-0.0 == +0.0`).
fn float_bound(bounds: &ArrayRef, lower: bool) -> Option<ArrayRef> {
    let widest = cast(bounds, &DataType::Float64).ok()?;
    let fixed: Float64Array = widest
        .as_primitive::<Float64Type>()
        .iter()
        .map(|v| match v {
            Some(v) if v.is_nan() => None,
            // Matches -0.0 too.
            Some(0.0) => Some(if lower { -0.0 } else { 0.0 }),
            v => v,
        })
        .collect();
    cast(&fixed, bounds.data_type()).ok()
}

/// The statistics of `columns` (table fields) over the row groups
/// `row_groups` (valid indices) of `file`.
pub(crate) fn row_group_statistics(
    file: &ArrowReaderMetadata,
    columns: &[&Field],
    row_groups: &[usize],
) -> Containers {
    let mut containers = Containers::new(row_groups.len());
    for field in columns {
        containers.insert(field.name(), row_group_column(file, field, row_groups));
    }
    containers
}

fn row_group_column(
    file: &ArrowReaderMetadata,
    field: &Field,
    row_groups: &[usize],
) -> ColumnStatistics {
    let len = row_groups.len();
    let Some((_, file_field)) = file.schema().column_with_name(field.name()) else {
        return ColumnStatistics::all_null(len);
    };
    let Some((converter, leaf)) = converter(file, field.name()) else {
        return ColumnStatistics::unknown(len);
    };
    let metadata = file.metadata();
    let groups = || row_groups.iter().map(|&i| metadata.row_group(i));
    let rows: UInt64Array = groups().map(|g| u64::try_from(g.num_rows()).ok()).collect();
    let bounds = if ordered_as_arrow(file, leaf) {
        converter
            .row_group_mins(groups())
            .ok()
            .zip(converter.row_group_maxes(groups()).ok())
    } else {
        None
    };
    let nulls = converter.row_group_null_counts(groups()).ok();
    ColumnStatistics::new(
        file_field.data_type(),
        field.data_type(),
        bounds,
        nulls,
        &rows,
    )
}

/// How one column's pages split the row groups asked for: for each row
/// group, the row counts of its pages (their statistics are consecutive
/// containers), or `None` when it has no page index for the column.
pub(crate) type PageLayout = Vec<Option<Vec<u64>>>;

/// The page statistics of the table column `field` over the row groups
/// `row_groups` of `file`, or `None` when the file does not have the column
/// or has no page index for it.
pub(crate) fn page_statistics(
    file: &ArrowReaderMetadata,
    field: &Field,
    row_groups: &[usize],
) -> Option<(ColumnStatistics, PageLayout)> {
    let (_, file_field) = file.schema().column_with_name(field.name())?;
    let (converter, leaf) = converter(file, field.name())?;
    let metadata = file.metadata();
    let (column_index, offset_index) = (metadata.column_index()?, metadata.offset_index()?);
    let layout: PageLayout = row_groups
        .iter()
        .map(|&g| {
            column_index.get(g)?.get(leaf)?;
            let locations = offset_index.get(g)?.get(leaf)?.page_locations();
            page_row_counts(locations, metadata.row_group(g).num_rows())
        })
        .collect();
    let indexed: Vec<usize> = row_groups
        .iter()
        .zip(&layout)
        .filter_map(|(&g, pages)| pages.as_ref().map(|_| g))
        .collect();
    if indexed.is_empty() {
        return None;
    }
    let rows: UInt64Array = layout
        .iter()
        .flatten()
        .flatten()
        .copied()
        .map(Some)
        .collect();
    let bounds = if ordered_as_arrow(file, leaf) {
        converter
            .data_page_mins(column_index, offset_index, &indexed)
            .ok()
            .zip(
                converter
                    .data_page_maxes(column_index, offset_index, &indexed)
                    .ok(),
            )
    } else {
        None
    };
    let nulls = converter
        .data_page_null_counts(column_index, offset_index, &indexed)
        .ok();
    let statistics = ColumnStatistics::new(
        file_field.data_type(),
        field.data_type(),
        bounds,
        nulls,
        &rows,
    );
    Some((statistics, layout))
}

/// The row count of each page of a row group of `rows` rows, or `None` if
/// the locations do not describe consecutive pages from row 0.
fn page_row_counts(locations: &[PageLocation], rows: i64) -> Option<Vec<u64>> {
    if locations.first()?.first_row_index != 0 {
        return None;
    }
    let ends = locations
        .iter()
        .skip(1)
        .map(|l| l.first_row_index)
        .chain([rows]);
    locations
        .iter()
        .zip(ends)
        .map(|(page, end)| u64::try_from(end - page.first_row_index).ok())
        .collect()
}

/// The statistics converter of the file column `name` and its leaf index,
/// when it is a leaf column. Unknown null counts stay unknown.
fn converter<'a>(
    file: &'a ArrowReaderMetadata,
    name: &str,
) -> Option<(StatisticsConverter<'a>, usize)> {
    let converter = StatisticsConverter::try_new(name, file.schema(), file.parquet_schema())
        .ok()?
        .with_missing_null_counts_as_zero(false);
    let leaf = converter.parquet_column_index()?;
    Some((converter, leaf))
}

/// Whether the file's min/max of leaf column `leaf` were computed in the
/// order of the column's type, the order Arrow compares in. Files from
/// before column orders compared numbers as signed and bytes as signed
/// bytes: right for signed numbers only.
fn ordered_as_arrow(file: &ArrowReaderMetadata, leaf: usize) -> bool {
    let column = file.parquet_schema().column(leaf);
    let physical = column.physical_type();
    let by_type = ColumnOrder::sort_order_for_type(
        column.logical_type_ref(),
        column.converted_type(),
        physical,
    );
    match file.metadata().file_metadata().column_order(leaf) {
        ColumnOrder::TYPE_DEFINED_ORDER(order) => {
            order == by_type && by_type != SortOrder::UNDEFINED
        }
        ColumnOrder::UNDEFINED => {
            by_type == SortOrder::SIGNED
                && matches!(
                    physical,
                    PhysicalType::INT32
                        | PhysicalType::INT64
                        | PhysicalType::FLOAT
                        | PhysicalType::DOUBLE
                )
        }
        ColumnOrder::UNKNOWN => false,
    }
}
