//! Differential tests of sort, top-N and limit against a naive reference:
//! rows as vectors of `ScalarValue`s, ordered by a stable sort that compares
//! them key by key. Every operator here is stable, so the rows must come out
//! exactly in the reference order, with and without spilling.

use std::cmp::Ordering;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Field, Schema};
use datafusion_common::ScalarValue;
use weir_engine::expr::{Compiled, Expr, col, lit};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{Limit, Sort, SortKey, TopN};
use weir_engine::testing::{
    ColumnKind, ColumnSpec, Rng, SpillDir, drive, drive_in_parts, random_batch, random_schema,
    rebatch, rows, task_info,
};
use weir_engine::{Error, OperatorFactory, Output};

const BATCH_SIZES: [usize; 3] = [1, 7, 8192];

/// One nullable column of every kind, with few distinct values so keys tie
/// often, and a near-unique payload that tells tied rows apart.
fn columns() -> Vec<ColumnSpec> {
    let mut columns: Vec<_> = ColumnKind::ALL
        .iter()
        .enumerate()
        .map(|(i, &kind)| {
            ColumnSpec::new(format!("{kind:?}").to_lowercase(), kind, 3 + 9 * i as u64)
                .with_nulls(0.15)
        })
        .collect();
    columns.push(ColumnSpec::new("payload", ColumnKind::Int64, 1 << 40));
    columns
}

/// An ordering: the expressions and their directions.
struct KeyOrder {
    exprs: Vec<Expr>,
    descending: Vec<bool>,
    nulls_first: Vec<bool>,
}

impl KeyOrder {
    /// A random ordering of one to three column keys led by column `first`.
    fn random(rng: &mut Rng, first: usize) -> Self {
        let names: Vec<String> = columns().into_iter().map(|c| c.name).collect();
        let mut picked = vec![first];
        for _ in 0..rng.below(3) {
            let c = rng.below(ColumnKind::ALL.len() as u64) as usize;
            if !picked.contains(&c) {
                picked.push(c);
            }
        }
        let n = picked.len();
        Self {
            exprs: picked.iter().map(|&c| col(names[c].as_str())).collect(),
            descending: (0..n).map(|_| rng.chance(0.5)).collect(),
            nulls_first: (0..n).map(|_| rng.chance(0.5)).collect(),
        }
    }

    fn keys(&self, schema: &Schema) -> Vec<SortKey> {
        self.exprs
            .iter()
            .zip(&self.descending)
            .zip(&self.nulls_first)
            .map(|((expr, &descending), &nulls_first)| SortKey {
                expr: Compiled::new(expr, schema).expect("key compiles"),
                descending,
                nulls_first,
            })
            .collect()
    }
}

/// What the operators must produce for `input` ordered by `keys`: the key
/// columns and the whole rows, each rendered one line per row, in order.
struct Reference {
    keys: Vec<String>,
    rows: Vec<String>,
}

impl Reference {
    fn new(input: &[RecordBatch], keys: &[SortKey]) -> Self {
        let all = concat_batches(&random_schema(&columns()), input).expect("concat");
        let key_columns = key_columns(&all, keys);
        let values: Vec<Vec<ScalarValue>> = (0..all.num_rows())
            .map(|row| {
                key_columns
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, row).expect("scalar"))
                    .collect()
            })
            .collect();
        let mut order: Vec<usize> = (0..all.num_rows()).collect();
        // `sort_by` is stable: ties keep their input order.
        order.sort_by(|&a, &b| compare_rows(&values[a], &values[b], keys));
        let key_lines = render(&key_columns);
        let row_lines = rows(&[all]);
        Self {
            keys: order.iter().map(|&i| key_lines[i].clone()).collect(),
            rows: order.iter().map(|&i| row_lines[i].clone()).collect(),
        }
    }

    /// Asserts that `output` is the reference rows `range` of it, exactly.
    fn check(&self, output: &[RecordBatch], keys: &[SortKey], range: std::ops::Range<usize>) {
        assert!(
            output.iter().all(|b| b.num_rows() <= 8192),
            "output batches hold at most 8192 rows"
        );
        let end = range.end.min(self.rows.len());
        let start = range.start.min(end);
        let out_keys = match output.first() {
            Some(first) => render(&key_columns(
                &concat_batches(&first.schema(), output).expect("concat"),
                keys,
            )),
            None => Vec::new(),
        };
        assert_eq!(out_keys, self.keys[start..end], "key columns in order");
        assert_eq!(rows(output), self.rows[start..end], "whole rows in order");
    }
}

fn key_columns(batch: &RecordBatch, keys: &[SortKey]) -> Vec<ArrayRef> {
    keys.iter()
        .map(|k| k.expr.evaluate(batch).expect("key evaluates"))
        .collect()
}

fn render(columns: &[ArrayRef]) -> Vec<String> {
    let fields: Vec<_> = (0..columns.len())
        .map(|i| Field::new(format!("k{i}"), columns[i].data_type().clone(), true))
        .collect();
    let batch =
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns.to_vec()).expect("key batch");
    rows(&[batch])
}

/// Compares two rows key by key: nulls where the key puts them, values in
/// the key's direction.
fn compare_rows(a: &[ScalarValue], b: &[ScalarValue], keys: &[SortKey]) -> Ordering {
    for ((x, y), key) in a.iter().zip(b).zip(keys) {
        let ordering = match (x.is_null(), y.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) if key.nulls_first => Ordering::Less,
            (true, false) => Ordering::Greater,
            (false, true) if key.nulls_first => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                let values = match (x, y) {
                    // Floats order totally, as the row format orders them.
                    (ScalarValue::Float64(Some(x)), ScalarValue::Float64(Some(y))) => {
                        x.total_cmp(y)
                    }
                    _ => x.partial_cmp(y).expect("values of one type compare"),
                };
                if key.descending {
                    values.reverse()
                } else {
                    values
                }
            }
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// `rows` random rows cut into batches of `batch_size` (slices of one
/// batch).
fn sliced_input(rng: &mut Rng, rows: usize, batch_size: usize) -> Vec<RecordBatch> {
    rebatch(&[random_batch(rng, &columns(), rows)], batch_size)
}

/// `rows` random rows in separately allocated batches of `batch_size`, so
/// each batch's memory is its own (slices would all count the shared
/// buffers).
fn owned_input(rng: &mut Rng, rows: usize, batch_size: usize) -> Vec<RecordBatch> {
    (0..rows.div_ceil(batch_size))
        .map(|i| random_batch(rng, &columns(), batch_size.min(rows - i * batch_size)))
        .collect()
}

#[test]
fn sort_matches_the_reference_for_every_key_type() {
    let schema = random_schema(&columns());
    for seed in 0..70u64 {
        let mut rng = Rng::new(seed);
        let ordering = KeyOrder::random(&mut rng, seed as usize % ColumnKind::ALL.len());
        let keys = ordering.keys(&schema);
        let sort = Sort::try_new(keys.clone()).expect("valid sort");
        let row_count = rng.below(3000) as usize;
        for batch_size in BATCH_SIZES {
            let input = sliced_input(&mut rng, row_count, batch_size);
            let out = drive(&sort, std::slice::from_ref(&input), MemoryPool::unbounded())
                .unwrap_or_else(|e| panic!("seed {seed}, {}: {e}", sort.name()));
            Reference::new(&input, &keys).check(&out, &keys, 0..usize::MAX);
        }
    }
}

#[test]
fn sort_by_expressions_matches_the_reference() {
    let schema = random_schema(&columns());
    let keys = vec![
        SortKey::desc(Compiled::new(&(col("int32") % lit(4)), &schema).expect("compiles")),
        SortKey::asc(Compiled::new(&(col("decimal") * lit(-2)), &schema).expect("compiles"))
            .with_nulls_first(true),
    ];
    let sort = Sort::try_new(keys.clone()).expect("valid sort");
    assert_eq!(
        sort.name(),
        "sort(int32 % Int32(4) DESC NULLS FIRST, decimal * Int32(-2) ASC NULLS FIRST)"
    );
    for seed in 0..4 {
        let input = sliced_input(&mut Rng::new(seed), 3000, 7);
        let out =
            drive(&sort, std::slice::from_ref(&input), MemoryPool::unbounded()).expect("sorts");
        Reference::new(&input, &keys).check(&out, &keys, 0..usize::MAX);
    }
}

#[test]
fn sort_spills_under_a_tiny_budget_with_identical_results() {
    let schema = random_schema(&columns());
    for (seed, (batch_size, rows)) in [(1, 300), (7, 2000), (8192, 20_000)]
        .into_iter()
        .enumerate()
    {
        let dir = SpillDir::new();
        let mut rng = Rng::new(100 + seed as u64);
        let keys = KeyOrder::random(&mut rng, 2 + seed).keys(&schema);
        let input = owned_input(&mut rng, rows, batch_size);
        let reference = Reference::new(&input, &keys);
        // The default fan-in merges the runs at once; a fan-in of 3 merges
        // them into longer runs first, over several levels.
        for fan_in in [64, 3] {
            let sort = Sort::try_new(keys.clone())
                .expect("valid sort")
                .with_merge_fan_in(fan_in);
            let pool = dir.pool(8 * 1024, true);
            let out = drive(&sort, std::slice::from_ref(&input), pool.clone())
                .unwrap_or_else(|e| panic!("batch size {batch_size}: {e}"));
            reference.check(&out, &keys, 0..usize::MAX);
            assert!(pool.spill_files() > 0, "batch size {batch_size}: spilled");
            assert_eq!(pool.used(), 0, "memory returned");
            assert_eq!(dir.files(), 0, "spill files go with the operator");
        }
    }
}

#[test]
fn a_large_sort_emits_in_parts_in_memory_and_spilled() {
    let dir = SpillDir::new();
    let schema = random_schema(&columns());
    let mut rng = Rng::new(4242);
    let keys = KeyOrder::random(&mut rng, 1).keys(&schema);
    let input = owned_input(&mut rng, 200_000, 8192);
    let reference = Reference::new(&input, &keys);
    let sort = Sort::try_new(keys.clone()).expect("valid sort");
    for (label, pool) in [
        ("in memory", MemoryPool::unbounded()),
        ("spilled", dir.pool(4 << 20, true)),
    ] {
        let emitted = drive_in_parts(&sort, std::slice::from_ref(&input), pool.clone())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(emitted.inputs.is_empty(), "{label}: nothing before finish");
        emitted.assert_in_parts(label);
        assert_eq!(pool.spill_files() > 0, label == "spilled", "{label}");
        reference.check(&emitted.all(), &keys, 0..usize::MAX);
        assert_eq!(pool.used(), 0, "{label}: memory returned");
    }
    assert_eq!(dir.files(), 0, "spill files go with the operator");
}

#[test]
fn sort_without_spilling_fails_naming_itself() {
    let dir = SpillDir::new();
    let schema = random_schema(&columns());
    let sort = Sort::try_new(vec![SortKey::asc(
        Compiled::new(&col("utf8"), &schema).expect("compiles"),
    )])
    .expect("valid sort");
    let input = owned_input(&mut Rng::new(5), 2000, 100);
    let pool = dir.pool(8 * 1024, false);
    let err = drive(&sort, &[input], pool.clone()).expect_err("over budget");
    match &err {
        Error::ResourcesExhausted {
            operator, spill, ..
        } => {
            assert_eq!(operator, &sort.name());
            assert!(!spill);
        }
        other => panic!("expected resources exhausted, got {other}"),
    }
    assert!(
        err.to_string().contains("sort(utf8 ASC NULLS LAST)"),
        "{err}"
    );
    assert_eq!(pool.spill_files(), 0);
    assert_eq!(dir.files(), 0);
}

#[test]
fn a_sort_dropped_midway_leaves_no_spill_files() {
    let dir = SpillDir::new();
    let schema = random_schema(&columns());
    let sort = Sort::try_new(vec![SortKey::asc(
        Compiled::new(&col("int64"), &schema).expect("compiles"),
    )])
    .expect("valid sort");
    let pool = dir.pool(4 * 1024, true);
    let mut op = sort.create(&task_info(pool.clone())).expect("creates");
    let mut out = Output::default();
    for batch in owned_input(&mut Rng::new(9), 500, 25) {
        op.process_batch(0, batch, &mut out)
            .expect("buffers or spills");
    }
    assert!(dir.files() > 0, "runs are on disk while the sort runs");
    drop(op);
    assert_eq!(dir.files(), 0);
    assert_eq!(pool.used(), 0);
}

#[test]
fn top_n_matches_the_reference_slice() {
    let schema = random_schema(&columns());
    for seed in 0..42u64 {
        let mut rng = Rng::new(1000 + seed);
        let keys = KeyOrder::random(&mut rng, seed as usize % ColumnKind::ALL.len()).keys(&schema);
        let row_count = rng.below(3000) as usize;
        let offset = rng.below(40) as usize;
        let fetch = match seed % 3 {
            0 => rng.below(5) as usize,
            1 => rng.below(200) as usize,
            _ => 2000,
        };
        let top_n = TopN::try_new(keys.clone(), offset, fetch).expect("valid top-n");
        for batch_size in BATCH_SIZES {
            let input = sliced_input(&mut rng, row_count, batch_size);
            let out = drive(
                &top_n,
                std::slice::from_ref(&input),
                MemoryPool::unbounded(),
            )
            .unwrap_or_else(|e| panic!("seed {seed}, {}: {e}", top_n.name()));
            Reference::new(&input, &keys).check(&out, &keys, offset..offset + fetch);
        }
    }
}

#[test]
fn top_n_holds_only_its_rows() {
    // A budget far below the input, without spilling: a sort could not run,
    // the top 10 fit.
    let dir = SpillDir::new();
    let schema = random_schema(&columns());
    let keys = vec![
        SortKey::desc(Compiled::new(&col("float64"), &schema).expect("compiles")),
        SortKey::asc(Compiled::new(&col("payload"), &schema).expect("compiles")),
    ];
    let input = owned_input(&mut Rng::new(77), 20_000, 1000);
    let top_n = TopN::try_new(keys.clone(), 5, 10).expect("valid top-n");
    let out = drive(
        &top_n,
        std::slice::from_ref(&input),
        dir.pool(64 * 1024, false),
    )
    .expect("the top rows fit");
    Reference::new(&input, &keys).check(&out, &keys, 5..15);
    let sort = Sort::try_new(keys).expect("valid sort");
    assert!(matches!(
        drive(&sort, &[input], dir.pool(64 * 1024, false)),
        Err(Error::ResourcesExhausted { .. })
    ));
}

#[test]
fn limit_matches_the_reference_slice() {
    for seed in 0..12u64 {
        let mut rng = Rng::new(2000 + seed);
        let row_count = rng.below(3000) as usize;
        let offset = rng.below(if seed % 2 == 0 { 20 } else { 3000 }) as usize;
        let fetch = (seed % 4 != 0).then(|| rng.below(2000) as usize);
        let limit = Limit::new(offset, fetch);
        for batch_size in BATCH_SIZES {
            let input = sliced_input(&mut rng, row_count, batch_size);
            let all = rows(&input);
            let end = fetch.map_or(all.len(), |f| (offset + f).min(all.len()));
            let expected = &all[offset.min(end)..end];
            let out = drive(
                &limit,
                std::slice::from_ref(&input),
                MemoryPool::unbounded(),
            )
            .expect("limits");
            assert_eq!(rows(&out), expected, "{}", limit.name());
        }
    }
}
