//! Schemas of the text formats (CSV, JSON lines): a schema given as text,
//! such as `id BIGINT, name VARCHAR, price DECIMAL(10,2)`, and what the
//! formats share about inferred schemas.
//!
//! Type names are SQL's, case-insensitive:
//!
//! | type | Arrow type |
//! |---|---|
//! | `BOOLEAN`, `BOOL` | `Boolean` |
//! | `TINYINT`, `SMALLINT`, `INT` / `INTEGER`, `BIGINT` | `Int8` ... `Int64` |
//! | `UTINYINT`, `USMALLINT`, `UINTEGER`, `UBIGINT` | `UInt8` ... `UInt64` |
//! | `FLOAT` / `REAL`, `DOUBLE` / `DOUBLE PRECISION` | `Float32`, `Float64` |
//! | `DECIMAL(p,s)` / `NUMERIC(p,s)` (`DECIMAL(p)`: scale 0; `DECIMAL`: `(18,3)`) | `Decimal128` (`Decimal256` above 38 digits) |
//! | `VARCHAR`, `VARCHAR(n)`, `CHAR(n)`, `STRING`, `TEXT` | `Utf8` |
//! | `DATE` | `Date32` |
//! | `TIMESTAMP`, `TIMESTAMP(p)`, `DATETIME` | `Timestamp(µs, None)` (`p` picks the unit: 0 s, ≤ 3 ms, ≤ 6 µs, ≤ 9 ns) |
//! | `TIMESTAMPTZ`, `TIMESTAMP WITH TIME ZONE`, `TIMESTAMP_LTZ` | `Timestamp(µs, "+00:00")` |
//!
//! Column names are bare words or double-quoted (`"my col"`, with `""` for
//! a quote). Every column is nullable.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::{Error, Result};

/// How many records schema inference samples unless told otherwise.
pub const DEFAULT_INFER_RECORDS: usize = 1000;

/// The option name schema-string errors name.
const OPTION: &str = "schema";

/// The time zone of `TIMESTAMPTZ` columns.
const UTC: &str = "+00:00";

/// The types the parser knows, for error messages.
const KNOWN_TYPES: &str = "BOOLEAN, TINYINT, SMALLINT, INT, BIGINT, UTINYINT, USMALLINT, \
    UINTEGER, UBIGINT, FLOAT, DOUBLE, DECIMAL(p,s), VARCHAR, DATE, TIMESTAMP, TIMESTAMPTZ";

/// Parses a schema string: comma-separated `name TYPE` columns.
///
/// # Errors
/// [`Error::Option`] (option `schema`) naming the column and the unknown or
/// malformed type, a duplicate or missing name, or an empty schema.
pub fn parse_schema(text: &str) -> Result<Schema> {
    let mut fields: Vec<Field> = Vec::new();
    for column in split_columns(text)? {
        let (name, type_text) = split_name(column)?;
        if fields.iter().any(|f| f.name() == &name) {
            return Err(error(format!("duplicate column '{name}'")));
        }
        let data_type = parse_type(type_text)
            .map_err(|message| error(format!("column '{name}': {message}")))?;
        fields.push(Field::new(name, data_type, true));
    }
    if fields.is_empty() {
        return Err(error("the schema has no columns".to_string()));
    }
    Ok(Schema::new(fields))
}

/// `schema` with every field nullable: the text formats decode any column
/// as null when its value is missing.
pub(crate) fn nullable(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

fn error(message: String) -> Error {
    Error::Option {
        option: OPTION.to_string(),
        message,
    }
}

/// Splits at the commas outside parentheses and double quotes.
fn split_columns(text: &str) -> Result<Vec<&str>> {
    let mut columns = Vec::new();
    let (mut depth, mut quoted, mut start) = (0usize, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| error(format!("unbalanced ')' in '{text}'")))?;
            }
            ',' if !quoted && depth == 0 => {
                columns.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quoted || depth != 0 {
        return Err(error(format!("unbalanced quote or '(' in '{text}'")));
    }
    columns.push(&text[start..]);
    // A trailing comma or an empty schema leaves an empty last column.
    if columns.len() == 1 && columns[0].trim().is_empty() {
        columns.clear();
    }
    Ok(columns)
}

/// Splits a column definition into its (unquoted) name and its type text.
fn split_name(column: &str) -> Result<(String, &str)> {
    let column = column.trim();
    if column.is_empty() {
        return Err(error("empty column definition".to_string()));
    }
    let (name, rest) = match column.strip_prefix('"') {
        Some(quoted) => {
            let mut name = String::new();
            let mut chars = quoted.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                if c != '"' {
                    name.push(c);
                } else if chars.peek().is_some_and(|(_, next)| *next == '"') {
                    name.push('"');
                    chars.next();
                } else {
                    end = Some(i + 1);
                    break;
                }
            }
            let end = end.ok_or_else(|| error(format!("unterminated name in '{column}'")))?;
            (name, &quoted[end..])
        }
        None => {
            let end = column.find(char::is_whitespace).unwrap_or(column.len());
            (column[..end].to_string(), &column[end..])
        }
    };
    let type_text = rest.trim();
    if type_text.is_empty() {
        return Err(error(format!("column '{name}' has no type")));
    }
    Ok((name, type_text))
}

/// Parses one SQL type; the error message names the type.
fn parse_type(text: &str) -> Result<DataType, String> {
    let (base, args) = match text.find('(') {
        Some(open) => {
            let close = text[open..]
                .find(')')
                .map(|i| open + i)
                .ok_or_else(|| format!("missing ')' in type '{text}'"))?;
            let args = text[open + 1..close]
                .split(',')
                .map(|a| {
                    a.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("invalid argument '{}' in type '{text}'", a.trim()))
                })
                .collect::<Result<Vec<u32>, String>>()?;
            (format!("{} {}", &text[..open], &text[close + 1..]), args)
        }
        None => (text.to_string(), Vec::new()),
    };
    let name = base
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let no_args = |data_type: DataType| {
        if args.is_empty() {
            Ok(data_type)
        } else {
            Err(format!("type '{text}' takes no arguments"))
        }
    };
    match name.as_str() {
        "BOOLEAN" | "BOOL" => no_args(DataType::Boolean),
        "TINYINT" => no_args(DataType::Int8),
        "SMALLINT" => no_args(DataType::Int16),
        "INT" | "INTEGER" => no_args(DataType::Int32),
        "BIGINT" => no_args(DataType::Int64),
        "UTINYINT" => no_args(DataType::UInt8),
        "USMALLINT" => no_args(DataType::UInt16),
        "UINTEGER" => no_args(DataType::UInt32),
        "UBIGINT" => no_args(DataType::UInt64),
        "FLOAT" | "REAL" => no_args(DataType::Float32),
        "DOUBLE" | "DOUBLE PRECISION" => no_args(DataType::Float64),
        "VARCHAR" | "CHAR" | "CHARACTER" | "CHARACTER VARYING" | "STRING" | "TEXT"
            if args.len() <= 1 =>
        {
            Ok(DataType::Utf8)
        }
        "DATE" => no_args(DataType::Date32),
        "TIMESTAMP" | "DATETIME" | "TIMESTAMP WITHOUT TIME ZONE" => {
            Ok(DataType::Timestamp(time_unit(&args, text)?, None))
        }
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" | "TIMESTAMP_LTZ" => Ok(DataType::Timestamp(
            time_unit(&args, text)?,
            Some(UTC.into()),
        )),
        "DECIMAL" | "NUMERIC" => decimal(&args, text),
        _ => Err(format!("unknown type '{text}' (known: {KNOWN_TYPES})")),
    }
}

fn time_unit(args: &[u32], text: &str) -> Result<TimeUnit, String> {
    match args {
        [] => Ok(TimeUnit::Microsecond),
        [0] => Ok(TimeUnit::Second),
        [1..=3] => Ok(TimeUnit::Millisecond),
        [4..=6] => Ok(TimeUnit::Microsecond),
        [7..=9] => Ok(TimeUnit::Nanosecond),
        _ => Err(format!("invalid precision in type '{text}' (0 to 9)")),
    }
}

fn decimal(args: &[u32], text: &str) -> Result<DataType, String> {
    let (precision, scale) = match args {
        [] => (18, 3),
        [p] => (*p, 0),
        [p, s] => (*p, *s),
        _ => return Err(format!("too many arguments in type '{text}'")),
    };
    if precision == 0 || scale > precision {
        return Err(format!(
            "invalid precision or scale in type '{text}' (need 0 < precision and scale <= precision)"
        ));
    }
    let too_large = || format!("precision above 76 in type '{text}'");
    let precision_u8 = u8::try_from(precision).map_err(|_| too_large())?;
    let scale = i8::try_from(scale).map_err(|_| too_large())?;
    match precision_u8 {
        1..=38 => Ok(DataType::Decimal128(precision_u8, scale)),
        39..=76 => Ok(DataType::Decimal256(precision_u8, scale)),
        _ => Err(too_large()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let schema = parse_schema(
            "id BIGINT, name VARCHAR, price DECIMAL(10,2), ts TIMESTAMP, d DATE, ok BOOLEAN, \
             f DOUBLE, i INT",
        )
        .unwrap();
        let expected = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Decimal128(10, 2), true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("d", DataType::Date32, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("f", DataType::Float64, true),
            Field::new("i", DataType::Int32, true),
        ]);
        assert_eq!(schema, expected);
    }

    #[test]
    fn parses_every_type_case_insensitively() {
        let schema = parse_schema(
            "a tinyint, b SmallInt, c integer, d utinyint, e usmallint, f uinteger, \
             g ubigint, h real, i double precision, j numeric(40, 5), k decimal, l decimal(7), \
             m varchar(1000), n text, o timestamp(3), p timestamptz, \
             q timestamp(9) with time zone, \"r s\"\"t\" bool, u string",
        )
        .unwrap();
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            vec![
                DataType::Int8,
                DataType::Int16,
                DataType::Int32,
                DataType::UInt8,
                DataType::UInt16,
                DataType::UInt32,
                DataType::UInt64,
                DataType::Float32,
                DataType::Float64,
                DataType::Decimal256(40, 5),
                DataType::Decimal128(18, 3),
                DataType::Decimal128(7, 0),
                DataType::Utf8,
                DataType::Utf8,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
                DataType::Timestamp(TimeUnit::Nanosecond, Some("+00:00".into())),
                DataType::Boolean,
                DataType::Utf8,
            ]
        );
        assert_eq!(schema.field(17).name(), "r s\"t");
        assert!(schema.fields().iter().all(|f| f.is_nullable()));
    }

    #[test]
    fn errors_name_the_column_and_the_type() {
        let err = parse_schema("id BIGINT, x BLOB").unwrap_err().to_string();
        assert!(
            err.starts_with("option 'schema': column 'x': unknown type 'BLOB' (known: BOOLEAN"),
            "{err}"
        );
        for (text, expected) in [
            ("", "the schema has no columns"),
            ("id", "column 'id' has no type"),
            ("a INT, a INT", "duplicate column 'a'"),
            ("a INT,", "empty column definition"),
            ("a DECIMAL(2,3)", "invalid precision or scale"),
            ("a DECIMAL(80,2)", "precision above 76"),
            ("a DECIMAL(x)", "invalid argument 'x'"),
            ("a INT(3)", "takes no arguments"),
            ("a TIMESTAMP(12)", "invalid precision"),
            ("a DECIMAL(10,2", "unbalanced"),
            ("\"a INT", "unbalanced"),
        ] {
            let err = parse_schema(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn nullable_keeps_names_and_types() {
        let schema = Schema::new(vec![Field::new("a", DataType::Int64, false)]);
        let nullable = nullable(&schema);
        assert!(nullable.field(0).is_nullable());
        assert_eq!(nullable.field(0).data_type(), &DataType::Int64);
    }
}
