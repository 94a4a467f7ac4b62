//! The Parquet source: reads a table of Parquet files by row group.
//!
//! Planning reads every file's footer (and page index) once: the table's
//! schema comes from them, and every row group becomes a split. Subtask
//! `i` of `p` reads the `i`-th contiguous share of the splits, so large
//! files are read by several subtasks. For each file it reads, a subtask
//! keeps the row groups whose statistics may match the scan's filters,
//! skips pages the page index rules out, and applies the filters as a row
//! filter while decoding. Bytes are fetched asynchronously — the next row
//! group's column chunks while the current one decodes — and decoded on the
//! CPU pool.

use std::collections::{HashSet, VecDeque};
use std::ops::Range;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use bytes::Bytes;
use datafusion_expr::Expr;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::DecodeResult;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReader,
};
use parquet::arrow::push_decoder::{ParquetPushDecoder, ParquetPushDecoderBuilder};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaDataPushDecoder};
use tokio::task::JoinHandle;
use weir_engine::task::{Counters, ScanProgress};
use weir_engine::{Boundedness, ScanRequest, Source, SourceFactory, TaskInfo};

use super::PruningPlan;
use crate::file_source::FileTable;
use crate::listing::{FileListing, ListedFile};
use crate::schema_merge::{conform, unify};
use crate::{Error, Result};

/// Rows per decoded batch.
const BATCH_ROWS: usize = 8192;
/// Batches decoded per hand-off to the CPU pool.
const BATCHES_PER_STEP: usize = 4;
/// Footers read at once while planning.
const FOOTERS_IN_FLIGHT: usize = 16;

/// One file of the table: where it is and its footer.
#[derive(Debug, Clone)]
struct ParquetFile {
    listed: ListedFile,
    metadata: ArrowReaderMetadata,
}

impl ParquetFile {
    /// The rows of row group `row_group`.
    fn rows_in(&self, row_group: usize) -> u64 {
        self.metadata.metadata().row_group(row_group).num_rows() as u64
    }
}

/// A row group of a file: the unit of splitting.
#[derive(Debug, Clone, Copy)]
struct RowGroupSplit {
    file: usize,
    row_group: usize,
}

/// A table of Parquet files.
#[derive(Debug, Clone)]
pub struct ParquetSource {
    table: FileTable,
    files: Arc<Vec<ParquetFile>>,
    filters: Vec<Expr>,
    plan: Option<Arc<PruningPlan>>,
}

impl ParquetSource {
    /// Reads the footers of the listed files; with `merge`, files may have
    /// different columns (see [`crate::schema_merge`]).
    ///
    /// # Errors
    /// [`Error::Corrupt`] naming a file whose footer cannot be read;
    /// [`Error::SchemaMismatch`] naming two files that disagree.
    pub async fn try_new(listing: FileListing, merge: bool) -> Result<Self> {
        let store = Arc::clone(listing.store());
        let files: Vec<ParquetFile> = futures::stream::iter(listing.files.clone())
            .map(|listed| read_footer(Arc::clone(&store), listed))
            .buffered(FOOTERS_IN_FLIGHT)
            .try_collect()
            .await?;
        let schemas: Vec<_> = files
            .iter()
            .map(|f| (f.listed.url.clone(), Arc::clone(f.metadata.schema())))
            .collect();
        let file_schema = unify(&schemas, merge)?;
        Ok(Self {
            table: FileTable::new(listing, file_schema),
            files: Arc::new(files),
            filters: Vec::new(),
            plan: None,
        })
    }

    /// The table read.
    pub fn table(&self) -> &FileTable {
        &self.table
    }

    /// The splits of the files still read, in order.
    fn splits(&self) -> Vec<RowGroupSplit> {
        let read: HashSet<&Path> = self.table.files.iter().map(|f| &f.location).collect();
        self.files
            .iter()
            .enumerate()
            .filter(|(_, f)| read.contains(&f.listed.location))
            .flat_map(|(file, f)| {
                (0..f.metadata.metadata().num_row_groups())
                    .map(move |row_group| RowGroupSplit { file, row_group })
            })
            .collect()
    }
}

/// Bytes read from the end of a file on the first request for its footer
/// (most footers fit, saving a second request).
const FOOTER_GUESS: u64 = 64 << 10;

/// Checks, before anything is decoded, that every column chunk the
/// footer describes lies within the file's `size` bytes, before the
/// footer: a damaged footer is then reported as such, naming the chunk.
fn check_chunk_ranges(
    metadata: &parquet::file::metadata::ParquetMetaData,
    size: u64,
) -> std::result::Result<(), String> {
    // The magic number at the start, the footer's length and magic at
    // the end.
    let (first, end) = (4, size.saturating_sub(8));
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for column in group.columns() {
            let (start, length) = column.byte_range();
            if start < first || start.saturating_add(length) > end {
                return Err(format!(
                    "row group {g}, column '{}': its data would be bytes {start} to {} of a \
                     file of {size} bytes (a damaged footer)",
                    column.column_path().string(),
                    start.saturating_add(length)
                ));
            }
        }
    }
    Ok(())
}

async fn read_footer(store: Arc<dyn ObjectStore>, listed: ListedFile) -> Result<ParquetFile> {
    let corrupt = |message: String| Error::Corrupt {
        file: listed.url.clone(),
        message: format!("not a readable Parquet file: {message}"),
    };
    let mut decoder = ParquetMetaDataPushDecoder::try_new(listed.size)
        .map_err(|e| corrupt(e.to_string()))?
        .with_page_index_policy(PageIndexPolicy::Optional);
    let tail = listed.size.saturating_sub(FOOTER_GUESS)..listed.size;
    let mut wanted = vec![tail];
    let metadata = loop {
        let data = store
            .get_ranges(&listed.location, &wanted)
            .await
            .map_err(|source| Error::Store {
                url: listed.url.clone(),
                source,
            })?;
        decoder
            .push_ranges(wanted, data)
            .map_err(|e| corrupt(e.to_string()))?;
        match decoder.try_decode().map_err(|e| corrupt(e.to_string()))? {
            DecodeResult::NeedsData(ranges) => wanted = ranges,
            DecodeResult::Data(metadata) => break metadata,
            DecodeResult::Finished => return Err(corrupt("no footer".to_string())),
        }
    };
    check_chunk_ranges(&metadata, listed.size).map_err(corrupt)?;
    let metadata = ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())
        .map_err(|e| corrupt(e.to_string()))?;
    // View strings and binaries (what some writers declare in the Arrow
    // schema they embed) are read as plain ones, the types weir's
    // operators work on; the bytes in the file are the same.
    let metadata = match without_views(metadata.schema()) {
        Some(plain) => ArrowReaderMetadata::try_new(
            Arc::clone(metadata.metadata()),
            ArrowReaderOptions::new().with_schema(plain),
        )
        .map_err(|e| corrupt(e.to_string()))?,
        None => metadata,
    };
    Ok(ParquetFile { listed, metadata })
}

/// `schema` with `Utf8View` and `BinaryView` columns as `Utf8` and `Binary`,
/// or `None` when it has none.
fn without_views(schema: &SchemaRef) -> Option<SchemaRef> {
    let plain = |t: &DataType| match t {
        DataType::Utf8View => Some(DataType::Utf8),
        DataType::BinaryView => Some(DataType::Binary),
        _ => None,
    };
    if !schema
        .fields()
        .iter()
        .any(|f| plain(f.data_type()).is_some())
    {
        return None;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match plain(f.data_type()) {
            Some(t) => f.as_ref().clone().with_data_type(t),
            None => f.as_ref().clone(),
        })
        .collect();
    Some(Arc::new(Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    )))
}

impl SourceFactory for ParquetSource {
    fn name(&self) -> String {
        format!("parquet({})", self.table.listing.root)
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

    fn estimated_rows(&self) -> Option<u64> {
        Some(
            self.splits()
                .iter()
                .map(|split| self.files[split.file].rows_in(split.row_group))
                .sum(),
        )
    }

    fn scan(&self, request: &ScanRequest) -> weir_engine::Result<Option<Arc<dyn SourceFactory>>> {
        let table = self.table.scanned(request)?;
        let file_schema = &self.table.file_schema;
        // Only filters over file columns prune inside files; the others
        // (partition columns) pruned whole files above.
        let filters: Vec<Expr> = request
            .filters
            .iter()
            .filter(|f| {
                let columns = f.column_refs();
                !columns.is_empty()
                    && columns
                        .iter()
                        .all(|c| file_schema.index_of(&c.name).is_ok())
            })
            .cloned()
            .collect();
        let plan = if filters.is_empty() {
            None
        } else {
            Some(Arc::new(PruningPlan::try_new(
                &filters,
                Arc::clone(file_schema),
            )?))
        };
        Ok(Some(Arc::new(Self {
            table,
            files: Arc::clone(&self.files),
            filters,
            plan,
        })))
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Source>> {
        let splits = self.splits();
        let parallelism = task.parallelism.max(1);
        let share = splits.len() * task.subtask / parallelism
            ..splits.len() * (task.subtask + 1) / parallelism;
        let mut reads: VecDeque<FileRead> = VecDeque::new();
        for split in &splits[share] {
            match reads.back_mut() {
                Some(read) if read.file == split.file => read.row_groups.push(split.row_group),
                _ => reads.push_back(FileRead {
                    file: split.file,
                    row_groups: vec![split.row_group],
                }),
            }
        }
        Ok(Box::new(ParquetReader {
            source: self.clone(),
            reads,
            current: None,
            pending: VecDeque::new(),
            counters: task.counters.clone(),
            scanned: task.scanned.clone(),
        }))
    }
}

/// The row groups of one file a subtask reads.
struct FileRead {
    file: usize,
    row_groups: Vec<usize>,
}

/// The decoding of one file.
struct Decoding {
    file: ParquetFile,
    store: Arc<dyn ObjectStore>,
    /// The decoder, between steps on the CPU pool.
    state: Option<DecoderState>,
    /// The schema decoded batches are conformed to (the projected file
    /// columns of the table).
    target: SchemaRef,
    /// Column chunks of the next row group, fetched ahead.
    prefetch: Option<JoinHandle<Fetched>>,
    /// The leaf columns read, for prefetching.
    leaves: Arc<Vec<usize>>,
    /// Whether pages are skipped (then nothing is fetched ahead: the decoder
    /// asks for the pages it needs).
    selective: bool,
    /// The rows of the row groups read.
    rows: u64,
    /// The rows decoded so far.
    emitted: u64,
}

type Fetched = std::result::Result<(Vec<Range<u64>>, Vec<Bytes>), object_store::Error>;

struct DecoderState {
    decoder: ParquetPushDecoder,
    reader: Option<ParquetRecordBatchReader>,
}

/// What one step on the CPU pool produced.
enum Step {
    Batches(Vec<RecordBatch>),
    NeedsData(Vec<Range<u64>>),
    /// A new row group started; `next` is the one after it.
    RowGroup {
        next: Option<usize>,
    },
    Finished,
}

impl DecoderState {
    /// Decodes up to [`BATCHES_PER_STEP`] batches, or says what it needs.
    fn step(&mut self) -> std::result::Result<Step, String> {
        if let Some(reader) = &mut self.reader {
            let mut batches = Vec::new();
            for batch in reader.by_ref().take(BATCHES_PER_STEP) {
                batches.push(batch.map_err(|e| e.to_string())?);
            }
            if batches.len() < BATCHES_PER_STEP {
                self.reader = None;
            }
            if !batches.is_empty() {
                return Ok(Step::Batches(batches));
            }
        }
        match self.decoder.try_next_reader().map_err(|e| e.to_string())? {
            DecodeResult::NeedsData(ranges) => Ok(Step::NeedsData(ranges)),
            DecodeResult::Data(reader) => {
                self.reader = Some(reader);
                let next = self
                    .decoder
                    .peek_next_row_group()
                    .map_err(|e| e.to_string())?;
                Ok(Step::RowGroup { next })
            }
            DecodeResult::Finished => Ok(Step::Finished),
        }
    }
}

struct ParquetReader {
    source: ParquetSource,
    reads: VecDeque<FileRead>,
    current: Option<Decoding>,
    pending: VecDeque<RecordBatch>,
    counters: Counters,
    /// Gets the rows passed over unread: pruned row groups, and the rows
    /// of a file that page skipping and the row filter removed.
    scanned: ScanProgress,
}

impl ParquetReader {
    /// Starts decoding the next file, or returns `false` when none is left.
    fn open_next(&mut self) -> Result<bool> {
        let Some(read) = self.reads.pop_front() else {
            return Ok(false);
        };
        let file = self.source.files[read.file].clone();
        let metadata = &file.metadata;
        let table = &self.source.table;
        let target = match table.file_projection() {
            Some(columns) => Arc::new(table.file_schema.project(columns)?),
            None => Arc::clone(&table.file_schema),
        };
        let file_schema = metadata.schema();
        let roots: Vec<usize> = target
            .fields()
            .iter()
            .filter_map(|f| file_schema.index_of(f.name()).ok())
            .collect();
        let parquet_schema = metadata.parquet_schema();
        let mut read_roots = roots.clone();
        for filter in &self.source.filters {
            for column in filter.column_refs() {
                if let Ok(i) = file_schema.index_of(&column.name)
                    && !read_roots.contains(&i)
                {
                    read_roots.push(i);
                }
            }
        }
        let leaves: Vec<usize> = (0..parquet_schema.num_columns())
            .filter(|&leaf| read_roots.contains(&parquet_schema.get_column_root_idx(leaf)))
            .collect();
        let row_groups_total = read.row_groups.len();
        let (kept, selection, row_filter) = match &self.source.plan {
            Some(plan) => {
                let kept = plan.row_groups(metadata, &read.row_groups).kept;
                let selection = plan.page_selection(metadata, &kept);
                (kept, selection, plan.row_filter(metadata))
            }
            None => (read.row_groups.clone(), None, None),
        };
        self.counters.add("files read", 1);
        self.counters.add("row groups read", kept.len() as u64);
        self.counters
            .add("row groups pruned", (row_groups_total - kept.len()) as u64);
        if let Some(selection) = &selection {
            self.counters.add(
                "rows skipped by the page index",
                selection.skipped_row_count() as u64,
            );
        }
        let rows_of = |groups: &[usize]| groups.iter().map(|&g| file.rows_in(g)).sum::<u64>();
        let rows = rows_of(&kept);
        self.scanned.add(rows_of(&read.row_groups) - rows);
        if kept.is_empty() {
            return Ok(true);
        }
        let corrupt = |e: parquet::errors::ParquetError| Error::Corrupt {
            file: file.listed.url.clone(),
            message: e.to_string(),
        };
        let mut builder = ParquetPushDecoderBuilder::new_with_metadata(metadata.clone())
            .with_projection(ProjectionMask::roots(parquet_schema, roots))
            .with_row_groups(kept)
            .with_batch_size(BATCH_ROWS);
        let selective = selection.is_some();
        if let Some(selection) = selection {
            builder = builder.with_row_selection(selection);
        }
        if let Some(filter) = row_filter {
            builder = builder.with_row_filter(filter);
        }
        let decoder = builder.build().map_err(corrupt)?;
        self.current = Some(Decoding {
            store: Arc::clone(self.source.table.listing.store()),
            state: Some(DecoderState {
                decoder,
                reader: None,
            }),
            target,
            prefetch: None,
            leaves: Arc::new(leaves),
            selective,
            rows,
            emitted: 0,
            file,
        });
        Ok(true)
    }

    /// Advances the current file by one step.
    async fn advance(&mut self) -> Result<()> {
        let Some(decoding) = &mut self.current else {
            return Ok(());
        };
        let url = decoding.file.listed.url.clone();
        let Some(mut state) = decoding.state.take() else {
            self.current = None;
            return Ok(());
        };
        let (state, step) = weir_engine::cpu::run(move || {
            let step = weir_engine::cpu::decode_guarded(|| state.step());
            (state, step)
        })
        .await;
        let corrupt = |message: String| Error::Corrupt {
            file: url.clone(),
            message,
        };
        match step.map_err(corrupt)? {
            Step::Batches(batches) => {
                decoding.state = Some(state);
                for batch in batches {
                    decoding.emitted += batch.num_rows() as u64;
                    let conformed = conform(&batch, &decoding.target)?;
                    let completed = self
                        .source
                        .table
                        .complete(&decoding.file.listed, &conformed)?;
                    self.pending.push_back(completed);
                }
            }
            Step::RowGroup { next } => {
                if let Some(next) = next
                    && !decoding.selective
                    && decoding.prefetch.is_none()
                {
                    decoding.prefetch = Some(decoding.fetch_ahead(next));
                }
                decoding.state = Some(state);
            }
            Step::NeedsData(ranges) => {
                let mut state = state;
                let (ranges, data) = match decoding.prefetch.take() {
                    Some(ahead) => ahead
                        .await
                        .map_err(|e| corrupt(format!("prefetch failed: {e}")))?
                        .map_err(|source| Error::Store {
                            url: url.clone(),
                            source,
                        })?,
                    None => {
                        let data = decoding
                            .store
                            .get_ranges(&decoding.file.listed.location, &ranges)
                            .await
                            .map_err(|source| Error::Store {
                                url: url.clone(),
                                source,
                            })?;
                        (ranges, data)
                    }
                };
                let bytes: u64 = data.iter().map(|d| d.len() as u64).sum();
                self.counters.add("bytes read", bytes);
                state
                    .decoder
                    .push_ranges(ranges, data)
                    .map_err(|e| corrupt(e.to_string()))?;
                decoding.state = Some(state);
            }
            Step::Finished => {
                if let Some(ahead) = decoding.prefetch.take() {
                    ahead.abort();
                }
                self.scanned
                    .add(decoding.rows.saturating_sub(decoding.emitted));
                self.current = None;
            }
        }
        Ok(())
    }
}

impl Decoding {
    /// Fetches the column chunks of `row_group` in the background.
    fn fetch_ahead(&self, row_group: usize) -> JoinHandle<Fetched> {
        let metadata = self.file.metadata.metadata().row_group(row_group);
        let ranges: Vec<Range<u64>> = self
            .leaves
            .iter()
            .map(|&leaf| {
                let (start, length) = metadata.column(leaf).byte_range();
                start..start + length
            })
            .collect();
        let store = Arc::clone(&self.store);
        let location = self.file.listed.location.clone();
        tokio::spawn(async move {
            let data = store.get_ranges(&location, &ranges).await?;
            Ok((ranges, data))
        })
    }
}

#[async_trait]
impl Source for ParquetReader {
    async fn next_batch(&mut self) -> weir_engine::Result<Option<RecordBatch>> {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                return Ok(Some(batch));
            }
            if self.current.is_none() && !self.open_next()? {
                return Ok(None);
            }
            self.advance().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::file::metadata::ParquetMetaDataReader;

    #[test]
    fn a_column_chunk_past_the_end_is_a_damaged_footer() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../data/tpch/sf0.01/nation.parquet"
        );
        let bytes = Bytes::from(std::fs::read(path).expect("reads"));
        let size = bytes.len() as u64;
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes)
            .expect("a footer");
        assert_eq!(check_chunk_ranges(&metadata, size), Ok(()));
        // The last column's data moved past the end of the file.
        let mut groups = metadata.row_groups().to_vec();
        let group = groups.pop().expect("a row group");
        let mut columns = group.columns().to_vec();
        let last = columns.pop().expect("a column");
        let offset = last.data_page_offset() + size as i64;
        columns.push(
            last.into_builder()
                .set_data_page_offset(offset)
                .set_dictionary_page_offset(None)
                .build()
                .expect("builds"),
        );
        groups.push(
            group
                .into_builder()
                .set_column_metadata(columns)
                .build()
                .expect("builds"),
        );
        let damaged = metadata.into_builder().set_row_groups(groups).build();
        let message = check_chunk_ranges(&damaged, size).expect_err("damaged");
        assert!(
            message.starts_with("row group 0, column 'n_comment': its data would be bytes"),
            "{message}"
        );
    }
}
