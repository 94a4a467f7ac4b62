//! Differential tests of the interval join: seeded random rows of two
//! sides, joined on equal keys and times within bounds, inner and outer,
//! by the operator (all input then the end, or interleaved with watermarks
//! over rows out of order within the bound) and by a naive reference that
//! pairs every row with every row; the results must be identical.

mod common;

use std::sync::Arc;

use common::{Row, across_a_checkpoint, batches, pairs, rows, schema, stream};
use weir_engine::expr::{Compiled, col, lit};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{IntervalJoin, JoinType, joined_schema};
use weir_engine::testing::{drive, sorted_rows};

const BOUNDS: (i64, i64) = (-15, 5);

fn join(join_type: JoinType) -> IntervalJoin {
    let (left, right) = (schema("l"), schema("r"));
    let both = joined_schema(&left, &right);
    IntervalJoin::try_new(
        join_type,
        Arc::clone(&left),
        Arc::clone(&right),
        ("lt", "rt"),
        BOUNDS,
        vec![(
            Compiled::new(&col("lk"), &left).expect("key"),
            Compiled::new(&col("rk"), &right).expect("key"),
        )],
        Some(Compiled::new(&col("lv").lt_eq(col("rv") + lit(70i64)), &both).expect("condition")),
    )
    .expect("plans")
}

fn reference(join_type: JoinType, left: &[Row], right: &[Row]) -> Vec<String> {
    let matches = |a: &Row, b: &Row| {
        a.0.is_some()
            && a.0 == b.0
            && (BOUNDS.0..=BOUNDS.1).contains(&(b.1 - a.1))
            && a.2 <= b.2 + 70
    };
    let mut out = pairs(join_type, left, right, matches, "");
    out.sort();
    out
}

#[test]
fn interval_joins_equal_the_reference_in_batch_and_streaming_order() {
    let (left, right) = (rows(1, 800, 12, 8, 2), rows(2, 800, 12, 8, 2));
    for join_type in [
        JoinType::Inner,
        JoinType::Left,
        JoinType::Right,
        JoinType::Full,
    ] {
        let factory = join(join_type);
        let expected = reference(join_type, &left, &right);
        let (l, r) = (batches("l", &left, 50), batches("r", &right, 50));
        let at_end =
            drive(&factory, &[l.clone(), r.clone()], MemoryPool::unbounded()).expect("runs");
        assert_eq!(sorted_rows(&at_end), expected, "{join_type} at the end");
        assert_eq!(
            sorted_rows(&stream(&factory, &l, &r, 12)),
            expected,
            "{join_type} streaming"
        );
    }
}

#[test]
fn interval_join_state_survives_a_checkpoint() {
    let factory = join(JoinType::Full);
    let (left, right) = (rows(5, 400, 0, 8, 2), rows(6, 400, 0, 8, 2));
    let (l, r) = (batches("l", &left, 40), batches("r", &right, 40));
    let emitted = across_a_checkpoint(&factory, &l, &r, 4, 250);
    assert_eq!(
        sorted_rows(&emitted),
        reference(JoinType::Full, &left, &right)
    );
}

#[test]
fn interval_bounds_are_checked() {
    let (left, right) = (schema("l"), schema("r"));
    let e = IntervalJoin::try_new(
        JoinType::Inner,
        Arc::clone(&left),
        Arc::clone(&right),
        ("lt", "rt"),
        (5, -5),
        vec![(
            Compiled::new(&col("lk"), &left).expect("key"),
            Compiled::new(&col("rk"), &right).expect("key"),
        )],
        None,
    )
    .expect_err("bounds");
    assert!(e.to_string().contains("wrong way round"), "{e}");
}
