//! CSV and JSON-lines tables end to end on the mini-cluster: round trips,
//! and bad records failing, dropped and counted, or dead-lettered.

mod common;

use arrow::array::RecordBatch;
use common::*;
use weir_engine::testing::sorted_rows;
use weir_scheduler::FailurePlan;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_round_trip_with_partitions() {
    // CSV needs a null string to tell null strings from empty ones.
    let csv_dialect: &[(&str, &str)] = &[("csv.null-string", "\\N")];
    for (connector, dialect) in [("csv", csv_dialect), ("json", &[])] {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().to_str().expect("utf-8");
        let input = table(3_000, 31);
        let mut sink_options = vec![("path", path), ("partition-by", "region")];
        sink_options.extend_from_slice(dialect);
        write(connector, &input, &sink_options, FailurePlan::none(), 0)
            .await
            .expect("write");
        let schema = input[0].schema();
        let declared: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| f.name() != "region")
            .map(|f| format!("{} {}", f.name(), sql_type(f.data_type())))
            .collect();
        let declared = declared.join(", ");
        let mut source_options = vec![("path", path), ("schema", declared.as_str())];
        source_options.extend_from_slice(dialect);
        let (output, _) = read(
            source(connector, &source_options).await.expect("source"),
            None,
            None,
        )
        .await;
        assert_same_rows(&sorted_rows(&output), &partition_last(&input, "region"));
    }
}

fn sql_type(data_type: &arrow::datatypes::DataType) -> String {
    use arrow::datatypes::DataType::*;
    match data_type {
        Int32 => "INT".into(),
        Int64 => "BIGINT".into(),
        Utf8 => "VARCHAR".into(),
        Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        Float64 => "DOUBLE".into(),
        Boolean => "BOOLEAN".into(),
        Date32 => "DATE".into(),
        other => panic!("no SQL type for {other}"),
    }
}

fn write_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_fail_drop_or_go_to_dead_letters() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = write_file(dir.path(), "rows.csv", "id,name\n1,a\nx2,b\n3,c\n4\n5,e\n");
    let json = write_file(
        dir.path(),
        "rows.jsonl",
        "{\"id\":1,\"name\":\"a\"}\n{\"id\":\"x\"}\nnot json\n{\"id\":4,\"name\":\"d\"}\n",
    );
    for (connector, path, good, bad, bad_line) in [("csv", &csv, 3, 2, 3), ("json", &json, 2, 2, 2)]
    {
        let schema = [("schema", "id BIGINT, name VARCHAR")];
        let failing = source(connector, &[("path", path), schema[0]])
            .await
            .expect("source");
        let flow = weir_engine::dataframe::Dataflow::new("fail");
        let (collect, _) = weir_engine::sinks::CollectSink::new();
        flow.read(failing).write(std::sync::Arc::new(collect));
        let error = weir_scheduler::MiniCluster::new(config(3))
            .run(
                flow.build(weir_engine::graph::ShuffleMode::AllBlocking, 4)
                    .expect("graph"),
            )
            .await
            .expect_err("a bad record fails the job")
            .to_string();
        assert!(
            error.contains(path.as_str()) && error.contains(&format!("line {bad_line}")),
            "{error}"
        );

        let dropping = source(
            connector,
            &[("path", path), schema[0], ("bad-records", "drop")],
        )
        .await
        .expect("source");
        let (rows, summary) = read(dropping, None, None).await;
        assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), good);
        assert_eq!(counter(&summary, "bad records dropped"), bad);
        assert!(
            summary.to_string().contains("bad records dropped: "),
            "{summary}"
        );

        let letters = dir.path().join(format!("{connector}-dead"));
        let letters_path = letters.to_str().expect("utf-8");
        let lettering = source(
            connector,
            &[
                ("path", path),
                schema[0],
                ("bad-records", "dead-letter"),
                ("bad-records.path", letters_path),
            ],
        )
        .await
        .expect("source");
        let (rows, summary) = read(lettering, None, None).await;
        assert_eq!(rows.iter().map(RecordBatch::num_rows).sum::<usize>(), good);
        assert_eq!(counter(&summary, "bad records dead-lettered"), bad);
        let written: Vec<_> = std::fs::read_dir(&letters).expect("dead letters").collect();
        assert_eq!(written.len(), 1);
        let text =
            std::fs::read_to_string(written[0].as_ref().expect("entry").path()).expect("read");
        assert_eq!(text.lines().count() as u64, bad);
        assert!(
            text.contains(&format!("\"line\":{bad_line}")) && text.contains("rows."),
            "{text}"
        );
    }
}

#[tokio::test]
async fn dead_letters_need_a_path() {
    let dir = tempfile::tempdir().expect("dir");
    let csv = write_file(dir.path(), "rows.csv", "id\n1\n");
    let e = source("csv", &[("path", &csv), ("bad-records", "dead-letter")])
        .await
        .expect_err("no path")
        .to_string();
    assert!(e.contains("bad-records.path"), "{e}");
    let e = source("csv", &[("path", &csv), ("bad-records", "sometimes")])
        .await
        .expect_err("bad policy")
        .to_string();
    assert!(e.contains("dead-letter"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declared_columns_are_the_schema_unless_one_is_given() {
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("dir");
    // Inference would make CSV's `code` a number (and drop its zeros) and
    // JSON's a BIGINT.
    let csv = write_file(dir.path(), "rows.csv", "code,name\n007,a\n042,b\n");
    let json = write_file(
        dir.path(),
        "rows.jsonl",
        "{\"code\":7,\"name\":\"a\"}\n{\"code\":42,\"name\":\"b\"}\n",
    );
    let cases = [
        ("csv", &csv, DataType::Utf8, ["007|a", "042|b"]),
        ("json", &json, DataType::Int32, ["42|b", "7|a"]),
    ];
    for (connector, path, code, expected) in cases {
        let declared = Arc::new(Schema::new(vec![
            Field::new("code", code.clone(), true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let table = declared_source(connector, &[("path", path)], Some(declared))
            .await
            .expect("source");
        assert_eq!(table.schema().field(0).data_type(), &code);
        let (rows, _) = read(table, None, None).await;
        assert_same_rows(&sorted_rows(&rows), &expected.map(String::from));
        // The `schema` option wins over the declared columns.
        let declared = Arc::new(Schema::new(vec![Field::new("code", code, true)]));
        let table = declared_source(
            connector,
            &[("path", path), ("schema", "code BIGINT, name VARCHAR")],
            Some(declared),
        )
        .await
        .expect("source");
        assert_eq!(table.schema().field(0).data_type(), &DataType::Int64);
    }
}
