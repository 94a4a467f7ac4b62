//! One subtask attempt of a file sink: routes rows to partition
//! directories, encodes them on the CPU pool and uploads the files into the
//! attempt's staging directory.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::{cast, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use object_store::buffered::BufWriter;
use object_store::path::{Path, PathPart};
use tokio::io::AsyncWriteExt;
use weir_engine::task::Counters;
use weir_engine::{Sink, TaskInfo};

use super::{Committable, FileEncoder, FileSink};
use crate::hive::escape;
use crate::{Error, Result};

/// A file being written.
struct OpenFile {
    location: Path,
    upload: BufWriter,
    encoder: Option<Box<dyn FileEncoder>>,
    rows: usize,
    uploaded: usize,
}

/// Writes one subtask attempt's files.
pub(super) struct FileSinkWriter {
    sink: FileSink,
    dir: Path,
    subtask: usize,
    attempt: u32,
    job_id: Arc<str>,
    file_schema: SchemaRef,
    open: HashMap<String, OpenFile>,
    next_file: usize,
    /// The files completed since the last checkpoint barrier.
    completed: Vec<Path>,
    counters: Counters,
}

impl FileSinkWriter {
    pub(super) fn new(sink: FileSink, dir: Path, task: &TaskInfo) -> Self {
        Self {
            file_schema: sink.file_schema(),
            sink,
            dir,
            subtask: task.subtask,
            attempt: task.attempt,
            job_id: Arc::clone(&task.job_id),
            open: HashMap::new(),
            next_file: 0,
            completed: Vec::new(),
            counters: task.counters.clone(),
        }
    }

    /// The batch's rows grouped by partition directory (in order of first
    /// appearance), without the partition columns.
    fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        let columns = &self.sink.partition_columns;
        let data = batch.project(
            &(0..batch.num_columns())
                .filter(|i| !columns.contains(i))
                .collect::<Vec<_>>(),
        )?;
        if columns.is_empty() {
            return Ok(vec![(String::new(), data)]);
        }
        let texts = columns
            .iter()
            .map(|&i| cast(batch.column(i), &DataType::Utf8))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let texts: Vec<_> = texts.iter().map(|t| t.as_string::<i32>()).collect();
        // Rows grouped by their partition values (borrowed from the batch),
        // in order of first appearance; each group is escaped once.
        let mut groups: HashMap<Vec<Option<&str>>, usize> = HashMap::new();
        let mut order: Vec<(Vec<Option<&str>>, Vec<u32>)> = Vec::new();
        for row in 0..batch.num_rows() {
            let key: Vec<Option<&str>> = texts
                .iter()
                .map(|t| t.is_valid(row).then(|| t.value(row)))
                .collect();
            match groups.get(&key) {
                Some(&group) => order[group].1.push(row as u32),
                None => {
                    groups.insert(key.clone(), order.len());
                    order.push((key, vec![row as u32]));
                }
            }
        }
        let schema = batch.schema_ref();
        order
            .into_iter()
            .map(|(values, rows)| {
                let dir: String = columns
                    .iter()
                    .zip(values)
                    .map(|(&i, value)| {
                        format!(
                            "{}={}/",
                            escape(Some(schema.field(i).name())),
                            escape(value)
                        )
                    })
                    .collect();
                Ok((dir, take_record_batch(&data, &UInt32Array::from(rows))?))
            })
            .collect()
    }

    async fn open_file(&mut self, dir: &str) -> Result<&mut OpenFile> {
        if !self.open.contains_key(dir) && self.next_file == 0 {
            self.sink.claim_staging(&self.job_id).await?;
        }
        let entry = match self.open.entry(dir.to_string()) {
            Entry::Occupied(open) => return Ok(open.into_mut()),
            Entry::Vacant(entry) => entry,
        };
        let mut location = self.dir.clone();
        for segment in dir.split('/').filter(|s| !s.is_empty()) {
            // Escaped segments are plain text: stored as they are.
            let part = PathPart::parse(segment).map_err(|e| Error::Option {
                option: "partition-by".to_string(),
                message: format!("directory '{segment}': {e}"),
            })?;
            location = location.join(part);
        }
        // Unique per attempt: a restarted attempt's files never replace
        // those an earlier attempt committed at a checkpoint.
        let location = location.join(format!(
            "part-{:05}-{:05}-a{}-{}.{}",
            self.subtask,
            self.next_file,
            self.attempt,
            self.job_id,
            self.sink.format.extension()
        ));
        self.next_file += 1;
        Ok(entry.insert(OpenFile {
            upload: BufWriter::new(Arc::clone(self.sink.store()), location.clone()),
            location,
            encoder: Some(self.sink.format.encoder(&self.file_schema)?),
            rows: 0,
            uploaded: 0,
        }))
    }

    /// Writes `batch` into the files of directory `dir`, rolling over at
    /// the row and byte limits.
    async fn write_partition(&mut self, dir: &str, batch: RecordBatch) -> Result<()> {
        let max_rows = self.sink.options.max_rows_per_file.unwrap_or(usize::MAX);
        let max_bytes = self.sink.options.max_bytes_per_file.unwrap_or(usize::MAX);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let file = self.open_file(dir).await?;
            let rows = (batch.num_rows() - offset).min(max_rows - file.rows);
            let piece = batch.slice(offset, rows);
            offset += rows;
            let encoder = file.encoder.take();
            let (encoder, encoded) = weir_engine::cpu::run(move || match encoder {
                Some(mut encoder) => {
                    let encoded = encoder.encode(&piece);
                    let buffered = encoder.buffered_bytes();
                    (Some(encoder), encoded.map(|bytes| (bytes, buffered)))
                }
                None => (None, Ok((Vec::new(), 0))),
            })
            .await;
            file.encoder = encoder;
            let (bytes, buffered) = encoded?;
            file.rows += rows;
            file.uploaded += bytes.len();
            let full = file.rows >= max_rows || file.uploaded + buffered >= max_bytes;
            let location = file.location.clone();
            if !bytes.is_empty() {
                file.upload
                    .put(Bytes::from(bytes))
                    .await
                    .map_err(|source| self.store_error(&location, source))?;
            }
            if full {
                self.close(dir).await?;
            }
        }
        Ok(())
    }

    /// Completes the file open in `dir`.
    async fn close(&mut self, dir: &str) -> Result<()> {
        let Some(mut file) = self.open.remove(dir) else {
            return Ok(());
        };
        let encoder = file.encoder.take();
        let rest = weir_engine::cpu::run(move || match encoder {
            Some(mut encoder) => encoder.finish(),
            None => Ok(Vec::new()),
        })
        .await?;
        let size = file.uploaded + rest.len();
        if !rest.is_empty() {
            file.upload
                .put(Bytes::from(rest))
                .await
                .map_err(|source| self.store_error(&file.location, source))?;
        }
        // The completion runs on its own (see `FileSink::completing`).
        let in_flight = Arc::clone(&self.sink.completing).read_owned().await;
        let mut upload = file.upload;
        let completed = tokio::spawn(async move {
            let completed = upload.shutdown().await;
            drop(in_flight);
            completed
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|completed| completed);
        completed.map_err(|e| Error::Store {
            url: self.sink.root.url_of(&file.location),
            source: object_store::Error::Generic {
                store: "upload",
                source: Box::new(e),
            },
        })?;
        self.counters.add("files written", 1);
        self.counters.add("bytes written", size as u64);
        self.completed.push(file.location);
        Ok(())
    }

    /// Completes every open file.
    async fn close_all(&mut self) -> Result<()> {
        let mut dirs: Vec<String> = self.open.keys().cloned().collect();
        dirs.sort();
        for dir in dirs {
            self.close(&dir).await?;
        }
        Ok(())
    }

    fn store_error(&self, location: &Path, source: object_store::Error) -> Error {
        Error::Store {
            url: self.sink.root.url_of(location),
            source,
        }
    }
}

#[async_trait]
impl Sink for FileSinkWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> weir_engine::Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for (dir, rows) in self.split(&batch)? {
            self.write_partition(&dir, rows).await?;
        }
        Ok(())
    }

    async fn finish(&mut self) -> weir_engine::Result<()> {
        Ok(self.close_all().await?)
    }

    /// Completes the files being written (in progress to pending): they
    /// stay staged until the checkpoint completes, and the committable
    /// names each with where it goes.
    async fn prepare_commit(
        &mut self,
        _checkpoint: u64,
    ) -> weir_engine::Result<Option<serde_json::Value>> {
        self.close_all().await?;
        let files: Vec<(String, String)> = std::mem::take(&mut self.completed)
            .into_iter()
            .map(|staged| {
                let target = self.sink.target_of(&self.dir, &staged);
                (staged.to_string(), target.to_string())
            })
            .collect();
        if files.is_empty() {
            return Ok(None);
        }
        let committable = Committable {
            root: Some(self.sink.root.to_string()),
            files,
        };
        Ok(Some(
            serde_json::to_value(committable).expect("a committable serializes"),
        ))
    }
}
