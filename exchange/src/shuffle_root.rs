//! Where blocking result partitions live.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use crate::{Error, Result, StoreUrl};

/// Identifies one blocking result partition: the output of one attempt of
/// one producer subtask on one edge (an intermediate dataset) of a job.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResultPartitionId {
    /// The intermediate dataset (the job edge) this partition belongs to.
    pub dataset: u32,
    /// The producer subtask's index within its vertex.
    pub producer: u32,
    /// The producer's attempt number: a rerun writes a new partition, so it
    /// never overwrites what a running consumer reads.
    pub attempt: u32,
}

impl fmt::Display for ResultPartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}/p{}-a{}", self.dataset, self.producer, self.attempt)
    }
}

/// The root under which a job's blocking partitions are written: a local
/// directory (the default) or any object store URL.
///
/// Files of job `J` live under `J/`, so one job's partitions are removed
/// together by [`ShuffleRoot::remove_job`].
#[derive(Debug, Clone)]
pub struct ShuffleRoot {
    store: Arc<dyn ObjectStore>,
    url: String,
    local_dir: Option<std::path::PathBuf>,
}

impl ShuffleRoot {
    /// Opens a shuffle root from a URL: `memory://` (private to this root),
    /// a plain local path or `file:///dir` (created when missing), or an
    /// object store URL such as `s3://bucket/prefix` (see [`StoreUrl`]).
    ///
    /// # Errors
    /// When the URL is not supported or the directory cannot be created.
    pub fn try_new(url: &str) -> Result<Self> {
        if url.starts_with("memory://") {
            return Ok(Self {
                store: Arc::new(InMemory::new()),
                url: url.to_string(),
                local_dir: None,
            });
        }
        let location = StoreUrl::parse(url, &BTreeMap::new())?;
        let Some(dir) = location.local_path() else {
            return Ok(Self {
                store: Arc::new(PrefixStore::new(
                    Arc::clone(location.store()),
                    location.path().clone(),
                )),
                url: url.to_string(),
                local_dir: None,
            });
        };
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::Config(format!(
                "cannot create shuffle root directory '{}': {e}",
                dir.display()
            ))
        })?;
        let dir = dir.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&dir)?.with_automatic_cleanup(true);
        Ok(Self {
            store: Arc::new(store),
            url: url.to_string(),
            local_dir: Some(dir),
        })
    }

    /// The URL this root was opened from.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The object store holding the files.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The path of a partition file of `job` with the given file extension.
    pub fn partition_path(&self, job: &str, id: &ResultPartitionId, extension: &str) -> Path {
        Path::from(format!(
            "{job}/d{}/p{}-a{}.{extension}",
            id.dataset, id.producer, id.attempt
        ))
    }

    /// Removes every file of `job`. Called when a job ends, whether it
    /// succeeded or failed.
    ///
    /// # Errors
    /// When the files cannot be listed or deleted.
    pub async fn remove_job(&self, job: &str) -> Result<()> {
        if let Some(dir) = &self.local_dir {
            let job_dir = dir.join(job);
            return match tokio::fs::remove_dir_all(&job_dir).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        let prefix = Path::from(job);
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
