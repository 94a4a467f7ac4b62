//! Options every file connector shares.

use weir_engine::registry::ConnectorOptions;
use weir_exchange::store_url::STORE_OPTIONS;

use crate::file_sink::FILE_SINK_OPTIONS;
use crate::{Error, Result};

/// The `path` option, which every file connector requires.
///
/// # Errors
/// [`Error::Option`] when it is missing.
pub fn required_path(options: &ConnectorOptions) -> Result<&str> {
    options.get("path").map(String::as_str).ok_or_else(|| Error::Option {
        option: "path".to_string(),
        message: "is required: a file, directory or glob (a local path, file://, s3:// or memory:// URL)"
            .to_string(),
    })
}

/// A boolean option (`true` / `false`), `default` when absent.
///
/// # Errors
/// [`Error::Option`] for any other value.
pub fn bool_option(options: &ConnectorOptions, name: &str, default: bool) -> Result<bool> {
    match options.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(Error::Option {
            option: name.to_string(),
            message: format!("'{v}' is not 'true' or 'false'"),
        }),
    }
}

/// The options of a file source: `path`, the source's own `extra`, and the
/// object store options.
pub fn source_options(extra: &[&'static str]) -> Vec<&'static str> {
    let mut names = vec!["path"];
    names.extend_from_slice(extra);
    names.extend(STORE_OPTIONS);
    names
}

/// The options of a file sink: `path`, the file sink's, the format's own
/// `extra`, and the object store options.
pub fn sink_options(extra: &[&'static str]) -> Vec<&'static str> {
    let mut names = source_options(&FILE_SINK_OPTIONS);
    names.extend_from_slice(extra);
    names
}
