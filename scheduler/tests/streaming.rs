//! Streaming jobs on the mini-cluster: sources generating watermarks,
//! window aggregates firing as event time advances, every task deployed
//! at once. A bounded job run in streaming mode must give exactly the rows
//! it gives in batch mode.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::test_config;
use weir_engine::dataframe::Dataflow;
use weir_engine::event_time::WatermarkStrategy;
use weir_engine::expr::aggregate::count;
use weir_engine::expr::col;
use weir_engine::graph::{ExchangeMode, RuntimeMode};
use weir_engine::operators::Window;
use weir_engine::sinks::CollectSink;
use weir_engine::sources::SequenceGenerator;
use weir_engine::testing::{sorted_rows, window_totals};
use weir_scheduler::MiniCluster;

/// Counts and sums of the generator's values per key and `window` over
/// `seq` (as milliseconds), at `parallelism`, in `mode`.
async fn windowed(window: Window, parallelism: usize, mode: RuntimeMode) -> Vec<String> {
    let flow = Dataflow::new("windowed").with_parallelism(parallelism);
    let generator = SequenceGenerator::new(Some(60_000), 13).with_batch_rows(500);
    let (sink, output) = CollectSink::new();
    flow.read_with_watermarks(
        Arc::new(generator),
        WatermarkStrategy::bounded_out_of_orderness("seq", Duration::ZERO),
    )
    .and_then(|df| window_totals(&df, window))
    .expect("plans")
    .write(Arc::new(sink));
    let mut config = test_config(4);
    config.runtime_mode = Some(mode);
    let graph = config.build(flow.builder()).expect("builds");
    assert_eq!(graph.mode, mode);
    if mode == RuntimeMode::Streaming {
        assert!(
            graph
                .edges
                .iter()
                .all(|e| e.mode == ExchangeMode::Pipelined)
        );
    }
    let summary = MiniCluster::new(config).run(graph).await.expect("runs");
    let late: u64 = summary
        .vertices
        .iter()
        .filter_map(|v| v.counters.get("late records dropped"))
        .sum();
    assert_eq!(late, 0, "{window}");
    sorted_rows(&output.batches())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_give_the_same_rows_in_batch_and_streaming_mode() {
    for window in [
        Window::tumble(Duration::from_millis(1000)).expect("valid"),
        Window::hop(Duration::from_millis(300), Duration::from_millis(1000)).expect("valid"),
        Window::cumulate(Duration::from_millis(250), Duration::from_millis(1000)).expect("valid"),
        Window::session(Duration::from_millis(20)).expect("valid"),
    ] {
        let batch = windowed(window, 1, RuntimeMode::Batch).await;
        assert!(!batch.is_empty(), "{window}");
        for parallelism in [1, 3] {
            let streaming = windowed(window, parallelism, RuntimeMode::Streaming).await;
            assert_eq!(streaming, batch, "{window} at parallelism {parallelism}");
        }
    }
}

/// A source of two splits, one per subtask: subtask 0 counts event times
/// up from 0 in batches of 50 every few milliseconds, forever; subtask 1
/// has nothing, ever (it returns empty batches, as quiet sources do).
#[derive(Debug)]
struct OneQuietSplit;

struct OneQuietReader {
    subtask: usize,
    next: i64,
}

fn times_schema() -> arrow::datatypes::SchemaRef {
    Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("ts", arrow::datatypes::DataType::Int64, false),
    ]))
}

impl weir_engine::SourceFactory for OneQuietSplit {
    fn name(&self) -> String {
        "one-quiet-split".into()
    }

    fn boundedness(&self) -> weir_engine::Boundedness {
        weir_engine::Boundedness::Unbounded
    }

    fn schema(&self) -> arrow::datatypes::SchemaRef {
        times_schema()
    }

    fn create(
        &self,
        task: &weir_engine::TaskInfo,
    ) -> weir_engine::Result<Box<dyn weir_engine::Source>> {
        Ok(Box::new(OneQuietReader {
            subtask: task.subtask,
            next: 0,
        }))
    }
}

#[async_trait::async_trait]
impl weir_engine::Source for OneQuietReader {
    async fn next_batch(&mut self) -> weir_engine::Result<Option<arrow::array::RecordBatch>> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let rows = if self.subtask == 0 { 50 } else { 0 };
        let times: Vec<i64> = (self.next..self.next + rows).collect();
        self.next += rows;
        Ok(Some(arrow::array::RecordBatch::try_new(
            times_schema(),
            vec![Arc::new(arrow::array::Int64Array::from(times))],
        )?))
    }
}

/// Keeps every batch as it arrives (at least once).
#[derive(Debug, Clone, Default)]
struct Recording(Arc<std::sync::Mutex<Vec<arrow::array::RecordBatch>>>);

#[async_trait::async_trait]
impl weir_engine::SinkFactory for Recording {
    fn name(&self) -> String {
        "recording".into()
    }

    fn create(&self, _: &weir_engine::TaskInfo) -> weir_engine::Result<Box<dyn weir_engine::Sink>> {
        Ok(Box::new(self.clone()))
    }
}

#[async_trait::async_trait]
impl weir_engine::Sink for Recording {
    async fn write_batch(&mut self, batch: arrow::array::RecordBatch) -> weir_engine::Result<()> {
        self.0.lock().expect("not poisoned").push(batch);
        Ok(())
    }

    async fn finish(&mut self) -> weir_engine::Result<()> {
        Ok(())
    }
}

/// The windows fired within `wait` when the quiet split goes idle after
/// `idle` (never when `None`).
async fn windows_fired(idle: Option<Duration>, wait: Duration) -> usize {
    let flow = Dataflow::new("quiet").with_parallelism(2);
    let mut strategy = WatermarkStrategy::bounded_out_of_orderness("ts", Duration::ZERO);
    strategy.idle_timeout = idle;
    let recording = Recording::default();
    flow.read_with_watermarks(Arc::new(OneQuietSplit), strategy)
        .and_then(|df| {
            df.window_aggregate(
                Window::tumble(Duration::from_millis(100)).expect("valid"),
                "ts",
                vec![],
                vec![count(col("ts")).alias("n")],
            )
        })
        .expect("plans")
        .write(Arc::new(recording.clone()));
    let config = test_config(4);
    let graph = config.build(flow.builder()).expect("builds");
    let control = weir_scheduler::JobControl::default();
    let cluster = MiniCluster::new(config);
    let run = cluster.run_with_control(
        graph,
        weir_scheduler::FailurePlan::none(),
        weir_scheduler::JobProgress::default(),
        control.clone(),
    );
    let watch = async {
        tokio::time::sleep(wait).await;
        control.cancel().expect("cancels");
    };
    let (outcome, ()) = tokio::join!(run, watch);
    assert!(outcome.is_err(), "the job was cancelled");
    let batches = recording.0.lock().expect("not poisoned").clone();
    batches.iter().map(|b| b.num_rows()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_split_does_not_hold_the_watermark_back() {
    let fired = windows_fired(
        Some(Duration::from_millis(100)),
        Duration::from_millis(1500),
    )
    .await;
    assert!(
        fired >= 3,
        "windows fired while one split was idle: {fired}"
    );
    // Without an idle timeout the quiet split holds every window back.
    let held = windows_fired(None, Duration::from_millis(800)).await;
    assert_eq!(held, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_records_go_to_their_sink_when_asked() {
    // Times 0, 10, ..., 990 in order, then seven far behind the watermark.
    let mut times: Vec<i64> = (0..100).map(|i| i * 10).collect();
    times.extend((0..7).map(|i| i * 3));
    let batches: Vec<arrow::array::RecordBatch> = times
        .chunks(10)
        .map(|chunk| {
            arrow::array::RecordBatch::try_new(
                times_schema(),
                vec![Arc::new(arrow::array::Int64Array::from(chunk.to_vec()))],
            )
            .expect("batch")
        })
        .collect();
    let source = weir_engine::sources::MemorySource::try_new("times", times_schema(), batches)
        .expect("source");
    let flow = Dataflow::new("late").with_parallelism(1);
    let (sink, output) = CollectSink::new();
    let (late_sink, late) = CollectSink::new();
    flow.read_with_watermarks(
        Arc::new(source),
        WatermarkStrategy::bounded_out_of_orderness("ts", Duration::ZERO),
    )
    .and_then(|df| {
        df.window_aggregate_late_to(
            Window::tumble(Duration::from_millis(100)).expect("valid"),
            "ts",
            vec![],
            vec![count(col("ts")).alias("n")],
            Some(Arc::new(late_sink)),
        )
    })
    .expect("plans")
    .write(Arc::new(sink));
    let mut config = test_config(2);
    config.runtime_mode = Some(RuntimeMode::Streaming);
    let graph = config.build(flow.builder()).expect("builds");
    assert!(
        graph
            .vertices
            .iter()
            .any(|v| v.name.contains("late records -> collect"))
    );
    let summary = MiniCluster::new(config).run(graph).await.expect("runs");
    let counted: u64 = summary
        .vertices
        .iter()
        .filter_map(|v| v.counters.get("late records to the side output"))
        .sum();
    assert_eq!(counted, 7, "{summary}");
    assert_eq!(
        sorted_rows(&late.batches()),
        vec!["0", "12", "15", "18", "3", "6", "9"]
    );
    // Ten windows of ten on-time records each.
    let windows = sorted_rows(&output.batches());
    assert_eq!(windows.len(), 10);
    assert!(windows.iter().all(|w| w.ends_with("|10")), "{windows:?}");
}
