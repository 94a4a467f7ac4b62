//! Property: whatever mix of good and bad records a file holds, the decoder
//! keeps exactly the good ones, in order, and accounts for every bad one at
//! its line.

use std::sync::Arc;

use arrow::array::{
    BooleanArray, Date32Array, Decimal128Array, Int64Array, RecordBatch, StringArray,
};
use arrow::compute::concat_batches;
use arrow::compute::kernels::cast_utils::Parser;
use arrow::datatypes::Date32Type;
use proptest::prelude::*;

use super::{CsvDecoder, CsvOptions};
use crate::bad_records::BadRecords;
use crate::schema_string::parse_schema;
use crate::test_batches::{Assembled, assemble};

const SCHEMA: &str = "id BIGINT, name VARCHAR, price DECIMAL(10,2), day DATE, ok BOOLEAN";

/// A good record's values.
#[derive(Debug, Clone)]
struct Good {
    id: Option<i64>,
    name: String,
    cents: Option<i64>,
    day: Option<(u32, u32, u32)>,
    ok: Option<bool>,
}

/// How a record is made bad.
#[derive(Debug, Clone, Copy)]
enum Corruption {
    MissingField,
    ExtraField,
    BadInt,
    BadDecimal,
    BadDate,
    BadBool,
}

impl Good {
    fn fields(&self) -> Vec<String> {
        let price = self.cents.map(|c| {
            let sign = if c < 0 { "-" } else { "" };
            format!("{sign}{}.{:02}", c.abs() / 100, c.abs() % 100)
        });
        vec![
            self.id.map(|i| i.to_string()).unwrap_or_default(),
            format!("\"{}\"", self.name.replace('"', "\"\"")),
            price.unwrap_or_default(),
            self.day
                .map(|(y, m, d)| format!("{y:04}-{m:02}-{d:02}"))
                .unwrap_or_default(),
            self.ok.map(|b| b.to_string()).unwrap_or_default(),
        ]
    }

    fn text(&self, corruption: Option<Corruption>) -> String {
        let mut fields = self.fields();
        match corruption {
            None => {}
            Some(Corruption::MissingField) => {
                fields.pop();
            }
            Some(Corruption::ExtraField) => fields.push("extra".to_string()),
            Some(Corruption::BadInt) => fields[0] = "12x".to_string(),
            Some(Corruption::BadDecimal) => fields[2] = "1.2.3".to_string(),
            Some(Corruption::BadDate) => fields[3] = "2023-02-30".to_string(),
            Some(Corruption::BadBool) => fields[4] = "maybe".to_string(),
        }
        fields.join(",")
    }
}

fn good() -> impl Strategy<Value = Good> {
    (
        any::<Option<i64>>(),
        "[a-z,\" \n\r]{0,8}",
        proptest::option::of(-9_999_999_999i64..=9_999_999_999),
        proptest::option::of((1900u32..2100, 1u32..=12, 1u32..=28)),
        any::<Option<bool>>(),
    )
        .prop_map(|(id, name, cents, day, ok)| Good {
            id,
            name,
            cents,
            day,
            ok,
        })
}

fn corruption() -> impl Strategy<Value = Option<Corruption>> {
    prop_oneof![
        3 => Just(None),
        1 => prop_oneof![
            Just(Corruption::MissingField),
            Just(Corruption::ExtraField),
            Just(Corruption::BadInt),
            Just(Corruption::BadDecimal),
            Just(Corruption::BadDate),
            Just(Corruption::BadBool),
        ]
        .prop_map(Some),
    ]
}

/// The batch of the good records.
fn expected(records: &[&Good]) -> RecordBatch {
    let decoder = CsvDecoder::try_new(
        &parse_schema(SCHEMA).unwrap(),
        CsvOptions::default(),
        BadRecords::Fail,
    )
    .unwrap();
    let day = |g: &Good| {
        g.day
            .and_then(|(y, m, d)| Date32Type::parse(&format!("{y:04}-{m:02}-{d:02}")))
    };
    RecordBatch::try_new(
        decoder.schema(),
        vec![
            Arc::new(Int64Array::from_iter(records.iter().map(|g| g.id))),
            Arc::new(StringArray::from_iter_values(
                records.iter().map(|g| &g.name),
            )),
            Arc::new(
                Decimal128Array::from_iter(records.iter().map(|g| g.cents.map(i128::from)))
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
            Arc::new(Date32Array::from_iter(records.iter().map(|g| day(g)))),
            Arc::new(BooleanArray::from_iter(records.iter().map(|g| g.ok))),
        ],
    )
    .unwrap()
}

proptest! {
    #[test]
    fn good_rows_are_kept_and_bad_ones_accounted_for(
        records in proptest::collection::vec((good(), corruption(), 0usize..3), 0..40),
        crlf in any::<bool>(),
        batch_size in 1usize..8,
    ) {
        let newline = if crlf { "\r\n" } else { "\n" };
        let Assembled { text, bad, good: good_records } =
            assemble("id,name,price,day,ok", &records, newline, Good::text);
        let expected = expected(&good_records);

        for policy in [BadRecords::Drop, BadRecords::DeadLetter] {
            let decoder = CsvDecoder::try_new(&parse_schema(SCHEMA).unwrap(), CsvOptions::default(), policy)
                .unwrap()
                .with_batch_size(batch_size);
            let decoded = decoder.decode("f.csv", text.as_bytes()).unwrap();
            prop_assert_eq!(decoded.rows() as u64 + decoded.bad_records(), records.len() as u64);
            prop_assert!(decoded.batches.iter().all(|b| b.num_rows() <= batch_size));
            let rows = concat_batches(&decoder.schema(), &decoded.batches).unwrap();
            prop_assert_eq!(&rows, &expected);
            if policy == BadRecords::DeadLetter {
                let dead: Vec<(u64, String)> =
                    decoded.dead_letters.iter().map(|b| (b.line, b.raw.clone())).collect();
                prop_assert_eq!(&dead, &bad);
            } else {
                prop_assert_eq!(decoded.dropped, bad.len() as u64);
            }
        }
    }
}
