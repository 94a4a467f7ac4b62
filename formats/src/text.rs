//! A source of text lines.
//!
//! Reads every file under a path (a file or a directory, recursively, in
//! name order); each line becomes a row with one `line` column. Files are the
//! splits: subtask `i` of `p` reads files `i`, `i + p`, ... of the sorted
//! list, so every attempt reads the same lines in the same order.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use weir_engine::registry::{ConnectorOptions, SourceConnector};
use weir_engine::{Boundedness, Error, Result, Source, SourceFactory, TaskInfo};

/// Lines per batch.
const BATCH_LINES: usize = 8192;

/// The `text` source connector: option `path` (a file or directory).
#[derive(Debug)]
pub struct TextConnector;

#[async_trait]
impl SourceConnector for TextConnector {
    fn name(&self) -> &'static str {
        "text"
    }

    fn option_names(&self) -> Vec<&'static str> {
        vec!["path"]
    }

    async fn create(&self, options: &ConnectorOptions) -> Result<Arc<dyn SourceFactory>> {
        let path = options.get("path").ok_or_else(|| Error::Connector {
            connector: "text".to_string(),
            message: "option 'path' is required".to_string(),
        })?;
        Ok(Arc::new(TextSource::try_new(path)?))
    }
}

/// Reads the lines of the files under a local path.
#[derive(Debug, Clone)]
pub struct TextSource {
    root: std::path::PathBuf,
    files: Arc<Vec<std::path::PathBuf>>,
    schema: SchemaRef,
}

impl TextSource {
    /// A source over the file or directory `path`.
    ///
    /// # Errors
    /// When the path does not exist or cannot be listed.
    pub fn try_new(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        let mut files = Vec::new();
        collect_files(&root, &mut files).map_err(|e| Error::Connector {
            connector: "text".to_string(),
            message: format!("cannot list '{}': {e}", root.display()),
        })?;
        files.sort();
        Ok(Self {
            root,
            files: Arc::new(files),
            schema: Arc::new(Schema::new(vec![Field::new("line", DataType::Utf8, false)])),
        })
    }
}

fn collect_files(
    path: &std::path::Path,
    files: &mut Vec<std::path::PathBuf>,
) -> std::io::Result<()> {
    if path.is_dir() {
        for entry in std::fs::read_dir(path)? {
            collect_files(&entry?.path(), files)?;
        }
    } else {
        std::fs::metadata(path)?;
        files.push(path.to_path_buf());
    }
    Ok(())
}

impl SourceFactory for TextSource {
    fn name(&self) -> String {
        format!("text({})", self.root.display())
    }

    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Source>> {
        let files = self
            .files
            .iter()
            .skip(task.subtask)
            .step_by(task.parallelism.max(1))
            .cloned()
            .collect();
        Ok(Box::new(TextReader {
            files,
            pending: VecDeque::new(),
            schema: Arc::clone(&self.schema),
        }))
    }
}

struct TextReader {
    files: VecDeque<std::path::PathBuf>,
    pending: VecDeque<RecordBatch>,
    schema: SchemaRef,
}

#[async_trait]
impl Source for TextReader {
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        while self.pending.is_empty() {
            let Some(file) = self.files.pop_front() else {
                return Ok(None);
            };
            let bytes = tokio::fs::read(&file).await.map_err(|e| Error::Connector {
                connector: "text".to_string(),
                message: format!("cannot read '{}': {e}", file.display()),
            })?;
            let schema = Arc::clone(&self.schema);
            self.pending =
                weir_engine::cpu::run(move || split_lines(&file, &bytes, &schema)).await?;
        }
        Ok(self.pending.pop_front())
    }
}

fn split_lines(
    file: &std::path::Path,
    bytes: &[u8],
    schema: &SchemaRef,
) -> Result<VecDeque<RecordBatch>> {
    let text = std::str::from_utf8(bytes).map_err(|e| Error::Connector {
        connector: "text".to_string(),
        message: format!("'{}' is not UTF-8: {e}", file.display()),
    })?;
    let mut batches = VecDeque::new();
    let mut builder = StringBuilder::new();
    let mut rows = 0;
    for line in text.lines() {
        builder.append_value(line);
        rows += 1;
        if rows == BATCH_LINES {
            batches.push_back(RecordBatch::try_new(
                Arc::clone(schema),
                vec![Arc::new(builder.finish())],
            )?);
            rows = 0;
        }
    }
    if rows > 0 {
        batches.push_back(RecordBatch::try_new(
            Arc::clone(schema),
            vec![Arc::new(builder.finish())],
        )?);
    }
    Ok(batches)
}
