//! What the interop tests share: a Python environment with real external
//! parts (an S3-compatible server, pyarrow, DuckDB), a moto S3 server per
//! test, and (in [`canonical`]) table contents in a form both Rust and
//! Python produce. The jobs that write and read through the connector
//! registry are the file connector tests' (`tests/common`).
//! The Python environment is [`python`]'s.

#![allow(dead_code)]

pub mod canonical;
pub mod python;

pub use python::{python_env, run_python, venv_bin};

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Connector options.
pub type Options = BTreeMap<String, String>;

/// `options` as the `(key, value)` pairs the shared test jobs take.
pub fn pairs(options: &Options) -> Vec<(&str, &str)> {
    options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------
// A moto S3 server.

/// A moto S3 server on a free loopback port, stopped when dropped.
pub struct MotoServer {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
}

/// Ports handed out to servers of this process, never handed out twice.
static USED_PORTS: Mutex<Vec<u16>> = Mutex::new(Vec::new());

fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        let mut used = USED_PORTS.lock().unwrap_or_else(|p| p.into_inner());
        if !used.contains(&port) {
            used.push(port);
            return port;
        }
    }
}

impl MotoServer {
    /// Starts a server and waits until it answers.
    ///
    /// # Panics
    /// When it does not answer within 30 s, with its log.
    pub fn start() -> Self {
        let moto = venv_bin(
            python_env().parent().and_then(Path::parent).expect("venv"),
            "moto_server",
        );
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            let log = tempfile::NamedTempFile::new().expect("a log file");
            let child = Command::new(&moto)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env_remove("PYTHONPATH")
                .env_remove("PYTHONHOME")
                .stdin(Stdio::null())
                .stdout(log.reopen().expect("the log file"))
                .stderr(log.reopen().expect("the log file"))
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", moto.display()));
            let mut server = MotoServer { child, port, log };
            if server.wait_until_ready(Duration::from_secs(30)) {
                return server;
            }
            last_log = std::fs::read_to_string(server.log.path()).unwrap_or_default();
            // Dropping `server` stops it; another port may do better (the
            // one picked may have been taken in the meantime).
        }
        panic!("moto_server did not start; its log:\n{last_log}");
    }

    /// Whether the server answers an HTTP request before `timeout`; false
    /// as soon as it exits.
    fn wait_until_ready(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return false;
            }
            if self.http("GET", "/").is_ok_and(|(status, _)| status == 200) {
                // The answer came from this server only if it still runs
                // (it exits when the port was taken).
                std::thread::sleep(Duration::from_millis(100));
                return matches!(self.child.try_wait(), Ok(None));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// One HTTP/1.0 request without a body: the status and the body.
    fn http(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let address = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let status = response
            .strip_prefix("HTTP/1.")
            .and_then(|r| r.get(2..5))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response}")))?;
        let body = response
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, body)| body.to_string());
        Ok((status, body))
    }

    /// The server's URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates bucket `name` (moto takes any credentials, and none).
    ///
    /// # Panics
    /// When the server refuses.
    pub fn create_bucket(&self, name: &str) {
        let (status, body) = self
            .http("PUT", &format!("/{name}"))
            .unwrap_or_else(|e| panic!("cannot create bucket {name}: {e}"));
        assert_eq!(status, 200, "creating bucket {name}: {body}");
    }

    /// The object store options of weir's connectors for this server.
    pub fn options(&self) -> Options {
        [
            ("s3.endpoint", self.endpoint().as_str()),
            ("s3.region", "us-east-1"),
            ("s3.access-key-id", "test"),
            ("s3.secret-access-key", "test"),
            ("s3.allow-http", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The keys under `prefix` in `bucket`, sorted, as boto3 lists them.
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let printed = run_python(
            r#"
import sys, boto3
endpoint, bucket, prefix = sys.argv[1:4]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id="test", aws_secret_access_key="test")
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for item in page.get("Contents", []):
        print(item["Key"])
"#,
            [self.endpoint().as_str(), bucket, prefix],
        );
        let mut keys: Vec<String> = printed.lines().map(str::to_string).collect();
        keys.sort();
        keys
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        // Only the server this value started, by its handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
