//! Running a chain of operators over one batch at a time.

use arrow::array::RecordBatch;
use weir_exchange::event::Barrier;

use crate::{Operator, Output, Progress, Result};

/// The operator instances of one task, applied in order. The head may have
/// several inputs; the others have one.
pub struct OperatorChain {
    operators: Vec<Box<dyn Operator>>,
    /// While finishing: the operator being finished, and whether the end of
    /// its input was passed to it.
    finishing: (usize, bool),
}

impl std::fmt::Debug for OperatorChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorChain")
            .field("operators", &self.operators.len())
            .finish()
    }
}

/// What the chain produced for one event.
#[derive(Debug, Default)]
pub struct ChainOutput {
    /// Batches out of the last operator.
    pub batches: Vec<RecordBatch>,
    /// The watermark out of the last operator, if it advanced.
    pub watermark: Option<i64>,
    /// [`finish`](OperatorChain::finish) has more to emit: call it again.
    pub more: bool,
    /// At a checkpoint barrier: each operator's state, in order, or why
    /// one could not snapshot it.
    pub states: Option<Result<Vec<Option<Vec<RecordBatch>>>, String>>,
    /// Records too late for an operator, for the side output.
    pub late: Vec<RecordBatch>,
}

impl OperatorChain {
    /// A chain of the given operators.
    pub fn new(operators: Vec<Box<dyn Operator>>) -> Self {
        Self {
            operators,
            finishing: (0, false),
        }
    }

    /// Pushes one batch into the head's input `input`.
    ///
    /// # Errors
    /// The first operator error.
    pub fn process_batch(&mut self, input: usize, batch: RecordBatch) -> Result<ChainOutput> {
        if self.operators.is_empty() {
            return Ok(ChainOutput {
                batches: vec![batch],
                ..ChainOutput::default()
            });
        }
        self.drive(0, |op, out| op.process_batch(input, batch, out))
    }

    /// Passes a watermark (the minimum over all inputs) down the chain.
    ///
    /// # Errors
    /// The first operator error.
    pub fn on_watermark(&mut self, watermark: i64) -> Result<ChainOutput> {
        if self.operators.is_empty() {
            return Ok(ChainOutput {
                watermark: Some(watermark),
                ..ChainOutput::default()
            });
        }
        self.drive(0, |op, out| op.on_watermark(watermark, out))
    }

    /// Passes an aligned barrier down the chain, then snapshots every
    /// operator's state (an operator that cannot is reported in
    /// [`ChainOutput::states`], not as an error: the checkpoint fails, the
    /// task goes on).
    ///
    /// # Errors
    /// The first operator error.
    pub fn on_barrier(&mut self, barrier: Barrier) -> Result<ChainOutput> {
        let mut result = ChainOutput::default();
        for level in 0..self.operators.len() {
            let step = self.drive(level, |op, out| op.on_barrier(barrier, out))?;
            result.batches.extend(step.batches);
            result.late.extend(step.late);
            result.watermark = step.watermark.or(result.watermark);
        }
        result.states = Some(
            self.operators
                .iter_mut()
                .enumerate()
                .map(|(i, op)| {
                    op.snapshot_state()
                        .map_err(|e| format!("operator {} of the chain: {e}", i + 1))
                })
                .collect(),
        );
        Ok(result)
    }

    /// Restores each operator's state, in chain order, before any input.
    ///
    /// # Errors
    /// The first operator that does not take its state.
    pub fn restore(&mut self, states: Vec<Vec<RecordBatch>>) -> Result<()> {
        for (op, state) in self.operators.iter_mut().zip(states) {
            op.restore_state(state)?;
        }
        Ok(())
    }

    /// Input `input` of the head ended.
    ///
    /// # Errors
    /// The first operator error.
    pub fn end_of_input(&mut self, input: usize) -> Result<ChainOutput> {
        self.drive(0, |op, out| op.end_of_input(input, out))
    }

    /// Every input ended: finishes the operators in order, each one's final
    /// output flowing through the rest before the next one finishes. When an
    /// operator has more to emit than one output holds, returns with `more`
    /// set; the next call goes on where this one stopped.
    ///
    /// # Errors
    /// The first operator error.
    pub fn finish(&mut self) -> Result<ChainOutput> {
        let mut result = ChainOutput::default();
        while let (level, ended) = self.finishing
            && level < self.operators.len()
        {
            if level > 0 && !ended {
                let step = self.drive(level, |op, out| op.end_of_input(0, out))?;
                result.batches.extend(step.batches);
                result.late.extend(step.late);
                self.finishing.1 = true;
            }
            let mut progress = Progress::Done;
            let step = self.drive(level, |op, out| {
                progress = op.finish(out)?;
                Ok(())
            })?;
            result.batches.extend(step.batches);
            result.late.extend(step.late);
            result.watermark = step.watermark.or(result.watermark);
            if progress == Progress::More {
                result.more = true;
                return Ok(result);
            }
            self.finishing = (level + 1, false);
        }
        Ok(result)
    }

    /// Applies `first` to the operator at `level`, then pushes what it emitted
    /// through the operators after it.
    fn drive(
        &mut self,
        level: usize,
        first: impl FnOnce(&mut dyn Operator, &mut Output) -> Result<()>,
    ) -> Result<ChainOutput> {
        let Some(op) = self.operators.get_mut(level) else {
            return Ok(ChainOutput::default());
        };
        let mut out = Output::default();
        first(op.as_mut(), &mut out)?;
        let (mut batches, mut watermark) = out.take();
        let mut late = out.take_late();
        for op in &mut self.operators[level + 1..] {
            let mut next = Output::default();
            for batch in batches {
                op.process_batch(0, batch, &mut next)?;
            }
            if let Some(w) = watermark {
                op.on_watermark(w, &mut next)?;
            }
            (batches, watermark) = next.take();
            late.extend(next.take_late());
        }
        Ok(ChainOutput {
            batches,
            watermark,
            more: false,
            states: None,
            late,
        })
    }
}
