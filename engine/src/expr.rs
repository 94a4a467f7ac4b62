//! Expressions: DataFusion's [`Expr`] to build them, its `PhysicalExpr` to
//! evaluate them over record batches.
//!
//! [`Compiled::new`] types an expression against the schema of the batches
//! it will see: DataFusion's type coercion rules insert the casts (an
//! `Int32` column compared with an `Int64` literal, a decimal added to an
//! integer), then the expression is turned into a physical one. Errors name
//! the expression and the columns involved.

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::datatypes::{Field, FieldRef, Schema, SchemaRef};
use datafusion_common::DFSchema;
use datafusion_common::tree_node::TreeNode;
use datafusion_expr::ExprSchemable;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion_physical_expr::{PhysicalExpr, create_physical_expr};

pub use datafusion_expr::{Expr, SortExpr, cast, col, lit};
/// Aggregate functions (`sum`, `count`, `avg`, `min`, `max`,
/// `count_distinct`, ...) for [`DataFrame::aggregate`](crate::dataframe::DataFrame::aggregate).
pub use datafusion_functions_aggregate::expr_fn as aggregate;

use crate::{Error, Result};

/// An expression typed against an input schema, ready to evaluate.
#[derive(Clone)]
pub struct Compiled {
    expr: Expr,
    physical: Arc<dyn PhysicalExpr>,
    field: FieldRef,
}

impl fmt::Debug for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

impl fmt::Display for Compiled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.expr)
    }
}

impl Compiled {
    /// Types `expr` against `schema` (with coercion) and plans its
    /// evaluation.
    ///
    /// # Errors
    /// [`Error::Expr`] when a column is unknown (the message lists the valid
    /// ones), when types cannot be coerced (naming both), or when a function
    /// does not take its arguments.
    pub fn new(expr: &Expr, schema: &Schema) -> Result<Self> {
        let fail = |e: datafusion_common::DataFusionError| Error::Expr {
            expr: expr.to_string(),
            message: e.strip_backtrace(),
        };
        let dfschema = DFSchema::try_from(schema.clone()).map_err(fail)?;
        let coerced = expr
            .clone()
            .rewrite(&mut TypeCoercionRewriter::new(&dfschema))
            .map_err(fail)?
            .data;
        let (_, field) = coerced.to_field(&dfschema).map_err(fail)?;
        let physical = create_physical_expr(
            &coerced,
            &dfschema,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
        .map_err(fail)?;
        Ok(Self {
            expr: expr.clone(),
            physical,
            field,
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Whether the expression may give another value for the same input
    /// (`random()`, `uuid()`): an operator evaluating it is not
    /// deterministic.
    pub fn is_volatile(&self) -> bool {
        self.expr.is_volatile()
    }

    /// The output column: name, type and nullability.
    pub fn field(&self) -> &FieldRef {
        &self.field
    }

    /// The physical expression.
    pub fn physical(&self) -> &Arc<dyn PhysicalExpr> {
        &self.physical
    }

    /// Evaluates the expression over every row of `batch`.
    ///
    /// # Errors
    /// [`Error::Expr`] when evaluation fails (division by zero, an invalid
    /// cast, ...).
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        self.physical
            .evaluate(batch)
            .and_then(|value| value.into_array(batch.num_rows()))
            .map_err(|e| self.error(e))
    }

    /// Evaluates a predicate: a boolean per row.
    ///
    /// # Errors
    /// As [`evaluate`](Self::evaluate), or when the expression is not
    /// boolean.
    pub fn evaluate_predicate(&self, batch: &RecordBatch) -> Result<BooleanArray> {
        let array = self.evaluate(batch)?;
        array
            .as_any()
            .downcast_ref::<BooleanArray>()
            .cloned()
            .ok_or_else(|| Error::Expr {
                expr: self.expr.to_string(),
                message: format!("a predicate must be boolean, not {}", array.data_type()),
            })
    }

    fn error(&self, e: datafusion_common::DataFusionError) -> Error {
        Error::Expr {
            expr: self.expr.to_string(),
            message: e.strip_backtrace(),
        }
    }
}

/// A reference to the column named exactly `name`. Unlike [`col`], which
/// reads `a.b` as column `b` of relation `a`, the name is taken as it is.
pub fn column(name: &str) -> Expr {
    Expr::Column(datafusion_common::Column::from_name(name))
}

/// Each expression with the name of the column it makes: its alias, or the
/// expression as written (`sum(x)`), as DataFusion names it.
pub fn named(exprs: impl IntoIterator<Item = Expr>) -> Vec<(Expr, String)> {
    exprs
        .into_iter()
        .map(|e| {
            let name = e.schema_name().to_string();
            (e, name)
        })
        .collect()
}

/// The names of `schema`'s columns, comma-separated, for messages that
/// list the valid ones.
pub fn column_list(schema: &Schema) -> String {
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    names.join(", ")
}

/// The schema of the columns `exprs` produce, named by their fields.
pub fn output_schema(exprs: &[Compiled]) -> SchemaRef {
    Arc::new(Schema::new(
        exprs
            .iter()
            .map(|e| Arc::clone(e.field()))
            .collect::<Vec<_>>(),
    ))
}

/// A field named `name` with the type and nullability of `expr`.
pub fn renamed(expr: &Compiled, name: &str) -> FieldRef {
    Arc::new(Field::new(
        name,
        expr.field().data_type().clone(),
        expr.field().is_nullable(),
    ))
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, Int64Array, StringArray};
    use arrow::datatypes::DataType;

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int32, true),
            Field::new("s", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None, Some(30)])),
                Arc::new(StringArray::from(vec!["x", "y", "z"])),
            ],
        )
        .expect("valid batch")
    }

    #[test]
    fn coercion_widens_mixed_integer_types() {
        let b = batch();
        let e = Compiled::new(&(col("a") + lit(10i64)), &b.schema()).expect("compiles");
        assert_eq!(e.field().data_type(), &DataType::Int64);
        let out = e.evaluate(&b).expect("evaluates");
        let out = out.as_any().downcast_ref::<Int64Array>().expect("int64");
        assert_eq!(out, &Int64Array::from(vec![Some(11), None, Some(40)]));
    }

    #[test]
    fn predicates_evaluate_to_booleans() {
        let b = batch();
        let e = Compiled::new(&col("a").gt(lit(5i64)), &b.schema()).expect("compiles");
        let keep = e.evaluate_predicate(&b).expect("evaluates");
        assert_eq!(
            keep,
            BooleanArray::from(vec![Some(false), None, Some(true)])
        );
        let not_bool = Compiled::new(&col("a"), &b.schema()).expect("compiles");
        let err = not_bool.evaluate_predicate(&b).expect_err("not boolean");
        assert!(err.to_string().contains("must be boolean"), "{err}");
    }

    #[test]
    fn an_unknown_column_is_named_with_the_valid_ones() {
        let b = batch();
        let err = Compiled::new(&col("nope").gt(lit(1)), &b.schema()).expect_err("unknown");
        let message = err.to_string();
        assert!(message.contains("nope"), "{message}");
        assert!(message.contains('a') && message.contains('s'), "{message}");
    }

    #[test]
    fn incompatible_types_name_both() {
        let b = batch();
        let err = Compiled::new(&(col("s") * lit(2)), &b.schema()).expect_err("string * int");
        let message = err.to_string();
        assert!(
            message.contains("Utf8") && message.contains("Int"),
            "{message}"
        );
    }
}
