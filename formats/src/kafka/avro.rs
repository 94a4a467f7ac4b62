//! The `avro` format of message keys and values: one Avro datum per
//! message, binary-encoded (no container file, no schema-registry header),
//! with the record schema given in `avro.schema` (`key.avro.schema`,
//! `value.avro.schema`). Columns are the record's fields of the same names;
//! a field may be a union with `null`.
//!
//! Types: BOOLEAN `boolean`, INT `int`, BIGINT `long`, FLOAT `float`,
//! DOUBLE `double`, STRING `string`, BYTES `bytes`, DATE `int` with the
//! `date` logical type, TIMESTAMP(3) and TIMESTAMP(6) `long` with
//! `timestamp-millis` / `timestamp-micros`.

use std::sync::Arc;

use apache_avro::Schema as AvroSchema;
use apache_avro::types::Value;
use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BooleanBuilder, Date32Builder, Float32Builder,
    Float64Builder, Int32Builder, Int64Builder, RecordBatch, StringBuilder,
    TimestampMicrosecondBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{
    DataType, Date32Type, Float32Type, Float64Type, Int32Type, Int64Type, Schema, SchemaRef,
    TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
};
use weir_engine::registry::ConnectorOptions;

use super::format::Rows;
use crate::{Error, Result};

/// The (null, value) branches of a union with null.
type NullBranches = Option<(u32, u32)>;

/// Avro datums of one record schema.
#[derive(Debug, Clone)]
pub struct AvroCodec {
    schema: AvroSchema,
    /// For each column, its field's index in the record and its type there
    /// (unions with null unwrapped) and the union's branches, if any.
    fields: Vec<(usize, AvroSchema, NullBranches)>,
}

impl AvroCodec {
    /// The codec of `{prefix}avro.schema` for `columns`.
    ///
    /// # Errors
    /// [`Error::Option`] when the schema is missing or invalid, not a
    /// record, lacks a column or gives it a type the column cannot hold.
    pub fn new(columns: &Schema, options: &ConnectorOptions, prefix: &str) -> Result<Self> {
        let option = format!("{prefix}avro.schema");
        let bad = |message: String| Error::Option {
            option: option.clone(),
            message,
        };
        let text = options.get(&option).ok_or_else(|| {
            bad("is required with the 'avro' format: the record schema, as JSON".to_string())
        })?;
        let schema = AvroSchema::parse_str(text).map_err(|e| bad(e.to_string()))?;
        let AvroSchema::Record(record) = &schema else {
            return Err(bad("must be a record schema".to_string()));
        };
        let fields = columns
            .fields()
            .iter()
            .map(|column| {
                let index = *record
                    .lookup
                    .get(column.name())
                    .ok_or_else(|| bad(format!("the record has no field '{}'", column.name())))?;
                let (inner, null) = without_null(&record.fields[index].schema);
                if !holds(&inner, column.data_type()) {
                    return Err(bad(format!(
                        "field '{}' is {inner:?}, which a {} column cannot hold",
                        column.name(),
                        column.data_type()
                    )));
                }
                Ok((index, inner, null))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { schema, fields })
    }

    /// Decodes each message of `payloads` into one row of `schema`; a null
    /// payload (a tombstone) gives no row.
    ///
    /// # Errors
    /// When arrow cannot assemble the rows.
    pub fn decode(&self, schema: &SchemaRef, payloads: &arrow::array::BinaryArray) -> Result<Rows> {
        let mut records = Vec::new();
        let mut messages = Vec::new();
        let mut bad = Vec::new();
        for (message, payload) in (0..).zip(payloads.iter()) {
            let Some(mut payload) = payload else { continue };
            match apache_avro::from_avro_datum(&self.schema, &mut payload, None) {
                Ok(_) if !payload.is_empty() => {
                    bad.push((message, format!("{} bytes after the datum", payload.len())));
                }
                Ok(Value::Record(fields)) => {
                    records.push(fields);
                    messages.push(message);
                }
                Ok(other) => bad.push((message, format!("not a record: {other:?}"))),
                Err(e) => bad.push((message, e.to_string())),
            }
        }
        let columns = self
            .fields
            .iter()
            .zip(schema.fields())
            .map(|((index, _, _), field)| {
                let values = records.iter().map(|r| unwrap_union(&r[*index].1));
                column(field.data_type(), values)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new_with_options(
            Arc::clone(schema),
            columns,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(records.len())),
        )?;
        Ok(Rows {
            batch,
            messages,
            bad,
        })
    }

    /// The datum of each row of `batch` (whose columns are this codec's).
    ///
    /// # Errors
    /// A null in a field that is not a union with null, or a value Avro
    /// refuses.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let AvroSchema::Record(record) = &self.schema else {
            unreachable!("checked when made")
        };
        (0..batch.num_rows())
            .map(|row| {
                // Fields without a column are null, where they may be.
                let mut fields: Vec<(String, Value)> = record
                    .fields
                    .iter()
                    .map(|f| match without_null(&f.schema) {
                        (_, Some((null, _))) => {
                            (f.name.clone(), Value::Union(null, Box::new(Value::Null)))
                        }
                        _ => (f.name.clone(), Value::Null),
                    })
                    .collect();
                for ((index, inner, null), column) in self.fields.iter().zip(batch.columns()) {
                    let name = &record.fields[*index].name;
                    let value = match (column.is_null(row), null) {
                        (true, Some((null_branch, _))) => {
                            Value::Union(*null_branch, Box::new(Value::Null))
                        }
                        (true, None) => {
                            return Err(Error::Kafka {
                                message: format!(
                                    "field '{name}' of the Avro schema cannot be null \
                                     (make it a union with \"null\")"
                                ),
                            });
                        }
                        (false, branch) => {
                            let value = avro_value(column, row, inner);
                            match branch {
                                Some((_, value_branch)) => {
                                    Value::Union(*value_branch, Box::new(value))
                                }
                                None => value,
                            }
                        }
                    };
                    fields[*index].1 = value;
                }
                apache_avro::to_avro_datum(&self.schema, Value::Record(fields))
                    .map(Some)
                    .map_err(|e| Error::Kafka {
                        message: format!("cannot encode a row as Avro: {e}"),
                    })
            })
            .collect()
    }
}

/// `schema` without its `null` branch, and the (null, value) branches of a
/// union with null.
fn without_null(schema: &AvroSchema) -> (AvroSchema, NullBranches) {
    if let AvroSchema::Union(union) = schema {
        let variants = union.variants();
        if variants.len() == 2 {
            let null = variants.iter().position(|v| matches!(v, AvroSchema::Null));
            if let Some(null) = null {
                let value = 1 - null;
                return (variants[value].clone(), Some((null as u32, value as u32)));
            }
        }
    }
    (schema.clone(), None)
}

/// Whether a column of `data_type` holds values of Avro type `schema`.
fn holds(schema: &AvroSchema, data_type: &DataType) -> bool {
    matches!(
        (schema, data_type),
        (AvroSchema::Boolean, DataType::Boolean)
            | (AvroSchema::Int, DataType::Int32)
            | (AvroSchema::Long, DataType::Int64)
            | (AvroSchema::Float, DataType::Float32)
            | (AvroSchema::Double, DataType::Float64)
            | (AvroSchema::String, DataType::Utf8)
            | (AvroSchema::Bytes, DataType::Binary)
            | (AvroSchema::Date, DataType::Date32)
            | (
                AvroSchema::TimestampMillis,
                DataType::Timestamp(TimeUnit::Millisecond, _)
            )
            | (
                AvroSchema::TimestampMicros,
                DataType::Timestamp(TimeUnit::Microsecond, _)
            )
    )
}

fn unwrap_union(value: &Value) -> &Value {
    match value {
        Value::Union(_, inner) => inner,
        other => other,
    }
}

/// A column of `data_type` from decoded values (which [`holds`] checked).
fn column<'a>(data_type: &DataType, values: impl Iterator<Item = &'a Value>) -> Result<ArrayRef> {
    macro_rules! build {
        ($builder:expr, $($pattern:pat => $value:expr),+) => {{
            let mut builder = $builder;
            for value in values {
                match value {
                    $($pattern => builder.append_value($value),)+
                    _ => builder.append_null(),
                }
            }
            Arc::new(builder.finish()) as ArrayRef
        }};
    }
    Ok(match data_type {
        DataType::Boolean => build!(BooleanBuilder::new(), Value::Boolean(v) => *v),
        DataType::Int32 => build!(Int32Builder::new(), Value::Int(v) => *v),
        DataType::Int64 => build!(Int64Builder::new(), Value::Long(v) => *v),
        DataType::Float32 => build!(Float32Builder::new(), Value::Float(v) => *v),
        DataType::Float64 => build!(Float64Builder::new(), Value::Double(v) => *v),
        DataType::Utf8 => build!(StringBuilder::new(), Value::String(v) => v),
        DataType::Binary => build!(BinaryBuilder::new(), Value::Bytes(v) => v),
        DataType::Date32 => build!(Date32Builder::new(), Value::Date(v) => *v),
        DataType::Timestamp(TimeUnit::Millisecond, zone) => build!(
            TimestampMillisecondBuilder::new().with_timezone_opt(zone.clone()),
            Value::TimestampMillis(v) => *v
        ),
        DataType::Timestamp(TimeUnit::Microsecond, zone) => build!(
            TimestampMicrosecondBuilder::new().with_timezone_opt(zone.clone()),
            Value::TimestampMicros(v) => *v
        ),
        other => {
            return Err(Error::Kafka {
                message: format!("the avro format cannot read a {other} column"),
            });
        }
    })
}

/// The Avro value of row `row` of `column` (not null), of type `schema`.
fn avro_value(column: &ArrayRef, row: usize, schema: &AvroSchema) -> Value {
    match schema {
        AvroSchema::Boolean => Value::Boolean(column.as_boolean().value(row)),
        AvroSchema::Int => Value::Int(column.as_primitive::<Int32Type>().value(row)),
        AvroSchema::Long => Value::Long(column.as_primitive::<Int64Type>().value(row)),
        AvroSchema::Float => Value::Float(column.as_primitive::<Float32Type>().value(row)),
        AvroSchema::Double => Value::Double(column.as_primitive::<Float64Type>().value(row)),
        AvroSchema::String => Value::String(column.as_string::<i32>().value(row).to_string()),
        AvroSchema::Bytes => Value::Bytes(column.as_binary::<i32>().value(row).to_vec()),
        AvroSchema::Date => Value::Date(column.as_primitive::<Date32Type>().value(row)),
        AvroSchema::TimestampMillis => {
            Value::TimestampMillis(column.as_primitive::<TimestampMillisecondType>().value(row))
        }
        _ => Value::TimestampMicros(column.as_primitive::<TimestampMicrosecondType>().value(row)),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::Field;

    use super::*;

    const SCHEMA: &str = r#"{"type": "record", "name": "bid", "fields": [
        {"name": "auction", "type": "long"},
        {"name": "bidder", "type": ["null", "string"]},
        {"name": "date_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "unused", "type": ["null", "int"], "default": null}
    ]}"#;

    fn columns() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new(
                "date_time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ),
            Field::new("auction", DataType::Int64, true),
            Field::new("bidder", DataType::Utf8, true),
        ]))
    }

    fn codec() -> AvroCodec {
        let options = ConnectorOptions::from([("avro.schema".to_string(), SCHEMA.to_string())]);
        AvroCodec::new(&columns(), &options, "").expect("a codec")
    }

    #[test]
    fn rows_round_trip_through_datums() {
        let batch = RecordBatch::try_new(
            columns(),
            vec![
                Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_000, 5])),
                Arc::new(Int64Array::from(vec![7, 8])),
                Arc::new(StringArray::from(vec![Some("ann"), None])),
            ],
        )
        .expect("a batch");
        let codec = codec();
        let datums = codec.encode(&batch).expect("encodes");
        let mut payloads: Vec<Option<&[u8]>> = datums.iter().map(|d| d.as_deref()).collect();
        payloads.insert(1, Some(b"\x01"));
        payloads.insert(2, None);
        let rows = codec
            .decode(&columns(), &payloads.into_iter().collect())
            .expect("decodes");
        assert_eq!(rows.batch, batch);
        assert_eq!(rows.messages, vec![0, 3]);
        assert_eq!(rows.bad.len(), 1, "{:?}", rows.bad);
    }

    #[test]
    fn schemas_that_do_not_fit_are_refused() {
        let options = |schema: &str| {
            ConnectorOptions::from([("value.avro.schema".to_string(), schema.to_string())])
        };
        let e = AvroCodec::new(&columns(), &options(SCHEMA), "")
            .expect_err("no schema")
            .to_string();
        assert!(e.contains("'avro.schema': is required"), "{e}");
        let e = AvroCodec::new(&columns(), &options(r#""long""#), "value.")
            .expect_err("not a record")
            .to_string();
        assert!(e.contains("record"), "{e}");
        let wrong = SCHEMA.replace(r#""type": "long"}"#, r#""type": "string"}"#);
        let e = AvroCodec::new(&columns(), &options(&wrong), "value.")
            .expect_err("a string for a BIGINT")
            .to_string();
        assert!(e.contains("field 'auction'"), "{e}");
    }
}
