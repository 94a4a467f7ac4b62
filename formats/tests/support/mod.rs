//! What the interop tests share: a Python environment with real external
//! parts (an S3-compatible server, pyarrow, DuckDB), a moto S3 server per
//! test, and (in [`canonical`]) table contents in a form both Rust and
//! Python produce. The jobs that write and read through the connector
//! registry are the file connector tests' (`tests/common`).
//!
//! The Python environment lives in `<workspace>/target/test-python`. The
//! first test that needs it creates it (`python3 -m venv`, then
//! `pip install -r formats/tests/requirements.txt`) under an exclusive file
//! lock, so that test threads and test binaries running at the same time
//! install it once; later runs reuse it as long as `requirements.txt` has
//! not changed (a marker file holds its hash).

#![allow(dead_code)]

pub mod canonical;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Connector options.
pub type Options = BTreeMap<String, String>;

/// The workspace's root directory.
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the formats crate is inside the workspace")
        .to_path_buf()
}

/// `options` as the `(key, value)` pairs the shared test jobs take.
pub fn pairs(options: &Options) -> Vec<(&str, &str)> {
    options
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------
// The Python environment.

/// The base interpreter the environment is created with.
const BASE_PYTHON: &str = "python3";

/// The python executable of the test environment, created on first use (see
/// the module docs).
///
/// # Panics
/// When `python3` is missing or the packages cannot be installed; the
/// message says what to do.
pub fn python_env() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(prepare_python_env).clone()
}

fn venv_dir() -> PathBuf {
    workspace_dir().join("target").join("test-python")
}

fn venv_bin(venv: &Path, program: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{program}.exe"))
    } else {
        venv.join("bin").join(program)
    }
}

fn requirements_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("requirements.txt")
}

/// 64-bit FNV-1a: a stable fingerprint of `requirements.txt`.
fn fingerprint(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{hash:016x}\n")
}

fn prepare_python_env() -> PathBuf {
    let venv = venv_dir();
    let python = venv_bin(&venv, "python");
    let requirements = requirements_file();
    let wanted = fingerprint(
        &std::fs::read(&requirements)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", requirements.display())),
    );
    let marker = venv.join("weir-requirements.hash");
    let ready =
        || python.exists() && std::fs::read_to_string(&marker).is_ok_and(|found| found == wanted);
    if ready() {
        return python;
    }
    let target = venv.parent().expect("the venv has a parent");
    std::fs::create_dir_all(target)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
    let lock_path = target.join("test-python.lock");
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    // Held until `lock` is dropped: whoever comes second finds it ready.
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if !ready() {
        install(&venv, &python, &requirements);
        std::fs::write(&marker, &wanted)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    }
    python
}

/// Creates the environment at `venv` afresh and installs `requirements`.
fn install(venv: &Path, python: &Path, requirements: &Path) {
    eprintln!(
        "installing the test Python environment into {} (once)",
        venv.display()
    );
    match Command::new(BASE_PYTHON).arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "`{BASE_PYTHON} --version` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => panic!(
            "the formats crate's tests need `{BASE_PYTHON}` (3.9 or newer, with pip) on the PATH \
             to install moto, boto3, pyarrow and duckdb into {}, but it cannot be run: {e}. \
             Install Python 3 (e.g. `apt-get install python3 python3-pip python3-venv`).",
            venv.display()
        ),
    }
    remove_dir(venv);
    let venv_arg = venv.as_os_str();
    let pip_install = [
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "-r",
    ];
    let created = command_output(Command::new(BASE_PYTHON).args([
        OsStr::new("-m"),
        "venv".as_ref(),
        venv_arg,
    ]));
    let installed = if created.status.success() {
        command_output(
            Command::new(python)
                .args(["-m", "pip"])
                .args(pip_install)
                .arg(requirements),
        )
    } else {
        // No ensurepip (Debian's python3 without python3-venv): a venv
        // without pip, filled by the base interpreter's pip.
        remove_dir(venv);
        let bare = command_output(Command::new(BASE_PYTHON).args([
            OsStr::new("-m"),
            "venv".as_ref(),
            "--without-pip".as_ref(),
            venv_arg,
        ]));
        if !bare.status.success() {
            panic!(
                "cannot create a virtualenv with `{BASE_PYTHON} -m venv {}`:\n{}\n{}",
                venv.display(),
                describe(&created),
                describe(&bare)
            );
        }
        command_output(
            Command::new(BASE_PYTHON)
                .args(["-m", "pip", "--python"])
                .arg(python)
                .args(pip_install)
                .arg(requirements),
        )
    };
    if !installed.status.success() {
        remove_dir(venv);
        panic!(
            "cannot install {} into {}:\n{}",
            requirements.display(),
            venv.display(),
            describe(&installed)
        );
    }
}

fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove {}: {e}", dir.display()),
    }
}

/// Runs `command` to its end; Python settings of the caller's environment
/// that would mix other packages into the test environment are left out.
fn command_output(command: &mut Command) -> Output {
    command
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONSTARTUP")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"))
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs the Python program `code` with `args` (in `sys.argv[1:]`) in the
/// test environment and returns what it printed.
///
/// # Panics
/// When the program fails, with its error output.
pub fn run_python<I, S>(code: &str, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let output = command_output(Command::new(python_env()).arg("-c").arg(code).args(args));
    if !output.status.success() {
        // The program first, its errors last, where they are seen.
        panic!(
            "a Python program failed\n--- program\n{code}\n--- {}",
            describe(&output)
        );
    }
    String::from_utf8(output.stdout).expect("the Python program prints UTF-8")
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
