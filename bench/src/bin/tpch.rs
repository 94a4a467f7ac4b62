//! TPC-H throughput runner: times each of the 22 queries (`data/tpch/queries`)
//! through weir's SQL front end on the embedded mini-cluster, end to end
//! (planning, which reads the Parquet footers, then the job), and prints
//! one JSON line per query with every run's milliseconds and the median.
//!
//! ```text
//! cargo run --release -p weir-bench --bin tpch -- target/tpch/sf1 --threads 2 --runs 3
//! ```
//!
//! `--threads N` sizes the CPU pool, the parallelism and the slots, as the
//! peers get N threads in `bench/peers/tpch.py`; `--queries 1,6,14` picks
//! queries; `-D key=value` sets a configuration option (as `weir run -D`),
//! e.g. `-D execution.batch-shuffle-mode=all-pipelined`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use weir::sql::Session;
use weir_bench::runner::{self, or_exit};
use weir_engine::registry::ConnectorOptions;
use weir_scheduler::{JobConfig, MiniCluster};

/// The allocator of the `weir` binary, so that jobs here run as they do there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TABLES: [&str; 8] = [
    "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
];

struct Args {
    data: PathBuf,
    threads: usize,
    runs: usize,
    queries: Vec<usize>,
    options: Vec<(String, String)>,
}

fn args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let mut parsed = Args {
        data: PathBuf::from("target/tpch/sf1"),
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        runs: 3,
        queries: (1..=22).collect(),
        options: Vec::new(),
    };
    let number = |flag: &str, value: Option<String>| {
        value
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{flag} takes a number above 0"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--threads" => parsed.threads = number("--threads", args.next())?,
            "--runs" => parsed.runs = number("--runs", args.next())?,
            "-D" => {
                let option = args.next().unwrap_or_default();
                let (key, value) = option
                    .split_once('=')
                    .ok_or_else(|| format!("-D takes key=value, not '{option}'"))?;
                parsed.options.push((key.to_string(), value.to_string()));
            }
            "--queries" => {
                parsed.queries = args
                    .next()
                    .ok_or("--queries takes a list such as 1,6,14")?
                    .split(',')
                    .map(|q| q.trim().trim_start_matches('q').parse::<usize>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--queries: {e}"))?;
            }
            "--bench" => {} // passed by `cargo bench`
            flag if flag.starts_with('-') => return Err(format!("unknown flag {flag}")),
            path => parsed.data = PathBuf::from(path),
        }
    }
    Ok(parsed)
}

fn config(threads: usize, options: &[(String, String)]) -> Result<JobConfig, String> {
    let mut config = JobConfig::default();
    let threads = threads.to_string();
    let sized = [
        ("parallelism.default", &threads),
        ("worker.slots", &threads),
    ];
    for (key, value) in sized
        .into_iter()
        .chain(options.iter().map(|(k, v)| (k.as_str(), v)))
    {
        config.set(key, value).map_err(|e| e.to_string())?;
    }
    Ok(config)
}

async fn run_query(data: &Path, text: &str, config: &JobConfig) -> Result<usize, String> {
    let mut session = Session::new(weir_formats::registry(), config.clone());
    for table in TABLES {
        let path = data.join(format!("{table}.parquet"));
        let options = ConnectorOptions::from([("path".to_string(), path.display().to_string())]);
        session
            .register_table(table, "parquet", options)
            .map_err(|e| e.to_string())?;
    }
    let script = session.execute(text).await.map_err(|e| e.to_string())?;
    let query = script.queries.first().ok_or("no query")?;
    let job = session
        .query_job("tpch", query)
        .map_err(|e| e.to_string())?;
    MiniCluster::new(config.clone())
        .run(job.graph)
        .await
        .map_err(|e| e.to_string())?;
    Ok(job.output.num_rows())
}

fn main() {
    let args = or_exit(args());
    let runtime = runner::runtime(args.threads);
    let queries = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tpch/queries");
    let config = or_exit(config(args.threads, &args.options));
    for q in &args.queries {
        let path = queries.join(format!("q{q:02}.sql"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut millis = Vec::with_capacity(args.runs);
        let mut rows = 0;
        let mut error = None;
        for _ in 0..args.runs {
            let start = Instant::now();
            match runtime.block_on(run_query(&args.data, &text, &config)) {
                Ok(n) => rows = n,
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
            millis.push(start.elapsed().as_secs_f64() * 1e3);
        }
        let line = match error {
            Some(e) => serde_json::json!({ "query": format!("q{q:02}"), "error": e }),
            None => {
                let mut sorted = millis.clone();
                sorted.sort_by(f64::total_cmp);
                serde_json::json!({
                    "query": format!("q{q:02}"),
                    "rows": rows,
                    "ms": millis,
                    "median_ms": sorted[sorted.len() / 2],
                })
            }
        };
        println!("{line}");
    }
}
