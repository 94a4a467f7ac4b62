//! The tables and views a script declares, and what the SQL planner asks
//! of them: schemas, functions and options.
//!
//! A table is declared with its connector and options and opened lazily:
//! its source is built (listing files, reading footers) the first time a
//! query reads it, before that query is planned, so a table that is only
//! written to never has to exist beforehand.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{DataFusionError, TableReference, plan_err};
use datafusion_expr::planner::{ContextProvider, ExprPlanner};
use datafusion_expr::{
    AggregateUDF, Expr, Extension, HigherOrderUDF, LogicalPlan, LogicalPlanBuilder, ScalarUDF,
    TableProviderFilterPushDown, TableSource, WindowUDF,
};
use datafusion_sql::planner::ParserOptions;
use weir_engine::SourceFactory;
use weir_engine::event_time::WatermarkStrategy;
use weir_engine::registry::{ConnectorOptions, ConnectorRegistry};

use datafusion_sql::sqlparser::tokenizer::Span;

use super::SqlError;
use super::flink_syntax::WINDOW_FUNCTIONS;
use super::modulo::Modulo;
use super::window_tvf::{WindowTvf, window_of};

/// A table declared by `CREATE TABLE` or on the command line.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// The connector, `'connector' = '...'`.
    pub connector: String,
    /// The other options of the `WITH` clause.
    pub options: ConnectorOptions,
    /// The declared columns, if any.
    pub columns: Option<SchemaRef>,
    /// How its watermarks follow its event times (`WATERMARK FOR`), if
    /// they do.
    pub watermarks: Option<WatermarkStrategy>,
    /// Where each option's value stands in the script, so that an error
    /// about it points there.
    pub option_spans: Vec<(String, Span)>,
}

impl TableDef {
    /// `error` of table `name`'s connector, placed at the option it names
    /// (an invalid value is found when the table is opened, not declared).
    pub fn error(&self, name: &str, error: weir_engine::Error) -> SqlError {
        let span = match &error {
            weir_engine::Error::InvalidOption { option, .. } => self
                .option_spans
                .iter()
                .find(|(key, _)| key == option)
                .map(|(_, span)| *span),
            _ => None,
        };
        let placed = SqlError::new(format!("table '{name}': {error}"));
        match span {
            Some(span) => placed.at(span),
            None => placed,
        }
    }
}

/// A table opened for reading: its source and the schema queries see.
#[derive(Debug)]
pub struct SourceTable {
    /// The source that reads it.
    pub source: Arc<dyn SourceFactory>,
    /// The columns queries see: the declared ones, else the source's.
    pub schema: SchemaRef,
    /// Its watermarks, if it has event time.
    pub watermarks: Option<WatermarkStrategy>,
}

impl TableSource for SourceTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// Every filter is taken whole: the scan applies it after letting the
    /// source skip what it can ([`weir_engine::dataframe::Dataflow::scan`]).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion_common::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Exact; filters.len()])
    }
}

/// A view: a named query, inlined where it is read.
struct ViewTable {
    plan: LogicalPlan,
}

impl TableSource for ViewTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(self.plan.schema().inner())
    }

    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, LogicalPlan>> {
        Some(std::borrow::Cow::Borrowed(&self.plan))
    }
}

/// Tables, views, functions and planner options of one session.
pub struct Catalog {
    registry: ConnectorRegistry,
    tables: BTreeMap<String, TableDef>,
    opened: HashMap<String, Arc<SourceTable>>,
    views: BTreeMap<String, Arc<ViewTable>>,
    scalars: HashMap<String, Arc<ScalarUDF>>,
    aggregates: HashMap<String, Arc<AggregateUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
    options: ConfigOptions,
}

impl Catalog {
    /// An empty catalog whose tables are opened with `registry`'s
    /// connectors.
    pub fn new(registry: ConnectorRegistry) -> Self {
        let functions = datafusion_functions::all_default_functions()
            .into_iter()
            .chain([Arc::new(ScalarUDF::new_from_impl(Modulo::default()))]);
        let scalars = by_name(functions.collect(), |f| (f.name(), f.aliases()));
        let aggregates = by_name(
            datafusion_functions_aggregate::all_default_aggregate_functions(),
            |f| (f.name(), f.aliases()),
        );
        let planners: Vec<Arc<dyn ExprPlanner>> = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
        ];
        let mut options = ConfigOptions::default();
        options.sql_parser.parse_float_as_decimal = true;
        options.sql_parser.map_string_types_to_utf8view = false;
        options.sql_parser.collect_spans = true;
        options.optimizer.filter_null_join_keys = true;
        Self {
            registry,
            tables: BTreeMap::new(),
            opened: HashMap::new(),
            views: BTreeMap::new(),
            scalars,
            aggregates,
            planners,
            options,
        }
    }

    /// The connectors tables are opened with.
    pub fn registry(&self) -> &ConnectorRegistry {
        &self.registry
    }

    /// Declares table `name`; an existing table or view of that name is an
    /// error unless `replace`.
    ///
    /// # Errors
    /// The name is taken.
    pub fn create_table(
        &mut self,
        name: &str,
        table: TableDef,
        replace: bool,
    ) -> Result<(), String> {
        self.check_free(name, replace)?;
        self.views.remove(name);
        self.opened.remove(name);
        self.tables.insert(name.to_string(), table);
        Ok(())
    }

    /// Declares view `name` over `plan`.
    ///
    /// # Errors
    /// The name is taken.
    pub fn create_view(
        &mut self,
        name: &str,
        plan: LogicalPlan,
        replace: bool,
    ) -> Result<(), String> {
        self.check_free(name, replace)?;
        self.tables.remove(name);
        self.opened.remove(name);
        self.views
            .insert(name.to_string(), Arc::new(ViewTable { plan }));
        Ok(())
    }

    fn check_free(&self, name: &str, replace: bool) -> Result<(), String> {
        if replace {
            return Ok(());
        }
        if self.tables.contains_key(name) {
            return Err(format!("table '{name}' already exists"));
        }
        if self.views.contains_key(name) {
            return Err(format!("view '{name}' already exists"));
        }
        Ok(())
    }

    /// The declaration of table `name`.
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.get(name)
    }

    /// The names of the tables and views, for messages.
    pub fn names(&self) -> Vec<String> {
        self.tables
            .keys()
            .chain(self.views.keys())
            .cloned()
            .collect()
    }

    /// Opens table `name` for reading (once; later calls reuse it). Views
    /// and unknown names are left alone: the planner reports those.
    ///
    /// # Errors
    /// The connector's error (unknown connector or option, unreadable
    /// input), or declared columns the input does not have.
    pub async fn open(&mut self, name: &str) -> Result<(), SqlError> {
        if self.opened.contains_key(name) {
            return Ok(());
        }
        let Some(def) = self.tables.get(name) else {
            return Ok(());
        };
        let source = self
            .registry
            .source(&def.connector, &def.options, def.columns.clone())
            .await
            .map_err(|e| def.error(name, e))?;
        let schema = match &def.columns {
            Some(declared) => {
                check_declared(name, declared, &source.schema())?;
                Arc::clone(declared)
            }
            None => source.schema(),
        };
        if let Some(strategy) = &def.watermarks {
            strategy
                .column_index(&source.schema())
                .map_err(|e| SqlError::new(format!("table '{name}': {e}")))?;
        }
        let table = SourceTable {
            source,
            schema,
            watermarks: def.watermarks.clone(),
        };
        self.opened.insert(name.to_string(), Arc::new(table));
        Ok(())
    }

    /// The planner's view of this catalog.
    pub fn context(&self) -> PlannerContext<'_> {
        PlannerContext { catalog: self }
    }

    /// The planner options.
    pub fn options(&self) -> &ConfigOptions {
        &self.options
    }

    /// The SQL parser's part of the planner options.
    pub fn parser_options(&self) -> ParserOptions {
        ParserOptions::from(&self.options.sql_parser)
    }

    /// The message for a table or view `name` that is not declared.
    pub fn not_found(&self, name: &str) -> String {
        let known = self.names();
        if known.is_empty() {
            format!(
                "table '{name}' not found (none are declared; use CREATE TABLE or --table name=path)"
            )
        } else {
            format!("table '{name}' not found (declared: {})", known.join(", "))
        }
    }
}

/// Declared columns must be in the input, with types it can be cast to.
fn check_declared(name: &str, declared: &SchemaRef, found: &SchemaRef) -> Result<(), SqlError> {
    for field in declared.fields() {
        let Ok(actual) = found.field_with_name(field.name()) else {
            return Err(SqlError::new(format!(
                "table '{name}' declares column '{}', which its input does not have (it has: {})",
                field.name(),
                weir_engine::expr::column_list(found)
            )));
        };
        if !arrow::compute::can_cast_types(actual.data_type(), field.data_type()) {
            return Err(SqlError::new(format!(
                "table '{name}' declares column '{}' as {}, but its input has {}, which cannot be cast to it",
                field.name(),
                field.data_type(),
                actual.data_type()
            )));
        }
    }
    Ok(())
}

/// What the SQL planner sees of a [`Catalog`].
pub struct PlannerContext<'a> {
    catalog: &'a Catalog,
}

impl ContextProvider for PlannerContext<'_> {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        let key = name.table();
        if name.schema().is_some() {
            return plan_err!(
                "table '{name}' not found: weir has no schemas or catalogs, use the bare name"
            );
        }
        if let Some(view) = self.catalog.views.get(key) {
            return Ok(Arc::clone(view) as Arc<dyn TableSource>);
        }
        if let Some(table) = self.catalog.opened.get(key) {
            return Ok(Arc::clone(table) as Arc<dyn TableSource>);
        }
        Err(DataFusionError::Plan(self.catalog.not_found(key)))
    }

    /// The window table functions (TUMBLE, HOP, CUMULATE, SESSION) over a
    /// table or view.
    fn get_table_function_source(
        &self,
        name: &str,
        args: Vec<Expr>,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        let function = name.to_lowercase();
        if !WINDOW_FUNCTIONS.contains(&function.as_str()) {
            return plan_err!(
                "unknown table function '{name}' (table functions: {})",
                WINDOW_FUNCTIONS.join(", ")
            );
        }
        let [Expr::Column(input), Expr::Column(time), intervals @ ..] = args.as_slice() else {
            return plan_err!(
                "{}: the first arguments are the table and its time column: \
                 {}(TABLE t, DESCRIPTOR(ts), ...)",
                function.to_uppercase(),
                function.to_uppercase()
            );
        };
        let window = window_of(&function, intervals)?;
        let key = input.name.as_str();
        let plan = if let Some(view) = self.catalog.views.get(key) {
            view.plan.clone()
        } else if let Some(table) = self.catalog.opened.get(key) {
            LogicalPlanBuilder::scan(key, Arc::clone(table) as Arc<dyn TableSource>, None)?
                .build()?
        } else {
            return Err(DataFusionError::Plan(self.catalog.not_found(key)));
        };
        let node = WindowTvf::try_new(plan, time.name.clone(), window)?;
        Ok(Arc::new(ViewTable {
            plan: LogicalPlan::Extension(Extension {
                node: Arc::new(node),
            }),
        }))
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.catalog.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.catalog.scalars.get(name).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.catalog.aggregates.get(name).cloned()
    }

    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.catalog.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.catalog.scalars.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.catalog.aggregates.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Functions by their names and aliases.
fn by_name<F>(
    functions: Vec<Arc<F>>,
    names: impl Fn(&F) -> (&str, &[String]),
) -> HashMap<String, Arc<F>> {
    let mut by_name = HashMap::new();
    for f in functions {
        let (name, aliases) = names(&f);
        for name in std::iter::once(name).chain(aliases.iter().map(String::as_str)) {
            by_name.insert(name.to_string(), Arc::clone(&f));
        }
    }
    by_name
}

/// The table behind a scan, when it is one of the catalog's.
pub fn source_table(source: &Arc<dyn TableSource>) -> Option<&SourceTable> {
    let any: &dyn Any = source.as_ref();
    any.downcast_ref::<SourceTable>()
}
