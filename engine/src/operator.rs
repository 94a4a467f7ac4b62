//! The operator contract.

use std::fmt::Debug;

use arrow::array::RecordBatch;
use weir_exchange::event::Barrier;

use crate::{Error, Result, TaskInfo};

/// What an operator emits while it handles one input event.
#[derive(Debug, Default)]
pub struct Output {
    batches: Vec<RecordBatch>,
    rows: usize,
    watermark: Option<i64>,
    late: Vec<RecordBatch>,
}

/// Rows of the batches operators emit (at most): the batch size weir's
/// sources and operators work in.
pub const OUTPUT_BATCH_ROWS: usize = 8192;

/// Rows after which an [`Output`] counts as full: an operator emitting
/// a large result in [`Operator::finish`] stops there and returns
/// [`Progress::More`], so the task writes the rows out before it asks for
/// more.
pub const OUTPUT_FULL_ROWS: usize = 8 * OUTPUT_BATCH_ROWS;

/// Whether [`Operator::finish`] emitted everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Nothing is left to emit.
    Done,
    /// More is left: call `finish` again once this output went downstream.
    More,
}

impl Output {
    /// Emits a batch downstream. Empty batches are dropped.
    pub fn emit(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.rows += batch.num_rows();
            self.batches.push(batch);
        }
    }

    /// Whether enough was emitted for one hand-off
    /// ([`OUTPUT_FULL_ROWS`]): operators emitting from state stop here.
    pub fn is_full(&self) -> bool {
        self.rows >= OUTPUT_FULL_ROWS
    }

    /// Emits the batches `next` produces until it has none left
    /// ([`Progress::Done`]) or this output [is full](Self::is_full)
    /// ([`Progress::More`]): the loop of an operator that emits a large
    /// result from [`Operator::finish`] in parts. `next` keeps its place, so
    /// the next call goes on where this one stopped.
    ///
    /// # Errors
    /// The first error of `next`.
    pub fn emit_until_full(
        &mut self,
        mut next: impl FnMut() -> Result<Option<RecordBatch>>,
    ) -> Result<Progress> {
        while !self.is_full() {
            match next()? {
                Some(batch) => self.emit(batch),
                None => return Ok(Progress::Done),
            }
        }
        Ok(Progress::More)
    }

    /// Advances the event time downstream.
    pub fn emit_watermark(&mut self, watermark: i64) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
    }

    /// Sends records that came too late for the operator to the chain's
    /// side output of late records ([`Chain::late_sink`](crate::graph::Chain)),
    /// as they came in.
    pub fn emit_late(&mut self, batch: RecordBatch) {
        if batch.num_rows() > 0 {
            self.late.push(batch);
        }
    }

    /// Takes what was emitted so far.
    pub fn take(&mut self) -> (Vec<RecordBatch>, Option<i64>) {
        self.rows = 0;
        (std::mem::take(&mut self.batches), self.watermark.take())
    }

    /// Takes the late records emitted so far.
    pub fn take_late(&mut self) -> Vec<RecordBatch> {
        std::mem::take(&mut self.late)
    }
}

/// A vectorized operator: whole record batches in, batches out.
///
/// Contract:
/// - Methods run on the CPU pool, one call at a time per operator instance;
///   they must not block on I/O or channels.
/// - `input` numbers the operator's inputs from 0 in the order its edges were
///   declared; an operator inside a chain (not its head) has one input, 0.
/// - `end_of_input(i)` is called once when input `i` has delivered
///   everything, and `finish` after every input has ended (bounded input).
///   Stateful operators emit their remaining results in `finish`; one with
///   more than an [`Output`] holds stops when [`Output::is_full`] and returns
///   [`Progress::More`], and is called again after that output went
///   downstream, so a large result never sits in memory whole.
/// - Operators are incremental: state lives between calls, so the same
///   operator runs unchanged on unbounded input.
/// - An error fails the task; the scheduler decides whether it runs again.
pub trait Operator: Send {
    /// Handles one batch arriving on `input`.
    ///
    /// # Errors
    /// When the batch cannot be processed; the task fails.
    fn process_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        output: &mut Output,
    ) -> Result<()>;

    /// Event time advanced to `watermark` on all inputs. The default passes it
    /// on.
    ///
    /// # Errors
    /// When the operator fails to fire what the watermark completes.
    fn on_watermark(&mut self, watermark: i64, output: &mut Output) -> Result<()> {
        output.emit_watermark(watermark);
        Ok(())
    }

    /// A checkpoint barrier arrived on every input. The default does nothing.
    ///
    /// # Errors
    /// When the operator fails to handle the barrier.
    fn on_barrier(&mut self, _barrier: Barrier, _output: &mut Output) -> Result<()> {
        Ok(())
    }

    /// The operator's state at a checkpoint, taken after
    /// [`on_barrier`](Self::on_barrier): record batches (keyed state led by
    /// a [`KEY_GROUP_COLUMN`](crate::checkpoint::KEY_GROUP_COLUMN)), or
    /// `None` when it holds none. The operator goes on from the same state.
    ///
    /// The default refuses, so that an operator that keeps state never
    /// takes part in a checkpoint without it: operators without state say
    /// so by returning `None`.
    ///
    /// # Errors
    /// When the state cannot be snapshotted; the checkpoint fails, the job
    /// goes on.
    fn snapshot_state(&mut self) -> Result<Option<Vec<RecordBatch>>> {
        Err(Error::Checkpoint(
            "this operator cannot take part in checkpoints".to_string(),
        ))
    }

    /// Restores the state of a checkpoint, before any input: the batches
    /// [`snapshot_state`](Self::snapshot_state) returned in every subtask,
    /// keyed state narrowed to this subtask's key groups (without the key
    /// group column).
    ///
    /// # Errors
    /// When the batches are not this operator's state. The default takes
    /// only no state at all.
    fn restore_state(&mut self, state: Vec<RecordBatch>) -> Result<()> {
        if state.iter().all(|b| b.num_rows() == 0) {
            Ok(())
        } else {
            Err(Error::Checkpoint(
                "this operator has no state to restore".to_string(),
            ))
        }
    }

    /// Input `input` has ended. The default does nothing.
    ///
    /// # Errors
    /// When the operator fails to handle the end of that input.
    fn end_of_input(&mut self, _input: usize, _output: &mut Output) -> Result<()> {
        Ok(())
    }

    /// Every input has ended: emit what is left, or a part of it and
    /// [`Progress::More`]. The default has nothing to emit.
    ///
    /// # Errors
    /// When the remaining results cannot be produced.
    fn finish(&mut self, _output: &mut Output) -> Result<Progress> {
        Ok(Progress::Done)
    }
}

/// Creates the operator instance of each subtask attempt.
///
/// A factory is part of the job's description: it is shared by all
/// subtasks and must be cheap to keep. `create` is called once per attempt.
pub trait OperatorFactory: Send + Sync + Debug {
    /// The operator's name in plans and summaries.
    fn name(&self) -> String;

    /// Creates the operator for one subtask attempt.
    ///
    /// # Errors
    /// When the operator cannot be set up.
    fn create(&self, task: &TaskInfo) -> Result<Box<dyn Operator>>;

    /// Whether the operator's output depends only on its input (not on time,
    /// randomness or arrival order across inputs).
    fn is_deterministic(&self) -> bool {
        true
    }
}
