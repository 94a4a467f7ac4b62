//! The file sink: writes a job's rows as files of any [`FileFormat`] under
//! a root in any object store, visible only once the job succeeded.
//!
//! Every subtask attempt writes under a staging directory hidden from
//! readers, `<root>/_weir_staging/<job>/<subtask>-<attempt>/`; the job's
//! staging directory names the process that owns it
//! ([`JobOwner`](weir_exchange::job_owner::JobOwner)). When the whole job
//! succeeded, [`SinkFactory::commit_job`] publishes the files of the final
//! attempt of every subtask (and, in `overwrite` mode, removes the root's
//! visible files) in one step, a commit manifest ([`commit`]), then removes
//! the staging directory; a failed or cancelled job only removes its
//! staging directory. A job that fails therefore leaves no visible output,
//! a job killed while it commits leaves all of it or none, and a rerun
//! subtask's earlier attempts are never published.
//!
//! In checkpoints of streaming jobs it commits in two phases, as Flink's
//! file sink does: at a barrier an attempt completes the files it is
//! writing (in progress to pending, still staged); before the checkpoint
//! completes, their manifest is written, decided by the checkpoint's
//! metadata; once it completes they move into the root. A job restarted
//! from a checkpoint (or a savepoint) commits what it had pending again,
//! writes what followed it again into new files, and what a failed attempt
//! staged after the checkpoint is never published: exactly once.
//!
//! Whoever opens a sink on a root first finishes the commits that a killed
//! job left half done, drops those whose checkpoint never completed, and
//! removes the staging directories of jobs whose process is gone.
//!
//! With `partition-by`, rows go to hive-style `key=value` directories
//! (values escaped, see [`crate::hive`]) and the partition columns are not
//! written into the files. Files roll over at `sink.rolling.max-rows` rows
//! or about `sink.rolling.max-bytes` bytes.

pub mod commit;
mod encoder;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use weir_engine::expr::column_list;
use weir_engine::registry::ConnectorOptions;
use weir_engine::{CheckpointCommit, JobCommit, Sink, SinkFactory, TaskInfo};
use weir_exchange::StoreUrl;
use weir_exchange::job_owner::{self, JobOwner, Liveness};

use commit::{CommitManifest, Decision, read_manifests, remove_manifest};

pub use encoder::{FileEncoder, FileFormat, RowTextEncoder, SharedBuffer};

use crate::options::required_path;
use crate::{Error, Result};

/// The hidden directory under a sink's root where attempts stage files.
pub const STAGING_DIR: &str = "_weir_staging";

/// The options every file sink takes, besides `path` and its format's own.
pub const FILE_SINK_OPTIONS: [&str; 4] = [
    "partition-by",
    "sink.mode",
    "sink.rolling.max-rows",
    "sink.rolling.max-bytes",
];

/// What happens to files already under the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Keep them; new files get names no earlier job used (the default).
    Append,
    /// Remove them when the job commits.
    Overwrite,
    /// Refuse to start when the root has visible files.
    ErrorIfExists,
}

/// How a file sink writes.
#[derive(Debug, Clone)]
pub struct FileSinkOptions {
    /// Columns whose values name the partition directories, outermost first.
    pub partition_by: Vec<String>,
    /// What happens to existing files.
    pub mode: WriteMode,
    /// Start a new file after this many rows.
    pub max_rows_per_file: Option<usize>,
    /// Start a new file after about this many bytes.
    pub max_bytes_per_file: Option<usize>,
}

impl Default for FileSinkOptions {
    fn default() -> Self {
        Self {
            partition_by: Vec::new(),
            mode: WriteMode::Append,
            max_rows_per_file: None,
            max_bytes_per_file: Some(256 << 20),
        }
    }
}

impl FileSinkOptions {
    /// Reads the [`FILE_SINK_OPTIONS`] from connector options.
    ///
    /// # Errors
    /// [`Error::Option`] naming the option whose value is invalid.
    pub fn from_options(options: &ConnectorOptions) -> Result<Self> {
        let invalid = |option: &str, message: String| Error::Option {
            option: option.to_string(),
            message,
        };
        let mut parsed = Self::default();
        if let Some(columns) = options.get("partition-by") {
            parsed.partition_by = columns
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect();
        }
        if let Some(mode) = options.get("sink.mode") {
            parsed.mode = match mode.to_ascii_lowercase().as_str() {
                "append" => WriteMode::Append,
                "overwrite" => WriteMode::Overwrite,
                "error-if-exists" => WriteMode::ErrorIfExists,
                other => {
                    return Err(invalid(
                        "sink.mode",
                        format!(
                            "'{other}' is not a mode (valid: append, overwrite, error-if-exists)"
                        ),
                    ));
                }
            };
        }
        if let Some(rows) = options.get("sink.rolling.max-rows") {
            let rows: usize = rows.trim().parse().ok().filter(|r| *r > 0).ok_or_else(|| {
                invalid(
                    "sink.rolling.max-rows",
                    format!("'{rows}' is not a positive number of rows"),
                )
            })?;
            parsed.max_rows_per_file = Some(rows);
        }
        if let Some(bytes) = options.get("sink.rolling.max-bytes") {
            let size = weir_engine::memory::parse_bytes(bytes)
                .filter(|b| *b > 0)
                .ok_or_else(|| {
                    invalid(
                        "sink.rolling.max-bytes",
                        format!("'{bytes}' is not a size (e.g. 128MiB)"),
                    )
                })?;
            parsed.max_bytes_per_file = Some(size);
        }
        Ok(parsed)
    }
}

/// Writes files of one format under a root, committed with the job.
#[derive(Debug, Clone)]
pub struct FileSink {
    root: StoreUrl,
    format: Arc<dyn FileFormat>,
    options: FileSinkOptions,
    /// The schema of the rows the sink receives.
    schema: SchemaRef,
    /// The indices of the partition columns in `schema`.
    partition_columns: Vec<usize>,
    /// Held (shared) by every upload being completed, the step that makes
    /// a staged file appear. Completions run as tasks of their own, so a
    /// subtask cancelled while one is on the wire cannot leave it to land
    /// later; [`abort_job`](SinkFactory::abort_job) takes the lock
    /// exclusively, waiting for them, before it removes the staged files.
    completing: Arc<tokio::sync::RwLock<()>>,
    /// Whether `overwrite` mode removed the root's files already.
    overwritten: Arc<std::sync::atomic::AtomicBool>,
    /// The store options the sink was opened with: they open the store of
    /// a checkpoint deciding a commit, or of a root an earlier run of the
    /// job wrote to.
    store_options: BTreeMap<String, String>,
    /// The jobs whose staging directory names its owner already.
    claimed: Arc<tokio::sync::Mutex<HashSet<Arc<str>>>>,
}

/// What a subtask prepared at a checkpoint: the files it completed, staged
/// path and target, under its sink's root (absent in committables of
/// earlier versions: the sink's own root).
#[derive(serde::Serialize, serde::Deserialize)]
struct Committable {
    #[serde(default)]
    root: Option<String>,
    files: Vec<(String, String)>,
}

impl FileSink {
    /// A sink writing rows of `schema` as `format` files under `root`, a
    /// root of a store opened with `store_options`. It first recovers what
    /// killed jobs left under the root (see the module docs).
    ///
    /// # Errors
    /// [`Error::Option`] when a partition column is unknown, or every column
    /// is a partition column; or, in `error-if-exists` mode, the root holds
    /// files already; [`Error::Store`] when the root cannot be listed, or a
    /// commit left half done cannot be finished.
    pub async fn try_new(
        root: StoreUrl,
        format: Arc<dyn FileFormat>,
        schema: SchemaRef,
        options: FileSinkOptions,
        store_options: BTreeMap<String, String>,
    ) -> Result<Self> {
        let partition_columns = options
            .partition_by
            .iter()
            .map(|name| {
                schema.index_of(name).map_err(|_| Error::Option {
                    option: "partition-by".to_string(),
                    message: format!(
                        "no column '{name}' to partition by (columns: {})",
                        column_list(&schema)
                    ),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if !partition_columns.is_empty() && partition_columns.len() == schema.fields().len() {
            return Err(Error::Option {
                option: "partition-by".to_string(),
                message: "every column is a partition column: the files would hold nothing".into(),
            });
        }
        let sink = Self {
            root,
            format,
            options,
            schema,
            partition_columns,
            completing: Arc::default(),
            overwritten: Arc::default(),
            store_options,
            claimed: Arc::default(),
        };
        sink.recover().await?;
        if sink.options.mode == WriteMode::ErrorIfExists {
            let existing = sink.visible_files().await?;
            if let Some(first) = existing.first() {
                return Err(Error::Option {
                    option: "sink.mode".to_string(),
                    message: format!(
                        "'{}' holds {} file(s) already (e.g. '{}'): use 'append' or 'overwrite'",
                        sink.root,
                        existing.len(),
                        sink.root.url_of(first)
                    ),
                });
            }
        }
        Ok(sink)
    }

    /// A sink configured by connector options: `path` (with the object
    /// store options) and the [`FILE_SINK_OPTIONS`].
    ///
    /// # Errors
    /// As [`FileSink::try_new`], and [`Error::Option`] for a missing or
    /// invalid `path`.
    pub async fn from_options(
        options: &ConnectorOptions,
        format: Arc<dyn FileFormat>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let root =
            StoreUrl::parse(required_path(options)?, options).map_err(|e| Error::Option {
                option: "path".to_string(),
                message: e.to_string(),
            })?;
        Self::try_new(
            root,
            format,
            schema,
            FileSinkOptions::from_options(options)?,
            options.clone(),
        )
        .await
    }

    /// The schema of the files (the rows without their partition columns).
    pub fn file_schema(&self) -> SchemaRef {
        let fields: Vec<_> = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.partition_columns.contains(i))
            .map(|(_, f)| Arc::clone(f))
            .collect();
        Arc::new(Schema::new(fields))
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        self.root.store()
    }

    fn staging(&self, job_id: &str) -> Path {
        self.root.path().clone().join(STAGING_DIR).join(job_id)
    }

    fn attempt_dir(&self, job_id: &str, subtask: usize, attempt: u32) -> Path {
        self.staging(job_id).join(format!("{subtask}-{attempt}"))
    }

    /// Where a file staged under `dir` is published: the same relative
    /// path under the root.
    pub(super) fn target_of(&self, dir: &Path, staged: &Path) -> Path {
        let mut target = self.root.path().clone();
        for part in staged.prefix_match(dir).into_iter().flatten() {
            target = target.join(part);
        }
        target
    }

    /// In `overwrite` mode, the root's visible files, which the job's first
    /// commit (at its first checkpoint, or at its end) removes; nothing
    /// afterwards.
    async fn files_to_overwrite(&self) -> Result<Vec<String>> {
        if self.options.mode != WriteMode::Overwrite
            || self
                .overwritten
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(Vec::new());
        }
        Ok(self
            .visible_files()
            .await?
            .iter()
            .map(Path::to_string)
            .collect())
    }

    /// Records this process as the owner of `job_id`'s staging directory,
    /// before the job stages its first file there, unless a process that
    /// runs (or may: on another host) owns it already: the job master that
    /// opened the job ([`SinkFactory::open_job`]), in a cluster whose
    /// workers stage the job's files. The owner's life is the job's: were
    /// a worker the owner, its loss would make the job's staged files look
    /// abandoned to the others.
    pub(super) async fn claim_staging(&self, job_id: &Arc<str>) -> Result<()> {
        let mut claimed = self.claimed.lock().await;
        if !claimed.contains(job_id) {
            let dir = self.staging(job_id);
            let store = self.store();
            let owned = JobOwner::read(store.as_ref(), &dir)
                .await
                .is_some_and(|owner| owner.liveness() != Liveness::Dead);
            if !owned {
                JobOwner::current(job_id)
                    .write(store.as_ref(), &dir)
                    .await
                    .map_err(|e| self.store_error(e))?;
            }
            claimed.insert(Arc::clone(job_id));
        }
        Ok(())
    }

    /// Finishes what killed jobs left under the root: commits decided but
    /// not carried out are finished, those whose checkpoint never
    /// completed are dropped once their owner is gone, and the staging
    /// directories of gone owners are removed.
    async fn recover(&self) -> Result<()> {
        for (path, manifest) in read_manifests(&self.root).await? {
            match manifest.decision(&self.store_options).await? {
                Decision::Committed => {
                    manifest.apply(&self.root).await?;
                    remove_manifest(&self.root, &path).await?;
                    tracing::info!(
                        "finished the commit of job {} that was left half done in {}",
                        manifest.job,
                        self.root
                    );
                }
                Decision::Open if manifest.owner.liveness() == Liveness::Dead => {
                    remove_manifest(&self.root, &path).await?;
                    tracing::info!(
                        "dropped the commit of job {} in {}: its checkpoint never completed",
                        manifest.job,
                        self.root
                    );
                }
                Decision::Open => {}
            }
        }
        let staging = self.root.path().clone().join(STAGING_DIR);
        let orphans = job_owner::orphaned_jobs(self.store().as_ref(), &staging)
            .await
            .map_err(|e| self.store_error(e))?;
        for (dir, owner) in orphans {
            self.remove_all(&dir).await?;
            self.remove_cut_short_manifests(&owner.job).await;
            tracing::info!(
                "removed the staged files of job {} (process {} is gone) from {}",
                owner.job,
                owner.pid,
                self.root
            );
        }
        Ok(())
    }

    /// Removes what a manifest write of `job_id` cut short left: a local
    /// store writes a file under a temporary name (`<name>#<n>`) first,
    /// which its listings do not show.
    async fn remove_cut_short_manifests(&self, job_id: &str) {
        let Some(root) = self.root.local_path() else {
            return;
        };
        let dir = root.join(commit::COMMITS_DIR);
        let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `<job>.json`, `<job>-chk-<n>.json`, `<job>-restored-chk-<n>.json`
            // (a job id may begin another's).
            let of_job = name.strip_prefix(job_id).is_some_and(|rest| {
                [".json", "-chk-", "-restored-chk-"]
                    .iter()
                    .any(|suffix| rest.starts_with(suffix))
            });
            if of_job && name.contains('#') {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        let _ = tokio::fs::remove_dir(&dir).await;
    }

    /// Commits `manifest` under the name `name`: writes it (the commit
    /// point), carries it out and removes it.
    async fn publish(&self, manifest: &CommitManifest, name: &str) -> Result<()> {
        if manifest.publish.is_empty() && manifest.remove.is_empty() {
            return Ok(());
        }
        let path = manifest.write(&self.root, name).await?;
        manifest.apply(&self.root).await?;
        remove_manifest(&self.root, &path).await
    }

    /// Removes the manifests of `job_id`'s checkpoints that never
    /// completed (the job ends).
    async fn drop_open_commits(&self, job_id: &str) -> Result<()> {
        for (path, manifest) in read_manifests(&self.root).await? {
            if manifest.job == job_id
                && manifest.decision(&self.store_options).await? == Decision::Open
            {
                remove_manifest(&self.root, &path).await?;
            }
        }
        Ok(())
    }

    /// The manifest name of a checkpoint's commit.
    fn checkpoint_manifest_name(commit: &CheckpointCommit<'_>) -> String {
        match commit.decided_by {
            Some(_) => format!("{}-chk-{}", commit.job_id, commit.checkpoint),
            None => format!("{}-restored-chk-{}", commit.job_id, commit.checkpoint),
        }
    }

    /// The committables of a checkpoint, merged by the root they were
    /// written under (this sink's first, as `root: None`).
    fn committables_by_root(
        &self,
        commit: &CheckpointCommit<'_>,
    ) -> weir_engine::Result<Vec<Committable>> {
        let mut by_root = vec![Committable {
            root: None,
            files: Vec::new(),
        }];
        let own = self.root.to_string();
        for value in commit.committables {
            let committable: Committable = serde_json::from_value(value.clone()).map_err(|e| {
                weir_engine::Error::Checkpoint(format!(
                    "{}: checkpoint {}: {e}",
                    self.name(),
                    commit.checkpoint
                ))
            })?;
            let root = committable.root.filter(|r| *r != own);
            match by_root.iter_mut().find(|c| c.root == root) {
                Some(merged) => merged.files.extend(committable.files),
                None => by_root.push(Committable {
                    root,
                    files: committable.files,
                }),
            }
        }
        Ok(by_root)
    }

    /// This sink, or its writer of the root an earlier run of the job
    /// wrote `committable` under.
    fn sink_of(&self, committable: &Committable) -> Result<Self> {
        match &committable.root {
            Some(url) => self.at_root(url),
            None => Ok(self.clone()),
        }
    }

    /// This sink's writer of another root, opened with the same options
    /// (files an earlier run of a resumed job left there).
    fn at_root(&self, url: &str) -> Result<Self> {
        let root = StoreUrl::parse(url, &self.store_options).map_err(|e| Error::Option {
            option: "path".to_string(),
            message: format!("the root of a checkpoint's files: {e}"),
        })?;
        Ok(Self {
            root,
            options: FileSinkOptions {
                mode: WriteMode::Append,
                ..self.options.clone()
            },
            ..self.clone()
        })
    }

    /// The manifest committing a checkpoint's `files` under this root.
    async fn checkpoint_manifest(
        &self,
        commit: &CheckpointCommit<'_>,
        files: Vec<(String, String)>,
    ) -> Result<CommitManifest> {
        Ok(CommitManifest {
            job: commit.job_id.to_string(),
            checkpoint: Some(commit.checkpoint),
            decided_by: commit.decided_by.map(str::to_string),
            owner: JobOwner::current(commit.job_id),
            publish: files,
            remove: self.files_to_overwrite().await?,
        })
    }

    fn store_error(&self, source: object_store::Error) -> Error {
        Error::Store {
            url: self.root.to_string(),
            source,
        }
    }

    /// The files under the root that readers see.
    async fn visible_files(&self) -> Result<Vec<Path>> {
        let root = self.root.path();
        let listed: Vec<_> = self
            .store()
            .list(Some(root))
            .try_collect()
            .await
            .map_err(|e| self.store_error(e))?;
        Ok(listed
            .into_iter()
            .map(|meta| meta.location)
            .filter(|location| {
                location
                    .prefix_match(root)
                    .is_some_and(|mut parts| parts.all(|p| !p.as_ref().starts_with(['_', '.'])))
            })
            .collect())
    }

    async fn remove_all(&self, prefix: &Path) -> Result<()> {
        job_owner::remove_all(self.store().as_ref(), prefix)
            .await
            .map_err(|e| self.store_error(e))?;
        // Local stores keep empty directories: remove the staging tree, and
        // the staging directory when no other job stages there.
        if let (Some(tree), Some(root)) = (
            self.root.with_path(prefix.clone()).local_path(),
            self.root.local_path(),
        ) {
            let _ = tokio::fs::remove_dir_all(&tree).await;
            let _ = tokio::fs::remove_dir(root.join(STAGING_DIR)).await;
        }
        Ok(())
    }
}

#[async_trait]
impl SinkFactory for FileSink {
    fn name(&self) -> String {
        format!("{}({})", self.format.name(), self.root)
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Sink>> {
        let dir = self.attempt_dir(&task.job_id, task.subtask, task.attempt);
        Ok(Box::new(writer::FileSinkWriter::new(
            self.clone(),
            dir,
            task,
        )))
    }

    async fn open_job(&self, job_id: &str) -> weir_engine::Result<()> {
        Ok(self.claim_staging(&job_id.into()).await?)
    }

    async fn commit_job(&self, commit: &JobCommit) -> weir_engine::Result<()> {
        let mut publish = Vec::new();
        for (subtask, attempt) in commit.attempts.iter().enumerate() {
            let dir = self.attempt_dir(&commit.job_id, subtask, *attempt);
            let staged: Vec<_> = self
                .store()
                .list(Some(&dir))
                .try_collect()
                .await
                .map_err(|e| self.store_error(e))?;
            for meta in staged {
                let target = self.target_of(&dir, &meta.location);
                publish.push((meta.location.to_string(), target.to_string()));
            }
        }
        let manifest = CommitManifest {
            job: commit.job_id.to_string(),
            checkpoint: None,
            decided_by: None,
            owner: JobOwner::current(&commit.job_id),
            publish,
            remove: self.files_to_overwrite().await?,
        };
        self.publish(&manifest, &commit.job_id).await?;
        self.drop_open_commits(&commit.job_id).await?;
        self.remove_all(&self.staging(&commit.job_id)).await?;
        Ok(())
    }

    /// Writes down what the checkpoint commits, decided by its metadata.
    async fn prepare_checkpoint_commit(
        &self,
        commit: &CheckpointCommit<'_>,
    ) -> weir_engine::Result<()> {
        for committable in self.committables_by_root(commit)? {
            let sink = self.sink_of(&committable)?;
            let manifest = sink.checkpoint_manifest(commit, committable.files).await?;
            if !manifest.publish.is_empty() || !manifest.remove.is_empty() {
                manifest
                    .write(&sink.root, &Self::checkpoint_manifest_name(commit))
                    .await?;
            }
        }
        Ok(())
    }

    /// Publishes the files the subtasks completed for a checkpoint, as
    /// written down before it completed (or, for a checkpoint a job
    /// resumes from, anew). Committing again (after a restart) finds them
    /// published and moves nothing.
    async fn commit_checkpoint(&self, commit: &CheckpointCommit<'_>) -> weir_engine::Result<()> {
        let name = Self::checkpoint_manifest_name(commit);
        for committable in self.committables_by_root(commit)? {
            let sink = self.sink_of(&committable)?;
            match commit::read_manifest(&sink.root, &name).await? {
                Some((path, manifest)) => {
                    manifest.apply(&sink.root).await?;
                    remove_manifest(&sink.root, &path).await?;
                }
                None => {
                    let manifest = sink.checkpoint_manifest(commit, committable.files).await?;
                    sink.publish(&manifest, &name).await?;
                }
            }
        }
        Ok(())
    }

    async fn abort_job(&self, job_id: &str) -> weir_engine::Result<()> {
        let _no_upload_in_flight = self.completing.write().await;
        self.drop_open_commits(job_id).await?;
        self.remove_all(&self.staging(job_id)).await?;
        Ok(())
    }
}
