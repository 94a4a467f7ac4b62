//! Finding a table's files: a file, a directory (recursively) or a glob, in
//! any object store, with hive-style `key=value` directories turned into
//! partition columns.
//!
//! Files and directories whose names start with `_` or `.` are hidden
//! (staging directories, `_SUCCESS` markers, checksums), as in Spark and
//! Hive. Files are listed in path order, so every run reads them in the same
//! order.

use std::sync::Arc;

use arrow::array::{Array, RecordBatch};
use datafusion_common::ScalarValue;
use datafusion_expr::Expr;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use weir_engine::expr::Compiled;
use weir_engine::registry::ConnectorOptions;
use weir_exchange::StoreUrl;

use crate::file_sink::commit::CommitView;
use crate::hive::{PartitionColumns, constant_columns, parse_segments};
use crate::{Error, Result};

/// One file of a table.
#[derive(Debug, Clone)]
pub struct ListedFile {
    /// Where it is in the store.
    pub location: Path,
    /// Its URL, for messages.
    pub url: String,
    /// Its size in bytes.
    pub size: u64,
    /// The values of the table's partition columns for this file.
    pub partition_values: Vec<ScalarValue>,
}

/// The files of a table.
#[derive(Debug, Clone)]
pub struct FileListing {
    /// The table's root (the part of the path before any glob).
    pub root: StoreUrl,
    /// The files, in path order.
    pub files: Vec<ListedFile>,
    /// The partition columns their directories name.
    pub partitions: PartitionColumns,
}

/// Characters that make a path segment a glob.
const GLOB_CHARS: [char; 3] = ['*', '?', '['];

impl FileListing {
    /// Lists the files at `path`: a file, a directory or a glob (`*`, `?`,
    /// `[...]` within a segment, `**` across directories).
    ///
    /// # Errors
    /// [`Error::Option`] for an invalid URL or glob, or when nothing matches;
    /// [`Error::Store`] when the store cannot be listed.
    pub async fn list(path: &str, options: &ConnectorOptions) -> Result<Self> {
        let (root_url, pattern) = split_glob(path)?;
        let root = StoreUrl::parse(&root_url, options).map_err(|e| Error::Option {
            option: "path".to_string(),
            message: e.to_string(),
        })?;
        let store = root.store();
        let single = match pattern {
            Some(_) => None,
            None => match store.head(root.path()).await {
                Ok(meta) => Some(meta),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(source) => {
                    return Err(Error::Store {
                        url: root.to_string(),
                        source,
                    });
                }
            },
        };
        let metas: Vec<(ObjectMeta, Path)> = match single {
            Some(meta) => {
                let path = meta.location.clone();
                vec![(meta, path)]
            }
            None => committed_files(&root, pattern.as_ref(), options).await?,
        };
        if metas.is_empty() {
            return Err(Error::Option {
                option: "path".to_string(),
                message: format!("no files at '{path}'"),
            });
        }
        let mut pairs = Vec::with_capacity(metas.len());
        for (_, path) in &metas {
            let dirs = relative_dirs(path, root.path());
            let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
            let url = root.url_of(path);
            let parsed = parse_segments(&dirs).map_err(|message| Error::Corrupt {
                file: url.clone(),
                message,
            })?;
            pairs.push((url, parsed));
        }
        let partitions = PartitionColumns::infer(&pairs)?;
        let files = metas
            .into_iter()
            .zip(&pairs)
            .map(|((meta, _), (url, pairs))| {
                Ok(ListedFile {
                    location: meta.location,
                    url: url.clone(),
                    size: meta.size,
                    partition_values: partitions.values(pairs)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            root,
            files,
            partitions,
        })
    }

    /// The store holding the files.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.root.store()
    }

    /// The files whose partition values may pass every filter that refers
    /// only to partition columns (the others are not looked at).
    ///
    /// # Errors
    /// When such a filter cannot be evaluated.
    pub fn prune(&self, filters: &[Expr]) -> Result<Vec<ListedFile>> {
        let schema = self.partitions.schema();
        let on_partitions: Vec<Compiled> = filters
            .iter()
            .filter(|f| {
                let columns = f.column_refs();
                !columns.is_empty() && columns.iter().all(|c| schema.index_of(&c.name).is_ok())
            })
            .map(|f| Compiled::new(f, schema))
            .collect::<weir_engine::Result<_>>()
            .map_err(|e| Error::Option {
                option: "filter".to_string(),
                message: e.to_string(),
            })?;
        if on_partitions.is_empty() {
            return Ok(self.files.clone());
        }
        let mut kept = Vec::new();
        for file in &self.files {
            let row = RecordBatch::try_new(
                Arc::clone(schema),
                constant_columns(&file.partition_values, 1)?,
            )?;
            let mut passes = true;
            for filter in &on_partitions {
                let verdict = filter.evaluate_predicate(&row).map_err(|e| Error::Option {
                    option: "filter".to_string(),
                    message: e.to_string(),
                })?;
                passes &= verdict.is_valid(0) && verdict.value(0);
            }
            if passes {
                kept.push(file.clone());
            }
        }
        Ok(kept)
    }
}

/// Splits a path at its first segment with a glob character: the root to
/// list and the pattern the path relative to it must match.
fn split_glob(path: &str) -> Result<(String, Option<glob::Pattern>)> {
    let (scheme, rest) = match path.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), path),
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let Some(first_glob) = segments.iter().position(|s| s.contains(GLOB_CHARS)) else {
        return Ok((path.to_string(), None));
    };
    let root = format!("{scheme}{}", segments[..first_glob].join("/"));
    let relative = segments[first_glob..].join("/");
    let pattern = glob::Pattern::new(&relative).map_err(|e| Error::Option {
        option: "path".to_string(),
        message: format!("invalid glob '{relative}' in '{path}': {e}"),
    })?;
    let root = if root.is_empty() || root.ends_with("://") {
        format!("{root}.")
    } else {
        root
    };
    Ok((root, Some(pattern)))
}

/// How often a listing is read again when commits ran while it was read.
const LISTING_ATTEMPTS: usize = 5;

/// The files of the table under `root` matching `pattern`, as its commits
/// say (see [`CommitView`]): each as where its bytes are and the path it
/// has, in path order. A commit that starts or ends while the files are
/// listed has the listing read again, so that it is seen whole or not at
/// all.
async fn committed_files(
    root: &StoreUrl,
    pattern: Option<&glob::Pattern>,
    options: &ConnectorOptions,
) -> Result<Vec<(ObjectMeta, Path)>> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let before = CommitView::read(root, options).await?;
        let listed = list_under(root.store(), root, pattern).await?;
        let after = CommitView::read(root, options).await?;
        if before.same_commits(&after) || attempt == LISTING_ATTEMPTS {
            let files = listed
                .into_iter()
                .map(|meta| {
                    let path = meta.location.clone();
                    (meta, path)
                })
                .collect();
            let files = after.apply(root, files).await?;
            return Ok(files
                .into_iter()
                .filter(|(_, path)| matches(path, root.path(), pattern))
                .collect());
        }
    }
}

/// Whether the file at `path` is visible under `prefix` and matches
/// `pattern`.
fn matches(path: &Path, prefix: &Path, pattern: Option<&glob::Pattern>) -> bool {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let relative = relative_parts(path, prefix);
    let hidden = relative.iter().any(|p| p.starts_with(['_', '.']));
    !hidden && pattern.is_none_or(|p| p.matches_with(&relative.join("/"), options))
}

/// Every visible file under the root matching `pattern`, in path order.
async fn list_under(
    store: &Arc<dyn ObjectStore>,
    root: &StoreUrl,
    pattern: Option<&glob::Pattern>,
) -> Result<Vec<ObjectMeta>> {
    let prefix = root.path();
    let listed: Vec<ObjectMeta> =
        store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|source| Error::Store {
                url: root.to_string(),
                source,
            })?;
    let mut files: Vec<ObjectMeta> = listed
        .into_iter()
        .filter(|meta| matches(&meta.location, prefix, pattern))
        .collect();
    files.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(files)
}

/// The segments of `location` below `prefix`, as the store names them (file
/// names on disk, keys in object stores).
fn relative_parts(location: &Path, prefix: &Path) -> Vec<String> {
    match location.prefix_match(prefix) {
        Some(parts) => parts.map(|p| p.as_ref().to_string()).collect(),
        None => Vec::new(),
    }
}

/// The directory segments of `location` below `prefix` (without the file
/// name).
fn relative_dirs(location: &Path, prefix: &Path) -> Vec<String> {
    let mut parts = relative_parts(location, prefix);
    parts.pop();
    parts
}

#[cfg(test)]
mod tests {
    use datafusion_expr::{col, lit};

    use super::*;

    async fn put(url: &str, files: &[&str]) {
        let root = StoreUrl::parse(url, &ConnectorOptions::new()).expect("url");
        for file in files {
            let mut path = root.path().clone();
            for part in file.split('/') {
                // As keys arrive from an object store: verbatim.
                path = path.join(object_store::path::PathPart::parse(part).expect("part"));
            }
            root.store().put(&path, "x".into()).await.expect("put");
        }
    }

    fn names(listing: &FileListing) -> Vec<String> {
        listing
            .files
            .iter()
            .map(|f| relative_parts(&f.location, listing.root.path()).join("/"))
            .collect()
    }

    #[tokio::test]
    async fn directories_globs_and_hidden_files() {
        let url = "memory://listing-test/t";
        put(
            url,
            &[
                "b.csv",
                "a.csv",
                "sub/c.csv",
                "sub/d.json",
                "_SUCCESS",
                ".crc",
                "_staging/x.csv",
            ],
        )
        .await;
        let all = FileListing::list(url, &ConnectorOptions::new())
            .await
            .expect("list");
        assert_eq!(names(&all), ["a.csv", "b.csv", "sub/c.csv", "sub/d.json"]);
        let top = FileListing::list(&format!("{url}/*.csv"), &ConnectorOptions::new())
            .await
            .expect("glob");
        assert_eq!(names(&top), ["a.csv", "b.csv"]);
        let deep = FileListing::list(&format!("{url}/**/*.csv"), &ConnectorOptions::new())
            .await
            .expect("deep glob");
        assert_eq!(names(&deep), ["a.csv", "b.csv", "sub/c.csv"]);
        let one = FileListing::list(&format!("{url}/sub/d.json"), &ConnectorOptions::new())
            .await
            .expect("one file");
        assert_eq!(one.files.len(), 1);
        let none = FileListing::list(&format!("{url}/*.parquet"), &ConnectorOptions::new())
            .await
            .expect_err("nothing matches")
            .to_string();
        assert!(
            none.contains("no files at") && none.contains("*.parquet"),
            "{none}"
        );
    }

    #[tokio::test]
    async fn local_directories_and_globs() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir_all(dir.path().join("x=1")).expect("mkdir");
        std::fs::write(dir.path().join("x=1/f.csv"), "a").expect("write");
        std::fs::write(dir.path().join("x=1/g.txt"), "a").expect("write");
        let base = dir.path().display().to_string();
        let listing = FileListing::list(&format!("{base}/*/*.csv"), &ConnectorOptions::new())
            .await
            .expect("glob");
        assert_eq!(names(&listing), ["x=1/f.csv"]);
        assert_eq!(
            listing.files[0].partition_values,
            [ScalarValue::Int64(Some(1))]
        );
        let url = FileListing::list(&format!("file://{base}"), &ConnectorOptions::new())
            .await
            .expect("file url");
        assert_eq!(url.files.len(), 2);
    }

    #[tokio::test]
    async fn hive_partitions_become_columns_and_prune_files() {
        let url = "memory://listing-test/hive";
        put(
            url,
            &[
                "year=2023/city=Paris/p0.parquet",
                "year=2024/city=Paris/p0.parquet",
                "year=2024/city=New%20York/p0.parquet",
                "year=__HIVE_DEFAULT_PARTITION__/city=Oslo/p0.parquet",
            ],
        )
        .await;
        let listing = FileListing::list(url, &ConnectorOptions::new())
            .await
            .expect("list");
        let fields: Vec<_> = listing
            .partitions
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(fields, ["year", "city"]);
        let kept = listing
            .prune(&[col("year").eq(lit(2024_i64))])
            .expect("prune");
        let cities: Vec<_> = kept
            .iter()
            .map(|f| f.partition_values[1].to_string())
            .collect();
        assert_eq!(cities, ["New York", "Paris"]);
        let other = listing
            .prune(&[col("other").eq(lit(1))])
            .expect("not a partition filter");
        assert_eq!(other.len(), 4);
        let nulls = listing
            .prune(&[col("year").is_null()])
            .expect("null partition");
        assert_eq!(nulls.len(), 1);
    }
}
