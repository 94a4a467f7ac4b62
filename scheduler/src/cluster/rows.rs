//! The rows of a query on a cluster: its sink runs on a worker, which
//! hands each batch to the coordinator ([`RowForwarder`]); the coordinator
//! keeps them for the client that watches the job ([`QueryRows`]).
//!
//! Rows are final when they arrive (a query without checkpoints, as
//! Flink's `collect()`): once a subtask delivered rows, a rerun of it
//! would deliver them again, so the coordinator refuses the rows of any
//! other attempt of it, and the job fails saying so.

use std::collections::HashMap;
use std::io;
use std::sync::{Mutex, MutexGuard};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use tokio::sync::Notify;
use weir_engine::sinks::{RowsFrom, RowsOut};

use super::access::Authorized;
use super::proto::{self, coordinator_client::CoordinatorClient};

/// `batch` as an Arrow IPC stream (its schema, then it), or `schema` alone
/// without a batch.
pub fn to_ipc(schema: &SchemaRef, batch: Option<&RecordBatch>) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer =
        StreamWriter::try_new(&mut bytes, schema).expect("writing to memory does not fail");
    if let Some(batch) = batch {
        writer
            .write(batch)
            .expect("writing to memory does not fail");
    }
    writer.finish().expect("writing to memory does not fail");
    drop(writer);
    bytes
}

/// The schema and batches of an Arrow IPC stream.
///
/// # Errors
/// The bytes are not one.
pub fn from_ipc(bytes: &[u8]) -> arrow::error::Result<(SchemaRef, Vec<RecordBatch>)> {
    let reader = StreamReader::try_new(bytes, None)?;
    let schema = reader.schema();
    let batches = reader.collect::<arrow::error::Result<_>>()?;
    Ok((schema, batches))
}

/// Hands a query's rows from a worker to its coordinator, one call per
/// batch: the task waits for the coordinator's answer, so rows are never
/// ahead of it, and a refusal fails the task.
#[derive(Debug, Clone)]
pub struct RowForwarder {
    job_id: String,
    coordinator: CoordinatorClient<Authorized>,
}

impl RowForwarder {
    /// The rows of job `job_id`, to `coordinator`.
    pub fn new(job_id: &str, coordinator: CoordinatorClient<Authorized>) -> Self {
        Self {
            job_id: job_id.to_string(),
            coordinator,
        }
    }
}

impl RowsOut for RowForwarder {
    fn deliver(&self, from: RowsFrom, batch: &RecordBatch) -> io::Result<()> {
        let rows = proto::Rows {
            job_id: self.job_id.clone(),
            subtask: from.subtask as u32,
            attempt: from.attempt,
            batch: to_ipc(&batch.schema(), Some(batch)),
        };
        let mut coordinator = self.coordinator.clone();
        let runtime = tokio::runtime::Handle::current();
        // Called by the sink's task on a worker thread of the runtime.
        tokio::task::block_in_place(|| runtime.block_on(coordinator.deliver_rows(rows)))
            .map(|_| ())
            .map_err(|status| io::Error::other(status.message().to_string()))
    }
}

/// A query's rows are delivered by the workers that run its sink, never
/// by the coordinator that plans it.
#[derive(Debug)]
pub struct PlannedOnly;

impl RowsOut for PlannedOnly {
    fn deliver(&self, _: RowsFrom, _: &RecordBatch) -> io::Result<()> {
        Err(io::Error::other(
            "the coordinator runs no task: a query's rows come from the workers",
        ))
    }
}

/// The rows a job's query delivered, waiting for its client.
#[derive(Debug, Default)]
pub struct QueryRows {
    state: Mutex<RowsState>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct RowsState {
    /// The attempt of each subtask that delivered rows.
    delivered_by: HashMap<u32, u32>,
    /// Batches not taken yet, as Arrow IPC streams.
    waiting: Vec<Vec<u8>>,
}

impl QueryRows {
    fn lock(&self) -> MutexGuard<'_, RowsState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `rows`, unless another attempt of their subtask delivered
    /// rows before.
    ///
    /// # Errors
    /// Why the rows are refused.
    pub fn accept(&self, rows: proto::Rows) -> Result<(), String> {
        let mut state = self.lock();
        let first = *state
            .delivered_by
            .entry(rows.subtask)
            .or_insert(rows.attempt);
        if first != rows.attempt {
            return Err(format!(
                "subtask {} restarted after its rows were printed, and running it again would \
                 print them twice; run the query again",
                rows.subtask
            ));
        }
        state.waiting.push(rows.batch);
        drop(state);
        self.arrived.notify_one();
        Ok(())
    }

    /// The rows delivered since the last call.
    pub fn take(&self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.lock().waiting)
    }

    /// Waits until rows arrive (at once if some did since the last wait).
    pub async fn arrival(&self) {
        self.arrived.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows(subtask: u32, attempt: u32, batch: Vec<u8>) -> proto::Rows {
        proto::Rows {
            job_id: "j".to_string(),
            subtask,
            attempt,
            batch,
        }
    }

    #[test]
    fn rows_cross_as_ipc_and_a_rerun_that_delivers_again_is_refused() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .expect("a batch");
        let (back, batches) = from_ipc(&to_ipc(&schema, Some(&batch))).expect("reads");
        assert_eq!((back, batches), (Arc::clone(&schema), vec![batch.clone()]));
        let (back, batches) = from_ipc(&to_ipc(&schema, None)).expect("reads");
        assert_eq!((back, batches.len()), (schema, 0));

        let query = QueryRows::default();
        query.accept(rows(0, 0, vec![1])).expect("taken");
        query.accept(rows(1, 2, vec![2])).expect("taken");
        query.accept(rows(0, 0, vec![3])).expect("taken");
        let refused = query.accept(rows(0, 1, vec![4])).expect_err("a rerun");
        assert!(refused.contains("subtask 0 restarted"), "{refused}");
        assert_eq!(query.take(), vec![vec![1], vec![2], vec![3]]);
        assert!(query.take().is_empty());
    }
}
