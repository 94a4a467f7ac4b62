//! Installing a tool the tests need once, however many test threads and
//! test binaries ask for it at the same time.

use std::fs::File;
use std::path::Path;

/// Runs `install` unless `ready` says the tool is there, holding an
/// exclusive lock on file `lock` in `dir` meanwhile: whoever comes second
/// waits, then finds it ready.
///
/// # Panics
/// When `dir` or the lock cannot be made.
pub fn install_once(dir: &Path, lock: &str, ready: impl Fn() -> bool, install: impl FnOnce()) {
    if ready() {
        return;
    }
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let lock_path = dir.join(lock);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", lock_path.display()));
    // Held until `lock` is dropped.
    lock.lock()
        .unwrap_or_else(|e| panic!("cannot lock {}: {e}", lock_path.display()));
    if !ready() {
        install();
    }
}
