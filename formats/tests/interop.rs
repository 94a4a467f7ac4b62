//! weir's files against other implementations: Parquet that weir writes is
//! read by pyarrow and DuckDB, Parquet that pyarrow and DuckDB write is read
//! by weir, Arrow IPC goes both ways with pyarrow, and CSV and JSON lines
//! go both ways with DuckDB. Contents are compared exactly in the canonical
//! form of `support::canonical`.

mod common;
mod support;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
    Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray,
    ListArray, RecordBatch, StringArray, StructArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, UInt8Array, UInt16Array, UInt32Array,
    UInt64Array,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{DataType, Field, Fields, Int32Type, Int64Type, Schema, TimeUnit};
use serde_json::Value;
use support::canonical::{PRELUDE, Table, assert_duckdb, assert_same_rows, duckdb_checks};
use support::run_python;
use weir_scheduler::FailurePlan;

/// Rows of the test tables.
const ROWS: usize = 100;

/// Whether row `row` of column `column` is null: every column has nulls,
/// each in other rows.
fn null(row: usize, column: usize) -> bool {
    (row + column) % 7 == 3
}

/// `specials` in the first rows, then `rest(row)`; nulls as [`null`] says.
fn values<T: Copy>(
    column: usize,
    specials: &[T],
    rest: impl Fn(usize) -> T,
) -> impl Iterator<Item = Option<T>> {
    let specials = specials.to_vec();
    (0..ROWS).map(move |row| {
        (!null(row, column)).then(|| specials.get(row).copied().unwrap_or_else(|| rest(row)))
    })
}

/// The row numbers, null where column `column` has its nulls.
fn rows_of(column: usize) -> impl Iterator<Item = Option<usize>> {
    values(column, &[], |row| row)
}

/// A column of the all-types table: its name, how pyarrow names its type,
/// and its values.
struct Column {
    name: &'static str,
    pyarrow: &'static str,
    array: ArrayRef,
}

fn column(name: &'static str, pyarrow: &'static str, array: ArrayRef) -> Column {
    Column {
        name,
        pyarrow,
        array,
    }
}

/// A column of every type weir writes to Parquet, with extreme values and
/// nulls in every column.
fn all_types() -> Vec<Column> {
    let r = |row: usize| row as i64;
    let strings = [
        "",
        "héllo",
        "日本語",
        "a|b",
        "quote\"'",
        "line\nbreak",
        "emoji 🦀",
        "tab\tx",
    ];
    let string = |row: usize| format!("s{row:03}");
    let ts_us = |row: usize| 1_700_000_000_123_456 + r(row) * 3_600_000_001;
    let ts_ms = |row: usize| 1_700_000_000_123 + r(row) * 86_400_017;
    let ts_ns = |row: usize| 1_700_000_000_123_456_789 + r(row) * 1_000_000_007;
    let mut c = 0..;
    let mut next = || c.next().expect("endless");
    vec![
        column(
            "i8",
            "int8",
            Arc::new(Int8Array::from_iter(values(
                next(),
                &[i8::MIN, i8::MAX, 0, -1],
                |row| (row % 200) as i8 - 100,
            ))),
        ),
        column(
            "i16",
            "int16",
            Arc::new(Int16Array::from_iter(values(
                next(),
                &[i16::MIN, i16::MAX],
                |row| (row as i16) * 300 - 15_000,
            ))),
        ),
        column(
            "i32",
            "int32",
            Arc::new(Int32Array::from_iter(values(
                next(),
                &[i32::MIN, i32::MAX],
                |row| (row as i32) * 1_000_003 - 50_000_000,
            ))),
        ),
        column(
            "i64",
            "int64",
            Arc::new(Int64Array::from_iter(values(
                next(),
                &[i64::MIN + 1, i64::MAX],
                |row| r(row) * 1_000_000_000_007 - 40_000_000_000_000,
            ))),
        ),
        column(
            "u8",
            "uint8",
            Arc::new(UInt8Array::from_iter(values(
                next(),
                &[u8::MAX, 0],
                |row| (row * 7 % 256) as u8,
            ))),
        ),
        column(
            "u16",
            "uint16",
            Arc::new(UInt16Array::from_iter(values(
                next(),
                &[u16::MAX, 0],
                |row| (row * 601) as u16,
            ))),
        ),
        column(
            "u32",
            "uint32",
            Arc::new(UInt32Array::from_iter(values(
                next(),
                &[u32::MAX, 0],
                |row| (row as u32) * 40_000_003,
            ))),
        ),
        column(
            "u64",
            "uint64",
            Arc::new(UInt64Array::from_iter(values(
                next(),
                &[u64::MAX, 0],
                |row| (row as u64) * 180_000_000_000_000_007,
            ))),
        ),
        column(
            "f32",
            "float",
            Arc::new(Float32Array::from_iter(values(
                next(),
                &[
                    0.5,
                    -2.25,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    f32::NAN,
                    f32::MAX,
                    f32::MIN_POSITIVE,
                    1e-40,
                ],
                |row| row as f32 * 0.1 - 3.0,
            ))),
        ),
        column(
            "f64",
            "double",
            Arc::new(Float64Array::from_iter(values(
                next(),
                &[
                    0.5,
                    -2.25,
                    f64::INFINITY,
                    f64::NEG_INFINITY,
                    f64::NAN,
                    f64::MAX,
                    f64::MIN_POSITIVE,
                    5e-324,
                ],
                |row| row as f64 / 3.0 - 10.0,
            ))),
        ),
        column(
            "flag",
            "bool",
            Arc::new(BooleanArray::from_iter(values(next(), &[], |row| {
                row % 3 == 0
            }))),
        ),
        column(
            "utf8",
            "string",
            Arc::new(StringArray::from_iter(rows_of(next()).map(|row| {
                row.map(|row| strings.get(row).map_or(string(row), |s| s.to_string()))
            }))),
        ),
        column(
            "large_utf8",
            "large_string",
            Arc::new(LargeStringArray::from_iter(rows_of(next()).map(|row| {
                row.map(|row| strings.get(row).map_or(string(row), |s| s.to_uppercase()))
            }))),
        ),
        column(
            "bin",
            "binary",
            Arc::new(BinaryArray::from_iter(rows_of(next()).map(|row| {
                row.map(|row| match row {
                    0 => Vec::new(),
                    1 => vec![0, 1, 2, 255],
                    _ => (row as u32)
                        .wrapping_mul(2_654_435_761)
                        .to_le_bytes()
                        .to_vec(),
                })
            }))),
        ),
        column(
            "date",
            "date32[day]",
            Arc::new(Date32Array::from_iter(values(
                next(),
                &[0, -1, -719_162, 2_932_896],
                |row| 19_000 + row as i32 * 37,
            ))),
        ),
        column(
            "ts_us",
            "timestamp[us]",
            Arc::new(TimestampMicrosecondArray::from_iter(values(
                next(),
                &[0, -1],
                ts_us,
            ))),
        ),
        column(
            "ts_ms_utc",
            "timestamp[ms, tz=UTC]",
            Arc::new(
                TimestampMillisecondArray::from_iter(values(next(), &[0, -1], ts_ms))
                    .with_timezone("UTC"),
            ),
        ),
        column(
            "ts_ns",
            "timestamp[ns]",
            Arc::new(TimestampNanosecondArray::from_iter(values(
                next(),
                &[0, -1],
                ts_ns,
            ))),
        ),
        column(
            "ts_us_plus2",
            "timestamp[us, tz=+02:00]",
            Arc::new(
                TimestampMicrosecondArray::from_iter(values(next(), &[0, -1], ts_us))
                    .with_timezone("+02:00"),
            ),
        ),
        column(
            "ts_ns_paris",
            "timestamp[ns, tz=Europe/Paris]",
            Arc::new(
                TimestampNanosecondArray::from_iter(values(next(), &[0, -1], ts_ns))
                    .with_timezone("Europe/Paris"),
            ),
        ),
        column(
            "ts_ms",
            "timestamp[ms]",
            Arc::new(TimestampMillisecondArray::from_iter(values(
                next(),
                &[0, -1],
                ts_ms,
            ))),
        ),
        column(
            "dec_9_2",
            "decimal128(9, 2)",
            decimal(
                values(next(), &[999_999_999, -999_999_999, 0, 1, -1], |row| {
                    r(row) as i128 * 1_234_567 - 61_000_000
                }),
                9,
                2,
            ),
        ),
        column(
            "dec_18_0",
            "decimal128(18, 0)",
            decimal(
                values(
                    next(),
                    &[999_999_999_999_999_999, -999_999_999_999_999_999],
                    |row| r(row) as i128 * 9_007_199_254_740_993,
                ),
                18,
                0,
            ),
        ),
        column(
            "dec_38_10",
            "decimal128(38, 10)",
            decimal(
                values(next(), &[10_i128.pow(30), -(10_i128.pow(30)), 1], |row| {
                    r(row) as i128 * 123_456_789_012_345_678_901_234_567 - 10_i128.pow(28)
                }),
                38,
                10,
            ),
        ),
        column(
            "dec_5_5",
            "decimal128(5, 5)",
            decimal(
                values(next(), &[99_999, -99_999], |row| {
                    r(row) as i128 * 997 - 50_000
                }),
                5,
                5,
            ),
        ),
        column(
            "dict",
            "dictionary<values=string, indices=int32, ordered=0>",
            Arc::new(DictionaryArray::<Int32Type>::from_iter(values(
                next(),
                &[],
                |row| ["red", "green", "blue", "ünïcode"][row % 4],
            ))),
        ),
        column(
            "list_i64",
            "list<item: int64>",
            Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(
                rows_of(next()).map(|row| {
                    row.map(|row| match row % 4 {
                        0 => Vec::new(),
                        1 => vec![Some(r(row)), None, Some(-r(row))],
                        _ => (0..row % 5)
                            .map(|i| Some(r(row) * 1000 + i as i64))
                            .collect(),
                    })
                }),
            )),
        ),
        column("list_utf8", "list<item: string>", list_of_strings(next())),
        column("rec", "struct<a: int32, b: string>", record(next())),
    ]
}

fn decimal(values: impl Iterator<Item = Option<i128>>, precision: u8, scale: i8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from_iter(values)
            .with_precision_and_scale(precision, scale)
            .expect("a valid decimal type"),
    )
}

fn list_of_strings(column: usize) -> ArrayRef {
    let mut builder = arrow::array::ListBuilder::new(arrow::array::StringBuilder::new());
    for row in rows_of(column) {
        match row {
            None => builder.append_null(),
            Some(row) => {
                for i in 0..row % 4 {
                    if (row + i) % 5 == 2 {
                        builder.values().append_null();
                    } else {
                        builder.values().append_value(format!("e{row}.{i}"));
                    }
                }
                builder.append(true);
            }
        }
    }
    Arc::new(builder.finish())
}

fn record(column: usize) -> ArrayRef {
    let rows: Vec<Option<usize>> = rows_of(column).collect();
    let a = Int32Array::from_iter(
        rows.iter()
            .map(|row| row.filter(|r| r % 5 != 1).map(|r| r as i32 * 11 - 300)),
    );
    let b = StringArray::from_iter(
        rows.iter()
            .map(|row| row.filter(|r| r % 6 != 2).map(|r| format!("b{r}"))),
    );
    let fields = Fields::from(vec![
        Field::new("a", DataType::Int32, true),
        Field::new("b", DataType::Utf8, true),
    ]);
    let validity = NullBuffer::from(rows.iter().map(Option::is_some).collect::<Vec<_>>());
    Arc::new(StructArray::new(
        fields,
        vec![Arc::new(a), Arc::new(b)],
        Some(validity),
    ))
}

/// The columns as batches of `batch_rows` rows.
fn batches(columns: &[Column], batch_rows: usize) -> Vec<RecordBatch> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|c| Field::new(c.name, c.array.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema,
        columns.iter().map(|c| Arc::clone(&c.array)).collect(),
    )
    .expect("the columns make a batch");
    (0..ROWS)
        .step_by(batch_rows)
        .map(|start| batch.slice(start, batch_rows.min(ROWS - start)))
        .collect()
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("a UTF-8 temp path").to_string()
}

/// Writes `batches` as a `connector` table at `dir` (parallelism 2), with
/// `extra` options.
async fn weir_writes(connector: &str, dir: &Path, extra: &[(&str, &str)], batches: &[RecordBatch]) {
    let path = path_text(dir);
    let mut pairs = vec![("path", path.as_str())];
    pairs.extend_from_slice(extra);
    common::write(connector, batches, &pairs, FailurePlan::none(), 0)
        .await
        .unwrap_or_else(|e| panic!("weir writing {connector} to {path}: {e}"));
}

/// What weir reads from the `connector` table at `dir` (parallelism 3),
/// with `extra` options.
async fn weir_reads(connector: &str, dir: &Path, extra: &[(&str, &str)]) -> Vec<RecordBatch> {
    let path = path_text(dir);
    let mut pairs = vec![("path", path.as_str())];
    pairs.extend_from_slice(extra);
    let source = common::source(connector, &pairs)
        .await
        .unwrap_or_else(|e| panic!("weir reading {connector} from {path}: {e}"));
    common::read(source, None, None).await.0
}

/// What pyarrow reads from the Parquet files under `dir` (a dataset, hive
/// partitions as columns), and per file its row groups, its codecs (as
/// DuckDB names them: pyarrow calls LZ4_RAW `LZ4`) and the Parquet logical
/// type of every column.
fn pyarrow_reads(dir: &Path) -> (Table, Vec<Value>) {
    let program = format!(
        "{PRELUDE}\n{}",
        r#"
import duckdb, pyarrow.dataset as ds, pyarrow.parquet as pq
dataset = ds.dataset(sys.argv[1], format="parquet", partitioning="hive")
files = []
for path in sorted(dataset.files):
    parquet = pq.ParquetFile(path)
    codecs = duckdb.execute(
        f"SELECT DISTINCT compression FROM parquet_metadata({sql_string(path)}) ORDER BY 1").fetchall()
    columns = [parquet.schema.column(i) for i in range(len(parquet.schema))]
    files.append({"path": path, "row_groups": parquet.metadata.num_row_groups,
                  "codecs": [c for (c,) in codecs],
                  "logical_types": {c.path: str(c.logical_type) for c in columns}})
print(table_json(dataset.to_table()))
print(json.dumps(files))
"#
    );
    let printed = run_python(&program, [dir]);
    let (table, files) = printed
        .trim()
        .split_once('\n')
        .expect("two lines: the table and the files");
    let files: Value = serde_json::from_str(files).expect("the files' JSON");
    (
        Table::from_python(table),
        files.as_array().expect("a list").clone(),
    )
}

/// DuckDB's view of the Parquet files under `dir`.
fn duckdb_parquet_view(dir: &Path) -> String {
    format!(
        "SELECT * FROM read_parquet('{}/**/*.parquet')",
        path_text(dir)
    )
}

/// The harness itself: the canonical forms of Rust and Python agree, and
/// pyarrow names the types as the tests expect (through an Arrow IPC file,
/// no weir connector involved).
#[test]
fn rust_and_python_agree_on_the_canonical_form() {
    let columns = all_types();
    let input = batches(&columns, 40);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("all.arrow");
    let file = std::fs::File::create(&path).expect("the IPC file");
    let mut writer =
        arrow::ipc::writer::FileWriter::try_new(file, &input[0].schema()).expect("a writer");
    for batch in &input {
        writer.write(batch).expect("written");
    }
    writer.finish().expect("finished");
    let program = format!(
        "{PRELUDE}\n{}",
        r#"
with pa.OSFile(sys.argv[1]) as source:
    print(table_json(pa.ipc.open_file(source).read_all()))
"#
    );
    let read = Table::from_python(&run_python(&program, [&path]));
    let types: Vec<(String, String)> = columns
        .iter()
        .map(|c| (c.name.to_string(), c.pyarrow.to_string()))
        .collect();
    assert_eq!(read.schema, types);
    assert_same_rows(&read.rows, &Table::from_batches(&input).rows, "pyarrow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_every_type_weir_writes() {
    let columns = all_types();
    let input = batches(&columns, 25);
    let expected = Table::from_batches(&input);
    let dir = tempfile::tempdir().expect("temp dir");
    let table = dir.path().join("t");
    weir_writes(
        "parquet",
        &table,
        &[("parquet.row-group-rows", "16")],
        &input,
    )
    .await;

    let (read, files) = pyarrow_reads(&table);
    let types: Vec<(String, String)> = columns
        .iter()
        .map(|c| (c.name.to_string(), c.pyarrow.to_string()))
        .collect();
    assert_eq!(read.schema, types, "pyarrow's schema");
    assert_same_rows(&read.rows, &expected.rows, "pyarrow");
    assert_eq!(files.len(), 2, "one file per subtask: {files:#?}");
    for file in &files {
        assert!(
            file["row_groups"].as_u64() > Some(1),
            "row groups of at most 16 rows: {file}"
        );
        for c in &columns {
            let DataType::Timestamp(unit, tz) = c.array.data_type() else {
                continue;
            };
            let logical = file["logical_types"][c.name].as_str().unwrap_or_default();
            let unit = match unit {
                TimeUnit::Millisecond => "milliseconds",
                TimeUnit::Microsecond => "microseconds",
                _ => "nanoseconds",
            };
            assert!(
                logical.contains(&format!("isAdjustedToUTC={}", tz.is_some()))
                    && logical.contains(&format!("timeUnit={unit}")),
                "{}: {logical}",
                c.name
            );
        }
    }

    assert_duckdb(&duckdb_parquet_view(&table), &duckdb_checks(&input));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_the_hive_partitions_weir_writes() {
    let mut columns = all_types();
    columns.retain(|c| ["i64", "utf8", "f64", "date", "dec_9_2"].contains(&c.name));
    let regions = [
        "eu",
        "us west",
        "a/b",
        "ü=%",
        ".dot",
        "_under",
        "comma,plus+",
    ];
    columns.push(column(
        "region",
        "string",
        Arc::new(StringArray::from_iter(
            rows_of(40).map(|row| row.map(|row| regions[row % regions.len()])),
        )),
    ));
    columns.push(column(
        "year",
        "int64",
        Arc::new(Int64Array::from_iter(
            (0..ROWS).map(|row| Some(2020 + (row % 3) as i64)),
        )),
    ));
    let input = batches(&columns, 25);
    let expected = Table::from_batches(&input);
    let dir = tempfile::tempdir().expect("temp dir");
    let table = dir.path().join("t");
    weir_writes(
        "parquet",
        &table,
        &[("partition-by", "region,year")],
        &input,
    )
    .await;

    let (read, _) = pyarrow_reads(&table);
    assert_same_rows(&read.rows, &expected.rows, "pyarrow");
    let read = duckdb_reads(&format!(
        "SELECT * FROM read_parquet('{}/**/*.parquet', hive_partitioning = true, \
         hive_types = {{'region': VARCHAR, 'year': BIGINT}})",
        path_text(&table)
    ));
    assert_same_rows(&read.rows, &expected.rows, "DuckDB");
    let back = Table::from_batches(&weir_reads("parquet", &table, &[]).await);
    assert_same_rows(&back.rows, &expected.rows, "weir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_and_duckdb_read_every_codec_weir_writes() {
    let input = batches(&all_types(), 50);
    let expected = Table::from_batches(&input);
    let dir = tempfile::tempdir().expect("temp dir");
    for (codec, parquet_name) in [
        ("none", "UNCOMPRESSED"),
        ("snappy", "SNAPPY"),
        ("gzip", "GZIP"),
        ("lz4", "LZ4_RAW"),
        ("zstd", "ZSTD"),
    ] {
        let table = dir.path().join(codec);
        weir_writes("parquet", &table, &[("parquet.compression", codec)], &input).await;
        let (read, files) = pyarrow_reads(&table);
        assert_same_rows(&read.rows, &expected.rows, codec);
        for file in &files {
            assert_eq!(
                file["codecs"],
                serde_json::json!([parquet_name]),
                "{codec}: {file}"
            );
        }
        assert_duckdb(&duckdb_parquet_view(&table), &duckdb_checks(&input));
    }
}

/// A pyarrow table of many types with nulls, as Python source: `table(n)`.
const PYARROW_TABLE: &str = r#"
import datetime, decimal
import pyarrow as pa

def table(n):
    def col(f, every=7, offset=0):
        return [None if (i + offset) % every == 3 else f(i) for i in range(n)]
    utc = datetime.timezone.utc
    base = datetime.datetime(2024, 2, 29, 12, 30, 45, 123456)
    return pa.table({
        "i8": pa.array(col(lambda i: (i % 256) - 128), pa.int8()),
        "i16": pa.array(col(lambda i: i * 301 - 15000, offset=1), pa.int16()),
        "i32": pa.array(col(lambda i: i * 1_000_003 - 2**31 if i else 2**31 - 1, offset=2), pa.int32()),
        "i64": pa.array(col(lambda i: i * 10**15 - 2**62, offset=3), pa.int64()),
        "u8": pa.array(col(lambda i: 255 - i % 256, offset=4), pa.uint8()),
        "u16": pa.array(col(lambda i: 65535 - i * 7, offset=5), pa.uint16()),
        "u32": pa.array(col(lambda i: 2**32 - 1 - i * 1_000_001, offset=6), pa.uint32()),
        "u64": pa.array(col(lambda i: 2**64 - 1 - i * 10**17), pa.uint64()),
        "f32": pa.array(col(lambda i: [float("inf"), float("nan"), -0.5][i] if i < 3 else i / 8, offset=1), pa.float32()),
        "f64": pa.array(col(lambda i: i / 3 - 7.25, offset=2), pa.float64()),
        "flag": pa.array(col(lambda i: i % 3 == 1, offset=3), pa.bool_()),
        "utf8": pa.array(col(lambda i: ["", "ümlaut", "日本", "comma,quote\""][i] if i < 4 else f"v{i}", offset=4), pa.string()),
        "large_utf8": pa.array(col(lambda i: "x" * (i % 17), offset=5), pa.large_string()),
        "bin": pa.array(col(lambda i: bytes([i % 256, 0, 255]) * (i % 3), offset=6), pa.binary()),
        "date": pa.array(col(lambda i: datetime.date(1969, 12, 31) + datetime.timedelta(days=i * 97)), pa.date32()),
        "ts_ms": pa.array(col(lambda i: base + datetime.timedelta(hours=i, milliseconds=i), offset=1), pa.timestamp("ms")),
        "ts_us_utc": pa.array(col(lambda i: (base + datetime.timedelta(days=i, microseconds=i)).replace(tzinfo=utc), offset=2), pa.timestamp("us", tz="UTC")),
        "ts_ns": pa.array(col(lambda i: 1_709_209_845_123_456_789 + i * 1_000_000_007, offset=3), pa.timestamp("ns")),
        "ts_ns_tokyo": pa.array(col(lambda i: -i * 3_600_000_000_001, offset=4), pa.timestamp("ns", tz="Asia/Tokyo")),
        "dec_7_3": pa.array(col(lambda i: decimal.Decimal(i * 1001 - 50000).scaleb(-3), offset=5), pa.decimal128(7, 3)),
        "dec_20_4": pa.array(col(lambda i: decimal.Decimal(i * 10**15 + 7).scaleb(-4), offset=6), pa.decimal128(20, 4)),
        "dict": pa.array(col(lambda i: ["north", "south", "east"][i % 3]), pa.string()).dictionary_encode(),
        "list_i64": pa.array(col(lambda i: [i, None, -i][: i % 4], offset=1), pa.list_(pa.int64())),
        "list_utf8": pa.array(col(lambda i: [f"w{j}" if j != 1 else None for j in range(i % 3)], offset=2), pa.list_(pa.string())),
        "rec": pa.array(col(lambda i: {"a": i if i % 4 else None, "b": None if i % 5 == 0 else f"b{i}"}, offset=3),
                        pa.struct([("a", pa.int32()), ("b", pa.string())])),
    })
"#;

/// Asserts that weir reads exactly `truth` from the table at `path`.
async fn assert_weir_reads(path: &Path, truth: &Table, what: &str) {
    let batches = weir_reads("parquet", path, &[]).await;
    let got = Table::from_batches(&batches);
    assert_same_rows(&got.rows, &truth.rows, what);
    if let Some(batch) = batches.first() {
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, truth.names(), "{what}: the columns");
    }
}

/// Runs `program` (after the prelude and [`PYARROW_TABLE`]) with the output
/// directory and `more` as its arguments; it prints `{variant: table_json(...)}`, each
/// variant a table under `<dir>/<variant>`.
fn python_tables(program: &str, dir: &Path, more: &[&str]) -> Vec<(String, Table)> {
    let args = std::iter::once(path_text(dir)).chain(more.iter().map(|a| a.to_string()));
    let printed = run_python(&format!("{PRELUDE}\n{PYARROW_TABLE}\n{program}"), args);
    let variants: serde_json::Map<String, Value> =
        serde_json::from_str(printed.trim()).expect("the variants' JSON");
    variants
        .into_iter()
        .map(|(name, table)| (name, Table::from_python(&table.to_string())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_reads_what_pyarrow_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let variants = python_tables(
        r#"
import os, pyarrow.parquet as pq
out, t = sys.argv[1], table(60)
plain_encodings = {"i32": "DELTA_BINARY_PACKED", "i64": "DELTA_BINARY_PACKED",
                   "utf8": "DELTA_BYTE_ARRAY", "large_utf8": "DELTA_LENGTH_BYTE_ARRAY",
                   "f64": "BYTE_STREAM_SPLIT"}
variants = {
    "default": {},
    "zstd": {"compression": "zstd"},
    "gzip": {"compression": "gzip", "row_group_size": 7},
    "plain": {"use_dictionary": False, "compression": "none"},
    "encodings": {"use_dictionary": False, "column_encoding": plain_encodings},
    "page_v2": {"data_page_version": "2.0", "data_page_size": 64, "row_group_size": 25},
    "legacy_v1": {"version": "1.0", "use_dictionary": ["utf8"], "coerce_timestamps": "us",
                  "allow_truncated_timestamps": True},
    "v2_4": {"version": "2.4", "write_statistics": False, "coerce_timestamps": "us",
             "allow_truncated_timestamps": True},
}
result = {}
for name, kwargs in variants.items():
    os.makedirs(os.path.join(out, name))
    path = os.path.join(out, name, "data.parquet")
    pq.write_table(t, path, **kwargs)
    result[name] = json.loads(table_json(pq.read_table(path)))
print(json.dumps(result))
"#,
        dir.path(),
        &[],
    );
    assert_eq!(variants.len(), 8);
    for (variant, truth) in &variants {
        assert_eq!(truth.rows.len(), 60, "{variant}");
        assert_weir_reads(
            &dir.path().join(variant),
            truth,
            &format!("pyarrow {variant}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_reads_a_hive_dataset_pyarrow_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let variants = python_tables(
        r#"
import os, pyarrow.compute as pc, pyarrow.dataset as ds
out, t = sys.argv[1], table(80)
n = t.num_rows
t = t.append_column("region", pa.array([None if i % 9 == 4 else ["eu", "us", "ap"][i % 3] for i in range(n)]))
t = t.append_column("year", pa.array([2020 + i % 4 for i in range(n)], pa.int32()))
target = os.path.join(out, "hive")
ds.write_dataset(t, target, format="parquet", partitioning=["region", "year"],
                 partitioning_flavor="hive", max_rows_per_group=16, max_rows_per_file=32)
print(json.dumps({"hive": json.loads(table_json(ds.dataset(target, format="parquet", partitioning="hive").to_table()))}))
"#,
        dir.path(),
        &[],
    );
    let (_, truth) = &variants[0];
    assert_eq!(truth.rows.len(), 80);
    assert_weir_reads(&dir.path().join("hive"), truth, "pyarrow hive dataset").await;
}

/// A DuckDB query of many types with nulls, 50 rows.
const DUCKDB_QUERY: &str = r#"
SELECT
    CASE WHEN i % 7 = 3 THEN NULL ELSE (i - 25)::TINYINT END AS i8,
    CASE WHEN i % 7 = 4 THEN NULL ELSE i * 1000003 - 2147483647 END::INTEGER AS i32,
    CASE WHEN i % 7 = 5 THEN NULL ELSE i * 100000000000007 END::BIGINT AS i64,
    CASE WHEN i % 7 = 6 THEN NULL ELSE 18446744073709551615 - i END::UBIGINT AS u64,
    CASE WHEN i % 7 = 0 THEN NULL ELSE i / 8 END::DOUBLE AS f64,
    CASE WHEN i % 7 = 1 THEN NULL ELSE i / 4 - 3 END::FLOAT AS f32,
    CASE WHEN i % 7 = 2 THEN NULL ELSE i % 3 = 0 END AS flag,
    CASE WHEN i % 7 = 3 THEN NULL ELSE 'd' || i || CASE WHEN i % 5 = 0 THEN ' ä,"x"' ELSE '' END END AS utf8,
    CASE WHEN i % 7 = 4 THEN NULL ELSE ('\x00\xFF' || i)::BLOB END AS bin,
    CASE WHEN i % 7 = 5 THEN NULL ELSE DATE '1999-12-31' + (i * 40)::INTEGER END AS date,
    CASE WHEN i % 7 = 6 THEN NULL ELSE TIMESTAMP '2024-01-01 00:00:00.123456' + INTERVAL (i * 3601) SECOND END AS ts,
    CASE WHEN i % 7 = 0 THEN NULL ELSE TIMESTAMPTZ '2024-06-01 12:00:00+00' + INTERVAL (i) HOUR END AS ts_tz,
    CASE WHEN i % 7 = 1 THEN NULL ELSE (i * 12.34 - 300)::DECIMAL(9, 2) END AS dec_9_2,
    CASE WHEN i % 7 = 2 THEN NULL ELSE (i * 123456789012345.6789)::DECIMAL(30, 4) END AS dec_30_4,
    CASE WHEN i % 7 = 3 THEN NULL ELSE [i, NULL, i * 2][1:(i % 4)] END AS list_i64,
    CASE WHEN i % 7 = 4 THEN NULL ELSE {'a': CASE WHEN i % 5 = 0 THEN NULL ELSE i::INTEGER END, 'b': 'b' || i} END AS rec,
    ['eu', 'us', 'ap'][1 + i % 3] AS region
FROM range(50) r(i)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_reads_what_duckdb_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let variants = python_tables(
        r#"
import os, duckdb, pyarrow.dataset as ds, pyarrow.parquet as pq
out, query = sys.argv[1], sys.argv[2]
con = duckdb.connect()
variants = {
    "default": "FORMAT parquet",
    "zstd": "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 10",
    "gzip": "FORMAT parquet, COMPRESSION gzip",
    "uncompressed_v2": "FORMAT parquet, COMPRESSION uncompressed, PARQUET_VERSION v2",
}
result = {}
for name, copy_options in variants.items():
    os.makedirs(os.path.join(out, name))
    path = os.path.join(out, name, "data.parquet")
    con.execute(f"COPY ({query}) TO {sql_string(path)} ({copy_options})")
    result[name] = json.loads(table_json(pq.read_table(path)))
target = os.path.join(out, "partitioned")
con.execute(f"COPY ({query}) TO {sql_string(target)} (FORMAT parquet, PARTITION_BY (region))")
result["partitioned"] = json.loads(table_json(
    ds.dataset(target, format="parquet", partitioning="hive").to_table()))
print(json.dumps(result))
"#,
        dir.path(),
        &[DUCKDB_QUERY],
    );
    assert_eq!(variants.len(), 5);
    for (variant, truth) in &variants {
        assert_eq!(truth.rows.len(), 50, "{variant}");
        assert_weir_reads(
            &dir.path().join(variant),
            truth,
            &format!("DuckDB {variant}"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_the_arrow_ipc_weir_writes() {
    let columns = all_types();
    let input = batches(&columns, 25);
    let expected = Table::from_batches(&input);
    let types: Vec<(String, String)> = columns
        .iter()
        .map(|c| (c.name.to_string(), c.pyarrow.to_string()))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    for codec in ["none", "lz4", "zstd"] {
        let table = dir.path().join(codec);
        weir_writes("ipc", &table, &[("ipc.compression", codec)], &input).await;
        let program = format!(
            "{PRELUDE}\n{}",
            r#"
import glob, os
paths = sorted(glob.glob(os.path.join(sys.argv[1], "**", "*.arrow"), recursive=True))
assert len(paths) == 2, paths
print(table_json(pa.concat_tables(pa.ipc.open_file(p).read_all() for p in paths)))
"#
        );
        let read = Table::from_python(&run_python(&program, [&table]));
        assert_eq!(read.schema, types, "{codec}: pyarrow's schema");
        assert_same_rows(&read.rows, &expected.rows, &format!("pyarrow, IPC {codec}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_reads_the_arrow_ipc_pyarrow_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let variants = python_tables(
        r#"
import os, pyarrow.feather as feather
out, t = sys.argv[1], table(60)
result = {}
def write(name, writer_of, options=None):
    os.makedirs(os.path.join(out, name))
    with writer_of(os.path.join(out, name, "data.arrow"), t.schema, options=options) as writer:
        for batch in t.to_batches(max_chunksize=16):
            writer.write_batch(batch)
    result[name] = json.loads(table_json(t))
write("file", pa.ipc.new_file)
write("file_zstd", pa.ipc.new_file, pa.ipc.IpcWriteOptions(compression="zstd"))
write("file_lz4", pa.ipc.new_file, pa.ipc.IpcWriteOptions(compression="lz4"))
write("stream", pa.ipc.new_stream)
os.makedirs(os.path.join(out, "feather"))
feather.write_feather(t.combine_chunks(), os.path.join(out, "feather", "data.arrow"), chunksize=25)
result["feather"] = json.loads(table_json(t))
print(json.dumps(result))
"#,
        dir.path(),
        &[],
    );
    assert_eq!(variants.len(), 5);
    for (variant, truth) in &variants {
        let batches = weir_reads("ipc", &dir.path().join(variant), &[]).await;
        let got = Table::from_batches(&batches);
        assert_same_rows(&got.rows, &truth.rows, &format!("pyarrow IPC {variant}"));
    }
}

/// A small table for the text formats: numbers, strings that need quoting,
/// booleans, dates, nulls.
fn text_table() -> Vec<RecordBatch> {
    let columns = vec![
        column(
            "id",
            "int64",
            Arc::new(Int64Array::from_iter(
                (0..ROWS).map(|row| Some(row as i64 - 3)),
            )),
        ),
        column(
            "amount",
            "double",
            Arc::new(Float64Array::from_iter(values(
                1,
                &[0.5, -1e-7, 1e300],
                |row| row as f64 * 1.25 - 40.0,
            ))),
        ),
        column(
            "name",
            "string",
            Arc::new(StringArray::from_iter(rows_of(2).map(|row| {
                row.map(|row| match row % 5 {
                    0 => format!("comma, {row}"),
                    1 => format!("quote \"{row}\""),
                    2 => format!("line\nbreak {row}"),
                    3 => format!("ünï {row}"),
                    _ => format!("plain{row}"),
                })
            }))),
        ),
        column(
            "ok",
            "bool",
            Arc::new(BooleanArray::from_iter(values(3, &[], |row| row % 2 == 0))),
        ),
        column(
            "day",
            "date32[day]",
            Arc::new(Date32Array::from_iter(values(4, &[], |row| {
                19_000 + row as i32
            }))),
        ),
    ];
    batches(&columns, 30)
}

/// DuckDB's types of [`text_table`]'s columns.
const TEXT_COLUMNS: &str =
    "{'id': 'BIGINT', 'amount': 'DOUBLE', 'name': 'VARCHAR', 'ok': 'BOOLEAN', 'day': 'DATE'}";

/// What DuckDB's `query` returns.
fn duckdb_reads(query: &str) -> Table {
    let program = format!(
        "{PRELUDE}\n{}",
        r#"
import duckdb
print(table_json(duckdb.connect().execute(sys.argv[1]).to_arrow_table()))
"#
    );
    Table::from_python(&run_python(&program, [query]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_csv_weir_writes() {
    let input = text_table();
    let expected = Table::from_batches(&input);
    let dir = tempfile::tempdir().expect("temp dir");
    let table = dir.path().join("csv");
    weir_writes("csv", &table, &[("csv.null-string", "NULL")], &input).await;
    let files = format!("{}/*.csv", path_text(&table));
    for (reader, what) in [
        (
            format!(
                "SELECT * FROM read_csv('{files}', header = true, nullstr = 'NULL', columns = {TEXT_COLUMNS})"
            ),
            "with the columns given",
        ),
        (
            format!("SELECT * FROM read_csv('{files}', nullstr = 'NULL')"),
            "detecting the dialect and types",
        ),
    ] {
        let read = duckdb_reads(&reader);
        assert_eq!(
            read.names(),
            ["id", "amount", "name", "ok", "day"],
            "{what}"
        );
        assert_same_rows(
            &read.rows,
            &expected.rows,
            &format!("DuckDB reading weir's CSV {what}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_reads_the_json_lines_weir_writes() {
    let input = text_table();
    let expected = Table::from_batches(&input);
    let dir = tempfile::tempdir().expect("temp dir");
    let table = dir.path().join("json");
    weir_writes("json", &table, &[], &input).await;
    let files = format!("{}/*.jsonl", path_text(&table));
    for (reader, what) in [
        (
            format!(
                "SELECT * FROM read_json('{files}', format = 'newline_delimited', \
                 columns = {TEXT_COLUMNS})"
            ),
            "with the columns given",
        ),
        // DuckDB detects integers as HUGEINT, which pyarrow sees as decimals.
        (
            format!("SELECT * REPLACE (id::BIGINT AS id) FROM read_json('{files}')"),
            "detecting the types",
        ),
    ] {
        let read = duckdb_reads(&reader);
        assert_same_rows(
            &read.rows,
            &expected.rows,
            &format!("DuckDB reading weir's JSON lines {what}"),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weir_reads_the_csv_and_json_duckdb_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let variants = python_tables(
        r#"
import os, duckdb
out = sys.argv[1]
con = duckdb.connect()
query = """
SELECT i - 3 AS id,
       CASE WHEN i % 7 = 1 THEN NULL ELSE i * 1.25 - 40 END::DOUBLE AS amount,
       CASE WHEN i % 7 = 2 THEN NULL
            ELSE ['comma, ', 'quote "', 'line' || chr(10) || 'break ', 'ünï ', 'plain'][1 + i % 5] || i END AS name,
       CASE WHEN i % 7 = 3 THEN NULL ELSE i % 2 = 0 END AS ok,
       CASE WHEN i % 7 = 4 THEN NULL ELSE DATE '2022-01-08' + i::INTEGER END AS day
FROM range(100) r(i)
"""
truth = json.loads(table_json(con.execute(query).to_arrow_table()))
result = {}
for name, copy_options in {"csv": "HEADER, NULLSTR 'NULL'", "json": "FORMAT json"}.items():
    os.makedirs(os.path.join(out, name))
    path = os.path.join(out, name, "data." + name)
    con.execute(f"COPY ({query}) TO {sql_string(path)} ({copy_options})")
    result[name] = truth
print(json.dumps(result))
"#,
        dir.path(),
        &[],
    );
    let schema = "id BIGINT, amount DOUBLE, name VARCHAR, ok BOOLEAN, day DATE";
    for (format, truth) in &variants {
        let mut options = vec![("schema", schema)];
        // Inferred from CSV as given; JSON has no dates, they stay strings.
        let mut given = vec![true];
        if format == "csv" {
            options.push(("csv.null-string", "NULL"));
            given.push(false);
        }
        for given in given {
            let options = if given { &options[..] } else { &options[1..] };
            let batches = weir_reads(format, &dir.path().join(format), options).await;
            assert_same_rows(
                &Table::from_batches(&batches).rows,
                &truth.rows,
                &format!("weir reading DuckDB's {format}, schema given: {given}"),
            );
        }
    }
}
