//! `INTERSECT ALL` and `EXCEPT ALL`, refused until weir computes them.
//!
//! DataFusion plans both as a semi (anti) join without the `DISTINCT` of
//! their plain forms: a row the left side has `m` times and the right `n`
//! times comes out `m` times (or not at all), where SQL wants `min(m, n)`
//! (`max(m - n, 0)`) copies. After planning they cannot be told from a
//! semi join, so they are refused in the statement, before a wrong answer
//! can come out. `INTERSECT` and `EXCEPT` (distinct) are planned.

use std::ops::ControlFlow;

use datafusion_sql::sqlparser::ast::{
    Query, SetExpr, SetOperator, SetQuantifier, Spanned, Statement, Visit, Visitor,
};

use super::SqlError;

/// Refuses `statement` when it has an `INTERSECT ALL` or `EXCEPT ALL`,
/// pointing at it.
///
/// # Errors
/// The first such set operation.
pub fn refuse_all_set_operations(statement: &Statement) -> Result<(), SqlError> {
    // The visitor breaks with `()` and keeps the error: a large break value
    // makes every frame of the walk larger, and generated expressions
    // nest thousands deep.
    let mut found = AllSetOperations(None);
    let _ = statement.visit(&mut found);
    match found.0 {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

struct AllSetOperations(Option<SqlError>);

impl Visitor for AllSetOperations {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.0 = first_all(&query.body);
        match self.0 {
            Some(_) => ControlFlow::Break(()),
            None => ControlFlow::Continue(()),
        }
    }
}

/// The error for the first `INTERSECT ALL` or `EXCEPT ALL` in `body`.
fn first_all(body: &SetExpr) -> Option<SqlError> {
    let SetExpr::SetOperation {
        op,
        set_quantifier,
        left,
        right,
    } = body
    else {
        return None;
    };
    let all = matches!(
        set_quantifier,
        SetQuantifier::All | SetQuantifier::AllByName
    );
    let name = match op {
        SetOperator::Intersect if all => Some("INTERSECT"),
        SetOperator::Except | SetOperator::Minus if all => Some("EXCEPT"),
        _ => None,
    };
    match name {
        Some(name) => Some(
            SqlError::new(format!(
                "{name} ALL is not supported yet ({name} without ALL is)"
            ))
            .at(body.span()),
        ),
        None => first_all(left).or_else(|| first_all(right)),
    }
}

#[cfg(test)]
mod tests {
    use datafusion_sql::sqlparser::dialect::GenericDialect;
    use datafusion_sql::sqlparser::parser::Parser;

    use super::*;

    fn check(sql: &str) -> Result<(), SqlError> {
        let statement = Parser::parse_sql(&GenericDialect {}, sql)
            .expect("parses")
            .remove(0);
        refuse_all_set_operations(&statement)
    }

    #[test]
    fn only_the_all_forms_of_intersect_and_except_are_refused() {
        for ok in [
            "SELECT a FROM t INTERSECT SELECT a FROM u",
            "SELECT a FROM t EXCEPT SELECT a FROM u",
            "SELECT a FROM t UNION ALL SELECT a FROM u",
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
        for (refused, name) in [
            (
                "SELECT a FROM t INTERSECT ALL SELECT a FROM u",
                "INTERSECT ALL",
            ),
            (
                "SELECT a FROM t UNION SELECT a FROM v EXCEPT ALL SELECT a FROM u",
                "EXCEPT ALL",
            ),
            (
                "SELECT * FROM (SELECT a FROM t EXCEPT ALL SELECT a FROM u) x",
                "EXCEPT ALL",
            ),
        ] {
            let error = check(refused).expect_err(refused).to_string();
            assert!(
                error.contains(&format!("{name} is not supported yet")),
                "{error}"
            );
        }
    }
}
