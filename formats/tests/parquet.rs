//! Parquet tables end to end on the mini-cluster: partitioned writes read
//! back, pushdown that provably skips data, atomic commits, bad files.

mod common;

use std::sync::Arc;

use arrow::array::RecordBatch;
use common::*;
use weir_engine::dataframe::Dataflow;
use weir_engine::expr::{col, lit};
use weir_engine::graph::VertexId;
use weir_engine::sinks::CollectSink;
use weir_engine::testing::{ColumnKind, ColumnSpec, Rng, random_batch, rebatch, sorted_rows};
use weir_scheduler::{FailurePlan, MiniCluster};

async fn source(
    pairs: &[(&str, &str)],
) -> weir_engine::Result<Arc<dyn weir_engine::SourceFactory>> {
    common::source("parquet", pairs).await
}

async fn sink(
    pairs: &[(&str, &str)],
    schema: arrow::datatypes::SchemaRef,
) -> Arc<dyn weir_engine::SinkFactory> {
    common::sink("parquet", pairs, schema).await
}

async fn write(
    batches: &[RecordBatch],
    pairs: &[(&str, &str)],
    plan: FailurePlan,
    restarts: u32,
) -> weir_scheduler::Result<weir_scheduler::JobSummary> {
    common::write("parquet", batches, pairs, plan, restarts).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_table_reads_back_exactly() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_str().expect("utf-8");
    let input = table(20_000, 7);
    let summary = write(
        &input,
        &[
            ("path", path),
            ("partition-by", "region"),
            ("parquet.row-group-rows", "1000"),
            ("sink.rolling.max-rows", "1000"),
        ],
        FailurePlan::none(),
        0,
    )
    .await
    .expect("write job");
    let (files, hidden) = files_under(dir.path());
    assert!(!hidden, "no staging left behind");
    assert!(files.iter().all(|f| f.starts_with("region=")), "{files:?}");
    assert!(
        files
            .iter()
            .any(|f| f.starts_with("region=__HIVE_DEFAULT_PARTITION__/"))
    );
    // Non-ASCII values are escaped once, as Hive and Spark name them.
    assert!(
        files.iter().any(|f| f.starts_with("region=%D0%BA")),
        "{files:?}"
    );
    assert!(files.len() >= 16, "files roll at 1000 rows: {files:?}");
    assert_eq!(counter(&summary, "files written"), files.len() as u64);

    let (output, _) = read(source(&[("path", path)]).await.expect("source"), None, None).await;
    assert_same_rows(&sorted_rows(&output), &partition_last(&input, "region"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_projections_skip_row_groups_pages_and_bytes() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_str().expect("utf-8");
    // Sorted ids: row groups and pages cover disjoint ranges.
    let ids = arrow::array::Int64Array::from_iter_values(0..100_000);
    let mut rng = Rng::new(3);
    let other = random_batch(
        &mut rng,
        &[ColumnSpec::new("payload", ColumnKind::Utf8, 90_000)],
        100_000,
    );
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as arrow::array::ArrayRef),
        ("payload", Arc::clone(other.column(0))),
    ])
    .expect("batch");
    let input = rebatch(&[batch], 8192);
    // One subtask, so the file keeps the id order.
    let flow = Dataflow::new("write").with_parallelism(1);
    flow.read(memory_source(&input)).write(
        sink(
            &[
                ("path", path),
                ("parquet.row-group-rows", "10000"),
                ("parquet.page-rows", "1000"),
            ],
            input[0].schema(),
        )
        .await,
    );
    MiniCluster::new(config(0))
        .run(graph(&flow))
        .await
        .expect("write");

    let table = source(&[("path", path)]).await.expect("source");
    let (all, full) = read(Arc::clone(&table), None, None).await;
    assert_eq!(
        all.iter().map(RecordBatch::num_rows).sum::<usize>(),
        100_000
    );
    assert_eq!(counter(&full, "row groups read"), 10);

    let wanted = col("id").between(lit(20_100_i64), lit(20_199_i64));
    let (some, narrow) = read(Arc::clone(&table), Some(&["id"]), Some(wanted)).await;
    let ids: Vec<String> = sorted_rows(&some);
    assert_eq!(ids.len(), 100);
    assert_eq!(ids.first().map(String::as_str), Some("20100"));
    assert_eq!(counter(&narrow, "row groups read"), 1);
    assert_eq!(counter(&narrow, "row groups pruned"), 9);
    assert!(counter(&narrow, "rows skipped by the page index") > 0);
    assert!(
        counter(&narrow, "bytes read") * 20 < counter(&full, "bytes read"),
        "{} vs {}",
        counter(&narrow, "bytes read"),
        counter(&full, "bytes read")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_failure_is_retried_and_committed_once() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_str().expect("utf-8");
    let input = table(5_000, 11);
    // The memory source and the sink are chained into vertex 0.
    let plan = FailurePlan::none().fail_task(VertexId(0), 1, 0, 1_500);
    let summary = write(&input, &[("path", path)], plan, 3)
        .await
        .expect("write");
    assert!(summary.restarts >= 1);
    let (files, hidden) = files_under(dir.path());
    assert!(!hidden);
    assert_eq!(
        files.len(),
        2,
        "one file per subtask, the failed attempt's dropped: {files:?}"
    );
    let (output, _) = read(source(&[("path", path)]).await.expect("source"), None, None).await;
    assert_same_rows(&sorted_rows(&output), &sorted_rows(&input));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_leaves_nothing_visible() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_str().expect("utf-8");
    let input = table(5_000, 13);
    let plan = FailurePlan::none().fail_task(VertexId(0), 0, 0, 2_000);
    let failed = write(
        &input,
        &[("path", path), ("partition-by", "region")],
        plan,
        0,
    )
    .await;
    assert!(failed.is_err());
    let (files, hidden) = files_under(dir.path());
    assert!(files.is_empty() && !hidden, "{files:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overwrite_replaces_append_adds_and_error_if_exists_refuses() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_str().expect("utf-8");
    let first = table(1_000, 1);
    let second = table(700, 2);
    write(&first, &[("path", path)], FailurePlan::none(), 0)
        .await
        .expect("first");
    write(&second, &[("path", path)], FailurePlan::none(), 0)
        .await
        .expect("append");
    let (both, _) = read(source(&[("path", path)]).await.expect("source"), None, None).await;
    assert_eq!(both.iter().map(RecordBatch::num_rows).sum::<usize>(), 1_700);
    write(
        &second,
        &[("path", path), ("sink.mode", "overwrite")],
        FailurePlan::none(),
        0,
    )
    .await
    .expect("overwrite");
    let (only, _) = read(source(&[("path", path)]).await.expect("source"), None, None).await;
    assert_same_rows(&sorted_rows(&only), &sorted_rows(&second));
    let refused = weir_formats::registry()
        .sink(
            "parquet",
            &options(&[("path", path), ("sink.mode", "error-if-exists")]),
            second[0].schema(),
        )
        .await
        .expect_err("files exist")
        .to_string();
    assert!(
        refused.contains("holds") && refused.contains("overwrite"),
        "{refused}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_files_are_named_at_every_offset() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_str().expect("utf-8");
    write(&table(3_000, 5), &[("path", path)], FailurePlan::none(), 0)
        .await
        .expect("write");
    let (files, _) = files_under(dir.path());
    let original = std::fs::read(dir.path().join(&files[0])).expect("read");
    let broken = tempfile::tempdir().expect("dir");
    let target = broken.path().join("broken.parquet");
    let step = (original.len() / 97).max(1);
    for cut in (0..original.len()).step_by(step) {
        std::fs::write(&target, &original[..cut]).expect("write");
        let error = source(&[("path", target.to_str().expect("utf-8"))])
            .await
            .expect_err("truncated")
            .to_string();
        assert!(error.contains("broken.parquet"), "cut at {cut}: {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_data_pages_fail_naming_the_file_or_read_without_panicking() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().to_str().expect("utf-8");
    write(
        &table(3_000, 9),
        &[("path", path), ("parquet.compression", "none")],
        FailurePlan::none(),
        0,
    )
    .await
    .expect("write");
    let (files, _) = files_under(dir.path());
    let original = std::fs::read(dir.path().join(&files[0])).expect("read");
    let broken = tempfile::tempdir().expect("dir");
    let target = broken.path().join("flipped.parquet");
    let mut rng = Rng::new(17);
    for round in 0..20 {
        let mut bytes = original.clone();
        // Damage the data pages, not the footer (its length is in the last 8 bytes).
        let data_end = bytes.len() / 2;
        for _ in 0..8 {
            let at = 4 + rng.below(data_end as u64 - 4) as usize;
            bytes[at] ^= 0xA5;
        }
        std::fs::write(&target, &bytes).expect("write");
        let Ok(table) = source(&[("path", target.to_str().expect("utf-8"))]).await else {
            continue;
        };
        let flow = Dataflow::new("read").with_parallelism(1);
        let (collect, _) = CollectSink::new();
        flow.read(table).write(Arc::new(collect));
        if let Err(e) = MiniCluster::new(config(0)).run(graph(&flow)).await {
            let e = e.to_string();
            assert!(e.contains("flipped.parquet"), "round {round}: {e}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_disagree_are_named_unless_merged() {
    let dir = tempfile::tempdir().expect("dir");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    let narrow = table(100, 1);
    let wide_columns: Vec<RecordBatch> = narrow
        .iter()
        .map(|batch| batch.project(&[0, 2]).expect("project"))
        .collect();
    write(
        &narrow,
        &[("path", a.to_str().expect("utf-8"))],
        FailurePlan::none(),
        0,
    )
    .await
    .expect("a");
    write(
        &wide_columns,
        &[("path", b.to_str().expect("utf-8"))],
        FailurePlan::none(),
        0,
    )
    .await
    .expect("b");
    let glob = format!("{}/*/*.parquet", dir.path().display());
    let error = source(&[("path", &glob)])
        .await
        .expect_err("mismatch")
        .to_string();
    assert!(
        error.contains("/a/") && error.contains("/b/") && error.contains("'c1'"),
        "{error}"
    );
    let merged = source(&[("path", &glob), ("schema.merge", "true")])
        .await
        .expect("merged");
    assert_eq!(merged.schema().fields().len(), narrow[0].num_columns());
    let (rows, _) = read(merged, Some(&["c0", "c1"]), Some(col("c1").is_null())).await;
    let nulls = rows.iter().map(RecordBatch::num_rows).sum::<usize>();
    let expected_nulls = narrow
        .iter()
        .map(|b| b.column(1).null_count())
        .sum::<usize>()
        + 100;
    assert_eq!(nulls, expected_nulls, "b's rows read c1 as null");
}

#[tokio::test]
async fn unknown_options_and_codecs_list_the_valid_ones() {
    let schema = table(10, 1)[0].schema();
    let e = weir_formats::registry()
        .sink(
            "parquet",
            &options(&[("path", "memory://x/y"), ("compression", "zstd")]),
            Arc::clone(&schema),
        )
        .await
        .expect_err("unknown option")
        .to_string();
    assert!(
        e.contains("unknown option 'compression'") && e.contains("parquet.compression"),
        "{e}"
    );
    let e = weir_formats::registry()
        .sink(
            "parquet",
            &options(&[("path", "memory://x/y"), ("parquet.compression", "lzma")]),
            schema,
        )
        .await
        .expect_err("unknown codec")
        .to_string();
    assert!(e.contains("lzma") && e.contains("snappy"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_values_cannot_leave_the_sink_root() {
    let outer = tempfile::tempdir().expect("dir");
    let root = outer.path().join("table");
    let path = root.to_str().expect("utf-8");
    let hostile = [
        "../../escaped",
        "..",
        ".",
        "/absolute/path",
        "a/b",
        "back\\slash",
        "nul\0byte",
        "_hidden",
        ".dot",
        "k=v",
        "%2e%2e",
    ];
    let keys = arrow::array::StringArray::from(hostile.to_vec());
    let ids = arrow::array::Int64Array::from_iter_values(0..hostile.len() as i64);
    let batch = RecordBatch::try_from_iter([
        ("id", Arc::new(ids) as arrow::array::ArrayRef),
        ("key", Arc::new(keys) as arrow::array::ArrayRef),
    ])
    .expect("batch");
    write(
        std::slice::from_ref(&batch),
        &[("path", path), ("partition-by", "key")],
        FailurePlan::none(),
        0,
    )
    .await
    .expect("write");
    // Nothing was written beside the root, and every file is one directory
    // deep under it.
    let beside: Vec<_> = std::fs::read_dir(outer.path()).expect("outer").collect();
    assert_eq!(
        beside.len(),
        1,
        "only the table's root is in the parent directory"
    );
    let (files, hidden) = files_under(&root);
    assert!(!hidden, "{files:?}");
    assert_eq!(files.len(), hostile.len(), "{files:?}");
    assert!(
        files
            .iter()
            .all(|f| f.starts_with("key=") && f.matches('/').count() == 1),
        "{files:?}"
    );
    let (output, _) = read(source(&[("path", path)]).await.expect("source"), None, None).await;
    assert_same_rows(&sorted_rows(&output), &sorted_rows(&[batch]));
}
