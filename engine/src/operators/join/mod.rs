//! What the joins share: the join types and sides, their output schemas, and
//! the assembly of output batches from candidate pairs of rows.
//!
//! A join has a *build* side, buffered whole, and a *probe* side, streamed
//! through it. The hash join and the nested-loop join differ only in how they
//! find the candidate pairs of a probe batch (a hash table lookup versus a
//! block of the cross product); everything after that — the residual
//! condition, the matched-row bitmaps, outer rows padded with nulls, semi and
//! anti rows — is [`JoinOutput`]'s, so both joins mean exactly the same.

pub(crate) mod grace;
pub(crate) mod hash_table;
pub(crate) mod keys;

use std::fmt;
use std::sync::Arc;

use arrow::array::BooleanBufferBuilder;
use arrow::array::{Array, BooleanArray, RecordBatch, UInt32Array, new_null_array};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{filter_record_batch, prep_null_mask_filter, take_record_batch};
use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::expr::Compiled;
use crate::memory::MemoryReservation;
use crate::{Error, Output, Result};

/// Rows per output batch.
pub(crate) const OUTPUT_BATCH_ROWS: usize = 8192;

/// One of a join's two inputs: input 0 is the left, input 1 the right.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinSide {
    /// Input 0.
    Left,
    /// Input 1.
    Right,
}

impl JoinSide {
    /// The other side.
    pub fn other(self) -> Self {
        match self {
            JoinSide::Left => JoinSide::Right,
            JoinSide::Right => JoinSide::Left,
        }
    }

    /// The side that arrives on operator input `input`.
    ///
    /// # Errors
    /// [`Error::Operator`] naming `operator` for an input other than 0 or 1.
    pub(crate) fn of_input(input: usize, operator: &str) -> Result<Self> {
        match input {
            0 => Ok(JoinSide::Left),
            1 => Ok(JoinSide::Right),
            _ => Err(Error::Operator {
                operator: operator.to_string(),
                message: format!("a join has inputs 0 (left) and 1 (right), not {input}"),
            }),
        }
    }
}

impl fmt::Display for JoinSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinSide::Left => "left",
            JoinSide::Right => "right",
        })
    }
}

/// Which rows a join emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JoinType {
    /// Pairs of matching rows.
    Inner,
    /// Matching pairs, and every left row without a match padded with nulls.
    Left,
    /// Matching pairs, and every right row without a match padded with nulls.
    Right,
    /// Matching pairs, and the rows of both sides without a match.
    Full,
    /// The left rows that have a match (once each).
    LeftSemi,
    /// The left rows that have no match.
    LeftAnti,
    /// The right rows that have a match (once each).
    RightSemi,
    /// The right rows that have no match.
    RightAnti,
}

/// What a join emits of one side's rows on their own, outside of pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LoneRows {
    /// The rows without a match (outer and anti joins).
    Unmatched,
    /// The rows with at least one match (semi joins).
    Matched,
}

impl JoinType {
    /// Every join type.
    pub const ALL: [JoinType; 8] = [
        JoinType::Inner,
        JoinType::Left,
        JoinType::Right,
        JoinType::Full,
        JoinType::LeftSemi,
        JoinType::LeftAnti,
        JoinType::RightSemi,
        JoinType::RightAnti,
    ];

    /// Whether the output is pairs of rows (left columns then right columns)
    /// rather than the rows of one side.
    pub fn emits_pairs(self) -> bool {
        matches!(
            self,
            JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full
        )
    }

    fn lone_rows(self, side: JoinSide) -> Option<LoneRows> {
        use JoinSide::{Left, Right};
        match (self, side) {
            (JoinType::Left | JoinType::Full, Left)
            | (JoinType::Right | JoinType::Full, Right)
            | (JoinType::LeftAnti, Left)
            | (JoinType::RightAnti, Right) => Some(LoneRows::Unmatched),
            (JoinType::LeftSemi, Left) | (JoinType::RightSemi, Right) => Some(LoneRows::Matched),
            _ => None,
        }
    }

    /// The schema of the join's output: the left columns then the right
    /// ones, those of an outer side made nullable; for semi and anti joins
    /// only the kept side's columns.
    pub fn output_schema(self, left: &SchemaRef, right: &SchemaRef) -> SchemaRef {
        let nullable = |schema: &SchemaRef, yes: bool| -> Vec<Field> {
            schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_nullable(yes || f.is_nullable()))
                .collect()
        };
        let pairs = |left_outer: bool, right_outer: bool| {
            let mut fields = nullable(left, left_outer);
            fields.extend(nullable(right, right_outer));
            Arc::new(Schema::new(fields))
        };
        match self {
            JoinType::Inner => pairs(false, false),
            JoinType::Left => pairs(false, true),
            JoinType::Right => pairs(true, false),
            JoinType::Full => pairs(true, true),
            JoinType::LeftSemi | JoinType::LeftAnti => Arc::clone(left),
            JoinType::RightSemi | JoinType::RightAnti => Arc::clone(right),
        }
    }
}

impl fmt::Display for JoinType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JoinType::Inner => "inner",
            JoinType::Left => "left",
            JoinType::Right => "right",
            JoinType::Full => "full",
            JoinType::LeftSemi => "left semi",
            JoinType::LeftAnti => "left anti",
            JoinType::RightSemi => "right semi",
            JoinType::RightAnti => "right anti",
        })
    }
}

/// The schema a join condition or residual filter is typed against: the left
/// columns then the right ones, as they are. Column names must be unique
/// across both sides for an expression to name them.
pub fn joined_schema(left: &SchemaRef, right: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        left.fields()
            .iter()
            .chain(right.fields().iter())
            .map(Arc::clone)
            .collect::<Vec<_>>(),
    ))
}

/// Which rows of one side have found a match so far.
#[derive(Debug)]
pub(crate) struct MatchBitmap(BooleanBufferBuilder);

impl MatchBitmap {
    /// No row of `rows` matched yet.
    pub(crate) fn new(rows: usize) -> Self {
        let mut bits = BooleanBufferBuilder::new(rows);
        bits.append_n(rows, false);
        Self(bits)
    }

    /// Bytes held.
    pub(crate) fn size(&self) -> usize {
        self.0.capacity() / 8
    }

    /// Marks the rows of `rows` whose candidate pair matched (`keep`;
    /// `None`: every pair did).
    fn mark(&mut self, rows: &UInt32Array, keep: Option<&BooleanBuffer>) {
        match keep {
            Some(keep) => keep
                .set_indices()
                .for_each(|i| self.0.set_bit(rows.value(i) as usize, true)),
            None => rows
                .values()
                .iter()
                .for_each(|&row| self.0.set_bit(row as usize, true)),
        }
    }

    /// The matched rows, one bit each.
    pub(crate) fn finish(mut self) -> BooleanBuffer {
        self.0.finish()
    }
}

/// Candidate pairs of one block: build row indices and probe row indices,
/// pair by pair.
pub(crate) type Candidates = (Vec<u32>, Vec<u32>);

/// Turns candidate pairs into a join's output: the residual condition
/// decides which candidates match; matches are emitted as pairs and/or
/// marked in the sides' bitmaps, and the rows a join emits on their own are
/// assembled (padded with nulls for outer joins).
#[derive(Debug, Clone)]
pub(crate) struct JoinOutput {
    join_type: JoinType,
    build: JoinSide,
    left: SchemaRef,
    right: SchemaRef,
    joined: SchemaRef,
    schema: SchemaRef,
    condition: Option<Compiled>,
}

impl JoinOutput {
    /// The output of a `join_type` join of `left` and `right` that builds
    /// on `build`; `condition` (over [`joined_schema`]) must hold for a
    /// candidate pair to match.
    pub(crate) fn try_new(
        join_type: JoinType,
        left: SchemaRef,
        right: SchemaRef,
        condition: Option<Compiled>,
        build: JoinSide,
    ) -> Result<Self> {
        if let Some(condition) = &condition
            && condition.field().data_type() != &arrow::datatypes::DataType::Boolean
        {
            return Err(Error::Plan(format!(
                "a {join_type} join's condition must be boolean, but {condition} is {}",
                condition.field().data_type()
            )));
        }
        Ok(Self {
            join_type,
            build,
            joined: joined_schema(&left, &right),
            schema: join_type.output_schema(&left, &right),
            left,
            right,
            condition,
        })
    }

    /// The join type.
    pub(crate) fn join_type(&self) -> JoinType {
        self.join_type
    }

    /// The side that is buffered.
    pub(crate) fn build(&self) -> JoinSide {
        self.build
    }

    /// The schema of the output batches.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The residual condition, if any.
    pub(crate) fn condition(&self) -> Option<&Compiled> {
        self.condition.as_ref()
    }

    /// The schema of `side`'s input.
    pub(crate) fn side_schema(&self, side: JoinSide) -> &SchemaRef {
        match side {
            JoinSide::Left => &self.left,
            JoinSide::Right => &self.right,
        }
    }

    /// Checks that a batch of `side` has the column types the join was
    /// planned for.
    ///
    /// # Errors
    /// [`Error::Operator`] naming `operator` and both lists of types.
    pub(crate) fn check_input(
        &self,
        side: JoinSide,
        batch: &RecordBatch,
        operator: &str,
    ) -> Result<()> {
        let types =
            |s: &Schema| -> Vec<_> { s.fields().iter().map(|f| f.data_type().clone()).collect() };
        let (found, expected) = (types(&batch.schema()), types(self.side_schema(side)));
        if found == expected {
            return Ok(());
        }
        Err(Error::Operator {
            operator: operator.to_string(),
            message: format!(
                "a batch of the {side} input has columns {found:?}, the join was planned for \
                 {expected:?}"
            ),
        })
    }

    /// Whether the join emits some rows of `side` on their own (outer,
    /// semi and anti joins of that side).
    pub(crate) fn keeps_lone(&self, side: JoinSide) -> bool {
        self.join_type.lone_rows(side).is_some()
    }

    /// A bitmap for the build rows when the join emits some of them on
    /// their own at the end.
    pub(crate) fn build_bitmap(&self, rows: usize) -> Option<MatchBitmap> {
        self.keeps_lone(self.build).then(|| MatchBitmap::new(rows))
    }

    /// Joins one probe batch against the build rows, given its candidate
    /// pairs block by block (each block at most [`OUTPUT_BATCH_ROWS`]
    /// pairs): emits the matching pairs, marks the matched build rows in
    /// `build_matched`, and emits the probe rows the join keeps on their own.
    ///
    /// # Errors
    /// When the condition fails to evaluate, or `candidates` fails.
    pub(crate) fn probe(
        &self,
        build: &RecordBatch,
        mut build_matched: Option<&mut MatchBitmap>,
        probe: &RecordBatch,
        candidates: impl Iterator<Item = Result<Candidates>>,
        out: &mut Output,
    ) -> Result<()> {
        let probe_side = self.build.other();
        let mut probe_matched = self
            .join_type
            .lone_rows(probe_side)
            .map(|_| MatchBitmap::new(probe.num_rows()));
        for block in candidates {
            let (build_rows, probe_rows) = block?;
            if build_rows.is_empty() {
                continue;
            }
            let build_rows = UInt32Array::from(build_rows);
            let probe_rows = UInt32Array::from(probe_rows);
            let matches = self.matches(build, &build_rows, probe, &probe_rows, out)?;
            if let Some(bits) = build_matched.as_deref_mut() {
                bits.mark(&build_rows, matches.as_ref());
            }
            if let Some(bits) = probe_matched.as_mut() {
                bits.mark(&probe_rows, matches.as_ref());
            }
        }
        self.emit_lone(
            probe_side,
            probe,
            probe_matched.map(MatchBitmap::finish),
            out,
        )
    }

    /// Emits the build rows the join keeps on their own, once every probe
    /// row has been seen.
    ///
    /// # Errors
    /// When the output batches cannot be assembled.
    pub(crate) fn finish_build(
        &self,
        build: &RecordBatch,
        matched: Option<MatchBitmap>,
        out: &mut Output,
    ) -> Result<()> {
        self.emit_lone(self.build, build, matched.map(MatchBitmap::finish), out)
    }

    /// Emits the rows of `side` that can never match (NULL join keys) if
    /// the join keeps such rows.
    ///
    /// # Errors
    /// When the output batches cannot be assembled.
    pub(crate) fn unmatchable(
        &self,
        side: JoinSide,
        rows: &RecordBatch,
        out: &mut Output,
    ) -> Result<()> {
        self.emit_lone(side, rows, None, out)
    }

    /// Assembles the candidate pairs, applies the condition and emits the
    /// matching pairs if the join emits pairs. Returns which candidates
    /// matched (`None`: all of them).
    fn matches(
        &self,
        build: &RecordBatch,
        build_rows: &UInt32Array,
        probe: &RecordBatch,
        probe_rows: &UInt32Array,
        out: &mut Output,
    ) -> Result<Option<BooleanBuffer>> {
        if self.condition.is_none() && !self.join_type.emits_pairs() {
            return Ok(None);
        }
        let build = take_record_batch(build, build_rows)?;
        let probe = take_record_batch(probe, probe_rows)?;
        let (left, right) = match self.build {
            JoinSide::Left => (build, probe),
            JoinSide::Right => (probe, build),
        };
        let mut columns = left.columns().to_vec();
        columns.extend_from_slice(right.columns());
        let pairs = RecordBatch::try_new(Arc::clone(&self.joined), columns)?;
        let keep = match &self.condition {
            Some(condition) => {
                let keep = condition.evaluate_predicate(&pairs)?;
                Some(if keep.null_count() > 0 {
                    prep_null_mask_filter(&keep)
                } else {
                    keep
                })
            }
            None => None,
        };
        if self.join_type.emits_pairs() {
            let kept = match &keep {
                Some(keep) => filter_record_batch(&pairs, keep)?,
                None => pairs,
            };
            out.emit(kept.with_schema(Arc::clone(&self.schema))?);
        }
        Ok(keep.map(|keep| keep.values().clone()))
    }

    /// Emits the rows of `side` that the join keeps on their own, given
    /// which of them matched (`None`: none did).
    fn emit_lone(
        &self,
        side: JoinSide,
        rows: &RecordBatch,
        matched: Option<BooleanBuffer>,
        out: &mut Output,
    ) -> Result<()> {
        let Some(lone) = self.join_type.lone_rows(side) else {
            return Ok(());
        };
        let kept = match (lone, matched) {
            (LoneRows::Unmatched, None) => rows.clone(),
            (LoneRows::Matched, None) => return Ok(()),
            (LoneRows::Unmatched, Some(matched)) => {
                filter_record_batch(rows, &BooleanArray::new(!&matched, None))?
            }
            (LoneRows::Matched, Some(matched)) => {
                filter_record_batch(rows, &BooleanArray::new(matched, None))?
            }
        };
        let batch = if self.join_type.emits_pairs() {
            let padding = |schema: &SchemaRef| {
                schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), kept.num_rows()))
                    .collect::<Vec<_>>()
            };
            let columns = match side {
                JoinSide::Left => [kept.columns().to_vec(), padding(&self.right)].concat(),
                JoinSide::Right => [padding(&self.left), kept.columns().to_vec()].concat(),
            };
            RecordBatch::try_new(Arc::clone(&self.schema), columns)?
        } else {
            kept.with_schema(Arc::clone(&self.schema))?
        };
        emit_sliced(out, &batch);
        Ok(())
    }
}

/// Emits `batch` in slices of at most [`OUTPUT_BATCH_ROWS`] rows.
fn emit_sliced(out: &mut Output, batch: &RecordBatch) {
    for offset in (0..batch.num_rows()).step_by(OUTPUT_BATCH_ROWS) {
        out.emit(batch.slice(offset, OUTPUT_BATCH_ROWS.min(batch.num_rows() - offset)));
    }
}

/// Names `operator` and what it was `doing` in an Arrow error; typed errors
/// (memory, spilling, expressions) keep their type.
pub(crate) fn in_context(operator: &str, doing: impl fmt::Display) -> impl FnOnce(Error) -> Error {
    move |error| match error {
        Error::Arrow(e) => Error::Operator {
            operator: operator.to_string(),
            message: format!("{doing}: {e}"),
        },
        other => other,
    }
}

/// Batches an operator holds in memory, accounted in its reservation.
#[derive(Debug, Default)]
pub(crate) struct BufferedBatches {
    batches: Vec<RecordBatch>,
    bytes: usize,
}

impl BufferedBatches {
    /// Buffers `batch` if the reservation can grow by its size; gives it
    /// back otherwise.
    pub(crate) fn try_push(
        &mut self,
        batch: RecordBatch,
        reservation: &mut MemoryReservation,
    ) -> Result<(), RecordBatch> {
        let bytes = batch.get_array_memory_size();
        if reservation.try_grow(bytes) {
            self.bytes += bytes;
            self.batches.push(batch);
            Ok(())
        } else {
            Err(batch)
        }
    }

    /// Takes the batches out, returning their bytes to `reservation`.
    pub(crate) fn take(&mut self, reservation: &mut MemoryReservation) -> Vec<RecordBatch> {
        reservation.shrink(std::mem::take(&mut self.bytes));
        std::mem::take(&mut self.batches)
    }
}
