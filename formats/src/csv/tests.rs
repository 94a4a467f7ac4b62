//! Tests of the CSV decoder, encoder and inference together.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::util::pretty::pretty_format_batches;

use super::{CsvDecoder, CsvEncoder, CsvOptions, infer_schema};
use crate::Error;
use crate::bad_records::{BadRecord, BadRecords, Decoded};
use crate::schema_string::parse_schema;
use crate::test_batches::every_type;

fn with_null(null: &str) -> CsvOptions {
    CsvOptions {
        null_string: Some(null.to_string()),
        ..CsvOptions::default()
    }
}

fn encode(batches: &[RecordBatch], options: &CsvOptions) -> Vec<u8> {
    let mut encoder = CsvEncoder::new(options.clone());
    let mut out = Vec::new();
    for batch in batches {
        encoder.encode(batch, &mut out).unwrap();
    }
    out
}

fn decode_with(
    text: &[u8],
    schema: &str,
    options: CsvOptions,
    policy: BadRecords,
) -> crate::Result<Decoded> {
    CsvDecoder::try_new(&parse_schema(schema).unwrap(), options, policy)
        .unwrap()
        .with_batch_size(2)
        .decode("data/f.csv", text)
}

fn table(decoded: &Decoded) -> String {
    pretty_format_batches(&decoded.batches).unwrap().to_string()
}

fn concat(decoded: &Decoded, schema: &Arc<Schema>) -> RecordBatch {
    concat_batches(schema, &decoded.batches).unwrap()
}

#[test]
fn every_type_round_trips_with_a_null_string() {
    let batch = every_type();
    for options in [
        with_null("\\N"),
        CsvOptions {
            delimiter: b';',
            quote: b'\'',
            ..with_null("NULL")
        },
        CsvOptions {
            delimiter: b'\t',
            header: false,
            ..with_null("null")
        },
    ] {
        // Two batches: the header is written once.
        let text = encode(&[batch.slice(0, 1), batch.slice(1, 3)], &options);
        let decoder =
            CsvDecoder::try_new(&batch.schema(), options.clone(), BadRecords::Fail).unwrap();
        let decoded = decoder.decode("f.csv", &text).unwrap();
        assert_eq!(decoded.bad_records(), 0);
        assert_eq!(concat(&decoded, &batch.schema()), batch, "{options:?}");
        if !options.header {
            assert!(text.starts_with(b"-128\t"));
        }
    }
}

#[test]
fn without_a_null_string_string_nulls_come_back_empty() {
    let batch = every_type();
    let options = CsvOptions::default();
    let text = encode(std::slice::from_ref(&batch), &options);
    let decoded = CsvDecoder::try_new(&batch.schema(), options, BadRecords::Fail)
        .unwrap()
        .decode("f.csv", &text)
        .unwrap();
    let utf8 = batch.schema().index_of("utf8").unwrap();
    let mut columns = batch.columns().to_vec();
    columns[utf8] = Arc::new(StringArray::from(vec![
        "a,b \"quoted\"",
        "two\nlines\r\nand ünïcödé",
        "",
        "",
    ]));
    let expected = RecordBatch::try_new(batch.schema(), columns).unwrap();
    assert_eq!(concat(&decoded, &batch.schema()), expected);
}

#[test]
fn header_is_written_once_per_encoder() {
    let batch = every_type();
    let text = String::from_utf8(encode(
        &[batch.slice(0, 2), batch.slice(2, 2)],
        &CsvOptions::default(),
    ))
    .unwrap();
    assert_eq!(text.matches("i8,i16,i32").count(), 1);
    assert!(text.starts_with("i8,i16,i32,i64,u8"));
}

#[test]
fn reads_quotes_line_breaks_crlf_blank_lines_and_comments() {
    let text = b"# exported\r\nid,name\r\n\r\n1,\"a, \"\"b\"\"\"\r\n2,\"multi\nline\"\r\n# note\n\n3,plain";
    let options = CsvOptions {
        comment: Some(b'#'),
        ..CsvOptions::default()
    };
    let decoded = decode_with(text, "id BIGINT, name VARCHAR", options, BadRecords::Fail).unwrap();
    assert_eq!(
        table(&decoded),
        "+----+--------+\n\
         | id | name   |\n\
         +----+--------+\n\
         | 1  | a, \"b\" |\n\
         | 2  | multi  |\n\
         |    | line   |\n\
         | 3  | plain  |\n\
         +----+--------+"
    );
    assert!(decoded.batches.iter().all(|b| b.num_rows() <= 2));
}

#[test]
fn reads_escapes_and_decimals_dates_timestamps() {
    let text = b"p,d,ts,tz,ok\n\"12.5\",2024-02-29,2024-02-29 10:11:12.5,2024-02-29T10:11:12+02:00,TRUE\n-0.01,1970-01-01,1970-01-01T00:00:00,1970-01-01T00:00:00Z,false\n";
    let decoded = decode_with(
        text,
        "p DECIMAL(10,2), d DATE, ts TIMESTAMP, tz TIMESTAMPTZ, ok BOOLEAN",
        CsvOptions::default(),
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

    let escaped = b"a\n\"x\\\"y\"\n";
    let options = CsvOptions {
        escape: Some(b'\\'),
        ..CsvOptions::default()
    };
    let decoded = decode_with(escaped, "a VARCHAR", options, BadRecords::Fail).unwrap();
    assert_eq!(
        decoded.batches[0].column(0).as_string::<i32>().value(0),
        "x\"y"
    );
}

#[test]
fn null_string_applies_to_every_column_when_set() {
    let text = b"a,s\nNA,NA\n,x\n";
    let decoded = decode_with(text, "a INT, s VARCHAR", with_null("NA"), BadRecords::Drop).unwrap();
    let batch = &decoded.batches[0];
    assert!(batch.column(0).is_null(0) && batch.column(1).is_null(0));
    assert_eq!(batch.num_rows(), 1);
    // An empty number is not null when a null string is set.
    assert_eq!(decoded.dropped, 1);

    // Without a null string, strings are never null.
    let text = b"a,s\n1,NA\n,\n";
    let decoded = decode_with(
        text,
        "a INT, s VARCHAR",
        CsvOptions::default(),
        BadRecords::Fail,
    )
    .unwrap();
    let batch = &decoded.batches[0];
    let strings = batch.column(1).as_string::<i32>();
    assert_eq!(
        (strings.value(0), strings.value(1), strings.null_count()),
        ("NA", "", 0)
    );
    assert!(batch.column(0).is_valid(0) && batch.column(0).is_null(1));

    // An empty null string makes empty strings null too.
    let decoded = decode_with(
        text,
        "a VARCHAR, s VARCHAR",
        with_null(""),
        BadRecords::Fail,
    )
    .unwrap();
    let batch = &decoded.batches[0];
    assert_eq!(
        (batch.column(0).null_count(), batch.column(1).null_count()),
        (1, 1)
    );
}

/// A file with one bad record of each kind between good ones, and where
/// each bad record starts.
const BAD: &[u8] = b"id,name,day\n\
    1,\"one\nwith a line break\",2024-01-01\n\
    2,two\n\
    3,three,2024-01-03\n\
    x4,four,2024-01-04\n\
    \n\
    5,\"five, with comma\",2024-01-05,extra\n\
    6,six,2024-13-01\n\
    7,\"seven\n\nlines\",2024-01-07\n\
    8,\xffeight,2024-01-08\n\
    9,nine,2024-01-09";

const BAD_SCHEMA: &str = "id BIGINT, name VARCHAR, day DATE";

fn bad_records() -> Vec<BadRecord> {
    let bad = |line: u64, raw: &str, reason: &str| BadRecord {
        file: "data/f.csv".to_string(),
        line,
        raw: raw.to_string(),
        reason: reason.to_string(),
    };
    vec![
        bad(4, "2,two", "expected 3 fields, found 2"),
        bad(
            6,
            "x4,four,2024-01-04",
            "column 'id': cannot parse 'x4' as Int64",
        ),
        bad(
            8,
            "5,\"five, with comma\",2024-01-05,extra",
            "expected 3 fields, found 4",
        ),
        bad(
            9,
            "6,six,2024-13-01",
            "column 'day': cannot parse '2024-13-01' as Date32",
        ),
        bad(
            13,
            "8,\u{fffd}eight,2024-01-08",
            "column 'name': invalid UTF-8",
        ),
    ]
}

#[test]
fn bad_records_fail_with_file_and_line() {
    let err = decode_with(BAD, BAD_SCHEMA, CsvOptions::default(), BadRecords::Fail).unwrap_err();
    assert!(matches!(err, Error::BadRecord { line: 4, .. }));
    assert_eq!(
        err.to_string(),
        "data/f.csv, line 4: expected 3 fields, found 2"
    );
    let engine: weir_engine::Error = err.into();
    assert!(!engine.is_retryable());
}

#[test]
fn bad_records_each_fail_at_their_line() {
    let lines: Vec<&[u8]> = BAD.split(|b| *b == b'\n').collect();
    for bad in bad_records() {
        // The header, the bad record alone, then a good one.
        let start = bad.line as usize - 1;
        let end = start + bad.raw.matches('\n').count() + 1;
        let mut text = b"id,name,day\n".to_vec();
        text.extend_from_slice(&lines[start..end].join(&b'\n'));
        text.extend_from_slice(b"\n10,ten,2024-01-10\n");
        let err = decode_with(&text, BAD_SCHEMA, CsvOptions::default(), BadRecords::Fail)
            .unwrap_err()
            .to_string();
        assert_eq!(err, format!("data/f.csv, line 2: {}", bad.reason));
    }
}

#[test]
fn bad_records_are_dropped_and_counted() {
    for batch_size in [1, 2, 3, 8192] {
        let decoded = CsvDecoder::try_new(
            &parse_schema(BAD_SCHEMA).unwrap(),
            CsvOptions::default(),
            BadRecords::Drop,
        )
        .unwrap()
        .with_batch_size(batch_size)
        .decode("data/f.csv", BAD)
        .unwrap();
        assert_eq!(decoded.dropped, 5);
        assert!(decoded.dead_letters.is_empty());
        let ids = concat(&decoded, &decoded.batches[0].schema());
        let ids: Vec<i64> = ids
            .column(0)
            .as_primitive::<arrow::datatypes::Int64Type>()
            .values()
            .to_vec();
        assert_eq!(ids, vec![1, 3, 7, 9], "batch size {batch_size}");
        assert!(decoded.batches.iter().all(|b| b.num_rows() <= batch_size));
    }
}

#[test]
fn bad_records_are_dead_lettered_with_raw_text_line_and_reason() {
    let decoded = decode_with(
        BAD,
        BAD_SCHEMA,
        CsvOptions::default(),
        BadRecords::DeadLetter,
    )
    .unwrap();
    assert_eq!(decoded.dropped, 0);
    assert_eq!(decoded.dead_letters, bad_records());
    assert_eq!(
        table(&decoded),
        "+----+-------------------+------------+\n\
         | id | name              | day        |\n\
         +----+-------------------+------------+\n\
         | 1  | one               | 2024-01-01 |\n\
         |    | with a line break |            |\n\
         | 3  | three             | 2024-01-03 |\n\
         | 7  | seven             | 2024-01-07 |\n\
         |    |                   |            |\n\
         |    | lines             |            |\n\
         | 9  | nine              | 2024-01-09 |\n\
         +----+-------------------+------------+"
    );
}

#[test]
fn a_bad_multi_line_record_is_reported_at_its_first_line() {
    let text = b"a,b\r\n\"x\r\ny\",1\r\n\"p\nq\",oops\r\n";
    let decoded = decode_with(
        text,
        "a VARCHAR, b INT",
        CsvOptions::default(),
        BadRecords::DeadLetter,
    )
    .unwrap();
    assert_eq!(decoded.rows(), 1);
    assert_eq!(decoded.dead_letters[0].line, 4);
    assert_eq!(decoded.dead_letters[0].raw, "\"p\nq\",oops");
    assert_eq!(
        decoded.dead_letters[0].reason,
        "column 'b': cannot parse 'oops' as Int32"
    );
}

#[test]
fn projection_parses_only_the_projected_columns() {
    let decoder = CsvDecoder::try_new(
        &parse_schema(BAD_SCHEMA).unwrap(),
        CsvOptions::default(),
        BadRecords::DeadLetter,
    )
    .unwrap()
    .with_projection(vec![1])
    .unwrap();
    assert_eq!(decoder.schema().fields().len(), 1);
    let decoded = decoder.decode("data/f.csv", BAD).unwrap();
    // Bad ids and dates do not matter; field counts and UTF-8 still do.
    let reasons: Vec<&str> = decoded
        .dead_letters
        .iter()
        .map(|b| b.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "expected 3 fields, found 2",
            "expected 3 fields, found 4",
            "column 'name': invalid UTF-8"
        ]
    );
    assert_eq!(decoded.rows(), 6);
    assert!(
        CsvDecoder::try_new(
            &parse_schema(BAD_SCHEMA).unwrap(),
            CsvOptions::default(),
            BadRecords::Fail
        )
        .unwrap()
        .with_projection(vec![3])
        .is_err()
    );
}

#[test]
fn header_only_and_empty_files_have_no_rows() {
    for text in [&b""[..], b"a,b\n", b"a,b", b"a,b\n\n\n"] {
        let decoded = decode_with(
            text,
            "a INT, b INT",
            CsvOptions::default(),
            BadRecords::Fail,
        )
        .unwrap();
        assert_eq!(decoded.rows(), 0);
    }
}

#[test]
fn unsupported_types_and_time_zones_are_refused() {
    let list = Schema::new(vec![Field::new_list(
        "l",
        Field::new("item", DataType::Int64, true),
        true,
    )]);
    let err = CsvDecoder::try_new(&list, CsvOptions::default(), BadRecords::Fail).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("option 'schema': column 'l': CSV cannot hold type List"),
        "{err}"
    );
    let tz = Schema::new(vec![Field::new(
        "t",
        DataType::Timestamp(TimeUnit::Microsecond, Some("Nowhere/Land".into())),
        true,
    )]);
    assert!(CsvDecoder::try_new(&tz, CsvOptions::default(), BadRecords::Fail).is_err());
}

#[test]
fn infers_the_narrowest_types() {
    let text = b"i,f,b,d,ts,s,empty,mixed,big\n\
        1,1,true,2024-01-01,2024-01-01 10:00:00,x,,1,1\n\
        -2,2.5,FALSE,2024-12-31,2024-01-01T10:00:00.123456,y,,2024-01-01,99999999999999999999\n\
        ,,,,2024-01-02,,,,\n";
    let schema = infer_schema("f.csv", text, &CsvOptions::default(), 1000).unwrap();
    let types: Vec<(String, DataType)> = schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), f.data_type().clone()))
        .collect();
    let expected = [
        ("i", DataType::Int64),
        ("f", DataType::Float64),
        ("b", DataType::Boolean),
        ("d", DataType::Date32),
        ("ts", DataType::Timestamp(TimeUnit::Microsecond, None)),
        ("s", DataType::Utf8),
        ("empty", DataType::Utf8),
        ("mixed", DataType::Utf8),
        ("big", DataType::Float64),
    ];
    let expected: Vec<(String, DataType)> = expected
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    assert_eq!(types, expected);
    assert!(schema.fields().iter().all(|f| f.is_nullable()));

    // The inferred schema decodes the file.
    let decoded = CsvDecoder::try_new(&schema, CsvOptions::default(), BadRecords::Fail)
        .unwrap()
        .decode("f.csv", text)
        .unwrap();
    assert_eq!(decoded.rows(), 3);
}

#[test]
fn inference_samples_only_the_first_records() {
    let text = b"a\n1\n2\nthree\n";
    let sampled = |n| {
        infer_schema("f.csv", text, &CsvOptions::default(), n)
            .unwrap()
            .field(0)
            .data_type()
            .clone()
    };
    assert_eq!(sampled(2), DataType::Int64);
    assert_eq!(sampled(3), DataType::Utf8);
    assert_eq!(sampled(0), DataType::Utf8);
}

#[test]
fn inference_names_columns() {
    let options = CsvOptions {
        header: false,
        ..CsvOptions::default()
    };
    let schema = infer_schema("f.csv", b"1,x\n2,y\n", &options, 10).unwrap();
    assert_eq!(schema.field(0).name(), "column_1");
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(1).name(), "column_2");

    let schema = infer_schema("f.csv", b"a,,a,a\n", &CsvOptions::default(), 10).unwrap();
    let names: Vec<&String> = schema.fields().iter().map(|f| f.name()).collect();
    assert_eq!(names, vec!["a", "column_2", "a_2", "a_3"]);

    let err = infer_schema("f.csv", b"\n\n", &CsvOptions::default(), 10).unwrap_err();
    assert_eq!(err.to_string(), "f.csv: no records to infer a schema from");
}

#[test]
fn inference_follows_the_null_string() {
    let text = b"a,b\n\\N,\n1,2\n";
    let schema = infer_schema("f.csv", text, &with_null("\\N"), 10).unwrap();
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    // An empty value is not null with a null string set.
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
}
