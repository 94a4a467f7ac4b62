//! Page pruning: within the row groups to read, the rows of the pages whose
//! page-index statistics prove that no row passes are skipped.
//!
//! Pages of different columns start at different rows, so each column is
//! judged on its own: the parts of the (conjunctive) predicate that read
//! that column only select rows page by page, and the selections of all
//! columns are intersected. Parts that read several columns (an OR across
//! columns) select every row.

use arrow::buffer::BooleanBuffer;
use arrow::datatypes::Schema;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, RowSelection, RowSelector};

use super::evaluate::evaluate;
use super::predicate::Predicate;
use super::statistics::{Containers, PageLayout, page_statistics};

/// The rows of `row_groups` (in that order, as the reader reads them) that
/// the page index cannot rule out for `predicate`; `None` when it rules out
/// none (or the file has no page index, or a row group is out of range).
pub(crate) fn page_selection(
    predicate: &Predicate,
    table: &Schema,
    file: &ArrowReaderMetadata,
    row_groups: &[usize],
) -> Option<RowSelection> {
    let metadata = file.metadata();
    if row_groups.iter().any(|&g| g >= metadata.num_row_groups()) {
        return None;
    }
    let group_rows: Vec<usize> = row_groups
        .iter()
        .map(|&g| usize::try_from(metadata.row_group(g).num_rows()).unwrap_or(0))
        .collect();
    let mut selection: Option<RowSelection> = None;
    for (name, parts) in single_column_parts(predicate) {
        let Ok(field) = table.field_with_name(name) else {
            continue;
        };
        let Some((statistics, layout)) = page_statistics(file, field, row_groups) else {
            continue;
        };
        let mut containers = Containers::new(statistics.has_value.len());
        containers.insert(name, statistics);
        let outcome = evaluate(&Predicate::and(parts), &containers);
        let column = select_pages(&layout, &group_rows, &outcome.can_be_true);
        selection = Some(match selection {
            Some(selection) => selection.intersection(&column),
            None => column,
        });
    }
    selection.filter(|s| s.skipped_row_count() > 0)
}

/// The conjuncts of `predicate` that read exactly one column, grouped by
/// column.
fn single_column_parts(predicate: &Predicate) -> Vec<(&str, Vec<Predicate>)> {
    let mut groups: Vec<(&str, Vec<Predicate>)> = Vec::new();
    for part in predicate.conjuncts() {
        let [name] = part.columns()[..] else {
            continue;
        };
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, parts)) => parts.push(part.clone()),
            None => groups.push((name, vec![part.clone()])),
        }
    }
    groups
}

/// Selects the rows of the pages that may pass, row group after row group;
/// every row of a row group without a page index.
fn select_pages(
    layout: &PageLayout,
    group_rows: &[usize],
    may_pass: &BooleanBuffer,
) -> RowSelection {
    let mut may_pass = may_pass.iter();
    let mut selectors = Vec::new();
    for (pages, &rows) in layout.iter().zip(group_rows) {
        match pages {
            Some(pages) => selectors.extend(pages.iter().map(|&page_rows| {
                let page_rows = usize::try_from(page_rows).unwrap_or(usize::MAX);
                if may_pass.next().unwrap_or(true) {
                    RowSelector::select(page_rows)
                } else {
                    RowSelector::skip(page_rows)
                }
            })),
            None => selectors.push(RowSelector::select(rows)),
        }
    }
    RowSelection::from(selectors)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::SchemaRef;
    use datafusion_expr::{Expr, col, lit};
    use parquet::arrow::arrow_reader::ArrowReaderOptions;

    use super::super::PruningPlan;
    use super::super::testkit::{open, selected_rows, sorted_file, with_missing_column};
    use super::*;

    /// The row groups kept for `filters` and the file rows selected in them.
    fn selected(
        file: &ArrowReaderMetadata,
        table: SchemaRef,
        filters: &[Expr],
    ) -> (Vec<usize>, Option<Vec<usize>>) {
        let plan = PruningPlan::try_new(filters, table).expect("plan");
        let all: Vec<usize> = (0..file.metadata().num_row_groups()).collect();
        let groups = plan.row_groups(file, &all).kept;
        let selection = plan.page_selection(file, &groups);
        let rows = selection.map(|s| selected_rows(file, &groups, Some(&s)));
        (groups, rows)
    }

    #[test]
    fn a_range_selects_the_pages_it_reaches() {
        let (batch, file) = sorted_file();
        let file = open(&file);
        let filter = col("id")
            .gt_eq(lit(2_450i64))
            .and(col("id").lt(lit(2_720i64)));
        let (groups, rows) = selected(&file, batch.schema(), &[filter]);
        assert_eq!(groups, vec![2]);
        assert_eq!(rows, Some((2_400..2_800).collect()));
    }

    #[test]
    fn pages_are_selected_in_each_kept_row_group_in_order() {
        let (batch, file) = sorted_file();
        let file = open(&file);
        let filter = col("id").in_list(vec![lit(7_020i64), lit(150i64)], false);
        let (groups, rows) = selected(&file, batch.schema(), &[filter]);
        assert_eq!(groups, vec![0, 7]);
        let expected: Vec<usize> = (100..200).chain(7_000..7_100).collect();
        assert_eq!(rows, Some(expected));
        // The selection follows the order the row groups are read in.
        let plan = PruningPlan::try_new(
            &[col("id").in_list(vec![lit(7_020i64), lit(150i64)], false)],
            batch.schema(),
        )
        .expect("plan");
        let selection = plan.page_selection(&file, &[7, 0]).expect("pages skipped");
        let expected: Vec<usize> = (7_000..7_100).chain(100..200).collect();
        assert_eq!(selected_rows(&file, &[7, 0], Some(&selection)), expected);
    }

    #[test]
    fn the_selections_of_different_columns_intersect() {
        let (batch, file) = sorted_file();
        let file = open(&file);
        // Strings' page bounds are truncated to 4 bytes: "0489" to "048:".
        let filters = [col("id").lt(lit(5_000i64)), col("s").gt_eq(lit("04950"))];
        let (groups, rows) = selected(&file, batch.schema(), &filters);
        assert_eq!(groups, vec![4]);
        assert_eq!(rows, Some((4_900..5_000).collect()));
        // `n` selects pages 4_000..4_300, `d` (day 18_412 from row 4_120)
        // pages from 4_100.
        let filters = [col("n").lt(lit(4_250)), col("d").gt_eq(lit("2020-05-30"))];
        let (groups, rows) = selected(&file, batch.schema(), &filters);
        assert_eq!(groups, vec![4]);
        assert_eq!(rows, Some((4_100..4_300).collect()));
    }

    #[test]
    fn parts_over_several_columns_select_every_row() {
        let (batch, file) = sorted_file();
        let file = open(&file);
        let filter = col("id").lt(lit(150i64)).or(col("s").eq(lit("09950")));
        let (groups, rows) = selected(&file, batch.schema(), &[filter]);
        assert_eq!(groups, vec![0, 9]);
        assert_eq!(rows, None);
    }

    #[test]
    fn without_a_page_index_or_a_column_nothing_is_skipped() {
        let (batch, bytes) = sorted_file();
        let file = ArrowReaderMetadata::load(&bytes, ArrowReaderOptions::new()).expect("metadata");
        let (groups, rows) = selected(&file, batch.schema(), &[col("id").lt(lit(150i64))]);
        assert_eq!((groups, rows), (vec![0], None));
        let file = open(&bytes);
        let table = with_missing_column(&batch);
        let (groups, rows) = selected(&file, Arc::clone(&table), &[col("x").is_null()]);
        assert_eq!((groups.len(), rows), (10, None));
        let plan = PruningPlan::try_new(&[col("id").lt(lit(150i64))], table).expect("plan");
        assert!(
            plan.page_selection(&file, &[0, 10]).is_none(),
            "row group out of range"
        );
    }
}
