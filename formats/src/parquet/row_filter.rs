//! Row filters: the filters evaluated while decoding, so that the columns
//! of the rows they reject are never decoded.
//!
//! Each filter becomes one [`ArrowPredicate`] that decodes only the columns
//! it reads, the cheapest (fewest bytes to decode) first: the reader then
//! decodes the next filter's columns only for the rows still passing.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, new_null_array,
};
use arrow::compute::{cast, prep_null_mask_filter};
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowPredicate, ArrowReaderMetadata, RowFilter};
use weir_engine::expr::Compiled;

/// A filter typed against the table columns it reads.
#[derive(Debug, Clone)]
pub(crate) struct TypedFilter {
    /// The filter, compiled against `schema`.
    pub compiled: Compiled,
    /// The table columns the filter reads, in table order, all nullable (a
    /// file may lack any of them).
    pub schema: SchemaRef,
}

/// The row filter of `filters` for `file`, or `None` without filters.
pub(crate) fn row_filter(filters: &[TypedFilter], file: &ArrowReaderMetadata) -> Option<RowFilter> {
    if filters.is_empty() {
        return None;
    }
    let mut predicates: Vec<(i64, FilterPredicate)> = filters
        .iter()
        .map(|filter| {
            let roots: Vec<usize> = filter
                .schema
                .fields()
                .iter()
                .filter_map(|f| file.schema().index_of(f.name()).ok())
                .collect();
            let cost = decoded_bytes(file, &roots);
            let predicate = FilterPredicate {
                projection: ProjectionMask::roots(file.parquet_schema(), roots),
                filter: filter.clone(),
            };
            (cost, predicate)
        })
        .collect();
    // Stable: equally cheap filters keep their order.
    predicates.sort_by_key(|(cost, p)| (*cost, p.filter.schema.fields().len()));
    Some(RowFilter::new(
        predicates
            .into_iter()
            .map(|(_, p)| Box::new(p) as Box<dyn ArrowPredicate>)
            .collect(),
    ))
}

/// The uncompressed bytes of the file columns `roots` over all row groups.
fn decoded_bytes(file: &ArrowReaderMetadata, roots: &[usize]) -> i64 {
    let schema = file.parquet_schema();
    let leaves: Vec<usize> = (0..schema.num_columns())
        .filter(|&leaf| roots.contains(&schema.get_column_root_idx(leaf)))
        .collect();
    file.metadata()
        .row_groups()
        .iter()
        .flat_map(|group| {
            let columns = group.columns();
            leaves
                .iter()
                .filter_map(|&leaf| columns.get(leaf))
                .map(|column| column.uncompressed_size())
        })
        .sum()
}

/// One filter as the reader evaluates it.
struct FilterPredicate {
    projection: ProjectionMask,
    filter: TypedFilter,
}

impl ArrowPredicate for FilterPredicate {
    fn projection(&self) -> &ProjectionMask {
        &self.projection
    }

    /// Evaluates the filter over the decoded columns, cast to the table's
    /// types; a column the file lacks is all nulls. Null counts as false.
    fn evaluate(&mut self, batch: RecordBatch) -> Result<BooleanArray, ArrowError> {
        let rows = batch.num_rows();
        let schema = &self.filter.schema;
        let columns = schema
            .fields()
            .iter()
            .map(|field| match batch.column_by_name(field.name()) {
                Some(column) if column.data_type() == field.data_type() => {
                    Ok(ArrayRef::clone(column))
                }
                Some(column) => cast(column, field.data_type()),
                None => Ok(new_null_array(field.data_type(), rows)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let input = RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?;
        let passes = self
            .filter
            .compiled
            .evaluate_predicate(&input)
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        Ok(if passes.null_count() > 0 {
            prep_null_mask_filter(&passes)
        } else {
            passes
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion_expr::{Expr, col, lit};

    use super::super::PruningPlan;
    use super::super::testkit::{
        open, passing, passing_ids, read_ids, sorted_file, with_missing_column,
    };
    use super::*;

    #[test]
    fn the_reader_returns_exactly_the_passing_rows() {
        let (batch, file) = sorted_file();
        let filters = [
            (col("id") % lit(7i64)).eq(lit(3i64)),
            col("s").lt(lit("05000")),
            col("f").gt(lit(100.0)),
        ];
        let plan = PruningPlan::try_new(&filters, batch.schema()).expect("plan");
        let expected = passing_ids(&passing(&filters, &batch));
        assert!(!expected.is_empty());
        assert_eq!(read_ids(&file, &plan), expected);
    }

    #[test]
    fn the_cheapest_filter_runs_first() {
        let (batch, file) = sorted_file();
        let metadata = open(&file);
        let filters = [col("s").gt(lit("0")), col("b"), col("id").gt(lit(0i64))];
        let plan = PruningPlan::try_new(&filters, batch.schema()).expect("plan");
        let filter = plan.row_filter(&metadata).expect("filters");
        let schema = metadata.parquet_schema();
        let leaf = |name: &str| {
            (0..schema.num_columns())
                .find(|&i| schema.column(i).name() == name)
                .expect("leaf")
        };
        let order: Vec<usize> = filter
            .predicates()
            .iter()
            .map(|p| {
                let mask = p.projection();
                let leaves: Vec<usize> = (0..schema.num_columns())
                    .filter(|&i| mask.leaf_included(i))
                    .collect();
                assert_eq!(leaves.len(), 1, "one column per filter");
                leaves[0]
            })
            .collect();
        // Booleans (1 bit) before 8-byte ids before 5-byte strings with lengths.
        assert_eq!(order, vec![leaf("b"), leaf("id"), leaf("s")]);
    }

    #[test]
    fn missing_columns_are_null_and_other_types_are_cast() {
        let (batch, file) = sorted_file();
        let mut fields: Vec<Field> = with_missing_column(&batch)
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        for field in &mut fields {
            if field.name() == "n" {
                *field = Field::new("n", DataType::Int64, false);
            }
        }
        let table = Arc::new(Schema::new(fields));
        let cases: Vec<(Vec<Expr>, Vec<i64>)> = vec![
            // `x IS NULL` alone reads no column of the file.
            (
                vec![col("x").is_null(), col("id").lt(lit(10i64))],
                (0..10).collect(),
            ),
            (
                vec![col("x").is_null().or(col("id").lt(lit(10i64)))],
                (0..10_000).collect(),
            ),
            (
                vec![col("x").gt(lit(1)).or(col("id").lt(lit(3i64)))],
                (0..3).collect(),
            ),
            (vec![col("n").gt(lit(9_996i64))], vec![9_997, 9_998, 9_999]),
        ];
        for (filters, expected) in cases {
            let plan = PruningPlan::try_new(&filters, Arc::clone(&table)).expect("plan");
            assert_eq!(read_ids(&file, &plan), expected, "{filters:?}");
        }
    }

    #[test]
    fn without_filters_there_is_no_row_filter() {
        let (batch, file) = sorted_file();
        let plan = PruningPlan::try_new(&[], batch.schema()).expect("plan");
        assert!(plan.is_empty());
        assert!(plan.row_filter(&open(&file)).is_none());
        // Constant filters are settled by the row groups.
        let plan = PruningPlan::try_new(&[lit(true)], batch.schema()).expect("plan");
        assert!(plan.is_empty());
    }
}
