//! Differential tests of the hash aggregate and distinct: seeded random
//! data of every key type, grouped and aggregated by the operator in every
//! mode (with and without spilling) and by a naive row-by-row reference
//! over `ScalarValue`s; the results must be identical.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::ScalarValue;
use datafusion_functions_aggregate::count::count_all;
use datafusion_functions_aggregate::expr_fn::{avg, count, count_distinct, max, min, sum};
use weir_engine::expr::{Expr, col};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{AggregateMode, Distinct, HashAggregate};
use weir_engine::testing::{
    ColumnKind, ColumnSpec, Rng, SpillDir, drive, drive_in_parts, random_batch, rebatch, rows,
    sorted_rows, task_info,
};
use weir_engine::{Error, OperatorFactory, Output};

/// An aggregate the reference knows how to compute.
#[derive(Debug, Clone, Copy)]
enum Agg {
    CountAll,
    Count(&'static str),
    Sum(&'static str),
    Min(&'static str),
    Max(&'static str),
    Avg(&'static str),
    CountDistinct(&'static str),
}

impl Agg {
    fn expr(self) -> Expr {
        match self {
            Agg::CountAll => count_all(),
            Agg::Count(c) => count(col(c)),
            Agg::Sum(c) => sum(col(c)),
            Agg::Min(c) => min(col(c)),
            Agg::Max(c) => max(col(c)),
            Agg::Avg(c) => avg(col(c)),
            Agg::CountDistinct(c) => count_distinct(col(c)),
        }
    }

    fn column(self) -> Option<&'static str> {
        match self {
            Agg::CountAll => None,
            Agg::Count(c)
            | Agg::Sum(c)
            | Agg::Min(c)
            | Agg::Max(c)
            | Agg::Avg(c)
            | Agg::CountDistinct(c) => Some(c),
        }
    }

    /// The aggregate of the non-null `values` of a group of `rows` rows,
    /// typed as DataFusion types it.
    fn reference(self, rows: i64, values: &[ScalarValue], input: &DataType) -> ScalarValue {
        let n = values.len() as i64;
        match self {
            Agg::CountAll => ScalarValue::Int64(Some(rows)),
            Agg::Count(_) => ScalarValue::Int64(Some(n)),
            Agg::CountDistinct(_) => {
                let distinct: BTreeSet<String> = values.iter().map(|v| format!("{v:?}")).collect();
                ScalarValue::Int64(Some(distinct.len() as i64))
            }
            Agg::Min(_) | Agg::Max(_) => {
                let pick = |a: ScalarValue, b: &ScalarValue| {
                    let b_first = match self {
                        Agg::Min(_) => b < &a,
                        _ => b > &a,
                    };
                    if b_first { b.clone() } else { a }
                };
                let first = ScalarValue::try_from(input).expect("typed null");
                values
                    .iter()
                    .fold(None, |acc: Option<ScalarValue>, v| {
                        Some(acc.map_or_else(|| v.clone(), |a| pick(a, v)))
                    })
                    .unwrap_or(first)
            }
            Agg::Sum(_) => match input {
                DataType::Int32 | DataType::Int64 => {
                    ScalarValue::Int64((n > 0).then(|| values.iter().map(int).sum::<i64>()))
                }
                DataType::Decimal128(_, scale) => ScalarValue::Decimal128(
                    (n > 0).then(|| values.iter().map(decimal).sum::<i128>()),
                    22,
                    *scale,
                ),
                DataType::Float64 => {
                    ScalarValue::Float64((n > 0).then(|| values.iter().map(float).sum::<f64>()))
                }
                other => panic!("no reference sum over {other}"),
            },
            Agg::Avg(_) => match input {
                DataType::Int32 | DataType::Int64 => ScalarValue::Float64(
                    (n > 0).then(|| values.iter().map(int).sum::<i64>() as f64 / n as f64),
                ),
                // DataFusion: sum scaled to the result's scale (+4), divided
                // by the count, truncated.
                DataType::Decimal128(_, scale) => ScalarValue::Decimal128(
                    (n > 0).then(|| values.iter().map(decimal).sum::<i128>() * 10_000 / n as i128),
                    16,
                    scale + 4,
                ),
                DataType::Float64 => ScalarValue::Float64(
                    (n > 0).then(|| values.iter().map(float).sum::<f64>() / n as f64),
                ),
                other => panic!("no reference avg over {other}"),
            },
        }
    }
}

fn int(v: &ScalarValue) -> i64 {
    match v {
        ScalarValue::Int32(Some(v)) => i64::from(*v),
        ScalarValue::Int64(Some(v)) => *v,
        other => panic!("not an integer: {other:?}"),
    }
}

fn decimal(v: &ScalarValue) -> i128 {
    match v {
        ScalarValue::Decimal128(Some(v), _, _) => *v,
        other => panic!("not a decimal: {other:?}"),
    }
}

fn float(v: &ScalarValue) -> f64 {
    match v {
        ScalarValue::Float64(Some(v)) => *v,
        other => panic!("not a float: {other:?}"),
    }
}

/// The value columns every case aggregates (all with nulls).
fn value_columns() -> Vec<ColumnSpec> {
    vec![
        ColumnSpec::new("v_i32", ColumnKind::Int32, 1000).with_nulls(0.2),
        ColumnSpec::new("v_i64", ColumnKind::Int64, 1_000_000).with_nulls(0.1),
        ColumnSpec::new("v_dec", ColumnKind::Decimal, 100_000).with_nulls(0.15),
        ColumnSpec::new("v_f64", ColumnKind::Float64, 500).with_nulls(0.1),
        ColumnSpec::new("v_str", ColumnKind::Utf8, 50).with_nulls(0.3),
        ColumnSpec::new("v_date", ColumnKind::Date32, 300).with_nulls(0.1),
        ColumnSpec::new("v_bool", ColumnKind::Boolean, 2).with_nulls(0.1),
    ]
}

fn all_aggregates() -> Vec<Agg> {
    vec![
        Agg::CountAll,
        Agg::Count("v_i32"),
        Agg::Count("v_str"),
        Agg::Sum("v_i32"),
        Agg::Sum("v_i64"),
        Agg::Sum("v_dec"),
        Agg::Sum("v_f64"),
        Agg::Min("v_str"),
        Agg::Max("v_str"),
        Agg::Min("v_dec"),
        Agg::Max("v_i64"),
        Agg::Min("v_date"),
        Agg::Max("v_bool"),
        Agg::Min("v_f64"),
        Agg::Avg("v_i32"),
        Agg::Avg("v_dec"),
        Agg::Avg("v_f64"),
        Agg::CountDistinct("v_str"),
        Agg::CountDistinct("v_i32"),
    ]
}

/// Aggregates that keep spill tests quick (DISTINCT is covered elsewhere).
fn plain_aggregates() -> Vec<Agg> {
    all_aggregates()
        .into_iter()
        .filter(|a| !matches!(a, Agg::CountDistinct(_)))
        .collect()
}

/// One random input: key columns `keys`, then the value columns.
struct Case {
    keys: Vec<ColumnSpec>,
    aggregates: Vec<Agg>,
    batches: Vec<RecordBatch>,
    label: String,
}

impl Case {
    fn new(seed: u64, keys: Vec<ColumnSpec>, rows: usize, batch_rows: usize) -> Self {
        let mut columns = keys.clone();
        columns.extend(value_columns());
        let all = random_batch(&mut Rng::new(seed), &columns, rows);
        let label = format!(
            "seed {seed}, keys {:?}, {rows} rows in batches of {batch_rows}",
            keys.iter()
                .map(|k| (k.kind, k.distinct, k.nulls))
                .collect::<Vec<_>>()
        );
        Self {
            keys,
            aggregates: all_aggregates(),
            batches: rebatch(&[all], batch_rows),
            label,
        }
        .with_empty_batch_first()
    }

    /// An empty batch in front: operators must take those in stride.
    fn with_empty_batch_first(mut self) -> Self {
        if let Some(first) = self.batches.first() {
            self.batches.insert(0, first.slice(0, 0));
        }
        self
    }

    fn with_aggregates(mut self, aggregates: Vec<Agg>) -> Self {
        self.aggregates = aggregates;
        self
    }

    fn schema(&self) -> SchemaRef {
        self.batches[0].schema()
    }

    fn aggregate(&self, mode: AggregateMode) -> HashAggregate {
        let group_by = self
            .keys
            .iter()
            .map(|k| (col(k.name.as_str()), k.name.clone()))
            .collect();
        let aggregates = self
            .aggregates
            .iter()
            .enumerate()
            .map(|(i, a)| (a.expr(), format!("a{i}")))
            .collect();
        HashAggregate::try_new(mode, &self.schema(), group_by, aggregates).expect("plans")
    }

    /// The expected result: group keys, then one value per aggregate,
    /// computed row by row.
    fn reference(&self) -> Reference {
        let schema = self.schema();
        let key_columns: Vec<usize> = self
            .keys
            .iter()
            .map(|k| schema.index_of(&k.name).expect("key column"))
            .collect();
        let value_columns: Vec<Option<usize>> = self
            .aggregates
            .iter()
            .map(|a| {
                a.column()
                    .map(|c| schema.index_of(c).expect("value column"))
            })
            .collect();
        // Rendered key -> (key values, rows, non-null values per aggregate).
        type Group = (Vec<ScalarValue>, i64, Vec<Vec<ScalarValue>>);
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let scalar = |batch: &RecordBatch, column: usize, row: usize| {
            ScalarValue::try_from_array(batch.column(column), row).expect("scalar")
        };
        for batch in &self.batches {
            for row in 0..batch.num_rows() {
                let key: Vec<ScalarValue> =
                    key_columns.iter().map(|&c| scalar(batch, c, row)).collect();
                let group = groups
                    .entry(format!("{key:?}"))
                    .or_insert_with(|| (key, 0, vec![Vec::new(); self.aggregates.len()]));
                group.1 += 1;
                for (values, column) in group.2.iter_mut().zip(&value_columns) {
                    if let Some(column) = column {
                        let value = scalar(batch, *column, row);
                        if !value.is_null() {
                            values.push(value);
                        }
                    }
                }
            }
        }
        if self.keys.is_empty() && groups.is_empty() {
            groups.insert(
                String::new(),
                (Vec::new(), 0, vec![Vec::new(); self.aggregates.len()]),
            );
        }
        let mut columns: Vec<Vec<ScalarValue>> =
            vec![Vec::new(); self.keys.len() + self.aggregates.len()];
        for (key, rows, values) in groups.into_values() {
            for (i, k) in key.into_iter().enumerate() {
                columns[i].push(k);
            }
            for (i, (aggregate, values)) in self.aggregates.iter().zip(&values).enumerate() {
                let input = aggregate
                    .column()
                    .map(|c| {
                        schema
                            .field_with_name(c)
                            .expect("column")
                            .data_type()
                            .clone()
                    })
                    .unwrap_or(DataType::Null);
                columns[self.keys.len() + i].push(aggregate.reference(rows, values, &input));
            }
        }
        Reference::new(columns)
    }
}

/// Expected rows and column types.
struct Reference {
    rows: Vec<String>,
    types: Vec<DataType>,
}

impl Reference {
    fn new(columns: Vec<Vec<ScalarValue>>) -> Self {
        let arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| ScalarValue::iter_to_array(c).expect("one type per column"))
            .collect();
        let fields: Vec<Field> = arrays
            .iter()
            .enumerate()
            .map(|(i, a)| Field::new(format!("c{i}"), a.data_type().clone(), true))
            .collect();
        let types = fields.iter().map(|f| f.data_type().clone()).collect();
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch");
        Self {
            rows: sorted_rows(&[batch]),
            types,
        }
    }

    fn assert_matches(&self, out: &[RecordBatch], schema: &SchemaRef, label: &str) {
        let types: Vec<DataType> = schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(types, self.types, "output types, {label}");
        for batch in out {
            assert_eq!(&batch.schema(), schema, "batch schema, {label}");
            assert!(
                batch.num_rows() <= 8192,
                "batch of {} rows, {label}",
                batch.num_rows()
            );
        }
        let got = sorted_rows(out);
        if got != self.rows {
            let first = got
                .iter()
                .zip(&self.rows)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(self.rows.len()));
            panic!(
                "{label}: {} rows, expected {}; first difference at {first}: got {:?}, expected {:?}",
                got.len(),
                self.rows.len(),
                got.get(first),
                self.rows.get(first)
            );
        }
    }
}

/// Runs `case` in one phase, and in two with its batches split over two
/// partial aggregates, checking both against the reference.
fn check(case: &Case, memory: &dyn Fn() -> MemoryPool) {
    let expected = case.reference();
    let single = case.aggregate(AggregateMode::Single);
    let out = drive(&single, std::slice::from_ref(&case.batches), memory()).expect("single runs");
    expected.assert_matches(
        &out,
        &single.output_schema(),
        &format!("single, {}", case.label),
    );

    let partial = case.aggregate(AggregateMode::Partial);
    let (left, right): (Vec<_>, Vec<_>) = case
        .batches
        .iter()
        .cloned()
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let mut states = Vec::new();
    for half in [left, right] {
        let half: Vec<RecordBatch> = half.into_iter().map(|(_, b)| b).collect();
        let out = drive(&partial, &[half], memory()).expect("partial runs");
        assert!(out.iter().all(|b| b.schema() == partial.output_schema()));
        states.extend(out);
    }
    let last = case.aggregate(AggregateMode::Final);
    let out = drive(&last, &[states], memory()).expect("final runs");
    expected.assert_matches(
        &out,
        &last.output_schema(),
        &format!("partial/final, {}", case.label),
    );
}

fn unbounded() -> MemoryPool {
    MemoryPool::unbounded()
}

const BATCH_SIZES: [usize; 3] = [1, 7, 8192];

/// Rows for a batch size: fewer when every row is its own batch.
fn rows_for(batch_rows: usize) -> usize {
    if batch_rows == 1 { 400 } else { 3000 }
}

#[test]
fn every_key_type_with_nulls_matches_the_reference() {
    for round in 0..3 {
        for (k, kind) in ColumnKind::ALL.into_iter().enumerate() {
            for (s, batch_rows) in BATCH_SIZES.into_iter().enumerate() {
                let seed = (round * 100 + k * 10 + s) as u64;
                let distinct = [3, 40, 700][(s + round) % 3];
                let key = ColumnSpec::new("k", kind, distinct).with_nulls(0.1);
                check(
                    &Case::new(seed, vec![key], rows_for(batch_rows), batch_rows),
                    &unbounded,
                );
            }
        }
    }
}

#[test]
fn multi_column_keys_match_the_reference() {
    let keys = [
        vec![
            ColumnSpec::new("k_str", ColumnKind::Utf8, 20).with_nulls(0.1),
            ColumnSpec::new("k_dec", ColumnKind::Decimal, 10).with_nulls(0.1),
        ],
        vec![
            ColumnSpec::new("k_bool", ColumnKind::Boolean, 2).with_nulls(0.3),
            ColumnSpec::new("k_date", ColumnKind::Date32, 30),
            ColumnSpec::new("k_f64", ColumnKind::Float64, 5).with_nulls(0.2),
        ],
        vec![
            ColumnSpec::new("k_i32", ColumnKind::Int32, 100).with_nulls(0.05),
            ColumnSpec::new("k_i64", ColumnKind::Int64, 100).with_nulls(0.05),
        ],
    ];
    for (i, keys) in keys.into_iter().enumerate() {
        for (s, batch_rows) in BATCH_SIZES.into_iter().enumerate() {
            let seed = 1000 + (i * 10 + s) as u64;
            check(
                &Case::new(seed, keys.clone(), rows_for(batch_rows), batch_rows),
                &unbounded,
            );
        }
    }
}

#[test]
fn one_group_to_ten_thousand_groups() {
    for (seed, distinct) in [(2000, 1), (2001, 100), (2002, 10_000)] {
        let key = ColumnSpec::new("k", ColumnKind::Int64, distinct);
        check(&Case::new(seed, vec![key], 20_000, 8192), &unbounded);
    }
}

#[test]
fn without_group_keys_one_row_also_over_no_input() {
    let case = Case::new(3000, vec![], 2000, 7);
    check(&case, &unbounded);
    let empty = Case {
        batches: vec![case.batches[0].slice(0, 0)],
        label: "no rows".into(),
        ..case
    };
    check(&empty, &unbounded);
    let out = drive(
        &empty.aggregate(AggregateMode::Single),
        &[vec![]],
        MemoryPool::unbounded(),
    )
    .expect("runs without batches");
    assert_eq!(rows(&out).len(), 1);
    assert!(rows(&out)[0].starts_with("0|0|0|NULL|"), "{:?}", rows(&out));
}

const TINY_BUDGET: usize = 16 * 1024;

#[test]
fn a_tiny_budget_spills_and_gives_the_same_result() {
    let cases = [
        Case::new(
            4000,
            vec![ColumnSpec::new("k", ColumnKind::Utf8, 30_000).with_nulls(0.05)],
            60_000,
            8192,
        )
        .with_aggregates(plain_aggregates()),
        Case::new(
            4001,
            vec![
                ColumnSpec::new("k_dec", ColumnKind::Decimal, 50).with_nulls(0.1),
                ColumnSpec::new("k_i32", ColumnKind::Int32, 40),
            ],
            3000,
            7,
        )
        .with_aggregates(plain_aggregates()),
        Case::new(
            4002,
            vec![ColumnSpec::new("k", ColumnKind::Int32, 400).with_nulls(0.1)],
            2000,
            64,
        )
        .with_aggregates(vec![Agg::CountDistinct("v_str"), Agg::Sum("v_dec")]),
        // A wide integer key with about one group per two rows, as a
        // grouping by order key.
        Case::new(
            4003,
            vec![ColumnSpec::new("k", ColumnKind::Int64, 20_000).with_nulls(0.02)],
            40_000,
            4096,
        )
        .with_aggregates(plain_aggregates()),
    ];
    for case in cases {
        let dir = SpillDir::new();
        let pool = dir.pool(TINY_BUDGET, true);
        check(&case, &|| pool.clone());
        assert!(pool.spill_files() > 0, "nothing spilled: {}", case.label);
        assert!(dir.files() == 0, "spill files left behind: {}", case.label);
        assert_eq!(pool.used(), 0, "memory left reserved: {}", case.label);
    }
}

#[test]
fn many_groups_are_emitted_in_parts_from_memory_and_from_spilled_runs() {
    // Nearly every row its own group: about 200K groups.
    let case = Case::new(
        4200,
        vec![ColumnSpec::new("k", ColumnKind::Int64, 1 << 40).with_nulls(0.01)],
        200_000,
        8192,
    )
    .with_aggregates(vec![
        Agg::CountAll,
        Agg::Sum("v_i64"),
        Agg::Min("v_str"),
        Agg::Avg("v_dec"),
    ]);
    let expected = case.reference();
    let single = case.aggregate(AggregateMode::Single);
    let dir = SpillDir::new();
    for (label, pool) in [
        ("in memory", MemoryPool::unbounded()),
        ("spilled", dir.pool(2 << 20, true)),
    ] {
        let emitted = drive_in_parts(&single, std::slice::from_ref(&case.batches), pool.clone())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(emitted.inputs.is_empty(), "{label}: nothing before finish");
        emitted.assert_in_parts(label);
        assert_eq!(pool.spill_files() > 0, label == "spilled", "{label}");
        expected.assert_matches(&emitted.all(), &single.output_schema(), label);
        assert_eq!(pool.used(), 0, "{label}: memory returned");
    }
    assert!(dir.files() == 0, "spill files left behind");
}

#[test]
fn an_operator_dropped_midway_leaves_no_spill_file() {
    let dir = SpillDir::new();
    let pool = dir.pool(TINY_BUDGET, true);
    let case = Case::new(
        4100,
        vec![ColumnSpec::new("k", ColumnKind::Int64, 5000)],
        10_000,
        1000,
    );
    let mut op = case
        .aggregate(AggregateMode::Single)
        .create(&task_info(pool.clone()))
        .expect("creates");
    let mut out = Output::default();
    for batch in &case.batches {
        op.process_batch(0, batch.clone(), &mut out)
            .expect("aggregates");
    }
    assert!(pool.spill_files() > 0 && dir.files() > 0, "spilled to disk");
    drop(op);
    assert!(dir.files() == 0, "a failed task leaves no spill file");
    assert_eq!(pool.used(), 0);
}

#[test]
fn spilling_disabled_fails_naming_the_operator() {
    let dir = SpillDir::new();
    let case = Case::new(
        5000,
        vec![ColumnSpec::new("k", ColumnKind::Int64, 5000)],
        10_000,
        8192,
    )
    .with_aggregates(plain_aggregates());
    for mode in [AggregateMode::Single, AggregateMode::Final] {
        let aggregate = case.aggregate(mode);
        let input = match mode {
            AggregateMode::Final => drive(
                &case.aggregate(AggregateMode::Partial),
                std::slice::from_ref(&case.batches),
                MemoryPool::unbounded(),
            )
            .expect("partial runs"),
            _ => case.batches.clone(),
        };
        let err =
            drive(&aggregate, &[input], dir.pool(TINY_BUDGET, false)).expect_err("over budget");
        match &err {
            Error::ResourcesExhausted {
                operator, spill, ..
            } => {
                assert_eq!(operator, &aggregate.name());
                assert!(!spill);
            }
            other => panic!("expected ResourcesExhausted, got {other}"),
        }
        assert!(err.to_string().contains("spilling is disabled"), "{err}");
    }
    // A partial aggregate over budget hands its groups on instead.
    let partial = case.aggregate(AggregateMode::Partial);
    let states = drive(
        &partial,
        std::slice::from_ref(&case.batches),
        dir.pool(TINY_BUDGET, false),
    )
    .expect("partial emits early");
    let out = drive(
        &case.aggregate(AggregateMode::Final),
        &[states],
        unbounded(),
    )
    .expect("final runs");
    case.reference().assert_matches(
        &out,
        &case.aggregate(AggregateMode::Final).output_schema(),
        "early partial",
    );
    assert!(dir.files() == 0);
}

/// The distinct rows of `batches`, rendered and sorted.
fn distinct_reference(batches: &[RecordBatch]) -> Vec<String> {
    rows(batches)
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[test]
fn distinct_matches_the_reference_in_every_mode_and_under_a_tiny_budget() {
    for (seed, batch_rows) in [(6000, 1), (6001, 7), (6002, 8192)] {
        let columns = vec![
            ColumnSpec::new("a", ColumnKind::Utf8, 30).with_nulls(0.1),
            ColumnSpec::new("b", ColumnKind::Decimal, 20).with_nulls(0.1),
            ColumnSpec::new("c", ColumnKind::Boolean, 2).with_nulls(0.2),
            ColumnSpec::new("d", ColumnKind::Date32, 10),
        ];
        let all = random_batch(&mut Rng::new(seed), &columns, rows_for(batch_rows) * 3);
        let batches = rebatch(&[all], batch_rows);
        let schema = batches[0].schema();
        let expected = distinct_reference(&batches);
        let dir = SpillDir::new();
        let tiny = dir.pool(TINY_BUDGET, true);
        for pool in [MemoryPool::unbounded(), tiny.clone()] {
            let single = Distinct::try_new(AggregateMode::Single, &schema).expect("plans");
            let out = drive(&single, std::slice::from_ref(&batches), pool.clone()).expect("runs");
            assert!(out.iter().all(|b| b.schema() == schema));
            assert_eq!(sorted_rows(&out), expected, "seed {seed}");

            let partial = Distinct::try_new(AggregateMode::Partial, &schema).expect("plans");
            let (left, right): (Vec<_>, Vec<_>) = batches
                .iter()
                .cloned()
                .enumerate()
                .partition(|(i, _)| i % 2 == 0);
            let mut states = Vec::new();
            for half in [left, right] {
                let half: Vec<_> = half.into_iter().map(|(_, b)| b).collect();
                states.extend(drive(&partial, &[half], pool.clone()).expect("partial runs"));
            }
            let last = Distinct::try_new(AggregateMode::Final, &schema).expect("plans");
            let out = drive(&last, &[states], pool.clone()).expect("final runs");
            assert_eq!(sorted_rows(&out), expected, "seed {seed}, two phases");
        }
        if batch_rows > 1 {
            assert!(tiny.spill_files() > 0, "seed {seed}: nothing spilled");
        }
        assert!(dir.files() == 0);
    }
}
