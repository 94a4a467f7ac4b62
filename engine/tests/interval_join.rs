//! Differential tests of the interval join: seeded random rows of two
//! sides, joined on equal keys and times within bounds, inner and outer,
//! by the operator (all input then the end, or interleaved with watermarks
//! over rows out of order within the bound) and by a naive reference that
//! pairs every row with every row; the results must be identical.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_engine::expr::{Compiled, col, lit};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{IntervalJoin, JoinType, joined_schema};
use weir_engine::testing::{Rng, drive, sorted_rows, task_info};
use weir_engine::{OperatorFactory, Output, Progress};

fn schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}k"), DataType::Int64, true),
        Field::new(format!("{prefix}t"), DataType::Int64, false),
        Field::new(format!("{prefix}v"), DataType::Int64, false),
    ]))
}

type Row = (Option<i64>, i64, i64);

fn rows(seed: u64, n: usize, disorder: i64) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let key = (!rng.chance(0.05)).then(|| rng.below(8) as i64);
            (
                key,
                i as i64 * 2 - rng.below(disorder as u64 + 1) as i64,
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

fn cell(value: Option<i64>) -> String {
    value.map_or("NULL".to_string(), |v| v.to_string())
}

fn reference(join_type: JoinType, left: &[Row], right: &[Row]) -> Vec<String> {
    let side = |row: Option<&Row>| match row {
        Some((k, t, v)) => format!("{}|{t}|{v}", cell(*k)),
        None => "NULL|NULL|NULL".to_string(),
    };
    let matches = |a: &Row, b: &Row| {
        a.0.is_some()
            && a.0 == b.0
            && (BOUNDS.0..=BOUNDS.1).contains(&(b.1 - a.1))
            && a.2 <= b.2 + 70
    };
    let mut out = Vec::new();
    for a in left {
        let mut matched = false;
        for b in right.iter().filter(|b| matches(a, b)) {
            matched = true;
            out.push(format!("{}|{}", side(Some(a)), side(Some(b))));
        }
        if !matched && matches!(join_type, JoinType::Left | JoinType::Full) {
            out.push(format!("{}|{}", side(Some(a)), side(None)));
        }
    }
    if matches!(join_type, JoinType::Right | JoinType::Full) {
        for b in right.iter().filter(|b| !left.iter().any(|a| matches(a, b))) {
            out.push(format!("{}|{}", side(None), side(Some(b))));
        }
    }
    out.sort();
    out
}

/// Interleaves the sides' batches with watermarks `bound` behind the older
/// side's newest time, as a streaming task would.
fn stream(
    factory: &IntervalJoin,
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
    for (a, b) in left.iter().zip(right) {
        op.process_batch(0, a.clone(), &mut out).expect("left");
        op.process_batch(1, b.clone(), &mut out).expect("right");
        (l, r) = (l.max(newest(a)), r.max(newest(b)));
        op.on_watermark(l.min(r) - bound - 1, &mut out)
            .expect("expires");
    }
    while op.finish(&mut out).expect("finishes") == Progress::More {}
    out.take().0
}

#[test]
fn interval_joins_equal_the_reference_in_batch_and_streaming_order() {
    let (left, right) = (rows(1, 800, 12), rows(2, 800, 12));
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
    let (left, right) = (rows(5, 400, 0), rows(6, 400, 0));
    let (l, r) = (batches("l", &left, 40), batches("r", &right, 40));
    let info = task_info(MemoryPool::unbounded());
    let mut first = factory.create(&info).expect("creates");
    let mut out = Output::default();
    for (a, b) in l.iter().zip(&r).take(4) {
        first.process_batch(0, a.clone(), &mut out).expect("left");
        first.process_batch(1, b.clone(), &mut out).expect("right");
    }
    first.on_watermark(250, &mut out).expect("expires");
    let mut emitted = out.take().0;
    let state = first.snapshot_state().expect("snapshots").expect("state");
    let restored: Vec<RecordBatch> = state
        .iter()
        .map(|b| weir_engine::checkpoint::in_key_groups(b, &(0..128)).expect("narrowed"))
        .collect();
    let mut second = factory.create(&info).expect("creates");
    second.restore_state(restored).expect("restores");
    for (a, b) in l.iter().zip(&r).skip(4) {
        second.process_batch(0, a.clone(), &mut out).expect("left");
        second.process_batch(1, b.clone(), &mut out).expect("right");
    }
    while second.finish(&mut out).expect("finishes") == Progress::More {}
    emitted.extend(out.take().0);
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
