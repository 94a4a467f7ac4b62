//! The `print` and `blackhole` sinks end to end on the mini-cluster.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema};
use common::*;
use weir_engine::SinkFactory;
use weir_engine::dataframe::Dataflow;
use weir_formats::file_sink::SharedBuffer;
use weir_formats::print::{PrintSink, PrintTarget};
use weir_scheduler::{JobSummary, MiniCluster};

/// Runs a job of `parallelism` subtasks that reads `rows` generated rows
/// `(id BIGINT, name VARCHAR)` into `sink`.
async fn run(rows: u64, parallelism: usize, sink: Arc<dyn SinkFactory>) -> JobSummary {
    let declared = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let rows = rows.to_string();
    let source = declared_source(
        "datagen",
        &[
            ("number-of-rows", &rows),
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "1"),
            ("fields.id.end", "1000000"),
            ("fields.name.length", "3"),
            ("fields.name.null-rate", "0.5"),
        ],
        Some(declared),
    )
    .await
    .expect("source");
    let flow = Dataflow::new("sink").with_parallelism(parallelism);
    flow.read(source).write(sink);
    MiniCluster::new(config(0))
        .run(graph(&flow))
        .await
        .expect("job")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_counts_what_it_discards() {
    let sink = sink("blackhole", &[], Arc::new(Schema::empty())).await;
    let summary = run(20_000, 3, sink).await;
    assert_eq!(counter(&summary, "rows written"), 20_000);
    let e = sink_error("blackhole", &[("path", "x")]).await;
    assert!(e.contains("unknown option 'path'"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_writes_one_line_per_row_with_flinks_prefixes() {
    let buffer = SharedBuffer::default();
    let writer: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(buffer.clone()));
    let sink = PrintSink::new(PrintTarget::Writer(writer)).with_identifier("out");
    let summary = run(1_000, 2, Arc::new(sink)).await;
    assert_eq!(counter(&summary, "rows written"), 1_000);
    let text = String::from_utf8(buffer.take()).expect("utf-8");
    let mut ids = Vec::new();
    for line in text.lines() {
        let (prefix, row) = line.split_once("> ").expect("a prefix");
        assert!(prefix == "out:1" || prefix == "out:2", "{line}");
        let fields = row
            .strip_prefix("+I[")
            .and_then(|r| r.strip_suffix(']'))
            .expect("+I[...]");
        let (id, name) = fields.split_once(", ").expect("two values");
        assert!(name == "null" || name.len() == 3, "{line}");
        ids.push(id.parse::<i64>().expect("id"));
    }
    ids.sort_unstable();
    assert_eq!(ids, (1..=1_000).collect::<Vec<_>>());

    let buffer = SharedBuffer::default();
    let writer: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(buffer.clone()));
    run(3, 1, Arc::new(PrintSink::new(PrintTarget::Writer(writer)))).await;
    let text = String::from_utf8(buffer.take()).expect("utf-8");
    assert_eq!(text.lines().count(), 3);
    assert!(
        text.starts_with("+I[1, "),
        "one subtask, no identifier: no prefix\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn print_to_standard_error_from_options() {
    let sink = sink(
        "print",
        &[
            ("print-identifier", "stderr-test"),
            ("standard-error", "true"),
        ],
        Arc::new(Schema::empty()),
    )
    .await;
    assert_eq!(sink.name(), "print(stderr-test)");
    let summary = run(3, 2, sink).await;
    assert_eq!(counter(&summary, "rows written"), 3);
    let e = sink_error("print", &[("standard-error", "sometimes")]).await;
    assert!(e.contains("standard-error"), "{e}");
}
