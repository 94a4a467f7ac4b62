//! A bound on how deep a script's expressions nest, checked on its tokens
//! before anything parses it: the parser, the planner and the operators
//! walk expressions recursively, and a generated chain of 20,000 `+`
//! overflowed the stack (aborting the process) before any of them could
//! say what was wrong. Beyond [`MAX_DEPTH`] levels the script is refused
//! with an error that points at the place, as DuckDB refuses expressions
//! deeper than its `max_expression_depth`.
//!
//! The depth is estimated from the tokens: each parenthesis is a level, and
//! so is each operator chained after another without one (`a + b + c` is a
//! tree two levels deep). A comma or a clause keyword starts a new
//! expression.

use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::keywords::Keyword;
use datafusion_sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::SqlError;

/// The deepest expressions weir plans (10,000-term chains plan and run).
pub const MAX_DEPTH: usize = 10_000;

/// Refuses `text` when an expression in it nests deeper than
/// [`MAX_DEPTH`], pointing at where it does. Text that does not tokenize
/// is left to the parser, which says why.
///
/// # Errors
/// The expression that is too deep.
pub fn check_depth(text: &str) -> Result<(), SqlError> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, text).tokenize_with_location() else {
        return Ok(());
    };
    // Per open parenthesis: the operators chained at its level, by how
    // tightly they bind (logical, comparison, arithmetic). A looser one
    // ends the chains of the tighter ones: `a = 1 OR b = 2 OR ...` nests
    // once per OR, not per OR and `=`.
    let mut levels: Vec<[usize; 3]> = vec![[0; 3]];
    for token in tokens {
        match &token.token {
            Token::LParen => levels.push([0; 3]),
            Token::RParen if levels.len() > 1 => {
                levels.pop();
            }
            t => {
                let chains = levels.last_mut().expect("the outermost level stays");
                if starts_expression(t) {
                    *chains = [0; 3];
                } else if let Some(class) = binding(t) {
                    chains[class] += 1;
                    chains[class + 1..].fill(0);
                }
            }
        }
        let depth = levels.len() + levels.last().map_or(0, |c| c.iter().sum::<usize>());
        if depth > MAX_DEPTH {
            return Err(SqlError::new(format!(
                "an expression here nests more than {MAX_DEPTH} levels deep (each parenthesis \
                 and each operator chained after another counts one), which is as deep as \
                 weir plans: split it, e.g. into several columns, a CTE or an IN list"
            ))
            .at(token.span));
        }
    }
    Ok(())
}

/// Whether `token` ends one expression and starts another: a comma, a
/// semicolon, a clause keyword.
fn starts_expression(token: &Token) -> bool {
    match token {
        Token::Comma | Token::SemiColon => true,
        Token::Word(word) => matches!(
            word.keyword,
            Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::ON
                | Keyword::JOIN
                | Keyword::UNION
                | Keyword::AS
                | Keyword::WHEN
                | Keyword::THEN
                | Keyword::ELSE
                | Keyword::END
                | Keyword::SET
                | Keyword::VALUES
        ),
        _ => false,
    }
}

/// How tightly binary operator `token` binds: 0 for `AND`/`OR`, 1 for
/// comparisons, 2 for arithmetic and `||`; `None` for other tokens.
fn binding(token: &Token) -> Option<usize> {
    match token {
        Token::Word(word) if matches!(word.keyword, Keyword::AND | Keyword::OR) => Some(0),
        Token::Eq | Token::Neq | Token::Lt | Token::Gt | Token::LtEq | Token::GtEq => Some(1),
        Token::Plus | Token::Minus | Token::Mul | Token::Div | Token::Mod | Token::StringConcat => {
            Some(2)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(terms: usize, op: &str) -> String {
        let terms: Vec<String> = (0..terms).map(|i| format!("x{i}")).collect();
        format!("SELECT {} FROM t", terms.join(op))
    }

    #[test]
    fn long_chains_are_refused_where_they_get_too_deep() {
        assert!(check_depth(&chain(MAX_DEPTH - 10, " + ")).is_ok());
        let e = check_depth(&chain(MAX_DEPTH + 10, " OR ")).expect_err("too deep");
        assert!(
            e.message.contains("nests more than 10000 levels"),
            "{}",
            e.message
        );
        assert!(e.span.is_some());
    }

    #[test]
    fn comparisons_in_a_chain_of_ors_count_once() {
        let terms: Vec<String> = (0..MAX_DEPTH - 10).map(|i| format!("x = {i}")).collect();
        let sql = format!("SELECT * FROM t WHERE {}", terms.join(" OR "));
        assert!(check_depth(&sql).is_ok());
    }

    #[test]
    fn many_shallow_expressions_are_fine() {
        let items: Vec<String> = (0..3 * MAX_DEPTH).map(|i| format!("a + {i}")).collect();
        assert!(check_depth(&format!("SELECT {} FROM t", items.join(", "))).is_ok());
        let list: Vec<String> = (0..3 * MAX_DEPTH).map(|i| i.to_string()).collect();
        assert!(check_depth(&format!("SELECT * FROM t WHERE a IN ({})", list.join(", "))).is_ok());
    }
}
