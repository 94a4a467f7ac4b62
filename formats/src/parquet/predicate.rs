//! Filters as statistics can judge them.
//!
//! A typed filter (a DataFusion physical expression, after type coercion) is
//! reduced to a [`Predicate`]: value ranges and null tests on single columns
//! combined with AND, OR and NOT. Whatever has no such reading becomes
//! [`Predicate::Unknown`], which statistics can never rule out.
//!
//! Comparisons follow Arrow's: floats in IEEE 754 total order (`-NaN` below
//! everything, `NaN` above, `-0.0 < +0.0`), strings and binaries bytewise.

use std::sync::Arc;

use arrow::array::{Datum, RecordBatch, RecordBatchOptions, Scalar};
use arrow::compute::kernels::cmp;
use arrow::datatypes::{DataType, Schema};
use datafusion_common::ScalarValue;
use datafusion_expr::Operator;
use datafusion_physical_expr::PhysicalExpr;
use datafusion_physical_expr::expressions::{
    BinaryExpr, CastExpr, Column, InListExpr, IsNotNullExpr, IsNullExpr, Literal, NotExpr,
    TryCastExpr,
};
use datafusion_physical_expr::utils::collect_columns;

/// A table column as a predicate reads it: its name, then the casts applied
/// to it, innermost first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColumnRef {
    /// The column's name in the table's schema.
    pub name: String,
    /// The types the column is cast to, in order.
    pub casts: Vec<DataType>,
}

/// One end of a [`Range`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bound {
    /// The bounding value (never null, never NaN).
    pub value: ScalarValue,
    /// Whether the value itself is in the range.
    pub inclusive: bool,
}

/// The non-null values of a column that lie between two bounds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Range {
    /// The column (with its casts).
    pub column: ColumnRef,
    /// The lower bound, if any.
    pub low: Option<Bound>,
    /// The upper bound, if any.
    pub high: Option<Bound>,
    /// Whether the bounds are known to leave no value in between.
    pub empty: bool,
}

/// A filter in SQL's three-valued logic, as far as statistics can judge it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Predicate {
    /// Anything: it may be true, false or null for any row.
    Unknown,
    /// The same value for every row (`None`: null).
    Constant(Option<bool>),
    /// True when the column's value is in the range, null when it is null,
    /// false otherwise.
    Range(Range),
    /// True when the column (without casts) is null, false otherwise.
    IsNull(String),
    /// Negation.
    Not(Box<Predicate>),
    /// Conjunction.
    And(Vec<Predicate>),
    /// Disjunction.
    Or(Vec<Predicate>),
}

impl Predicate {
    /// Reads a typed boolean expression over `schema`.
    pub(crate) fn from_physical(expr: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Self {
        if let Some(value) = constant(expr) {
            return match value {
                ScalarValue::Boolean(b) => Predicate::Constant(b),
                ScalarValue::Null => Predicate::Constant(None),
                _ => Predicate::Unknown,
            };
        }
        if let Some(binary) = expr.downcast_ref::<BinaryExpr>() {
            let (left, right) = (binary.left(), binary.right());
            return match binary.op() {
                Operator::And => Predicate::and(vec![
                    Self::from_physical(left, schema),
                    Self::from_physical(right, schema),
                ]),
                Operator::Or => Predicate::Or(vec![
                    Self::from_physical(left, schema),
                    Self::from_physical(right, schema),
                ]),
                op => comparison(left, *op, right),
            };
        }
        if let Some(not) = expr.downcast_ref::<NotExpr>() {
            return Predicate::Not(Box::new(Self::from_physical(not.arg(), schema)));
        }
        if let Some(is_null) = expr.downcast_ref::<IsNullExpr>() {
            return null_test(is_null.arg());
        }
        if let Some(is_not_null) = expr.downcast_ref::<IsNotNullExpr>() {
            return Predicate::Not(Box::new(null_test(is_not_null.arg())));
        }
        if let Some(in_list) = expr.downcast_ref::<InListExpr>() {
            let equalities = in_list
                .list()
                .iter()
                .map(|item| comparison(in_list.expr(), Operator::Eq, item))
                .collect();
            let any_equal = Predicate::Or(equalities);
            return if in_list.negated() {
                Predicate::Not(Box::new(any_equal))
            } else {
                any_equal
            };
        }
        // A boolean column (possibly cast) on its own: `b` reads as `b = true`.
        if let Some(column) = column_ref(expr)
            && matches!(expr.data_type(schema), Ok(DataType::Boolean))
        {
            return range(column, Operator::Eq, ScalarValue::Boolean(Some(true)));
        }
        Predicate::Unknown
    }

    /// The conjunction of `parts`: nested conjunctions are flattened, and
    /// ranges over the same column are intersected.
    pub(crate) fn and(parts: Vec<Predicate>) -> Self {
        let mut flat: Vec<Predicate> = Vec::with_capacity(parts.len());
        let mut pending = parts;
        pending.reverse();
        while let Some(part) = pending.pop() {
            match part {
                Predicate::And(inner) => pending.extend(inner.into_iter().rev()),
                Predicate::Constant(Some(true)) => {}
                Predicate::Range(range) => {
                    let same = flat.iter_mut().find_map(|p| match p {
                        Predicate::Range(r) if r.column == range.column => Some(r),
                        _ => None,
                    });
                    match same {
                        Some(existing) => existing.intersect(range),
                        None => flat.push(Predicate::Range(range)),
                    }
                }
                other => flat.push(other),
            }
        }
        match flat.len() {
            0 => Predicate::Constant(Some(true)),
            1 => flat.pop().unwrap_or(Predicate::Unknown),
            _ => Predicate::And(flat),
        }
    }

    /// The parts of a conjunction (the predicate itself otherwise).
    pub(crate) fn conjuncts(&self) -> &[Predicate] {
        match self {
            Predicate::And(parts) => parts,
            other => std::slice::from_ref(other),
        }
    }

    /// The names of the columns the predicate reads, each once, in order
    /// of first use.
    pub(crate) fn columns(&self) -> Vec<&str> {
        let mut names = Vec::new();
        self.collect_columns(&mut names);
        names
    }

    fn collect_columns<'a>(&'a self, names: &mut Vec<&'a str>) {
        let name = match self {
            Predicate::Unknown | Predicate::Constant(_) => return,
            Predicate::Range(range) => range.column.name.as_str(),
            Predicate::IsNull(name) => name.as_str(),
            Predicate::Not(inner) => return inner.collect_columns(names),
            Predicate::And(parts) | Predicate::Or(parts) => {
                return parts.iter().for_each(|p| p.collect_columns(names));
            }
        };
        if !names.contains(&name) {
            names.push(name);
        }
    }
}

impl Range {
    fn new(column: ColumnRef, low: Option<Bound>, high: Option<Bound>) -> Self {
        let mut range = Self {
            column,
            low,
            high,
            empty: false,
        };
        range.empty = range.is_empty();
        range
    }

    /// Narrows the range to its intersection with `other` (on the same
    /// column). When two bounds cannot be compared either is kept: the
    /// result is then wider than the intersection, never narrower.
    fn intersect(&mut self, other: Range) {
        self.low = tighter(self.low.take(), other.low, cmp::gt);
        self.high = tighter(self.high.take(), other.high, cmp::lt);
        self.empty = self.empty || other.empty || self.is_empty();
    }

    /// Whether no value can lie between the bounds (false when unsure).
    fn is_empty(&self) -> bool {
        let (Some(low), Some(high)) = (&self.low, &self.high) else {
            return false;
        };
        compare(&low.value, &high.value, cmp::gt)
            || ((!low.inclusive || !high.inclusive) && compare(&low.value, &high.value, cmp::eq))
    }
}

/// An Arrow comparison kernel (`cmp::lt`, ...).
pub(crate) type Comparison =
    fn(&dyn Datum, &dyn Datum) -> Result<arrow::array::BooleanArray, arrow::error::ArrowError>;

/// Of two bounds on the same side, the one that admits fewer values: the
/// one for which `beyond(a, b)` holds, or the exclusive one when both are
/// equal.
fn tighter(a: Option<Bound>, b: Option<Bound>, beyond: Comparison) -> Option<Bound> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if compare(&b.value, &a.value, beyond) {
            b
        } else if compare(&a.value, &b.value, cmp::eq) {
            Bound {
                inclusive: a.inclusive && b.inclusive,
                ..a
            }
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Compares two values the way Arrow compares arrays; false when they
/// cannot be compared.
fn compare(a: &ScalarValue, b: &ScalarValue, op: Comparison) -> bool {
    match (scalar(a), scalar(b)) {
        (Some(a), Some(b)) => op(&a, &b).is_ok_and(|result| result.value(0)),
        _ => false,
    }
}

/// A value as an Arrow scalar, dictionaries unwrapped.
pub(crate) fn scalar(value: &ScalarValue) -> Option<Scalar<arrow::array::ArrayRef>> {
    match value {
        ScalarValue::Dictionary(_, inner) => scalar(inner),
        value => value.to_scalar().ok(),
    }
}

/// `left op right` where one side is a column and the other a constant.
fn comparison(
    left: &Arc<dyn PhysicalExpr>,
    op: Operator,
    right: &Arc<dyn PhysicalExpr>,
) -> Predicate {
    if let (Some(column), Some(value)) = (column_ref(left), constant(right)) {
        return range(column, op, value);
    }
    if let (Some(value), Some(column), Some(swapped)) =
        (constant(left), column_ref(right), op.swap())
    {
        return range(column, swapped, value);
    }
    Predicate::Unknown
}

/// `column op value`.
fn range(column: ColumnRef, op: Operator, value: ScalarValue) -> Predicate {
    if !matches!(
        op,
        Operator::Eq
            | Operator::NotEq
            | Operator::Lt
            | Operator::LtEq
            | Operator::Gt
            | Operator::GtEq
    ) {
        return Predicate::Unknown;
    }
    if value.is_null() {
        return Predicate::Constant(None);
    }
    if is_nan(&value) {
        return Predicate::Unknown;
    }
    let bound = |inclusive| {
        Some(Bound {
            value: value.clone(),
            inclusive,
        })
    };
    let range = match op {
        Operator::Lt => Range::new(column, None, bound(false)),
        Operator::LtEq => Range::new(column, None, bound(true)),
        Operator::Gt => Range::new(column, bound(false), None),
        Operator::GtEq => Range::new(column, bound(true), None),
        Operator::NotEq => {
            return Predicate::Not(Box::new(Predicate::Range(Range::new(
                column,
                bound(true),
                bound(true),
            ))));
        }
        _ => Range::new(column, bound(true), bound(true)),
    };
    Predicate::Range(range)
}

fn null_test(arg: &Arc<dyn PhysicalExpr>) -> Predicate {
    match arg.downcast_ref::<Column>() {
        Some(column) => Predicate::IsNull(column.name().to_string()),
        None => Predicate::Unknown,
    }
}

/// A column, possibly under casts.
fn column_ref(expr: &Arc<dyn PhysicalExpr>) -> Option<ColumnRef> {
    if let Some(column) = expr.downcast_ref::<Column>() {
        return Some(ColumnRef {
            name: column.name().to_string(),
            casts: Vec::new(),
        });
    }
    let (inner, to) = if let Some(cast) = expr.downcast_ref::<CastExpr>() {
        (cast.expr(), cast.cast_type())
    } else if let Some(cast) = expr.downcast_ref::<TryCastExpr>() {
        (cast.expr(), cast.cast_type())
    } else {
        return None;
    };
    let mut column = column_ref(inner)?;
    column.casts.push(to.clone());
    Some(column)
}

/// The value of an expression that reads no column.
fn constant(expr: &Arc<dyn PhysicalExpr>) -> Option<ScalarValue> {
    if let Some(literal) = expr.downcast_ref::<Literal>() {
        return Some(literal.value().clone());
    }
    if !collect_columns(expr).is_empty() {
        return None;
    }
    let one_row = RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        Vec::new(),
        &RecordBatchOptions::new().with_row_count(Some(1)),
    )
    .ok()?;
    let array = expr.evaluate(&one_row).ok()?.into_array(1).ok()?;
    ScalarValue::try_from_array(&array, 0).ok()
}

fn is_nan(value: &ScalarValue) -> bool {
    match value {
        ScalarValue::Float16(Some(v)) => v.is_nan(),
        ScalarValue::Float32(Some(v)) => v.is_nan(),
        ScalarValue::Float64(Some(v)) => v.is_nan(),
        ScalarValue::Dictionary(_, inner) => is_nan(inner),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Field;
    use datafusion_expr::{Expr, col, lit};
    use weir_engine::expr::Compiled;

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("f", DataType::Float64, true),
            Field::new("d", DataType::Date32, true),
            Field::new("b", DataType::Boolean, true),
        ])
    }

    fn read(filter: Expr) -> Predicate {
        let schema = schema();
        let compiled = Compiled::new(&filter, &schema).expect("compiles");
        Predicate::from_physical(compiled.physical(), &schema)
    }

    fn column(name: &str, casts: Vec<DataType>) -> ColumnRef {
        ColumnRef {
            name: name.to_string(),
            casts,
        }
    }

    fn bound(value: ScalarValue, inclusive: bool) -> Option<Bound> {
        Some(Bound { value, inclusive })
    }

    #[test]
    fn comparisons_read_as_ranges_from_either_side() {
        let a = || column("a", vec![]);
        assert_eq!(
            read(lit(5).lt(col("a"))),
            Predicate::Range(Range::new(
                a(),
                bound(ScalarValue::Int32(Some(5)), false),
                None
            ))
        );
        assert_eq!(
            read(col("a").not_eq(lit(5))),
            Predicate::Not(Box::new(Predicate::Range(Range::new(
                a(),
                bound(ScalarValue::Int32(Some(5)), true),
                bound(ScalarValue::Int32(Some(5)), true),
            ))))
        );
        // An Int64 literal casts the column.
        let Predicate::Range(range) = read(col("a").lt_eq(lit(5i64))) else {
            panic!("a range");
        };
        assert_eq!(range.column, column("a", vec![DataType::Int64]));
        // A string literal is cast to a date, once.
        let Predicate::Range(range) = read(col("d").eq(lit("2024-01-31"))) else {
            panic!("a range");
        };
        assert_eq!(range.low, bound(ScalarValue::Date32(Some(19_753)), true));
    }

    #[test]
    fn between_and_conjunctions_make_one_range() {
        let expected = Predicate::Range(Range::new(
            column("a", vec![]),
            bound(ScalarValue::Int32(Some(3)), true),
            bound(ScalarValue::Int32(Some(8)), false),
        ));
        let conjunction = col("a")
            .gt_eq(lit(1))
            .and(col("a").lt(lit(8)))
            .and(col("a").gt_eq(lit(3)));
        assert_eq!(read(conjunction), expected);
        let Predicate::Range(range) = read(col("a").between(lit(1), lit(9))) else {
            panic!("a range");
        };
        assert!(!range.empty);
        let Predicate::Range(range) = read(col("a").gt(lit(5)).and(col("a").lt(lit(5)))) else {
            panic!("a range");
        };
        assert!(range.empty);
        // In total order -0.0 < +0.0: (-0.0, +0.0] holds +0.0.
        let Predicate::Range(range) = read(col("f").gt(lit(-0.0)).and(col("f").lt_eq(lit(0.0))))
        else {
            panic!("a range");
        };
        assert!(!range.empty);
    }

    #[test]
    fn lists_nulls_and_booleans() {
        let Predicate::Not(inner) = read(col("a").in_list(vec![lit(1), lit(2)], true)) else {
            panic!("a negation");
        };
        assert!(matches!(*inner, Predicate::Or(ref parts) if parts.len() == 2));
        assert_eq!(
            read(col("a").eq(lit(ScalarValue::Int32(None)))),
            Predicate::Constant(None)
        );
        assert_eq!(read(col("f").eq(lit(f64::NAN))), Predicate::Unknown);
        assert_eq!(read(col("a").is_null()), Predicate::IsNull("a".to_string()));
        assert!(matches!(read(col("b")), Predicate::Range(_)));
        assert_eq!(read(lit(1).lt(lit(2))), Predicate::Constant(Some(true)));
        assert_eq!(read((col("a") + lit(1)).gt(lit(2))), Predicate::Unknown);
        let predicate = read(col("a").gt(lit(1)).or(col("f").is_not_null()));
        assert_eq!(predicate.columns(), vec!["a", "f"]);
    }
}
