//! Running the `weir` binary from the end-to-end tests: a command in the
//! package's directory with its own temporary directory, its output as
//! text, and the id of the job a running `weir run` shows in `weir list`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

/// A `weir` command run in the package's directory, with `tmp` as its
/// temporary directory (where running jobs are registered) and no
/// configuration file from the environment.
pub fn weir(tmp: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("TMPDIR", tmp)
        .env_remove("WEIR_CONFIG");
    command
}

/// The statements of a script that runs in streaming mode at parallelism
/// 2, checkpointing every `interval` into `checkpoints`.
pub fn streaming_settings(checkpoints: &Path, interval: &str) -> String {
    format!(
        "SET 'execution.runtime-mode' = 'streaming';
         SET 'execution.checkpointing.interval' = '{interval}';
         SET 'execution.checkpointing.dir' = '{}';
         SET 'parallelism.default' = '2';",
        checkpoints.display()
    )
}

/// Runs `command` to its end.
pub fn output(mut command: Command) -> Output {
    command.output().expect("weir runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What an ended job wrote to its standard error (when it was piped).
pub fn stderr(job: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut err) = job.stderr.take() {
        std::io::Read::read_to_string(&mut err, &mut text).expect("reads");
    }
    text
}

/// Waits until `weir list` shows a job, and returns its id.
pub fn running_job(tmp: &Path, job: &mut Child) -> String {
    let started = Instant::now();
    loop {
        let list = output({
            let mut c = weir(tmp);
            c.arg("list");
            c
        });
        if let Some(id) = text(&list.stdout).lines().next() {
            return id.to_string();
        }
        if let Some(status) = job.try_wait().expect("waits") {
            panic!(
                "the job ended before it was listed: {status}: {}",
                stderr(job)
            );
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no job listed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The number of the latest completed checkpoint under `checkpoints` (of
/// any job), and the directory of the job that took it.
pub fn latest_checkpoint(checkpoints: &Path) -> Option<(u64, PathBuf)> {
    std::fs::read_dir(checkpoints)
        .ok()?
        .flatten()
        .flat_map(|job| {
            std::fs::read_dir(job.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(move |chk| (job.path(), chk))
        })
        .filter(|(_, chk)| chk.path().join("_metadata").exists())
        .filter_map(|(job, chk)| {
            let n = chk
                .file_name()
                .to_str()?
                .strip_prefix("chk-")?
                .parse()
                .ok()?;
            Some((n, job))
        })
        .max()
}

/// What a kill of a running job found.
pub struct Killed {
    /// The directory of the job whose checkpoint completed first (`None`:
    /// the job ended before one did).
    pub job_dir: Option<PathBuf>,
    /// Whether the job still ran when it was killed.
    pub mid_stream: bool,
}

/// Waits until a checkpoint under `checkpoints` completed (or `job`
/// ended), waits `delay` more, and kills `job` with SIGKILL.
pub fn kill_after_first_checkpoint(job: &mut Child, checkpoints: &Path, delay: Duration) -> Killed {
    let started = Instant::now();
    let job_dir = loop {
        if let Some((_, dir)) = latest_checkpoint(checkpoints) {
            break Some(dir);
        }
        if job.try_wait().expect("waits").is_some() {
            break None;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no checkpoint");
        std::thread::sleep(Duration::from_micros(200));
    };
    std::thread::sleep(delay);
    let mid_stream = job.try_wait().expect("waits").is_none();
    let _ = job.kill();
    job.wait().expect("ends");
    Killed {
        job_dir,
        mid_stream,
    }
}
