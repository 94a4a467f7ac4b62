//! Streaming throughput runner: Nexmark-like queries over the `nexmark`
//! connector's bids, through weir's SQL front end in streaming mode (all
//! exchanges pipelined, tasks deployed at once, watermarks, window
//! operators), on the embedded mini-cluster, each into a `blackhole` sink.
//! The same queries as Flink runs in `bench/peers/streaming_flink.py`.
//!
//! ```text
//! cargo run --release -p weir-bench --bin streaming -- --events 10000000 --parallelism 2
//! ```
//!
//! Bids are 1/10,000 s apart in event time (Nexmark's default rate, and
//! the peer's), produced as fast as the job takes them; the watermark is
//! `date_time - 4 s`. Prints one JSON line per query, in the peer's format:
//!
//! ```text
//! {"engine": "weir", "query": ..., "events": N, "parallelism": P, "seconds": s,
//!  "events_per_second": N/s, "events_per_second_per_core": N/s/P, "job_seconds": ...}
//! ```
//!
//! `seconds` is the wall time from the SQL text to the job's end (planning,
//! deployment, the run, tear-down); `job_seconds` the job's own, from
//! deployment to its end.
//!
//! The query `checkpoint` measures checkpoints instead: a count per key of
//! `--keys` keys (Nexmark people's ids modulo `--keys`) in a one-day
//! tumbling window, so every key stays in state, checkpointed every
//! second into a local directory; it reports the last completed
//! checkpoint's duration, bytes and rows of state.

use std::time::{Duration, Instant};

use weir_bench::runner::{self, NEXMARK_QUERIES, or_exit, run_inserts};
use weir_scheduler::JobSummary;

/// The allocator of the `weir` binary, so that jobs here run as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// 2023-11-14 00:00:00 UTC: the first event's time, a midnight, so a
/// one-day window holds the whole run.
const BASE_TIME_MS: u64 = 1_699_920_000_000;

struct Args {
    events: u64,
    parallelism: usize,
    queries: Vec<String>,
    warmup_events: u64,
    keys: u64,
}

fn args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        events: 10_000_000,
        parallelism: 2,
        queries: NEXMARK_QUERIES
            .iter()
            .map(|(name, ..)| name.to_string())
            .chain(["checkpoint".to_string()])
            .collect(),
        warmup_events: 100_000,
        keys: 1_000_000,
    };
    let number = |flag: &str, value: Option<String>| {
        value
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("{flag} takes a whole number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--events" => parsed.events = number("--events", args.next())?.max(1),
            "--parallelism" => {
                parsed.parallelism = number("--parallelism", args.next())?.max(1) as usize;
            }
            "--warmup-events" => parsed.warmup_events = number("--warmup-events", args.next())?,
            "--keys" => parsed.keys = number("--keys", args.next())?.max(1),
            "--queries" => {
                parsed.queries = args
                    .next()
                    .ok_or("--queries takes a list such as q0,tumble")?
                    .split(',')
                    .map(|q| q.trim().to_string())
                    .filter(|q| !q.is_empty())
                    .collect();
            }
            "--bench" => {} // passed by `cargo bench`
            flag => return Err(format!("unknown argument {flag}")),
        }
    }
    let known = |q: &str| q == "checkpoint" || NEXMARK_QUERIES.iter().any(|(name, ..)| *name == q);
    if let Some(unknown) = parsed.queries.iter().find(|q| !known(q)) {
        return Err(format!(
            "unknown query '{unknown}' (known: {}, checkpoint)",
            NEXMARK_QUERIES.map(|(name, ..)| name).join(", ")
        ));
    }
    Ok(parsed)
}

/// The script of one query over `events` bids.
fn script(events: u64, parallelism: usize, sink_columns: &str, query: &str) -> String {
    format!(
        "SET 'execution.runtime-mode' = 'streaming';
         SET 'parallelism.default' = '{parallelism}';
         SET 'worker.slots' = '{parallelism}';
         CREATE TABLE bid (
           auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
           date_time TIMESTAMP(3), extra VARCHAR,
           WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
         ) WITH ('connector' = 'nexmark', 'table' = 'bid',
                 'number-of-events' = '{events}', 'base-time' = '{BASE_TIME_MS}');
         CREATE TABLE sink ({sink_columns}) WITH ('connector' = 'blackhole');
         INSERT INTO sink {query};"
    )
}

/// The script of the checkpoint case: `3 * keys` people counted per id
/// modulo `keys`, checkpointed every second into `dir`.
fn checkpoint_script(keys: u64, parallelism: usize, dir: &str) -> String {
    let events = 3 * keys;
    format!(
        "SET 'execution.runtime-mode' = 'streaming';
         SET 'parallelism.default' = '{parallelism}';
         SET 'worker.slots' = '{parallelism}';
         SET 'execution.checkpointing.interval' = '1 s';
         SET 'execution.checkpointing.dir' = '{dir}';
         CREATE TABLE person (id BIGINT, date_time TIMESTAMP(3),
           WATERMARK FOR date_time AS date_time - INTERVAL '4' SECOND
         ) WITH ('connector' = 'nexmark', 'table' = 'person',
                 'number-of-events' = '{events}', 'events-per-second' = '{rate}',
                 'base-time' = '{BASE_TIME_MS}');
         CREATE TABLE sink (k BIGINT, window_start TIMESTAMP(3), window_end TIMESTAMP(3),
                            people BIGINT) WITH ('connector' = 'blackhole');
         INSERT INTO sink
         SELECT MOD(id, {keys}) AS k, window_start, window_end, count(*) AS people
         FROM TABLE(TUMBLE(TABLE person, DESCRIPTOR(date_time), INTERVAL '1' DAY))
         GROUP BY MOD(id, {keys}), window_start, window_end;",
        // the run takes about 6 s: checkpoints after the first 2 s hold every key
        rate = events / 6,
    )
}

fn report(query: &str, events: u64, parallelism: usize, seconds: f64, job: Duration) {
    let per_second = events as f64 / seconds;
    let line = serde_json::json!({
        "engine": "weir",
        "query": query,
        "events": events,
        "parallelism": parallelism,
        "seconds": (seconds * 1e3).round() / 1e3,
        "events_per_second": per_second.round(),
        "events_per_second_per_core": (per_second / parallelism as f64).round(),
        "job_seconds": (job.as_secs_f64() * 1e3).round() / 1e3,
    });
    println!("{line}");
}

fn timed(runtime: &tokio::runtime::Runtime, text: &str) -> Result<(f64, JobSummary), String> {
    let start = Instant::now();
    let summary = runtime.block_on(run_inserts(text))?;
    Ok((start.elapsed().as_secs_f64(), summary))
}

fn checkpoint(runtime: &tokio::runtime::Runtime, args: &Args) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("weir-bench-checkpoints-{}", std::process::id()));
    let text = checkpoint_script(args.keys, args.parallelism, &dir.display().to_string());
    let result = timed(runtime, &text);
    std::fs::remove_dir_all(&dir).ok();
    let (seconds, summary) = result?;
    let stats = summary
        .checkpoints
        .filter(|c| c.last_checkpoint.is_some())
        .ok_or("the job completed no checkpoint")?;
    let line = serde_json::json!({
        "engine": "weir",
        "query": "checkpoint",
        "keys": args.keys,
        "events": 3 * args.keys,
        "parallelism": args.parallelism,
        "seconds": (seconds * 1e3).round() / 1e3,
        "checkpoints_completed": stats.completed,
        "checkpoints_failed": stats.failed,
        "last_checkpoint_ms": stats.last_duration_ms,
        "last_checkpoint_bytes": stats.last_bytes,
        "last_checkpoint_rows": stats.last_rows,
    });
    println!("{line}");
    Ok(())
}

fn main() {
    let args = or_exit(args());
    let runtime = runner::runtime(args.parallelism);
    let mut failed = false;
    if args.warmup_events > 0 {
        let (_, columns, query) = NEXMARK_QUERIES[0];
        let text = script(args.warmup_events, args.parallelism, columns, query);
        match timed(&runtime, &text) {
            Ok((seconds, summary)) => report(
                "warmup",
                args.warmup_events,
                args.parallelism,
                seconds,
                summary.wall_time,
            ),
            Err(e) => {
                eprintln!("warmup: {e}");
                failed = true;
            }
        }
    }
    for query in &args.queries {
        let result = match NEXMARK_QUERIES.iter().find(|(name, ..)| name == query) {
            Some((_, columns, sql)) => {
                let text = script(args.events, args.parallelism, columns, sql);
                timed(&runtime, &text).map(|(seconds, summary)| {
                    report(
                        query,
                        args.events,
                        args.parallelism,
                        seconds,
                        summary.wall_time,
                    );
                })
            }
            None => checkpoint(&runtime, &args),
        };
        if let Err(e) = result {
            eprintln!("{query}: {e}");
            failed = true;
        }
    }
    std::process::exit(i32::from(failed));
}
