//! The connector registry: how sources and sinks are found by name.
//!
//! `weir-engine` defines the registry and `weir-formats` fills it, so the
//! engine never depends on any file format or external system.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

use crate::{Error, Result, SinkFactory, SourceFactory};

/// Connector options, as given in `WITH (...)` clauses or on the command line.
pub type ConnectorOptions = BTreeMap<String, String>;

/// Builds sources of one kind from options.
#[async_trait]
pub trait SourceConnector: Send + Sync + Debug {
    /// The connector's name (`'connector' = '...'`).
    fn name(&self) -> &'static str;

    /// The options it accepts; any other option is an error. A name may
    /// hold `*` segments, each standing for one dot-free segment
    /// (`fields.*.kind` accepts `fields.id.kind`), and end in `**`, for
    /// any segments (see [`option_matches`]).
    fn option_names(&self) -> Vec<&'static str>;

    /// Builds a source from validated options. It may read the input to
    /// learn its schema and size (list files, read footers or a sample).
    ///
    /// `declared` holds the columns the user declared, when any
    /// (`CREATE TABLE t (id BIGINT, ...) WITH (...)`). A connector may use
    /// them as its schema: CSV and JSON do when no `schema` option is given,
    /// instead of inferring one, and generators such as `datagen` need them.
    /// Connectors whose input carries its own schema (Parquet, IPC) may
    /// ignore them: the caller checks the declared columns against the
    /// source's schema and casts to them.
    ///
    /// # Errors
    /// When a required option is missing or a value is invalid, or the
    /// input cannot be read.
    async fn create(
        &self,
        options: &ConnectorOptions,
        declared: Option<SchemaRef>,
    ) -> Result<Arc<dyn SourceFactory>>;
}

/// Builds sinks of one kind from options.
#[async_trait]
pub trait SinkConnector: Send + Sync + Debug {
    /// The connector's name.
    fn name(&self) -> &'static str;

    /// The options it accepts; any other option is an error. A name may
    /// hold `*` segments, as for [`SourceConnector::option_names`].
    fn option_names(&self) -> Vec<&'static str>;

    /// Builds a sink from validated options and the schema of the rows it
    /// will write.
    ///
    /// # Errors
    /// When a required option is missing or a value is invalid, or the
    /// destination cannot be prepared.
    async fn create(
        &self,
        options: &ConnectorOptions,
        schema: SchemaRef,
    ) -> Result<Arc<dyn SinkFactory>>;
}

/// Source and sink connectors by name.
#[derive(Debug, Default, Clone)]
pub struct ConnectorRegistry {
    sources: BTreeMap<&'static str, Arc<dyn SourceConnector>>,
    sinks: BTreeMap<&'static str, Arc<dyn SinkConnector>>,
}

impl ConnectorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a source connector under its name.
    pub fn register_source(&mut self, connector: Arc<dyn SourceConnector>) {
        self.sources.insert(connector.name(), connector);
    }

    /// Registers a sink connector under its name.
    pub fn register_sink(&mut self, connector: Arc<dyn SinkConnector>) {
        self.sinks.insert(connector.name(), connector);
    }

    /// The names of every connector, sources and sinks, in order.
    pub fn connector_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .sources
            .keys()
            .chain(self.sinks.keys())
            .copied()
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The options connector `name` takes, as a source or as a sink. Names
    /// with `*` segments are patterns (see [`option_matches`]).
    ///
    /// # Errors
    /// An unknown connector (the message lists the known ones).
    pub fn option_names(&self, name: &str) -> Result<Vec<&'static str>> {
        let source = self.sources.get(name).map(|c| c.option_names());
        let sink = self.sinks.get(name).map(|c| c.option_names());
        if source.is_none() && sink.is_none() {
            return Err(Error::Connector {
                connector: name.to_string(),
                message: format!(
                    "unknown connector ({}connectors: {})",
                    crate::suggest::did_you_mean(name, self.connector_names()),
                    self.connector_names().join(", ")
                ),
            });
        }
        let mut names: Vec<&'static str> = source.into_iter().chain(sink).flatten().collect();
        names.sort_unstable();
        names.dedup();
        Ok(names)
    }

    /// Builds a source of connector `name`, given the columns the user
    /// declared for it, if any (see [`SourceConnector::create`]).
    ///
    /// # Errors
    /// An unknown connector or option (the message lists the valid ones), or
    /// the connector's own error.
    pub async fn source(
        &self,
        name: &str,
        options: &ConnectorOptions,
        declared: Option<SchemaRef>,
    ) -> Result<Arc<dyn SourceFactory>> {
        let connector = self
            .sources
            .get(name)
            .ok_or_else(|| unknown("source", name, self.sources.keys()))?;
        check_options(name, &connector.option_names(), options)?;
        connector.create(options, declared).await
    }

    /// Builds a sink of connector `name`.
    ///
    /// # Errors
    /// An unknown connector or option (the message lists the valid ones), or
    /// the connector's own error.
    pub async fn sink(
        &self,
        name: &str,
        options: &ConnectorOptions,
        schema: SchemaRef,
    ) -> Result<Arc<dyn SinkFactory>> {
        let connector = self
            .sinks
            .get(name)
            .ok_or_else(|| unknown("sink", name, self.sinks.keys()))?;
        check_options(name, &connector.option_names(), options)?;
        connector.create(options, schema).await
    }
}

fn unknown<'a>(kind: &str, name: &str, valid: impl Iterator<Item = &'a &'static str>) -> Error {
    let valid: Vec<_> = valid.copied().collect();
    Error::Connector {
        connector: name.to_string(),
        message: format!(
            "unknown {kind} connector ({}valid: {})",
            crate::suggest::did_you_mean(name, valid.iter().copied()),
            valid.join(", ")
        ),
    }
}

/// Whether option `key` is one that `pattern` names: the same dot-separated
/// segments, where a `*` segment of the pattern stands for any non-empty
/// segment of the key (`fields.*.kind` matches `fields.id.kind`, not
/// `fields.kind` or `fields.a.b.kind`), and a last `**` segment for one or
/// more (`properties.**` matches `properties.bootstrap.servers`).
pub fn option_matches(pattern: &str, key: &str) -> bool {
    let mut keys = key.split('.');
    for expected in pattern.split('.') {
        match keys.next() {
            Some(segment) if expected == "**" && !segment.is_empty() => {
                return keys.all(|s| !s.is_empty());
            }
            Some(segment) if expected == "*" && !segment.is_empty() => {}
            Some(segment) if segment == expected => {}
            _ => return false,
        }
    }
    keys.next().is_none()
}

/// Checks that connector `connector` takes option `key`, one of the
/// options `valid` names (patterns included, see [`option_matches`]).
///
/// # Errors
/// [`Error::Connector`] naming the option and listing the valid ones.
pub fn check_option(connector: &str, valid: &[&str], key: &str) -> Result<()> {
    if valid.iter().any(|pattern| option_matches(pattern, key)) {
        return Ok(());
    }
    Err(Error::Connector {
        connector: connector.to_string(),
        message: format!(
            "unknown option '{key}' ({}valid: {})",
            crate::suggest::did_you_mean(key, valid.iter().copied()),
            valid.join(", ")
        ),
    })
}

fn check_options(name: &str, valid: &[&str], options: &ConnectorOptions) -> Result<()> {
    options
        .keys()
        .try_for_each(|key| check_option(name, valid, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_one_segment_per_star() {
        assert!(option_matches("path", "path"));
        assert!(!option_matches("path", "paths"));
        assert!(option_matches("fields.*.kind", "fields.id.kind"));
        assert!(option_matches("fields.*.kind", "fields.ID_2.kind"));
        assert!(!option_matches("fields.*.kind", "fields.kind"));
        assert!(!option_matches("fields.*.kind", "fields..kind"));
        assert!(!option_matches("fields.*.kind", "fields.a.b.kind"));
        assert!(!option_matches("fields.*.kind", "fields.id.kind.x"));
        assert!(!option_matches("fields.*.kind", "fields.id"));
        assert!(!option_matches("fields.*.kind", "other.id.kind"));
        assert!(option_matches("*", "anything"));
        assert!(option_matches(
            "properties.**",
            "properties.bootstrap.servers"
        ));
        assert!(option_matches("properties.**", "properties.acks"));
        assert!(!option_matches("properties.**", "properties"));
        assert!(!option_matches("properties.**", "properties..acks"));
        assert!(!option_matches("*", "any.thing"));
    }

    #[test]
    fn unknown_options_list_the_patterns() {
        let valid = ["number-of-rows", "fields.*.kind", "fields.*.min"];
        let options = |key: &str| ConnectorOptions::from([(key.to_string(), "1".to_string())]);
        check_options("gen", &valid, &options("fields.id.kind")).expect("a pattern's option");
        check_options("gen", &valid, &options("number-of-rows")).expect("a plain option");
        let e = check_options("gen", &valid, &options("fields.id.size"))
            .expect_err("no pattern has it")
            .to_string();
        assert!(
            e.contains("unknown option 'fields.id.size'")
                && e.contains("number-of-rows, fields.*.kind, fields.*.min"),
            "{e}"
        );
        let e = check_options("gen", &valid, &options("fields.a.b.kind"))
            .expect_err("a star is one segment")
            .to_string();
        assert!(e.contains("'fields.a.b.kind'"), "{e}");
    }
}
