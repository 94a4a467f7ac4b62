//! Differential tests of the window join: seeded random rows of two sides,
//! joined per tumbling, sliding and cumulating window, inner and outer, by
//! the operator (fired at the end of input, or by watermarks over rows out
//! of order within the bound) and by a naive reference that pairs every
//! row with every row; the results must be identical.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Row, across_a_checkpoint, batches, pairs, rows, schema, stream};
use weir_engine::expr::{Compiled, col, lit};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{JoinType, Window, WindowJoin, joined_schema};
use weir_engine::testing::{drive, sorted_rows, windows_of};

fn join(window: Window, join_type: JoinType) -> WindowJoin {
    let (left, right) = (schema("l"), schema("r"));
    let both = joined_schema(&left, &right);
    WindowJoin::try_new(
        window,
        join_type,
        Arc::clone(&left),
        Arc::clone(&right),
        ("lt", "rt"),
        vec![(
            Compiled::new(&col("lk"), &left).expect("key"),
            Compiled::new(&col("rk"), &right).expect("key"),
        )],
        // A residual condition: the left value is not above the right one
        // plus 60.
        Some(Compiled::new(&col("lv").lt_eq(col("rv") + lit(60i64)), &both).expect("condition")),
    )
    .expect("plans")
}
/// Every pair of rows in the same window with equal non-null keys that
/// passes the condition; outer rows padded with NULLs.
fn reference(window: Window, join_type: JoinType, left: &[Row], right: &[Row]) -> Vec<String> {
    let mut windows: Vec<(i64, i64)> = left
        .iter()
        .chain(right)
        .flat_map(|r| windows_of(window, r.1))
        .collect();
    windows.sort_unstable();
    windows.dedup();
    let mut out = Vec::new();
    for (start, end) in windows {
        let inside = |rows: &[Row]| -> Vec<Row> {
            rows.iter()
                .filter(|r| start <= r.1 && r.1 < end)
                .copied()
                .collect()
        };
        let matches = |a: &Row, b: &Row| a.0.is_some() && a.0 == b.0 && a.2 <= b.2 + 60;
        out.extend(pairs(
            join_type,
            &inside(left),
            &inside(right),
            matches,
            &format!("|{start}|{end}"),
        ));
    }
    out.sort();
    out
}

#[test]
fn window_joins_equal_the_reference_in_batch_and_streaming_order() {
    let windows = [
        Window::tumble(Duration::from_millis(50)).expect("valid"),
        Window::hop(Duration::from_millis(20), Duration::from_millis(50)).expect("valid"),
        Window::cumulate(Duration::from_millis(25), Duration::from_millis(100)).expect("valid"),
    ];
    let (left, right) = (rows(1, 600, 20, 6, 3), rows(2, 600, 20, 6, 3));
    for window in windows {
        for join_type in [
            JoinType::Inner,
            JoinType::Left,
            JoinType::Right,
            JoinType::Full,
        ] {
            let factory = join(window, join_type);
            let expected = reference(window, join_type, &left, &right);
            let (l, r) = (batches("l", &left, 40), batches("r", &right, 40));
            let at_end =
                drive(&factory, &[l.clone(), r.clone()], MemoryPool::unbounded()).expect("runs");
            assert_eq!(
                sorted_rows(&at_end),
                expected,
                "{window} {join_type} at the end"
            );
            let streamed = stream(&factory, &l, &r, 20);
            assert_eq!(
                sorted_rows(&streamed),
                expected,
                "{window} {join_type} streaming"
            );
        }
    }
}

#[test]
fn window_join_state_survives_a_checkpoint() {
    let window = Window::tumble(Duration::from_millis(50)).expect("valid");
    let factory = join(window, JoinType::Full);
    let (left, right) = (rows(3, 300, 0, 6, 3), rows(4, 300, 0, 6, 3));
    let (l, r) = (batches("l", &left, 30), batches("r", &right, 30));
    let emitted = across_a_checkpoint(&factory, &l, &r, 5, 200);
    assert_eq!(
        sorted_rows(&emitted),
        reference(window, JoinType::Full, &left, &right)
    );
}
