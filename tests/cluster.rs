//! The cluster with real processes on loopback: a `weir coordinator` and
//! `weir worker`s. Workers register their slots and send heartbeats; a
//! worker killed with SIGKILL is declared lost after the heartbeat
//! timeout; a coordinator killed and started again gets its surviving
//! workers back; a coordinator does not listen beyond loopback. Jobs
//! submitted with `weir run --coordinator` run on the workers and write
//! exactly what the embedded mode writes, also when a worker is killed
//! while they run.

#[path = "support/cli.rs"]
mod cli;
#[path = "../formats/tests/support/mod.rs"]
mod formats_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cli::{output, text, weir};

/// A child process killed when dropped (SIGKILL), whatever the test does.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a coordinator on `bind` with a 100 ms heartbeat and a 1 s
/// timeout: the process and its URL.
fn coordinator(tmp: &Path, bind: &str) -> (Process, String) {
    coordinator_of(weir(tmp), bind, &[])
}

/// Starts `command` as a coordinator on `bind` with `extra` arguments, as
/// [`coordinator`] does.
fn coordinator_of(mut command: Command, bind: &str, extra: &[&str]) -> (Process, String) {
    command
        .args(["coordinator", "--bind", bind])
        .args(extra)
        .args(["--heartbeat-interval", "100ms", "--heartbeat-timeout", "1s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = Process(command.spawn().expect("starts"));
    let stdout = child.0.stdout.take().expect("piped");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("reads");
    let url = line
        .trim()
        .strip_prefix("coordinator listening on ")
        .unwrap_or_else(|| panic!("not where it listens: {line:?}"))
        .to_string();
    (child, url)
}

fn worker(tmp: &Path, url: &str, slots: u32) -> Process {
    logged_worker(tmp, url, slots, None)
}

/// A worker whose log (at level info) goes to file `log`, when given.
fn logged_worker(tmp: &Path, url: &str, slots: u32, log: Option<&Path>) -> Process {
    let mut command: Command = weir(tmp);
    command
        .args([
            "worker",
            "--coordinator",
            url,
            "--slots",
            &slots.to_string(),
        ])
        .stdout(Stdio::null());
    match log {
        Some(log) => command
            .env("WEIR_LOG", "info")
            .stderr(std::fs::File::create(log).expect("creates the log")),
        None => command.stderr(Stdio::null()),
    };
    Process(command.spawn().expect("starts"))
}

/// The coordinator's workers: (state, slots) by line.
fn workers(tmp: &Path, url: &str) -> Vec<(String, String)> {
    let listed = output({
        let mut c = weir(tmp);
        c.args(["workers", "--coordinator", url]);
        c
    });
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    text(&listed.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            (fields[1].to_string(), fields[2].to_string())
        })
        .collect()
}

/// Waits (10 s at most) until the coordinator lists `expected`.
fn await_workers(tmp: &Path, url: &str, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(state, slots)| (state.to_string(), slots.to_string()))
        .collect();
    let started = Instant::now();
    loop {
        let now = workers(tmp, url);
        if now == expected {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "workers {now:?}, not {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn workers_register_are_lost_when_killed_and_come_back_to_a_new_coordinator() {
    let tmp = tempfile::tempdir().expect("a directory");
    let (first, url) = coordinator(tmp.path(), "127.0.0.1:0");
    let doomed = worker(tmp.path(), &url, 2);
    await_workers(tmp.path(), &url, &[("alive", "2 slot(s)")]);
    let _survivor = worker(tmp.path(), &url, 3);
    await_workers(
        tmp.path(),
        &url,
        &[("alive", "2 slot(s)"), ("alive", "3 slot(s)")],
    );
    // A worker killed: lost after the heartbeat timeout (1 s).
    let killed = Instant::now();
    drop(doomed);
    await_workers(
        tmp.path(),
        &url,
        &[("lost", "2 slot(s)"), ("alive", "3 slot(s)")],
    );
    let detected = killed.elapsed();
    assert!(
        detected >= Duration::from_millis(900) && detected < Duration::from_secs(5),
        "lost after {detected:?}"
    );
    // The coordinator killed and started again on its port: the surviving
    // worker registers with it again.
    drop(first);
    let bind = url.strip_prefix("http://").expect("an http URL");
    let (_second, again) = coordinator(tmp.path(), bind);
    assert_eq!(again, url);
    await_workers(tmp.path(), &url, &[("alive", "3 slot(s)")]);
}

#[test]
fn a_coordinator_listens_on_loopback_only_and_urls_are_checked() {
    let tmp = tempfile::tempdir().expect("a directory");
    let refused = output({
        let mut c = weir(tmp.path());
        c.args(["coordinator", "--bind", "0.0.0.0:0"]);
        c
    });
    assert!(!refused.status.success());
    let e = text(&refused.stderr);
    assert!(e.contains("beyond loopback") && e.contains("token"), "{e}");
    let refused = output({
        let mut c = weir(tmp.path());
        c.args(["worker", "--coordinator", "127.0.0.1:6123"]);
        c
    });
    assert!(!refused.status.success());
    let e = text(&refused.stderr);
    assert!(e.contains("http://HOST:PORT"), "{e}");
}

/// A coordinator and three workers of two slots each, the workers' logs
/// in `tmp`.
struct Cluster {
    url: String,
    _coordinator: Process,
    workers: Vec<Process>,
    logs: Vec<PathBuf>,
}

fn cluster(tmp: &Path) -> Cluster {
    let (coordinator, url) = coordinator(tmp, "127.0.0.1:0");
    let logs: Vec<PathBuf> = (1..=3)
        .map(|i| tmp.join(format!("worker-{i}.log")))
        .collect();
    let workers = logs
        .iter()
        .map(|log| logged_worker(tmp, &url, 2, Some(log)))
        .collect();
    await_workers(
        tmp,
        &url,
        &[
            ("alive", "2 slot(s)"),
            ("alive", "2 slot(s)"),
            ("alive", "2 slot(s)"),
        ],
    );
    Cluster {
        url,
        _coordinator: coordinator,
        workers,
        logs,
    }
}

/// A script of `body` written to `tmp/name`.
fn script(tmp: &Path, name: &str, body: &str) -> PathBuf {
    let path = tmp.join(name);
    std::fs::write(&path, body).expect("writes the script");
    path
}

/// Runs `script` to its end, on `coordinator` when given (else embedded):
/// its standard error.
fn run(tmp: &Path, script: &Path, coordinator: Option<&str>) -> String {
    let mut command = weir(tmp);
    command.args(["run", script.to_str().expect("utf-8"), "--progress", "none"]);
    if let Some(url) = coordinator {
        command.args(["--coordinator", url]);
    }
    let run = output(command);
    let stderr = text(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    stderr
}

/// Starts `weir run script --coordinator url`, its standard error piped.
fn submit(tmp: &Path, script: &Path, url: &str) -> Child {
    weir(tmp)
        .args(["run", script.to_str().expect("utf-8"), "--progress", "none"])
        .args(["--coordinator", url])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts")
}

/// The rows of the Parquet files under `dir`, sorted, as CSV.
fn rows_of(tmp: &Path, dir: &Path, order_by: &str) -> String {
    let read = output({
        let mut c = weir(tmp);
        c.args([
            "sql",
            &format!("SELECT * FROM t ORDER BY {order_by}"),
            "--table",
            &format!("t=parquet:{}", dir.display()),
            "--format",
            "csv",
        ]);
        c
    });
    assert!(read.status.success(), "{}", text(&read.stderr));
    text(&read.stdout)
}

/// The TPC-H sample table `name`.
fn tpch(name: &str) -> String {
    format!(
        "{}/data/tpch/sf0.01/{name}.parquet",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A batch job of many regions (three joins and an aggregation over the
/// TPC-H sample, all exchanges blocking) writing Parquet to `out`.
fn revenue_script(tmp: &Path, out: &Path) -> PathBuf {
    let body = format!(
        "CREATE TABLE lineitem WITH ('connector' = 'parquet', 'path' = '{}');
         CREATE TABLE orders WITH ('connector' = 'parquet', 'path' = '{}');
         CREATE TABLE customer WITH ('connector' = 'parquet', 'path' = '{}');
         CREATE TABLE nation WITH ('connector' = 'parquet', 'path' = '{}');
         CREATE TABLE revenue (nation VARCHAR, year INT, revenue DECIMAL(38, 4), orders BIGINT)
           WITH ('connector' = 'parquet', 'path' = '{}');
         INSERT INTO revenue
         SELECT n_name, extract(year FROM o_orderdate), sum(l_extendedprice * (1 - l_discount)),
                count(DISTINCT o_orderkey)
         FROM lineitem JOIN orders ON l_orderkey = o_orderkey
           JOIN customer ON o_custkey = c_custkey JOIN nation ON c_nationkey = n_nationkey
         GROUP BY n_name, extract(year FROM o_orderdate);",
        tpch("lineitem"),
        tpch("orders"),
        tpch("customer"),
        tpch("nation"),
        out.display()
    );
    script(
        tmp,
        &format!("revenue-{}.sql", out.display().to_string().len()),
        &body,
    )
}

#[test]
fn batch_jobs_on_three_workers_write_what_the_embedded_mode_writes() {
    let tmp = tempfile::tempdir().expect("a directory");
    let cluster = cluster(tmp.path());
    let embedded = tmp.path().join("embedded");
    let clustered = tmp.path().join("clustered-output");
    run(tmp.path(), &revenue_script(tmp.path(), &embedded), None);
    let summary = run(
        tmp.path(),
        &revenue_script(tmp.path(), &clustered),
        Some(&cluster.url),
    );
    assert!(summary.contains("finished"), "{summary}");
    let expected = rows_of(tmp.path(), &embedded, "nation, year");
    assert!(expected.lines().count() > 100, "{expected}");
    assert_eq!(rows_of(tmp.path(), &clustered, "nation, year"), expected);
    // The job's attempts ran on more than one worker.
    let ran: Vec<&PathBuf> = cluster
        .logs
        .iter()
        .filter(|log| {
            std::fs::read_to_string(log)
                .expect("reads the log")
                .contains("attempt(s) of job")
        })
        .collect();
    assert!(ran.len() >= 2, "attempts ran on {ran:?} only");
    // The coordinator lists the job as finished.
    let listed = output({
        let mut c = weir(tmp.path());
        c.args(["list", "--coordinator", &cluster.url]);
        c
    });
    let listed = text(&listed.stdout);
    assert!(listed.contains("finished\t"), "{listed}");
    assert!(listed.contains("insert into revenue"), "{listed}");
}

/// A batch job in three stages of six regions each, long enough to kill a
/// worker in any: the ids 0..ROWS generated and written whole to a
/// blocking shuffle (a distinct count: nothing shrinks them), their
/// distinct ids per bucket, then the sums per bucket written to `out`.
/// `settings` go first (`SET` statements).
fn stages_script(tmp: &Path, out: &Path, settings: &str) -> PathBuf {
    const ROWS: u64 = 2_000_000;
    let body = format!(
        "{settings}
         CREATE TABLE numbers (id BIGINT) WITH (
           'connector' = 'datagen', 'number-of-rows' = '{ROWS}',
           'fields.id.kind' = 'sequence', 'fields.id.start' = '0', 'fields.id.end' = '{}');
         CREATE TABLE sums (bucket BIGINT, total BIGINT, n BIGINT)
           WITH ('connector' = 'parquet', 'path' = '{}');
         INSERT INTO sums
         SELECT id % 1000, sum(id), count(DISTINCT id) FROM numbers GROUP BY id % 1000;",
        ROWS - 1,
        out.display()
    );
    let name = out.file_name().expect("a name").to_string_lossy();
    script(tmp, &format!("{name}.sql"), &body)
}

/// A small seeded generator (SplitMix64), so that a failing trial can be
/// run again as it was.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// How many deployments the workers of `cluster` logged so far.
fn deployments(cluster: &Cluster) -> usize {
    cluster
        .logs
        .iter()
        .map(|log| {
            std::fs::read_to_string(log)
                .unwrap_or_default()
                .matches("attempt(s) of job")
                .count()
        })
        .sum()
}

/// The vertices whose subtasks ran more than once, as the summary lists
/// them (`v0`: the generating stage, `v1` the distinct ids, `v2` the sums).
fn rerun_vertices(summary: &str) -> Vec<String> {
    summary
        .lines()
        .find_map(|line| line.trim().strip_prefix("subtasks rerun: "))
        .map(|list| {
            list.split(", ")
                .filter_map(|v| v.split(' ').next())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Kills a worker (SIGKILL) during the stages job at seeded instants, on
/// fresh clusters whose shuffle root `settings` name: each trial picks a
/// stage (in turn), a deployment of it and a delay after it, and a
/// worker. Every run must write the embedded output; returns the vertices
/// each trial reran. `WEIR_KILL_TRIALS` and `WEIR_KILL_SEED` run more or
/// other trials.
fn kill_trials(tmp: &Path, settings: &str, label: &str) -> Vec<Vec<String>> {
    let trials: usize = std::env::var("WEIR_KILL_TRIALS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("WEIR_KILL_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(17);
    let embedded = tmp.join(format!("embedded-{label}"));
    run(tmp, &stages_script(tmp, &embedded, ""), None);
    let expected = rows_of(tmp, &embedded, "bucket");
    assert_eq!(expected.lines().count(), 1001, "a header and 1000 sums");
    let mut random = Seeded(seed);
    (0..trials)
        .map(|trial| {
            let stage = trial % 3;
            let after = 6 * stage + 1 + random.below(6) as usize;
            let delay = Duration::from_millis(random.below(300));
            let victim = random.below(3) as usize;
            let context = format!(
                "{label} trial {trial} (seed {seed}): worker {victim} killed {delay:?} after \
                 deployment {after}"
            );
            let mut cluster = cluster(tmp);
            let out = tmp.join(format!("{label}-{trial}"));
            let job = submit(tmp, &stages_script(tmp, &out, settings), &cluster.url);
            let waiting = Instant::now();
            while deployments(&cluster) < after && waiting.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(delay);
            // SIGKILL, as a machine that goes away.
            drop(cluster.workers.remove(victim));
            let ended = job.wait_with_output().expect("the client ends");
            let summary = text(&ended.stderr);
            assert!(ended.status.success(), "{context}: {summary}");
            assert_eq!(rows_of(tmp, &out, "bucket"), expected, "{context}");
            let rerun = rerun_vertices(&summary);
            eprintln!("{context}: rerun {rerun:?}");
            rerun
        })
        .collect()
}

#[test]
fn a_worker_killed_during_a_batch_job_reruns_the_producers_of_what_it_held() {
    let tmp = tempfile::tempdir().expect("a directory");
    let reruns = kill_trials(tmp.path(), "", "local");
    for rerun in &reruns {
        // The partitions of the lost worker's producers are gone with it:
        // a stage that ran again read them, so they ran again too.
        let has = |v: &str| rerun.iter().any(|r| r == v);
        assert!(!has("v2") || has("v1"), "{reruns:?}");
        assert!(!has("v1") || has("v0"), "{reruns:?}");
    }
    assert!(
        reruns.iter().any(|r| r.iter().any(|v| v != "v0")),
        "no trial lost partitions a later stage needed: {reruns:?}"
    );
}

#[test]
fn a_worker_killed_during_a_batch_job_on_an_s3_shuffle_root_reruns_only_its_own() {
    let tmp = tempfile::tempdir().expect("a directory");
    let s3 = formats_support::MotoServer::start();
    s3.create_bucket("shuffle");
    let mut settings = String::from("SET 'shuffle.root' = 's3://shuffle/jobs';");
    for (key, value) in s3.options() {
        settings.push_str(&format!("\nSET '{key}' = '{value}';"));
    }
    let reruns = kill_trials(tmp.path(), &settings, "s3");
    for rerun in &reruns {
        // What finished stays in the object store: only the attempts the
        // lost worker ran run again, never the stage before.
        assert!(rerun.len() <= 1, "{reruns:?}");
    }
    assert!(
        reruns.iter().any(|r| r.iter().any(|v| v != "v0")),
        "no trial killed a worker after the first stage: {reruns:?}"
    );
    assert!(
        s3.list("shuffle", "jobs/").is_empty(),
        "the jobs' partitions are removed when they end"
    );
}

/// The 22 TPC-H queries at scale factor 0.01, with blocking exchanges
/// (each region on one worker, partitions through the shuffle root) and
/// pipelined ones (the whole query one region spread over the workers).
#[test]
fn the_tpch_queries_on_three_workers_give_the_embedded_answers() {
    let tmp = tempfile::tempdir().expect("a directory");
    let cluster = cluster(tmp.path());
    let tables: Vec<String> = [
        "customer", "lineitem", "nation", "orders", "part", "partsupp", "region", "supplier",
    ]
    .iter()
    .flat_map(|t| ["--table".to_string(), format!("{t}=parquet:{}", tpch(t))])
    .collect();
    for q in 1..=22 {
        let query = format!(
            "{}/data/tpch/queries/q{q:02}.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        let rows = |coordinator: Option<&str>, mode: &str| {
            let mut command = weir(tmp.path());
            command
                .args(["sql", "-f", &query, "--format", "csv", "-p", "4"])
                .args(["-D", &format!("execution.batch-shuffle-mode={mode}")])
                .args(&tables);
            if let Some(url) = coordinator {
                command.args(["--coordinator", url]);
            }
            let ran = output(command);
            assert!(ran.status.success(), "q{q:02}: {}", text(&ran.stderr));
            text(&ran.stdout)
        };
        let embedded = rows(None, "all-blocking");
        assert!(embedded.lines().count() > 1, "q{q:02}: {embedded}");
        assert_eq!(
            rows(Some(&cluster.url), "all-blocking"),
            embedded,
            "q{q:02}"
        );
        // One pipelined region over the workers: its channels between
        // them cross over Flight.
        assert_eq!(
            rows(Some(&cluster.url), "all-pipelined"),
            embedded,
            "q{q:02} pipelined"
        );
    }
}

#[test]
fn a_worker_killed_during_a_streaming_job_resumes_from_its_checkpoint_exactly_once() {
    const ROWS: u64 = 30_000;
    let tmp = tempfile::tempdir().expect("a directory");
    let mut cluster = cluster(tmp.path());
    let (checkpoints, out) = (tmp.path().join("checkpoints"), tmp.path().join("out"));
    let script = streaming_ids(tmp.path(), &checkpoints, &out, ROWS);
    let job = submit(tmp.path(), &script, &cluster.url);
    // Once a checkpoint completed, SIGKILL a worker that runs the job
    // (each of its two pipelines takes a slot).
    await_checkpoint(&checkpoints, 2);
    // The files its workers stage belong to the coordinator, which lives as
    // long as the job: a worker's loss leaves them nobody takes for
    // abandoned.
    let staging = std::fs::read_dir(out.join("_weir_staging"))
        .expect("the job stages files")
        .next()
        .expect("the job's staging directory")
        .expect("listed")
        .path();
    let owner = std::fs::read_to_string(staging.join("_owner")).expect("an owner");
    let pid = cluster._coordinator.0.id();
    assert!(owner.contains(&format!("\"pid\":{pid},")), "{owner}");
    let running = cluster
        .logs
        .iter()
        .position(|log| {
            std::fs::read_to_string(log)
                .expect("reads the log")
                .contains("attempt(s) of job")
        })
        .expect("a worker runs the job");
    drop(cluster.workers.remove(running));
    let ended = job.wait_with_output().expect("the client ends");
    let summary = text(&ended.stderr);
    assert!(ended.status.success(), "{summary}");
    assert!(!summary.contains(" 0 restart(s)"), "{summary}");
    assert_every_id_once(tmp.path(), &out, ROWS);
}

/// Waits (30 s at most) until checkpoint `n` or a later one completed
/// under `checkpoints` (`0`: any checkpoint).
fn await_checkpoint(checkpoints: &Path, n: u64) {
    let started = Instant::now();
    while cli::latest_checkpoint(checkpoints).is_none_or(|(latest, _)| latest < n) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no checkpoint {n}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A streaming job of `rows` ids at a quarter of them a second into
/// Parquet under `out`, checkpointing every 150 ms into `checkpoints`, at
/// parallelism 2 (each subtask takes a slot).
fn streaming_ids(tmp: &Path, checkpoints: &Path, out: &Path, rows: u64) -> PathBuf {
    streaming_ids_at(tmp, checkpoints, out, rows, 2)
}

/// [`streaming_ids`] at parallelism `parallelism`.
fn streaming_ids_at(
    tmp: &Path,
    checkpoints: &Path,
    out: &Path,
    rows: u64,
    parallelism: u32,
) -> PathBuf {
    script(
        tmp,
        "streaming.sql",
        &format!(
            "{}
             SET 'parallelism.default' = '{parallelism}';
             CREATE TABLE numbers (id BIGINT) WITH (
               'connector' = 'datagen', 'number-of-rows' = '{rows}',
               'rows-per-second' = '{}', 'fields.id.kind' = 'sequence',
               'fields.id.start' = '0', 'fields.id.end' = '{}');
             CREATE TABLE out WITH ('connector' = 'parquet', 'path' = '{}');
             INSERT INTO out SELECT id FROM numbers;",
            cli::streaming_settings(checkpoints, "150 ms"),
            rows / 4,
            rows - 1,
            out.display()
        ),
    )
}

#[test]
fn a_streaming_job_short_of_slots_after_a_worker_loss_waits_for_one_and_says_so() {
    const ROWS: u64 = 30_000;
    let tmp = tempfile::tempdir().expect("a directory");
    let mut cluster = cluster(tmp.path());
    let (checkpoints, out) = (tmp.path().join("checkpoints"), tmp.path().join("out"));
    // Six subtasks: every slot of the three workers.
    let script = streaming_ids_at(tmp.path(), &checkpoints, &out, ROWS, 6);
    let job = verb(
        tmp.path(),
        &["run", script.to_str().expect("utf-8"), "--detached"],
        &cluster.url,
    );
    let job = job.trim();
    await_checkpoint(&checkpoints, 2);
    drop(cluster.workers.remove(1));
    let killed = Instant::now();
    // Four slots are left: two of its six pipelines wait for slots, and
    // its status says so.
    let waiting = loop {
        let status = job_status(tmp.path(), job, &cluster.url);
        if status.contains("waiting") {
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "never waits: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(waiting.contains("\trunning\t"), "{waiting}");
    assert!(
        waiting.contains("for 2 slot(s) for 2 region(s)"),
        "{waiting}"
    );
    assert!(
        waiting.contains("2 alive worker(s) have 0 free"),
        "{waiting}"
    );
    // A worker comes: the job resumes from its checkpoint and ends with
    // every id once.
    cluster.workers.push(worker(tmp.path(), &cluster.url, 2));
    let finished = await_state(tmp.path(), job, &cluster.url, "finished");
    assert!(!finished.contains("waiting"), "{finished}");
    assert_every_id_once(tmp.path(), &out, ROWS);
}

/// Asserts that the Parquet files under `out` hold ids 0..rows once each.
fn assert_every_id_once(tmp: &Path, out: &Path, rows: u64) {
    let read = output({
        let mut c = weir(tmp);
        c.args([
            "sql",
            "SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM t",
            "--table",
            &format!("t=parquet:{}", out.display()),
            "--format",
            "csv",
        ]);
        c
    });
    assert_eq!(
        text(&read.stdout),
        format!("n,d,lo,hi\n{rows},{rows},0,{}\n", rows - 1),
        "every row exactly once: {}",
        text(&read.stderr)
    );
}

/// Runs `weir args... --coordinator url` to its end: its standard output.
fn verb(tmp: &Path, args: &[&str], url: &str) -> String {
    let ran = output({
        let mut c = weir(tmp);
        c.args(args).args(["--coordinator", url]);
        c
    });
    assert!(ran.status.success(), "{args:?}: {}", text(&ran.stderr));
    text(&ran.stdout)
}

#[test]
fn a_streaming_job_on_workers_takes_savepoints_stops_and_resumes_exactly_once() {
    const ROWS: u64 = 20_000;
    let tmp = tempfile::tempdir().expect("a directory");
    let cluster = cluster(tmp.path());
    let (checkpoints, out) = (tmp.path().join("checkpoints"), tmp.path().join("out"));
    let script = streaming_ids(tmp.path(), &checkpoints, &out, ROWS);
    let path = script.to_str().expect("utf-8");
    let job = verb(tmp.path(), &["run", path, "--detached"], &cluster.url);
    let job = job.trim();
    assert!(job.starts_with("job-"), "{job}");
    await_checkpoint(&checkpoints, 0);
    let savepoint = tmp.path().join("savepoint");
    let taken = verb(
        tmp.path(),
        &["savepoint", job, savepoint.to_str().expect("utf-8")],
        &cluster.url,
    );
    assert!(taken.trim().ends_with("savepoint"), "{taken}");
    assert!(savepoint.join("_metadata").exists());
    let status = verb(tmp.path(), &["status", job], &cluster.url);
    assert!(status.contains("\trunning\t"), "{status}");
    // Stopped with a final savepoint, then resumed from it to the end.
    let last = tmp.path().join("last");
    let stopped = verb(
        tmp.path(),
        &["stop", job, "--savepoint", last.to_str().expect("utf-8")],
        &cluster.url,
    );
    assert!(
        stopped.starts_with("stopped with a savepoint at "),
        "{stopped}"
    );
    let status = verb(tmp.path(), &["status", job], &cluster.url);
    assert!(status.contains("\tfinished\t"), "{status}");
    let from = last.to_str().expect("utf-8");
    verb(
        tmp.path(),
        &["run", path, "--from-savepoint", from],
        &cluster.url,
    );
    assert_every_id_once(tmp.path(), &out, ROWS);
}

#[test]
fn beyond_loopback_a_cluster_takes_calls_with_its_token_only() {
    let tmp = tempfile::tempdir().expect("a directory");
    let secret = tmp.path().join("token");
    std::fs::write(&secret, "a-cluster-secret-of-some-length\n").expect("writes");
    let with_token = |command: &mut Command| {
        command.env("WEIR_CLUSTER_TOKEN_FILE", &secret);
    };
    let mut command = weir(tmp.path());
    with_token(&mut command);
    let (_coordinator, url) = coordinator_of(command, "0.0.0.0:0", &[]);
    let url = url.replace("0.0.0.0", "127.0.0.1");
    let mut command = weir(tmp.path());
    with_token(&mut command);
    let _worker = Process(
        command
            .args(["worker", "--coordinator", &url, "--slots", "2"])
            .args(["--bind", "0.0.0.0:0", "--advertise", "127.0.0.1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts"),
    );
    // Without the token: refused, saying what to set; a worker too.
    let refused = output({
        let mut c = weir(tmp.path());
        c.args(["workers", "--coordinator", &url]);
        c
    });
    assert!(!refused.status.success());
    let e = text(&refused.stderr);
    assert!(e.contains("WEIR_CLUSTER_TOKEN"), "{e}");
    let refused = output({
        let mut c = weir(tmp.path());
        c.args(["worker", "--coordinator", &url]);
        c
    });
    assert!(!refused.status.success());
    let e = text(&refused.stderr);
    assert!(
        e.contains("refused this worker") && e.contains("token"),
        "{e}"
    );
    // With it: the worker registered, and a job runs on it.
    let mut job = weir(tmp.path());
    with_token(&mut job);
    let out = tmp.path().join("out");
    let script = revenue_script(tmp.path(), &out);
    let started = Instant::now();
    loop {
        let mut listed = weir(tmp.path());
        with_token(&mut listed);
        let listed = text(
            &output({
                listed.args(["workers", "--coordinator", &url]);
                listed
            })
            .stdout,
        );
        if listed.contains("alive") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{listed}");
        std::thread::sleep(Duration::from_millis(50));
    }
    job.args([
        "run",
        script.to_str().expect("utf-8"),
        "--coordinator",
        &url,
    ]);
    let ran = output(job);
    assert!(ran.status.success(), "{}", text(&ran.stderr));
    assert!(rows_of(tmp.path(), &out, "nation, year").lines().count() > 100);
}

#[test]
fn a_worker_told_to_stop_leaves_at_once_and_its_attempts_fail_over() {
    let tmp = tempfile::tempdir().expect("a directory");
    let embedded = tmp.path().join("embedded");
    run(tmp.path(), &stages_script(tmp.path(), &embedded, ""), None);
    let mut cluster = cluster(tmp.path());
    let out = tmp.path().join("clustered");
    let job = submit(
        tmp.path(),
        &stages_script(tmp.path(), &out, ""),
        &cluster.url,
    );
    // SIGTERM (as Kubernetes stops a pod) once the worker runs attempts.
    let started = Instant::now();
    let log = cluster.logs[0].clone();
    while !std::fs::read_to_string(&log)
        .expect("reads the log")
        .contains("attempt(s) of job")
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never deployed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut leaving = cluster.workers.remove(0);
    let told = Instant::now();
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", leaving.0.id())])
        .status()
        .expect("sh runs");
    assert!(sent.success());
    let status = loop {
        if let Some(status) = leaving.0.try_wait().expect("waits") {
            break status;
        }
        assert!(
            told.elapsed() < Duration::from_secs(10),
            "the worker did not leave"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "{status:?}");
    let log = std::fs::read_to_string(&log).expect("reads the log");
    assert!(log.contains("leaves"), "{log}");
    let ended = job.wait_with_output().expect("the client ends");
    let summary = text(&ended.stderr);
    assert!(ended.status.success(), "{summary}");
    assert!(!summary.contains(" 0 restart(s)"), "{summary}");
    assert_eq!(
        rows_of(tmp.path(), &out, "bucket"),
        rows_of(tmp.path(), &embedded, "bucket")
    );
}

/// The state of job `job` on the coordinator at `url`, and its message.
fn job_status(tmp: &Path, job: &str, url: &str) -> String {
    verb(tmp, &["status", job], url)
}

/// Waits (60 s at most) until job `job` of the coordinator at `url` is in
/// `state`: its status.
fn await_state(tmp: &Path, job: &str, url: &str, state: &str) -> String {
    let started = Instant::now();
    loop {
        let status = job_status(tmp, job, url);
        if status.contains(&format!("\t{state}\t")) {
            return status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{job} never {state}: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_coordinator_started_again_resumes_streaming_jobs_and_fails_batch_ones() {
    const ROWS: u64 = 30_000;
    let tmp = tempfile::tempdir().expect("a directory");
    let state = tmp.path().join("state");
    let state = state.to_str().expect("utf-8");
    let (coordinator, url) =
        coordinator_of(weir(tmp.path()), "127.0.0.1:0", &["--state-dir", state]);
    let _workers: Vec<Process> = (0..3).map(|_| worker(tmp.path(), &url, 2)).collect();
    await_workers(
        tmp.path(),
        &url,
        &[
            ("alive", "2 slot(s)"),
            ("alive", "2 slot(s)"),
            ("alive", "2 slot(s)"),
        ],
    );
    let (checkpoints, out) = (tmp.path().join("checkpoints"), tmp.path().join("out"));
    let streaming = streaming_ids(tmp.path(), &checkpoints, &out, ROWS);
    let streaming = verb(
        tmp.path(),
        &["run", streaming.to_str().expect("utf-8"), "--detached"],
        &url,
    );
    let batch = stages_script(tmp.path(), &tmp.path().join("sums"), "");
    let batch = verb(
        tmp.path(),
        &["run", batch.to_str().expect("utf-8"), "--detached"],
        &url,
    );
    await_checkpoint(&checkpoints, 2);
    // SIGKILL the coordinator mid-job, start it again on its port.
    drop(coordinator);
    let bind = url.strip_prefix("http://").expect("an http URL");
    let (_again, _) = coordinator_of(weir(tmp.path()), bind, &["--state-dir", state]);
    // The batch job failed, saying why; the streaming one resumed as
    // another job, which ends with every row once.
    let failed = await_state(tmp.path(), batch.trim(), &url, "failed");
    assert!(failed.contains("coordinator restarted"), "{failed}");
    let resumed = await_state(tmp.path(), streaming.trim(), &url, "resumed");
    let successor = resumed
        .split_whitespace()
        .find(|word| word.starts_with("job-") && !resumed.starts_with(word))
        .expect("the job that resumes it")
        .to_string();
    await_state(tmp.path(), &successor, &url, "finished");
    assert_every_id_once(tmp.path(), &out, ROWS);
    // The records are gone, and so are the checkpoints of both runs.
    let records = std::fs::read_dir(Path::new(state).join("jobs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(records, 0);
    let left = std::fs::read_dir(&checkpoints)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "checkpoints left behind");
}

/// A certificate authority, and a certificate for 127.0.0.1 it signed
/// with its key, made by `openssl` under `dir`: (authority, certificate,
/// key) PEM files.
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let openssl = |args: &[&str]| {
        let made = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (apt-get install openssl)");
        assert!(
            made.status.success(),
            "openssl {args:?}: {}",
            text(&made.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
            &["-subj", "/CN=weir test authority"],
            &["-addext", "basicConstraints=critical,CA:TRUE"],
            &["-addext", "keyUsage=critical,keyCertSign"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "node.key",
                "-out",
                "node.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("node.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("writes");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.pem",
        "-days",
        "2",
        "-extfile",
        "node.ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("node.pem"),
        dir.join("node.key"),
    )
}

#[test]
fn a_cluster_speaking_tls_runs_jobs_for_clients_that_trust_its_authority() {
    let tmp = tempfile::tempdir().expect("a directory");
    let (ca, cert, key) = tls_files(tmp.path());
    let path = |p: &PathBuf| p.to_str().expect("utf-8").to_string();
    let (ca, cert, key) = (path(&ca), path(&cert), path(&key));
    // The coordinator from flags, the workers from the environment.
    let (_coordinator, url) = coordinator_of(
        weir(tmp.path()),
        "127.0.0.1:0",
        &["--tls-cert", &cert, "--tls-key", &key, "--tls-ca", &ca],
    );
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let trusting = |args: &[&str]| {
        let mut command = weir(tmp.path());
        command.env("WEIR_CLUSTER_TLS_CA", &ca).args(args);
        command
    };
    let _workers: Vec<Process> = (0..3)
        .map(|_| {
            let mut command = trusting(&["worker", "--coordinator", &url, "--slots", "2"]);
            command
                .env("WEIR_CLUSTER_TLS_CERT", &cert)
                .env("WEIR_CLUSTER_TLS_KEY", &key)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            Process(command.spawn().expect("starts"))
        })
        .collect();
    let started = Instant::now();
    loop {
        let listed = output(trusting(&["workers", "--coordinator", &url]));
        let alive = text(&listed.stdout).matches("\talive\t").count();
        if alive == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{alive} workers"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Blocking partitions go from worker to worker with DoGet, pipelined
    // channels with DoExchange: both over TLS.
    let embedded = tmp.path().join("embedded");
    run(tmp.path(), &stages_script(tmp.path(), &embedded, ""), None);
    let expected = rows_of(tmp.path(), &embedded, "bucket");
    for (name, settings) in [
        ("blocking", ""),
        (
            "pipelined",
            "SET 'execution.batch-shuffle-mode' = 'all-pipelined';",
        ),
    ] {
        let out = tmp.path().join(name);
        let script = stages_script(tmp.path(), &out, settings);
        let script = script.to_str().expect("utf-8");
        let ran = output(trusting(&["run", script, "--coordinator", &url]));
        assert!(ran.status.success(), "{name}: {}", text(&ran.stderr));
        assert_eq!(rows_of(tmp.path(), &out, "bucket"), expected, "{name}");
    }
    // A client that does not trust the authority, or speaks plain HTTP,
    // gets nowhere.
    let untrusting = output({
        let mut command = weir(tmp.path());
        command.args(["list", "--coordinator", &url]);
        command
    });
    assert!(!untrusting.status.success());
    let e = text(&untrusting.stderr);
    assert!(
        e.contains("--tls-ca") && e.contains("WEIR_CLUSTER_TLS_CA"),
        "{e}"
    );
    let plain = url.replace("https://", "http://");
    let refused = output(trusting(&["list", "--coordinator", &plain]));
    assert!(!refused.status.success(), "{}", text(&refused.stdout));
}
