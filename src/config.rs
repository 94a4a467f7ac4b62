//! Where a job's settings come from, each source overriding the one before:
//! the defaults, a TOML file, environment variables, the command line's
//! flags, and last the `SET` statements of the script itself.
//!
//! The file is the one given with `--config`, else the one named by
//! `WEIR_CONFIG`, else `weir.toml` in the working directory when there is
//! one; with none, the defaults work as they are. Keys are the options'
//! names, flat (`"parallelism.default" = 4`) or as tables
//! (`[parallelism]` then `default = 4`). The environment variable of an
//! option is `WEIR_` and its name in capitals with `.` and `-` as `_`:
//! `WEIR_PARALLELISM_DEFAULT=4`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use weir_scheduler::{CONFIG_KEYS, JobConfig};

/// The file read when no other is named.
pub const DEFAULT_FILE: &str = "weir.toml";

/// The environment variable naming the configuration file.
pub const FILE_VARIABLE: &str = "WEIR_CONFIG";

/// The environment variable that sets option `key`.
pub fn variable_of(key: &str) -> String {
    format!("WEIR_{}", key.to_uppercase().replace(['.', '-'], "_"))
}

/// The settings from the defaults, the configuration file (`file`, else
/// the one the environment names, else `weir.toml` if present), the
/// environment (`env` looks a variable up) and `flags`, in that order.
///
/// # Errors
/// A named file that cannot be read, a file that is not TOML, or an
/// unknown option or bad value in any source, naming the source.
pub fn load(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &[(String, String)],
) -> Result<JobConfig> {
    let mut config = JobConfig::default();
    for setting in settings(file, env, flags)? {
        config
            .set(&setting.key, &setting.value)
            .with_context(|| setting.from.clone())?;
    }
    Ok(config)
}

/// An option set over its default, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The option.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Where it was set, as errors name it.
    pub from: String,
}

/// The options set in the configuration file, the environment and
/// `flags` (see [`load`]), in the order they apply: what a job submitted
/// to a coordinator carries, so that it runs as it would here.
///
/// # Errors
/// A named file that cannot be read, or a file that is not TOML.
pub fn settings(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &[(String, String)],
) -> Result<Vec<Setting>> {
    let mut settings = Vec::new();
    let named = file
        .map(Path::to_path_buf)
        .or_else(|| env(FILE_VARIABLE).map(PathBuf::from));
    let path = named.clone().or_else(|| {
        let default = PathBuf::from(DEFAULT_FILE);
        default.is_file().then_some(default)
    });
    if let Some(path) = path {
        let from = format!("configuration file {}", path.display());
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        for (key, value) in options_of_toml(&text).with_context(|| from.clone())? {
            settings.push(Setting {
                key,
                value,
                from: from.clone(),
            });
        }
    }
    for (key, _) in CONFIG_KEYS {
        let variable = variable_of(key);
        if let Some(value) = env(&variable) {
            settings.push(Setting {
                key: key.to_string(),
                value,
                from: format!("environment variable {variable}"),
            });
        }
    }
    for (key, value) in flags {
        settings.push(Setting {
            key: key.clone(),
            value: value.clone(),
            from: format!("option {key}"),
        });
    }
    Ok(settings)
}

/// The options of a TOML document, with nested tables' keys joined by `.`.
///
/// # Errors
/// Text that is not TOML, or a value that is an array.
pub fn options_of_toml(text: &str) -> Result<Vec<(String, String)>> {
    let table: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = Vec::new();
    flatten("", &table, &mut out)?;
    Ok(out)
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) -> Result<()> {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten(&key, t, out)?,
            toml::Value::String(s) => out.push((key, s.clone())),
            toml::Value::Integer(i) => out.push((key, i.to_string())),
            toml::Value::Float(f) => out.push((key, f.to_string())),
            toml::Value::Boolean(b) => out.push((key, b.to_string())),
            toml::Value::Datetime(d) => out.push((key, d.to_string())),
            toml::Value::Array(_) => bail!("'{key}': an option takes one value, not a list"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn defaults_work_with_no_file() {
        let config = load(None, &env_of(&[]), &[]).expect("defaults");
        assert!(config.parallelism >= 1);
    }

    #[test]
    fn file_then_environment_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("weir.toml");
        std::fs::write(
            &file,
            "\"worker.slots\" = 5\n\"shuffle.compression\" = \"zstd\"\n\n[parallelism]\ndefault = 3\n",
        )
        .expect("writes");
        let from_file = load(Some(&file), &env_of(&[]), &[]).expect("loads");
        assert_eq!((from_file.parallelism, from_file.slots), (3, 5));
        let env = env_of(&[("WEIR_PARALLELISM_DEFAULT", "7")]);
        let from_env = load(Some(&file), &env, &[]).expect("loads");
        assert_eq!((from_env.parallelism, from_env.slots), (7, 5));
        let flags = [("parallelism.default".to_string(), "2".to_string())];
        let from_flags = load(Some(&file), &env, &flags).expect("loads");
        assert_eq!((from_flags.parallelism, from_flags.slots), (2, 5));
        // The file can also be named by the environment.
        let named = env_of(&[(FILE_VARIABLE, file.to_str().expect("utf-8"))]);
        assert_eq!(load(None, &named, &[]).expect("loads").parallelism, 3);
    }

    #[test]
    fn bad_sources_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "\"parallelism.defualt\" = 3\n").expect("writes");
        let err = format!(
            "{:#}",
            load(Some(&file), &env_of(&[]), &[]).expect_err("unknown")
        );
        assert!(
            err.contains("bad.toml") && err.contains("parallelism.defualt"),
            "{err}"
        );
        assert!(
            err.contains("parallelism.default"),
            "lists the valid keys: {err}"
        );
        let env = env_of(&[("WEIR_WORKER_SLOTS", "many")]);
        let err = format!("{:#}", load(None, &env, &[]).expect_err("not a number"));
        assert!(err.contains("WEIR_WORKER_SLOTS"), "{err}");
        let missing = dir.path().join("missing.toml");
        let err = format!(
            "{:#}",
            load(Some(&missing), &env_of(&[]), &[]).expect_err("missing")
        );
        assert!(err.contains("missing.toml"), "{err}");
        std::fs::write(&file, "parallelism = [1, 2]\n").expect("writes");
        let err = format!(
            "{:#}",
            load(Some(&file), &env_of(&[]), &[]).expect_err("a list")
        );
        assert!(err.contains("one value"), "{err}");
    }
}
