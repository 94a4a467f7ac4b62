//! Event time in SQL: tables with a `WATERMARK FOR` clause, grouped by
//! Flink's window table functions (TUMBLE, HOP, CUMULATE, SESSION). The
//! same script over the same bounded input gives the same rows in batch
//! mode and in streaming mode (windows firing on watermarks), at any
//! parallelism; a small input gives the rows worked out by hand; windows
//! over earlier windows' rows hold what windows over the input hold.

#[path = "support/config.rs"]
mod config;
use std::fmt::Write as _;
use std::path::Path;

use arrow::array::RecordBatch;
use weir::sql::Session;
use weir_engine::testing::{Rng, sorted_rows};
use weir_scheduler::MiniCluster;

/// A CSV file of bids: `auction, price, date_time`, times mostly rising,
/// each up to a second out of order.
fn write_bids(path: &Path, rows: usize) {
    let mut rng = Rng::new(11);
    let mut text = String::from("auction,price,date_time\n");
    for i in 0..rows {
        let ms = 1_700_000_000_000i64 + i as i64 * 37 - rng.below(1000) as i64;
        let time = chrono_text(ms);
        writeln!(text, "{},{},{time}", rng.below(12), rng.below(500)).expect("writes");
    }
    std::fs::write(path, text).expect("writes the bids");
}

/// `ms` since the epoch as `YYYY-MM-DD HH:MM:SS.mmm` (UTC).
fn chrono_text(ms: i64) -> String {
    let array = arrow::array::TimestampMillisecondArray::from(vec![ms]);
    arrow::util::display::ArrayFormatter::try_new(&array, &Default::default())
        .expect("formats")
        .value(0)
        .to_string()
        .replace('T', " ")
}

fn declare(path: &Path) -> String {
    format!(
        "CREATE TABLE bid (
            auction BIGINT,
            price BIGINT,
            date_time TIMESTAMP(3),
            WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
        ) WITH ('connector' = 'csv', 'path' = '{}');",
        path.display()
    )
}

async fn run(script: &str, mode: &str, parallelism: usize) -> Result<Vec<RecordBatch>, String> {
    let config = config::in_memory(mode, parallelism);
    let mut session = Session::new(weir_formats::registry(), config.clone());
    let planned = session.execute(script).await.map_err(|e| e.to_string())?;
    let job = session
        .query_job("windows", &planned.queries[0])
        .map_err(|e| e.to_string())?;
    MiniCluster::new(config)
        .run(job.graph)
        .await
        .map_err(|e| e.to_string())?;
    Ok(job.output.batches())
}

const WINDOWS: [&str; 4] = [
    "TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND)",
    "HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '5' SECOND)",
    "CUMULATE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND)",
    "SESSION(TABLE bid PARTITION BY auction, DESCRIPTOR(date_time), INTERVAL '400' MILLISECOND)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_functions_give_the_same_rows_in_batch_and_streaming_mode() {
    let dir = tempfile::tempdir().expect("a directory");
    let bids = dir.path().join("bids.csv");
    write_bids(&bids, 3000);
    for window in WINDOWS {
        let script = format!(
            "{}
            SELECT auction, window_start, window_end, count(*) AS bids, sum(price) AS total,
                   max(date_time) AS last
            FROM TABLE({window})
            WHERE price > 10
            GROUP BY window_start, window_end, auction;",
            declare(&bids)
        );
        let batch = sorted_rows(&run(&script, "batch", 1).await.expect("runs in batch mode"));
        assert!(batch.len() > 10, "{window}: {batch:?}");
        for parallelism in [1, 3] {
            let streaming = run(&script, "streaming", parallelism)
                .await
                .expect("runs in streaming mode");
            assert_eq!(
                sorted_rows(&streaming),
                batch,
                "{window} at parallelism {parallelism}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_hold_the_rows_their_definitions_say() {
    let dir = tempfile::tempdir().expect("a directory");
    let bids = dir.path().join("bids.csv");
    std::fs::write(
        &bids,
        "auction,price,date_time
1,10,2024-01-01 00:00:01.000
1,20,2024-01-01 00:00:04.999
2,5,2024-01-01 00:00:05.000
1,1,2024-01-01 00:00:09.000
2,7,2024-01-01 00:00:05.300
",
    )
    .expect("writes");
    let query = |window: &str| {
        format!(
            "{}
            SELECT auction, window_start, window_end, sum(price) AS total
            FROM TABLE({window})
            GROUP BY auction, window_start, window_end;",
            declare(&bids)
        )
    };
    let at = |s: &str| format!("2024-01-01T00:00:{s}");
    let tumble = run(
        &query("TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '5' SECOND)"),
        "streaming",
        2,
    )
    .await
    .expect("runs");
    assert_eq!(
        sorted_rows(&tumble),
        vec![
            format!("1|{}|{}|30", at("00"), at("05")),
            format!("1|{}|{}|1", at("05"), at("10")),
            format!("2|{}|{}|12", at("05"), at("10")),
        ]
    );
    let session = run(
        &query("SESSION(TABLE bid, DESCRIPTOR(date_time), INTERVAL '4' SECOND)"),
        "streaming",
        1,
    )
    .await
    .expect("runs");
    assert_eq!(
        sorted_rows(&session),
        vec![
            // 1 s and 4.999 s are less than 4 s apart; 9 s is not.
            format!("1|{}|{}|30", at("01"), at("08.999")),
            format!("1|{}|{}|1", at("09"), at("13")),
            format!("2|{}|{}|12", at("05"), at("09.300")),
        ]
    );
}

/// Windows over the rows of earlier windows, by their `window_time`
/// (Flink's cascading window aggregation): 2-second counts per auction
/// summed into 10-second windows hold what 10-second windows over the
/// bids hold, in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascaded_windows_regroup_earlier_windows_in_both_modes() {
    let dir = tempfile::tempdir().expect("a directory");
    let bids = dir.path().join("bids.csv");
    write_bids(&bids, 3000);
    let cascaded = format!(
        "{}
        CREATE VIEW per_auction AS
        SELECT auction, window_start AS ws, window_time AS rowtime, count(*) AS n,
               max(price) AS top
        FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND))
        GROUP BY auction, window_start, window_end, window_time;
        SELECT window_start, window_end, sum(n) AS bids, max(top) AS top
        FROM TABLE(TUMBLE(TABLE per_auction, DESCRIPTOR(rowtime), INTERVAL '10' SECOND))
        GROUP BY window_start, window_end;",
        declare(&bids)
    );
    let direct = format!(
        "{}
        SELECT window_start, window_end, count(*) AS bids, max(price) AS top
        FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))
        GROUP BY window_start, window_end;",
        declare(&bids)
    );
    let expected = sorted_rows(&run(&direct, "batch", 1).await.expect("runs"));
    assert!(expected.len() > 5, "{expected:?}");
    assert_eq!(
        sorted_rows(
            &run(&cascaded, "batch", 2)
                .await
                .expect("runs in batch mode")
        ),
        expected
    );
    for parallelism in [1, 3] {
        let streaming = run(&cascaded, "streaming", parallelism)
            .await
            .expect("runs in streaming mode");
        assert_eq!(
            sorted_rows(&streaming),
            expected,
            "at parallelism {parallelism}"
        );
    }
}

#[tokio::test]
async fn streaming_sql_errors_say_what_to_do() {
    let dir = tempfile::tempdir().expect("a directory");
    let bids = dir.path().join("bids.csv");
    write_bids(&bids, 10);
    let cases = [
        (
            "SELECT auction, count(*) FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) GROUP BY auction",
            "must be grouped by both window_start and window_end",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(nope), INTERVAL '10' SECOND))",
            "the window's time column 'nope' is not a column of its input",
        ),
        (
            "SELECT * FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))",
            "HOP(TABLE t, DESCRIPTOR(ts), slide, size)",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '1' MONTH))",
            "is not a fixed interval",
        ),
        (
            "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND))",
            "other than grouped by window_start and window_end",
        ),
    ];
    for (query, expected) in cases {
        let script = format!("{}\n{query};", declare(&bids));
        let e = run(&script, "batch", 1).await.expect_err(query);
        assert!(e.contains(expected), "{query}: {e}");
    }
    let bad_watermark = format!(
        "CREATE TABLE t (ts TIMESTAMP(3), WATERMARK FOR ts AS ts + INTERVAL '1' SECOND)
         WITH ('connector' = 'csv', 'path' = '{}'); SELECT * FROM t;",
        bids.display()
    );
    let e = run(&bad_watermark, "batch", 1)
        .await
        .expect_err("bad watermark");
    assert!(
        e.contains("the watermark must be the time column less an interval"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nexmark_bids_per_auction_and_window_in_both_modes() {
    // Nexmark's bids, reversed in groups of 50 and 4 s out of order at
    // most; tumbling and sliding counts per auction.
    let table = "CREATE TABLE bid (
            auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3),
            WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
        ) WITH ('connector' = 'nexmark', 'number-of-events' = '30000',
                'base-time' = '1700000000000', 'out-of-order-group-size' = '50');";
    for window in [
        "TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '500' MILLISECOND)",
        "HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '100' MILLISECOND, INTERVAL '1' SECOND)",
    ] {
        let script = format!(
            "{table}
            SELECT auction, window_start, window_end, count(*) AS bids, max(price) AS top
            FROM TABLE({window})
            GROUP BY auction, window_start, window_end;"
        );
        let batch = sorted_rows(&run(&script, "batch", 1).await.expect("runs in batch mode"));
        let streaming = run(&script, "streaming", 2)
            .await
            .expect("runs in streaming mode");
        assert_eq!(sorted_rows(&streaming), batch, "{window}");
        let counted: usize = batch
            .iter()
            .map(|row| {
                row.split('|')
                    .nth(3)
                    .expect("bids")
                    .parse::<usize>()
                    .expect("a count")
            })
            .sum();
        let per_window = if window.starts_with("HOP") { 10 } else { 1 };
        assert_eq!(counted, 30_000 * per_window, "{window}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_combined_nexmark_stream_holds_the_bid_tables_bids() {
    // 50,000 events hold 46,000 bids: per auction and window, the bids of
    // the combined stream (streaming mode, watermarks on every event) are
    // those of the bid table (batch mode).
    let per_window = |from: &str, auction: &str, only_bids: &str| {
        format!(
            "SELECT {auction} AS auction, window_start, window_end, count(*) AS bids
             FROM TABLE(TUMBLE(TABLE {from}, DESCRIPTOR(date_time), INTERVAL '1' SECOND))
             {only_bids}
             GROUP BY {auction}, window_start, window_end;"
        )
    };
    let combined = format!(
        "CREATE TABLE events (
            event_type INT,
            bid STRUCT<auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR,
                       url VARCHAR, date_time TIMESTAMP(3), extra VARCHAR>,
            date_time TIMESTAMP(3),
            WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
        ) WITH ('connector' = 'nexmark', 'table' = 'events', 'number-of-events' = '50000',
                'base-time' = '1700000000000');
        {}",
        per_window("events", "bid.auction", "WHERE event_type = 2")
    );
    let bids = format!(
        "CREATE TABLE bid WITH ('connector' = 'nexmark', 'number-of-events' = '46000',
                               'base-time' = '1700000000000');
        {}",
        per_window("bid", "auction", "")
    );
    let streamed = run(&combined, "streaming", 2)
        .await
        .expect("runs in streaming mode");
    let expected = run(&bids, "batch", 1).await.expect("runs in batch mode");
    assert_eq!(sorted_rows(&streamed), sorted_rows(&expected));
    assert!(expected.iter().map(RecordBatch::num_rows).sum::<usize>() > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_joins_give_the_same_rows_in_both_modes() {
    // Nexmark q8: the people who opened an auction in the window they
    // joined in, as a window join of people and auctions.
    let tables = "CREATE TABLE person (
            id BIGINT, name VARCHAR, date_time TIMESTAMP(3),
            WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
        ) WITH ('connector' = 'nexmark', 'table' = 'person', 'number-of-events' = '3000',
                'base-time' = '1700000000000', 'events-per-second' = '2000000');
        CREATE TABLE auction (
            id BIGINT, seller BIGINT, date_time TIMESTAMP(3),
            WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
        ) WITH ('connector' = 'nexmark', 'table' = 'auction', 'number-of-events' = '9000',
                'base-time' = '1700000000000', 'events-per-second' = '2000000');";
    let query = |join: &str| {
        format!(
            "{tables}
            SELECT P.id, P.name, P.window_start, A.id AS auction,
                   CAST(A.window_time AS BIGINT) - CAST(P.window_start AS BIGINT) AS last
            FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(date_time), INTERVAL '10' MILLISECOND)) P
            {join} TABLE(TUMBLE(TABLE auction, DESCRIPTOR(date_time), INTERVAL '10' MILLISECOND)) A
            ON P.id = A.seller AND P.window_start = A.window_start AND P.window_end = A.window_end;"
        )
    };
    for join in ["JOIN", "LEFT JOIN", "FULL JOIN"] {
        let script = query(join);
        let batch = sorted_rows(&run(&script, "batch", 1).await.expect("runs in batch mode"));
        assert!(!batch.is_empty(), "{join}");
        // Either side's window_time is the window's last millisecond.
        assert!(batch.iter().all(|row| row.ends_with("|9")), "{batch:?}");
        let streaming = run(&script, "streaming", 2)
            .await
            .expect("runs in streaming mode");
        assert_eq!(sorted_rows(&streaming), batch, "{join}");
    }
    let e = run(
        &format!(
            "{tables}
            SELECT P.id FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(date_time), INTERVAL '10' MILLISECOND)) P
            JOIN TABLE(TUMBLE(TABLE auction, DESCRIPTOR(date_time), INTERVAL '20' MILLISECOND)) A
            ON P.id = A.seller AND P.window_start = A.window_start AND P.window_end = A.window_end;"
        ),
        "streaming",
        1,
    )
    .await
    .expect_err("windows differ");
    assert!(e.contains("the same windows on both sides"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_joins_give_the_same_rows_in_both_modes() {
    // Bids placed within 20 ms of their auction's opening: in batch mode a
    // hash join with the condition, in streaming mode an interval join.
    let script = |join: &str| {
        format!(
            "CREATE TABLE auction (
                id BIGINT, seller BIGINT, date_time TIMESTAMP(3),
                WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
            ) WITH ('connector' = 'nexmark', 'table' = 'auction', 'number-of-events' = '3000',
                    'base-time' = '1700000000000', 'events-per-second' = '1000000');
            CREATE TABLE bid (
                auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
                WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
            ) WITH ('connector' = 'nexmark', 'table' = 'bid', 'number-of-events' = '40000',
                    'base-time' = '1700000000000', 'events-per-second' = '1000000');
            SELECT A.id, A.seller, B.price, B.date_time
            FROM auction A {join} bid B
            ON A.id = B.auction
            AND B.date_time BETWEEN A.date_time AND A.date_time + INTERVAL '20' MILLISECOND
            AND B.price > 100;"
        )
    };
    for join in ["JOIN", "LEFT JOIN"] {
        let batch = sorted_rows(
            &run(&script(join), "batch", 1)
                .await
                .expect("runs in batch mode"),
        );
        assert!(
            batch.iter().any(|r| !r.ends_with("NULL")),
            "{join}: some bids match"
        );
        let streaming = run(&script(join), "streaming", 2)
            .await
            .expect("runs in streaming mode");
        assert_eq!(sorted_rows(&streaming), batch, "{join}");
    }
}
