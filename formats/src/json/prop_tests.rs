//! Property: whatever mix of good and bad lines a file holds, the decoder
//! keeps exactly the good ones, in order, and accounts for every bad one at
//! its line.

use std::sync::Arc;

use arrow::array::{BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::concat_batches;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::JsonDecoder;
use crate::bad_records::BadRecords;
use crate::schema_string::parse_schema;
use crate::test_batches::{Assembled, assemble};

const SCHEMA: &str = "id BIGINT, name VARCHAR, score DOUBLE, ok BOOLEAN";

/// A good line's values, and how it spells them.
#[derive(Debug, Clone)]
struct Good {
    id: Option<i64>,
    name: Option<String>,
    score: Option<f64>,
    ok: Option<bool>,
    /// Whether nulls are written as `null` (else left out).
    explicit_nulls: bool,
    /// Whether the line has a field the schema does not.
    extra: bool,
}

/// How a line is made bad.
#[derive(Debug, Clone, Copy)]
enum Corruption {
    /// The line cut short (`cut` per mille of its length).
    Truncated(u16),
    /// A string where the id is expected.
    StringId,
    /// A number where the flag is expected.
    NumberFlag,
    /// An array, not an object.
    Array,
    /// A scalar, not an object.
    Scalar,
    /// Not JSON at all.
    Garbage,
}

impl Good {
    fn object(&self) -> Map<String, Value> {
        let mut object = Map::new();
        let mut put = |key: &str, value: Value| {
            if !value.is_null() || self.explicit_nulls {
                object.insert(key.to_string(), value);
            }
        };
        put("id", json!(self.id));
        put("name", json!(self.name));
        put("score", json!(self.score));
        put("ok", json!(self.ok));
        if self.extra {
            object.insert("extra".to_string(), json!({"nested": [1, "two"]}));
        }
        object
    }

    fn text(&self, corruption: Option<Corruption>) -> String {
        let mut object = self.object();
        match corruption {
            Some(Corruption::StringId) => {
                object.insert("id".to_string(), json!("not a number"));
            }
            Some(Corruption::NumberFlag) => {
                object.insert("ok".to_string(), json!(3));
            }
            _ => {}
        }
        let line = Value::Object(object).to_string();
        match corruption {
            None | Some(Corruption::StringId | Corruption::NumberFlag) => line,
            Some(Corruption::Truncated(per_mille)) => {
                // Cut at a character boundary, keeping at least one.
                let cut = (line.len() * usize::from(per_mille) / 1000).max(1);
                let cut = (cut..line.len())
                    .find(|i| line.is_char_boundary(*i))
                    .unwrap_or(1);
                line[..cut].to_string()
            }
            Some(Corruption::Array) => format!("[{line}]"),
            Some(Corruption::Scalar) => "17".to_string(),
            Some(Corruption::Garbage) => "id=1, name=x".to_string(),
        }
    }
}

fn good() -> impl Strategy<Value = Good> {
    (
        any::<Option<i64>>(),
        proptest::option::of("[a-z\"\\\\{}\n\t é]{0,8}"),
        proptest::option::of(-1e12f64..1e12),
        any::<Option<bool>>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(id, name, score, ok, explicit_nulls, extra)| Good {
            id,
            name,
            score,
            ok,
            explicit_nulls,
            extra,
        })
}

fn corruption() -> impl Strategy<Value = Option<Corruption>> {
    prop_oneof![
        3 => Just(None),
        1 => prop_oneof![
            (0u16..1000).prop_map(Corruption::Truncated),
            Just(Corruption::StringId),
            Just(Corruption::NumberFlag),
            Just(Corruption::Array),
            Just(Corruption::Scalar),
            Just(Corruption::Garbage),
        ]
        .prop_map(Some),
    ]
}

/// The batch of the good lines.
fn expected(records: &[&Good], decoder: &JsonDecoder) -> RecordBatch {
    RecordBatch::try_new(
        decoder.schema(),
        vec![
            Arc::new(Int64Array::from_iter(records.iter().map(|g| g.id))),
            Arc::new(StringArray::from_iter(
                records.iter().map(|g| g.name.clone()),
            )),
            Arc::new(Float64Array::from_iter(records.iter().map(|g| g.score))),
            Arc::new(BooleanArray::from_iter(records.iter().map(|g| g.ok))),
        ],
    )
    .unwrap()
}

proptest! {
    #[test]
    fn good_lines_are_kept_and_bad_ones_accounted_for(
        records in proptest::collection::vec((good(), corruption(), 0usize..3), 0..40),
        crlf in any::<bool>(),
        batch_size in 1usize..8,
    ) {
        let newline = if crlf { "\r\n" } else { "\n" };
        let Assembled { text, bad, good: good_records } =
            assemble("", &records, newline, Good::text);

        for policy in [BadRecords::Drop, BadRecords::DeadLetter] {
            let decoder = JsonDecoder::try_new(&parse_schema(SCHEMA).unwrap(), policy)
                .unwrap()
                .with_batch_size(batch_size);
            let decoded = decoder.decode("f.json", text.as_bytes()).unwrap();
            prop_assert_eq!(decoded.rows() as u64 + decoded.bad_records(), records.len() as u64);
            prop_assert!(decoded.batches.iter().all(|b| b.num_rows() <= batch_size));
            let rows = concat_batches(&decoder.schema(), &decoded.batches).unwrap();
            prop_assert_eq!(&rows, &expected(&good_records, &decoder));
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
