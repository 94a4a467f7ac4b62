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
use weir_engine::expr::aggregate::{count, sum};
use weir_engine::expr::col;
use weir_engine::graph::{ExchangeMode, RuntimeMode};
use weir_engine::operators::Window;
use weir_engine::sinks::CollectSink;
use weir_engine::sources::SequenceGenerator;
use weir_engine::testing::sorted_rows;
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
    .and_then(|df| {
        df.window_aggregate(
            window,
            "seq",
            vec![col("key")],
            vec![
                count(col("value")).alias("n"),
                sum(col("value")).alias("total"),
            ],
        )
    })
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
