//! The Python environment of the interop and differential tests, in
//! `<workspace>/target/test-python`: created on first use (`python3 -m
//! venv`, then `pip install -r formats/tests/requirements.txt`) under an
//! exclusive file lock, so that test threads and test binaries running at
//! the same time install it once; reused as long as `requirements.txt` has
//! not changed (a marker file holds its hash). The formats crate's tests
//! and the root package's share this file.

#![allow(dead_code)]

#[path = "install_once.rs"]
mod install_once;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use install_once::install_once;

/// The workspace's root directory: the nearest directory above the crate
/// holding `Cargo.lock`.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .expect("the crate is inside the workspace")
        .to_path_buf()
}

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
    workspace().join("target").join("test-python")
}

/// The program `program` of the environment at `venv`.
pub fn venv_bin(venv: &Path, program: &str) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join(format!("{program}.exe"))
    } else {
        venv.join("bin").join(program)
    }
}

fn requirements_file() -> PathBuf {
    workspace().join("formats/tests/requirements.txt")
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
    let target = venv.parent().expect("the venv has a parent");
    install_once(target, "test-python.lock", ready, || {
        install(&venv, &python, &requirements);
        std::fs::write(&marker, &wanted)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", marker.display()));
    });
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
