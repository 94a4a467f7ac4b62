//! A kit for testing operators outside a job: seeded random batches of every
//! key type weir supports, re-batching, a driver that runs one operator over
//! its inputs the way a task does, and row renderings to compare results
//! exactly (in order or as multisets).
//!
//! The differential tests of the relational operators are built on it; it is
//! public so that operators written outside this crate can be tested the
//! same way.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array,
    RecordBatch, StringArray,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::dataframe::DataFrame;
use crate::expr::aggregate::{count, sum};
use crate::expr::col;
use crate::memory::{MemoryConfig, MemoryPool};
use crate::operator::{OUTPUT_BATCH_ROWS, OUTPUT_FULL_ROWS};
use crate::operators::Window;
use crate::{OperatorFactory, Output, Progress, Result, TaskInfo};

/// A small deterministic random number generator (64-bit LCG with a
/// xorshift output), so every seed gives the same data on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let x = self.0;
        (x ^ (x >> 29)).wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (x >> 32)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

/// The column types random data is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `Int32`.
    Int32,
    /// `Int64`.
    Int64,
    /// `Utf8` strings.
    Utf8,
    /// `Decimal128(12, 2)`.
    Decimal,
    /// `Float64` (whole numbers and halves, so sums are exact).
    Float64,
    /// `Boolean`.
    Boolean,
    /// `Date32`.
    Date32,
}

impl ColumnKind {
    /// Every kind.
    pub const ALL: [ColumnKind; 7] = [
        ColumnKind::Int32,
        ColumnKind::Int64,
        ColumnKind::Utf8,
        ColumnKind::Decimal,
        ColumnKind::Float64,
        ColumnKind::Boolean,
        ColumnKind::Date32,
    ];

    /// The Arrow type of the kind.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Int32 => DataType::Int32,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Utf8 => DataType::Utf8,
            ColumnKind::Decimal => DataType::Decimal128(12, 2),
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Date32 => DataType::Date32,
        }
    }
}

/// How one random column is made.
#[derive(Debug, Clone)]
pub struct ColumnSpec {
    /// Its name.
    pub name: String,
    /// Its type.
    pub kind: ColumnKind,
    /// Distinct values it takes (its cardinality, before nulls).
    pub distinct: u64,
    /// The share of nulls, 0.0 for a non-nullable column.
    pub nulls: f64,
}

impl ColumnSpec {
    /// A column `name` of `kind` with `distinct` values and no nulls.
    pub fn new(name: impl Into<String>, kind: ColumnKind, distinct: u64) -> Self {
        Self {
            name: name.into(),
            kind,
            distinct: distinct.max(1),
            nulls: 0.0,
        }
    }

    /// The same column with a share of nulls.
    pub fn with_nulls(mut self, share: f64) -> Self {
        self.nulls = share;
        self
    }
}

/// The schema of batches made from `columns`.
pub fn random_schema(columns: &[ColumnSpec]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(&c.name, c.kind.data_type(), c.nulls > 0.0))
            .collect::<Vec<_>>(),
    ))
}

/// One batch of `rows` random rows.
pub fn random_batch(rng: &mut Rng, columns: &[ColumnSpec], rows: usize) -> RecordBatch {
    let arrays = columns
        .iter()
        .map(|c| random_column(rng, c, rows))
        .collect::<Vec<_>>();
    RecordBatch::try_new(random_schema(columns), arrays).expect("columns match the schema")
}

fn random_column(rng: &mut Rng, spec: &ColumnSpec, rows: usize) -> ArrayRef {
    let mut values = Vec::with_capacity(rows);
    for _ in 0..rows {
        let null = spec.nulls > 0.0 && rng.chance(spec.nulls);
        let v = rng.below(spec.distinct) as i64;
        values.push((!null).then_some(v));
    }
    // Values are centred on zero so negative numbers are covered too.
    let half = (spec.distinct / 2) as i64;
    let centred = values.iter().map(|v| v.map(|v| v - half));
    match spec.kind {
        ColumnKind::Int32 => Arc::new(Int32Array::from_iter(centred.map(|v| v.map(|v| v as i32)))),
        ColumnKind::Int64 => Arc::new(Int64Array::from_iter(centred)),
        ColumnKind::Utf8 => Arc::new(StringArray::from_iter(
            values.iter().map(|v| v.map(string_value)),
        )),
        ColumnKind::Decimal => Arc::new(
            Decimal128Array::from_iter(centred.map(|v| v.map(|v| i128::from(v) * 37)))
                .with_precision_and_scale(12, 2)
                .expect("valid precision"),
        ),
        ColumnKind::Float64 => Arc::new(Float64Array::from_iter(
            centred.map(|v| v.map(|v| v as f64 / 2.0)),
        )),
        ColumnKind::Boolean => Arc::new(BooleanArray::from_iter(
            values.iter().map(|v| v.map(|v| v % 2 == 0)),
        )),
        ColumnKind::Date32 => Arc::new(Date32Array::from_iter(
            centred.map(|v| v.map(|v| 19_000 + v as i32)),
        )),
    }
}

/// A string for value `v`: varied lengths, a shared prefix for some, and
/// the empty string for 0.
fn string_value(v: i64) -> String {
    match v % 4 {
        0 if v == 0 => String::new(),
        0 => format!("k{v}"),
        1 => format!("key-{v:05}"),
        2 => format!("a-much-longer-key-that-is-not-inlined-{v}"),
        _ => format!("ключ-{v}"),
    }
}

/// `batches` cut into batches of at most `rows` rows (at least 1).
pub fn rebatch(batches: &[RecordBatch], rows: usize) -> Vec<RecordBatch> {
    let Some(first) = batches.first() else {
        return Vec::new();
    };
    let all = concat_batches(&first.schema(), batches).expect("batches share a schema");
    let rows = rows.max(1);
    (0..all.num_rows())
        .step_by(rows)
        .map(|offset| all.slice(offset, rows.min(all.num_rows() - offset)))
        .collect()
}

/// A task identity for operators created outside a job, with `memory`.
pub fn task_info(memory: MemoryPool) -> TaskInfo {
    TaskInfo {
        job_id: "test".into(),
        vertex: crate::graph::VertexId(0),
        vertex_name: "test".into(),
        subtask: 0,
        parallelism: 1,
        attempt: 0,
        max_parallelism: weir_exchange::partitioner::DEFAULT_MAX_PARALLELISM,
        memory,
        counters: Default::default(),
        metrics: Default::default(),
        scanned: Default::default(),
    }
}

/// Runs one operator created by `factory` over `inputs` (one list of batches
/// per input) as a task would: every batch of input 0, then its end, then
/// input 1, ..., then `finish` until it is done. Returns everything it
/// emitted.
///
/// # Errors
/// The operator's first error.
pub fn drive(
    factory: &dyn OperatorFactory,
    inputs: &[Vec<RecordBatch>],
    memory: MemoryPool,
) -> Result<Vec<RecordBatch>> {
    Ok(drive_in_parts(factory, inputs, memory)?.all())
}

/// What an operator emitted under [`drive_in_parts`].
#[derive(Debug, Default)]
pub struct Emitted {
    /// The batches emitted while the inputs were processed.
    pub inputs: Vec<RecordBatch>,
    /// The batches of each call of `finish` (each with a fresh [`Output`]),
    /// with what the call returned.
    pub finish: Vec<(Vec<RecordBatch>, Progress)>,
}

impl Emitted {
    /// Every batch, in the order it was emitted.
    pub fn all(self) -> Vec<RecordBatch> {
        let mut all = self.inputs;
        all.extend(self.finish.into_iter().flat_map(|(batches, _)| batches));
        all
    }

    /// Asserts that `finish` emitted in more than two parts, none above
    /// one full [`Output`] and one batch.
    ///
    /// # Panics
    /// When it did not, naming `what`.
    pub fn assert_in_parts(&self, what: &str) {
        assert!(self.more() > 1, "{what}: finish emits in parts");
        let largest = self.largest_part();
        assert!(
            largest <= OUTPUT_FULL_ROWS + OUTPUT_BATCH_ROWS,
            "{what}: a part holds {largest} rows"
        );
    }

    /// The calls of `finish` that returned [`Progress::More`].
    pub fn more(&self) -> usize {
        self.finish
            .iter()
            .filter(|(_, progress)| *progress == Progress::More)
            .count()
    }

    /// The most rows one call of `finish` emitted.
    pub fn largest_part(&self) -> usize {
        self.finish
            .iter()
            .map(|(batches, _)| batches.iter().map(RecordBatch::num_rows).sum())
            .max()
            .unwrap_or(0)
    }
}

/// Like [`drive`], but keeps apart what each call of `finish` emitted, so a
/// test can check that a large result comes out in parts.
///
/// # Errors
/// The operator's first error.
pub fn drive_in_parts(
    factory: &dyn OperatorFactory,
    inputs: &[Vec<RecordBatch>],
    memory: MemoryPool,
) -> Result<Emitted> {
    let mut op = factory.create(&task_info(memory))?;
    let mut out = Output::default();
    for (input, batches) in inputs.iter().enumerate() {
        for batch in batches {
            op.process_batch(input, batch.clone(), &mut out)?;
        }
        op.end_of_input(input, &mut out)?;
    }
    let mut emitted = Emitted {
        inputs: out.take().0,
        finish: Vec::new(),
    };
    loop {
        let mut out = Output::default();
        let progress = op.finish(&mut out)?;
        emitted.finish.push((out.take().0, progress));
        if progress == Progress::Done {
            return Ok(emitted);
        }
    }
}

/// A spill directory of its own for one test, removed when dropped.
#[derive(Debug)]
pub struct SpillDir(tempfile::TempDir);

impl SpillDir {
    /// A new, empty directory under the system's temporary directory.
    ///
    /// # Panics
    /// When the directory cannot be created.
    pub fn new() -> Self {
        Self(
            tempfile::Builder::new()
                .prefix("weir-spill-test-")
                .tempdir()
                .expect("a temporary directory can be created"),
        )
    }

    /// A memory pool of `budget` bytes spilling here (or not at all).
    pub fn pool(&self, budget: usize, spill: bool) -> MemoryPool {
        MemoryPool::new(MemoryConfig {
            budget,
            spill,
            spill_dir: self.0.path().to_path_buf(),
        })
    }

    /// The files in the directory now.
    pub fn files(&self) -> usize {
        std::fs::read_dir(self.0.path()).map_or(0, |d| d.count())
    }
}

impl Default for SpillDir {
    fn default() -> Self {
        Self::new()
    }
}

/// Every row of `batches` rendered as one line (`a|b|NULL|...`), in order.
pub fn rows(batches: &[RecordBatch]) -> Vec<String> {
    let options = FormatOptions::default().with_null("NULL");
    let mut lines = Vec::new();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()
            .expect("every column type can be displayed");
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            lines.push(cells.join("|"));
        }
    }
    lines
}

/// The count (`n`) and sum (`total`) of `value` per `key` and `window` of
/// `seq`, over rows such as [`SequenceGenerator`](crate::sources::SequenceGenerator)
/// makes: the windowed job of the streaming differential tests.
///
/// # Errors
/// When `numbers` lacks those columns or has no watermarks on `seq`.
pub fn window_totals(numbers: &DataFrame, window: Window) -> Result<DataFrame> {
    numbers.window_aggregate(
        window,
        "seq",
        vec![col("key")],
        vec![
            count(col("value")).alias("n"),
            sum(col("value")).alias("total"),
        ],
    )
}

/// The windows `[start, end)` holding event `time`, as the definitions of
/// tumbling, sliding and cumulating windows say (a reference for tests;
/// sessions depend on the other records, so they have none).
///
/// # Panics
/// For session windows.
pub fn windows_of(window: Window, time: i64) -> Vec<(i64, i64)> {
    let floor = |t: i64, n: i64| t.div_euclid(n) * n;
    match window {
        Window::Tumble { size } => vec![(floor(time, size), floor(time, size) + size)],
        Window::Hop { size, slide } => {
            let mut out = Vec::new();
            let mut start = floor(time, slide);
            while start > time - size {
                out.push((start, start + size));
                start -= slide;
            }
            out
        }
        Window::Cumulate { step, max_size } => {
            let start = floor(time, max_size);
            let mut end = floor(time, step) + step;
            let mut out = Vec::new();
            while end <= start + max_size {
                out.push((start, end));
                end += step;
            }
            out
        }
        Window::Session { .. } => panic!("sessions depend on the other records"),
    }
}

/// The rows of `batches` as a sorted multiset, for results whose order is
/// not defined.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut lines = rows(batches);
    lines.sort();
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_batch() {
        let columns: Vec<_> = ColumnKind::ALL
            .iter()
            .enumerate()
            .map(|(i, &k)| ColumnSpec::new(format!("c{i}"), k, 50).with_nulls(0.1))
            .collect();
        let a = random_batch(&mut Rng::new(7), &columns, 1000);
        let b = random_batch(&mut Rng::new(7), &columns, 1000);
        let c = random_batch(&mut Rng::new(8), &columns, 1000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.columns().iter().all(|c| c.null_count() > 0));
        let cut = rebatch(std::slice::from_ref(&a), 7);
        assert_eq!(cut.len(), 143);
        assert_eq!(rows(&cut), rows(&[a]));
    }
}
