//! Crash safety of commits, on a real `weir run` process killed with
//! SIGKILL at many instants:
//!
//! - a batch job killed while it publishes its files: weir's readers see
//!   the table with none or all of the job's rows, and a rerun (or the next
//!   job writing there) leaves every row in it exactly once, with nothing
//!   staged left behind;
//! - a streaming job killed right after a checkpoint completed, then
//!   resumed from its checkpoint directory: every row is committed exactly
//!   once.

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn weir(tmp: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp)
        .env_remove("WEIR_CONFIG")
        .stdin(Stdio::null());
    command
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `weir sql` of `sql` over the Parquet table under `out`, as `t`, in CSV.
fn query(tmp: &Path, out: &Path, sql: &str) -> std::process::Output {
    let table = format!("t=parquet:{}", out.display());
    weir(tmp)
        .args(["sql", sql, "--table", &table, "--format", "csv"])
        .output()
        .expect("weir runs")
}

/// The rows of the table under `out` as weir reads it: (rows, distinct
/// ids, smallest id, largest id); no rows when it holds no file.
fn read_table(tmp: &Path, out: &Path) -> (u64, u64, Option<u64>, Option<u64>) {
    let read = query(
        tmp,
        out,
        "SELECT count(*) AS n, count(DISTINCT id) AS d, min(id) AS lo, max(id) AS hi FROM t",
    );
    let stderr = text(&read.stderr);
    if !read.status.success() && stderr.contains("no files at") {
        return (0, 0, None, None);
    }
    assert!(read.status.success(), "reading {}: {stderr}", out.display());
    let stdout = text(&read.stdout);
    let row = stdout.lines().nth(1).expect("a row");
    let fields: Vec<&str> = row.split(',').collect();
    let number = |f: &str| (!f.is_empty()).then(|| f.parse::<u64>().expect("a number"));
    (
        number(fields[0]).unwrap_or(0),
        number(fields[1]).unwrap_or(0),
        number(fields[2]),
        number(fields[3]),
    )
}

/// Whether `dir` holds a file, at any depth.
fn holds_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let path = entry.path();
            if path.is_dir() {
                holds_files(&path)
            } else {
                true
            }
        })
    })
}

/// Whether `dir` holds a file readers see (outside `_` directories).
fn visible_file(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|entry| {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with(['_', '.']);
            !hidden && (!path.is_dir() || visible_file(&path))
        })
    })
}

/// The hidden directories a sink keeps under its root while it works.
fn leftovers(out: &Path) -> Vec<PathBuf> {
    ["_weir_staging", "_weir_commits"]
        .iter()
        .map(|d| out.join(d))
        .filter(|d| holds_files(d))
        .collect()
}

/// Asserts that the table under `out` holds ids 0..rows, each once, and
/// that nothing staged is left under it.
fn assert_every_row_once(tmp: &Path, out: &Path, rows: u64, what: &str) {
    assert_eq!(
        read_table(tmp, out),
        (rows, rows, Some(0), Some(rows - 1)),
        "{what}: every row once"
    );
    assert_eq!(
        leftovers(out),
        Vec::<PathBuf>::new(),
        "{what}: nothing staged is left"
    );
}

/// Polls every 200 µs until `ready` holds, then waits `delay` and kills
/// the job; `false` when the job ended first.
fn kill_when(job: &mut Child, ready: impl Fn() -> bool, delay: Duration) -> bool {
    let started = Instant::now();
    loop {
        if job.try_wait().expect("waits").is_some() {
            return false;
        }
        if ready() {
            std::thread::sleep(delay);
            let killed = job.kill().is_ok();
            job.wait().expect("waits");
            return killed;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the job never got there"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

const BATCH_ROWS: u64 = 20_000;

/// A batch job writing ids 0..BATCH_ROWS as 400 Parquet files (50 rows
/// each), in `mode`.
fn batch_script(dir: &Path, out: &Path, mode: &str) -> PathBuf {
    let script = dir.join(format!("batch-{mode}.sql"));
    std::fs::write(
        &script,
        format!(
            "SET 'parallelism.default' = '2';
             CREATE TABLE numbers (id BIGINT) WITH (
               'connector' = 'datagen', 'number-of-rows' = '{BATCH_ROWS}',
               'fields.id.kind' = 'sequence', 'fields.id.start' = '0',
               'fields.id.end' = '{}');
             CREATE TABLE out WITH (
               'connector' = 'parquet', 'path' = '{}',
               'sink.rolling.max-rows' = '50', 'sink.mode' = '{mode}');
             INSERT INTO out SELECT id FROM numbers;",
            BATCH_ROWS - 1,
            out.display()
        ),
    )
    .expect("writes the script");
    script
}

/// Starts `weir run script`, its output thrown away.
fn start(tmp: &Path, script: &Path) -> Child {
    weir(tmp)
        .args(["run", script.to_str().expect("utf-8"), "--progress", "none"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts")
}

fn run_to_end(tmp: &Path, script: &Path, extra: &[&str]) {
    let run = weir(tmp)
        .args(["run", script.to_str().expect("utf-8"), "--progress", "none"])
        .args(extra)
        .output()
        .expect("weir runs");
    assert!(run.status.success(), "{}", text(&run.stderr));
}

#[test]
fn a_batch_job_killed_while_it_commits_publishes_all_or_nothing() {
    let tmp = tempfile::tempdir().expect("a directory");
    // Right when the commit starts, and later and later into it.
    let delays_us = [0, 100, 300, 1_000, 2_000, 4_000, 8_000, 16_000, 40_000];
    let mut cut_short = 0;
    for (trial, delay) in delays_us.iter().enumerate() {
        let out = tmp.path().join(format!("out-{trial}"));
        let script = batch_script(tmp.path(), &out, "append");
        let mut job = start(tmp.path(), &script);
        let commits = out.join("_weir_commits");
        // The commit has begun once it is written down, or once a file
        // appears where readers look.
        let begun = || holds_files(&commits) || visible_file(&out);
        let killed = kill_when(&mut job, begun, Duration::from_micros(*delay));
        // Cut short: written down but not finished (or, without a
        // manifest, some files published).
        if killed && (holds_files(&commits) || visible_file(&out)) {
            cut_short += 1;
        }
        let (rows, distinct, ..) = read_table(tmp.path(), &out);
        assert!(
            rows == 0 || rows == BATCH_ROWS,
            "trial {trial} (killed {delay} µs into the commit): {rows} of {BATCH_ROWS} rows visible"
        );
        assert_eq!(rows, distinct, "trial {trial}: no row twice");
        // A user who sees nothing reruns the job; one who sees everything
        // may write the table again in overwrite mode. Either way the next
        // job finishes or drops what the killed one left.
        let mode = if rows == 0 { "append" } else { "overwrite" };
        run_to_end(tmp.path(), &batch_script(tmp.path(), &out, mode), &[]);
        assert_every_row_once(tmp.path(), &out, BATCH_ROWS, &format!("trial {trial}"));
    }
    assert!(
        cut_short > 0,
        "no kill fell inside a commit: the test tests nothing"
    );
}

const STREAM_ROWS: u64 = 12_000;

/// A streaming job over ids 0..rows, generated over about 3 s, a
/// checkpoint every 150 ms into `checkpoints`: `select` (over table
/// `numbers`) into a Parquet table under `out` with `options`.
fn streaming_script(
    dir: &Path,
    checkpoints: &Path,
    out: &Path,
    rows: u64,
    options: &str,
    select: &str,
) -> PathBuf {
    let script = dir.join("streaming.sql");
    std::fs::write(
        &script,
        format!(
            "{}
             CREATE TABLE numbers (id BIGINT) WITH (
               'connector' = 'datagen', 'number-of-rows' = '{rows}',
               'rows-per-second' = '{}',
               'fields.id.kind' = 'sequence', 'fields.id.start' = '0',
               'fields.id.end' = '{}');
             CREATE TABLE out WITH ('connector' = 'parquet', 'path' = '{}'{options});
             INSERT INTO out {select};",
            cli::streaming_settings(checkpoints, "150 ms"),
            rows / 3,
            rows - 1,
            out.display()
        ),
    )
    .expect("writes the script");
    script
}

/// The number of the latest completed checkpoint under `checkpoints` (of
/// any job), if any.
fn latest_checkpoint(checkpoints: &Path) -> Option<u64> {
    cli::latest_checkpoint(checkpoints).map(|(n, _)| n)
}

#[test]
fn a_streaming_job_killed_after_a_checkpoint_resumes_exactly_once() {
    let tmp = tempfile::tempdir().expect("a directory");
    // Killed right after the first, second and third completed checkpoint.
    for (trial, (after, delay_us)) in [(1, 0), (2, 200), (3, 1_000)].into_iter().enumerate() {
        let out = tmp.path().join(format!("out-{trial}"));
        let checkpoints = tmp.path().join(format!("checkpoints-{trial}"));
        let script = streaming_script(
            tmp.path(),
            &checkpoints,
            &out,
            STREAM_ROWS,
            "",
            "SELECT id FROM numbers",
        );
        let mut job = start(tmp.path(), &script);
        let killed = kill_when(
            &mut job,
            || latest_checkpoint(&checkpoints).is_some_and(|n| n >= after),
            Duration::from_micros(delay_us),
        );
        assert!(killed, "trial {trial}: the job ended before its checkpoint");
        let job_dir = std::fs::read_dir(&checkpoints)
            .expect("the checkpoints")
            .flatten()
            .next()
            .expect("the job's checkpoint directory")
            .path();
        // Resumed from the job's checkpoint directory (its latest
        // completed checkpoint), or from that checkpoint named.
        let resume_from = match trial {
            0 => job_dir.join(format!(
                "chk-{}",
                latest_checkpoint(&checkpoints).expect("a checkpoint")
            )),
            _ => job_dir,
        };
        run_to_end(
            tmp.path(),
            &script,
            &["--from-savepoint", resume_from.to_str().expect("utf-8")],
        );
        assert_every_row_once(tmp.path(), &out, STREAM_ROWS, &format!("trial {trial}"));
    }
}

#[test]
fn a_streaming_sink_commits_partitions_whose_names_are_escaped() {
    let tmp = tempfile::tempdir().expect("a directory");
    let out = tmp.path().join("out");
    let script = streaming_script(
        tmp.path(),
        &tmp.path().join("checkpoints"),
        &out,
        3000,
        ", 'partition-by' = 'hm'",
        "SELECT id, concat('23:5', CAST(id % 3 AS VARCHAR)) AS hm FROM numbers",
    );
    run_to_end(tmp.path(), &script, &[]);
    assert_every_row_once(tmp.path(), &out, 3000, "partitioned by 'hm'");
    let read = query(
        tmp.path(),
        &out,
        "SELECT hm, count(*) AS n FROM t GROUP BY hm ORDER BY hm",
    );
    assert_eq!(
        text(&read.stdout),
        "hm,n\n23:50,1000\n23:51,1000\n23:52,1000\n",
        "{}",
        text(&read.stderr)
    );
}
