//! A full disk: a job whose shuffle root, spill directory or sink lies on
//! a small, real file system (a 1 MiB tmpfs) fails saying which directory
//! filled up, and leaves no output visible.
//!
//! Mounting needs root (as CI runs); elsewhere the test says it did not
//! run and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of 1 MiB mounted at a directory of its own, unmounted on drop.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(parent: &Path) -> Option<Self> {
        let dir = parent.join("small");
        std::fs::create_dir_all(&dir).expect("creates the mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&dir)
            .output()
            .is_ok_and(|out| out.status.success());
        mounted.then_some(Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

fn weir(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("WEIR_CONFIG")
        .args(args)
        .args(["-D", "restart-strategy.type=none", "--progress", "none"])
        .output()
        .expect("weir runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Asserts that a run failed for a full disk, naming `place`.
fn assert_disk_full(ok: bool, stderr: &str, place: &str) {
    assert!(!ok, "the job failed");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(stderr.contains(place), "names {place}: {stderr}");
}

#[test]
fn a_full_disk_names_the_directory_that_filled_up() {
    let tmp = tempfile::tempdir().expect("a directory");
    let Some(disk) = SmallDisk::mount(tmp.path()) else {
        eprintln!("not run: mounting a tmpfs needs root");
        return;
    };
    let lineitem = "lineitem=data/tpch/sf0.01/lineitem.parquet";

    let shuffle = disk.dir.join("shuffle");
    let (ok, stderr) = weir(&[
        "sql",
        "SELECT l_comment, count(*) FROM lineitem GROUP BY l_comment LIMIT 1",
        "--table",
        lineitem,
        "-p",
        "2",
        "-D",
        &format!("shuffle.root={}", shuffle.display()),
    ]);
    assert_disk_full(
        ok,
        &stderr,
        &format!("under the shuffle root {}", shuffle.display()),
    );

    let spill = disk.dir.join("spill");
    let (ok, stderr) = weir(&[
        "sql",
        "SELECT * FROM lineitem ORDER BY l_comment",
        "--table",
        lineitem,
        "-p",
        "1",
        "-D",
        "memory.per-slot=1mb",
        "-D",
        &format!("spill.dir={}", spill.display()),
    ]);
    assert_disk_full(ok, &stderr, &format!("spill file {}", spill.display()));

    let out = disk.dir.join("out");
    let script = tmp.path().join("copy.sql");
    std::fs::write(
        &script,
        format!(
            "CREATE TABLE l WITH ('connector' = 'parquet', 'path' = 'data/tpch/sf0.01/lineitem.parquet');
             CREATE TABLE o WITH ('connector' = 'csv', 'path' = '{}');
             INSERT INTO o SELECT * FROM l;",
            out.display()
        ),
    )
    .expect("writes the script");
    let (ok, stderr) = weir(&["run", script.to_str().expect("utf-8")]);
    assert_disk_full(ok, &stderr, &format!("file://{}/", out.display()));
    // Nothing of the failed job is visible, nothing staged is left.
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
