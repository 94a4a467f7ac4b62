//! The `blackhole` sink: takes every row and keeps none, for measuring what
//! a job costs without the cost of writing its output.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::registry::{ConnectorOptions, SinkConnector};
use weir_engine::task::Counters;
use weir_engine::{Sink, SinkFactory, TaskInfo};

/// Discards rows; it takes no options.
#[derive(Debug)]
pub struct BlackholeConnector;

#[async_trait]
impl SinkConnector for BlackholeConnector {
    fn name(&self) -> &'static str {
        "blackhole"
    }

    fn option_names(&self) -> Vec<&'static str> {
        Vec::new()
    }

    async fn create(
        &self,
        _options: &ConnectorOptions,
        _schema: SchemaRef,
    ) -> weir_engine::Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(BlackholeSink))
    }
}

/// Discards every row, counting them (task counter `rows written`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BlackholeSink;

#[async_trait]
impl SinkFactory for BlackholeSink {
    fn name(&self) -> String {
        "blackhole".to_string()
    }

    fn create(&self, task: &TaskInfo) -> weir_engine::Result<Box<dyn Sink>> {
        Ok(Box::new(BlackholeWriter {
            counters: task.counters.clone(),
        }))
    }
}

struct BlackholeWriter {
    counters: Counters,
}

#[async_trait]
impl Sink for BlackholeWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> weir_engine::Result<()> {
        self.counters.add("rows written", batch.num_rows() as u64);
        Ok(())
    }

    /// At least once: what was written stays written, and a restart from
    /// a checkpoint writes what followed it again.
    async fn prepare_commit(
        &mut self,
        _checkpoint: u64,
    ) -> weir_engine::Result<Option<serde_json::Value>> {
        Ok(None)
    }

    async fn finish(&mut self) -> weir_engine::Result<()> {
        Ok(())
    }
}
