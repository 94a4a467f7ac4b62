//! Differential tests of the hash join and the nested-loop join: every join
//! type over seeded random data against a naive nested-loop reference that
//! compares `ScalarValue`s row by row, for every key type, with NULL keys,
//! duplicates and empty sides, built on either side, with inputs delivered
//! one after the other or interleaved, in memory and spilled.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{take, take_record_batch};
use arrow::datatypes::DataType;
use datafusion_common::ScalarValue;
use weir_engine::expr::{Compiled, Expr, col, lit};
use weir_engine::memory::MemoryPool;
use weir_engine::operators::{HashJoin, JoinSide, JoinType, NestedLoopJoin, joined_schema};
use weir_engine::testing::{
    ColumnKind, ColumnSpec, Rng, SpillDir, drive, drive_in_parts, random_batch, rebatch,
    sorted_rows, task_info,
};
use weir_engine::{Error, OperatorFactory, Output, Progress, Result};

const BATCH_SIZES: [usize; 3] = [1, 7, 8192];

/// One row as scalars.
type Row = Vec<ScalarValue>;

/// The reference's condition on a pair of rows beyond equal keys.
type Condition = Arc<dyn Fn(&Row, &Row) -> bool>;

/// How the two inputs reach the operator.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    /// Input 0, then input 1 (the test kit's driver).
    LeftFirst,
    /// Input 1, then input 0.
    RightFirst,
    /// Batches and ends of both inputs in a random order.
    Interleaved(u64),
}

impl Delivery {
    fn of_seed(seed: u64) -> Self {
        match seed % 3 {
            0 => Delivery::LeftFirst,
            1 => Delivery::RightFirst,
            _ => Delivery::Interleaved(seed),
        }
    }
}

/// Runs one operator over `[left, right]` the way `delivery` says.
fn run(
    factory: &dyn OperatorFactory,
    inputs: [Vec<RecordBatch>; 2],
    delivery: Delivery,
    pool: MemoryPool,
) -> Result<Vec<RecordBatch>> {
    let order: Vec<usize> = match delivery {
        Delivery::LeftFirst => return drive(factory, &inputs, pool),
        Delivery::RightFirst => {
            [vec![1; inputs[1].len() + 1], vec![0; inputs[0].len() + 1]].concat()
        }
        Delivery::Interleaved(seed) => {
            let mut rng = Rng::new(seed);
            let mut left = [inputs[0].len() + 1, inputs[1].len() + 1];
            let mut order = Vec::new();
            while left != [0, 0] {
                let i = if left[0] == 0 || (left[1] > 0 && rng.chance(0.5)) {
                    1
                } else {
                    0
                };
                left[i] -= 1;
                order.push(i);
            }
            order
        }
    };
    let mut op = factory.create(&task_info(pool))?;
    let mut out = Output::default();
    let mut next = [0, 0];
    for input in order {
        match inputs[input].get(next[input]) {
            Some(batch) => op.process_batch(input, batch.clone(), &mut out)?,
            None => op.end_of_input(input, &mut out)?,
        }
        next[input] += 1;
    }
    let mut output = out.take().0;
    loop {
        let progress = op.finish(&mut out)?;
        output.extend(out.take().0);
        if progress == Progress::Done {
            return Ok(output);
        }
    }
}

/// Two random inputs and what joins them.
struct Case {
    left: RecordBatch,
    right: RecordBatch,
    /// Key column pairs (left name, right name).
    on: Vec<(String, String)>,
    /// The residual condition, as an expression and for the reference.
    filter: Option<(Expr, Condition)>,
}

impl Case {
    /// `left` and `right` joined on `lk1 = rk1`, without a filter.
    fn on_first_key(left: RecordBatch, right: RecordBatch) -> Self {
        Self {
            left,
            right,
            on: vec![("lk1".into(), "rk1".into())],
            filter: None,
        }
    }

    fn schemas(&self) -> (arrow::datatypes::SchemaRef, arrow::datatypes::SchemaRef) {
        (self.left.schema(), self.right.schema())
    }

    fn hash_join(&self, join_type: JoinType, build: JoinSide) -> HashJoin {
        let (left, right) = self.schemas();
        let on = self
            .on
            .iter()
            .map(|(l, r)| {
                (
                    Compiled::new(&col(l.as_str()), &left).expect("left key"),
                    Compiled::new(&col(r.as_str()), &right).expect("right key"),
                )
            })
            .collect();
        let filter = self
            .filter
            .as_ref()
            .map(|(expr, _)| Compiled::new(expr, &joined_schema(&left, &right)).expect("filter"));
        HashJoin::try_new(join_type, left, right, on, filter, build).expect("valid join")
    }

    /// The reference's matching pairs: every pair of rows whose keys are
    /// all non-NULL and equal (compared in the wider type) and that passes
    /// the filter.
    fn reference_matches(&self) -> Vec<(usize, usize)> {
        let (left, right) = (scalar_rows(&self.left), scalar_rows(&self.right));
        let index = |batch: &RecordBatch, name: &str| batch.schema().index_of(name).expect("key");
        let keys: Vec<(usize, usize, DataType)> = self
            .on
            .iter()
            .map(|(l, r)| {
                let (li, ri) = (index(&self.left, l), index(&self.right, r));
                let (lt, rt) = (
                    self.left.schema().field(li).data_type().clone(),
                    self.right.schema().field(ri).data_type().clone(),
                );
                // The only mixed pair tested is Int32 with Int64.
                let common = if lt == rt { lt } else { DataType::Int64 };
                (li, ri, common)
            })
            .collect();
        let condition = self.filter.as_ref().map(|(_, c)| Arc::clone(c));
        nested_loop(&left, &right, |l, r| {
            keys.iter().all(|(li, ri, common)| {
                let (a, b) = (&l[*li], &r[*ri]);
                !a.is_null()
                    && !b.is_null()
                    && a.cast_to(common).expect("cast") == b.cast_to(common).expect("cast")
            }) && condition.as_ref().is_none_or(|c| c(l, r))
        })
    }
}

fn scalar_rows(batch: &RecordBatch) -> Vec<Row> {
    (0..batch.num_rows())
        .map(|i| {
            batch
                .columns()
                .iter()
                .map(|c| ScalarValue::try_from_array(c, i).expect("scalar"))
                .collect()
        })
        .collect()
}

/// Every pair of rows for which `matches` holds, the naive way.
fn nested_loop(
    left: &[Row],
    right: &[Row],
    matches: impl Fn(&Row, &Row) -> bool,
) -> Vec<(usize, usize)> {
    let mut pairs = Vec::new();
    for (l, left_row) in left.iter().enumerate() {
        for (r, right_row) in right.iter().enumerate() {
            if matches(left_row, right_row) {
                pairs.push((l, r));
            }
        }
    }
    pairs
}

/// What a `join_type` join of `left` and `right` must emit, given its
/// matching pairs: rendered rows, sorted.
fn expected(
    join_type: JoinType,
    left: &RecordBatch,
    right: &RecordBatch,
    matches: &[(usize, usize)],
    schema: &arrow::datatypes::SchemaRef,
) -> Vec<String> {
    let mut left_matched = vec![false; left.num_rows()];
    let mut right_matched = vec![false; right.num_rows()];
    for &(l, r) in matches {
        left_matched[l] = true;
        right_matched[r] = true;
    }
    let rows_where = |matched: &[bool], want: bool| -> Vec<Option<u32>> {
        (0..matched.len())
            .filter(|&i| matched[i] == want)
            .map(|i| Some(i as u32))
            .collect()
    };
    let pairs = || -> (Vec<Option<u32>>, Vec<Option<u32>>) {
        matches
            .iter()
            .map(|&(l, r)| (Some(l as u32), Some(r as u32)))
            .unzip()
    };
    let lone_left = |idx: Vec<Option<u32>>| {
        let n = idx.len();
        (idx, vec![None; n])
    };
    let lone_right = |idx: Vec<Option<u32>>| {
        let n = idx.len();
        (vec![None; n], idx)
    };
    let (mut l, mut r) = (Vec::new(), Vec::new());
    let mut add = |(li, ri): (Vec<Option<u32>>, Vec<Option<u32>>)| {
        l.extend(li);
        r.extend(ri);
    };
    match join_type {
        JoinType::Inner => add(pairs()),
        JoinType::Left => {
            add(pairs());
            add(lone_left(rows_where(&left_matched, false)));
        }
        JoinType::Right => {
            add(pairs());
            add(lone_right(rows_where(&right_matched, false)));
        }
        JoinType::Full => {
            add(pairs());
            add(lone_left(rows_where(&left_matched, false)));
            add(lone_right(rows_where(&right_matched, false)));
        }
        JoinType::LeftSemi => add(lone_left(rows_where(&left_matched, true))),
        JoinType::LeftAnti => add(lone_left(rows_where(&left_matched, false))),
        JoinType::RightSemi => add(lone_right(rows_where(&right_matched, true))),
        JoinType::RightAnti => add(lone_right(rows_where(&right_matched, false))),
    }
    let gather = |batch: &RecordBatch, idx: Vec<Option<u32>>| -> Vec<ArrayRef> {
        let idx = UInt32Array::from(idx);
        batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &idx, None).expect("take"))
            .collect()
    };
    let columns = match join_type {
        JoinType::LeftSemi | JoinType::LeftAnti => gather(left, l),
        JoinType::RightSemi | JoinType::RightAnti => gather(right, r),
        _ => [gather(left, l), gather(right, r)].concat(),
    };
    let batch = RecordBatch::try_new(Arc::clone(schema), columns).expect("expected batch");
    sorted_rows(&[batch])
}

/// Checks an operator's output against the expected rows: same schema,
/// batches of at most 8192 rows, the same multiset of rows.
fn check(
    what: &str,
    output: &[RecordBatch],
    schema: &arrow::datatypes::SchemaRef,
    want: &[String],
) {
    for batch in output {
        assert!(
            batch.num_rows() <= 8192,
            "{what}: a batch of {} rows",
            batch.num_rows()
        );
        assert_eq!(&batch.schema(), schema, "{what}: schema");
    }
    let got = sorted_rows(output);
    assert_eq!(got.len(), want.len(), "{what}: row count");
    assert!(got == want, "{what}: rows differ");
}

/// Left: `lk1`, `lk2` (keys), `lv`, `ls`; right: `rk1`, `rk2`, `rv`, `rd`.
fn random_case(
    seed: u64,
    kinds: [ColumnKind; 2],
    rows: [usize; 2],
    distinct: u64,
) -> (RecordBatch, RecordBatch) {
    let mut rng = Rng::new(seed);
    let side = |p: &str, payload: ColumnKind| {
        vec![
            ColumnSpec::new(format!("{p}k1"), kinds[0], distinct).with_nulls(0.1),
            ColumnSpec::new(format!("{p}k2"), kinds[1], 3).with_nulls(0.1),
            ColumnSpec::new(format!("{p}v"), ColumnKind::Int64, 20).with_nulls(0.1),
            ColumnSpec::new(
                format!("{p}{}", if p == "l" { "s" } else { "d" }),
                payload,
                1000,
            )
            .with_nulls(0.2),
        ]
    };
    (
        random_batch(&mut rng, &side("l", ColumnKind::Utf8), rows[0]),
        random_batch(&mut rng, &side("r", ColumnKind::Decimal), rows[1]),
    )
}

fn int64(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::Int64(v) => *v,
        other => panic!("not an Int64: {other:?}"),
    }
}

/// `lv <= rv`, NULL as false.
fn value_filter() -> (Expr, Condition) {
    (
        col("lv").lt_eq(col("rv")),
        Arc::new(
            |l: &Row, r: &Row| matches!((int64(&l[2]), int64(&r[2])), (Some(a), Some(b)) if a <= b),
        ),
    )
}

fn pool() -> MemoryPool {
    MemoryPool::unbounded()
}

#[test]
fn hash_join_matches_the_reference_for_every_type_key_and_side() {
    for seed in 0..42u64 {
        let kinds = [
            ColumnKind::ALL[seed as usize % 7],
            ColumnKind::ALL[(seed as usize * 3 + 1) % 7],
        ];
        let mut rng = Rng::new(seed ^ 0xA5);
        let mut rows = [rng.below(120) as usize, rng.below(120) as usize];
        if seed % 13 == 5 {
            rows[0] = 0;
        }
        if seed % 13 == 11 {
            rows[1] = 0;
        }
        let (left, right) = random_case(seed, kinds, rows, 12);
        let multi = seed % 3 == 2;
        let mut on = vec![("lk1".to_string(), "rk1".to_string())];
        if multi {
            on.push(("lk2".to_string(), "rk2".to_string()));
        }
        let case = Case {
            left,
            right,
            on,
            filter: (seed % 2 == 1).then(value_filter),
        };
        let matches = case.reference_matches();
        let size = BATCH_SIZES[(seed / 2) as usize % 3];
        let delivery = Delivery::of_seed(seed / 6);
        let inputs = [cut(&case.left, size), cut(&case.right, size)];
        for join_type in JoinType::ALL {
            let mut outputs = Vec::new();
            for build in [JoinSide::Left, JoinSide::Right] {
                let join = case.hash_join(join_type, build);
                let what = format!(
                    "seed {seed}: {} ({kinds:?}, rows {rows:?}, batch {size}, {delivery:?})",
                    join.name()
                );
                let output = run(&join, inputs.clone(), delivery, pool()).expect(&what);
                let want = expected(join_type, &case.left, &case.right, &matches, join.schema());
                check(&what, &output, join.schema(), &want);
                outputs.push(sorted_rows(&output));
            }
            assert_eq!(
                outputs[0], outputs[1],
                "seed {seed}: {join_type} build left vs right"
            );
        }
    }
}

#[test]
fn hash_join_keys_of_different_types_compare_in_the_wider_one() {
    for seed in 0..6u64 {
        let mut rng = Rng::new(seed);
        let left = random_batch(
            &mut rng,
            &[
                ColumnSpec::new("lk1", ColumnKind::Int32, 15).with_nulls(0.1),
                ColumnSpec::new("lv", ColumnKind::Utf8, 5),
            ],
            90,
        );
        let right = random_batch(
            &mut rng,
            &[
                ColumnSpec::new("rk1", ColumnKind::Int64, 15).with_nulls(0.1),
                ColumnSpec::new("rv", ColumnKind::Date32, 5),
            ],
            70,
        );
        let case = Case::on_first_key(left, right);
        let matches = case.reference_matches();
        assert!(!matches.is_empty());
        for join_type in JoinType::ALL {
            for build in [JoinSide::Left, JoinSide::Right] {
                let join = case.hash_join(join_type, build);
                let output = run(
                    &join,
                    [cut(&case.left, 7), cut(&case.right, 7)],
                    Delivery::Interleaved(seed),
                    pool(),
                )
                .expect("joins");
                let want = expected(join_type, &case.left, &case.right, &matches, join.schema());
                check(&join.name(), &output, join.schema(), &want);
            }
        }
    }
}

#[test]
fn many_duplicates_make_output_batches_of_at_most_8192_rows() {
    let (left, right) = random_case(3, [ColumnKind::Boolean, ColumnKind::Int32], [300, 200], 2);
    let case = Case::on_first_key(left, right);
    let matches = case.reference_matches();
    assert!(matches.len() > 8192 * 2);
    for build in [JoinSide::Left, JoinSide::Right] {
        let join = case.hash_join(JoinType::Full, build);
        let output = run(
            &join,
            [vec![case.left.clone()], vec![case.right.clone()]],
            Delivery::LeftFirst,
            pool(),
        )
        .expect("joins");
        let want = expected(
            JoinType::Full,
            &case.left,
            &case.right,
            &matches,
            join.schema(),
        );
        check(&join.name(), &output, join.schema(), &want);
    }
}

/// A nested-loop join condition and its reference.
fn nested_loop_conditions() -> Vec<(Expr, Condition)> {
    let less: Condition = Arc::new(|l: &Row, r: &Row| {
        !l[0].is_null()
            && !r[0].is_null()
            && l[0].partial_cmp(&r[0]) == Some(std::cmp::Ordering::Less)
    });
    let between: Condition = Arc::new(|l: &Row, r: &Row| match (int64(&l[2]), int64(&r[2])) {
        (Some(a), Some(b)) => b - 2 <= a && a <= b + 2,
        _ => false,
    });
    vec![
        (col("lk1").lt(col("rk1")), less),
        (
            col("lv").between(col("rv") - lit(2i64), col("rv") + lit(2i64)),
            between,
        ),
    ]
}

#[test]
fn nested_loop_join_matches_the_reference() {
    for seed in 0..21u64 {
        let kind = ColumnKind::ALL[seed as usize % 7];
        let mut rng = Rng::new(seed ^ 0x5A);
        let mut rows = [rng.below(90) as usize, rng.below(90) as usize];
        if seed % 10 == 4 {
            rows[seed as usize % 2] = 0;
        }
        let (left, right) = random_case(seed, [kind, ColumnKind::Int32], rows, 12);
        let (ls, rs) = (scalar_rows(&left), scalar_rows(&right));
        let size = BATCH_SIZES[seed as usize % 3];
        let delivery = Delivery::of_seed(seed / 3);
        let inputs = [cut(&left, size), cut(&right, size)];
        for (expr, condition) in nested_loop_conditions() {
            let matches = nested_loop(&ls, &rs, |l, r| condition(l, r));
            let compiled = Compiled::new(&expr, &joined_schema(&left.schema(), &right.schema()))
                .expect("condition");
            for join_type in JoinType::ALL {
                for build in [JoinSide::Left, JoinSide::Right] {
                    let join = NestedLoopJoin::try_new(
                        join_type,
                        left.schema(),
                        right.schema(),
                        compiled.clone(),
                        build,
                    )
                    .expect("valid join");
                    let what = format!(
                        "seed {seed}: {} (rows {rows:?}, batch {size}, {delivery:?})",
                        join.name()
                    );
                    let output = run(&join, inputs.clone(), delivery, pool()).expect(&what);
                    let want = expected(join_type, &left, &right, &matches, join.schema());
                    check(&what, &output, join.schema(), &want);
                }
            }
        }
    }
}

const TINY_BUDGET: usize = 48 * 1024;

/// `batch` cut into batches of `rows` rows (slices of it).
fn cut(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    rebatch(std::slice::from_ref(batch), rows)
}

/// `batch` cut into batches of `rows` rows that own their memory (slices
/// would each count the whole batch's buffers against the budget).
fn compact(batch: &RecordBatch, rows: usize) -> Vec<RecordBatch> {
    cut(batch, rows)
        .iter()
        .map(|b| {
            let all = UInt32Array::from_iter_values(0..b.num_rows() as u32);
            take_record_batch(b, &all).expect("take")
        })
        .collect()
}

#[test]
fn hash_join_spills_under_a_tiny_budget_with_identical_results() {
    for (seed, kind) in [
        (1u64, ColumnKind::Utf8),
        (2, ColumnKind::Decimal),
        (3, ColumnKind::Int64),
    ] {
        let (left, right) = random_case(seed, [kind, ColumnKind::Int32], [1500, 1200], 500);
        let case = Case {
            left,
            right,
            on: vec![("lk1".into(), "rk1".into()), ("lk2".into(), "rk2".into())],
            filter: (seed != 2).then(value_filter),
        };
        let matches = case.reference_matches();
        for (i, join_type) in JoinType::ALL.into_iter().enumerate() {
            for build in [JoinSide::Left, JoinSide::Right] {
                let dir = SpillDir::new();
                let pool = dir.pool(TINY_BUDGET, true);
                let join = case.hash_join(join_type, build);
                let size = [7, 8192][i % 2];
                let delivery = Delivery::of_seed(seed + i as u64);
                let inputs = [compact(&case.left, size), compact(&case.right, size)];
                let what = format!(
                    "seed {seed}: {} spilled (batch {size}, {delivery:?})",
                    join.name()
                );
                let output = run(&join, inputs, delivery, pool.clone()).expect(&what);
                assert!(pool.spill_files() > 0, "{what}: nothing spilled");
                let want = expected(join_type, &case.left, &case.right, &matches, join.schema());
                check(&what, &output, join.schema(), &want);
                assert!(dir.files() == 0, "{what}: spill files left behind");
            }
        }
    }
}

/// The matching pairs of an equi-join on one key of the same type on both
/// sides and without a filter, found through a hash map: the nested loop of
/// [`Case::reference_matches`] is too slow for large inputs.
fn hashed_matches(case: &Case) -> Vec<(usize, usize)> {
    assert!(
        case.on.len() == 1 && case.filter.is_none(),
        "one key, no filter"
    );
    let keys = |batch: &RecordBatch, name: &str| -> Vec<ScalarValue> {
        let column = batch.column_by_name(name).expect("key column");
        (0..batch.num_rows())
            .map(|i| ScalarValue::try_from_array(column, i).expect("scalar"))
            .collect()
    };
    let mut right: HashMap<ScalarValue, Vec<usize>> = HashMap::new();
    for (r, key) in keys(&case.right, &case.on[0].1).into_iter().enumerate() {
        if !key.is_null() {
            right.entry(key).or_default().push(r);
        }
    }
    let mut pairs = Vec::new();
    for (l, key) in keys(&case.left, &case.on[0].0).iter().enumerate() {
        for &r in right.get(key).into_iter().flatten() {
            pairs.push((l, r));
        }
    }
    pairs
}

/// A large left side (about 200K rows, few of them matched) and a small
/// right side, joined on one key.
fn large_build_case() -> Case {
    let (left, right) = random_case(
        21,
        [ColumnKind::Int64, ColumnKind::Int32],
        [200_000, 2000],
        400_000,
    );
    Case::on_first_key(left, right)
}

#[test]
fn the_hashed_reference_agrees_with_the_nested_loop() {
    let (left, right) = random_case(22, [ColumnKind::Int64, ColumnKind::Int32], [500, 300], 200);
    let case = Case::on_first_key(left, right);
    let mut hashed = hashed_matches(&case);
    hashed.sort_unstable();
    assert!(!hashed.is_empty());
    assert_eq!(hashed, case.reference_matches());
}

#[test]
fn the_build_rows_of_a_large_outer_join_are_emitted_in_parts_in_memory_and_spilled() {
    let case = large_build_case();
    let matches = hashed_matches(&case);
    assert!(!matches.is_empty(), "some rows match");
    let dir = SpillDir::new();
    for join_type in [JoinType::Full, JoinType::Left, JoinType::LeftAnti] {
        let join = case.hash_join(join_type, JoinSide::Left);
        let want = expected(join_type, &case.left, &case.right, &matches, join.schema());
        for (label, pool) in [("in memory", pool()), ("spilled", dir.pool(1 << 20, true))] {
            let what = format!("{} {label}", join.name());
            let inputs = [compact(&case.left, 8192), compact(&case.right, 8192)];
            let emitted = drive_in_parts(&join, &inputs, pool.clone()).expect(&what);
            emitted.assert_in_parts(&what);
            assert_eq!(pool.spill_files() > 0, label == "spilled", "{what}");
            check(&what, &emitted.all(), join.schema(), &want);
            assert_eq!(pool.used(), 0, "{what}: memory returned");
            assert!(dir.files() == 0, "{what}: spill files left behind");
        }
    }
}

#[test]
fn an_oversized_partition_is_split_again() {
    let (left, right) = random_case(9, [ColumnKind::Int64, ColumnKind::Int32], [6000, 300], 3000);
    let case = Case::on_first_key(left, right);
    let matches = case.reference_matches();
    let dir = SpillDir::new();
    let pool = dir.pool(12 * 1024, true);
    let join = case.hash_join(JoinType::Full, JoinSide::Left);
    let output = run(
        &join,
        [vec![case.left.clone()], vec![case.right.clone()]],
        Delivery::LeftFirst,
        pool.clone(),
    )
    .expect("joins");
    // The first level has 16 partitions a side; more files means some were split.
    assert!(
        pool.spill_files() > 32,
        "{} spill files",
        pool.spill_files()
    );
    check(
        &join.name(),
        &output,
        join.schema(),
        &expected(
            JoinType::Full,
            &case.left,
            &case.right,
            &matches,
            join.schema(),
        ),
    );
    assert!(dir.files() == 0);
}

fn assert_exhausted(err: Error, factory: &dyn OperatorFactory, spill: bool) {
    match err {
        Error::ResourcesExhausted {
            operator, spill: s, ..
        } => {
            assert_eq!(operator, factory.name());
            assert_eq!(s, spill);
        }
        other => panic!("expected resources exhausted, got {other}"),
    }
}

#[test]
fn without_spilling_the_joins_fail_with_resources_exhausted() {
    let (left, right) = random_case(4, [ColumnKind::Utf8, ColumnKind::Int32], [1500, 1500], 500);
    let case = Case::on_first_key(left, right);
    let (ls, rs) = case.schemas();
    let condition =
        Compiled::new(&col("lv").lt(col("rv")), &joined_schema(&ls, &rs)).expect("condition");
    for build in [JoinSide::Left, JoinSide::Right] {
        for delivery in [
            Delivery::LeftFirst,
            Delivery::RightFirst,
            Delivery::Interleaved(5),
        ] {
            let joins: [Box<dyn OperatorFactory>; 2] = [
                Box::new(case.hash_join(JoinType::Inner, build)),
                Box::new(
                    NestedLoopJoin::try_new(
                        JoinType::Inner,
                        Arc::clone(&ls),
                        Arc::clone(&rs),
                        condition.clone(),
                        build,
                    )
                    .expect("valid join"),
                ),
            ];
            for join in joins {
                let dir = SpillDir::new();
                let inputs = [cut(&case.left, 100), cut(&case.right, 100)];
                let err = run(
                    join.as_ref(),
                    inputs,
                    delivery,
                    dir.pool(TINY_BUDGET, false),
                )
                .expect_err("over budget");
                let message = err.to_string();
                assert!(message.contains("spilling is disabled"), "{message}");
                assert_exhausted(err, join.as_ref(), false);
                assert!(dir.files() == 0);
            }
        }
    }
}

#[test]
fn a_key_too_frequent_to_fit_fails_after_splitting_and_leaves_no_files() {
    // Every row has the same key: splitting cannot make the build side fit.
    let (left, right) = random_case(6, [ColumnKind::Int32, ColumnKind::Int32], [4000, 50], 1);
    let case = Case::on_first_key(left, right);
    let dir = SpillDir::new();
    let pool = dir.pool(TINY_BUDGET, true);
    let join = case.hash_join(JoinType::Inner, JoinSide::Left);
    let err = run(
        &join,
        [cut(&case.left, 500), vec![case.right.clone()]],
        Delivery::Interleaved(1),
        pool.clone(),
    )
    .expect_err("cannot fit");
    assert_exhausted(err, &join, true);
    assert!(pool.spill_files() > 0);
    assert!(dir.files() == 0, "spill files left behind");
}
