//! Rows of queries printed while their jobs run, as Flink's SQL client
//! does in tableau mode: an unbounded `SELECT` shows its rows as they are
//! made (on arrival, or at checkpoints when checkpointing is on) and ends
//! its output properly when cancelled; a reader that stops reading ends
//! the job quietly.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Bids of the Nexmark generator, unbounded, at `rate` events a second.
fn bids(rate: u32) -> String {
    format!(
        "CREATE TABLE bid (
            auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
            WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
        ) WITH ('connector' = 'nexmark', 'table' = 'bid', 'events-per-second' = '{rate}');"
    )
}

/// Runs `query` over 2,000 bids a second (`settings` first).
fn start(dir: &Path, settings: &str, query: &str, format: &str) -> Child {
    start_at(2000, dir, settings, query, format)
}

fn start_at(rate: u32, dir: &Path, settings: &str, query: &str, format: &str) -> Child {
    let script = dir.join("bids.sql");
    std::fs::write(&script, format!("{settings}\n{}", bids(rate))).expect("writes");
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["sql", "-f"])
        .arg(&script)
        .args([query, "--format", format, "--progress", "none"])
        .current_dir(dir)
        .env_remove("WEIR_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir starts")
}

/// Reads `n` lines of `out`, failing after a minute.
fn read_lines(out: &mut BufReader<ChildStdout>, n: usize) -> Vec<String> {
    let started = Instant::now();
    let mut lines = Vec::new();
    while lines.len() < n {
        let mut line = String::new();
        let read = out.read_line(&mut line).expect("reads");
        assert!(read > 0, "the output ended after {lines:?}");
        lines.push(line.trim_end().to_string());
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
    }
    lines
}

/// Sends Ctrl-C to `job` and waits for it to end, within a minute.
fn interrupt(job: &mut Child) {
    let sent = Command::new("kill")
        .args(["-INT", &job.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
    let started = Instant::now();
    while job.try_wait().expect("waits").is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "Ctrl-C ends the job"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_unbounded_select_prints_rows_as_they_come_and_closes_its_output() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut job = start(dir.path(), "", "SELECT auction, price FROM bid", "json");
    let mut out = BufReader::new(job.stdout.take().expect("piped"));
    // One row a line would need the whole array: the rows come on one
    // line, so read bytes until 50 rows went by.
    let mut seen = Vec::new();
    let started = Instant::now();
    while seen.iter().filter(|&&b| b == b'{').count() < 50 {
        let mut chunk = [0u8; 256];
        let n = out.read(&mut chunk).expect("reads");
        assert!(n > 0, "the output ended");
        seen.extend_from_slice(&chunk[..n]);
        assert!(started.elapsed() < Duration::from_secs(60), "too slow");
    }
    assert!(job.try_wait().expect("waits").is_none(), "still running");
    interrupt(&mut job);
    out.read_to_end(&mut seen).expect("reads");
    // Cancelled, the array is still closed: valid JSON, every row whole.
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&seen).expect("a JSON array of the rows printed");
    assert!(rows.len() >= 50);
    assert!(
        rows.iter()
            .all(|r| r["auction"].is_i64() && r["price"].is_i64())
    );
}

#[test]
fn an_unbounded_table_starts_at_its_first_rows() {
    // 10 bids a second: a table waiting for 1,000 rows would show nothing
    // for 100 s.
    let dir = tempfile::tempdir().expect("a directory");
    let mut job = start_at(
        10,
        dir.path(),
        "",
        "SELECT auction, price FROM bid",
        "table",
    );
    let mut out = BufReader::new(job.stdout.take().expect("piped"));
    let lines = read_lines(&mut out, 13);
    assert!(
        lines[0].starts_with("+-") && lines[2].starts_with("+-"),
        "{lines:?}"
    );
    assert!(lines[1].contains("auction") && lines[1].contains("price"));
    let widths = lines[3].len();
    assert!(
        lines[3..]
            .iter()
            .all(|l| l.starts_with("| ") && l.len() >= widths)
    );
    interrupt(&mut job);
}

#[test]
fn checkpointed_rows_are_printed_as_their_checkpoints_complete() {
    let dir = tempfile::tempdir().expect("a directory");
    let settings = format!(
        "SET 'execution.checkpointing.interval' = '200 ms';
         SET 'execution.checkpointing.dir' = '{}';",
        dir.path().join("checkpoints").display()
    );
    let query = "SELECT window_start, count(*) AS bids FROM TABLE(TUMBLE(TABLE bid, \
                 DESCRIPTOR(date_time), INTERVAL '1' SECOND)) GROUP BY window_start, window_end";
    let mut job = start(dir.path(), &settings, query, "csv");
    let mut out = BufReader::new(job.stdout.take().expect("piped"));
    let lines = read_lines(&mut out, 3);
    assert_eq!(lines[0], "window_start,bids");
    assert!(
        lines[1..].iter().all(|l| l.split(',').count() == 2),
        "{lines:?}"
    );
    assert!(job.try_wait().expect("waits").is_none(), "still running");
    interrupt(&mut job);
}

#[test]
fn a_reader_that_stops_reading_ends_the_job_quietly() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut job = start(dir.path(), "", "SELECT auction FROM bid", "csv");
    let mut out = BufReader::new(job.stdout.take().expect("piped"));
    assert_eq!(read_lines(&mut out, 3)[0], "auction");
    // As `weir sql ... | head -3` does.
    drop(out);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = job.try_wait().expect("waits") {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the job ends");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    job.stderr
        .take()
        .expect("piped")
        .read_to_string(&mut stderr)
        .expect("reads");
    assert!(status.success(), "{status}: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}
