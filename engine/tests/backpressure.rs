//! Backpressure through the task runtime: a slow sink holds its producer
//! back, and the bytes buffered between them stay under the channel bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arrow::array::RecordBatch;
use async_trait::async_trait;
use weir_engine::SourceFactory;
use weir_engine::graph::{Chain, VertexId};
use weir_engine::sources::SequenceGenerator;
use weir_engine::task::{
    InputChannel, OutputSpec, OutputTarget, TaskDeployment, TaskInfo, run_task,
};
use weir_engine::{Result, Sink, SinkFactory};
use weir_exchange::channel::{ChannelBounds, pipelined_channel};
use weir_exchange::{Event, Partitioner};

/// A sink that takes its time over every batch and counts rows.
#[derive(Debug, Default)]
struct SlowSink {
    rows: Arc<AtomicU64>,
}

struct SlowWriter {
    rows: Arc<AtomicU64>,
}

#[async_trait]
impl SinkFactory for SlowSink {
    fn name(&self) -> String {
        "slow".to_string()
    }

    fn create(&self, _task: &TaskInfo) -> Result<Box<dyn Sink>> {
        Ok(Box::new(SlowWriter {
            rows: Arc::clone(&self.rows),
        }))
    }
}

#[async_trait]
impl Sink for SlowWriter {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.rows
            .fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

fn info(vertex: u32, name: &str) -> TaskInfo {
    TaskInfo {
        job_id: "backpressure".into(),
        vertex: VertexId(vertex),
        vertex_name: name.into(),
        max_parallelism: 128,
        ..weir_engine::testing::task_info(weir_engine::memory::MemoryPool::unbounded())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_keeps_buffered_bytes_under_the_bound() {
    let generator = SequenceGenerator::new(Some(400 * 1024), 10).with_batch_rows(1024);
    let one_batch = Event::Batch(RecordBatch::new_empty(generator.schema())).memory_size();
    let batch_bytes = 3 * 1024 * 8 + one_batch;
    let bounds = ChannelBounds {
        max_bytes: batch_bytes * 4,
        max_batches: 1000,
    };
    let (tx, rx) = pipelined_channel(bounds);
    let probe = tx.probe();
    let producer = TaskDeployment {
        info: info(0, "generator"),
        chain: Chain {
            source: Some(Arc::new(generator)),
            ..Chain::default()
        },
        inputs: Vec::new(),
        outputs: vec![OutputSpec {
            dataset: 0,
            partitioner: Partitioner::Forward,
            target: OutputTarget::Pipelined(vec![tx]),
        }],
        hook: None,
        checkpoints: None,
    };
    let sink = SlowSink::default();
    let rows = Arc::clone(&sink.rows);
    let consumer = TaskDeployment {
        info: info(1, "slow sink"),
        chain: Chain {
            sink: Some(Arc::new(sink)),
            ..Chain::default()
        },
        inputs: vec![vec![InputChannel::Local(rx)]],
        outputs: Vec::new(),
        hook: None,
        checkpoints: None,
    };
    let (produced, consumed) = tokio::join!(run_task(producer), run_task(consumer));
    let produced = produced.unwrap();
    consumed.unwrap();
    assert_eq!(produced.metrics.rows_out, 400 * 1024);
    assert_eq!(rows.load(Ordering::Relaxed), 400 * 1024);
    let peak = probe.peak_bytes();
    assert!(
        peak <= bounds.max_bytes,
        "peak {peak} over the bound {}",
        bounds.max_bytes
    );
    assert!(
        peak >= bounds.max_bytes / 2,
        "the channel never filled (peak {peak}): no backpressure was exercised"
    );
}
