//! What the throughput runners (`src/bin/`) share: how they start, how
//! they give up on bad arguments, the Nexmark-like queries and how a
//! script's inserts run.

use weir::sql::Session;
use weir_scheduler::{JobConfig, JobSummary, MiniCluster};

/// The CPU pool and a tokio runtime, both of `threads` threads.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    weir_exchange::cpu::init_pool(threads);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The value of `result`, or the end of the process with its error and
/// exit status 2 (bad arguments or options).
pub fn or_exit<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    })
}

/// The columns of the window queries' rows.
const WINDOW_COLUMNS: &str =
    "auction BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3), bids BIGINT";

/// Nexmark-like queries over a `bid` table: name -> (sink columns,
/// query), for a `sink` table of those columns.
pub const NEXMARK_QUERIES: [(&str, &str, &str); 6] = [
    (
        "q0",
        "auction BIGINT, bidder BIGINT, price BIGINT, date_time TIMESTAMP(3), extra VARCHAR",
        "SELECT auction, bidder, price, date_time, extra FROM bid",
    ),
    (
        "q1",
        "auction BIGINT, bidder BIGINT, price DECIMAL(23, 3), date_time TIMESTAMP(3), extra VARCHAR",
        "SELECT auction, bidder, 0.908 * price AS price, date_time, extra FROM bid",
    ),
    (
        "q2",
        "auction BIGINT, price BIGINT",
        "SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0",
    ),
    (
        "tumble",
        WINDOW_COLUMNS,
        "SELECT auction, window_start, window_end, count(*) AS bids \
         FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '10' SECOND)) \
         GROUP BY auction, window_start, window_end",
    ),
    (
        "hop_2s",
        WINDOW_COLUMNS,
        "SELECT auction, window_start, window_end, count(*) AS bids \
         FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND, INTERVAL '10' SECOND)) \
         GROUP BY auction, window_start, window_end",
    ),
    (
        "hop_100ms",
        WINDOW_COLUMNS,
        "SELECT auction, window_start, window_end, count(*) AS bids \
         FROM TABLE(HOP(TABLE bid, DESCRIPTOR(date_time), INTERVAL '0.1' SECOND, INTERVAL '10' SECOND)) \
         GROUP BY auction, window_start, window_end",
    ),
];

/// Runs the inserts of script `text` to their end, on the embedded
/// mini-cluster with the script's settings.
///
/// # Errors
/// The script's or the job's error, as text.
pub async fn run_inserts(text: &str) -> Result<JobSummary, String> {
    let mut session = Session::new(weir_formats::registry(), JobConfig::default());
    let script = session.execute(text).await.map_err(|e| e.to_string())?;
    let graph = session
        .insert_job(&script)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the script inserts nothing")?;
    MiniCluster::new(session.config().clone())
        .run(graph)
        .await
        .map_err(|e| e.to_string())
}
