//! What a finished job did.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;
use weir_engine::graph::VertexId;
use weir_engine::task::TaskMetrics;

use crate::SubtaskId;
use crate::region::RegionId;

/// Totals of one vertex over its subtasks' successful attempts.
#[derive(Debug, Clone)]
pub struct VertexSummary {
    /// The vertex.
    pub id: VertexId,
    /// Its name.
    pub name: String,
    /// Its parallelism.
    pub parallelism: usize,
    /// Its records and bytes.
    pub metrics: TaskMetrics,
    /// The named counters of its source, operators and sink (files and row
    /// groups read, bad records dropped, files written...).
    pub counters: BTreeMap<&'static str, u64>,
}

/// A scheduling event of a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionEventKind {
    /// Its subtasks were deployed.
    Deployed,
    /// All its subtasks finished.
    Finished,
    /// It was cancelled to run again.
    Restarted,
}

/// When something happened to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RegionEvent {
    /// The region.
    pub region: RegionId,
    /// What happened.
    pub kind: RegionEventKind,
    /// Milliseconds since the job started.
    pub at_ms: u64,
}

/// The summary of a job that finished successfully.
#[derive(Debug, Clone)]
pub struct JobSummary {
    /// The job's name.
    pub job: String,
    /// The id of this run.
    pub job_id: String,
    /// The scheduling strategy.
    pub scheduling: String,
    /// The failover strategy.
    pub failover: String,
    /// Per vertex totals.
    pub vertices: Vec<VertexSummary>,
    /// Number of pipelined regions.
    pub regions: usize,
    /// The final attempt number of every subtask (0: it ran once).
    pub attempts: Vec<(SubtaskId, u32)>,
    /// The region of every subtask, in the order of `attempts`.
    pub region_of: Vec<RegionId>,
    /// Restarts granted by the restart strategy.
    pub restarts: u32,
    /// Bytes of blocking partition files written by the final attempts.
    pub shuffle_bytes: u64,
    /// Region events in the order they happened.
    pub timeline: Vec<RegionEvent>,
    /// Wall time from deployment to the end.
    pub wall_time: Duration,
    /// The checkpoints of a streaming job that took them.
    pub checkpoints: Option<crate::checkpoint_coordinator::CheckpointStats>,
    /// Set when the job was stopped rather than ran to its end: the URL of
    /// its final savepoint, if it took one.
    pub stopped: Option<Option<String>>,
}

impl JobSummary {
    /// The final attempt number of `subtask`.
    pub fn attempt_of(&self, subtask: SubtaskId) -> Option<u32> {
        self.attempts
            .iter()
            .find(|(s, _)| *s == subtask)
            .map(|(_, a)| *a)
    }

    /// The regions that ran more than once.
    pub fn rerun_regions(&self) -> std::collections::BTreeSet<RegionId> {
        self.attempts
            .iter()
            .zip(&self.region_of)
            .filter(|((_, a), _)| *a > 0)
            .map(|(_, r)| *r)
            .collect()
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

impl fmt::Display for JobSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "job '{}' {} in {:.3} s ({} region(s), {} scheduling, {} failover, {} restart(s))",
            self.job,
            match &self.stopped {
                None => "finished".to_string(),
                Some(None) => "stopped".to_string(),
                Some(Some(savepoint)) => format!("stopped with a savepoint at {savepoint}"),
            },
            self.wall_time.as_secs_f64(),
            self.regions,
            self.scheduling,
            self.failover,
            self.restarts
        )?;
        writeln!(
            f,
            "  {:<4} {:<48} {:>4} {:>12} {:>10} {:>12} {:>10}",
            "id", "vertex", "par", "rows in", "bytes in", "rows out", "bytes out"
        )?;
        for v in &self.vertices {
            let mut name = v.name.clone();
            if name.chars().count() > 48 {
                name = name.chars().take(45).collect::<String>() + "...";
            }
            writeln!(
                f,
                "  {:<4} {:<48} {:>4} {:>12} {:>10} {:>12} {:>10}",
                v.id.to_string(),
                name,
                v.parallelism,
                v.metrics.rows_in,
                human_bytes(v.metrics.bytes_in),
                v.metrics.rows_out,
                human_bytes(v.metrics.bytes_out)
            )?;
        }
        let spilled: Vec<String> = self
            .vertices
            .iter()
            .filter(|v| v.metrics.spill_files > 0)
            .map(|v| {
                format!(
                    "{} {} in {} file(s)",
                    v.id,
                    human_bytes(v.metrics.spilled_bytes),
                    v.metrics.spill_files
                )
            })
            .collect();
        if !spilled.is_empty() {
            writeln!(f, "  spilled: {}", spilled.join(", "))?;
        }
        let rerun: Vec<String> = self
            .vertices
            .iter()
            .filter_map(|v| {
                let again = self
                    .attempts
                    .iter()
                    .filter(|(s, attempt)| s.vertex == v.id && *attempt > 0)
                    .count();
                (again > 0).then(|| format!("{} {again} of {}", v.id, v.parallelism))
            })
            .collect();
        if !rerun.is_empty() {
            writeln!(f, "  subtasks rerun: {}", rerun.join(", "))?;
        }
        for v in self.vertices.iter().filter(|v| !v.counters.is_empty()) {
            let counters: Vec<String> = v
                .counters
                .iter()
                .map(|(name, n)| format!("{name}: {n}"))
                .collect();
            writeln!(f, "  {}: {}", v.id, counters.join(", "))?;
        }
        if let Some(c) = &self.checkpoints {
            write!(
                f,
                "  checkpoints: {} completed, {} failed",
                c.completed, c.failed
            )?;
            if let Some(last) = c.last_checkpoint {
                write!(
                    f,
                    "; the last, {last}, took {} ms and wrote {} ({} rows of state)",
                    c.last_duration_ms,
                    human_bytes(c.last_bytes),
                    c.last_rows
                )?;
            }
            writeln!(f)?;
        }
        let reruns: Vec<String> = self
            .attempts
            .iter()
            .filter(|(_, a)| *a > 0)
            .map(|(s, a)| format!("{s} x{}", a + 1))
            .collect();
        write!(
            f,
            "  shuffle written: {}; attempts: {}",
            human_bytes(self.shuffle_bytes),
            if reruns.is_empty() {
                "every subtask ran once".to_string()
            } else {
                reruns.join(", ")
            }
        )
    }
}
