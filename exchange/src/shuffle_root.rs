//! Where blocking result partitions live.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::store_root::StoreRoot;

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
    root: StoreRoot,
}

impl ShuffleRoot {
    /// Opens a shuffle root from a URL with store options (see
    /// [`StoreRoot::try_new`]).
    ///
    /// # Errors
    /// When the URL is not supported or the directory cannot be created.
    pub fn try_new(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        Ok(Self {
            root: StoreRoot::try_new(url, "shuffle root", options)?,
        })
    }

    /// The partitions under `root`.
    pub fn of(root: StoreRoot) -> Self {
        Self { root }
    }

    /// Whether `url` names a shared root (see
    /// [`is_shared`](Self::is_shared)), found without opening it.
    ///
    /// # Errors
    /// When `url` is not a store URL weir knows.
    pub fn names_shared(url: &str, options: &BTreeMap<String, String>) -> Result<bool> {
        StoreRoot::names_shared(url, options)
    }

    /// Whether every process of a cluster reaches the same files under
    /// this root (an object store), so a partition outlives the process
    /// that wrote it; otherwise each process has its own (a local
    /// directory), served to the others by its exchange service.
    pub fn is_shared(&self) -> bool {
        self.root.is_shared()
    }

    /// The URL this root was opened from.
    pub fn url(&self) -> &str {
        self.root.url()
    }

    /// The object store holding the files.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.root.store()
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
        self.root.remove_prefix(job).await
    }
}
