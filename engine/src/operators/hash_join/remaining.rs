//! What a hash join emits once every input ended: the build rows it keeps
//! on their own (outer, semi and anti joins of the build side), and the
//! spilled partitions, joined pair by pair.
//!
//! The work is cut into steps (index a pair's build partition, probe its
//! table with one batch, emit one batch of build rows) and the operator
//! stops between steps when its output is full, keeping the pair being
//! joined for the next call. A part therefore ends after the probe batch
//! or the batch of build rows that filled it.

use weir_exchange::event::batch_data_bytes;
use weir_exchange::spill::SpillFile;

use super::{HashJoinOperator, probe_table};
use crate::memory::{MemoryReservation, SpillBatches};
use crate::operators::join::grace::{MAX_LEVEL, SpillPartitions};
use crate::operators::join::hash_table::JoinTable;
use crate::operators::join::{BufferedBatches, JoinSide, LoneBatches, MatchBitmap};
use crate::{Output, Progress, Result};

/// What a hash join has left to emit.
#[derive(Debug)]
pub(super) struct Remaining {
    /// Pairs of spilled partitions not joined yet, the next one last.
    pairs: Vec<PartitionPair>,
    /// The step being taken.
    step: Option<Step>,
}

/// A build partition and the probe partition of the same key hashes at a
/// level of partitioning (`None`: the partition has no rows).
#[derive(Debug)]
struct PartitionPair {
    build: Option<SpillFile>,
    probe: Option<SpillFile>,
    level: u64,
}

/// Where the join of one table with its probe rows is.
#[derive(Debug)]
enum Step {
    /// A build partition is indexed and its probe partition is being read.
    Probing(Box<Probing>),
    /// The build rows kept on their own are being emitted.
    BuildRows(LoneBatches),
}

/// A build partition's table, probed with the batches of its probe
/// partition (whose file is deleted when the probing ends).
#[derive(Debug)]
struct Probing {
    table: JoinTable,
    matched: Option<MatchBitmap>,
    probe: Option<SpillBatches>,
    _file: Option<SpillFile>,
}

impl Remaining {
    /// The build rows kept on their own (if any) of a build side that fit
    /// in memory.
    pub(super) fn build_rows(lone: Option<LoneBatches>) -> Self {
        Self {
            pairs: Vec::new(),
            step: lone.map(Step::BuildRows),
        }
    }

    /// The spilled partitions of both sides, to be joined pair by pair.
    ///
    /// # Errors
    /// When a spill file cannot be completed.
    pub(super) fn partitions(
        build: SpillPartitions,
        probe: SpillPartitions,
        reservation: &MemoryReservation,
    ) -> Result<Self> {
        Ok(Self {
            pairs: pairs(build, probe, reservation)?,
            step: None,
        })
    }
}

/// The pairs of partitions of `build` and `probe`, the first one last.
fn pairs(
    build: SpillPartitions,
    probe: SpillPartitions,
    reservation: &MemoryReservation,
) -> Result<Vec<PartitionPair>> {
    let level = build.level();
    let builds = build.finish(reservation)?;
    let probes = probe.finish(reservation)?;
    Ok(builds
        .into_iter()
        .zip(probes)
        .map(|(build, probe)| PartitionPair {
            build,
            probe,
            level,
        })
        .rev()
        .collect())
}

impl HashJoinOperator {
    /// Emits what is left until all of it is emitted or `out` is full.
    pub(super) fn emit_remaining(
        &mut self,
        remaining: &mut Remaining,
        out: &mut Output,
    ) -> Result<Progress> {
        while !out.is_full() {
            remaining.step = match remaining.step.take() {
                Some(step) => self.take_step(step, out)?,
                None => match remaining.pairs.pop() {
                    Some(pair) => self.start_pair(pair, &mut remaining.pairs)?,
                    None => return Ok(Progress::Done),
                },
            };
        }
        Ok(Progress::More)
    }

    /// Probes the table with one batch, or emits one batch of build rows;
    /// returns the step to go on with.
    fn take_step(&mut self, step: Step, out: &mut Output) -> Result<Option<Step>> {
        match step {
            Step::Probing(mut probing) => {
                let Probing {
                    table,
                    matched,
                    probe,
                    ..
                } = probing.as_mut();
                match probe.as_mut().and_then(Iterator::next).transpose()? {
                    Some(batch) => {
                        probe_table(
                            &self.output,
                            &self.encoder,
                            table,
                            matched.as_mut(),
                            &batch,
                            out,
                        )?;
                        Ok(Some(Step::Probing(probing)))
                    }
                    None => {
                        let Probing { table, matched, .. } = *probing;
                        let lone = self.output.build_lone(table.into_batch(), matched);
                        if lone.is_none() {
                            self.reservation.free();
                        }
                        Ok(lone.map(Step::BuildRows))
                    }
                }
            }
            Step::BuildRows(mut lone) => match self.output.next_lone(&mut lone)? {
                Some(batch) => {
                    out.emit(batch);
                    Ok(Some(Step::BuildRows(lone)))
                }
                None => {
                    self.reservation.free();
                    Ok(None)
                }
            },
        }
    }

    /// Starts joining a pair of partitions: indexes the build partition if
    /// it fits, or else splits both into the pairs of the next level (pushed
    /// onto `pairs`).
    fn start_pair(
        &mut self,
        pair: PartitionPair,
        pairs: &mut Vec<PartitionPair>,
    ) -> Result<Option<Step>> {
        let side = self.build_side();
        let PartitionPair {
            build,
            probe,
            level,
        } = pair;
        if (build.is_none() && !self.output.keeps_lone(side.other()))
            || (probe.is_none() && !self.output.keeps_lone(side))
        {
            return Ok(None);
        }
        let mut collected = BufferedBatches::default();
        let mut overflow = None;
        for batch in self.read_spilled(build.as_ref())?.into_iter().flatten() {
            if let Err(batch) = collected.try_push(batch?, &mut self.reservation) {
                overflow = Some(batch_data_bytes(&batch));
                break;
            }
        }
        let batches = collected.take(&mut self.reservation);
        let built = match overflow {
            None => self.try_build_table(batches)?.map_err(|(_, bytes)| bytes),
            Some(bytes) => Err(bytes),
        };
        match built {
            Ok((table, matched)) => Ok(Some(Step::Probing(Box::new(Probing {
                table,
                matched,
                probe: self.read_spilled(probe.as_ref())?,
                _file: probe,
            })))),
            Err(_) if level < MAX_LEVEL => {
                let build = self.split(build, side, level + 1)?;
                let probe = self.split(probe, side.other(), level + 1)?;
                pairs.extend(self::pairs(build, probe, &self.reservation)?);
                Ok(None)
            }
            Err(requested) => Err(self.reservation.exhausted(requested)),
        }
    }

    /// Splits the rows of a spilled partition of `side` into partitions of
    /// the next `level`.
    fn split(
        &self,
        file: Option<SpillFile>,
        side: JoinSide,
        level: u64,
    ) -> Result<SpillPartitions> {
        let mut partitions = self.partitions(side, level);
        for batch in self.read_spilled(file.as_ref())?.into_iter().flatten() {
            let batch = batch?;
            let keys = self.encoder.encode(side, &batch)?;
            partitions.write(&batch, &keys, &self.reservation)?;
        }
        Ok(partitions)
    }

    /// The batches of a spill file (none without a file).
    fn read_spilled(&self, file: Option<&SpillFile>) -> Result<Option<SpillBatches>> {
        file.map(|file| self.reservation.read_spill(file))
            .transpose()
    }
}
