//! `GROUPING SETS`, `ROLLUP` and `CUBE`: the input read once and expanded
//! into the rows of every grouping set (the keys a set leaves out set to
//! NULL, and the set's grouping id), then one hash aggregate, in partial
//! and final phases, over the keys and the grouping id.
//!
//! The grouping id is DataFusion's `__grouping_id` column, which its
//! analyzer rewrites `GROUPING(...)` into: its low bits have a 1 for each
//! key a set leaves out (the last key the lowest bit); its bits above
//! count the repeats of a set listed more than once, so that each repeat
//! gives its own rows, as SQL wants.

use std::collections::HashMap;

use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;
use datafusion_expr::logical_plan as lp;
use datafusion_expr::{Expr, GroupingSet};
use weir_engine::expr::column;

use super::{Planned, Result, Translator, physical, unaliased, unsupported};

/// The most grouping sets one aggregate takes, as DataFusion's planner
/// limits them (a `CUBE` of 12 keys).
const MAX_SETS: usize = 4096;

/// Which of the distinct keys each grouping set of `set` keeps, by the
/// keys' positions in [`GroupingSet::distinct_expr`].
///
/// # Errors
/// More than [`MAX_SETS`] sets.
fn kept_keys(set: &GroupingSet) -> Result<Vec<Vec<bool>>> {
    let count = match set {
        GroupingSet::Rollup(keys) => keys.len() + 1,
        GroupingSet::Cube(keys) => 1usize.checked_shl(keys.len() as u32).unwrap_or(usize::MAX),
        GroupingSet::GroupingSets(sets) => sets.len(),
    };
    let keys = set.distinct_expr().len();
    if keys >= 64 {
        return Err(unsupported(format!(
            "grouping sets over {keys} keys (the grouping id has a bit per key: at most 63)"
        )));
    }
    if count > MAX_SETS {
        return Err(unsupported(format!(
            "GROUP BY with {} grouping sets (at most {MAX_SETS}, a CUBE of 12 keys)",
            if count == usize::MAX {
                "over 2^63".to_string()
            } else {
                count.to_string()
            }
        )));
    }
    Ok(match set {
        GroupingSet::Rollup(keys) => (0..=keys.len())
            .rev()
            .map(|n| (0..keys.len()).map(|i| i < n).collect())
            .collect(),
        GroupingSet::Cube(keys) => {
            let n = keys.len();
            (0..1u64 << n)
                .map(|left_out| (0..n).map(|i| left_out & (1 << (n - 1 - i)) == 0).collect())
                .collect()
        }
        GroupingSet::GroupingSets(sets) => {
            let keys = set.distinct_expr();
            sets.iter()
                .map(|s| keys.iter().map(|key| s.contains(key)).collect())
                .collect()
        }
    })
}

/// The grouping ids of sets `kept` (see the module docs).
fn grouping_ids(kept: &[Vec<bool>]) -> Vec<u64> {
    let mut repeats: HashMap<u64, u64> = HashMap::new();
    kept.iter()
        .map(|keys| {
            let n = keys.len();
            let left_out = keys
                .iter()
                .enumerate()
                .filter(|(_, kept)| !**kept)
                .fold(0u64, |id, (i, _)| id | 1 << (n - 1 - i));
            let repeat = repeats.entry(left_out).or_default();
            let id = left_out | *repeat << n;
            *repeat += 1;
            id
        })
        .collect()
}

/// `value` as a literal of the grouping id's type `data_type`.
fn id_literal(value: u64, data_type: &DataType) -> Result<Expr> {
    let value = ScalarValue::UInt64(Some(value))
        .cast_to(data_type)
        .map_err(|_| {
            unsupported(format!(
                "a grouping set listed so often that its repeats do not fit the {data_type} \
                 grouping id DataFusion planned"
            ))
        })?;
    Ok(Expr::Literal(value, None))
}

impl Translator<'_> {
    /// The aggregate `a`, grouped by the grouping sets `set`.
    pub(super) fn grouping_sets(
        &mut self,
        a: &lp::Aggregate,
        set: &GroupingSet,
    ) -> Result<Planned> {
        let input = self.plan(&a.input)?;
        let inputs = [(a.input.schema().as_ref(), input.columns.as_slice())];
        let keys = set.distinct_expr();
        let fields = a.schema.fields();
        // Each key's expression, and its NULL where a set leaves it out.
        let mut key_exprs = Vec::with_capacity(keys.len());
        let mut columns = Vec::with_capacity(fields.len());
        for (key, field) in keys.iter().zip(fields.iter()) {
            let null = ScalarValue::try_from(field.data_type())?;
            key_exprs.push((physical(unaliased(key), &inputs)?, null));
            columns.push(self.fresh(field.name()));
        }
        let id_field = &fields[keys.len()];
        let id_column = self.fresh(id_field.name());
        let kept = kept_keys(set)?;
        let mut projections = Vec::with_capacity(kept.len());
        // The sets of no key (the grand total) have their row over no
        // input too.
        let mut seeds = Vec::new();
        for (keys_kept, id) in kept.iter().zip(grouping_ids(&kept)) {
            let mut projection = Vec::with_capacity(keys.len() + 1 + input.columns.len());
            for (((key, null), name), kept) in key_exprs.iter().zip(&columns).zip(keys_kept) {
                let value = match kept {
                    true => key.clone(),
                    false => Expr::Literal(null.clone(), None),
                };
                projection.push(value.alias(name));
            }
            projection.push(id_literal(id, id_field.data_type())?.alias(&id_column));
            projection.extend(input.columns.iter().map(|c| column(c)));
            projections.push(projection);
            if keys_kept.iter().all(|kept| !kept) {
                let nulls = key_exprs.iter().map(|(_, null)| null.clone());
                seeds.push(nulls.chain([ScalarValue::UInt64(Some(id))]).collect());
            }
        }
        let expanded = input.df.expand(projections)?;
        let group_by: Vec<Expr> = columns
            .iter()
            .chain([&id_column])
            .map(|c| column(c))
            .collect();
        columns.push(id_column);
        let mut aggregates = Vec::with_capacity(a.aggr_expr.len());
        for (e, field) in a.aggr_expr.iter().zip(fields.iter().skip(columns.len())) {
            let name = self.fresh(field.name());
            aggregates.push(physical(unaliased(e), &inputs)?.alias(&name));
            columns.push(name);
        }
        let df = expanded.aggregate_seeded(group_by, aggregates, &seeds)?;
        Ok(Planned { df, columns })
    }
}

#[cfg(test)]
mod tests {
    use datafusion_expr::col;

    use super::*;

    #[test]
    fn rollup_cube_and_sets_keep_the_keys_sql_says() {
        let (a, b) = (col("a"), col("b"));
        let rollup = GroupingSet::Rollup(vec![a.clone(), b.clone()]);
        let t = true;
        let f = false;
        assert_eq!(
            kept_keys(&rollup).expect("3 sets"),
            [[t, t], [t, f], [f, f]]
        );
        assert_eq!(
            grouping_ids(&kept_keys(&rollup).expect("3 sets")),
            [0b00, 0b01, 0b11]
        );
        let cube = GroupingSet::Cube(vec![a.clone(), b.clone()]);
        assert_eq!(
            kept_keys(&cube).expect("4 sets"),
            [[t, t], [t, f], [f, t], [f, f]]
        );
        assert_eq!(
            grouping_ids(&kept_keys(&cube).expect("4 sets")),
            [0b00, 0b01, 0b10, 0b11]
        );
        // A set listed twice gives its rows twice: its repeat has an id of
        // its own above the key bits.
        let sets = GroupingSet::GroupingSets(vec![vec![b.clone()], vec![a, b.clone()], vec![b]]);
        assert_eq!(kept_keys(&sets).expect("3 sets"), [[t, f], [t, t], [t, f]]);
        assert_eq!(
            grouping_ids(&kept_keys(&sets).expect("3 sets")),
            [0b001, 0b000, 0b101]
        );
        // A CUBE of 13 keys, 8192 sets, is refused, and 64 keys would
        // not fit the grouping id.
        for (n, says) in [(13, "grouping sets (at most 4096"), (64, "at most 63")] {
            let cube = GroupingSet::Cube((0..n).map(|i| col(format!("k{i}"))).collect());
            let error = kept_keys(&cube).expect_err("refused").to_string();
            assert!(error.contains(says), "{error}");
        }
    }
}
