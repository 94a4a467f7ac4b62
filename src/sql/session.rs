//! Scripts of SQL statements, run Flink-SQL style: `CREATE TABLE ... WITH
//! (...)`, `CREATE VIEW`, `SET 'key' = 'value'`, `INSERT INTO`, `SELECT`.
//!
//! Declarations and settings apply in order. Each `SELECT` becomes a job
//! of its own whose rows are handed back; all `INSERT`s of a script become
//! one job writing every target, as a Flink statement set does.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion_expr::LogicalPlan;
use datafusion_sql::parser::{DFParserBuilder, Statement as DFStatement};
use datafusion_sql::planner::SqlToRel;
use datafusion_sql::resolve::resolve_table_references;
use datafusion_sql::sqlparser::ast::{
    self, CreateTableOptions, Expr as SqlExpr, ObjectName, ObjectNamePart, Spanned, SqlOption,
    Statement, TableObject, Value,
};
use datafusion_sql::sqlparser::dialect::GenericDialect;
use datafusion_sql::sqlparser::tokenizer::Span;
use weir_engine::SinkFactory;
use weir_engine::dataframe::Dataflow;
use weir_engine::event_time::WatermarkStrategy;
use weir_engine::expr::column;
use weir_engine::graph::JobGraph;
use weir_engine::registry::{ConnectorOptions, ConnectorRegistry, check_option};
use weir_engine::sinks::{CollectSink, Collected};
use weir_engine::source::{METADATA_FROM, METADATA_VIRTUAL};
use weir_scheduler::JobConfig;
use weir_scheduler::parse_duration;

use super::SqlError;
use super::cast_names::distinct_cast_names;
use super::catalog::{Catalog, TableDef};
use super::depth::check_depth;
use super::event_time::{IDLE_TIMEOUT_OPTION, watermark_strategy};
use super::flink_syntax::{Lifted, lift};
use super::optimize::optimize;
use super::set_operations::refuse_all_set_operations;
use super::translate::Translator;

type Result<T> = std::result::Result<T, SqlError>;

/// A `SELECT` of a script, planned and optimized.
#[derive(Debug, Clone)]
pub struct Query {
    /// Where the statement is in the script.
    pub span: Span,
    /// The optimized logical plan.
    pub plan: LogicalPlan,
    /// The settings in force where the statement stands.
    pub config: JobConfig,
}

/// An `INSERT INTO` of a script, planned and optimized.
#[derive(Debug, Clone)]
pub struct Insert {
    /// Where the statement is in the script.
    pub span: Span,
    /// The table written.
    pub table: String,
    /// The optimized plan of the rows written.
    pub plan: LogicalPlan,
}

/// What a script asks to run, once its declarations and settings are
/// applied.
#[derive(Debug, Default)]
pub struct Script {
    /// The `SELECT`s, each its own job.
    pub queries: Vec<Query>,
    /// The `INSERT`s, together one job.
    pub inserts: Vec<Insert>,
}

/// A job built from a query: its graph and where its rows arrive.
pub struct QueryJob {
    /// The graph to run.
    pub graph: JobGraph,
    /// The rows, once the job has run.
    pub output: Collected,
    /// The columns of the rows.
    pub schema: SchemaRef,
}

/// Declared tables and views, and the settings, of a sequence of scripts.
pub struct Session {
    catalog: Catalog,
    config: JobConfig,
    /// What the script being executed had lifted out before parsing.
    lifted: Lifted,
}

impl Session {
    /// A session with no tables, `config` as its settings, and tables
    /// opened with `registry`'s connectors.
    pub fn new(registry: ConnectorRegistry, config: JobConfig) -> Self {
        Self {
            catalog: Catalog::new(registry),
            config,
            lifted: Lifted::default(),
        }
    }

    /// The settings as the statements so far left them.
    pub fn config(&self) -> &JobConfig {
        &self.config
    }

    /// Declares table `name` read with `connector` and `options`, as
    /// `CREATE TABLE name WITH ('connector' = ..., ...)` does.
    ///
    /// # Errors
    /// An unknown connector or option, or a name already taken.
    pub fn register_table(
        &mut self,
        name: &str,
        connector: &str,
        options: ConnectorOptions,
    ) -> Result<()> {
        check_connector(
            self.catalog.registry(),
            connector,
            options.keys().map(|k| (k, Span::empty())),
        )?;
        self.catalog
            .create_table(
                name,
                TableDef {
                    connector: connector.to_string(),
                    options,
                    columns: None,
                    watermarks: None,
                    option_spans: Vec::new(),
                },
                false,
            )
            .map_err(SqlError::new)
    }

    /// Applies the declarations and settings of `text` and plans its
    /// queries and inserts.
    ///
    /// # Errors
    /// The first statement that does not parse, plan or apply, with its
    /// place in `text`.
    pub async fn execute(&mut self, text: &str) -> Result<Script> {
        check_depth(text)?;
        self.lifted = lift(text)?;
        let statements = DFParserBuilder::new(self.lifted.text.as_str())
            .with_dialect(&GenericDialect {})
            .build()
            .and_then(|mut p| p.parse_statements())
            .map_err(|e| SqlError::parser(e, text))?;
        let mut script = Script::default();
        // Where the previous statement ended: statements the parser gives
        // no place (SET) are placed after it.
        let mut cursor = ast_location(1, 1);
        for statement in statements {
            let span = match statement_span(&statement) {
                s if s == Span::empty() => Span::new(cursor, cursor),
                s => s,
            };
            cursor = span.end;
            self.statement(statement, span, text, &mut script)
                .await
                .map_err(|e| e.at(span))?;
        }
        Ok(script)
    }

    async fn statement(
        &mut self,
        statement: DFStatement,
        span: Span,
        text: &str,
        script: &mut Script,
    ) -> Result<()> {
        let DFStatement::Statement(sql) = statement else {
            return Err(not_a_script_statement());
        };
        match *sql {
            Statement::Query(query) => {
                let plan = self.plan(Statement::Query(query)).await?;
                script.queries.push(Query {
                    span,
                    plan: self.optimized(plan)?,
                    config: self.config.clone(),
                });
            }
            Statement::Insert(insert) => {
                let TableObject::TableName(name) = &insert.table else {
                    return Err(SqlError::new(
                        "INSERT INTO a table function is not supported",
                    ));
                };
                let table = table_name(name)?;
                let Some(def) = self.catalog.table(&table) else {
                    return Err(SqlError::new(self.catalog.not_found(&table)).at(name.span()));
                };
                let declared = def.columns.clone();
                if !insert.columns.is_empty() {
                    return Err(SqlError::new(
                        "a column list in INSERT is not supported: select every column of the table, in its order",
                    ));
                }
                let Some(source) = insert.source else {
                    return Err(SqlError::new(
                        "INSERT needs a query (INSERT INTO t SELECT ...)",
                    ));
                };
                let plan = self.plan(Statement::Query(source)).await?;
                let plan = self.optimized(plan)?;
                check_insert(&table, declared.as_ref(), &plan)?;
                script.inserts.push(Insert { span, table, plan });
            }
            Statement::CreateTable(create) => self.create_table(create, span, text)?,
            Statement::CreateView(view) => {
                let name = table_name(&view.name)?;
                if !view.columns.is_empty() {
                    return Err(SqlError::new(
                        "column names after a view's name are not supported: alias the columns in its query",
                    ));
                }
                let plan = self.plan(Statement::Query(view.query)).await?;
                self.catalog
                    .create_view(&name, plan, view.or_replace)
                    .map_err(SqlError::new)?;
            }
            Statement::Set(set) => self.set(set, span, text)?,
            _ => return Err(not_a_script_statement()),
        }
        Ok(())
    }

    /// Plans `statement` after opening the tables it reads.
    async fn plan(&mut self, mut statement: Statement) -> Result<LogicalPlan> {
        refuse_all_set_operations(&statement)?;
        distinct_cast_names(&mut statement);
        let statement = DFStatement::Statement(Box::new(statement));
        let (relations, _) = resolve_table_references(&statement, true)?;
        let windowed = self.lifted.window_inputs.clone();
        for relation in relations
            .iter()
            .map(|r| r.table())
            .chain(windowed.iter().map(String::as_str))
        {
            self.catalog.open(relation).await?;
        }
        let context = self.catalog.context();
        SqlToRel::new_with_options(&context, self.catalog.parser_options())
            .statement_to_plan(statement)
            .map_err(SqlError::from)
    }

    fn optimized(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        Ok(optimize(plan, self.catalog.options())?)
    }

    fn create_table(&mut self, create: ast::CreateTable, span: Span, text: &str) -> Result<()> {
        // Option keys and values are quoted strings, which carry no place
        // of their own: find them in the statement's text.
        let place = |literal: &str| quoted_span(text, span, literal);
        let name = table_name(&create.name)?;
        if create.query.is_some() {
            return Err(SqlError::new(
                "CREATE TABLE ... AS SELECT is not supported: declare the table, then INSERT INTO it",
            ));
        }
        let pairs = match create.table_options {
            CreateTableOptions::With(options) => options,
            CreateTableOptions::None => Vec::new(),
            _ => {
                return Err(SqlError::new(
                    "table options go in WITH ('connector' = '...', ...)",
                ));
            }
        };
        let mut connector = None;
        let mut idle_timeout = None;
        let mut options = ConnectorOptions::new();
        let mut spans = Vec::new();
        let mut value_spans = Vec::new();
        for option in &pairs {
            let SqlOption::KeyValue { key, value } = option else {
                return Err(SqlError::new("expected 'key' = 'value' in WITH (...)")
                    .at(Spanned::span(option)));
            };
            let value = option_value(value)?;
            if key.value == "connector" {
                let at = place(&value);
                connector = Some((value, at));
            } else if key.value == IDLE_TIMEOUT_OPTION {
                let timeout = parse_duration(&value).ok_or_else(|| {
                    SqlError::new(format!(
                        "'{IDLE_TIMEOUT_OPTION}' = '{value}': expected a duration such as '10 s'"
                    ))
                    .at(place(&value))
                })?;
                idle_timeout = Some((timeout, place(&key.value)));
            } else {
                spans.push((key.value.clone(), place(&key.value)));
                value_spans.push((key.value.clone(), place(&value)));
                options.insert(key.value.clone(), value);
            }
        }
        let Some((connector, connector_span)) = connector else {
            return Err(SqlError::new(format!(
                "table '{name}' has no connector: add WITH ('connector' = '...') (connectors: {})",
                self.catalog.registry().connector_names().join(", ")
            )));
        };
        check_connector(
            self.catalog.registry(),
            &connector,
            spans.iter().map(|(k, s)| (k, *s)),
        )
        .map_err(|e| e.at(connector_span))?;
        let columns = if create.columns.is_empty() {
            None
        } else {
            let context = self.catalog.context();
            let schema = SqlToRel::new_with_options(&context, self.catalog.parser_options())
                .build_schema(create.columns)?;
            Some(Arc::new(self.with_metadata_columns(span, schema)))
        };
        let watermarks = self.watermarks_of(span, columns.as_ref(), idle_timeout)?;
        if create.if_not_exists && self.catalog.table(&name).is_some() {
            return Ok(());
        }
        self.catalog
            .create_table(
                &name,
                TableDef {
                    connector,
                    options,
                    columns,
                    watermarks,
                    option_spans: value_spans,
                },
                create.or_replace,
            )
            .map_err(SqlError::new)
    }

    /// `schema` with the columns the statement at `span` declares
    /// `METADATA` marked as such ([`METADATA_FROM`]; [`METADATA_VIRTUAL`]
    /// for those only read).
    fn with_metadata_columns(&self, span: Span, schema: Schema) -> Schema {
        let inside = |s: Span| span.start <= s.start && s.end <= span.end;
        let clauses: Vec<_> = self
            .lifted
            .metadata
            .iter()
            .filter(|c| inside(c.span))
            .collect();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|field| {
                let Some(clause) = clauses.iter().find(|c| &c.column == field.name()) else {
                    return field.as_ref().clone();
                };
                let mut metadata = field.metadata().clone();
                metadata.insert(METADATA_FROM.to_string(), clause.key.clone());
                if clause.is_virtual {
                    metadata.insert(METADATA_VIRTUAL.to_string(), "true".to_string());
                }
                field.as_ref().clone().with_metadata(metadata)
            })
            .collect();
        Schema::new_with_metadata(fields, schema.metadata().clone())
    }

    /// The watermarks of the table created by the statement at `span`:
    /// its `WATERMARK FOR` clause, its columns declared and its idle
    /// timeout option.
    fn watermarks_of(
        &self,
        span: Span,
        columns: Option<&SchemaRef>,
        idle_timeout: Option<(std::time::Duration, Span)>,
    ) -> Result<Option<WatermarkStrategy>> {
        let inside = |s: Span| span.start <= s.start && s.end <= span.end;
        let mut clauses = self.lifted.watermarks.iter().filter(|c| inside(c.span));
        let Some(clause) = clauses.next() else {
            return match idle_timeout {
                Some((_, at)) => Err(SqlError::new(format!(
                    "'{IDLE_TIMEOUT_OPTION}' needs event time: declare WATERMARK FOR column AS ..."
                ))
                .at(at)),
                None => Ok(None),
            };
        };
        if let Some(second) = clauses.next() {
            return Err(SqlError::new("a table has at most one WATERMARK").at(second.span));
        }
        let context = self.catalog.context();
        let strategy = watermark_strategy(clause, idle_timeout.map(|(t, _)| t), &context)?;
        if let Some(columns) = columns {
            strategy
                .column_index(columns)
                .map_err(|e| SqlError::from(e).at(clause.span))?;
        }
        Ok(Some(strategy))
    }

    fn set(&mut self, set: ast::Set, span: Span, text: &str) -> Result<()> {
        let ast::Set::SingleAssignment {
            variable, values, ..
        } = set
        else {
            return Err(SqlError::new("expected SET 'key' = 'value'"));
        };
        let key = variable.to_string();
        let key = key.trim_matches(|c| c == '\'' || c == '"' || c == '`');
        let [value] = values.as_slice() else {
            return Err(SqlError::new(format!("SET '{key}' takes one value")));
        };
        let value = option_value(value)?;
        self.config
            .set(key, &value)
            .map_err(|e| SqlError::from(e).at(quoted_span(text, span, key)))
    }

    /// The job that runs `query` and collects its rows.
    ///
    /// # Errors
    /// A plan node or expression weir cannot run.
    pub fn query_job(&self, name: &str, query: &Query) -> Result<QueryJob> {
        let (sink, output) = CollectSink::new();
        let (graph, schema) = self.query_job_into(name, query, |_| Arc::new(sink))?;
        Ok(QueryJob {
            graph,
            output,
            schema,
        })
    }

    /// The job that runs `query` into the sink `sink` makes for the
    /// columns of its rows, and those columns.
    ///
    /// # Errors
    /// A plan node or expression weir cannot run.
    pub fn query_job_into(
        &self,
        name: &str,
        query: &Query,
        sink: impl FnOnce(&SchemaRef) -> Arc<dyn SinkFactory>,
    ) -> Result<(JobGraph, SchemaRef)> {
        let config = &query.config;
        let flow = Dataflow::new(name).with_parallelism(config.parallelism);
        let at = |e: SqlError| e.at(query.span);
        let df = Translator::new(&flow, streaming(config))
            .output(&query.plan)
            .map_err(at)?;
        let schema = Arc::clone(df.schema());
        df.write(sink(&schema));
        Ok((build(&flow, config).map_err(at)?, schema))
    }

    /// The one job that runs every insert of `script`, or `None` when it
    /// has none.
    ///
    /// # Errors
    /// A target whose sink cannot be created, or a plan weir cannot run.
    pub async fn insert_job(&self, script: &Script) -> Result<Option<JobGraph>> {
        if script.inserts.is_empty() {
            return Ok(None);
        }
        let targets: Vec<&str> = script.inserts.iter().map(|i| i.table.as_str()).collect();
        let flow = Dataflow::new(format!("insert into {}", targets.join(", ")))
            .with_parallelism(self.config.parallelism);
        for insert in &script.inserts {
            let at = |e: SqlError| e.at(insert.span);
            let def = self
                .catalog
                .table(&insert.table)
                .ok_or_else(|| SqlError::new(format!("table '{}' not found", insert.table)))
                .map_err(at)?;
            let df = Translator::new(&flow, streaming(&self.config))
                .output(&insert.plan)
                .map_err(at)?;
            let df = match def.columns.as_ref().map(written_columns) {
                Some(declared) => df
                    .select(
                        declared
                            .fields()
                            .iter()
                            .zip(df.schema().fields())
                            .map(|(to, from)| {
                                let e = column(from.name());
                                if to.data_type() == from.data_type() {
                                    e.alias(to.name())
                                } else {
                                    datafusion_expr::cast(e, to.data_type().clone())
                                        .alias(to.name())
                                }
                            })
                            .collect(),
                    )
                    .map_err(|e| at(e.into()))?,
                None => df,
            };
            let sink = self
                .catalog
                .registry()
                .sink(&def.connector, &def.options, sink_schema(df.schema(), def))
                .await
                .map_err(|e| def.error(&insert.table, e))
                .map_err(at)?;
            df.write(sink);
        }
        build(&flow, &self.config).map(Some)
    }
}

/// Whether the settings ask for streaming mode whatever the sources are.
fn streaming(config: &JobConfig) -> bool {
    config.runtime_mode == Some(weir_engine::graph::RuntimeMode::Streaming)
}

fn build(flow: &Dataflow, config: &JobConfig) -> Result<JobGraph> {
    config.build(flow.builder()).map_err(SqlError::from)
}

fn not_a_script_statement() -> SqlError {
    SqlError::new(
        "statement not supported in a weir script (supported: CREATE TABLE, CREATE VIEW, SET, INSERT INTO, SELECT)",
    )
}

/// Where `'literal'` first appears in `text` inside `within`, or `within`
/// when it cannot be found.
fn quoted_span(text: &str, within: Span, literal: &str) -> Span {
    let needle = format!("'{literal}'");
    let start = offset_of(text, within.start);
    let end = if within.end == within.start {
        text.len()
    } else {
        offset_of(text, within.end)
    };
    let Some(found) = text[start..end].find(&needle).map(|i| start + i) else {
        return within;
    };
    let before = &text[..found];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count() as u64
        + 1;
    let width = needle.chars().count() as u64;
    Span::new(
        ast_location(line, column),
        ast_location(line, column + width),
    )
}

/// The byte offset of a 1-based line and column (in characters) of `text`.
fn offset_of(text: &str, at: datafusion_sql::sqlparser::tokenizer::Location) -> usize {
    let (mut line, mut column) = (1, 1);
    for (offset, c) in text.char_indices() {
        if (line, column) >= (at.line, at.column) {
            return offset;
        }
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    text.len()
}

fn ast_location(line: u64, column: u64) -> datafusion_sql::sqlparser::tokenizer::Location {
    datafusion_sql::sqlparser::tokenizer::Location { line, column }
}

fn statement_span(statement: &DFStatement) -> Span {
    match statement {
        DFStatement::Statement(s) => Spanned::span(s.as_ref()),
        _ => Span::empty(),
    }
}

/// The name of a table, view or sink: one identifier, lower-cased unless
/// quoted.
fn table_name(name: &ObjectName) -> Result<String> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(ident)] => Ok(match ident.quote_style {
            Some(_) => ident.value.clone(),
            None => ident.value.to_lowercase(),
        }),
        _ => Err(SqlError::new(format!(
            "'{name}': weir has no schemas or catalogs, name tables with one identifier"
        ))
        .at(name.span())),
    }
}

/// An option's value: a string, number or boolean literal, as text.
fn option_value(value: &SqlExpr) -> Result<String> {
    let bad = || {
        SqlError::new(format!(
            "option value {value} must be a literal such as 'text', 42 or true"
        ))
        .at(Spanned::span(value))
    };
    match value {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Ok(s.clone()),
            Value::Number(n, _) => Ok(n.to_string()),
            Value::Boolean(b) => Ok(b.to_string()),
            _ => Err(bad()),
        },
        SqlExpr::Identifier(ident) => Ok(ident.value.clone()),
        _ => Err(bad()),
    }
}

/// An unknown connector, or an option it does not take, pointing at the
/// option.
fn check_connector<'k>(
    registry: &ConnectorRegistry,
    connector: &str,
    options: impl Iterator<Item = (&'k String, Span)>,
) -> Result<()> {
    let valid = registry.option_names(connector)?;
    for (key, span) in options {
        check_option(connector, &valid, key).map_err(|e| SqlError::from(e).at(span))?;
    }
    Ok(())
}

/// The schema a sink of table `def` is given for rows of `rows`: theirs,
/// with the declared columns' metadata (which marks metadata columns).
fn sink_schema(rows: &SchemaRef, def: &TableDef) -> SchemaRef {
    let Some(declared) = def.columns.as_ref().map(written_columns) else {
        return Arc::clone(rows);
    };
    let fields: Vec<Field> = rows
        .fields()
        .iter()
        .zip(declared.fields())
        .map(|(row, declared)| {
            row.as_ref()
                .clone()
                .with_metadata(declared.metadata().clone())
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, rows.metadata().clone()))
}

/// The columns an insert writes: the declared ones but the metadata
/// columns that are only read (`VIRTUAL`).
fn written_columns(declared: &SchemaRef) -> SchemaRef {
    Arc::new(Schema::new(
        declared
            .fields()
            .iter()
            .filter(|f| !f.metadata().contains_key(METADATA_VIRTUAL))
            .cloned()
            .collect::<Vec<_>>(),
    ))
}

/// The rows of `plan` must fit the table's written columns: as many, of
/// types that cast.
fn check_insert(table: &str, declared: Option<&SchemaRef>, plan: &LogicalPlan) -> Result<()> {
    let Some(declared) = declared else {
        return Ok(());
    };
    let declared = &written_columns(declared);
    let produced: Schema = plan.schema().as_arrow().clone();
    if produced.fields().len() != declared.fields().len() {
        return Err(SqlError::new(format!(
            "INSERT INTO {table}: the query gives {} columns ({}), the table has {} ({})",
            produced.fields().len(),
            weir_engine::expr::column_list(&produced),
            declared.fields().len(),
            weir_engine::expr::column_list(declared)
        )));
    }
    for (to, from) in declared.fields().iter().zip(produced.fields()) {
        if !arrow::compute::can_cast_types(from.data_type(), to.data_type()) {
            return Err(SqlError::new(format!(
                "INSERT INTO {table}: column '{}' is {}, which cannot be written as {} ({})",
                from.name(),
                from.data_type(),
                to.name(),
                to.data_type()
            )));
        }
    }
    Ok(())
}
