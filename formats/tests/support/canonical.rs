//! One canonical JSON form of table contents, computed the same way from
//! Arrow arrays in Rust and from pyarrow tables in Python, so that what weir
//! holds and what another implementation reads can be compared exactly; and
//! aggregate checks that DuckDB runs over a table.
//!
//! A row is an object from column name to value. Values: integers, dates
//! (days), times, timestamps and durations (in their unit) are JSON
//! integers; booleans and strings themselves; floats the hex of their bits
//! as `f64` (`"nan"` for NaN); decimals their unscaled integer as a string;
//! binary values hex; dictionaries their values; lists arrays; structs
//! objects; nulls `null`.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::*;
use serde_json::{Map, Value};

use super::run_python;

/// Python definitions producing the same canonical form from pyarrow:
/// `table_json(table)` is `{"schema": [[name, type], ...], "rows": [...]}`;
/// `scalar(value)` is how a DuckDB result value prints in [`Check`]s.
pub const PRELUDE: &str = r#"
import datetime, decimal, json, struct, sys
import pyarrow as pa

def fbits(v):
    return "nan" if v != v else struct.pack(">d", v).hex()

def unscaled(d, scale):
    sign, digits, exp = d.as_tuple()
    n = int("".join(map(str, digits)) or "0") * 10 ** (exp + scale)
    return str(-n if sign else n)

def column(arr):
    t = arr.type
    if pa.types.is_dictionary(t):
        return column(arr.dictionary_decode())
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return column(arr.cast(pa.int32()))
    if pa.types.is_temporal(t):
        return column(arr.cast(pa.int64()))
    valid = arr.is_valid().to_pylist()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        offsets = arr.offsets.to_pylist()
        inner = column(arr.values)
        values = [inner[offsets[i]:offsets[i + 1]] for i in range(len(arr))]
    elif pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        children = [column(c) for c in arr.flatten()]
        values = [dict(zip(names, row)) for row in zip(*children)]
    elif pa.types.is_floating(t):
        values = [None if v is None else fbits(v) for v in arr.to_pylist()]
    elif pa.types.is_decimal(t):
        values = [None if v is None else unscaled(v, t.scale) for v in arr.to_pylist()]
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        values = [None if v is None else v.hex() for v in arr.to_pylist()]
    else:
        values = arr.to_pylist()
    return [v if ok else None for v, ok in zip(values, valid)]

def table_json(table):
    columns = {}
    for name in table.column_names:
        columns[name] = [v for chunk in table.column(name).chunks for v in column(chunk)]
    rows = [dict(zip(columns, row)) for row in zip(*columns.values())]
    schema = [[f.name, str(f.type)] for f in table.schema]
    return json.dumps({"schema": schema, "rows": rows})

def scalar(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return fbits(v)
    if isinstance(v, decimal.Decimal):
        return format(v, "f")
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    return str(v)

def sql_string(s):
    return "'" + s.replace("'", "''") + "'"
"#;

/// A table in canonical form: its rows sorted (by their JSON text), and its
/// columns' names and types as the other side printed them (empty when made
/// in Rust).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// `(name, type)` per column.
    pub schema: Vec<(String, String)>,
    /// The rows, sorted.
    pub rows: Vec<Value>,
}

impl Table {
    /// Parses what `table_json` printed.
    pub fn from_python(printed: &str) -> Self {
        let parsed: Value = serde_json::from_str(printed.trim())
            .unwrap_or_else(|e| panic!("not a table's JSON ({e}): {printed}"));
        let schema = parsed["schema"]
            .as_array()
            .expect("a schema")
            .iter()
            .map(|f| {
                (
                    f[0].as_str().expect("a name").to_string(),
                    f[1].as_str().expect("a type").to_string(),
                )
            })
            .collect();
        let rows = parsed["rows"].as_array().expect("rows").clone();
        Self {
            schema,
            rows: sort_rows(rows),
        }
    }

    /// The canonical rows of `batches`.
    pub fn from_batches(batches: &[RecordBatch]) -> Self {
        let mut rows = Vec::new();
        for batch in batches {
            let schema = batch.schema();
            let columns: Vec<(&str, Vec<Value>)> = schema
                .fields()
                .iter()
                .zip(batch.columns())
                .map(|(f, c)| (f.name().as_str(), column(c)))
                .collect();
            for row in 0..batch.num_rows() {
                let object: Map<String, Value> = columns
                    .iter()
                    .map(|(name, values)| (name.to_string(), values[row].clone()))
                    .collect();
                rows.push(Value::Object(object));
            }
        }
        Self {
            schema: Vec::new(),
            rows: sort_rows(rows),
        }
    }

    /// The column names in order.
    pub fn names(&self) -> Vec<&str> {
        self.schema.iter().map(|(n, _)| n.as_str()).collect()
    }
}

fn sort_rows(rows: Vec<Value>) -> Vec<Value> {
    let mut keyed: Vec<(String, Value)> = rows
        .into_iter()
        .map(|r| (serde_json::to_string(&r).expect("JSON"), r))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, r)| r).collect()
}

/// Asserts that `got` and `expected` hold the same rows, naming the first
/// rows that differ.
pub fn assert_same_rows(got: &[Value], expected: &[Value], what: &str) {
    if got == expected {
        return;
    }
    let render = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| serde_json::to_string(r).expect("JSON"))
            .collect()
    };
    let (got_text, expected_text) = (render(got), render(expected));
    let missing: Vec<&String> = expected_text
        .iter()
        .filter(|r| !got_text.contains(r))
        .take(5)
        .collect();
    let extra: Vec<&String> = got_text
        .iter()
        .filter(|r| !expected_text.contains(r))
        .take(5)
        .collect();
    panic!(
        "{what}: {} rows, expected {}\nmissing (first 5): {missing:#?}\nunexpected (first 5): {extra:#?}",
        got.len(),
        expected.len()
    );
}

/// The hex of `v`'s bits, as Python's `fbits`.
pub fn float_key(v: f64) -> String {
    if v.is_nan() {
        "nan".to_string()
    } else {
        hex(&v.to_bits().to_be_bytes())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical values of `array`.
pub fn column(array: &dyn Array) -> Vec<Value> {
    let to = |t: DataType| column(&cast(array, &t).expect("the cast is supported"));
    let values: Vec<Value> = match array.data_type() {
        DataType::Dictionary(_, value_type) => return to(value_type.as_ref().clone()),
        DataType::Date32 | DataType::Time32(_) => return to(DataType::Int32),
        DataType::Date64
        | DataType::Time64(_)
        | DataType::Timestamp(..)
        | DataType::Duration(_) => {
            return to(DataType::Int64);
        }
        DataType::Null => vec![Value::Null; array.len()],
        DataType::Boolean => array.as_boolean().iter().map(Value::from).collect(),
        DataType::Int8 => ints(array.as_primitive::<Int8Type>()),
        DataType::Int16 => ints(array.as_primitive::<Int16Type>()),
        DataType::Int32 => ints(array.as_primitive::<Int32Type>()),
        DataType::Int64 => ints(array.as_primitive::<Int64Type>()),
        DataType::UInt8 => ints(array.as_primitive::<UInt8Type>()),
        DataType::UInt16 => ints(array.as_primitive::<UInt16Type>()),
        DataType::UInt32 => ints(array.as_primitive::<UInt32Type>()),
        DataType::UInt64 => ints(array.as_primitive::<UInt64Type>()),
        DataType::Float32 => floats(array.as_primitive::<Float32Type>()),
        DataType::Float64 => floats(array.as_primitive::<Float64Type>()),
        DataType::Utf8 => array.as_string::<i32>().iter().map(Value::from).collect(),
        DataType::LargeUtf8 => array.as_string::<i64>().iter().map(Value::from).collect(),
        DataType::Utf8View => array.as_string_view().iter().map(Value::from).collect(),
        DataType::Binary => binaries(array.as_binary::<i32>().iter()),
        DataType::LargeBinary => binaries(array.as_binary::<i64>().iter()),
        DataType::BinaryView => binaries(array.as_binary_view().iter()),
        DataType::FixedSizeBinary(_) => binaries(array.as_fixed_size_binary().iter()),
        DataType::Decimal128(..) => array
            .as_primitive::<Decimal128Type>()
            .iter()
            .map(|v| v.map(|v| v.to_string()).into())
            .collect(),
        DataType::List(_) => lists(array.as_list::<i32>().iter()),
        DataType::LargeList(_) => lists(array.as_list::<i64>().iter()),
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            let children: Vec<Vec<Value>> = structs.columns().iter().map(|c| column(c)).collect();
            (0..array.len())
                .map(|row| {
                    let object: Map<String, Value> = fields
                        .iter()
                        .zip(&children)
                        .map(|(f, values)| (f.name().clone(), values[row].clone()))
                        .collect();
                    Value::Object(object)
                })
                .collect()
        }
        other => panic!("no canonical form for {other}"),
    };
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| if array.is_null(i) { Value::Null } else { v })
        .collect()
}

fn ints<T>(array: &arrow::array::PrimitiveArray<T>) -> Vec<Value>
where
    T: ArrowPrimitiveType,
    T::Native: Into<Value>,
{
    array
        .iter()
        .map(|v| v.map_or(Value::Null, Into::into))
        .collect()
}

fn floats<T>(array: &arrow::array::PrimitiveArray<T>) -> Vec<Value>
where
    T: ArrowPrimitiveType,
    T::Native: Into<f64>,
{
    array
        .iter()
        .map(|v| v.map(|v| float_key(v.into())).into())
        .collect()
}

fn binaries<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> Vec<Value> {
    values.map(|v| v.map(hex).into()).collect()
}

fn lists(values: impl Iterator<Item = Option<ArrayRef>>) -> Vec<Value> {
    values
        .map(|v| v.map_or(Value::Null, |list| Value::Array(column(&list))))
        .collect()
}

// ---------------------------------------------------------------------------
// DuckDB checks.

/// A query DuckDB runs over view `t`, and the one value it must return
/// (as Python's `scalar` prints it).
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `SELECT <one aggregate> FROM ...`.
    pub sql: String,
    /// The expected value.
    pub expected: Option<String>,
}

/// The checks of every column of `batches` (rows in any order): counts,
/// sums, minimums and maximums, ordered concatenations of strings, and for
/// lists and structs the same of their elements and fields.
pub fn duckdb_checks(batches: &[RecordBatch]) -> Vec<Check> {
    let table = Table::from_batches(batches);
    let schema = batches.first().expect("a batch").schema();
    let mut checks = vec![Check {
        sql: "SELECT count(*) FROM t".to_string(),
        expected: Some(table.rows.len().to_string()),
    }];
    for field in schema.fields() {
        let values: Vec<Value> = table.rows.iter().map(|r| r[field.name()].clone()).collect();
        let expr = format!("\"{}\"", field.name());
        column_checks(&expr, "t", field.data_type(), &values, &mut checks);
    }
    checks
}

fn column_checks(
    expr: &str,
    from: &str,
    data_type: &DataType,
    values: &[Value],
    checks: &mut Vec<Check>,
) {
    let mut check = |aggregate: String, expected: Option<String>| {
        checks.push(Check {
            sql: format!("SELECT {aggregate} FROM {from}"),
            expected,
        });
    };
    let present: Vec<&Value> = values.iter().filter(|v| !v.is_null()).collect();
    check(format!("count({expr})"), Some(present.len().to_string()));
    let numbers = || -> Vec<i128> {
        present
            .iter()
            .map(|v| match v {
                Value::Number(n) => n
                    .as_i64()
                    .map(i128::from)
                    .or(n.as_u64().map(i128::from))
                    .expect("an integer"),
                Value::String(s) => s.parse().expect("an unscaled decimal"),
                other => panic!("not a number: {other}"),
            })
            .collect()
    };
    let aggregates = |numbers: &[i128], show: &dyn Fn(i128) -> String| {
        let sum = (!numbers.is_empty()).then(|| show(numbers.iter().sum()));
        let min = numbers.iter().min().map(|v| show(*v));
        let max = numbers.iter().max().map(|v| show(*v));
        (sum, min, max)
    };
    let strings = || -> Vec<String> {
        let mut s: Vec<String> = present
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect();
        s.sort();
        s
    };
    let joined = |s: Vec<String>| (!s.is_empty()).then(|| s.join("|"));
    match data_type {
        DataType::Dictionary(_, value_type) => {
            column_checks(expr, from, value_type, values, checks);
        }
        t if t.is_integer() => {
            let (sum, min, max) = aggregates(&numbers(), &|v| v.to_string());
            check(format!("sum({expr})"), sum);
            check(format!("min({expr})"), min);
            check(format!("max({expr})"), max);
        }
        DataType::Decimal128(_, scale) => {
            let scale = *scale;
            let (sum, min, max) = aggregates(&numbers(), &|v| decimal_text(v, scale));
            check(format!("sum({expr})"), sum);
            check(format!("min({expr})"), min);
            check(format!("max({expr})"), max);
        }
        DataType::Float32 | DataType::Float64 => {
            let floats: Vec<f64> = present
                .iter()
                .map(|v| {
                    let key = v.as_str().expect("float bits");
                    if key == "nan" {
                        f64::NAN
                    } else {
                        f64::from_bits(u64::from_str_radix(key, 16).expect("hex bits"))
                    }
                })
                .collect();
            let min = floats.iter().copied().min_by(f64::total_cmp);
            let max = floats.iter().copied().max_by(f64::total_cmp);
            check(format!("min({expr})"), min.map(float_key));
            check(format!("max({expr})"), max.map(float_key));
        }
        DataType::Boolean => {
            let trues = present.iter().filter(|v| v.as_bool() == Some(true)).count();
            check(format!("count_if({expr})"), Some(trues.to_string()));
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            check(
                format!("string_agg({expr}, '|' ORDER BY {expr})"),
                joined(strings()),
            );
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            // Hex sorts as the bytes do.
            check(
                format!("string_agg(lower(hex({expr})), '|' ORDER BY {expr})"),
                joined(strings()),
            );
        }
        DataType::Date32 => {
            let days = format!("({expr} - DATE '1970-01-01')");
            let (sum, min, max) = aggregates(&numbers(), &|v| v.to_string());
            check(format!("sum({days})"), sum);
            check(format!("min({days})"), min);
            check(format!("max({days})"), max);
        }
        DataType::Timestamp(unit, tz) => {
            let nanos_per = match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            let nanos: Vec<i128> = numbers().iter().map(|v| v * nanos_per).collect();
            let (sum, min, max) = aggregates(&nanos, &|v| v.to_string());
            check(format!("sum(epoch_ns({expr}))"), sum);
            check(format!("min(epoch_ns({expr}))"), min);
            check(format!("max(epoch_ns({expr}))"), max);
            // DuckDB has no nanosecond type with a time zone: it reads
            // instants in nanoseconds as local TIMESTAMP_NS.
            let instant = tz.is_some() && *unit != TimeUnit::Nanosecond;
            check(
                format!("any_value(typeof({expr}) LIKE '%WITH TIME ZONE')"),
                Some(instant.to_string()),
            );
        }
        DataType::List(item) | DataType::LargeList(item) => {
            let elements: Vec<Value> = present
                .iter()
                .flat_map(|v| v.as_array().expect("a list").clone())
                .collect();
            let lengths = (!present.is_empty()).then(|| elements.len().to_string());
            check(format!("sum(len({expr}))"), lengths);
            let unnested = format!("(SELECT unnest({expr}) AS e FROM {from})");
            column_checks("e", &unnested, item.data_type(), &elements, checks);
        }
        DataType::Struct(fields) => {
            for field in fields {
                let children: Vec<Value> = values
                    .iter()
                    .map(|v| v.get(field.name()).cloned().unwrap_or(Value::Null))
                    .collect();
                let child = format!("({expr}).\"{}\"", field.name());
                column_checks(&child, from, field.data_type(), &children, checks);
            }
        }
        other => panic!("no DuckDB checks for {other}"),
    }
}

/// `unscaled` with `scale` digits after the point, as DuckDB prints a
/// decimal.
pub fn decimal_text(unscaled: i128, scale: i8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale <= 0 {
        let zeros = "0".repeat(scale.unsigned_abs() as usize);
        return format!("{sign}{digits}{zeros}");
    }
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// Runs `checks` with DuckDB over the Parquet files `glob` (view `t`) and
/// asserts every answer.
pub fn assert_duckdb(view_sql: &str, checks: &[Check]) {
    let queries: Vec<&str> = checks.iter().map(|c| c.sql.as_str()).collect();
    let program = format!(
        "{PRELUDE}\n{}",
        r#"
import duckdb
view, queries = sys.argv[1], json.loads(sys.argv[2])
con = duckdb.connect()
con.execute("CREATE VIEW t AS " + view)
print(json.dumps([scalar(con.execute(q).fetchone()[0]) for q in queries]))
"#
    );
    let printed = run_python(
        &program,
        [
            view_sql.to_string(),
            serde_json::to_string(&queries).expect("JSON"),
        ],
    );
    let answers: Vec<Option<String>> = serde_json::from_str(printed.trim())
        .unwrap_or_else(|e| panic!("DuckDB's answers are not JSON ({e}): {printed}"));
    let wrong: Vec<String> = checks
        .iter()
        .zip(&answers)
        .filter(|(c, a)| &c.expected != *a)
        .map(|(c, a)| format!("{}\n    DuckDB: {a:?}\n  expected: {:?}", c.sql, c.expected))
        .collect();
    assert!(
        wrong.is_empty(),
        "DuckDB over `{view_sql}` disagrees on {} of {} checks:\n{}",
        wrong.len(),
        checks.len(),
        wrong.join("\n")
    );
}
