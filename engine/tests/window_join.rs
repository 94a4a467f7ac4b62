//! Differential tests of the window join: seeded random rows of two sides,
//! joined per tumbling, sliding and cumulating window, inner and outer, by
//! the operator (fired at the end of input, or by watermarks over rows out
//! of order within the bound) and by a naive reference that pairs every
//! row with every row; the results must be identical.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_engine::expr::{Compiled, col, lit};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{JoinType, Window, WindowJoin, joined_schema};
use weir_engine::testing::{Rng, drive, sorted_rows, task_info};
use weir_engine::{OperatorFactory, Output, Progress};

fn schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}k"), DataType::Int64, true),
        Field::new(format!("{prefix}t"), DataType::Int64, false),
        Field::new(format!("{prefix}v"), DataType::Int64, false),
    ]))
}

/// `(key, time, value)`; a key of `None` never matches.
type Row = (Option<i64>, i64, i64);

fn rows(seed: u64, n: usize, disorder: i64) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let key = (!rng.chance(0.05)).then(|| rng.below(6) as i64);
            (
                key,
                i as i64 * 3 - rng.below(disorder as u64 + 1) as i64,
                rng.below(100) as i64,
            )
        })
        .collect()
}

fn batches(prefix: &str, rows: &[Row], size: usize) -> Vec<RecordBatch> {
    rows.chunks(size)
        .map(|chunk| {
            RecordBatch::try_new(
                schema(prefix),
                vec![
                    Arc::new(Int64Array::from_iter(chunk.iter().map(|r| r.0))),
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.1))),
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.2))),
                ],
            )
            .expect("batch")
        })
        .collect()
}

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

/// The windows `[start, end)` holding `time`.
fn windows_of(window: Window, time: i64) -> Vec<(i64, i64)> {
    let floor = |t: i64, n: i64| t.div_euclid(n) * n;
    match window {
        Window::Tumble { size } => vec![(floor(time, size), floor(time, size) + size)],
        Window::Hop { size, slide } => {
            let mut out = Vec::new();
            let mut start = floor(time, slide);
            while start > time - size {
                out.push((start, start + size));
                start -= slide;
            }
            out
        }
        Window::Cumulate { step, max_size } => {
            let start = floor(time, max_size);
            let mut end = floor(time, step) + step;
            let mut out = Vec::new();
            while end <= start + max_size {
                out.push((start, end));
                end += step;
            }
            out
        }
        Window::Session { .. } => unreachable!("no session joins"),
    }
}

fn cell(value: Option<i64>) -> String {
    value.map_or("NULL".to_string(), |v| v.to_string())
}

/// Every pair of rows in the same window with equal non-null keys that
/// passes the condition; outer rows padded with NULLs.
fn reference(window: Window, join_type: JoinType, left: &[Row], right: &[Row]) -> Vec<String> {
    let side = |row: Option<&Row>| match row {
        Some((k, t, v)) => format!("{}|{t}|{v}", cell(*k)),
        None => "NULL|NULL|NULL".to_string(),
    };
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
        let (l, r) = (inside(left), inside(right));
        let matches = |a: &Row, b: &Row| a.0.is_some() && a.0 == b.0 && a.2 <= b.2 + 60;
        for a in &l {
            let mut matched = false;
            for b in r.iter().filter(|b| matches(a, b)) {
                matched = true;
                out.push(format!("{}|{}|{start}|{end}", side(Some(a)), side(Some(b))));
            }
            if !matched && matches!(join_type, JoinType::Left | JoinType::Full) {
                out.push(format!("{}|{}|{start}|{end}", side(Some(a)), side(None)));
            }
        }
        if matches!(join_type, JoinType::Right | JoinType::Full) {
            for b in r.iter().filter(|b| !l.iter().any(|a| matches(a, b))) {
                out.push(format!("{}|{}|{start}|{end}", side(None), side(Some(b))));
            }
        }
    }
    out.sort();
    out
}

/// Runs the join as a streaming task would: a left batch, a right batch,
/// then a watermark `bound` behind the older side's newest time.
fn stream(
    factory: &WindowJoin,
    left: &[RecordBatch],
    right: &[RecordBatch],
    bound: i64,
) -> Vec<RecordBatch> {
    let mut op = factory
        .create(&task_info(MemoryPool::unbounded()))
        .expect("creates");
    let mut out = Output::default();
    let newest = |b: &RecordBatch| {
        arrow::compute::max(
            b.column(1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("times"),
        )
        .expect("rows")
    };
    let (mut l, mut r) = (i64::MIN, i64::MIN);
    let mut emitted = Vec::new();
    for (a, b) in left.iter().zip(right) {
        op.process_batch(0, a.clone(), &mut out).expect("left");
        op.process_batch(1, b.clone(), &mut out).expect("right");
        (l, r) = (l.max(newest(a)), r.max(newest(b)));
        op.on_watermark(l.min(r) - bound - 1, &mut out)
            .expect("fires");
        emitted.extend(out.take().0);
    }
    op.end_of_input(0, &mut out).expect("ends");
    op.end_of_input(1, &mut out).expect("ends");
    while op.finish(&mut out).expect("finishes") == Progress::More {}
    emitted.extend(out.take().0);
    emitted
}

#[test]
fn window_joins_equal_the_reference_in_batch_and_streaming_order() {
    let windows = [
        Window::tumble(Duration::from_millis(50)).expect("valid"),
        Window::hop(Duration::from_millis(20), Duration::from_millis(50)).expect("valid"),
        Window::cumulate(Duration::from_millis(25), Duration::from_millis(100)).expect("valid"),
    ];
    let (left, right) = (rows(1, 600, 20), rows(2, 600, 20));
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
    let (left, right) = (rows(3, 300, 0), rows(4, 300, 0));
    let (l, r) = (batches("l", &left, 30), batches("r", &right, 30));
    let info = task_info(MemoryPool::unbounded());
    let mut first = factory.create(&info).expect("creates");
    let mut out = Output::default();
    for (a, b) in l.iter().zip(&r).take(5) {
        first.process_batch(0, a.clone(), &mut out).expect("left");
        first.process_batch(1, b.clone(), &mut out).expect("right");
    }
    first.on_watermark(200, &mut out).expect("fires");
    let mut emitted = out.take().0;
    let state = first.snapshot_state().expect("snapshots").expect("state");
    // One subtask owns every key group: the restored state is all of it.
    let restored: Vec<RecordBatch> = state
        .iter()
        .map(|b| weir_engine::checkpoint::in_key_groups(b, &(0..128)).expect("narrowed"))
        .collect();
    let mut second = factory.create(&info).expect("creates");
    second.restore_state(restored).expect("restores");
    for (a, b) in l.iter().zip(&r).skip(5) {
        second.process_batch(0, a.clone(), &mut out).expect("left");
        second.process_batch(1, b.clone(), &mut out).expect("right");
    }
    while second.finish(&mut out).expect("finishes") == Progress::More {}
    emitted.extend(out.take().0);
    assert_eq!(
        sorted_rows(&emitted),
        reference(window, JoinType::Full, &left, &right)
    );
}
