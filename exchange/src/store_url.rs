//! Object store URLs: where files live, for shuffle roots and connectors.
//!
//! - a plain path or `file:///dir`: the local file system;
//! - `s3://bucket/prefix`: an S3-compatible store; endpoint, region and
//!   credentials come from options (`s3.endpoint`, `s3.region`,
//!   `s3.access-key-id`, `s3.secret-access-key`, `s3.session-token`,
//!   `s3.allow-http`) or else from the environment (`AWS_ENDPOINT_URL`,
//!   `AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...);
//! - `memory://name/prefix`: an in-memory store shared by everything in
//!   this process under that name (tests, examples).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;

use crate::{Error, Result};

/// The options of object store URLs, as connectors and configuration accept
/// them.
pub const STORE_OPTIONS: [&str; 6] = [
    "s3.endpoint",
    "s3.region",
    "s3.access-key-id",
    "s3.secret-access-key",
    "s3.session-token",
    "s3.allow-http",
];

/// A location in an object store: the store and a path within it.
#[derive(Clone)]
pub struct StoreUrl {
    store: Arc<dyn ObjectStore>,
    /// `file`, `s3` or `memory`.
    scheme: &'static str,
    /// The bucket or memory store name (empty for files).
    authority: String,
    path: Path,
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreUrl").field(&self.to_string()).finish()
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url_of(&self.path))
    }
}

static MEMORY_STORES: LazyLock<Mutex<HashMap<String, Arc<InMemory>>>> =
    LazyLock::new(Default::default);

impl StoreUrl {
    /// Parses `url` (see the module docs); `options` may carry the
    /// [`STORE_OPTIONS`] (other keys are ignored).
    ///
    /// # Errors
    /// [`Error::Config`] for an unsupported scheme, a missing bucket, an
    /// invalid option value or a store that cannot be built.
    pub fn parse(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let invalid = |message: String| Error::Config(format!("'{url}': {message}"));
        let Some((scheme, rest)) = url.split_once("://") else {
            return Self::local(url);
        };
        let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
        match scheme {
            "file" => {
                if !authority.is_empty() && authority != "localhost" {
                    return Err(invalid(
                        "file URLs name no host: use file:///absolute/path".to_string(),
                    ));
                }
                Self::local(&format!("/{key}"))
            }
            "memory" => {
                let mut stores = MEMORY_STORES.lock().unwrap_or_else(|p| p.into_inner());
                let store = stores.entry(authority.to_string()).or_default();
                Ok(Self {
                    store: Arc::clone(store) as Arc<dyn ObjectStore>,
                    scheme: "memory",
                    authority: authority.to_string(),
                    path: object_path(key).map_err(invalid)?,
                })
            }
            "s3" | "s3a" => {
                if authority.is_empty() {
                    return Err(invalid(
                        "an S3 URL names its bucket: s3://bucket/prefix".into(),
                    ));
                }
                let store = s3_store(authority, options).map_err(invalid)?;
                Ok(Self {
                    store,
                    scheme: "s3",
                    authority: authority.to_string(),
                    path: object_path(key).map_err(invalid)?,
                })
            }
            other => Err(invalid(format!(
                "unsupported scheme '{other}' (supported: a local path, file://, s3://, memory://)"
            ))),
        }
    }

    fn local(path: &str) -> Result<Self> {
        let absolute = std::path::absolute(path)
            .map_err(|e| Error::Config(format!("'{path}' is not a valid path: {e}")))?;
        // `a/../b` names `b`: resolve `.` and `..` without touching the disk
        // (the path may not exist yet).
        let mut normal = std::path::PathBuf::new();
        for component in absolute.components() {
            match component {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    normal.pop();
                }
                other => normal.push(other),
            }
        }
        let absolute = normal;
        let path = Path::from_absolute_path(&absolute)
            .map_err(|e| Error::Config(format!("'{path}' is not a valid path: {e}")))?;
        Ok(Self {
            store: Arc::new(LocalFileSystem::new()),
            scheme: "file",
            authority: String::new(),
            path,
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The path within the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The same store at another path.
    pub fn with_path(&self, path: Path) -> Self {
        Self {
            path,
            ..self.clone()
        }
    }

    /// The local directory or file, for `file` URLs.
    pub fn local_path(&self) -> Option<std::path::PathBuf> {
        (self.scheme == "file").then(|| std::path::PathBuf::from(format!("/{}", self.path)))
    }

    /// The URL of `path` in this store, for messages.
    pub fn url_of(&self, path: &Path) -> String {
        format!("{}://{}/{}", self.scheme, self.authority, path)
    }
}

/// A store path from the key part of a URL (percent-decoded segments).
fn object_path(key: &str) -> std::result::Result<Path, String> {
    Path::parse(key.trim_matches('/')).map_err(|e| e.to_string())
}

/// An S3 client of `bucket` with `options`. Clients are not shared between
/// URLs: a client's pooled connections belong to the runtime that made
/// them.
fn s3_store(
    bucket: &str,
    options: &BTreeMap<String, String>,
) -> std::result::Result<Arc<dyn ObjectStore>, String> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL")
        && endpoint.starts_with("http://")
    {
        builder = builder.with_allow_http(true);
    }
    for (option, value) in options.iter().filter(|(k, _)| k.starts_with("s3.")) {
        builder = match option.as_str() {
            "s3.endpoint" => builder
                .with_allow_http(value.starts_with("http://"))
                .with_endpoint(value),
            "s3.region" => builder.with_region(value),
            "s3.access-key-id" => builder.with_access_key_id(value),
            "s3.secret-access-key" => builder.with_secret_access_key(value),
            "s3.session-token" => builder.with_token(value),
            "s3.allow-http" => builder.with_allow_http(parse_bool(option, value)?),
            other => {
                return Err(format!(
                    "unknown option '{other}' (valid: {})",
                    STORE_OPTIONS.join(", ")
                ));
            }
        };
    }
    Ok(Arc::new(builder.build().map_err(|e| e.to_string())?))
}

fn parse_bool(option: &str, value: &str) -> std::result::Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "option '{option}' is 'true' or 'false', not '{value}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;

    use super::*;

    fn parse(url: &str) -> Result<StoreUrl> {
        StoreUrl::parse(url, &BTreeMap::new())
    }

    #[test]
    fn plain_paths_and_file_urls_are_local_and_absolute() {
        let dir = tempfile::tempdir().expect("dir");
        let plain = parse(dir.path().to_str().expect("utf-8")).expect("plain");
        let url = parse(&format!("file://{}", dir.path().display())).expect("url");
        assert_eq!(plain.to_string(), url.to_string());
        assert_eq!(plain.local_path().as_deref(), Some(dir.path()));
        assert!(
            parse("relative/dir")
                .expect("relative")
                .local_path()
                .is_some_and(|p| p.is_absolute())
        );
    }

    #[tokio::test]
    async fn memory_urls_with_one_name_share_a_store() {
        let a = parse("memory://store-url-test/a").expect("a");
        a.store()
            .put(&a.path().clone().join("x"), "hello".into())
            .await
            .expect("put");
        let b = parse("memory://store-url-test/a/x").expect("b");
        let got = b
            .store()
            .get(b.path())
            .await
            .expect("get")
            .bytes()
            .await
            .expect("bytes");
        assert_eq!(&got[..], b"hello");
        assert_eq!(b.to_string(), "memory://store-url-test/a/x");
    }

    #[test]
    fn bad_urls_say_what_is_valid() {
        let e = parse("ftp://host/x").expect_err("ftp").to_string();
        assert!(
            e.contains("unsupported scheme 'ftp'") && e.contains("s3://"),
            "{e}"
        );
        let e = parse("s3:///key").expect_err("no bucket").to_string();
        assert!(e.contains("names its bucket"), "{e}");
        let options = BTreeMap::from([("s3.allow-http".to_string(), "maybe".to_string())]);
        let e = StoreUrl::parse("s3://b/k", &options)
            .expect_err("bad bool")
            .to_string();
        assert!(e.contains("'s3.allow-http'") && e.contains("maybe"), "{e}");
    }
}
