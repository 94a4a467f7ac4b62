//! Batches the format tests round-trip.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{Field, Schema};

/// Four rows of every scalar type the text formats hold, each column with a
/// null, strings with delimiters, quotes and line breaks.
pub(crate) fn every_type() -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "i8",
            Arc::new(Int8Array::from(vec![
                Some(i8::MIN),
                None,
                Some(0),
                Some(i8::MAX),
            ])),
        ),
        (
            "i16",
            Arc::new(Int16Array::from(vec![
                Some(i16::MIN),
                Some(-1),
                None,
                Some(i16::MAX),
            ])),
        ),
        (
            "i32",
            Arc::new(Int32Array::from(vec![
                None,
                Some(i32::MIN),
                Some(7),
                Some(i32::MAX),
            ])),
        ),
        (
            "i64",
            Arc::new(Int64Array::from(vec![
                Some(i64::MIN),
                Some(42),
                Some(i64::MAX),
                None,
            ])),
        ),
        (
            "u8",
            Arc::new(UInt8Array::from(vec![
                Some(0),
                None,
                Some(1),
                Some(u8::MAX),
            ])),
        ),
        (
            "u16",
            Arc::new(UInt16Array::from(vec![
                Some(0),
                Some(9),
                None,
                Some(u16::MAX),
            ])),
        ),
        (
            "u32",
            Arc::new(UInt32Array::from(vec![
                None,
                Some(0),
                Some(3),
                Some(u32::MAX),
            ])),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from(vec![
                Some(0),
                Some(u64::MAX),
                Some(5),
                None,
            ])),
        ),
        (
            "f32",
            Arc::new(Float32Array::from(vec![
                Some(1.5),
                Some(-0.1),
                None,
                Some(f32::MAX),
            ])),
        ),
        (
            "f64",
            Arc::new(Float64Array::from(vec![
                Some(0.1 + 0.2),
                None,
                Some(-1e300),
                Some(f64::MIN_POSITIVE),
            ])),
        ),
        (
            "bool",
            Arc::new(BooleanArray::from(vec![
                Some(true),
                Some(false),
                None,
                Some(true),
            ])),
        ),
        (
            "utf8",
            Arc::new(StringArray::from(vec![
                Some("a,b \"quoted\""),
                Some("two\nlines\r\nand ünïcödé"),
                None,
                Some(""),
            ])),
        ),
        (
            "date",
            Arc::new(Date32Array::from(vec![
                Some(19_000),
                Some(-1),
                None,
                Some(0),
            ])),
        ),
        (
            "ts_s",
            Arc::new(TimestampSecondArray::from(vec![
                Some(1_700_000_000),
                None,
                Some(-86_400),
                Some(0),
            ])),
        ),
        (
            "ts_ms_utc",
            Arc::new(
                TimestampMillisecondArray::from(vec![
                    Some(1_700_000_000_123),
                    None,
                    Some(0),
                    Some(-1),
                ])
                .with_timezone("+00:00"),
            ),
        ),
        (
            "ts_us",
            Arc::new(TimestampMicrosecondArray::from(vec![
                Some(1_700_000_000_123_456),
                Some(-1_000_001),
                None,
                Some(0),
            ])),
        ),
        (
            "ts_us_utc",
            Arc::new(
                TimestampMicrosecondArray::from(vec![
                    None,
                    Some(1_700_000_000_000_001),
                    Some(0),
                    Some(-5),
                ])
                .with_timezone("+00:00"),
            ),
        ),
        (
            "ts_ns_ist",
            Arc::new(
                TimestampNanosecondArray::from(vec![
                    Some(1_700_000_000_123_456_789),
                    Some(0),
                    None,
                    Some(-1),
                ])
                .with_timezone("+05:30"),
            ),
        ),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(1_234_567_890), Some(-1), Some(0), None])
                    .with_precision_and_scale(10, 2)
                    .expect("valid decimal type"),
            ),
        ),
        (
            "dec38",
            Arc::new(
                Decimal128Array::from(vec![
                    None,
                    Some(i128::from(i64::MAX) * 1_000),
                    Some(-7),
                    Some(1),
                ])
                .with_precision_and_scale(38, 10)
                .expect("valid decimal type"),
            ),
        ),
    ];
    let fields: Vec<Field> = columns
        .iter()
        .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns.into_iter().map(|(_, array)| array).collect(),
    )
    .expect("columns match the schema")
}

/// What a decoder property test feeds in: `records` (a good record, how it
/// is corrupted if at all, blank lines before it) rendered as text after
/// `header` (none when empty).
pub(crate) struct Assembled<'a, G> {
    /// The input text.
    pub text: String,
    /// Line number and raw text of every corrupted record.
    pub bad: Vec<(u64, String)>,
    /// The records left good, in order.
    pub good: Vec<&'a G>,
}

/// Renders `records` with `render`, lines ending in `newline`.
pub(crate) fn assemble<'a, G, C: Copy>(
    header: &str,
    records: &'a [(G, Option<C>, usize)],
    newline: &str,
    render: impl Fn(&G, Option<C>) -> String,
) -> Assembled<'a, G> {
    let mut text = String::new();
    if !header.is_empty() {
        text.push_str(header);
        text.push_str(newline);
    }
    let mut bad = Vec::new();
    for (good, corruption, blank_lines) in records {
        text.push_str(&newline.repeat(*blank_lines));
        let record = render(good, *corruption);
        if corruption.is_some() {
            bad.push((text.matches('\n').count() as u64 + 1, record.clone()));
        }
        text.push_str(&record);
        text.push_str(newline);
    }
    let good = records
        .iter()
        .filter(|(_, corruption, _)| corruption.is_none())
        .map(|(good, _, _)| good)
        .collect();
    Assembled { text, bad, good }
}
