//! Row-group pruning: the row groups whose column-chunk statistics prove
//! that no row passes the filters are not read.

use arrow::datatypes::{Field, Schema};
use parquet::arrow::arrow_reader::ArrowReaderMetadata;

use super::evaluate::evaluate;
use super::predicate::Predicate;
use super::statistics::row_group_statistics;

/// The row groups of a file left to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowGroups {
    /// The row groups that may hold rows passing the filters, in the order
    /// they were given.
    pub kept: Vec<usize>,
    /// How many were ruled out by their statistics.
    pub pruned: usize,
}

/// The row groups among `candidates` that statistics cannot rule out for
/// `predicate`. Indices out of range are kept (the reader reports them).
pub(crate) fn prune_row_groups(
    predicate: &Predicate,
    table: &Schema,
    file: &ArrowReaderMetadata,
    candidates: &[usize],
) -> RowGroups {
    if *predicate == Predicate::Constant(Some(true)) {
        return RowGroups {
            kept: candidates.to_vec(),
            pruned: 0,
        };
    }
    let count = file.metadata().num_row_groups();
    let valid: Vec<usize> = candidates.iter().copied().filter(|&g| g < count).collect();
    let columns = table_fields(table, predicate);
    let outcome = evaluate(predicate, &row_group_statistics(file, &columns, &valid));
    let mut may_pass = outcome.can_be_true.iter();
    let kept: Vec<usize> = candidates
        .iter()
        .copied()
        .filter(|&g| g >= count || may_pass.next().unwrap_or(true))
        .collect();
    RowGroups {
        pruned: candidates.len() - kept.len(),
        kept,
    }
}

/// The table fields `predicate` reads.
pub(crate) fn table_fields<'a>(table: &'a Schema, predicate: &Predicate) -> Vec<&'a Field> {
    predicate
        .columns()
        .into_iter()
        .filter_map(|name| table.field_with_name(name).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Float64Array, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion_common::ScalarValue;
    use datafusion_expr::{Expr, col, lit};
    use parquet::arrow::arrow_reader::ArrowReaderOptions;
    use parquet::file::metadata::{FileMetaData, ParquetMetaDataBuilder};

    use super::super::PruningPlan;
    use super::super::testkit::{batch, open, passing, sorted_file, with_missing_column, write};
    use super::*;

    /// The row groups kept for `filters` over `table`.
    fn kept(file: &bytes::Bytes, table: Arc<Schema>, filters: &[Expr]) -> Vec<usize> {
        let metadata = open(file);
        let plan = PruningPlan::try_new(filters, table).expect("plan");
        let all: Vec<usize> = (0..metadata.metadata().num_row_groups()).collect();
        let groups = plan.row_groups(&metadata, &all);
        assert_eq!(groups.kept.len() + groups.pruned, all.len());
        groups.kept
    }

    #[test]
    fn ranges_keep_only_the_row_groups_they_reach() {
        let (batch, file) = sorted_file();
        let table = batch.schema();
        let cases: Vec<(Expr, Vec<usize>)> = vec![
            (
                col("id")
                    .gt_eq(lit(2_450i64))
                    .and(col("id").lt(lit(2_720i64))),
                vec![2],
            ),
            // An Int32 literal against the Int64 column.
            (col("id").gt(lit(9_500i32)), vec![9]),
            (lit(1_500i64).gt(col("id")), vec![0, 1]),
            (col("id").between(lit(999i64), lit(1_000i64)), vec![0, 1]),
            (
                col("id").not_between(lit(1_000i64), lit(8_999i64)),
                vec![0, 9],
            ),
            (
                col("id").in_list(vec![lit(5i64), lit(7_005i64)], false),
                vec![0, 7],
            ),
            (
                col("id").in_list(vec![lit(1i64), lit(2i64)], true),
                (0..10).collect(),
            ),
            (!col("id").lt(lit(9_000i64)), vec![9]),
            (col("id").eq(lit(3_333i64)), vec![3]),
            (col("id").not_eq(lit(3_333i64)), (0..10).collect()),
            (
                col("id").lt(lit(500i64)).or(col("s").eq(lit("09999"))),
                vec![0, 9],
            ),
            // Strings, with bounds truncated to 4 bytes.
            (col("s").eq(lit("03071")), vec![3]),
            (col("s").gt_eq(lit("0990")), vec![9]),
            (col("s").lt(lit("01")), vec![0]),
            // A date compared with a string literal.
            (col("d").lt(lit("2019-09-11")), vec![0, 1]),
            (
                col("m").gt(lit(ScalarValue::Decimal128(Some(900_000), 12, 2))),
                vec![9],
            ),
            // Decimals against an integer (coerced to a decimal).
            (col("m").lt_eq(lit(10i64)), vec![0]),
            (col("f").between(lit(1_000.0), lit(1_100.0)), vec![4]),
            (col("f").eq(lit(0.0)), vec![0]),
            (col("b"), (5..10).collect()),
            (!col("b"), (0..5).collect()),
            (col("id").is_null(), vec![]),
            (col("id").is_not_null(), (0..10).collect()),
            (lit(false), vec![]),
            (lit(ScalarValue::Boolean(None)), vec![]),
            (col("id").eq(lit(ScalarValue::Int64(None))), vec![]),
            // Unsupported: nothing pruned.
            ((col("id") % lit(7i64)).eq(lit(3i64)), (0..10).collect()),
        ];
        for (filter, expected) in cases {
            assert_eq!(
                kept(&file, Arc::clone(&table), std::slice::from_ref(&filter)),
                expected,
                "{filter}"
            );
        }
    }

    #[test]
    fn one_sided_float_ranges_keep_row_groups_nan_may_hide_in() {
        // Float statistics leave NaN out, and NaN sorts above every number
        // (`-NaN` below): `f > x` may hold in any row group.
        let (batch, file) = sorted_file();
        let all: Vec<usize> = (0..10).collect();
        assert_eq!(
            kept(&file, batch.schema(), &[col("f").gt(lit(2_400.0))]),
            all
        );
        assert_eq!(kept(&file, batch.schema(), &[col("f").lt(lit(10.0))]), all);
        // Both bounds, from one filter or two, exclude NaN.
        let two = [col("f").gt(lit(2_400.0)), col("f").lt(lit(2_450.0))];
        assert_eq!(kept(&file, batch.schema(), &two), vec![9]);
    }

    #[test]
    fn nan_and_negative_zero_rows_are_found() {
        let floats = Float64Array::from(vec![
            Some(1.0),
            Some(f64::NAN),
            Some(-0.0),
            Some(2.0),
            Some(-f64::NAN),
            Some(3.0),
            None,
            Some(0.0),
        ]);
        let ids = Int64Array::from_iter_values(0..8);
        let data = batch(vec![
            ("id", Arc::new(ids) as ArrayRef),
            ("f", Arc::new(floats) as ArrayRef),
        ]);
        let file = write(&data, 2, 1);
        for filter in [
            col("f").gt(lit(100.0)),
            col("f").lt(lit(-100.0)),
            col("f").lt(lit(0.0)),
            col("f").gt(lit(-0.0)),
            col("f").eq(lit(-0.0)),
            col("f").eq(lit(0.0)),
            col("f").not_eq(lit(1.0)),
            col("f").eq(lit(f64::NAN)),
        ] {
            let pass = passing(std::slice::from_ref(&filter), &data);
            let groups = kept(&file, data.schema(), std::slice::from_ref(&filter));
            for row in (0..8).filter(|&r| pass[r]) {
                assert!(groups.contains(&(row / 2)), "{filter}: row {row} pruned");
            }
        }
    }

    #[test]
    fn a_column_the_file_lacks_is_all_nulls() {
        let (batch, file) = sorted_file();
        let table = with_missing_column(&batch);
        let all: Vec<usize> = (0..10).collect();
        let cases: Vec<(Expr, Vec<usize>)> = vec![
            (col("x").eq(lit(5)), vec![]),
            (col("x").is_null(), all.clone()),
            (col("x").is_not_null(), vec![]),
            (col("x").is_null().and(col("id").lt(lit(10i64))), vec![0]),
            (col("x").is_not_null().or(col("id").lt(lit(10i64))), vec![0]),
            (!col("x").gt(lit(1)), vec![]),
        ];
        for (filter, expected) in cases {
            assert_eq!(
                kept(&file, Arc::clone(&table), std::slice::from_ref(&filter)),
                expected,
                "{filter}"
            );
        }
    }

    #[test]
    fn a_column_of_a_narrower_type_in_the_file_is_cast() {
        let (batch, file) = sorted_file();
        // The file's `n` is Int32, the table's Int64.
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "n" => Field::new("n", DataType::Int64, false),
                _ => f.as_ref().clone(),
            })
            .collect();
        let table = Arc::new(Schema::new(fields));
        assert_eq!(
            kept(&file, Arc::clone(&table), &[col("n").gt_eq(lit(9_000i64))]),
            vec![9]
        );
        // A string in the file read as a number would not keep its order.
        let fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| match f.name().as_str() {
                "s" => Field::new("s", DataType::Int64, false),
                _ => f.as_ref().clone(),
            })
            .collect();
        let table = Arc::new(Schema::new(fields));
        assert_eq!(kept(&file, table, &[col("s").eq(lit(5i64))]).len(), 10);
    }

    #[test]
    fn legacy_files_keep_only_signed_number_statistics() {
        // Files without column orders compared bytes as signed bytes.
        let (batch, file) = sorted_file();
        let current = open(&file);
        let metadata = current.metadata();
        let footer = metadata.file_metadata();
        let legacy = FileMetaData::new(
            footer.version(),
            footer.num_rows(),
            footer.created_by().map(str::to_string),
            footer.key_value_metadata().cloned(),
            footer.schema_descr_ptr(),
            None,
        );
        let legacy = ParquetMetaDataBuilder::new(legacy)
            .set_row_groups(metadata.row_groups().to_vec())
            .build();
        let legacy = ArrowReaderMetadata::try_new(Arc::new(legacy), ArrowReaderOptions::new())
            .expect("metadata");
        let all: Vec<usize> = (0..10).collect();
        for (filter, expected) in [
            (col("s").eq(lit("03071")), all.clone()),
            (col("id").eq(lit(3_071i64)), vec![3]),
            (col("f").between(lit(1_000.0), lit(1_100.0)), vec![4]),
        ] {
            let plan =
                PruningPlan::try_new(std::slice::from_ref(&filter), batch.schema()).expect("plan");
            assert_eq!(plan.row_groups(&legacy, &all).kept, expected, "{filter}");
        }
    }

    #[test]
    fn candidates_keep_their_order_and_unknown_indices() {
        let (batch, file) = sorted_file();
        let metadata = open(&file);
        let plan =
            PruningPlan::try_new(&[col("id").gt_eq(lit(5_000i64))], batch.schema()).expect("plan");
        let groups = plan.row_groups(&metadata, &[9, 1, 42, 6]);
        assert_eq!(
            groups,
            RowGroups {
                kept: vec![9, 42, 6],
                pruned: 1
            }
        );
    }
}
