//! The `nexmark` source end to end on the mini-cluster: the same events at
//! any parallelism, times from the base time at the given rate, events
//! reversed within groups, unbounded tables run as streaming jobs, the
//! combined stream holding the events of the three tables, and the errors
//! of bad tables.

mod common;

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StructArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Field, Schema, TimestampMillisecondType};
use common::*;
use weir_engine::Boundedness;
use weir_engine::dataframe::Dataflow;
use weir_engine::sinks::CollectSink;
use weir_engine::testing::sorted_rows;
use weir_scheduler::MiniCluster;

const BASE: i64 = 1_700_000_000_000;

async fn events(pairs: &[(&str, &str)], parallelism: usize) -> Vec<RecordBatch> {
    let table = source("nexmark", pairs).await.expect("a nexmark table");
    let flow = Dataflow::new("nexmark").with_parallelism(parallelism);
    let (collect, collected) = CollectSink::new();
    flow.read(table).write(Arc::new(collect));
    MiniCluster::new(config(0))
        .run(graph(&flow))
        .await
        .expect("the nexmark job");
    collected.batches()
}

fn times(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("date_time")
                .expect("date_time")
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .to_vec()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bids_at_any_parallelism_from_the_base_time() {
    let base = BASE.to_string();
    let options = [
        ("number-of-events", "20000"),
        ("base-time", base.as_str()),
        ("events-per-second", "1000000"),
    ];
    let one = events(&options, 1).await;
    let three = events(&options, 3).await;
    assert_eq!(one.iter().map(RecordBatch::num_rows).sum::<usize>(), 20_000);
    assert_eq!(one[0].schema().field(0).name(), "auction");
    assert_eq!(sorted_rows(&three), sorted_rows(&one));
    // In order on one subtask; 46 bids in every 50 events, a microsecond
    // apart at a million events per second.
    let times = times(&one);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!(times[0] >= BASE && times[0] < BASE + 2, "{}", times[0]);
    let span = times[times.len() - 1] - times[0];
    assert!(
        (20..25).contains(&span),
        "20,000 bids in about 22 ms: {span}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reversed_groups_hold_the_same_events_out_of_order() {
    let base = BASE.to_string();
    let ordered = [("number-of-events", "5000"), ("base-time", base.as_str())];
    let reversed = [
        ("number-of-events", "5000"),
        ("base-time", base.as_str()),
        ("out-of-order-group-size", "100"),
    ];
    let (a, b) = (events(&ordered, 1).await, events(&reversed, 1).await);
    assert_eq!(sorted_rows(&a), sorted_rows(&b));
    let times = times(&b);
    assert!(times.windows(2).any(|w| w[0] > w[1]), "out of order");
    // Never more than a group's time behind the newest: 100 events of
    // 10,000 per second.
    let mut newest = i64::MIN;
    for t in times {
        newest = newest.max(t);
        assert!(newest - t <= 12, "{newest} - {t}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_columns() {
    let people = events(&[("table", "person"), ("number-of-events", "100")], 1).await;
    assert_eq!(
        weir_engine::expr::column_list(&people[0].schema()),
        "id, name, email_address, credit_card, city, state, date_time, extra"
    );
    let declared = Arc::new(Schema::new(vec![
        Field::new("seller", DataType::Int64, false),
        Field::new("id", DataType::Int64, false),
    ]));
    let auctions = declared_source(
        "nexmark",
        &[("table", "auction"), ("number-of-events", "10")],
        Some(declared),
    )
    .await
    .expect("declared columns");
    assert_eq!(
        weir_engine::expr::column_list(&auctions.schema()),
        "seller, id"
    );
    let unbounded = source("nexmark", &[]).await.expect("a bid table");
    assert_eq!(unbounded.boundedness(), Boundedness::Unbounded);
    assert_eq!(unbounded.name(), "nexmark(bid, unbounded)");
}

/// The events of `kind` (a struct column of the combined stream) as a
/// table of that kind's columns.
fn unpacked(events: &[RecordBatch], kind: &str) -> Vec<RecordBatch> {
    events
        .iter()
        .map(|batch| {
            let column = batch.column_by_name(kind).expect("a kind's column");
            let present = arrow::compute::is_not_null(column).expect("a mask");
            let rows = filter_record_batch(batch, &present).expect("filters");
            let kind = rows.column_by_name(kind).expect("the column");
            RecordBatch::from(
                kind.as_any()
                    .downcast_ref::<StructArray>()
                    .expect("a struct"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_combined_stream_holds_the_events_of_every_table() {
    let base = BASE.to_string();
    let at = |table: &'static str, n: &'static str| {
        [
            ("table", table),
            ("number-of-events", n),
            ("base-time", base.as_str()),
        ]
    };
    let all = events(&at("events", "5000"), 1).await;
    assert_eq!(
        weir_engine::expr::column_list(&all[0].schema()),
        "event_type, person, auction, bid, date_time"
    );
    assert_eq!(
        sorted_rows(&events(&at("events", "5000"), 3).await),
        sorted_rows(&all)
    );
    // Nexmark's proportions: 1 person, 3 auctions and 46 bids in 50 events,
    // each the event of its own table with the same number.
    for (kind, event_type, n) in [
        ("person", 0, "100"),
        ("auction", 1, "300"),
        ("bid", 2, "4600"),
    ] {
        let own = events(&at(kind, n), 1).await;
        assert_eq!(
            sorted_rows(&unpacked(&all, kind)),
            sorted_rows(&own),
            "{kind}"
        );
        for batch in &all {
            let types = batch
                .column(0)
                .as_primitive::<arrow::datatypes::Int32Type>();
            let column = batch.column_by_name(kind).expect("a kind's column");
            for row in 0..batch.num_rows() {
                assert_eq!(
                    types.value(row) == event_type,
                    column.is_valid(row),
                    "{kind} at {row}"
                );
            }
        }
    }
    // The events' times, in order on one subtask.
    let times = times(&all);
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    assert!((BASE..BASE + 1000).contains(&times[times.len() - 1]));
}

#[tokio::test]
async fn bad_tables_say_what_is_wrong() {
    let cases: [(&[(&str, &str)], &str); 3] = [
        (
            &[("table", "bids")],
            "unknown Nexmark table 'bids' (valid: bid, auction, person, events)",
        ),
        (
            &[("number-of-events", "0")],
            "'number-of-events': '0' is not a number above 0",
        ),
        (
            &[("base-time", "yesterday")],
            "'yesterday' is not a time in milliseconds",
        ),
    ];
    for (pairs, expected) in cases {
        let e = source("nexmark", pairs)
            .await
            .expect_err("bad table")
            .to_string();
        assert!(e.contains(expected), "{e}");
    }
    let declared = Arc::new(Schema::new(vec![Field::new(
        "bid_price",
        DataType::Int64,
        false,
    )]));
    let e = declared_source("nexmark", &[], Some(declared))
        .await
        .expect_err("no such column")
        .to_string();
    assert!(
        e.contains("the Nexmark table has no column 'bid_price'"),
        "{e}"
    );
}
