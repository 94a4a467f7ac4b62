//! Arrow IPC tables end to end on the mini-cluster.

mod common;

use arrow::array::RecordBatch;
use arrow::ipc::writer::StreamWriter;
use common::*;
use weir_engine::expr::col;
use weir_engine::testing::sorted_rows;
use weir_scheduler::FailurePlan;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_compressed_files_read_back_exactly() {
    for codec in ["none", "lz4", "zstd"] {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().to_str().expect("utf-8");
        let input = table(6_000, 21);
        write(
            "ipc",
            &input,
            &[
                ("path", path),
                ("partition-by", "region"),
                ("ipc.compression", codec),
            ],
            FailurePlan::none(),
            0,
        )
        .await
        .expect("write");
        let (files, hidden) = files_under(dir.path());
        assert!(
            !hidden && files.iter().all(|f| f.ends_with(".arrow")),
            "{files:?}"
        );
        let (output, summary) = read(
            source("ipc", &[("path", path)]).await.expect("source"),
            None,
            None,
        )
        .await;
        assert_same_rows(&sorted_rows(&output), &partition_last(&input, "region"));
        assert_eq!(counter(&summary, "files read"), files.len() as u64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_format_files_projections_and_partition_filters() {
    let dir = tempfile::tempdir().expect("dir");
    let input = table(2_000, 5);
    for (i, part) in ["p=1", "p=2"].iter().enumerate() {
        std::fs::create_dir_all(dir.path().join(part)).expect("mkdir");
        let file =
            std::fs::File::create(dir.path().join(part).join("rows.arrows")).expect("create");
        let mut writer = StreamWriter::try_new(file, &input[0].schema()).expect("writer");
        for batch in input.iter().skip(i).step_by(2) {
            writer.write(batch).expect("write");
        }
        writer.finish().expect("finish");
    }
    let path = dir.path().to_str().expect("utf-8");
    let table = source("ipc", &[("path", path)]).await.expect("source");
    assert_eq!(table.schema().fields().len(), input[0].num_columns() + 1);
    let (rows, summary) = read(
        table,
        Some(&["c0", "p"]),
        Some(col("p").eq(weir_engine::expr::lit(2_i64))),
    )
    .await;
    let expected: Vec<RecordBatch> = input
        .iter()
        .skip(1)
        .step_by(2)
        .map(|b| b.project(&[0]).expect("project"))
        .collect();
    let expected: Vec<String> = sorted_rows(&expected)
        .into_iter()
        .map(|r| format!("{r}|2"))
        .collect();
    let mut expected = expected;
    expected.sort();
    assert_same_rows(&sorted_rows(&rows), &expected);
    assert_eq!(
        counter(&summary, "files read"),
        1,
        "p=1 is pruned by its directory"
    );
    // A partition filter inside a conjunction prunes files too.
    let both = col("p")
        .eq(weir_engine::expr::lit(2_i64))
        .and(col("c0").is_not_null());
    let table = source("ipc", &[("path", path)]).await.expect("source");
    let (_, summary) = read(table, Some(&["c0", "p"]), Some(both)).await;
    assert_eq!(
        counter(&summary, "files read"),
        1,
        "p=1 is pruned inside AND"
    );
}

#[tokio::test]
async fn broken_files_are_named() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("broken.arrow");
    std::fs::write(&path, b"ARROW1\0\0 not really").expect("write");
    let e = source("ipc", &[("path", path.to_str().expect("utf-8"))])
        .await
        .expect_err("broken")
        .to_string();
    assert!(e.contains("broken.arrow"), "{e}");
}
