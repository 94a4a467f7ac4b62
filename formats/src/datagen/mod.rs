//! The `datagen` connector: rows generated for the columns a table
//! declares, as Flink's datagen connector makes them.
//!
//! ```sql
//! CREATE TABLE orders (id BIGINT, price DECIMAL(10,2), note VARCHAR)
//! WITH ('connector' = 'datagen', 'number-of-rows' = '1000000',
//!       'fields.id.kind' = 'sequence', 'fields.id.start' = '1', 'fields.id.end' = '1000000',
//!       'fields.price.min' = '1', 'fields.price.max' = '500',
//!       'fields.note.length' = '20', 'fields.note.null-rate' = '0.1')
//! ```
//!
//! Table options:
//! - `number-of-rows`: how many rows; without it (and without a sequence
//!   column, which also bounds the rows) the table is unbounded, and jobs
//!   reading it run in streaming mode;
//! - `rows-per-second`: a throttle, over all subtasks (default: none);
//! - `seed`: picks the random values (default 0).
//!
//! Column options, `fields.<column>.<property>`:
//! - `kind`: `random` (default) or `sequence`;
//! - `min`, `max` (random): bounds, inclusive. Integers and decimals
//!   default to their type's whole range, `FLOAT` / `DOUBLE` to 0 and 1,
//!   dates and timestamps (given as literals, `2024-01-31`,
//!   `2024-01-31 12:00:00`) to the years 2000 to 2029;
//! - `start`, `end` (sequence, required): integers; the column's values
//!   are `start..=end` in row order, and the table has at most as many
//!   rows as the shortest sequence. Sequences are numbers or their text;
//! - `length` (random strings): characters, default 10 (alphanumeric);
//! - `null-rate`: the share of nulls, 0 to 1 (default 0).
//!
//! Every value is a pure function of the seed, the column's position and
//! the row's number: a table is the same at every parallelism, on every
//! attempt and on every machine.

mod column;
mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use weir_engine::SourceFactory;
use weir_engine::expr::column_list;
use weir_engine::registry::{ConnectorOptions, SourceConnector};

use column::ColumnGenerator;
pub use source::DatagenSource;

use crate::{Error, Result};

/// The options of the `datagen` connector.
pub const DATAGEN_OPTIONS: [&str; 10] = [
    "number-of-rows",
    "rows-per-second",
    "seed",
    "fields.*.kind",
    "fields.*.min",
    "fields.*.max",
    "fields.*.start",
    "fields.*.end",
    "fields.*.length",
    "fields.*.null-rate",
];

/// Generates rows for declared columns (see the [module](self) for the
/// options).
#[derive(Debug)]
pub struct DatagenConnector;

#[async_trait]
impl SourceConnector for DatagenConnector {
    fn name(&self) -> &'static str {
        "datagen"
    }

    fn option_names(&self) -> Vec<&'static str> {
        DATAGEN_OPTIONS.to_vec()
    }

    async fn create(
        &self,
        options: &ConnectorOptions,
        declared: Option<SchemaRef>,
    ) -> weir_engine::Result<Arc<dyn SourceFactory>> {
        Ok(Arc::new(DatagenSource::try_from_options(
            declared, options,
        )?))
    }
}

impl DatagenSource {
    /// The table the options describe, of the `declared` columns.
    ///
    /// # Errors
    /// [`Error::DeclaredColumns`] when no columns are declared or one has
    /// a type datagen cannot generate; [`Error::Option`] for a missing,
    /// or invalid option, or one naming a column not declared. Option names
    /// are not checked again: the registry checks them against
    /// [`DATAGEN_OPTIONS`] before the connector is called.
    pub fn try_from_options(
        declared: Option<SchemaRef>,
        options: &ConnectorOptions,
    ) -> Result<Self> {
        let Some(schema) = declared.filter(|s| !s.fields().is_empty()) else {
            return Err(Error::DeclaredColumns {
                connector: "datagen",
                message: "datagen needs declared columns: CREATE TABLE t (id BIGINT, ...) \
                          WITH ('connector' = 'datagen', ...)"
                    .to_string(),
            });
        };
        let mut by_column: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
        for (key, value) in options {
            if let Some(rest) = key.strip_prefix("fields.") {
                let Some((column, property)) = rest.rsplit_once('.') else {
                    return Err(Error::Option {
                        option: key.clone(),
                        message: "column options are fields.<column>.<property>".to_string(),
                    });
                };
                if schema.field_with_name(column).is_err() {
                    return Err(Error::Option {
                        option: key.clone(),
                        message: format!(
                            "'{column}' is not a declared column (columns: {})",
                            column_list(&schema)
                        ),
                    });
                }
                by_column
                    .entry(column)
                    .or_default()
                    .insert(property, value.as_str());
            }
        }
        let seed = number::<u64>(options, "seed", "a number")?.unwrap_or(0);
        let no_properties = BTreeMap::new();
        let columns = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let properties = by_column
                    .get(field.name().as_str())
                    .unwrap_or(&no_properties);
                ColumnGenerator::try_new(i, field, properties, seed)
            })
            .collect::<Result<Vec<_>>>()?;
        let sequence = columns
            .iter()
            .filter_map(ColumnGenerator::sequence_len)
            .min();
        // Without a bound, the table is unbounded (a streaming source).
        let rows = match (
            number::<u64>(options, "number-of-rows", "a number of rows")?,
            sequence,
        ) {
            (Some(rows), Some(sequence)) => Some(rows.min(sequence)),
            (rows, sequence) => rows.or(sequence),
        };
        let rows_per_second = match number::<f64>(options, "rows-per-second", "a positive number")?
        {
            Some(rate) if !(rate > 0.0 && rate.is_finite()) => {
                return Err(Error::Option {
                    option: "rows-per-second".to_string(),
                    message: format!("{rate} is not a positive number"),
                });
            }
            rate => rate,
        };
        Ok(Self::new(columns, rows, rows_per_second))
    }
}

/// Option `name` parsed as a `T`, described as `what` in errors.
fn number<T: std::str::FromStr>(
    options: &ConnectorOptions,
    name: &str,
    what: &str,
) -> Result<Option<T>> {
    options
        .get(name)
        .map(|text| {
            text.trim().parse::<T>().map_err(|_| Error::Option {
                option: name.to_string(),
                message: format!("'{text}' is not {what}"),
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]))
    }

    fn options(pairs: &[(&str, &str)]) -> ConnectorOptions {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn error(declared: Option<SchemaRef>, pairs: &[(&str, &str)]) -> String {
        DatagenSource::try_from_options(declared, &options(pairs))
            .expect_err("invalid")
            .to_string()
    }

    #[test]
    fn sequences_bound_the_rows() {
        let bounded = |pairs: &[(&str, &str)]| {
            DatagenSource::try_from_options(Some(schema()), &options(pairs))
                .expect("source")
                .rows()
        };
        let sequence = [
            ("fields.id.kind", "sequence"),
            ("fields.id.start", "5"),
            ("fields.id.end", "14"),
        ];
        assert_eq!(bounded(&sequence), Some(10));
        assert_eq!(
            bounded(&[sequence.as_slice(), &[("number-of-rows", "4")]].concat()),
            Some(4)
        );
        assert_eq!(
            bounded(&[sequence.as_slice(), &[("number-of-rows", "40")]].concat()),
            Some(10)
        );
        assert_eq!(bounded(&[("number-of-rows", "40")]), Some(40));
        assert_eq!(bounded(&[]), None);
    }

    #[test]
    fn errors_say_what_to_do() {
        let e = error(None, &[("number-of-rows", "1")]);
        assert!(
            e.contains("datagen needs declared columns: CREATE TABLE t (id BIGINT, ...) WITH ('connector' = 'datagen', ...)"),
            "{e}"
        );
        let e = error(
            Some(schema()),
            &[("number-of-rows", "1"), ("fields.nme.kind", "random")],
        );
        assert!(
            e.contains("'fields.nme.kind': 'nme' is not a declared column (columns: id, name)"),
            "{e}"
        );
        let e = error(Some(schema()), &[("number-of-rows", "ten")]);
        assert!(e.contains("'ten' is not a number of rows"), "{e}");
        let e = error(
            Some(schema()),
            &[("number-of-rows", "1"), ("rows-per-second", "0")],
        );
        assert!(
            e.contains("'rows-per-second': 0 is not a positive number"),
            "{e}"
        );
        let e = error(Some(schema()), &[("number-of-rows", "1"), ("seed", "-1")]);
        assert!(e.contains("'seed': '-1' is not a number"), "{e}");
    }
}
