//! The cluster's control plane with real processes on loopback: a
//! `weir coordinator` and `weir worker`s. Workers register their slots
//! and send heartbeats; a worker killed with SIGKILL is declared lost
//! after the heartbeat timeout; a coordinator killed and started again
//! gets its surviving workers back; a coordinator does not listen beyond
//! loopback.

#[path = "support/cli.rs"]
mod cli;

use std::io::{BufRead, BufReader};
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
fn coordinator(tmp: &std::path::Path, bind: &str) -> (Process, String) {
    let mut command = weir(tmp);
    command
        .args(["coordinator", "--bind", bind])
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

fn worker(tmp: &std::path::Path, url: &str, slots: u32) -> Process {
    let mut command: Command = weir(tmp);
    command
        .args([
            "worker",
            "--coordinator",
            url,
            "--slots",
            &slots.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    Process(command.spawn().expect("starts"))
}

/// The coordinator's workers: (state, slots) by line.
fn workers(tmp: &std::path::Path, url: &str) -> Vec<(String, String)> {
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
fn await_workers(tmp: &std::path::Path, url: &str, expected: &[(&str, &str)]) {
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
