//! A directory of files in an object store that weir owns: the root of
//! blocking partitions or of checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};

use crate::{Error, Result, StoreUrl};

/// Files under one URL: a local directory, `memory://` or any object store
/// URL, with paths relative to it.
#[derive(Debug, Clone)]
pub struct StoreRoot {
    store: Arc<dyn ObjectStore>,
    url: String,
    local_dir: Option<std::path::PathBuf>,
    /// Whether every process reaches the same files under this URL (an
    /// object store), not only this one (a local directory, memory).
    shared: bool,
}

impl StoreRoot {
    /// Opens the root at `url`: `memory://` (private to this root), a plain
    /// local path or `file:///dir` (created when missing), or an object
    /// store URL such as `s3://bucket/prefix` (see [`StoreUrl`]), with
    /// `options` (the [`STORE_OPTIONS`](crate::store_url::STORE_OPTIONS):
    /// endpoint, region, credentials). `what` names the root in errors.
    ///
    /// # Errors
    /// When the URL is not supported or the directory cannot be created.
    pub fn try_new(url: &str, what: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let Some(location) = locate(url, options)? else {
            return Ok(Self {
                store: Arc::new(InMemory::new()),
                url: url.to_string(),
                local_dir: None,
                shared: false,
            });
        };
        let Some(dir) = location.local_path() else {
            return Ok(Self {
                store: Arc::new(PrefixStore::new(
                    Arc::clone(location.store()),
                    location.path().clone(),
                )),
                url: url.to_string(),
                local_dir: None,
                shared: true,
            });
        };
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::Config(format!(
                "cannot create {what} directory '{}': {e}",
                dir.display()
            ))
        })?;
        let dir = dir.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            url: url.to_string(),
            local_dir: Some(dir),
            shared: false,
        })
    }

    /// Whether `url` names a root every process reaches (an object store
    /// URL), found without opening it: a local directory is not created.
    ///
    /// # Errors
    /// When `url` is not a store URL weir knows.
    pub fn names_shared(url: &str, options: &BTreeMap<String, String>) -> Result<bool> {
        Ok(locate(url, options)?.is_some_and(|location| location.local_path().is_none()))
    }

    /// The files of `store`, which only this process reaches, named `url`
    /// in messages.
    pub fn of_store(store: Arc<dyn ObjectStore>, url: String) -> Self {
        Self {
            store,
            url,
            local_dir: None,
            shared: false,
        }
    }

    /// Whether every process reaches the same files under this root (an
    /// object store URL), not only this one (a local directory, memory).
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The URL this root was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store holding the files.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Removes every file under `prefix` (or the file `prefix` names).
    ///
    /// # Errors
    /// When the files cannot be listed or deleted.
    pub async fn remove_prefix(&self, prefix: &str) -> Result<()> {
        if let Some(dir) = &self.local_dir {
            let path = dir.join(prefix);
            let removed = if path.is_file() {
                tokio::fs::remove_file(&path).await
            } else {
                tokio::fs::remove_dir_all(&path).await
            };
            return match removed {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        let prefix = Path::from(prefix);
        let files: Vec<_> = self.store.list(Some(&prefix)).try_collect().await?;
        for file in files {
            match self.store.delete(&file.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Where `url` points: `None` for `memory://`, a store private to the
/// root opened on it.
fn locate(url: &str, options: &BTreeMap<String, String>) -> Result<Option<StoreUrl>> {
    if url.starts_with("memory://") {
        return Ok(None);
    }
    StoreUrl::parse(url, options).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_object_store_urls_name_shared_roots_and_nothing_is_created() {
        let tmp = tempfile::tempdir().expect("a directory");
        let local = tmp.path().join("not-yet");
        let options = BTreeMap::new();
        let local_url = local.display().to_string();
        assert!(!StoreRoot::names_shared(&local_url, &options).expect("a path"));
        assert!(!local.exists(), "asking created the directory");
        let file_url = format!("file://{local_url}");
        assert!(!StoreRoot::names_shared(&file_url, &options).expect("a file URL"));
        assert!(!StoreRoot::names_shared("memory://", &options).expect("memory"));
        assert!(StoreRoot::names_shared("s3://bucket/shuffle", &options).expect("s3"));
    }
}
