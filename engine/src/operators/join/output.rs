//! The assembly of a join's output from candidate pairs of rows, shared by
//! the hash join and the nested-loop join.

use std::sync::Arc;
use weir_exchange::event::{batch_of, take_rows};

use arrow::array::{Array, BooleanBufferBuilder, RecordBatch, UInt32Array, new_null_array};
use arrow::buffer::BooleanBuffer;
use arrow::compute::{filter_record_batch, prep_null_mask_filter};
use arrow::datatypes::{Schema, SchemaRef};

use super::{JoinSide, JoinType, LoneRows, joined_schema};
use crate::expr::Compiled;
use crate::operator::OUTPUT_BATCH_ROWS;
use crate::{Error, Output, Result};

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

    /// Whether which pairs match depends only on the rows.
    pub(crate) fn is_deterministic(&self) -> bool {
        !self.condition.as_ref().is_some_and(Compiled::is_volatile)
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

    /// Whether a probe row's first match is all that counts: a semi or anti
    /// join of the probe side without a condition only asks whether there
    /// is one.
    pub(crate) fn first_match_suffices(&self) -> bool {
        self.condition.is_none() && !self.join_type.emits_pairs() && !self.keeps_lone(self.build)
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

    /// The build rows the join keeps on their own, to emit once every
    /// probe row has been seen (`None` when it keeps none).
    pub(crate) fn build_lone(
        &self,
        build: RecordBatch,
        matched: Option<MatchBitmap>,
    ) -> Option<LoneBatches> {
        self.lone(self.build, build, matched.map(MatchBitmap::finish))
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
        let build = take_rows(build, build_rows)?;
        let probe = take_rows(probe, probe_rows)?;
        let (left, right) = match self.build {
            JoinSide::Left => (build, probe),
            JoinSide::Right => (probe, build),
        };
        let mut columns = left.columns().to_vec();
        columns.extend_from_slice(right.columns());
        let pairs = batch_of(Arc::clone(&self.joined), columns, left.num_rows())?;
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
        if let Some(mut lone) = self.lone(side, rows.clone(), matched) {
            while let Some(batch) = self.next_lone(&mut lone)? {
                out.emit(batch);
            }
        }
        Ok(())
    }

    /// The rows of `side` that the join keeps on their own, given which of
    /// them matched (`None`: none did).
    fn lone(
        &self,
        side: JoinSide,
        rows: RecordBatch,
        matched: Option<BooleanBuffer>,
    ) -> Option<LoneBatches> {
        let selected = |bits: BooleanBuffer| {
            Some(UInt32Array::from_iter_values(
                bits.set_indices().map(|i| i as u32),
            ))
        };
        let kept = match (self.join_type.lone_rows(side)?, matched) {
            (LoneRows::Unmatched, None) => None,
            (LoneRows::Matched, None) => return None,
            (LoneRows::Unmatched, Some(matched)) => selected(!&matched),
            (LoneRows::Matched, Some(matched)) => selected(matched),
        };
        Some(LoneBatches {
            side,
            rows,
            kept,
            next: 0,
        })
    }

    /// The next batch of `lone` rows, padded with nulls for outer joins;
    /// `None` when all were emitted.
    ///
    /// # Errors
    /// When the output batch cannot be assembled.
    pub(crate) fn next_lone(&self, lone: &mut LoneBatches) -> Result<Option<RecordBatch>> {
        let total = lone
            .kept
            .as_ref()
            .map_or(lone.rows.num_rows(), UInt32Array::len);
        let rows = OUTPUT_BATCH_ROWS.min(total - lone.next);
        if rows == 0 {
            return Ok(None);
        }
        let kept = match &lone.kept {
            Some(kept) => take_rows(&lone.rows, &kept.slice(lone.next, rows))?,
            None => lone.rows.slice(lone.next, rows),
        };
        lone.next += rows;
        let batch = if self.join_type.emits_pairs() {
            let padding = |schema: &SchemaRef| {
                schema
                    .fields()
                    .iter()
                    .map(|f| new_null_array(f.data_type(), rows))
                    .collect::<Vec<_>>()
            };
            let columns = match lone.side {
                JoinSide::Left => [kept.columns().to_vec(), padding(&self.right)].concat(),
                JoinSide::Right => [padding(&self.left), kept.columns().to_vec()].concat(),
            };
            batch_of(Arc::clone(&self.schema), columns, rows)?
        } else {
            kept.with_schema(Arc::clone(&self.schema))?
        };
        Ok(Some(batch))
    }
}

/// Rows of one side that a join emits on their own, batch by batch (see
/// [`JoinOutput::next_lone`]), so that many of them can be emitted over
/// several calls.
#[derive(Debug)]
pub(crate) struct LoneBatches {
    side: JoinSide,
    rows: RecordBatch,
    /// The rows kept, `None` for all of them.
    kept: Option<UInt32Array>,
    /// The first kept row not emitted yet.
    next: usize,
}
