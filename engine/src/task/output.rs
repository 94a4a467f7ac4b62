//! Task outputs: where the pieces of each outgoing edge are written.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::Schema;
use weir_exchange::Event;
use weir_exchange::blocking::BlockingPartitionWriter;

use super::metrics::PartitionWritten;
use super::{OutputSpec, OutputTarget};
use crate::Result;

/// The writing side of one output. A blocking partition file is started at
/// the first batch (its schema is that batch's).
pub(crate) struct OutputWriter {
    dataset: u32,
    target: OutputTarget,
    writer: Option<BlockingPartitionWriter>,
}

impl OutputWriter {
    pub fn new(spec: OutputSpec) -> Self {
        Self {
            dataset: spec.dataset,
            target: spec.target,
            writer: None,
        }
    }

    /// Writes one piece to subpartition `subpartition`.
    pub async fn write(&mut self, subpartition: usize, batch: RecordBatch) -> Result<()> {
        match &self.target {
            OutputTarget::Pipelined(senders) => {
                Ok(senders[subpartition].send(Event::Batch(batch)).await?)
            }
            OutputTarget::Blocking { .. } => {
                if self.writer.is_none() {
                    self.writer = Some(open(&self.target, batch.schema()).await?);
                }
                let writer = self.writer.as_mut().expect("opened above");
                Ok(writer.write(subpartition, batch).await?)
            }
        }
    }

    /// Sends a control event (watermark, barrier) to every consumer of a
    /// pipelined output. Blocking outputs are read after the producer
    /// finished, so event time and barriers do not apply to them.
    pub async fn broadcast(&mut self, event: Event) -> Result<()> {
        if let OutputTarget::Pipelined(senders) = &self.target {
            for sender in senders {
                sender.send(event.clone()).await?;
            }
        }
        Ok(())
    }

    /// Ends the output: the end of partition on every channel, or the
    /// completed partition file.
    pub async fn finish(mut self) -> Result<Option<PartitionWritten>> {
        if let OutputTarget::Pipelined(senders) = &self.target {
            for sender in senders {
                sender.send(Event::EndOfPartition).await?;
            }
            return Ok(None);
        }
        let writer = match self.writer.take() {
            Some(writer) => writer,
            None => open(&self.target, Arc::new(Schema::empty())).await?,
        };
        let OutputTarget::Blocking { partition, .. } = &self.target else {
            unreachable!("pipelined outputs returned above")
        };
        let stats = writer.finish().await?;
        Ok(Some(PartitionWritten {
            dataset: self.dataset,
            partition: partition.clone(),
            stats,
        }))
    }

    /// Discards a partial partition file.
    pub async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort().await;
        }
    }
}

async fn open(
    target: &OutputTarget,
    schema: arrow::datatypes::SchemaRef,
) -> Result<BlockingPartitionWriter> {
    let OutputTarget::Blocking {
        root,
        job,
        partition,
        num_subpartitions,
        options,
    } = target
    else {
        unreachable!("only blocking outputs open files")
    };
    Ok(BlockingPartitionWriter::try_new(
        root,
        job,
        partition.clone(),
        schema,
        *num_subpartitions,
        options,
    )
    .await?)
}
