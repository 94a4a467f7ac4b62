//! The entry point: a scan's filters, prepared once, applied to each file.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_expr::Expr;
use datafusion_expr::utils::split_conjunction;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowFilter, RowSelection};
use weir_engine::expr::Compiled;

use super::page_prune::page_selection;
use super::predicate::Predicate;
use super::prune::{RowGroups, prune_row_groups};
use super::row_filter::{TypedFilter, row_filter};
use crate::{Error, Result};

/// How a scan's filters narrow the reading of Parquet files: which row
/// groups to read ([`row_groups`](Self::row_groups)), which rows of them
/// ([`page_selection`](Self::page_selection)), and which rows to keep while
/// decoding ([`row_filter`](Self::row_filter)).
///
/// Pruning is conservative: a row that passes the filters is never pruned,
/// but rows that fail them may remain (filter again after the scan).
/// Volatile filters (`random() < 0.1`) are ignored.
#[derive(Debug, Clone)]
pub struct PruningPlan {
    table: SchemaRef,
    predicate: Predicate,
    filters: Vec<TypedFilter>,
}

impl PruningPlan {
    /// Prepares `filters` (all of which a row must pass) over the table
    /// schema `table`: columns by unqualified name, literals of any type
    /// DataFusion coerces to the column's.
    ///
    /// # Errors
    /// [`Error::Filter`] when a filter reads an unknown column, has types
    /// that cannot be coerced, or is not boolean.
    pub fn try_new(filters: &[Expr], table: SchemaRef) -> Result<Self> {
        let mut predicates = Vec::new();
        let mut typed = Vec::new();
        for filter in filters.iter().filter(|f| !f.is_volatile()) {
            for part in split_conjunction(filter) {
                let filter = type_filter(part, &table)?;
                predicates.push(Predicate::from_physical(
                    filter.compiled.physical(),
                    &filter.schema,
                ));
                let boolean = filter.compiled.field().data_type() == &DataType::Boolean;
                if boolean && !filter.schema.fields().is_empty() {
                    typed.push(filter);
                }
            }
        }
        Ok(Self {
            table,
            predicate: Predicate::and(predicates),
            filters: typed,
        })
    }

    /// Whether there is nothing to filter on.
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.predicate == Predicate::Constant(Some(true))
    }

    /// The row groups among `candidates` (indices into `file`'s row groups,
    /// e.g. the ones of a split) that their statistics cannot rule out, in
    /// the order given. A column the file lacks is all nulls; columns
    /// without statistics rule nothing out.
    pub fn row_groups(&self, file: &ArrowReaderMetadata, candidates: &[usize]) -> RowGroups {
        prune_row_groups(&self.predicate, &self.table, file, candidates)
    }

    /// The rows to read of `row_groups` (the row groups to read, in the
    /// order they will be read), from the page index: pages whose
    /// statistics rule them out are skipped. `None` when no page is skipped
    /// or `file` was loaded without its page index (see
    /// [`ArrowReaderOptions::with_page_index_policy`](parquet::arrow::arrow_reader::ArrowReaderOptions::with_page_index_policy)).
    pub fn page_selection(
        &self,
        file: &ArrowReaderMetadata,
        row_groups: &[usize],
    ) -> Option<RowSelection> {
        page_selection(&self.predicate, &self.table, file, row_groups)
    }

    /// The filters as a row filter for `file`'s reader, cheapest first
    /// (`None` without filters). The reader must produce the file's own
    /// schema (`file.schema()`); columns of another type than the table's
    /// are cast to it, and columns the file lacks are nulls.
    pub fn row_filter(&self, file: &ArrowReaderMetadata) -> Option<RowFilter> {
        row_filter(&self.filters, file)
    }
}

/// `filter` compiled against the (nullable) table columns it reads.
fn type_filter(filter: &Expr, table: &SchemaRef) -> Result<TypedFilter> {
    let fail = |e: weir_engine::Error| Error::Filter {
        filter: filter.to_string(),
        message: match e {
            weir_engine::Error::Expr { message, .. } => message,
            other => other.to_string(),
        },
    };
    let refs = filter.column_refs();
    let fields: Vec<Field> = table
        .fields()
        .iter()
        .filter(|f| refs.iter().any(|c| c.name == *f.name()))
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    if fields.len() < refs.len() {
        // An unknown column: the engine's error names the valid ones.
        return Err(
            Compiled::new(filter, table).map_or_else(fail, |_| Error::Filter {
                filter: filter.to_string(),
                message: "a column is not in the table".to_string(),
            }),
        );
    }
    let schema = Arc::new(Schema::new(fields));
    let compiled = Compiled::new(filter, &schema).map_err(fail)?;
    if !matches!(
        compiled.field().data_type(),
        DataType::Boolean | DataType::Null
    ) {
        return Err(Error::Filter {
            filter: filter.to_string(),
            message: format!(
                "a filter must be boolean, not {}",
                compiled.field().data_type()
            ),
        });
    }
    Ok(TypedFilter { compiled, schema })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use arrow::array::{Array, RecordBatch};
    use arrow::datatypes::TimeUnit;
    use bytes::Bytes;
    use datafusion_common::ScalarValue;
    use datafusion_expr::{Operator, binary_expr, cast, col, lit, try_cast};
    use weir_engine::testing::Rng;

    use super::super::testkit::{
        open, passing, passing_ids, random_batch, read_ids, selected_rows, sorted_file, write,
    };
    use super::*;

    /// Random filters over the columns of [`random_batch`], with literals
    /// mostly taken from the data.
    struct Filters<'a> {
        rng: Rng,
        batch: &'a RecordBatch,
    }

    const COLUMNS: [&str; 8] = ["id", "i", "s", "f", "d", "m", "b", "k"];
    const COMPARISONS: [Operator; 6] = [
        Operator::Eq,
        Operator::NotEq,
        Operator::Lt,
        Operator::LtEq,
        Operator::Gt,
        Operator::GtEq,
    ];

    impl Filters<'_> {
        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.rng.below(items.len() as u64) as usize]
        }

        fn filter(&mut self, depth: u32) -> Expr {
            let choices = if depth == 0 { 5 } else { 8 };
            match self.rng.below(choices) {
                0 | 1 => self.comparison(),
                2 => {
                    let name = self.pick(&COLUMNS);
                    let list = (0..=self.rng.below(3)).map(|_| self.value(name)).collect();
                    self.operand(name).in_list(list, self.rng.chance(0.3))
                }
                3 => {
                    let name = self.pick(&COLUMNS);
                    let (low, high) = (self.value(name), self.value(name));
                    if self.rng.chance(0.3) {
                        self.operand(name).not_between(low, high)
                    } else {
                        self.operand(name).between(low, high)
                    }
                }
                4 => {
                    let name = self.pick(&COLUMNS);
                    let operand = self.operand(name);
                    if self.rng.chance(0.5) {
                        operand.is_null()
                    } else {
                        operand.is_not_null()
                    }
                }
                5 => !self.filter(depth - 1),
                6 => self.filter(depth - 1).and(self.filter(depth - 1)),
                _ => self.filter(depth - 1).or(self.filter(depth - 1)),
            }
        }

        fn comparison(&mut self) -> Expr {
            let name = self.pick(&COLUMNS);
            if name == "b" && self.rng.chance(0.3) {
                return col("b");
            }
            let (operand, value) = (self.operand(name), self.value(name));
            let op = self.pick(&COMPARISONS);
            if self.rng.chance(0.3) {
                binary_expr(value, op, operand)
            } else {
                binary_expr(operand, op, value)
            }
        }

        /// The column, sometimes cast.
        fn operand(&mut self, name: &str) -> Expr {
            let column = col(name);
            if !self.rng.chance(0.2) {
                return column;
            }
            match name {
                "i" => cast(column, DataType::Int64),
                "id" => try_cast(column, DataType::Int16),
                "f" => cast(column, DataType::Float32),
                "m" => cast(column, DataType::Float64),
                "d" => cast(column, DataType::Timestamp(TimeUnit::Second, None)),
                "k" => cast(column, DataType::Utf8),
                _ => column,
            }
        }

        /// A literal for column `name`: a value of a random row (perhaps
        /// null), sometimes of another type or a special float.
        fn value(&mut self, name: &str) -> Expr {
            let array = self.batch.column_by_name(name).expect("column");
            let row = self.rng.below(array.len() as u64) as usize;
            let mut value = ScalarValue::try_from_array(array, row).expect("value");
            if let ScalarValue::Dictionary(_, inner) = value {
                value = *inner;
            }
            let twist = self.rng.chance(0.3);
            let value = match (name, &value) {
                ("i", ScalarValue::Int32(Some(v))) if twist => {
                    ScalarValue::Int64(Some(i64::from(*v) + 1))
                }
                ("id", ScalarValue::Int64(Some(v))) if twist => ScalarValue::Int32(Some(*v as i32)),
                ("f", _) if twist => ScalarValue::Float64(Some(self.pick(&[
                    f64::NAN,
                    -f64::NAN,
                    -0.0,
                    0.0,
                    f64::INFINITY,
                    -3.25,
                    1e300,
                ]))),
                ("d", v) if twist => v.cast_to(&DataType::Utf8).expect("date string"),
                ("m", ScalarValue::Decimal128(Some(v), ..)) if twist => {
                    ScalarValue::Int64(Some((*v / 100) as i64))
                }
                ("s", ScalarValue::Utf8(Some(v))) if twist => {
                    ScalarValue::Utf8(Some(v[..self.rng.below(6) as usize].to_string()))
                }
                _ => value,
            };
            lit(value)
        }
    }

    /// Checks that no row passing `filters` is pruned, and that the reader
    /// returns exactly the passing rows; returns the row groups pruned and
    /// the rows skipped by pages.
    fn check(file: &Bytes, batch: &RecordBatch, filters: &[Expr]) -> (usize, usize) {
        let metadata = open(file);
        let pass = passing(filters, batch);
        let plan = PruningPlan::try_new(filters, batch.schema()).expect("plan");
        let all: Vec<usize> = (0..metadata.metadata().num_row_groups()).collect();
        let groups = plan.row_groups(&metadata, &all);
        let selection = plan.page_selection(&metadata, &groups.kept);
        let read: HashSet<usize> = selected_rows(&metadata, &groups.kept, selection.as_ref())
            .into_iter()
            .collect();
        let shown: Vec<String> = filters.iter().map(ToString::to_string).collect();
        for row in (0..batch.num_rows()).filter(|&r| pass[r]) {
            assert!(
                read.contains(&row),
                "row {row} passes {shown:?} but is pruned"
            );
        }
        assert_eq!(read_ids(file, &plan), passing_ids(&pass), "{shown:?}");
        (
            groups.pruned,
            selection.map_or(0, |s| s.skipped_row_count()),
        )
    }

    #[test]
    fn random_filters_never_prune_a_passing_row() {
        let (mut pruned, mut skipped) = (0, 0);
        for seed in 0..6 {
            let mut rng = Rng::new(seed);
            let batch = random_batch(&mut rng, 1_500);
            let file = write(&batch, 200, 40);
            let mut filters = Filters { rng, batch: &batch };
            for _ in 0..150 {
                let count = 1 + filters.rng.below(3);
                let set: Vec<Expr> = (0..count).map(|_| filters.filter(2)).collect();
                let (groups, rows) = check(&file, &batch, &set);
                pruned += groups;
                skipped += rows;
            }
        }
        // The drifting data lets statistics prune.
        assert!(
            pruned > 100 && skipped > 10_000,
            "{pruned} row groups, {skipped} rows"
        );
    }

    #[test]
    fn bad_filters_are_errors_naming_the_filter() {
        let (batch, _) = sorted_file();
        for (filter, words) in [
            (col("nope").gt(lit(1)), vec!["nope", "id"]),
            (col("s") * lit(2), vec!["Utf8", "Int"]),
            (col("id") + lit(1i64), vec!["boolean", "Int64"]),
        ] {
            let err = PruningPlan::try_new(std::slice::from_ref(&filter), batch.schema())
                .expect_err("bad filter");
            assert!(matches!(err, Error::Filter { .. }), "{err:?}");
            let message = err.to_string();
            assert!(message.contains(&filter.to_string()), "{message}");
            for word in words {
                assert!(message.contains(word), "{message} should name {word}");
            }
        }
    }
}
