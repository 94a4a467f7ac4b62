//! Which process a job's files belong to.
//!
//! A job that is killed (SIGKILL, a lost machine) leaves what it wrote
//! behind: staged sink files, blocking partitions, spill files. Each of
//! those lives in a directory of its own per job, holding an [`OWNER_FILE`]
//! that names the process running the job: its host, its process id and
//! when that process started (the boot and the start time, so a process id
//! used again later is not mistaken for the owner). The next job to find
//! such a directory removes it when its owner is provably gone
//! ([`Liveness::Dead`]); a directory of another host, or whose owner cannot
//! be checked, is kept.

use std::sync::LazyLock;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// The file naming a job directory's owner.
pub const OWNER_FILE: &str = "_owner";

/// The process a job runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOwner {
    /// The job's id.
    pub job: String,
    /// The host name of the machine.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The machine's boot and the process's start time in it
    /// (`<boot id>:<clock ticks>`), when the system tells them.
    pub started: Option<String>,
}

/// Whether an owner still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (or a process of this host with its id and start time does).
    Alive,
    /// It is gone: its files are nobody's.
    Dead,
    /// It runs on another host, or this system cannot tell.
    Unknown,
}

static HOST: LazyLock<String> = LazyLock::new(|| {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
});

static BOOT: LazyLock<Option<String>> = LazyLock::new(|| {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|b| b.trim().to_string())
});

/// When process `pid` started, as [`JobOwner::started`] says it; `None`
/// when it does not run or the system does not tell.
fn start_of(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count fields after
    // its closing parenthesis. The start time is field 22 of the line,
    // the 20th after the name.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let ticks = after_name.split_whitespace().nth(19)?;
    Some(format!("{}:{ticks}", BOOT.as_deref()?))
}

impl JobOwner {
    /// This process, running `job`.
    pub fn current(job: &str) -> Self {
        let pid = std::process::id();
        Self {
            job: job.to_string(),
            host: HOST.clone(),
            pid,
            started: start_of(pid),
        }
    }

    /// Whether the owner still runs.
    pub fn liveness(&self) -> Liveness {
        if self.host != *HOST {
            return Liveness::Unknown;
        }
        let Some(started) = &self.started else {
            return Liveness::Unknown;
        };
        if !std::path::Path::new("/proc/self/stat").exists() {
            return Liveness::Unknown;
        }
        match start_of(self.pid) {
            Some(now) if now == *started => Liveness::Alive,
            _ => Liveness::Dead,
        }
    }

    /// Records this owner in `dir`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub async fn write(&self, store: &dyn ObjectStore, dir: &Path) -> object_store::Result<()> {
        let json = serde_json::to_vec(self).expect("an owner serializes");
        store
            .put(&dir.clone().join(OWNER_FILE), PutPayload::from(json))
            .await
            .map(|_| ())
    }

    /// The owner recorded in `dir`, if any (an unreadable record counts as
    /// none).
    pub async fn read(store: &dyn ObjectStore, dir: &Path) -> Option<Self> {
        let bytes = store
            .get(&dir.clone().join(OWNER_FILE))
            .await
            .ok()?
            .bytes()
            .await
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// The job directories directly under `root` whose owners are gone, with
/// their owners.
///
/// # Errors
/// When `root` cannot be listed.
pub async fn orphaned_jobs(
    store: &dyn ObjectStore,
    root: &Path,
) -> object_store::Result<Vec<(Path, JobOwner)>> {
    let listed = match store.list_with_delimiter(Some(root)).await {
        Ok(listed) => listed,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut orphans = Vec::new();
    for dir in listed.common_prefixes {
        if let Some(owner) = JobOwner::read(store, &dir).await
            && owner.liveness() == Liveness::Dead
        {
            orphans.push((dir, owner));
        }
    }
    Ok(orphans)
}

/// Removes every object under `prefix`, the owner records last: a removal
/// cut short leaves a directory that still names its owner, to be removed
/// later. (In a local store, the directories left empty are the caller's
/// to remove.)
///
/// # Errors
/// When the objects cannot be listed or deleted.
pub async fn remove_all(store: &dyn ObjectStore, prefix: &Path) -> object_store::Result<()> {
    let mut listed: Vec<_> = store.list(Some(prefix)).try_collect().await?;
    listed.sort_by_key(|meta| meta.location.filename() == Some(OWNER_FILE));
    for meta in listed {
        match store.delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;

    use super::*;

    #[test]
    fn this_process_is_alive_and_a_gone_one_dead() {
        let me = JobOwner::current("job-1");
        assert_eq!(me.liveness(), Liveness::Alive);
        let mut child = std::process::Command::new("true").spawn().expect("spawns");
        let pid = child.id();
        child.wait().expect("waits");
        let gone = JobOwner {
            pid,
            started: me.started.clone(),
            ..me.clone()
        };
        assert_eq!(gone.liveness(), Liveness::Dead);
        // The same process id, started at another time: another process.
        let reused = JobOwner {
            started: Some("other-boot:1".to_string()),
            ..me.clone()
        };
        assert_eq!(reused.liveness(), Liveness::Dead);
        let elsewhere = JobOwner {
            host: format!("{}-elsewhere", me.host),
            ..gone
        };
        assert_eq!(elsewhere.liveness(), Liveness::Unknown);
    }

    #[tokio::test]
    async fn orphans_are_the_directories_of_dead_owners() {
        let store = InMemory::new();
        let root = Path::from("staging");
        let me = JobOwner::current("live");
        me.write(&store, &root.clone().join("live")).await.unwrap();
        let dead = JobOwner {
            job: "dead".to_string(),
            started: Some("other-boot:1".to_string()),
            ..me.clone()
        };
        dead.write(&store, &root.clone().join("dead"))
            .await
            .unwrap();
        store
            .put(
                &Path::from("staging/unowned/x"),
                PutPayload::from_static(b"x"),
            )
            .await
            .unwrap();
        let orphans = orphaned_jobs(&store, &root).await.unwrap();
        assert_eq!(orphans, vec![(root.clone().join("dead"), dead)]);
        remove_all(&store, &root.clone().join("dead"))
            .await
            .unwrap();
        assert!(JobOwner::read(&store, &root.join("dead")).await.is_none());
    }
}
