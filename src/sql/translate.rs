//! Optimized logical plans into dataflows: each plan node becomes the
//! [`DataFrame`] step that computes it, and the dataframe API inserts the
//! exchanges (hash, broadcast, gather) that step needs.
//!
//! Logical plans name columns by relation and name (`l1.l_orderkey`);
//! dataframes by name alone. Every translated node therefore carries, for
//! each field of its logical schema, the name of the physical column that
//! holds it, and expressions are rewritten to those names. A projection
//! that keeps a column keeps its name (so the dataframe still knows how its
//! rows are partitioned); a computed column gets a fresh name; where the
//! two sides of a join hold columns of the same name (a self-join), the
//! right side's are renamed.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion_common::{DFSchema, NullEquality};
use datafusion_expr::logical_plan::{self as lp, FetchType, SkipType};
use datafusion_expr::utils::conjunction;
use datafusion_expr::{Expr, LogicalPlan, SortExpr, lit};
use weir_engine::dataframe::{DataFrame, Dataflow};
use weir_engine::expr::aggregate::count;
use weir_engine::expr::{Compiled, column};
use weir_engine::operators::JoinType;
use weir_engine::sources::MemorySource;

use super::SqlError;
use super::catalog::source_table;

mod grouping_sets;
mod intervals;
mod windows;

use windows::is_windowed;

/// A translated plan node: its dataframe, and the column of the dataframe
/// that holds each field of the node's logical schema, in order.
pub struct Planned {
    /// The rows.
    pub df: DataFrame,
    /// Physical column names, one per logical field.
    pub columns: Vec<String>,
}

/// Translates the plans of one job into one [`Dataflow`].
pub struct Translator<'a> {
    flow: &'a Dataflow,
    used: HashSet<String>,
    /// Whether the job runs in streaming mode even over bounded input
    /// (unbounded input always runs so).
    streaming: bool,
}

type Result<T> = std::result::Result<T, SqlError>;

fn unsupported(what: impl std::fmt::Display) -> SqlError {
    SqlError::new(format!("{what} is not supported yet"))
}

impl<'a> Translator<'a> {
    /// A translator adding to `flow`, for a job in streaming mode when
    /// `streaming` (or when its input is unbounded).
    pub fn new(flow: &'a Dataflow, streaming: bool) -> Self {
        Self {
            flow,
            used: HashSet::new(),
            streaming,
        }
    }

    /// The rows of `plan` with exactly its columns, named as its schema
    /// names them (unqualified).
    ///
    /// # Errors
    /// A plan node or expression weir cannot run, or a typing error.
    pub fn output(&mut self, plan: &LogicalPlan) -> Result<DataFrame> {
        let planned = self.plan(plan)?;
        let exprs: Vec<Expr> = planned
            .columns
            .iter()
            .zip(plan.schema().fields())
            .map(|(physical, field)| match physical == field.name() {
                true => column(physical),
                false => column(physical).alias(field.name()),
            })
            .collect();
        Ok(planned.df.select(exprs)?)
    }

    /// Translates `plan`.
    ///
    /// # Errors
    /// As [`output`](Self::output).
    pub fn plan(&mut self, plan: &LogicalPlan) -> Result<Planned> {
        match plan {
            LogicalPlan::TableScan(scan) => self.scan(scan),
            LogicalPlan::Projection(p) => self.projection(p),
            LogicalPlan::Filter(f) => {
                let input = self.plan(&f.input)?;
                let (input, predicate, scalars) =
                    self.scalar_subqueries(input, vec![f.predicate.clone()])?;
                let predicate = physical(
                    &predicate[0],
                    &[
                        (f.input.schema(), &input.columns),
                        (&scalars.schema, &scalars.columns),
                    ],
                )?;
                Ok(Planned {
                    df: input.df.filter(predicate)?,
                    columns: input.columns,
                })
            }
            LogicalPlan::Aggregate(a) => self.aggregate(a),
            LogicalPlan::Sort(s) => {
                let input = self.plan(&s.input)?;
                let keys = sort_keys(&s.expr, s.input.schema(), &input.columns)?;
                let df = match s.fetch {
                    Some(fetch) => input.df.top_n(keys, 0, fetch),
                    None => input.df.sort(keys),
                }?;
                Ok(Planned {
                    df,
                    columns: input.columns,
                })
            }
            LogicalPlan::Limit(l) => self.limit(l),
            LogicalPlan::Join(j) => self.join(j),
            LogicalPlan::Union(u) => {
                let mut inputs = u.inputs.iter();
                let first = inputs.next().ok_or_else(|| unsupported("an empty UNION"))?;
                let first = self.exact(first)?;
                let mut df = first.df;
                for input in inputs {
                    let other = self.exact(input)?;
                    df = df.union(&other.df)?;
                }
                Ok(Planned {
                    df,
                    columns: first.columns,
                })
            }
            LogicalPlan::Distinct(lp::Distinct::All(input)) => {
                let input = self.exact(input)?;
                Ok(Planned {
                    df: input.df.distinct()?,
                    columns: input.columns,
                })
            }
            LogicalPlan::SubqueryAlias(a) => self.plan(&a.input),
            LogicalPlan::Repartition(r) => self.plan(&r.input),
            LogicalPlan::Values(v) => self.values(v),
            LogicalPlan::EmptyRelation(e) => self.empty(e),
            LogicalPlan::Window(_) => Err(unsupported("a window function (OVER ...)")),
            LogicalPlan::Extension(_) => Err(unsupported(
                "using the rows of a window table function other than grouped by \
                 window_start and window_end",
            )),
            LogicalPlan::Distinct(lp::Distinct::On(_)) => Err(unsupported("DISTINCT ON")),
            LogicalPlan::Unnest(_) => Err(unsupported("UNNEST")),
            LogicalPlan::RecursiveQuery(_) => Err(unsupported("a recursive query")),
            other => Err(unsupported(format!(
                "'{}' inside a query",
                other.display().to_string().trim()
            ))),
        }
    }

    /// A name no column of this job has had yet, `base` if possible.
    fn fresh(&mut self, base: &str) -> String {
        if self.used.insert(base.to_string()) {
            return base.to_string();
        }
        (2..)
            .map(|n| format!("{base}_{n}"))
            .find(|name| self.used.insert(name.clone()))
            .expect("an unbounded range has a free name")
    }

    /// The node's rows with exactly its logical columns, in order (no
    /// columns riding along from below).
    fn exact(&mut self, plan: &LogicalPlan) -> Result<Planned> {
        let planned = self.plan(plan)?;
        let df = planned
            .df
            .select(planned.columns.iter().map(|c| column(c)).collect())?;
        Ok(Planned {
            df,
            columns: planned.columns,
        })
    }

    fn scan(&mut self, scan: &lp::TableScan) -> Result<Planned> {
        let table = source_table(&scan.source).ok_or_else(|| {
            SqlError::new(format!("table '{}' is not a weir table", scan.table_name))
        })?;
        let schema = &table.schema;
        let indices: Vec<usize> = match &scan.projection {
            // Reading no column at all (COUNT(*)) still needs the rows:
            // read the first.
            Some(p) if p.is_empty() => vec![0],
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let names: Vec<&str> = indices
            .iter()
            .map(|&i| schema.field(i).name().as_str())
            .collect();
        for name in &names {
            self.used.insert(name.to_string());
        }
        let filter = conjunction(scan.filters.iter().map(unqualified));
        let source = &table.source;
        let source_schema = source.schema();
        let differs = |name: &str| match (
            schema.field_with_name(name),
            source_schema.field_with_name(name),
        ) {
            (Ok(declared), Ok(found)) => declared.data_type() != found.data_type(),
            _ => false,
        };
        let watermarks = table.watermarks.clone();
        let df = if !names.iter().any(|n| differs(n)) {
            self.flow
                .scan_with_watermarks(Arc::clone(source), Some(&names), filter, watermarks)?
        } else {
            // Declared types differ from the input's: cast first, then
            // filter on the declared types.
            let mut read: Vec<&str> = names.clone();
            for c in filter.iter().flat_map(Expr::column_refs) {
                if !read.contains(&c.name.as_str()) {
                    read.push(c.name.as_str());
                }
            }
            let raw = self.flow.scan_with_watermarks(
                Arc::clone(source),
                Some(&read),
                None,
                watermarks,
            )?;
            let cast_exprs =
                read.iter()
                    .map(|name| {
                        let field = schema.field_with_name(name).ok().filter(|_| differs(name));
                        match field {
                            Some(f) => datafusion_expr::cast(column(name), f.data_type().clone())
                                .alias(*name),
                            None => column(name),
                        }
                    })
                    .collect();
            let cast = raw.select(cast_exprs)?;
            match filter {
                Some(f) => cast.filter(f)?,
                None => cast,
            }
        };
        let planned = Planned {
            df,
            columns: match &scan.projection {
                Some(p) if p.is_empty() => Vec::new(),
                _ => names.iter().map(|n| n.to_string()).collect(),
            },
        };
        Ok(match scan.fetch {
            Some(fetch) => Planned {
                df: planned.df.limit(0, Some(fetch)),
                columns: planned.columns,
            },
            None => planned,
        })
    }

    fn projection(&mut self, p: &lp::Projection) -> Result<Planned> {
        let input = self.plan(&p.input)?;
        let (input, logical, scalars) =
            self.scalar_subqueries(input, p.expr.iter().map(|e| unaliased(e).clone()).collect())?;
        let inputs = [
            (p.input.schema().as_ref(), input.columns.as_slice()),
            (&scalars.schema, scalars.columns.as_slice()),
        ];
        let mut kept = HashSet::new();
        let mut exprs = Vec::with_capacity(p.expr.len());
        let mut columns = Vec::with_capacity(p.expr.len());
        for (e, field) in logical.iter().zip(p.schema.fields()) {
            let e = physical(e, &inputs)?;
            let name = match &e {
                Expr::Column(c) if kept.insert(c.name.clone()) => c.name.clone(),
                _ => self.fresh(field.name()),
            };
            exprs.push(match &e {
                Expr::Column(c) if c.name == name => e,
                _ => e.alias(&name),
            });
            columns.push(name);
        }
        let df = input.df.select(exprs)?;
        Ok(Planned { df, columns })
    }

    /// `exprs` with each uncorrelated scalar subquery in them replaced by a
    /// column of `input`, onto which the subquery's one row (or a null,
    /// when it has none) is joined; and the schema of those columns.
    fn scalar_subqueries(
        &mut self,
        mut input: Planned,
        exprs: Vec<Expr>,
    ) -> Result<(Planned, Vec<Expr>, Scalars)> {
        let mut found = Vec::new();
        let mut rewritten = Vec::with_capacity(exprs.len());
        for e in exprs {
            let e = e.transform_up(|e| match e {
                Expr::ScalarSubquery(subquery) => {
                    let name = self.fresh("scalar_subquery");
                    found.push((subquery, name.clone()));
                    Ok(Transformed::yes(column(&name)))
                }
                other => Ok(Transformed::no(other)),
            })?;
            rewritten.push(e.data);
        }
        let mut fields = Vec::with_capacity(found.len());
        for (subquery, name) in &found {
            if !subquery.outer_ref_columns.is_empty() {
                return Err(unsupported(
                    "a correlated subquery that cannot be turned into a join",
                ));
            }
            let value = self.exact(&subquery.subquery)?;
            let [value_column] = value.columns.as_slice() else {
                return Err(SqlError::new("a scalar subquery must return one column"));
            };
            let mut one_row = value.df.select(vec![column(value_column).alias(name)])?;
            // What the plan cannot prove is checked as the rows come.
            if !at_most_one_row(&subquery.subquery) {
                one_row = one_row.at_most_one_row(&describe_subquery(&subquery.subquery))?;
            }
            let one_row = one_row.with_estimated_bytes(Some(0));
            fields.push(Field::new(
                name,
                one_row.schema().field(0).data_type().clone(),
                true,
            ));
            input.df = input
                .df
                .join(&one_row, JoinType::Left, &[], Some(lit(true)))?;
        }
        let schema = DFSchema::try_from(Schema::new(fields))?;
        let columns = found.into_iter().map(|(_, name)| name).collect();
        Ok((input, rewritten, Scalars { schema, columns }))
    }

    fn aggregate(&mut self, a: &lp::Aggregate) -> Result<Planned> {
        if let Some(windowed) = self.windowed(&a.input)? {
            return self.window_aggregate(a, windowed);
        }
        if let [Expr::GroupingSet(set)] = a.group_expr.as_slice() {
            return self.grouping_sets(a, set);
        }
        let input = self.plan(&a.input)?;
        let inputs = [(a.input.schema().as_ref(), input.columns.as_slice())];
        let mut fields = a.schema.fields().iter();
        let mut kept = HashSet::new();
        let mut columns = Vec::new();
        let mut group_by = Vec::with_capacity(a.group_expr.len());
        for g in &a.group_expr {
            if matches!(g, Expr::GroupingSet(_)) {
                return Err(unsupported("a grouping set beside other GROUP BY keys"));
            }
            let field = fields.next().expect("one field per group key");
            let e = physical(unaliased(g), &inputs)?;
            let (e, name) = match e {
                Expr::Column(c) if kept.insert(c.name.clone()) => {
                    let name = c.name.clone();
                    (Expr::Column(c), name)
                }
                other => {
                    let name = self.fresh(field.name());
                    (other.alias(&name), name)
                }
            };
            group_by.push(e);
            columns.push(name);
        }
        let mut aggregates = Vec::with_capacity(a.aggr_expr.len());
        for e in &a.aggr_expr {
            let field = fields.next().expect("one field per aggregate");
            let name = self.fresh(field.name());
            aggregates.push(physical(unaliased(e), &inputs)?.alias(&name));
            columns.push(name);
        }
        let df = input.df.aggregate(group_by, aggregates)?;
        Ok(Planned { df, columns })
    }

    fn limit(&mut self, l: &lp::Limit) -> Result<Planned> {
        let skip = match l.get_skip_type()? {
            SkipType::Literal(n) => n,
            SkipType::UnsupportedExpr => return Err(unsupported("an OFFSET that is not a number")),
        };
        let fetch = match l.get_fetch_type()? {
            FetchType::Literal(n) => n,
            FetchType::UnsupportedExpr => return Err(unsupported("a LIMIT that is not a number")),
        };
        // A limit over an order is a top-n: each subtask keeps its best.
        if let (LogicalPlan::Sort(s), Some(fetch)) = (l.input.as_ref(), fetch) {
            let input = self.plan(&s.input)?;
            let keys = sort_keys(&s.expr, s.input.schema(), &input.columns)?;
            let df = input.df.top_n(keys, skip, fetch)?;
            return Ok(Planned {
                df,
                columns: input.columns,
            });
        }
        let input = self.plan(&l.input)?;
        Ok(Planned {
            df: input.df.limit(skip, fetch),
            columns: input.columns,
        })
    }

    fn join(&mut self, j: &lp::Join) -> Result<Planned> {
        if is_windowed(&j.left) && is_windowed(&j.right) {
            if j.null_equality == NullEquality::NullEqualsNull {
                return Err(unsupported("INTERSECT or EXCEPT of window table functions"));
            }
            return self.window_join(j);
        }
        let join_type = match j.join_type {
            datafusion_common::JoinType::Inner => JoinType::Inner,
            datafusion_common::JoinType::Left => JoinType::Left,
            datafusion_common::JoinType::Right => JoinType::Right,
            datafusion_common::JoinType::Full => JoinType::Full,
            datafusion_common::JoinType::LeftSemi => JoinType::LeftSemi,
            datafusion_common::JoinType::LeftAnti => JoinType::LeftAnti,
            datafusion_common::JoinType::RightSemi => JoinType::RightSemi,
            datafusion_common::JoinType::RightAnti => JoinType::RightAnti,
            other => return Err(unsupported(format!("a {other} join"))),
        };
        // INTERSECT and EXCEPT: rows match when their values are not
        // distinct, NULLs included.
        let nulls_equal = j.null_equality == NullEquality::NullEqualsNull && !j.on.is_empty();
        let mut left = self.plan(&j.left)?;
        let mut right = self.plan(&j.right)?;
        let left_keys =
            self.key_columns(&mut left, j.on.iter().map(|(l, _)| l), j.left.schema())?;
        let mut right_keys =
            self.key_columns(&mut right, j.on.iter().map(|(_, r)| r), j.right.schema())?;
        self.rename_clashes(&left.df, &mut right, &mut right_keys)?;
        let filter = j
            .filter
            .as_ref()
            .map(|f| {
                physical(
                    f,
                    &[
                        (j.left.schema().as_ref(), left.columns.as_slice()),
                        (j.right.schema().as_ref(), right.columns.as_slice()),
                    ],
                )
            })
            .transpose()?;
        let filter = match (&filter, j.on.is_empty()) {
            (None, true) => Some(lit(true)),
            _ => filter,
        };
        let on: Vec<(&str, &str)> = left_keys
            .iter()
            .zip(&right_keys)
            .map(|(l, r)| (l.as_str(), r.as_str()))
            .collect();
        if j.null_aware && join_type == JoinType::LeftAnti {
            let df = null_aware_anti_join(&left.df, &right.df, &on, filter)?;
            return Ok(Planned {
                df,
                columns: left.columns,
            });
        }
        // Unbounded inputs joined on times close to each other: an
        // interval join, which forgets rows the watermark has passed.
        let names = |df: &DataFrame| -> Vec<String> {
            df.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        };
        let interval = filter
            .as_ref()
            .filter(|_| self.streaming || !(left.df.is_bounded() && right.df.is_bounded()))
            .and_then(|f| intervals::interval_of(f, &names(&left.df), &names(&right.df)));
        if let Some(interval) = interval {
            if nulls_equal {
                return Err(unsupported("INTERSECT or EXCEPT of unbounded inputs"));
            }
            if !join_type.emits_pairs() {
                return Err(unsupported(format!("a {join_type} interval join")));
            }
            let df = left.df.interval_join(
                &right.df,
                join_type,
                (&interval.times.0, &interval.times.1),
                interval.bounds,
                &on,
                interval.rest,
            )?;
            let columns = left.columns.into_iter().chain(right.columns).collect();
            return Ok(Planned { df, columns });
        }
        let df = match nulls_equal {
            true => left
                .df
                .join_matching_nulls(&right.df, join_type, &on, filter)?,
            false => left.df.join(&right.df, join_type, &on, filter)?,
        };
        let columns = match join_type {
            JoinType::LeftSemi | JoinType::LeftAnti => left.columns,
            JoinType::RightSemi | JoinType::RightAnti => right.columns,
            _ => left.columns.into_iter().chain(right.columns).collect(),
        };
        Ok(Planned { df, columns })
    }

    /// Renames the columns of `right` that `left` has too (self-joins), in
    /// `right`'s columns and in `also` (its keys).
    fn rename_clashes(
        &mut self,
        left: &DataFrame,
        right: &mut Planned,
        also: &mut [String],
    ) -> Result<()> {
        let taken: HashSet<String> = left
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        if !right
            .df
            .schema()
            .fields()
            .iter()
            .any(|f| taken.contains(f.name()))
        {
            return Ok(());
        }
        let mut exprs = Vec::new();
        for f in right.df.schema().fields() {
            let name = f.name();
            if taken.contains(name) {
                let fresh = self.fresh(name);
                for c in right.columns.iter_mut().chain(also.iter_mut()) {
                    if c == name {
                        *c = fresh.clone();
                    }
                }
                exprs.push(column(name).alias(fresh));
            } else {
                exprs.push(column(name));
            }
        }
        right.df = right.df.select(exprs)?;
        Ok(())
    }

    /// The columns holding the join keys `keys` of one side, adding a
    /// column for each key that is an expression rather than a column.
    fn key_columns<'e>(
        &mut self,
        side: &mut Planned,
        keys: impl Iterator<Item = &'e Expr>,
        schema: &DFSchema,
    ) -> Result<Vec<String>> {
        let inputs = [(schema, side.columns.as_slice())];
        let mut names = Vec::new();
        let mut computed = Vec::new();
        for key in keys {
            match physical(key, &inputs)? {
                Expr::Column(c) => names.push(c.name),
                other => {
                    let name = self.fresh("join_key");
                    computed.push(other.alias(&name));
                    names.push(name);
                }
            }
        }
        if !computed.is_empty() {
            let mut exprs: Vec<Expr> = side
                .df
                .schema()
                .fields()
                .iter()
                .map(|f| column(f.name()))
                .collect();
            exprs.extend(computed);
            side.df = side.df.select(exprs)?;
        }
        Ok(names)
    }

    fn values(&mut self, v: &lp::Values) -> Result<Planned> {
        let (columns, schema) = self.renamed(&v.schema);
        let one_row = rows_without_columns(1)?;
        let arrays = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let cells = v
                    .values
                    .iter()
                    .map(|row| {
                        let cell = datafusion_expr::cast(row[i].clone(), field.data_type().clone());
                        Ok(Compiled::new(&cell, one_row.schema_ref())?.evaluate(&one_row)?)
                    })
                    .collect::<Result<Vec<ArrayRef>>>()?;
                let refs: Vec<&dyn Array> = cells.iter().map(AsRef::as_ref).collect();
                Ok(arrow::compute::concat(&refs)?)
            })
            .collect::<Result<Vec<_>>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&schema), arrays)?;
        self.memory(schema, batch, columns)
    }

    fn empty(&mut self, e: &lp::EmptyRelation) -> Result<Planned> {
        let (columns, schema) = self.renamed(&e.schema);
        let rows = usize::from(e.produce_one_row);
        let batch = if schema.fields().is_empty() {
            rows_without_columns(rows)?
        } else {
            // A row of an empty relation with columns is all nulls.
            let arrays = schema
                .fields()
                .iter()
                .map(|f| arrow::array::new_null_array(f.data_type(), rows))
                .collect();
            RecordBatch::try_new(Arc::clone(&schema), arrays)?
        };
        self.memory(schema, batch, columns)
    }

    /// Fresh physical names for the fields of `schema`, and the schema of
    /// rows with those names.
    fn renamed(&mut self, schema: &DFSchema) -> (Vec<String>, SchemaRef) {
        let columns: Vec<String> = schema
            .fields()
            .iter()
            .map(|f| self.fresh(f.name()))
            .collect();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, name)| f.as_ref().clone().with_name(name))
            .collect();
        (columns, Arc::new(Schema::new(fields)))
    }

    fn memory(
        &mut self,
        schema: SchemaRef,
        batch: RecordBatch,
        columns: Vec<String>,
    ) -> Result<Planned> {
        let source = MemorySource::try_new("values", schema, vec![batch])?;
        Ok(Planned {
            df: self.flow.read(Arc::new(source)),
            columns,
        })
    }
}

/// `rows` rows of no columns.
fn rows_without_columns(rows: usize) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new_with_options(
        Arc::new(Schema::empty()),
        vec![],
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )?)
}

/// The columns scalar subqueries were joined in as.
struct Scalars {
    schema: DFSchema,
    columns: Vec<String>,
}

/// A scalar subquery `plan`, for errors: the column it gives and the
/// tables it reads.
fn describe_subquery(plan: &LogicalPlan) -> String {
    let mut tables = Vec::new();
    let _ = plan.apply(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let table = scan.table_name.table().to_string();
            if !tables.contains(&table) {
                tables.push(table);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let column = plan
        .schema()
        .fields()
        .first()
        .map_or_else(String::new, |f| format!(" of {}", f.name()));
    match tables.as_slice() {
        [] => format!("the scalar subquery{column}"),
        _ => format!("the scalar subquery{column} over {}", tables.join(", ")),
    }
}

/// Whether `plan` is sure to give at most one row.
fn at_most_one_row(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Aggregate(a) => a.group_expr.is_empty(),
        LogicalPlan::Projection(p) => at_most_one_row(&p.input),
        LogicalPlan::Filter(f) => at_most_one_row(&f.input),
        LogicalPlan::SubqueryAlias(a) => at_most_one_row(&a.input),
        LogicalPlan::Sort(s) => s.fetch.is_some_and(|n| n <= 1) || at_most_one_row(&s.input),
        LogicalPlan::Limit(l) => {
            matches!(l.get_fetch_type(), Ok(FetchType::Literal(Some(n))) if n <= 1)
                || at_most_one_row(&l.input)
        }
        _ => false,
    }
}

/// `e` without the aliases around it.
fn unaliased(mut e: &Expr) -> &Expr {
    while let Expr::Alias(a) = e {
        e = &a.expr;
    }
    e
}

/// `e` with every column reference resolved against `inputs` (a logical
/// schema and the physical column of each of its fields) and renamed to
/// the physical column.
fn physical(e: &Expr, inputs: &[(&DFSchema, &[String])]) -> Result<Expr> {
    e.clone()
        .transform_up(|e| match e {
            Expr::Column(c) => {
                for (schema, columns) in inputs {
                    if let Ok(i) = schema.index_of_column(&c) {
                        return Ok(Transformed::yes(column(&columns[i])));
                    }
                }
                Err(datafusion_common::DataFusionError::Plan(format!(
                    "column {c} not found while translating the plan"
                )))
            }
            Expr::ScalarSubquery(_) | Expr::Exists(_) | Expr::InSubquery(_) => {
                Err(datafusion_common::DataFusionError::NotImplemented(format!(
                    "the subquery in '{e}' could not be turned into a join"
                )))
            }
            other => Ok(Transformed::no(other)),
        })
        .map(|t| t.data)
        .map_err(SqlError::planner)
}

/// A scan filter over the table's own column names.
fn unqualified(e: &Expr) -> Expr {
    e.clone()
        .transform_up(|e| {
            Ok(match e {
                Expr::Column(c) => Transformed::yes(column(&c.name)),
                other => Transformed::no(other),
            })
        })
        .map(|t| t.data)
        .unwrap_or_else(|_| e.clone())
}

fn sort_keys(keys: &[SortExpr], schema: &DFSchema, columns: &[String]) -> Result<Vec<SortExpr>> {
    keys.iter()
        .map(|k| {
            Ok(SortExpr {
                expr: physical(&k.expr, &[(schema, columns)])?,
                asc: k.asc,
                nulls_first: k.nulls_first,
            })
        })
        .collect()
}

/// `x NOT IN (SELECT y ...)` as SQL's three-valued logic has it (the null
/// aware anti join DataFusion plans for it): a left row stays when the
/// right rows it is compared with (those meeting the correlation: `on`
/// after its first pair, and `filter`) are none, or when its `x` is not
/// NULL, equals no `y`, and no `y` is NULL. `on[0]` is `(x, y)`.
///
/// Three anti joins of the ordinary kind: on every pair (no equal `y`),
/// against the right rows whose `y` is NULL, and, for a NULL `x`, against
/// any right row (for an uncorrelated subquery: whether there is one).
fn null_aware_anti_join(
    left: &DataFrame,
    right: &DataFrame,
    on: &[(&str, &str)],
    filter: Option<Expr>,
) -> Result<DataFrame> {
    let Some(&(x, y)) = on.first() else {
        return Err(unsupported(
            "a NOT IN subquery whose value is not an equality of columns",
        ));
    };
    let correlation = &on[1..];
    let unmatched = left.join(right, JoinType::LeftAnti, on, filter.clone())?;
    let null_ys = right.filter(column(y).is_null())?;
    let correlated = filter.clone().or(Some(lit(true)));
    let no_null_y = unmatched.join(&null_ys, JoinType::LeftAnti, correlation, correlated)?;
    if correlation.is_empty() && filter.is_none() {
        // Uncorrelated: a NULL x stays only when the subquery is empty.
        let rows = "__weir_not_in_rows";
        let counted = right.aggregate(vec![], vec![count(lit(1)).alias(rows)])?;
        let keep = column(x).is_not_null().or(column(rows).eq(lit(0i64)));
        let kept = no_null_y.join(&counted, JoinType::Inner, &[], Some(keep))?;
        let columns = left.schema().fields().iter().map(|f| column(f.name()));
        return Ok(kept.select(columns.collect())?);
    }
    let x_null = column(x).is_null();
    let for_null_x = match filter {
        Some(f) => f.and(x_null),
        None => x_null,
    };
    Ok(no_null_y.join(right, JoinType::LeftAnti, correlation, Some(for_null_x))?)
}
