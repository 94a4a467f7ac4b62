//! Publishing staged files all at once: commit manifests.
//!
//! Moving staged files into a table root takes one rename per file, and a
//! process can be killed between any two. So a commit is first written
//! down whole, as one object: a manifest under `<root>/_weir_commits/`
//! naming every file to publish (staged path and target) and every file to
//! remove (`overwrite` mode). From the moment the manifest exists and is
//! decided, the commit has happened:
//!
//! - weir's readers ([`CommitView`]) see its targets, reading a file from
//!   its staged place while it is not moved yet, and no longer see the
//!   files it removes: a table holds none or all of a commit's files;
//! - whoever finds it later (the next job writing to the root) finishes
//!   it, renaming what is still staged; renaming again is harmless, so it
//!   does not matter who finishes, or how often.
//!
//! The manifest of a checkpoint's files is written before the checkpoint
//! completes, with the URL of the checkpoint's metadata as its decision
//! ([`CommitManifest::decided_by`]): the commit counts once that file
//! exists. A manifest whose checkpoint never completed and whose owner is
//! gone is dropped, with its staged files.
//!
//! Once every file is in place, the manifest is removed.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use weir_exchange::StoreUrl;
use weir_exchange::job_owner::JobOwner;

use crate::{Error, Result};

/// The hidden directory under a sink's root holding commit manifests.
pub const COMMITS_DIR: &str = "_weir_commits";

/// One commit of a file sink, as written down before any file moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CommitManifest {
    /// The job whose files these are.
    pub job: String,
    /// The checkpoint whose files these are; `None` for a job's end.
    pub checkpoint: Option<u64>,
    /// The URL of the file whose existence decides the commit (a
    /// checkpoint's metadata); `None` when the manifest's existence does.
    pub decided_by: Option<String>,
    /// The process that wrote it.
    pub owner: JobOwner,
    /// Store paths of the files to publish: (staged, target).
    pub publish: Vec<(String, String)>,
    /// Store paths of visible files to remove.
    pub remove: Vec<String>,
}

/// Whether a manifest's commit happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// It happened: its files are the table's.
    Committed,
    /// Not (yet): its checkpoint has not completed.
    Open,
}

/// The commits directory of `root`.
pub fn commits_dir(root: &Path) -> Path {
    root.clone().join(COMMITS_DIR)
}

fn store_error(root: &StoreUrl, path: &Path, source: object_store::Error) -> Error {
    Error::Store {
        url: root.url_of(path),
        source,
    }
}

impl CommitManifest {
    /// Writes the manifest as `<root>/_weir_commits/<name>.json`, in one
    /// put (whole or not at all), and returns its path.
    ///
    /// # Errors
    /// [`Error::Store`] when it cannot be written.
    pub async fn write(&self, root: &StoreUrl, name: &str) -> Result<Path> {
        let path = commits_dir(root.path()).join(format!("{name}.json"));
        let json = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        root.store()
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| store_error(root, &path, e))?;
        Ok(path)
    }

    /// Whether the commit happened: always, unless its deciding file is
    /// missing. `options` open that file's store.
    ///
    /// # Errors
    /// When the deciding file cannot be looked at.
    pub async fn decision(&self, options: &BTreeMap<String, String>) -> Result<Decision> {
        let Some(url) = &self.decided_by else {
            return Ok(Decision::Committed);
        };
        let at = StoreUrl::parse(url, options).map_err(|e| Error::Option {
            option: "path".to_string(),
            message: format!("the checkpoint deciding commit of job {}: {e}", self.job),
        })?;
        match at.store().head(at.path()).await {
            Ok(_) => Ok(Decision::Committed),
            Err(object_store::Error::NotFound { .. }) => Ok(Decision::Open),
            Err(e) => Err(store_error(&at, at.path(), e)),
        }
    }

    /// Carries the commit out in `root`'s store: moves every staged file
    /// still staged to its target and removes the files to remove. Doing
    /// it again changes nothing.
    ///
    /// # Errors
    /// [`Error::Store`] when a file cannot be moved or removed, or when a
    /// file is neither staged nor published (it was lost).
    pub async fn apply(&self, root: &StoreUrl) -> Result<()> {
        let store = root.store();
        for (staged, target) in &self.publish {
            let (staged, target) = (stored(staged), stored(target));
            match store.rename(&staged, &target).await {
                Ok(()) => {}
                Err(object_store::Error::NotFound { .. }) if store.head(&target).await.is_ok() => {}
                Err(e) => return Err(store_error(root, &staged, e)),
            }
        }
        for removed in &self.remove {
            let removed = stored(removed);
            match store.delete(&removed).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(root, &removed, e)),
            }
        }
        Ok(())
    }
}

/// Every manifest under `root`'s commits directory, by path.
///
/// # Errors
/// When the directory cannot be listed, or a manifest is unreadable.
pub async fn read_manifests(root: &StoreUrl) -> Result<Vec<(Path, CommitManifest)>> {
    let dir = commits_dir(root.path());
    let store = root.store();
    let listed: Vec<ObjectMeta> = match store.list(Some(&dir)).try_collect().await {
        Ok(listed) => listed,
        Err(object_store::Error::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(store_error(root, &dir, e)),
    };
    let mut manifests = Vec::new();
    for meta in listed {
        if meta.location.extension() != Some("json") {
            continue;
        }
        let bytes = match store.get(&meta.location).await {
            Ok(got) => got.bytes().await,
            Err(e) => Err(e),
        };
        let bytes = match bytes {
            Ok(bytes) => bytes,
            // Finished and removed since it was listed.
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(store_error(root, &meta.location, e)),
        };
        let manifest = parse_manifest(root, &meta.location, &bytes)?;
        manifests.push((meta.location, manifest));
    }
    Ok(manifests)
}

/// The manifest `<root>/_weir_commits/<name>.json`, with its path, if it
/// exists.
///
/// # Errors
/// When it cannot be read, or is not a manifest.
pub async fn read_manifest(root: &StoreUrl, name: &str) -> Result<Option<(Path, CommitManifest)>> {
    let path = commits_dir(root.path()).join(format!("{name}.json"));
    let bytes = match root.store().get(&path).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    match bytes {
        Ok(bytes) => Ok(Some((path.clone(), parse_manifest(root, &path, &bytes)?))),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(store_error(root, &path, e)),
    }
}

fn parse_manifest(root: &StoreUrl, path: &Path, bytes: &[u8]) -> Result<CommitManifest> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        file: root.url_of(path),
        message: format!("not a commit manifest: {e}"),
    })
}

/// Removes a finished commit's manifest (and, in a local store, the
/// commits directory once it is empty).
///
/// # Errors
/// [`Error::Store`] when the manifest cannot be removed.
pub async fn remove_manifest(root: &StoreUrl, manifest: &Path) -> Result<()> {
    match root.store().delete(manifest).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(store_error(root, manifest, e)),
    }
    if let Some(dir) = root.with_path(commits_dir(root.path())).local_path() {
        let _ = tokio::fs::remove_dir(dir).await;
    }
    Ok(())
}

/// What the commits under a table's root (and its ancestors) change in
/// what readers see of it: committed files still staged, and files that
/// committed `overwrite`s removed.
#[derive(Debug, Default)]
pub struct CommitView {
    /// Target path -> the staged file standing for it.
    staged: HashMap<Path, Path>,
    /// Files readers no longer see.
    removed: HashSet<Path>,
    /// The manifests seen, to tell whether a commit ran meanwhile.
    manifests: Vec<Path>,
}

impl CommitView {
    /// Reads the commits of `root` and of each directory above it.
    ///
    /// # Errors
    /// When a commits directory cannot be listed or a manifest read.
    pub async fn read(root: &StoreUrl, options: &BTreeMap<String, String>) -> Result<Self> {
        let mut view = Self::default();
        let mut dir = Some(root.path().clone());
        while let Some(at) = dir {
            let manifests = match read_manifests(&root.with_path(at.clone())).await {
                Ok(manifests) => manifests,
                // A directory above the table's may not be the reader's to
                // list (object store permissions scoped to a prefix).
                Err(_) if at != *root.path() => Vec::new(),
                Err(e) => return Err(e),
            };
            for (path, manifest) in manifests {
                view.manifests.push(path);
                if manifest.decision(options).await? == Decision::Open {
                    continue;
                }
                for (staged, target) in manifest.publish {
                    view.staged.insert(stored(&target), stored(&staged));
                }
                view.removed
                    .extend(manifest.remove.iter().map(|r| stored(r)));
            }
            dir = parent(&at);
        }
        Ok(view)
    }

    /// Whether `other` was read with the same commits in place.
    pub fn same_commits(&self, other: &Self) -> bool {
        self.manifests == other.manifests
    }

    /// `listed` (the visible files under `root`, as (where the bytes are,
    /// the path the file has)) as readers see it: without removed files,
    /// with committed files still staged, in path order.
    ///
    /// # Errors
    /// When a staged file cannot be looked at.
    pub async fn apply(
        &self,
        root: &StoreUrl,
        mut listed: Vec<(ObjectMeta, Path)>,
    ) -> Result<Vec<(ObjectMeta, Path)>> {
        listed.retain(|(meta, _)| !self.removed.contains(&meta.location));
        let present: HashSet<Path> = listed.iter().map(|(_, path)| path.clone()).collect();
        for (target, staged) in &self.staged {
            if present.contains(target) || target.prefix_match(root.path()).is_none() {
                continue;
            }
            match root.store().head(staged).await {
                Ok(meta) => listed.push((meta, target.clone())),
                // Moved since the listing: the listing is read again.
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(root, staged, e)),
            }
        }
        listed.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(listed)
    }
}

/// The store path a manifest names: the text of a [`Path`], whose
/// segments are escaped already (escaping them again would name another
/// file).
pub fn stored(path: &str) -> Path {
    Path::parse(path).unwrap_or_else(|_| Path::from(path))
}

/// The directory above `path`, if any.
fn parent(path: &Path) -> Option<Path> {
    let parts: Vec<_> = path.parts().collect();
    (!parts.is_empty()).then(|| Path::from_iter(parts[..parts.len() - 1].iter().cloned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> StoreUrl {
        StoreUrl::parse(&format!("memory://{name}/table"), &BTreeMap::new()).unwrap()
    }

    async fn put(root: &StoreUrl, path: &str) {
        root.store()
            .put(&Path::from(path), PutPayload::from_static(b"x"))
            .await
            .unwrap();
    }

    fn manifest(decided_by: Option<String>) -> CommitManifest {
        CommitManifest {
            job: "j".to_string(),
            checkpoint: None,
            decided_by,
            owner: JobOwner::current("j"),
            publish: vec![
                (
                    "table/_weir_staging/j/0-0/a".to_string(),
                    "table/a".to_string(),
                ),
                (
                    "table/_weir_staging/j/0-0/b".to_string(),
                    "table/b".to_string(),
                ),
            ],
            remove: vec!["table/old".to_string()],
        }
    }

    async fn seen(root: &StoreUrl) -> Vec<(String, String)> {
        let listed: Vec<ObjectMeta> = root
            .store()
            .list(Some(root.path()))
            .try_collect()
            .await
            .unwrap();
        let visible = listed
            .into_iter()
            .filter(|m| !m.location.as_ref().contains("/_"))
            .map(|m| {
                let path = m.location.clone();
                (m, path)
            })
            .collect();
        let view = CommitView::read(root, &BTreeMap::new()).await.unwrap();
        view.apply(root, visible)
            .await
            .unwrap()
            .into_iter()
            .map(|(m, p)| (m.location.to_string(), p.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn readers_see_a_commit_whole_at_every_step() {
        let root = root("commit-steps");
        put(&root, "table/old").await;
        put(&root, "table/_weir_staging/j/0-0/a").await;
        put(&root, "table/_weir_staging/j/0-0/b").await;
        let before = vec![("table/old".to_string(), "table/old".to_string())];
        assert_eq!(seen(&root).await, before);
        let manifest = manifest(None);
        let path = manifest.write(&root, "j").await.unwrap();
        let all = vec![
            (
                "table/_weir_staging/j/0-0/a".to_string(),
                "table/a".to_string(),
            ),
            (
                "table/_weir_staging/j/0-0/b".to_string(),
                "table/b".to_string(),
            ),
        ];
        assert_eq!(seen(&root).await, all);
        // Half moved, as a kill would leave it.
        root.store()
            .rename(
                &Path::from("table/_weir_staging/j/0-0/a"),
                &Path::from("table/a"),
            )
            .await
            .unwrap();
        let targets: Vec<String> = seen(&root).await.into_iter().map(|(_, p)| p).collect();
        assert_eq!(targets, ["table/a", "table/b"]);
        // Finished by someone else, then again: nothing changes.
        manifest.apply(&root).await.unwrap();
        manifest.apply(&root).await.unwrap();
        remove_manifest(&root, &path).await.unwrap();
        let moved = vec![
            ("table/a".to_string(), "table/a".to_string()),
            ("table/b".to_string(), "table/b".to_string()),
        ];
        assert_eq!(seen(&root).await, moved);
    }

    #[tokio::test]
    async fn a_commit_waits_for_the_file_that_decides_it() {
        let root = root("commit-decided");
        put(&root, "table/old").await;
        put(&root, "table/_weir_staging/j/0-0/a").await;
        put(&root, "table/_weir_staging/j/0-0/b").await;
        let decider = "memory://commit-decided/checkpoints/chk-1/_metadata".to_string();
        let manifest = manifest(Some(decider.clone()));
        manifest.write(&root, "j-chk-1").await.unwrap();
        assert_eq!(
            manifest.decision(&BTreeMap::new()).await.unwrap(),
            Decision::Open
        );
        assert_eq!(seen(&root).await.len(), 1, "an open commit is not seen");
        put(&root, "checkpoints/chk-1/_metadata").await;
        assert_eq!(
            manifest.decision(&BTreeMap::new()).await.unwrap(),
            Decision::Committed
        );
        assert_eq!(seen(&root).await.len(), 2, "a decided one is");
    }

    #[tokio::test]
    async fn a_lost_staged_file_is_an_error() {
        let root = root("commit-lost");
        put(&root, "table/_weir_staging/j/0-0/a").await;
        let error = manifest(None).apply(&root).await.unwrap_err();
        assert!(
            error.to_string().contains("_weir_staging/j/0-0/b"),
            "{error}"
        );
    }
}
