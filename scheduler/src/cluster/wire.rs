//! What crosses the network between a coordinator and its workers, to and
//! from the types of the scheduler and the engine.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use weir_engine::checkpoint::{CheckpointAck, SplitPosition, TaskRestore};
use weir_engine::graph::VertexId;
use weir_engine::task::{PartitionWritten, TaskMetrics, TaskReport};
use weir_exchange::ResultPartitionId;
use weir_exchange::blocking::PartitionFileStats;
use weir_exchange::checkpoint_store::{CheckpointStore, StateFile};

use super::proto;
use crate::SubtaskId;
use crate::deployment::{AttemptHandles, AttemptPlan};
use crate::partition_tracker::PartitionRead;

/// What a restarted task resumes from, as it is shipped: the store of a
/// savepoint by its URL (the worker opens it with the job's store
/// options).
#[derive(Serialize, Deserialize)]
struct RestoreWire {
    checkpoint: u64,
    store: Option<String>,
    splits: Vec<SplitPosition>,
    operators: Vec<Vec<(usize, StateFile)>>,
}

/// `plan` as it is shipped (its handles stay with the job master).
pub fn attempt_to_wire(plan: &AttemptPlan) -> proto::AttemptPlan {
    let restore = plan.restore.as_ref().map(|r| RestoreWire {
        checkpoint: r.checkpoint,
        store: r.store.as_ref().map(|s| s.url().to_string()),
        splits: r.splits.clone(),
        operators: r.operators.clone(),
    });
    proto::AttemptPlan {
        subtask: plan.subtask as u32,
        vertex: plan.id.vertex.0,
        index: plan.id.index,
        attempt: plan.attempt,
        reads: plan
            .reads
            .iter()
            .map(|(&(dataset, producer), read)| proto::PartitionRead {
                dataset,
                producer,
                attempt: read.attempt,
                served_by: read.served_by.as_deref().unwrap_or_default().to_string(),
            })
            .collect(),
        memory_budget: plan.memory_budget as u64,
        triggered: plan.handles.triggers.is_some(),
        restore: restore
            .map(|r| serde_json::to_vec(&r).expect("a restore serializes"))
            .unwrap_or_default(),
    }
}

/// A shipped plan, with fresh handles for the worker's task; a savepoint
/// it resumes from opened with `store_options`.
///
/// # Errors
/// Its restore does not decode, or its savepoint's store does not open.
pub fn attempt_from_wire(
    plan: proto::AttemptPlan,
    store_options: &BTreeMap<String, String>,
) -> Result<AttemptPlan, String> {
    let restore = match plan.restore.is_empty() {
        true => None,
        false => {
            let r: RestoreWire = serde_json::from_slice(&plan.restore)
                .map_err(|e| format!("a restore that does not decode: {e}"))?;
            let store = r
                .store
                .map(|url| CheckpointStore::try_new(&url, store_options))
                .transpose()
                .map_err(|e| e.to_string())?;
            Some(TaskRestore {
                checkpoint: r.checkpoint,
                store,
                splits: r.splits,
                operators: r.operators,
            })
        }
    };
    Ok(AttemptPlan {
        subtask: plan.subtask as usize,
        id: SubtaskId {
            vertex: VertexId(plan.vertex),
            index: plan.index,
        },
        attempt: plan.attempt,
        reads: plan
            .reads
            .into_iter()
            .map(|r| {
                let read = PartitionRead {
                    attempt: r.attempt,
                    served_by: (!r.served_by.is_empty()).then(|| r.served_by.into()),
                };
                ((r.dataset, r.producer), read)
            })
            .collect(),
        memory_budget: usize::try_from(plan.memory_budget).unwrap_or(usize::MAX),
        restore,
        handles: AttemptHandles::default(),
    })
}

/// A task's checkpoint acknowledgement, as it is shipped.
pub fn ack_to_wire(job_id: &str, ack: &CheckpointAck) -> proto::CheckpointAck {
    proto::CheckpointAck {
        job_id: job_id.to_string(),
        checkpoint: ack.checkpoint,
        vertex: ack.vertex,
        subtask: ack.subtask as u32,
        outcome: Some(match &ack.outcome {
            Ok(taken) => proto::checkpoint_ack::Outcome::Taken(
                serde_json::to_vec(taken).expect("a task's checkpoint serializes"),
            ),
            Err(why) => proto::checkpoint_ack::Outcome::Declined(why.clone()),
        }),
    }
}

/// A shipped acknowledgement (one that does not decode declines).
pub fn ack_from_wire(ack: proto::CheckpointAck) -> CheckpointAck {
    let outcome = match ack.outcome {
        Some(proto::checkpoint_ack::Outcome::Taken(bytes)) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("its acknowledgement does not decode: {e}")),
        Some(proto::checkpoint_ack::Outcome::Declined(why)) => Err(why),
        None => Err("its acknowledgement says nothing".to_string()),
    };
    CheckpointAck {
        checkpoint: ack.checkpoint,
        vertex: ack.vertex,
        subtask: ack.subtask as usize,
        outcome,
    }
}

fn partition_to_wire(id: &ResultPartitionId) -> proto::PartitionRead {
    proto::PartitionRead {
        dataset: id.dataset,
        producer: id.producer,
        attempt: id.attempt,
        ..Default::default()
    }
}

fn partition_from_wire(id: &proto::PartitionRead) -> ResultPartitionId {
    ResultPartitionId {
        dataset: id.dataset,
        producer: id.producer,
        attempt: id.attempt,
    }
}

/// `report` as it is shipped.
pub fn report_to_wire(report: &TaskReport) -> proto::TaskReport {
    let m = &report.metrics;
    proto::TaskReport {
        metrics: Some(proto::TaskMetrics {
            rows_in: m.rows_in,
            bytes_in: m.bytes_in,
            rows_out: m.rows_out,
            bytes_out: m.bytes_out,
            spilled_bytes: m.spilled_bytes,
            spill_files: m.spill_files,
        }),
        partitions: report
            .partitions
            .iter()
            .map(|p| proto::PartitionWritten {
                partition: Some(partition_to_wire(&p.partition)),
                rows: p.stats.rows,
                bytes: p.stats.bytes,
                blocks: p.stats.blocks,
            })
            .collect(),
        counters: report
            .counters
            .iter()
            .map(|(name, n)| (name.to_string(), *n))
            .collect(),
    }
}

/// A shipped report.
pub fn report_from_wire(report: proto::TaskReport) -> TaskReport {
    let m = report.metrics.unwrap_or_default();
    TaskReport {
        metrics: TaskMetrics {
            rows_in: m.rows_in,
            bytes_in: m.bytes_in,
            rows_out: m.rows_out,
            bytes_out: m.bytes_out,
            spilled_bytes: m.spilled_bytes,
            spill_files: m.spill_files,
        },
        partitions: report
            .partitions
            .iter()
            .filter_map(|p| {
                let partition = partition_from_wire(p.partition.as_ref()?);
                Some(PartitionWritten {
                    dataset: partition.dataset,
                    partition,
                    stats: PartitionFileStats {
                        rows: p.rows,
                        bytes: p.bytes,
                        blocks: p.blocks,
                    },
                })
            })
            .collect(),
        counters: report
            .counters
            .iter()
            .map(|(name, n)| (intern(name), *n))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// How `error` is shipped: its message, whether a rerun can help, and the
/// partition it found lost, so that failover decides as it would in one
/// process.
pub fn failure_to_wire(error: &weir_engine::Error) -> proto::TaskFailure {
    proto::TaskFailure {
        message: error.to_string(),
        not_retryable: error.why_not_retryable().map(str::to_string),
        lost_partition: error.lost_partition().map(partition_to_wire),
    }
}

/// A shipped failure.
pub fn failure_from_wire(failure: proto::TaskFailure) -> weir_engine::Error {
    weir_engine::Error::Remote {
        lost_partition: failure.lost_partition.as_ref().map(partition_from_wire),
        message: failure.message,
        not_retryable: failure.not_retryable,
    }
}

/// The one copy of counter name `name` (counters are named by static
/// strings; the names are few, and each is kept once).
fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    match names.get(name) {
        Some(known) => known,
        None => {
            let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
            names.insert(leaked);
            leaked
        }
    }
}

#[cfg(test)]
mod tests {
    use weir_engine::checkpoint::TaskCheckpoint;

    use super::*;

    fn state_file() -> StateFile {
        StateFile {
            path: "chk-3/v0-0".to_string(),
            bytes: 10,
            crc32: 5,
            rows: 2,
        }
    }

    #[test]
    fn plans_reports_and_failures_survive_the_trip() {
        let plan = AttemptPlan {
            subtask: 7,
            id: SubtaskId {
                vertex: VertexId(2),
                index: 3,
            },
            attempt: 4,
            reads: BTreeMap::from([
                (
                    (1, 0),
                    PartitionRead {
                        attempt: 2,
                        served_by: Some("http://127.0.0.1:7001".into()),
                    },
                ),
                (
                    (1, 1),
                    PartitionRead {
                        attempt: 0,
                        served_by: None,
                    },
                ),
            ]),
            memory_budget: 1 << 30,
            restore: Some(TaskRestore {
                checkpoint: 3,
                store: None,
                splits: vec![SplitPosition {
                    split: 1,
                    position: serde_json::json!({"offset": 7}),
                }],
                operators: vec![vec![(0, state_file())]],
            }),
            handles: AttemptHandles::default(),
        };
        let back = attempt_from_wire(attempt_to_wire(&plan), &BTreeMap::new()).expect("decodes");
        assert_eq!(
            (back.subtask, back.id, back.attempt, &back.reads),
            (7, plan.id, 4, &plan.reads)
        );
        assert_eq!(back.memory_budget, 1 << 30);
        let restore = back.restore.expect("a restore");
        assert_eq!((restore.checkpoint, restore.splits.len()), (3, 1));
        assert_eq!(restore.operators, vec![vec![(0, state_file())]]);

        let ack = CheckpointAck {
            checkpoint: 4,
            vertex: 1,
            subtask: 2,
            outcome: Ok(TaskCheckpoint {
                operators: vec![Some(state_file()), None],
                committable: Some(serde_json::json!(["f1"])),
                ..Default::default()
            }),
        };
        let back = ack_from_wire(ack_to_wire("j", &ack));
        assert_eq!((back.checkpoint, back.vertex, back.subtask), (4, 1, 2));
        assert_eq!(back.outcome, ack.outcome);

        let id = ResultPartitionId {
            dataset: 1,
            producer: 2,
            attempt: 3,
        };
        let report = TaskReport {
            metrics: TaskMetrics {
                rows_in: 5,
                bytes_out: 9,
                ..Default::default()
            },
            partitions: vec![PartitionWritten {
                dataset: 1,
                partition: id.clone(),
                stats: PartitionFileStats {
                    rows: 5,
                    bytes: 100,
                    blocks: 1,
                },
            }],
            counters: BTreeMap::from([("rows_dropped", 2)]),
        };
        let back = report_from_wire(report_to_wire(&report));
        assert_eq!(back.metrics, report.metrics);
        assert_eq!(back.partitions, report.partitions);
        assert_eq!(back.counters, report.counters);

        let lost = weir_engine::Error::Exchange(weir_exchange::Error::PartitionNotFound {
            partition: id.clone(),
            path: "p".to_string(),
        });
        let back = failure_from_wire(failure_to_wire(&lost));
        assert!(back.is_retryable());
        assert_eq!(back.lost_partition(), Some(&id));
        assert_eq!(back.to_string(), lost.to_string());
        let bad = weir_engine::Error::BadInput {
            message: "row 3".to_string(),
        };
        let back = failure_from_wire(failure_to_wire(&bad));
        assert_eq!(back.why_not_retryable(), Some("the input is invalid"));
        assert!(back.to_string().contains("row 3"));
    }
}
