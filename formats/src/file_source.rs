//! What every file source shares: the table's files, its schema (the
//! files' columns, then the partition columns), the split of files over
//! subtasks, and the projection of what is read.
//!
//! Formats read a whole file at a time ([`WholeFileFormat`]: CSV, JSON
//! lines, Arrow IPC) through [`WholeFileSource`]; Parquet reads row groups
//! and has its own source, built on the same [`FileTable`].

use std::collections::{HashSet, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use weir_engine::task::{Counters, ScanProgress};
use weir_exchange::StoreUrl;

use crate::bad_records::{BadRecord, Decoded, dead_letter_json_lines};
use weir_engine::{Boundedness, ScanRequest, Source, SourceFactory, TaskInfo};

use crate::hive::constant_columns;
use crate::listing::{FileListing, ListedFile};
use crate::{Error, Result};

/// A table of files: what is read and how it looks.
#[derive(Debug, Clone)]
pub struct FileTable {
    /// The table's files and partition columns.
    pub listing: Arc<FileListing>,
    /// The files to read (partition filters applied), in path order.
    pub files: Arc<Vec<ListedFile>>,
    /// The columns the files hold.
    pub file_schema: SchemaRef,
    /// The columns produced, by index into the table schema.
    projection: Option<Vec<usize>>,
    /// The file columns the projection needs (set with it).
    file_columns: Option<Vec<usize>>,
    /// The file columns, then the partition columns.
    table_schema: SchemaRef,
    /// The projected table schema, which every batch carries.
    output_schema: SchemaRef,
}

impl FileTable {
    /// A table of every listed file, whose files hold `file_schema`.
    pub fn new(listing: FileListing, file_schema: SchemaRef) -> Self {
        let fields = file_schema
            .fields()
            .iter()
            .chain(listing.partitions.schema().fields().iter())
            .cloned()
            .collect::<Vec<_>>();
        let table_schema = Arc::new(Schema::new(fields));
        Self {
            files: Arc::new(listing.files.clone()),
            listing: Arc::new(listing),
            file_schema,
            projection: None,
            file_columns: None,
            output_schema: Arc::clone(&table_schema),
            table_schema,
        }
    }

    /// The columns of the table: the files' columns, then the partition
    /// columns.
    pub fn table_schema(&self) -> &SchemaRef {
        &self.table_schema
    }

    /// The schema of the batches produced.
    pub fn output_schema(&self) -> SchemaRef {
        Arc::clone(&self.output_schema)
    }

    /// The same table narrowed to a scan request: projected, and without the
    /// files whose partition values fail the filters.
    ///
    /// # Errors
    /// A projected column out of range, or a filter that cannot be evaluated.
    pub fn scanned(&self, request: &ScanRequest) -> Result<Self> {
        let width = self.table_schema.fields().len();
        if let Some(bad) = request.projection.iter().flatten().find(|&&i| i >= width) {
            return Err(Error::Option {
                option: "projection".to_string(),
                message: format!("column {bad} is out of range: the table has {width} columns"),
            });
        }
        let kept = self.listing.prune(&request.filters)?;
        let kept: HashSet<&Path> = kept.iter().map(|f| &f.location).collect();
        let files = self
            .files
            .iter()
            .filter(|f| kept.contains(&f.location))
            .cloned()
            .collect();
        let file_width = self.file_schema.fields().len();
        let (output_schema, file_columns) = match &request.projection {
            Some(columns) => (
                Arc::new(self.table_schema.project(columns)?),
                Some(
                    columns
                        .iter()
                        .copied()
                        .filter(|&i| i < file_width)
                        .collect(),
                ),
            ),
            None => (Arc::clone(&self.table_schema), None),
        };
        Ok(Self {
            listing: Arc::clone(&self.listing),
            files: Arc::new(files),
            file_schema: Arc::clone(&self.file_schema),
            projection: request.projection.clone(),
            file_columns,
            table_schema: Arc::clone(&self.table_schema),
            output_schema,
        })
    }

    /// The file columns a projection needs, by index into the file schema
    /// (`None`: all of them).
    pub fn file_projection(&self) -> Option<&[usize]> {
        self.file_columns.as_deref()
    }

    /// Completes a batch read from `file` (holding the columns of
    /// [`FileTable::file_projection`], in file order): appends the partition
    /// values and puts the columns in the projection's order.
    ///
    /// # Errors
    /// When the batch does not fit the schema.
    pub fn complete(&self, file: &ListedFile, batch: &RecordBatch) -> Result<RecordBatch> {
        let rows = batch.num_rows();
        let file_columns = self.file_projection();
        let partitions = constant_columns(&file.partition_values, rows)?;
        let width = self.file_schema.fields().len();
        let column = |table_index: usize| {
            if table_index < width {
                let position = match &file_columns {
                    Some(read) => read.iter().position(|&i| i == table_index),
                    None => Some(table_index),
                };
                position.map(|p| Arc::clone(batch.column(p)))
            } else {
                partitions.get(table_index - width).cloned()
            }
        };
        let all = 0..self.table_schema.fields().len();
        let indices: Box<dyn Iterator<Item = usize>> = match &self.projection {
            Some(p) => Box::new(p.iter().copied()),
            None => Box::new(all),
        };
        let columns = indices
            .map(|i| {
                column(i).ok_or_else(|| Error::Corrupt {
                    file: file.url.clone(),
                    message: format!("column {i} was not read"),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.output_schema),
            columns,
            &options,
        )?)
    }

    /// The files subtask `subtask` of `parallelism` reads: every
    /// `parallelism`-th, so each attempt reads the same files in the same
    /// order.
    pub fn files_of(&self, subtask: usize, parallelism: usize) -> VecDeque<ListedFile> {
        self.files
            .iter()
            .skip(subtask)
            .step_by(parallelism.max(1))
            .cloned()
            .collect()
    }

    /// The total size of the files to read.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A format whose files are decoded whole (CSV, JSON lines, Arrow IPC).
pub trait WholeFileFormat: Send + Sync + Debug + 'static {
    /// The format's name.
    fn name(&self) -> &'static str;

    /// Decodes one file's bytes into batches of the columns `projection`
    /// (indices into `schema`, `None`: all), with the bad records it
    /// dropped or kept aside. Runs on the CPU pool.
    ///
    /// # Errors
    /// A corrupt file, or a bad record under the `fail` policy; both name
    /// the file.
    fn decode(
        &self,
        file: &ListedFile,
        bytes: Bytes,
        schema: &SchemaRef,
        projection: Option<&[usize]>,
    ) -> Result<Decoded>;
}

/// A source reading whole files of one format.
#[derive(Debug, Clone)]
pub struct WholeFileSource<F> {
    table: FileTable,
    format: Arc<F>,
    dead_letters: Option<StoreUrl>,
}

impl<F: WholeFileFormat> WholeFileSource<F> {
    /// A source of `table`'s files in `format`.
    pub fn new(table: FileTable, format: Arc<F>) -> Self {
        Self {
            table,
            format,
            dead_letters: None,
        }
    }

    /// Writes the records the format keeps aside (`bad-records` =
    /// `dead-letter`) under `dir`, one JSON-lines file per subtask.
    pub fn with_dead_letters(mut self, dir: StoreUrl) -> Self {
        self.dead_letters = Some(dir);
        self
    }

    /// The table read.
    pub fn table(&self) -> &FileTable {
        &self.table
    }
}

impl<F: WholeFileFormat> SourceFactory for WholeFileSource<F> {
    fn name(&self) -> String {
        format!("{}({})", self.format.name(), self.table.listing.root)
    }

    fn boundedness(&self) -> Boundedness {
        Boundedness::Bounded
    }

    fn schema(&self) -> SchemaRef {
        self.table.output_schema()
    }

    fn estimated_bytes(&self) -> Option<u64> {
        Some(self.table.total_bytes())
    }

    fn scan(&self, request: &ScanRequest) -> weir_engine::Result<Option<Arc<dyn SourceFactory>>> {
        Ok(Some(Arc::new(Self {
            table: self.table.scanned(request)?,
            format: Arc::clone(&self.format),
            dead_letters: self.dead_letters.clone(),
        })))
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Source>> {
        let dead_letters = self.dead_letters.as_ref().map(|dir| {
            let name = format!("bad-records-{}-{:05}.jsonl", task.job_id, task.subtask);
            (dir.with_path(dir.path().clone().join(name)), Vec::new())
        });
        Ok(Box::new(WholeFileReader {
            files: self.table.files_of(task.subtask, task.parallelism),
            table: self.table.clone(),
            format: Arc::clone(&self.format),
            pending: VecDeque::new(),
            counters: task.counters.clone(),
            scanned: task.scanned.clone(),
            dead_letters,
        }))
    }
}

struct WholeFileReader<F> {
    table: FileTable,
    format: Arc<F>,
    files: VecDeque<ListedFile>,
    pending: VecDeque<RecordBatch>,
    counters: Counters,
    /// Gets the bad records passed over (the task counts the rows emitted).
    scanned: ScanProgress,
    /// Where this subtask's dead letters go, and those kept so far.
    dead_letters: Option<(StoreUrl, Vec<BadRecord>)>,
}

impl<F> WholeFileReader<F> {
    /// Writes the dead letters of this subtask, replacing what an earlier
    /// attempt wrote (every attempt reads the same records).
    async fn write_dead_letters(&mut self) -> Result<()> {
        let Some((file, records)) = &mut self.dead_letters else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        let bytes = dead_letter_json_lines(records);
        file.store()
            .put(file.path(), bytes.into())
            .await
            .map_err(|source| Error::Store {
                url: file.to_string(),
                source,
            })?;
        records.clear();
        Ok(())
    }
}

#[async_trait]
impl<F: WholeFileFormat> Source for WholeFileReader<F> {
    async fn next_batch(&mut self) -> weir_engine::Result<Option<RecordBatch>> {
        while self.pending.is_empty() {
            let Some(file) = self.files.pop_front() else {
                self.write_dead_letters().await?;
                return Ok(None);
            };
            let store = self.table.listing.store();
            let bytes = store
                .get(&file.location)
                .await
                .map_err(|source| Error::Store {
                    url: file.url.clone(),
                    source,
                })?
                .bytes()
                .await
                .map_err(|source| Error::Store {
                    url: file.url.clone(),
                    source,
                })?;
            self.counters.add("files read", 1);
            self.counters.add("bytes read", bytes.len() as u64);
            let (format, table) = (Arc::clone(&self.format), self.table.clone());
            let decoded = weir_engine::cpu::run(move || {
                let decoded =
                    format.decode(&file, bytes, &table.file_schema, table.file_projection())?;
                let batches = decoded
                    .batches
                    .iter()
                    .map(|batch| table.complete(&file, batch))
                    .collect::<Result<VecDeque<_>>>()?;
                Ok::<_, Error>((batches, decoded.dropped, decoded.dead_letters))
            })
            .await?;
            let (batches, dropped, dead_letters) = decoded;
            self.pending = batches;
            self.scanned.add(dropped + dead_letters.len() as u64);
            if dropped > 0 {
                self.counters.add("bad records dropped", dropped);
            }
            if !dead_letters.is_empty() {
                self.counters
                    .add("bad records dead-lettered", dead_letters.len() as u64);
                if let Some((_, kept)) = &mut self.dead_letters {
                    kept.extend(dead_letters);
                }
            }
        }
        Ok(self.pending.pop_front())
    }
}
