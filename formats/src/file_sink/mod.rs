//! The file sink: writes a job's rows as files of any [`FileFormat`] under
//! a root in any object store, visible only once the job succeeded.
//!
//! Every subtask attempt writes under a staging directory hidden from
//! readers, `<root>/_weir_staging/<job>/<subtask>-<attempt>/`. When the
//! whole job succeeded, [`SinkFactory::commit_job`] moves the files of the
//! final attempt of every subtask into the root (after removing the root's
//! visible files in `overwrite` mode) and removes the staging directory; a
//! failed or cancelled job only removes its staging directory. A job that
//! fails therefore leaves no visible output, and a rerun subtask's earlier
//! attempts are never published.
//!
//! In checkpoints of streaming jobs it commits in two phases, as Flink's
//! file sink does: at a barrier an attempt completes the files it is
//! writing (in progress to pending, still staged), and when the checkpoint
//! completes they move into the root. A job restarted from a checkpoint
//! writes what followed it again into new files, and what a failed attempt
//! staged after the checkpoint is never published: exactly once.
//!
//! With `partition-by`, rows go to hive-style `key=value` directories
//! (values escaped, see [`crate::hive`]) and the partition columns are not
//! written into the files. Files roll over at `sink.rolling.max-rows` rows
//! or about `sink.rolling.max-bytes` bytes.

mod encoder;
mod writer;

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use weir_engine::expr::column_list;
use weir_engine::registry::ConnectorOptions;
use weir_engine::{JobCommit, Sink, SinkFactory, TaskInfo};
use weir_exchange::StoreUrl;

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
}

impl FileSink {
    /// A sink writing rows of `schema` as `format` files under `root`.
    ///
    /// # Errors
    /// [`Error::Option`] when a partition column is unknown, or every column
    /// is a partition column; or, in `error-if-exists` mode, the root holds
    /// files already; [`Error::Store`] when the root cannot be listed.
    pub async fn try_new(
        root: StoreUrl,
        format: Arc<dyn FileFormat>,
        schema: SchemaRef,
        options: FileSinkOptions,
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
        };
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

    /// In `overwrite` mode, removes the root's visible files before the
    /// job publishes its first file (at its first checkpoint, or at its
    /// end), and never again.
    async fn overwrite_once(&self) -> Result<()> {
        if self.options.mode != WriteMode::Overwrite
            || self
                .overwritten
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(());
        }
        for file in self.visible_files().await? {
            self.delete(&file).await?;
        }
        Ok(())
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
        let listed: Vec<_> = self
            .store()
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.store_error(e))?;
        for meta in listed {
            self.delete(&meta.location).await?;
        }
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

    async fn delete(&self, location: &Path) -> Result<()> {
        match self.store().delete(location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.store_error(e)),
        }
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

    async fn commit_job(&self, commit: &JobCommit) -> weir_engine::Result<()> {
        self.overwrite_once().await?;
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
                self.store()
                    .rename(&meta.location, &target)
                    .await
                    .map_err(|e| self.store_error(e))?;
            }
        }
        self.remove_all(&self.staging(&commit.job_id)).await?;
        Ok(())
    }

    /// Publishes the files the subtasks completed for a checkpoint.
    /// Committing again (after a restart) finds them published and moves
    /// nothing.
    async fn commit_checkpoint(
        &self,
        checkpoint: u64,
        committables: &[serde_json::Value],
    ) -> weir_engine::Result<()> {
        #[derive(serde::Deserialize)]
        struct Committable {
            files: Vec<(String, String)>,
        }
        self.overwrite_once().await?;
        for committable in committables {
            let committable: Committable =
                serde_json::from_value(committable.clone()).map_err(|e| {
                    weir_engine::Error::Checkpoint(format!(
                        "{}: checkpoint {checkpoint}: {e}",
                        self.name()
                    ))
                })?;
            for (staged, target) in committable.files {
                let (staged, target) = (Path::from(staged), Path::from(target));
                match self.store().rename(&staged, &target).await {
                    Ok(()) => {}
                    // Published by an earlier commit of this checkpoint.
                    Err(object_store::Error::NotFound { .. })
                        if self.store().head(&target).await.is_ok() => {}
                    Err(e) => return Err(self.store_error(e).into()),
                }
            }
        }
        Ok(())
    }

    async fn abort_job(&self, job_id: &str) -> weir_engine::Result<()> {
        let _no_upload_in_flight = self.completing.write().await;
        self.remove_all(&self.staging(job_id)).await?;
        Ok(())
    }
}
