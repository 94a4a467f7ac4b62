//! What the differential tests of the two-input streaming joins (window and
//! interval joins) share: seeded rows of two sides, their batches, the
//! reference's pairing of rows with outer rows padded, and a driver that
//! interleaves the sides with watermarks as a streaming task would.

use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::JoinType;
use weir_engine::testing::{Rng, task_info};
use weir_engine::{OperatorFactory, Output, Progress};

/// A side's schema: key, time and value columns named after `prefix`.
pub fn schema(prefix: &str) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new(format!("{prefix}k"), DataType::Int64, true),
        Field::new(format!("{prefix}t"), DataType::Int64, false),
        Field::new(format!("{prefix}v"), DataType::Int64, false),
    ]))
}

/// `(key, time, value)`; a key of `None` never matches.
pub type Row = (Option<i64>, i64, i64);

/// `n` rows of `keys` keys (one in twenty NULL), the `i`th at time
/// `i * spacing` less up to `disorder`.
pub fn rows(seed: u64, n: usize, disorder: i64, keys: u64, spacing: i64) -> Vec<Row> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let key = (!rng.chance(0.05)).then(|| rng.below(keys) as i64);
            (
                key,
                i as i64 * spacing - rng.below(disorder as u64 + 1) as i64,
                rng.below(100) as i64,
            )
        })
        .collect()
}

/// `rows` in batches of `size`, with the schema of `prefix`.
pub fn batches(prefix: &str, rows: &[Row], size: usize) -> Vec<RecordBatch> {
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

/// A row as the joined output prints it (`NULL`s for a missing side).
fn side(row: Option<&Row>) -> String {
    match row {
        Some((k, t, v)) => {
            let key = k.map_or("NULL".to_string(), |k| k.to_string());
            format!("{key}|{t}|{v}")
        }
        None => "NULL|NULL|NULL".to_string(),
    }
}

/// Every pair of `left` and `right` rows that `matches`, and the rows an
/// outer `join_type` keeps unmatched, padded with NULLs; each printed with
/// `suffix` after it.
pub fn pairs(
    join_type: JoinType,
    left: &[Row],
    right: &[Row],
    matches: impl Fn(&Row, &Row) -> bool,
    suffix: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for a in left {
        let mut matched = false;
        for b in right.iter().filter(|b| matches(a, b)) {
            matched = true;
            out.push(format!("{}|{}{suffix}", side(Some(a)), side(Some(b))));
        }
        if !matched && matches!(join_type, JoinType::Left | JoinType::Full) {
            out.push(format!("{}|{}{suffix}", side(Some(a)), side(None)));
        }
    }
    if matches!(join_type, JoinType::Right | JoinType::Full) {
        for b in right.iter().filter(|b| !left.iter().any(|a| matches(a, b))) {
            out.push(format!("{}|{}{suffix}", side(None), side(Some(b))));
        }
    }
    out
}

/// Runs the join as a streaming task would: a left batch, a right batch,
/// then a watermark `bound` behind the older side's newest time; at the
/// end, both inputs end.
pub fn stream(
    factory: &dyn OperatorFactory,
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
            .expect("watermark");
        emitted.extend(out.take().0);
    }
    op.end_of_input(0, &mut out).expect("ends");
    op.end_of_input(1, &mut out).expect("ends");
    while op.finish(&mut out).expect("finishes") == Progress::More {}
    emitted.extend(out.take().0);
    emitted
}

/// Runs the join over the first `before` batches of each side and a
/// watermark, snapshots its state, restores it into a new operator (one
/// subtask owning every key group) that takes the rest; what both emitted.
pub fn across_a_checkpoint(
    factory: &dyn OperatorFactory,
    left: &[RecordBatch],
    right: &[RecordBatch],
    before: usize,
    watermark: i64,
) -> Vec<RecordBatch> {
    let info = task_info(MemoryPool::unbounded());
    let mut first = factory.create(&info).expect("creates");
    let mut out = Output::default();
    for (a, b) in left.iter().zip(right).take(before) {
        first.process_batch(0, a.clone(), &mut out).expect("left");
        first.process_batch(1, b.clone(), &mut out).expect("right");
    }
    first.on_watermark(watermark, &mut out).expect("watermark");
    let mut emitted = out.take().0;
    let state = first.snapshot_state().expect("snapshots").expect("state");
    let restored: Vec<RecordBatch> = state
        .iter()
        .map(|b| weir_engine::checkpoint::in_key_groups(b, &(0..128)).expect("narrowed"))
        .collect();
    let mut second = factory.create(&info).expect("creates");
    second.restore_state(restored).expect("restores");
    for (a, b) in left.iter().zip(right).skip(before) {
        second.process_batch(0, a.clone(), &mut out).expect("left");
        second.process_batch(1, b.clone(), &mut out).expect("right");
    }
    while second.finish(&mut out).expect("finishes") == Progress::More {}
    emitted.extend(out.take().0);
    emitted
}
