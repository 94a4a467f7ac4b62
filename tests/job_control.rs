//! Controlling running jobs from the command line: `weir run` of an
//! unbounded Nexmark job, `weir list`, `weir savepoint`, `weir stop
//! --savepoint`, `weir run --from-savepoint` and `weir cancel`, and Ctrl-C
//! with and without `--stop-with-savepoint`. The windows the two runs
//! commit never repeat, and a cancelled run exits with 130.

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cli::{output, running_job, text, weir};

/// The job's script: bids per auction and 2-second window, into CSV files
/// under `out`, a checkpoint every half second, savepoints asked for
/// without a directory under `dir/savepoints`. Bids are generated as
/// fast as they can be, their times 1/10,000 s apart: event time runs
/// faster than the clock.
fn script(dir: &Path, out: &Path) -> std::path::PathBuf {
    let path = dir.join("bids.sql");
    std::fs::write(
        &path,
        format!(
            "SET 'execution.checkpointing.interval' = '500 ms';
             SET 'execution.checkpointing.savepoint-dir' = '{}';
             CREATE TABLE bid (
               auction BIGINT, price BIGINT, date_time TIMESTAMP(3),
               WATERMARK FOR date_time AS date_time - INTERVAL '1' SECOND
             ) WITH ('connector' = 'nexmark');
             CREATE TABLE windows WITH ('connector' = 'csv', 'path' = '{}');
             INSERT INTO windows
             SELECT auction, window_start, count(*) AS bids
             FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(date_time), INTERVAL '2' SECOND))
             GROUP BY auction, window_start, window_end;",
            dir.join("savepoints").display(),
            out.display()
        ),
    )
    .expect("writes the script");
    path
}

/// The committed windows under `out`: (auction, window start) -> how many
/// times each was committed.
fn windows(out: &Path) -> BTreeMap<(String, String), usize> {
    let mut seen = BTreeMap::new();
    for entry in std::fs::read_dir(out).expect("the output") {
        let path = entry.expect("an entry").path();
        let name = path
            .file_name()
            .expect("a name")
            .to_string_lossy()
            .to_string();
        assert!(!name.starts_with('_'), "nothing staged is visible: {name}");
        for line in std::fs::read_to_string(&path)
            .expect("reads")
            .lines()
            .skip(1)
        {
            let fields: Vec<&str> = line.split(',').collect();
            *seen
                .entry((fields[0].to_string(), fields[1].to_string()))
                .or_default() += 1;
        }
    }
    seen
}

#[test]
fn stop_with_a_savepoint_resume_and_cancel() {
    let tmp = tempfile::tempdir().expect("a directory");
    let out = tmp.path().join("out");
    let script = script(tmp.path(), &out);
    let mut first = weir(tmp.path())
        .args(["run", script.to_str().expect("utf-8"), "--progress", "none"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let id = running_job(tmp.path(), &mut first);
    std::thread::sleep(Duration::from_millis(2000));
    // A relative directory is the asker's, not the job's.
    let taken = output({
        let mut c = weir(tmp.path());
        c.current_dir(tmp.path())
            .args(["savepoint", &id, "running-savepoint"]);
        c
    });
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    let savepoint = tmp.path().join("running-savepoint");
    assert_eq!(text(&taken.stdout).trim(), savepoint.display().to_string());
    assert!(savepoint.join("_metadata").exists());
    // Without a directory: one of its own under the configured one. The
    // start of the id is enough.
    let stopped = output({
        let mut c = weir(tmp.path());
        c.args(["stop", &id[..10], "--savepoint"]);
        c
    });
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let stop_at = text(&stopped.stdout)
        .trim()
        .strip_prefix("stopped with a savepoint at ")
        .expect("where the savepoint is")
        .to_string();
    assert!(
        Path::new(&stop_at).starts_with(tmp.path().join("savepoints")),
        "{stop_at}"
    );
    let first = first.wait_with_output().expect("ends");
    assert!(first.status.success(), "{}", text(&first.stderr));
    let before = windows(&out);
    assert!(!before.is_empty(), "the first run committed windows");

    let mut second = weir(tmp.path())
        .args([
            "run",
            script.to_str().expect("utf-8"),
            "--progress",
            "none",
            "--from-savepoint",
            &stop_at,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let id = running_job(tmp.path(), &mut second);
    // Long enough for a checkpoint to commit windows.
    std::thread::sleep(Duration::from_millis(2500));
    let cancelled = output({
        let mut c = weir(tmp.path());
        c.args(["cancel", &id]);
        c
    });
    assert!(cancelled.status.success(), "{}", text(&cancelled.stderr));
    let second = second.wait_with_output().expect("ends");
    assert_eq!(second.status.code(), Some(130), "{}", text(&second.stderr));
    let after = windows(&out);
    assert!(
        after.len() > before.len(),
        "the second run committed windows"
    );
    let repeated: Vec<_> = after.iter().filter(|(_, n)| **n > 1).collect();
    assert!(repeated.is_empty(), "windows committed twice: {repeated:?}");
    let none = output({
        let mut c = weir(tmp.path());
        c.args(["stop", "job-nope"]);
        c
    });
    assert!(!none.status.success());
    assert!(
        text(&none.stderr).contains("no running job 'job-nope'"),
        "{}",
        text(&none.stderr)
    );
}

/// Sends the job's process what Ctrl-C sends.
fn interrupt(job: &Child) {
    let sent = Command::new("kill")
        .args(["-INT", &job.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(sent.success());
}

#[test]
fn ctrl_c_stops_with_a_savepoint_when_asked_and_cancels_otherwise() {
    let tmp = tempfile::tempdir().expect("a directory");
    let out = tmp.path().join("out");
    let script = script(tmp.path(), &out);
    let run = |extra: &[&str]| {
        let mut job = weir(tmp.path())
            .args(["run", script.to_str().expect("utf-8"), "--progress", "none"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starts");
        running_job(tmp.path(), &mut job);
        std::thread::sleep(Duration::from_millis(1500));
        interrupt(&job);
        job.wait_with_output().expect("ends")
    };
    let stopped = run(&["--stop-with-savepoint"]);
    assert!(stopped.status.success(), "{}", text(&stopped.stderr));
    let summary = text(&stopped.stdout) + &text(&stopped.stderr);
    let at = summary
        .split_once("stopped with a savepoint at ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("where the savepoint is: {summary}"));
    let at = Path::new(at);
    assert!(at.starts_with(tmp.path().join("savepoints")), "{summary}");
    assert!(at.join("_metadata").exists());
    assert!(
        !windows(&out).is_empty(),
        "windows committed up to the savepoint"
    );

    let cancelled = run(&[]);
    assert_eq!(
        cancelled.status.code(),
        Some(130),
        "{}",
        text(&cancelled.stderr)
    );

    // Nowhere configured for the savepoint: refused before the job runs.
    let bare = tmp.path().join("bare.sql");
    std::fs::write(
        &bare,
        "CREATE TABLE bid (auction BIGINT) WITH ('connector' = 'nexmark');
         CREATE TABLE sink WITH ('connector' = 'blackhole');
         INSERT INTO sink SELECT auction FROM bid;",
    )
    .expect("writes");
    let refused = output({
        let mut c = weir(tmp.path());
        c.args([
            "run",
            bare.to_str().expect("utf-8"),
            "--stop-with-savepoint",
        ]);
        c
    });
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("execution.checkpointing.savepoint-dir"),
        "{}",
        text(&refused.stderr)
    );
}
