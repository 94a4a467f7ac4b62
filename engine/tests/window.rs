//! Differential tests of the window aggregates: seeded random records with
//! event times, aggregated per tumbling, sliding, cumulating and session
//! window by the operator and by a naive reference that assigns every
//! record to every window it belongs to, row by row. Fired at the end of
//! input (batch), or as watermarks advance over records that arrive out
//! of order within the bound (streaming): the results must be identical.
//! Records beyond the bound are late: dropped and counted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_functions_aggregate::count::count_all;
use datafusion_functions_aggregate::expr_fn::{max, sum};
use weir_engine::expr::col;
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{Window, WindowAggregate};
use weir_engine::testing::{Rng, drive, sorted_rows, task_info, windows_of};
use weir_engine::{OperatorFactory, Output, Progress};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("ts", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]))
}

/// `(key, time, value)` records.
type Record = (String, i64, i64);

/// Records whose times mostly advance, each up to `disorder` ms out of
/// order.
fn records(seed: u64, n: usize, keys: u64, disorder: i64) -> Vec<Record> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let time = i as i64 * 7 - rng.below(disorder as u64 + 1) as i64;
            let key = format!("k{}", rng.below(keys));
            (key, time, rng.below(100) as i64)
        })
        .collect()
}

fn batches(records: &[Record], rows: usize) -> Vec<RecordBatch> {
    records
        .chunks(rows)
        .map(|chunk| {
            RecordBatch::try_new(
                schema(),
                vec![
                    Arc::new(StringArray::from_iter_values(chunk.iter().map(|r| &r.0))),
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.1))),
                    Arc::new(Int64Array::from_iter_values(chunk.iter().map(|r| r.2))),
                ],
            )
            .expect("batch")
        })
        .collect()
}

fn aggregate(window: Window, keyed: bool) -> WindowAggregate {
    let group_by = if keyed {
        vec![(col("key"), "key".to_string())]
    } else {
        vec![]
    };
    WindowAggregate::try_new(
        window,
        &schema(),
        "ts",
        group_by,
        vec![
            (count_all(), "n".to_string()),
            (sum(col("v")), "total".to_string()),
            (max(col("ts")), "last".to_string()),
        ],
    )
    .expect("plans")
}
/// The reference: every record in every window it belongs to (sessions:
/// each key's records sorted by time, split where two are more than the
/// gap apart).
fn reference(window: Window, records: &[Record], keyed: bool) -> Vec<String> {
    let mut groups: BTreeMap<(String, i64, i64), (i64, i64, i64)> = BTreeMap::new();
    let mut add = |key: &str, (start, end): (i64, i64), time: i64, value: i64| {
        let key = if keyed {
            key.to_string()
        } else {
            String::new()
        };
        let group = groups.entry((key, start, end)).or_insert((0, 0, i64::MIN));
        *group = (group.0 + 1, group.1 + value, group.2.max(time));
    };
    if let Window::Session { gap } = window {
        let mut by_key: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
        for (key, time, value) in records {
            let key = if keyed { key.as_str() } else { "" };
            by_key.entry(key).or_default().push((*time, *value));
        }
        for (key, mut rows) in by_key {
            rows.sort();
            let mut session: Vec<(i64, i64)> = Vec::new();
            for row in rows.into_iter().chain([(i64::MAX, 0)]) {
                if let Some(last) = session.last()
                    && (row.0 == i64::MAX || row.0 - last.0 > gap)
                {
                    let bounds = (session[0].0, last.0 + gap);
                    for (time, value) in session.drain(..) {
                        add(key, bounds, time, value);
                    }
                }
                session.push(row);
            }
        }
    } else {
        for (key, time, value) in records {
            for bounds in windows_of(window, *time) {
                add(key, bounds, *time, *value);
            }
        }
    }
    let mut rows: Vec<String> = groups
        .into_iter()
        .map(|((key, start, end), (n, total, last))| {
            let window = format!("{start}|{end}|{n}|{total}|{last}");
            if keyed {
                format!("{key}|{window}")
            } else {
                window
            }
        })
        .collect();
    rows.sort();
    rows
}

/// Runs the operator over `batches` as a streaming task would: after each
/// batch, a watermark `bound` behind the largest time so far. Returns its
/// rows and the late records it counted.
fn stream(
    factory: &WindowAggregate,
    batches: &[RecordBatch],
    bound: i64,
) -> (Vec<RecordBatch>, u64) {
    let (rows, (_, late)) = stream_with_late(factory, batches, bound);
    (rows, late)
}

/// As [`stream`], with the late records the operator emitted and how many
/// it counted (dropped or emitted).
fn stream_with_late(
    factory: &WindowAggregate,
    batches: &[RecordBatch],
    bound: i64,
) -> (Vec<RecordBatch>, (Vec<RecordBatch>, u64)) {
    let info = task_info(MemoryPool::unbounded());
    let mut op = factory.create(&info).expect("creates");
    let mut out = Output::default();
    let mut newest = i64::MIN;
    let mut emitted = Vec::new();
    let mut late = Vec::new();
    for batch in batches {
        let times = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("times");
        newest = newest.max(arrow::compute::max(times).expect("rows"));
        op.process_batch(0, batch.clone(), &mut out)
            .expect("processes");
        op.on_watermark(newest - bound - 1, &mut out)
            .expect("fires");
        emitted.extend(out.take().0);
        late.extend(out.take_late());
    }
    op.end_of_input(0, &mut out).expect("ends");
    while op.finish(&mut out).expect("finishes") == Progress::More {
        emitted.extend(out.take().0);
    }
    emitted.extend(out.take().0);
    late.extend(out.take_late());
    let counted = info.counters.get("late records dropped")
        + info.counters.get("late records to the side output");
    (emitted, (late, counted))
}

/// Asserts two sorted row lists are equal, showing what differs.
fn assert_same(got: &[String], expected: &[String], what: &str) {
    if got == expected {
        return;
    }
    let missing: Vec<&String> = expected
        .iter()
        .filter(|r| !got.contains(r))
        .take(8)
        .collect();
    let extra: Vec<&String> = got
        .iter()
        .filter(|r| !expected.contains(r))
        .take(8)
        .collect();
    panic!(
        "{what}: {} rows, expected {}; missing {missing:?}; unexpected {extra:?}",
        got.len(),
        expected.len()
    );
}

fn windows() -> Vec<Window> {
    vec![
        Window::tumble(Duration::from_millis(100)).expect("valid"),
        Window::hop(Duration::from_millis(40), Duration::from_millis(100)).expect("valid"),
        Window::hop(Duration::from_millis(30), Duration::from_millis(100)).expect("valid"),
        Window::cumulate(Duration::from_millis(25), Duration::from_millis(100)).expect("valid"),
        Window::session(Duration::from_millis(60)).expect("valid"),
    ]
}

#[test]
fn windows_fired_at_the_end_equal_the_reference() {
    for window in windows() {
        for keyed in [true, false] {
            let records = records(1, 3000, 40, 30);
            let factory = aggregate(window, keyed);
            let out =
                drive(&factory, &[batches(&records, 256)], MemoryPool::unbounded()).expect("runs");
            assert_eq!(out[0].schema(), factory.output_schema());
            assert_same(
                &sorted_rows(&out),
                &reference(window, &records, keyed),
                &format!("{window}, keyed: {keyed}"),
            );
        }
    }
}

#[test]
fn sessions_whose_windows_touch_merge() {
    // Flink merges the windows [t, t + gap) of records exactly a gap apart.
    let gap = Duration::from_millis(10);
    let records: Vec<Record> = [(0, 1), (10, 2), (20, 3), (31, 4)]
        .into_iter()
        .map(|(time, value)| ("k".to_string(), time, value))
        .collect();
    let factory = aggregate(Window::session(gap).expect("valid"), true);
    for (rows, bound) in [(4, 0), (1, 0), (1, 5)] {
        let (out, late) = stream(&factory, &batches(&records, rows), bound);
        assert_eq!(late, 0);
        assert_eq!(
            sorted_rows(&out),
            ["k|0|30|3|6|20", "k|31|41|1|4|31"],
            "batches of {rows}, watermark {bound} behind"
        );
    }
}

#[test]
fn windows_fired_by_watermarks_equal_the_batch_result() {
    for window in windows() {
        // Out of order by up to 30 ms, watermarks 30 ms behind: nothing late.
        let records = records(2, 5000, 25, 30);
        let factory = aggregate(window, true);
        let (out, late) = stream(&factory, &batches(&records, 100), 30);
        assert_eq!(late, 0, "{window}");
        assert_same(
            &sorted_rows(&out),
            &reference(window, &records, true),
            &window.to_string(),
        );
    }
}

#[test]
fn records_behind_the_watermark_are_late_and_counted() {
    let window = Window::tumble(Duration::from_millis(50)).expect("valid");
    let factory = aggregate(window, true);
    // Times 0..1000 in order, then records for windows long fired.
    let mut records: Vec<Record> = (0..100).map(|i| ("a".into(), i * 10, 1)).collect();
    records.extend((0..7).map(|i| ("a".to_string(), i * 3, 100)));
    let on_time = &records[..100];
    let (out, late) = stream(&factory, &batches(&records, 10), 0);
    assert_eq!(late, 7);
    assert_eq!(sorted_rows(&out), reference(window, on_time, true));
    // A record late for some of its sliding windows counts in the others.
    let window = Window::hop(Duration::from_millis(10), Duration::from_millis(30)).expect("valid");
    let factory = aggregate(window, false);
    let records: Vec<Record> = vec![
        ("a".into(), 5, 1),
        ("a".into(), 25, 1),
        ("a".into(), 12, 1), // after the watermark of 25: [-10, 20) has fired
    ];
    let (out, late) = stream(&factory, &batches(&records, 1), 0);
    assert_eq!(late, 0);
    let rows = sorted_rows(&out);
    assert_eq!(
        rows,
        vec![
            "-10|20|1|1|5",
            "-20|10|1|1|5",
            "0|30|3|3|25",
            "10|40|2|2|25",
            "20|50|1|1|25"
        ]
    );
}

#[test]
fn late_records_go_to_the_side_output_when_asked() {
    for window in [
        Window::tumble(Duration::from_millis(50)).expect("valid"),
        Window::session(Duration::from_millis(20)).expect("valid"),
    ] {
        let factory = aggregate(window, true).with_late_records();
        let mut records: Vec<Record> = (0..100).map(|i| ("a".into(), i * 10, 1)).collect();
        let late: Vec<Record> = (0..7).map(|i| ("b".to_string(), i * 3, 100)).collect();
        records.extend(late.iter().cloned());
        let (out, (side, counted)) = stream_with_late(&factory, &batches(&records, 10), 0);
        assert_eq!(counted, 7, "{window}");
        // As they came in: the input's columns.
        assert_eq!(
            sorted_rows(&side),
            sorted_rows(&batches(&late, 100)),
            "{window}"
        );
        assert_same(
            &sorted_rows(&out),
            &reference(window, &records[..100], true),
            &window.to_string(),
        );
    }
}

#[test]
fn window_lengths_are_checked() {
    let e = Window::hop(Duration::from_millis(50), Duration::from_millis(10)).expect_err("slide");
    assert!(
        e.to_string()
            .contains("slide (50 ms) must not be longer than its size (10 ms)"),
        "{e}"
    );
    let e =
        Window::cumulate(Duration::from_millis(30), Duration::from_millis(100)).expect_err("step");
    assert!(
        e.to_string().contains("must be a multiple of its step"),
        "{e}"
    );
    let e = Window::tumble(Duration::ZERO).expect_err("size");
    assert!(e.to_string().contains("at least 1 ms"), "{e}");
    let e = WindowAggregate::try_new(
        Window::tumble(Duration::from_secs(1)).expect("valid"),
        &schema(),
        "key",
        vec![],
        vec![(count_all(), "n".to_string())],
    )
    .expect_err("not a time");
    assert!(e.to_string().contains("not a time"), "{e}");
}
