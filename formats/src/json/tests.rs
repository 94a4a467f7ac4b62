//! Tests of the JSON-lines decoder, encoder and inference together.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use arrow::util::pretty::pretty_format_batches;

use super::{JsonDecoder, JsonEncoder, infer_schema};
use crate::Error;
use crate::bad_records::{BadRecord, BadRecords, Decoded};
use crate::schema_string::parse_schema;
use crate::test_batches::every_type;

fn decode_with(text: &[u8], schema: &str, policy: BadRecords) -> crate::Result<Decoded> {
    JsonDecoder::try_new(&parse_schema(schema).unwrap(), policy)
        .unwrap()
        .with_batch_size(2)
        .decode("data/f.json", text)
}

fn table(decoded: &Decoded) -> String {
    pretty_format_batches(&decoded.batches).unwrap().to_string()
}

#[test]
fn every_type_round_trips() {
    let batch = every_type();
    let mut encoder = JsonEncoder::new();
    let mut text = Vec::new();
    encoder.encode(&batch.slice(0, 1), &mut text).unwrap();
    encoder.encode(&batch.slice(1, 3), &mut text).unwrap();
    assert_eq!(text.iter().filter(|b| **b == b'\n').count(), 4);
    let decoder = JsonDecoder::try_new(&batch.schema(), BadRecords::Fail).unwrap();
    let decoded = decoder.decode("f.json", &text).unwrap();
    let rows = concat_batches(&batch.schema(), &decoded.batches).unwrap();
    assert_eq!(rows, batch);
}

#[test]
fn nulls_are_left_out() {
    let batch = every_type();
    let mut text = Vec::new();
    JsonEncoder::new()
        .encode(&batch.slice(0, 1), &mut text)
        .unwrap();
    let row: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert!(row.get("i8").is_some());
    assert!(row.get("i32").is_none());
}

#[test]
fn skips_blank_lines_and_unknown_fields() {
    let text = b"\xef\xbb\xbf{\"id\": 1, \"name\": \"a\", \"extra\": [1, {\"x\": 2}]}\r\n\r\n   \n{\"name\": \"b\"}\n{\"id\": 3, \"name\": null}";
    let decoded = decode_with(text, "id BIGINT, name VARCHAR", BadRecords::Fail).unwrap();
    assert_eq!(
        table(&decoded),
        "+----+------+\n\
         | id | name |\n\
         +----+------+\n\
         | 1  | a    |\n\
         |    | b    |\n\
         | 3  |      |\n\
         +----+------+"
    );
    assert_eq!(decoded.batches.len(), 2);
}

#[test]
fn reads_decimals_dates_and_timestamps() {
    let text = br#"{"p": 12.5, "d": "2024-02-29", "ts": "2024-02-29 10:11:12.5", "tz": "2024-02-29T10:11:12+02:00", "ok": true}
{"p": "-0.01", "d": "1970-01-01", "ts": "1970-01-01T00:00:00", "tz": "1970-01-01T00:00:00Z", "ok": false}"#;
    let decoded = decode_with(
        text,
        "p DECIMAL(10,2), d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, ok BOOLEAN",
        BadRecords::Fail,
    )
    .unwrap();
    assert_eq!(
        table(&decoded),
        "+-------+------------+-------------------------+----------------------+-------+\n\
         | p     | d          | ts                      | tz                   | ok    |\n\
         +-------+------------+-------------------------+----------------------+-------+\n\
         | 12.50 | 2024-02-29 | 2024-02-29T10:11:12.500 | 2024-02-29T08:11:12Z | true  |\n\
         | -0.01 | 1970-01-01 | 1970-01-01T00:00:00     | 1970-01-01T00:00:00Z | false |\n\
         +-------+------------+-------------------------+----------------------+-------+"
    );
}

/// A file with one bad line of each kind between good ones.
const BAD: &[u8] = b"{\"id\": 1, \"name\": \"one\"}\n\
    [1, 2]\n\
    {\"id\": 2, \"name\": \"two\"}\n\
    {\"id\": \"x3\", \"name\": \"three\"}\n\
    \n\
    {\"id\": 4, \"name\": \n\
    \"four\"}\n\
    {\"id\": 5, \"name\": \"five\"} {\"id\": 55}\n\
    42\n\
    {\"id\": true}\n\
    {\"id\": 6, \"name\": {\"nested\": 1}}\n\
    {\"id\": 7, \"name\": \"seven\"}";

const BAD_SCHEMA: &str = "id BIGINT, name VARCHAR";

fn bad_lines() -> Vec<(u64, &'static str)> {
    vec![
        (2, "[1, 2]"),
        (4, "{\"id\": \"x3\", \"name\": \"three\"}"),
        (6, "{\"id\": 4, \"name\": "),
        (7, "\"four\"}"),
        (8, "{\"id\": 5, \"name\": \"five\"} {\"id\": 55}"),
        (9, "42"),
        (10, "{\"id\": true}"),
        (11, "{\"id\": 6, \"name\": {\"nested\": 1}}"),
    ]
}

#[test]
fn bad_records_fail_with_file_and_line() {
    let err = decode_with(BAD, BAD_SCHEMA, BadRecords::Fail).unwrap_err();
    assert!(matches!(err, Error::BadRecord { line: 2, .. }));
    assert_eq!(err.to_string(), "data/f.json, line 2: not a JSON object");
}

#[test]
fn bad_records_are_dropped_and_counted() {
    for batch_size in [1, 2, 3, 8192] {
        let decoded = JsonDecoder::try_new(&parse_schema(BAD_SCHEMA).unwrap(), BadRecords::Drop)
            .unwrap()
            .with_batch_size(batch_size)
            .decode("data/f.json", BAD)
            .unwrap();
        assert_eq!(decoded.dropped, 8);
        let rows = concat_batches(&decoded.batches[0].schema(), &decoded.batches).unwrap();
        let ids: Vec<i64> = rows.column(0).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(ids, vec![1, 2, 7], "batch size {batch_size}");
        assert!(decoded.batches.iter().all(|b| b.num_rows() <= batch_size));
    }
}

#[test]
fn bad_records_are_dead_lettered_with_raw_text_line_and_reason() {
    let decoded = decode_with(BAD, BAD_SCHEMA, BadRecords::DeadLetter).unwrap();
    let dead: Vec<(u64, &str)> = decoded
        .dead_letters
        .iter()
        .map(|b| (b.line, b.raw.as_str()))
        .collect();
    assert_eq!(dead, bad_lines());
    assert!(
        decoded
            .dead_letters
            .iter()
            .all(|b| b.file == "data/f.json" && !b.reason.is_empty())
    );
    let reasons: Vec<&str> = decoded
        .dead_letters
        .iter()
        .map(|b| b.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "not a JSON object",
            "column 'id': failed to parse \"x3\" as Int64",
            "not a JSON object",
            "not a JSON object",
            "more JSON values than lines",
            "not a JSON object",
            "column 'id': expected primitive got true",
            "column 'name': expected string got {\"nested\": 1}",
        ]
    );
}

#[test]
fn each_bad_line_fails_at_its_line() {
    for (_, raw) in bad_lines() {
        let text = format!("{{\"id\": 0}}\n{raw}\n{{\"id\": 9}}\n");
        let err = decode_with(text.as_bytes(), BAD_SCHEMA, BadRecords::Fail).unwrap_err();
        assert!(
            matches!(&err, Error::BadRecord { file, line: 2, .. } if file == "data/f.json"),
            "{raw}: {err}"
        );
    }
}

#[test]
fn invalid_time_zones_are_refused() {
    let tz = Schema::new(vec![Field::new(
        "t",
        DataType::Timestamp(TimeUnit::Microsecond, Some("Nowhere/Land".into())),
        true,
    )]);
    let err = JsonDecoder::try_new(&tz, BadRecords::Fail).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("option 'schema': JSON cannot hold the schema"),
        "{err}"
    );
}

#[test]
fn infers_types_from_objects() {
    let text = br#"{"b": 1, "a": "x", "n": null}
not json
{"b": 2.5, "c": true, "l": [1, 2], "s": {"k": "v"}}
[1]
"#;
    let schema = infer_schema("f.json", text, 1000).unwrap();
    let fields: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    assert_eq!(
        fields,
        vec![
            ("a".to_string(), DataType::Utf8),
            ("b".to_string(), DataType::Float64),
            ("n".to_string(), DataType::Utf8),
            ("c".to_string(), DataType::Boolean),
            (
                "l".to_string(),
                DataType::List(Field::new("item", DataType::Int64, true).into())
            ),
            (
                "s".to_string(),
                DataType::Struct(vec![Field::new("k", DataType::Utf8, true)].into())
            ),
        ]
    );
    assert!(schema.fields().iter().all(|f| f.is_nullable()));

    // The inferred schema decodes the file, but for the bad lines.
    let decoded = JsonDecoder::try_new(&schema, BadRecords::Drop)
        .unwrap()
        .decode("f.json", text)
        .unwrap();
    assert_eq!((decoded.rows(), decoded.dropped), (2, 2));
    assert!(decoded.batches[0].column(2).is_null(0));
}

#[test]
fn inference_samples_only_the_first_lines() {
    let text = b"{\"a\": 1}\n\n{\"a\": 2}\n{\"a\": \"three\"}\n";
    let sampled = |n| {
        infer_schema("f.json", text, n)
            .unwrap()
            .field(0)
            .data_type()
            .clone()
    };
    assert_eq!(sampled(2), DataType::Int64);
    assert_eq!(sampled(3), DataType::Utf8);
    let err = infer_schema("f.json", b"[1]\n\n", 10).unwrap_err();
    assert_eq!(
        err.to_string(),
        "f.json: no JSON object in the first 10 lines to infer a schema from"
    );
}

#[test]
fn dead_letters_round_trip_through_their_json_lines() {
    let decoded = decode_with(BAD, BAD_SCHEMA, BadRecords::DeadLetter).unwrap();
    let text = crate::bad_records::dead_letter_json_lines(&decoded.dead_letters);
    let schema = parse_schema("file VARCHAR, line BIGINT, reason VARCHAR, raw VARCHAR").unwrap();
    let read = JsonDecoder::try_new(&schema, BadRecords::Fail)
        .unwrap()
        .decode("dead.json", &text)
        .unwrap();
    let rows = concat_batches(&read.batches[0].schema(), &read.batches).unwrap();
    let back: Vec<BadRecord> = (0..rows.num_rows())
        .map(|i| BadRecord {
            file: rows.column(0).as_string::<i32>().value(i).to_string(),
            line: rows.column(1).as_primitive::<Int64Type>().value(i) as u64,
            reason: rows.column(2).as_string::<i32>().value(i).to_string(),
            raw: rows.column(3).as_string::<i32>().value(i).to_string(),
        })
        .collect();
    assert_eq!(back, decoded.dead_letters);
}

/// A batch with nested columns, which JSON holds and CSV does not.
#[test]
fn nested_columns_round_trip() {
    let text = b"{\"l\":[1,2],\"s\":{\"k\":\"v\"}}\n{\"l\":[]}\n";
    let schema = infer_schema("f.json", text, 10).unwrap();
    let decoded = JsonDecoder::try_new(&schema, BadRecords::Fail)
        .unwrap()
        .decode("f.json", text)
        .unwrap();
    let batch: &RecordBatch = &decoded.batches[0];
    let mut out = Vec::new();
    JsonEncoder::new().encode(batch, &mut out).unwrap();
    assert_eq!(out, text);
}
