//! Spill files: record batches an operator moves out of memory when it is
//! over its budget, written as an Arrow IPC stream (lz4-compressed) to a
//! local directory and read back in order.
//!
//! Spilling happens on the CPU pool, inside an operator call: the files are
//! local and written through the page cache, so they are plain synchronous
//! file I/O rather than a trip to tokio. Every spill file is deleted when
//! its [`SpillFile`] (or an unfinished [`SpillWriter`]) is dropped, so a
//! task that fails or is cancelled leaves none behind.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::CompressionType;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use tempfile::TempPath;

/// Errors of spilling, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("spill file {path}: {source}")]
pub struct SpillError {
    /// The file written or read.
    pub path: PathBuf,
    /// What failed (a full disk shows as an I/O error here).
    #[source]
    pub source: arrow::error::ArrowError,
}

/// Writes one spill file: a sorted run, a partition of a hash table, ...
pub struct SpillWriter {
    path: TempPath,
    writer: StreamWriter<BufWriter<File>>,
    rows: usize,
    bytes: usize,
}

impl std::fmt::Debug for SpillWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillWriter")
            .field("path", &self.path.display())
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl SpillWriter {
    /// Starts a new spill file of batches of `schema` in `dir` (created if
    /// missing).
    ///
    /// # Errors
    /// When the file cannot be created.
    pub fn create(dir: &Path, schema: &SchemaRef) -> Result<Self, SpillError> {
        let fail = |path: &Path, e: arrow::error::ArrowError| SpillError {
            path: path.to_path_buf(),
            source: e,
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(dir, e.into()))?;
        let file = tempfile::Builder::new()
            .prefix("spill-")
            .suffix(".arrow")
            .tempfile_in(dir)
            .map_err(|e| fail(dir, e.into()))?;
        let (file, path) = file.into_parts();
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::LZ4_FRAME))
            .map_err(|e| fail(&path, e))?;
        let writer = StreamWriter::try_new_with_options(BufWriter::new(file), schema, options)
            .map_err(|e| fail(&path, e))?;
        Ok(Self {
            path,
            writer,
            rows: 0,
            bytes: 0,
        })
    }

    /// Appends one batch.
    ///
    /// # Errors
    /// When the batch cannot be written (disk full, ...).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SpillError> {
        self.writer.write(batch).map_err(|e| SpillError {
            path: self.path.to_path_buf(),
            source: e,
        })?;
        self.rows += batch.num_rows();
        self.bytes += batch.get_array_memory_size();
        Ok(())
    }

    /// Completes the file.
    ///
    /// # Errors
    /// When the end of the stream cannot be written or flushed.
    pub fn finish(mut self) -> Result<SpillFile, SpillError> {
        let fail = |path: &TempPath, e: arrow::error::ArrowError| SpillError {
            path: path.to_path_buf(),
            source: e,
        };
        self.writer.finish().map_err(|e| fail(&self.path, e))?;
        let file_bytes = self
            .writer
            .get_mut()
            .get_ref()
            .metadata()
            .map_err(|e| fail(&self.path, e.into()))?
            .len();
        Ok(SpillFile {
            path: self.path,
            rows: self.rows,
            bytes: self.bytes,
            file_bytes,
        })
    }
}

/// A complete spill file; deleted when dropped.
#[derive(Debug)]
pub struct SpillFile {
    path: TempPath,
    rows: usize,
    bytes: usize,
    file_bytes: u64,
}

impl SpillFile {
    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// In-memory size of the batches written (what spilling freed).
    pub fn memory_bytes(&self) -> usize {
        self.bytes
    }

    /// Size of the file on disk.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the batches back, in the order they were written.
    ///
    /// # Errors
    /// When the file cannot be opened or its header is not readable.
    pub fn read(&self) -> Result<SpillReader, SpillError> {
        let fail = |e: arrow::error::ArrowError| SpillError {
            path: self.path.to_path_buf(),
            source: e,
        };
        let file = File::open(&self.path).map_err(|e| fail(e.into()))?;
        let reader = StreamReader::try_new(BufReader::new(file), None).map_err(fail)?;
        Ok(SpillReader {
            path: self.path.to_path_buf(),
            reader,
        })
    }
}

/// Reads a spill file's batches in order.
pub struct SpillReader {
    path: PathBuf,
    reader: StreamReader<BufReader<File>>,
}

impl std::fmt::Debug for SpillReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SpillReader {
    /// The schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        self.reader.schema()
    }
}

impl Iterator for SpillReader {
    type Item = Result<RecordBatch, SpillError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.reader.next().map(|r| {
            r.map_err(|e| SpillError {
                path: self.path.clone(),
                source: e,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(from: i64, n: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(from..from + n)),
                Arc::new(StringArray::from_iter(
                    (from..from + n).map(|i| (i % 3 != 0).then(|| format!("v{i}"))),
                )),
            ],
        )
        .expect("valid batch")
    }

    #[test]
    fn batches_come_back_in_order_and_the_file_goes_on_drop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let batches = [batch(0, 100), batch(100, 1), batch(101, 5000)];
        let mut writer = SpillWriter::create(dir.path(), &batches[0].schema()).expect("create");
        for b in &batches {
            writer.write(b).expect("write");
        }
        let file = writer.finish().expect("finish");
        assert_eq!(file.rows(), 5101);
        assert!(file.file_bytes() > 0);
        let back: Vec<_> = file
            .read()
            .expect("open")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(back, batches);
        let path = file.path().to_path_buf();
        assert!(path.exists());
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = batch(0, 10);
        let mut writer = SpillWriter::create(dir.path(), &b.schema()).expect("create");
        writer.write(&b).expect("write");
        drop(writer);
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn a_truncated_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let b = batch(0, 1000);
        let mut writer = SpillWriter::create(dir.path(), &b.schema()).expect("create");
        writer.write(&b).expect("write");
        let file = writer.finish().expect("finish");
        let len = std::fs::metadata(file.path()).expect("stat").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(file.path())
            .expect("open");
        f.set_len(len / 2).expect("truncate");
        let err = file
            .read()
            .expect("header is intact")
            .find_map(Result::err)
            .expect("the truncated batch fails");
        assert!(err.to_string().contains(&file.path().display().to_string()));
    }
}
