//! Random, valid `SELECT`s over the TPC-H tables, from a seed: joins
//! (inner and outer) along foreign keys, `IN`/`EXISTS`/scalar subqueries
//! (correlated or not), `GROUP BY`/`HAVING` with `DISTINCT` aggregates,
//! CTEs, `UNION ALL`, `CASE`/`CAST`/`NULLIF`/`COALESCE`, string and date
//! functions, `ORDER BY` + `LIMIT`.
//!
//! Every query is one both engines must answer alike: no float division
//! by a column (DuckDB gives NULL where SQL errs), no date arithmetic in
//! outputs (DuckDB's `date + interval` is a timestamp), no casts that
//! round; a `LIMIT` always follows an `ORDER BY` of every output column,
//! floats last, with explicit `NULLS FIRST`/`LAST`.

use weir_engine::testing::Rng;

use crate::schema::{Column, Domain, KEYS, TABLES, Table, Ty, table};

/// A value in scope: a column or an expression, with its type and what it
/// holds.
#[derive(Debug, Clone)]
struct Value {
    sql: String,
    ty: Ty,
    domain: Domain,
}

impl Value {
    fn new(sql: impl Into<String>, ty: Ty, domain: Domain) -> Self {
        Self {
            sql: sql.into(),
            ty,
            domain,
        }
    }

    fn of(alias: &str, column: &Column) -> Self {
        Self::new(format!("{alias}.{}", column.name), column.ty, column.domain)
    }
}

/// A `FROM` clause and the values it brings into scope.
struct From {
    sql: String,
    scope: Vec<Value>,
    /// The tables joined, by alias.
    tables: Vec<(String, &'static Table)>,
}

/// A foreign key seen from a table joined: its column there, the table it
/// leads to, and the column pairs.
type Edge = (
    &'static str,
    &'static Table,
    Vec<(&'static str, &'static str)>,
);

/// What the query generator keeps between queries.
pub struct Generator {
    rng: Rng,
    /// Aliases handed out in the current query.
    aliases: usize,
}

/// The query kinds and their weights.
const KINDS: [(Kind, u64); 5] = [
    (Kind::Aggregate, 4),
    (Kind::Plain, 3),
    (Kind::Union, 1),
    (Kind::Cte, 1),
    (Kind::Derived, 1),
];

#[derive(Debug, Clone, Copy)]
enum Kind {
    Aggregate,
    Plain,
    Union,
    Cte,
    Derived,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Rng::new(seed),
            aliases: 0,
        }
    }

    /// The next query.
    pub fn query(&mut self) -> String {
        self.aliases = 0;
        let total: u64 = KINDS.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.below(total);
        let kind = KINDS
            .iter()
            .find(|(_, w)| {
                let found = pick < *w;
                pick = pick.saturating_sub(*w);
                found
            })
            .map_or(Kind::Plain, |(k, _)| *k);
        match kind {
            Kind::Aggregate => {
                let from = self.joined_tables(2);
                let (body, outputs) = self.aggregate_body(&from);
                self.finish(body, &outputs, true)
            }
            Kind::Plain => {
                let from = self.joined_tables(3);
                let (body, outputs) = self.plain_body(&from);
                self.finish(body, &outputs, false)
            }
            Kind::Union => self.union_query(),
            Kind::Cte => self.cte_query(),
            Kind::Derived => self.derived_query(),
        }
    }

    fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("t{}", self.aliases)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.rng.below(items.len() as u64) as usize]
    }

    /// One of `choices` that a column of `scope` has (a float when one
    /// is a decimal), or the first of them.
    fn ty_in(&mut self, scope: &[Value], choices: &[Ty]) -> Ty {
        let present: Vec<Ty> = choices
            .iter()
            .copied()
            .filter(|ty| {
                let wanted = if *ty == Ty::Float { Ty::Dec } else { *ty };
                scope.iter().any(|v| v.ty == wanted)
            })
            .collect();
        if present.is_empty() {
            choices[0]
        } else {
            *self.pick(&present)
        }
    }

    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.rng.below((hi - lo + 1) as u64) as i64
    }

    // ------------------------------------------------------------------
    // Clauses.

    /// A table, then up to `joins` joins along foreign keys.
    fn joined_tables(&mut self, joins: u64) -> From {
        let first = self.pick(TABLES);
        let alias = self.alias();
        let mut from = From {
            sql: format!("{} {alias}", first.name),
            scope: first.columns.iter().map(|c| Value::of(&alias, c)).collect(),
            tables: vec![(alias, first)],
        };
        for _ in 0..self.rng.below(joins + 1) {
            self.join(&mut from);
        }
        from
    }

    /// Joins one more table to `from` along a key from or to a table in it.
    fn join(&mut self, from: &mut From) {
        let joined: Vec<&str> = from.tables.iter().map(|(_, t)| t.name).collect();
        let edges: Vec<Edge> = KEYS
            .iter()
            .filter_map(|k| {
                if joined.contains(&k.from) && !joined.contains(&k.to) {
                    Some((k.from, table(k.to), k.columns.to_vec()))
                } else if joined.contains(&k.to) && !joined.contains(&k.from) {
                    let flipped = k.columns.iter().map(|&(a, b)| (b, a)).collect();
                    Some((k.to, table(k.from), flipped))
                } else {
                    None
                }
            })
            .collect();
        if edges.is_empty() {
            return;
        }
        let (near, far, columns) = self.pick(&edges).clone();
        let near_alias = from
            .tables
            .iter()
            .find(|(_, t)| t.name == near)
            .map(|(a, _)| a.clone())
            .expect("in scope");
        let alias = self.alias();
        let mut on: Vec<String> = columns
            .iter()
            .map(|(a, b)| format!("{near_alias}.{a} = {alias}.{b}"))
            .collect();
        let far_scope: Vec<Value> = far.columns.iter().map(|c| Value::of(&alias, c)).collect();
        if self.rng.chance(0.25) {
            on.push(self.comparison(&far_scope));
        }
        let kind = *self.pick(&[
            "JOIN",
            "JOIN",
            "JOIN",
            "LEFT JOIN",
            "LEFT JOIN",
            "RIGHT JOIN",
            "FULL JOIN",
        ]);
        from.sql.push_str(&format!(
            " {kind} {} {alias} ON {}",
            far.name,
            on.join(" AND ")
        ));
        from.scope.extend(far_scope);
        from.tables.push((alias, far));
    }

    /// `WHERE` and its conditions (subqueries among them), or nothing.
    fn where_clause(&mut self, from: &From) -> String {
        let mut conditions = Vec::new();
        for _ in 0..self.rng.below(3).min(self.rng.below(3)) {
            conditions.push(self.predicate(&from.scope, 2));
        }
        if self.rng.chance(0.3) {
            conditions.push(self.subquery_predicate(from));
        }
        if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        }
    }

    /// A `SELECT` of expressions over `from` (maybe `DISTINCT`), and its
    /// outputs.
    fn plain_body(&mut self, from: &From) -> (String, Vec<Value>) {
        let types: Vec<Ty> = (0..1 + self.rng.below(4))
            .map(|_| {
                self.ty_in(
                    &from.scope,
                    &[Ty::Int, Ty::Dec, Ty::Str, Ty::Str, Ty::Date, Ty::Float],
                )
            })
            .collect();
        self.plain_body_of(from, &types)
    }

    fn plain_body_of(&mut self, from: &From, types: &[Ty]) -> (String, Vec<Value>) {
        let mut items = Vec::new();
        let mut outputs = Vec::new();
        for (i, ty) in types.iter().enumerate() {
            let value = self.expr(*ty, &from.scope, 2);
            items.push(format!("{} AS c{i}", value.sql));
            outputs.push(Value::new(format!("c{i}"), value.ty, value.domain));
        }
        let distinct = if self.rng.chance(0.15) {
            "DISTINCT "
        } else {
            ""
        };
        let body = format!(
            "SELECT {distinct}{} FROM {}{}",
            items.join(", "),
            from.sql,
            self.where_clause(from)
        );
        (body, outputs)
    }

    /// A grouped (or global) aggregate over `from`, maybe with `HAVING`,
    /// and its outputs.
    fn aggregate_body(&mut self, from: &From) -> (String, Vec<Value>) {
        let mut items = Vec::new();
        let mut outputs = Vec::new();
        let mut keys = Vec::new();
        for i in 0..self.rng.below(3) {
            let key = self.group_key(&from.scope);
            items.push(format!("{} AS k{i}", key.sql));
            outputs.push(Value::new(format!("k{i}"), key.ty, key.domain));
            keys.push(key.sql);
        }
        for i in 0..1 + self.rng.below(3) {
            let aggregate = self.aggregate(&from.scope);
            items.push(format!("{} AS a{i}", aggregate.sql));
            outputs.push(Value::new(format!("a{i}"), aggregate.ty, aggregate.domain));
        }
        let mut body = format!(
            "SELECT {} FROM {}{}",
            items.join(", "),
            from.sql,
            self.where_clause(from)
        );
        if !keys.is_empty() {
            body.push_str(&format!(" GROUP BY {}", keys.join(", ")));
            if self.rng.chance(0.3) {
                let aggregate = self.aggregate(&from.scope);
                let op = self.pick(&[">", ">=", "<", "<>"]).to_string();
                let literal = self.literal(aggregate.ty, aggregate.domain);
                body.push_str(&format!(" HAVING {} {op} {literal}", aggregate.sql));
            }
        }
        (body, outputs)
    }

    /// `body` as a whole query: ordered by every output and limited, or
    /// as it is when `may_stay_unordered` and the dice say so.
    fn finish(&mut self, body: String, outputs: &[Value], may_stay_unordered: bool) -> String {
        if may_stay_unordered && self.rng.chance(0.5) {
            return body;
        }
        let mut keys: Vec<(usize, &Value)> = outputs.iter().enumerate().collect();
        // Floats last: a tie between nearly equal floats must not decide
        // which rows a LIMIT keeps.
        keys.sort_by_key(|(_, v)| v.ty == Ty::Float);
        let order: Vec<String> = keys
            .iter()
            .map(|(i, _)| {
                let direction = self.pick(&["ASC", "DESC"]).to_string();
                let nulls = self.pick(&["NULLS FIRST", "NULLS LAST"]).to_string();
                format!("{} {direction} {nulls}", i + 1)
            })
            .collect();
        let limit = self.between(1, 60);
        let offset = if self.rng.chance(0.2) {
            format!(" OFFSET {}", self.between(1, 20))
        } else {
            String::new()
        };
        format!("{body} ORDER BY {} LIMIT {limit}{offset}", order.join(", "))
    }

    /// Two selects of the same types, `UNION ALL`, ordered and limited or
    /// aggregated.
    fn union_query(&mut self) -> String {
        let first = self.joined_tables(1);
        let types: Vec<Ty> = (0..1 + self.rng.below(3))
            .map(|_| self.ty_in(&first.scope, &[Ty::Int, Ty::Dec, Ty::Str, Ty::Date]))
            .collect();
        let (left, outputs) = self.plain_body_of(&first, &types);
        let second = self.joined_tables(1);
        let (right, _) = self.plain_body_of(&second, &types);
        let union = format!("{left} UNION ALL {right}");
        if self.rng.chance(0.5) {
            let body = format!("SELECT * FROM ({union}) u");
            self.finish(body, &outputs, false)
        } else {
            let from = From {
                sql: format!("({union}) u"),
                scope: outputs
                    .iter()
                    .map(|v| Value::new(format!("u.{}", v.sql), v.ty, v.domain))
                    .collect(),
                tables: Vec::new(),
            };
            let (body, outputs) = self.aggregate_body(&from);
            self.finish(body, &outputs, true)
        }
    }

    /// A query over a CTE of an aggregate, maybe joined back to a table.
    fn cte_query(&mut self) -> String {
        let inner = self.joined_tables(1);
        let (cte, outputs) = self.aggregate_body(&inner);
        let from = Self::outputs_as_table("c", &outputs);
        let (body, outputs) = if self.rng.chance(0.5) {
            self.aggregate_body(&from)
        } else {
            self.plain_body(&from)
        };
        let query = self.finish(body, &outputs, false);
        format!("WITH c AS ({cte}) {query}")
    }

    /// A query over a derived table of a plain select.
    fn derived_query(&mut self) -> String {
        let inner = self.joined_tables(2);
        let (derived, outputs) = self.plain_body(&inner);
        let mut from = Self::outputs_as_table("d", &outputs);
        from.sql = format!("({derived}) d");
        let (body, outputs) = self.aggregate_body(&from);
        self.finish(body, &outputs, true)
    }

    /// The outputs of a query, as columns of `name`.
    fn outputs_as_table(name: &str, outputs: &[Value]) -> From {
        From {
            sql: name.to_string(),
            scope: outputs
                .iter()
                .map(|v| Value::new(format!("{name}.{}", v.sql), v.ty, v.domain))
                .collect(),
            tables: Vec::new(),
        }
    }

    // ------------------------------------------------------------------
    // Expressions.

    /// A column of `ty` in `scope`, if there is one.
    fn column(&mut self, ty: Ty, scope: &[Value]) -> Option<Value> {
        let of_type: Vec<&Value> = scope.iter().filter(|v| v.ty == ty).collect();
        (!of_type.is_empty()).then(|| (*self.pick(&of_type)).clone())
    }

    /// A value of `ty`: a column, a literal, or an expression of `depth`
    /// levels at most.
    fn expr(&mut self, ty: Ty, scope: &[Value], depth: u32) -> Value {
        if depth == 0 || self.rng.chance(0.5) {
            if let Some(column) = self.column(ty, scope)
                && !self.rng.chance(0.1)
            {
                return column;
            }
            if ty != Ty::Float {
                let domain = default_domain(ty);
                return Value::new(self.literal(ty, domain), ty, domain);
            }
        }
        let d = depth.saturating_sub(1);
        let any = Domain::Any;
        match ty {
            Ty::Int => match self.rng.below(8) {
                0 => self.arithmetic(ty, &["+", "-"], scope, d),
                1 => self.scaled(ty, 5, scope, d),
                2 => {
                    let s = self.expr(Ty::Str, scope, d);
                    Value::new(format!("length({})", s.sql), ty, Domain::Ints(0, 40))
                }
                3 => {
                    let date = self.expr(Ty::Date, scope, d);
                    let part = self.pick(&["year", "month", "day"]).to_string();
                    let domain = if part == "year" {
                        Domain::Ints(1992, 1998)
                    } else {
                        Domain::Ints(1, 12)
                    };
                    Value::new(format!("extract({part} FROM {})", date.sql), ty, domain)
                }
                4 => self.abs(ty, scope, d),
                _ => self.conditional(ty, scope, d),
            },
            Ty::Dec => match self.rng.below(7) {
                0 => self.arithmetic(ty, &["+", "-", "*"], scope, d),
                1 => self.scaled(ty, 9, scope, d),
                2 => {
                    let a = self.expr(Ty::Int, scope, d);
                    Value::new(format!("CAST({} AS DECIMAL(15, 2))", a.sql), ty, a.domain)
                }
                3 => self.abs(ty, scope, d),
                _ => self.conditional(ty, scope, d),
            },
            Ty::Float => {
                let a = self.expr(Ty::Dec, scope, d);
                match self.rng.below(3) {
                    0 => Value::new(format!("CAST({} AS DOUBLE)", a.sql), ty, any),
                    1 => {
                        let k = self.between(2, 7);
                        Value::new(format!("(CAST({} AS DOUBLE) / {k})", a.sql), ty, any)
                    }
                    _ => {
                        let b = self.expr(Ty::Int, scope, d);
                        Value::new(format!("(CAST({} AS DOUBLE) * 1.5)", b.sql), ty, any)
                    }
                }
            }
            Ty::Str => match self.rng.below(10) {
                0 => {
                    let f = self.pick(&["upper", "lower", "trim"]).to_string();
                    let a = self.expr(Ty::Str, scope, d);
                    Value::new(format!("{f}({})", a.sql), ty, any)
                }
                1 => {
                    let a = self.expr(Ty::Str, scope, d);
                    let (start, len) = (self.between(1, 4), self.between(1, 6));
                    Value::new(format!("substr({}, {start}, {len})", a.sql), ty, any)
                }
                2 => {
                    let (a, b) = (self.expr(Ty::Str, scope, d), self.expr(Ty::Str, scope, d));
                    Value::new(format!("({} || {})", a.sql, b.sql), ty, any)
                }
                3 => {
                    let a = self.expr(Ty::Int, scope, d);
                    Value::new(format!("CAST({} AS VARCHAR)", a.sql), ty, any)
                }
                4 => {
                    let a = self.expr(Ty::Date, scope, d);
                    Value::new(format!("CAST({} AS VARCHAR)", a.sql), ty, any)
                }
                5 => {
                    let a = self.expr(Ty::Str, scope, d);
                    Value::new(format!("replace({}, 'a', 'A')", a.sql), ty, any)
                }
                _ => self.conditional(ty, scope, d),
            },
            Ty::Date => self.conditional(ty, scope, d),
        }
    }

    /// `(a op b)` of two values of `ty`, `op` one of `ops`.
    fn arithmetic(&mut self, ty: Ty, ops: &[&str], scope: &[Value], depth: u32) -> Value {
        let op = self.pick(ops).to_string();
        // Products of products overflow DuckDB's decimals.
        let depth = if op == "*" { 0 } else { depth };
        let (a, b) = (self.expr(ty, scope, depth), self.expr(ty, scope, depth));
        Value::new(format!("({} {op} {})", a.sql, b.sql), ty, Domain::Any)
    }

    /// A value of `ty` times a number from 2 to `most`.
    fn scaled(&mut self, ty: Ty, most: i64, scope: &[Value], depth: u32) -> Value {
        let a = self.expr(ty, scope, depth);
        let k = self.between(2, most);
        Value::new(format!("({} * {k})", a.sql), ty, Domain::Any)
    }

    /// `abs` of a value of `ty`.
    fn abs(&mut self, ty: Ty, scope: &[Value], depth: u32) -> Value {
        let a = self.expr(ty, scope, depth);
        Value::new(format!("abs({})", a.sql), ty, Domain::Any)
    }

    /// `CASE`, `COALESCE` or `NULLIF` of values of `ty`.
    fn conditional(&mut self, ty: Ty, scope: &[Value], depth: u32) -> Value {
        let a = self.expr(ty, scope, depth);
        match self.rng.below(3) {
            0 => {
                let condition = self.predicate(scope, depth);
                let b = self.expr(ty, scope, depth);
                let otherwise = if self.rng.chance(0.2) {
                    String::new()
                } else {
                    format!(" ELSE {}", b.sql)
                };
                Value::new(
                    format!("CASE WHEN {condition} THEN {}{otherwise} END", a.sql),
                    ty,
                    a.domain,
                )
            }
            1 => {
                let literal = self.literal(ty, a.domain);
                Value::new(format!("COALESCE({}, {literal})", a.sql), ty, a.domain)
            }
            _ => {
                let literal = self.literal(ty, a.domain);
                Value::new(format!("NULLIF({}, {literal})", a.sql), ty, a.domain)
            }
        }
    }

    /// A literal of `ty`, from the values of `domain`.
    fn literal(&mut self, ty: Ty, domain: Domain) -> String {
        match (ty, domain) {
            (Ty::Int, Domain::Ints(lo, hi)) => self.between(lo, hi).to_string(),
            (Ty::Int, _) => self.between(0, 100).to_string(),
            (Ty::Dec, Domain::Cents(lo, hi)) => cents(self.between(lo, hi)),
            (Ty::Dec | Ty::Float, Domain::Ints(lo, hi)) => self.between(lo, hi).to_string(),
            (Ty::Dec, _) => cents(self.between(0, 10_000)),
            (Ty::Float, _) => format!("{}.5", self.between(0, 1000)),
            (Ty::Str, Domain::Words(words) | Domain::Text(words)) => {
                let word: &&str = self.pick(words);
                quoted(word)
            }
            (Ty::Str, _) => {
                let word: &&str = self.pick(&["A", "M", "AIR", "Brand#2", "F", "1"]);
                quoted(word)
            }
            (Ty::Date, _) => format!("DATE '{}'", date(self.between(0, 2556))),
        }
    }

    /// Two literals of `ty` from `domain`, the lower first.
    fn bounds(&mut self, ty: Ty, domain: Domain) -> (String, String) {
        let (lo, hi, format): (i64, i64, fn(i64) -> String) = match (ty, domain) {
            (Ty::Int | Ty::Dec, Domain::Ints(lo, hi)) => (lo, hi, |n| n.to_string()),
            (Ty::Int, _) => (0, 100, |n| n.to_string()),
            (Ty::Dec, Domain::Cents(lo, hi)) => (lo, hi, cents),
            (Ty::Dec, _) => (0, 10_000, cents),
            (Ty::Date, _) => (0, 2556, |d| format!("DATE '{}'", date(d))),
            _ => {
                let (a, b) = (self.literal(ty, domain), self.literal(ty, domain));
                return if a <= b { (a, b) } else { (b, a) };
            }
        };
        let (a, b) = (self.between(lo, hi), self.between(lo, hi));
        (format(a.min(b)), format(a.max(b)))
    }

    // ------------------------------------------------------------------
    // Predicates.

    /// A condition over `scope` (no subqueries), of `depth` levels of
    /// `AND`/`OR`/`NOT` at most.
    fn predicate(&mut self, scope: &[Value], depth: u32) -> String {
        if depth > 0 && self.rng.chance(0.3) {
            let d = depth - 1;
            return match self.rng.below(3) {
                0 => format!(
                    "({} AND {})",
                    self.predicate(scope, d),
                    self.predicate(scope, d)
                ),
                1 => format!(
                    "({} OR {})",
                    self.predicate(scope, d),
                    self.predicate(scope, d)
                ),
                _ => format!("NOT ({})", self.predicate(scope, d)),
            };
        }
        match self.rng.below(7) {
            0 | 1 => self.comparison(scope),
            2 => {
                let ty = self.ty_in(scope, &[Ty::Int, Ty::Dec, Ty::Date]);
                let a = self.expr(ty, scope, 1);
                let (mut lo, mut hi) = self.bounds(ty, a.domain);
                // Now and then an empty range.
                if self.rng.chance(0.1) {
                    std::mem::swap(&mut lo, &mut hi);
                }
                format!("{} BETWEEN {lo} AND {hi}", a.sql)
            }
            3 => {
                let ty = self.ty_in(scope, &[Ty::Int, Ty::Str, Ty::Dec, Ty::Date]);
                let a = self.expr(ty, scope, 1);
                let not = if self.rng.chance(0.8) { " NOT" } else { "" };
                format!("{} IS{not} NULL", a.sql)
            }
            4 => {
                let ty = self.ty_in(scope, &[Ty::Int, Ty::Str]);
                let a = self.expr(ty, scope, 1);
                let list: Vec<String> = (0..1 + self.rng.below(4))
                    .map(|_| self.literal(ty, a.domain))
                    .collect();
                let not = if self.rng.chance(0.3) { " NOT" } else { "" };
                format!("{}{not} IN ({})", a.sql, list.join(", "))
            }
            5 => {
                let a = self.expr(Ty::Str, scope, 1);
                let fragment = match a.domain {
                    Domain::Words(w) | Domain::Text(w) => self.pick(w).to_string(),
                    _ => self.pick(&["A", "e", "1"]).to_string(),
                };
                let pattern = match self.rng.below(4) {
                    0 => format!("{fragment}%"),
                    1 => format!("%{fragment}"),
                    _ => format!("%{fragment}%"),
                };
                let not = if self.rng.chance(0.3) { " NOT" } else { "" };
                format!("{}{not} LIKE {}", a.sql, quoted(&pattern))
            }
            _ => {
                // Two values of one type.
                let ty = self.ty_in(scope, &[Ty::Int, Ty::Dec, Ty::Date, Ty::Str]);
                let (a, b) = (self.expr(ty, scope, 1), self.expr(ty, scope, 1));
                let op = self.pick(&["=", "<>", "<", "<=", ">", ">="]).to_string();
                format!("{} {op} {}", a.sql, b.sql)
            }
        }
    }

    /// A value compared with a literal.
    fn comparison(&mut self, scope: &[Value]) -> String {
        let ty = self.ty_in(scope, &[Ty::Int, Ty::Dec, Ty::Str, Ty::Date]);
        let a = self.expr(ty, scope, 1);
        // Equality with one of a few values selects rows; with one of
        // thousands, hardly any.
        let op = match a.domain {
            Domain::Words(_) => self.pick(&["=", "<>", "<", ">="]).to_string(),
            _ => self.pick(&["<>", "<", "<=", ">", ">="]).to_string(),
        };
        let literal = self.literal(ty, a.domain);
        format!("{} {op} {literal}", a.sql)
    }

    /// `IN`, `EXISTS` or a scalar subquery over a table related to one in
    /// `from`, correlated or not.
    fn subquery_predicate(&mut self, from: &From) -> String {
        let Some((outer_alias, outer)) =
            (!from.tables.is_empty()).then(|| self.pick(&from.tables).clone())
        else {
            return self.predicate(&from.scope, 1);
        };
        let related: Vec<(&str, &'static Table, &str)> = KEYS
            .iter()
            .filter_map(|k| {
                let (near, far) = k.columns[0];
                if k.from == outer.name {
                    Some((near, table(k.to), far))
                } else if k.to == outer.name {
                    Some((far, table(k.from), near))
                } else {
                    None
                }
            })
            .collect();
        if related.is_empty() {
            return self.predicate(&from.scope, 1);
        }
        let (near, inner, far) = *self.pick(&related);
        let alias = self.alias();
        let scope: Vec<Value> = inner.columns.iter().map(|c| Value::of(&alias, c)).collect();
        let filter = self.predicate(&scope, 1);
        let correlation = format!("{alias}.{far} = {outer_alias}.{near}");
        let not = if self.rng.chance(0.3) { "NOT " } else { "" };
        match self.rng.below(4) {
            0 => format!(
                "{outer_alias}.{near} {not}IN (SELECT {alias}.{far} FROM {} {alias} WHERE {filter})",
                inner.name
            ),
            1 => format!(
                "{not}EXISTS (SELECT 1 FROM {} {alias} WHERE {correlation} AND {filter})",
                inner.name
            ),
            _ => {
                // A number of the outer row against an aggregate of the
                // related rows (correlated) or of all (uncorrelated).
                let ty = *self.pick(&[Ty::Int, Ty::Dec]);
                let Some(inner_value) = self.column(ty, &scope) else {
                    return self.predicate(&from.scope, 1);
                };
                let outer_scope: Vec<Value> = outer
                    .columns
                    .iter()
                    .map(|c| Value::of(&outer_alias, c))
                    .collect();
                let Some(outer_value) = self.column(ty, &outer_scope) else {
                    return self.predicate(&from.scope, 1);
                };
                let aggregate = self.pick(&["avg", "min", "max", "sum"]).to_string();
                let condition = if self.rng.chance(0.6) {
                    format!("{correlation} AND {filter}")
                } else {
                    filter
                };
                let op = self.pick(&["<", ">", "<=", ">="]).to_string();
                format!(
                    "{} {op} (SELECT {aggregate}({}) FROM {} {alias} WHERE {condition})",
                    outer_value.sql, inner_value.sql, inner.name
                )
            }
        }
    }

    // ------------------------------------------------------------------
    // Grouping.

    /// A grouping key: a column with few values, or an expression of one.
    fn group_key(&mut self, scope: &[Value]) -> Value {
        let few: Vec<&Value> = scope
            .iter()
            .filter(|v| match v.domain {
                Domain::Words(_) => true,
                Domain::Ints(lo, hi) => hi - lo <= 50,
                _ => false,
            })
            .collect();
        match self.rng.below(5) {
            0 => {
                if let Some(date) = self.column(Ty::Date, scope) {
                    return Value::new(
                        format!("extract(year FROM {})", date.sql),
                        Ty::Int,
                        Domain::Ints(1992, 1998),
                    );
                }
            }
            1 => {
                if let Some(text) = self.column(Ty::Str, scope) {
                    let len = self.between(1, 3);
                    return Value::new(
                        format!("substr({}, 1, {len})", text.sql),
                        Ty::Str,
                        text.domain,
                    );
                }
            }
            2 => {
                if let Some(value) = scope.iter().find(|v| v.ty == Ty::Dec).cloned() {
                    let bound = self.literal(Ty::Dec, value.domain);
                    return Value::new(
                        format!(
                            "CASE WHEN {} < {bound} THEN 'low' ELSE 'high' END",
                            value.sql
                        ),
                        Ty::Str,
                        Domain::Words(&["low", "high"]),
                    );
                }
            }
            _ => {}
        }
        if few.is_empty() {
            let ty = self.ty_in(scope, &[Ty::Int, Ty::Str]);
            let key = self.expr(ty, scope, 1);
            // `GROUP BY 46` would name the 46th output, not a constant.
            if key.sql.chars().all(|c| c.is_ascii_digit()) {
                return Value::new(format!("({} + 0)", key.sql), key.ty, key.domain);
            }
            return key;
        }
        (*self.pick(&few)).clone()
    }

    /// An aggregate over `scope`.
    fn aggregate(&mut self, scope: &[Value]) -> Value {
        let any = Domain::Any;
        match self.rng.below(8) {
            0 => Value::new("count(*)", Ty::Int, any),
            1 => {
                let ty = self.ty_in(scope, &[Ty::Int, Ty::Str, Ty::Dec, Ty::Date]);
                let a = self.expr(ty, scope, 1);
                let distinct = if self.rng.chance(0.5) {
                    "DISTINCT "
                } else {
                    ""
                };
                Value::new(format!("count({distinct}{})", a.sql), Ty::Int, any)
            }
            2 | 3 => {
                let ty = self.ty_in(scope, &[Ty::Int, Ty::Dec]);
                let a = self.expr(ty, scope, 1);
                let distinct = if self.rng.chance(0.2) {
                    "DISTINCT "
                } else {
                    ""
                };
                Value::new(format!("sum({distinct}{})", a.sql), ty, any)
            }
            4 => {
                let ty = self.ty_in(scope, &[Ty::Int, Ty::Dec]);
                let a = self.expr(ty, scope, 1);
                Value::new(format!("avg({})", a.sql), Ty::Float, any)
            }
            _ => {
                let ty = self.ty_in(scope, &[Ty::Int, Ty::Dec, Ty::Str, Ty::Date]);
                let a = self.expr(ty, scope, 1);
                let f = self.pick(&["min", "max"]).to_string();
                Value::new(format!("{f}({})", a.sql), ty, a.domain)
            }
        }
    }
}

fn default_domain(ty: Ty) -> Domain {
    match ty {
        Ty::Int => Domain::Ints(0, 100),
        Ty::Dec => Domain::Cents(0, 10_000),
        Ty::Date => Domain::Days,
        Ty::Str | Ty::Float => Domain::Any,
    }
}

fn cents(value: i64) -> String {
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", value.abs() / 100, value.abs() % 100)
}

fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The date `days` after 1992-01-01, as `YYYY-MM-DD`.
fn date(days: i64) -> String {
    let (mut year, mut day) = (1992, days);
    loop {
        let length = if year % 4 == 0 { 366 } else { 365 };
        if day < length {
            break;
        }
        day -= length;
        year += 1;
    }
    let february = if year % 4 == 0 { 29 } else { 28 };
    let months = [31, february, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let mut month = 0;
    while day >= months[month] {
        day -= months[month];
        month += 1;
    }
    format!("{year}-{:02}-{:02}", month + 1, day + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_1992() {
        assert_eq!(date(0), "1992-01-01");
        assert_eq!(date(59), "1992-02-29");
        assert_eq!(date(366), "1993-01-01");
        assert_eq!(date(2556), "1998-12-31");
    }
}
