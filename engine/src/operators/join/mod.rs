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
mod output;
pub(crate) mod side_state;

pub(crate) use output::{Candidates, JoinOutput, LoneBatches, MatchBitmap};

use std::fmt;
use std::sync::Arc;
use weir_exchange::event::batch_data_bytes;

use arrow::array::RecordBatch;
use arrow::datatypes::{Field, Schema, SchemaRef};

use crate::memory::MemoryReservation;
use crate::{Error, Result};

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
pub(crate) enum LoneRows {
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

    /// Whether `side` may be broadcast to every subtask of the other: only
    /// when its rows are emitted in pairs alone, never on their own (as
    /// unmatched, semi or anti rows), which each subtask would repeat.
    pub fn can_broadcast(self, side: JoinSide) -> bool {
        self.lone_rows(side).is_none()
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

/// Names `operator` and what it was `doing` in Arrow and expression errors;
/// expression errors keep their type (they fail the same way on a retry),
/// and memory and spill errors already name the operator.
pub(crate) fn in_context(operator: &str, doing: impl fmt::Display) -> impl FnOnce(Error) -> Error {
    move |error| match error {
        Error::Arrow(e) => Error::Operator {
            operator: operator.to_string(),
            message: format!("{doing}: {e}"),
        },
        Error::Expr { expr, message } => Error::Expr {
            expr,
            message: format!("{message} (operator '{operator}', {doing})"),
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
        let bytes = batch_data_bytes(&batch);
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

#[cfg(test)]
mod tests {
    use arrow::datatypes::DataType;

    use super::*;

    #[test]
    fn outer_sides_become_nullable_and_semi_joins_keep_one_side() {
        let schema =
            |name: &str| Arc::new(Schema::new(vec![Field::new(name, DataType::Int32, false)]));
        let (left, right) = (schema("l"), schema("r"));
        let nullable = |t: JoinType| -> Vec<(String, bool)> {
            t.output_schema(&left, &right)
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.is_nullable()))
                .collect()
        };
        let pair = |l: bool, r: bool| vec![("l".to_string(), l), ("r".to_string(), r)];
        assert_eq!(nullable(JoinType::Inner), pair(false, false));
        assert_eq!(nullable(JoinType::Left), pair(false, true));
        assert_eq!(nullable(JoinType::Right), pair(true, false));
        assert_eq!(nullable(JoinType::Full), pair(true, true));
        for t in [JoinType::LeftSemi, JoinType::LeftAnti] {
            assert_eq!(nullable(t), vec![("l".to_string(), false)]);
        }
        for t in [JoinType::RightSemi, JoinType::RightAnti] {
            assert_eq!(nullable(t), vec![("r".to_string(), false)]);
        }
        assert_eq!(joined_schema(&left, &right).fields().len(), 2);
    }

    #[test]
    fn only_inputs_0_and_1_are_sides() {
        assert_eq!(JoinSide::of_input(0, "j").ok(), Some(JoinSide::Left));
        assert_eq!(JoinSide::of_input(1, "j").ok(), Some(JoinSide::Right));
        let err = JoinSide::of_input(2, "j").expect_err("no third input");
        assert!(err.to_string().contains("'j'"), "{err}");
    }
}
