//! Blocking partitions on another process's local disk, read over Flight.
//!
//! A worker writes the blocking partitions of its attempts under its own
//! local shuffle directory, and serves their bytes to consumers on other
//! workers ([`super::ExchangeService`]'s `DoGet`). A consumer reads them
//! through [`served_partitions`]: an object store whose only operation is
//! reading partition files by range, so the partition reader (its index,
//! checksums and decoding) is the same wherever the file is.
//!
//! A `DoGet` ticket is a [`FileRead`] (JSON): a partition file's path under
//! the shuffle directory and the part of it wanted. The answer's first
//! message carries the file's size and the range sent as application
//! metadata ([`FileMeta`]); the bytes follow in the bodies of the next
//! messages. Only paths of partition files are served
//! ([`partition_file_path`]): nothing else of the worker's disk.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use arrow_flight::{FlightData, Ticket};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use serde::{Deserialize, Serialize};

use super::client::{FlightClient, RemoteAccess, flight_client};
use crate::{ShuffleRoot, StoreRoot};

/// How many bytes of a file one message carries at most: a block of the
/// default size comes in one.
pub(super) const CHUNK_BYTES: usize = 16 << 20;

/// What part of a partition file a `DoGet` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileRead {
    /// The file, relative to the shuffle directory.
    pub path: String,
    /// The bytes wanted.
    pub wanted: Wanted,
}

/// Which bytes of a file a [`FileRead`] wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Wanted {
    /// Only its size.
    Size,
    /// The bytes `start..end`.
    Bounded(u64, u64),
    /// The bytes from this offset on.
    From(u64),
    /// The last bytes.
    Last(u64),
    /// All of it.
    All,
}

impl Wanted {
    fn of(options: &GetOptions) -> Self {
        if options.head {
            return Self::Size;
        }
        match &options.range {
            None => Self::All,
            Some(GetRange::Bounded(range)) => Self::Bounded(range.start, range.end),
            Some(GetRange::Offset(offset)) => Self::From(*offset),
            Some(GetRange::Suffix(n)) => Self::Last(*n),
        }
    }

    /// The options of a local read of these bytes.
    pub fn options(&self) -> GetOptions {
        let range = match self {
            Self::Size | Self::All => None,
            Self::Bounded(start, end) => Some(GetRange::Bounded(*start..*end)),
            Self::From(offset) => Some(GetRange::Offset(*offset)),
            Self::Last(n) => Some(GetRange::Suffix(*n)),
        };
        GetOptions {
            range,
            head: matches!(self, Self::Size),
            ..Default::default()
        }
    }
}

/// The first message's metadata: the file's size and the bytes that follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FileMeta {
    /// The whole file's size.
    pub size: u64,
    /// Where the bytes that follow are in the file.
    pub start: u64,
    /// Where they end.
    pub end: u64,
}

/// `path` if it names a blocking partition file under a shuffle directory
/// (`JOB/dN/pN-aN.ipc` or `.parquet`), the only files a worker serves.
pub(super) fn partition_file_path(path: &str) -> Option<Path> {
    let mut parts = path.split('/');
    let (job, dataset, file) = (parts.next()?, parts.next()?, parts.next()?);
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let job_ok = !job.is_empty()
        && !job.starts_with('.')
        && job
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    let dataset_ok = dataset.strip_prefix('d').is_some_and(digits);
    let file_ok = file
        .strip_suffix(".ipc")
        .or_else(|| file.strip_suffix(".parquet"))
        .and_then(|stem| stem.strip_prefix('p'))
        .and_then(|stem| stem.split_once("-a"))
        .is_some_and(|(producer, attempt)| digits(producer) && digits(attempt));
    (parts.next().is_none() && job_ok && dataset_ok && file_ok).then(|| Path::from(path))
}

/// The blocking partitions the process at `address` (`http://HOST:PORT`)
/// holds under its own shuffle directory, as a shuffle root to read them
/// from; calls go as `access` says. When `address` is not a URL, every
/// read fails saying so.
pub fn served_partitions(address: &str, access: &RemoteAccess) -> ShuffleRoot {
    let store = ServedPartitions {
        address: address.to_string(),
        client: flight_client(address, access).map_err(|e| e.to_string()),
    };
    let root = StoreRoot::of_store(
        Arc::new(store),
        format!("{address} (a worker's partitions)"),
    );
    ShuffleRoot::of(root)
}

/// Reads partition files from another process's shuffle directory.
#[derive(Clone)]
struct ServedPartitions {
    address: String,
    client: Result<FlightClient, String>,
}

impl fmt::Debug for ServedPartitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServedPartitions")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ServedPartitions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the partitions served at {}", self.address)
    }
}

impl ServedPartitions {
    /// What went wrong reading `path`: a file its holder does not have, or
    /// a holder that cannot be reached or went away while it answered, is
    /// a partition not found (failover reruns its producer); a refused
    /// call is an error of this store.
    fn failed(&self, path: &Path, status: &tonic::Status) -> object_store::Error {
        use tonic::Code;
        let source = format!("{} at {}", status.message(), self.address).into();
        match status.code() {
            Code::InvalidArgument
            | Code::Internal
            | Code::Unauthenticated
            | Code::PermissionDenied
            | Code::Unimplemented
            | Code::ResourceExhausted => object_store::Error::Generic {
                store: "weir worker",
                source,
            },
            _ => object_store::Error::NotFound {
                path: path.to_string(),
                source,
            },
        }
    }

    fn unsupported(operation: &str) -> object_store::Error {
        object_store::Error::NotImplemented {
            operation: operation.to_string(),
            implementer: "a worker's served partitions (read only)".to_string(),
        }
    }
}

#[async_trait]
impl ObjectStore for ServedPartitions {
    async fn put_opts(
        &self,
        _: &Path,
        _: PutPayload,
        _: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(Self::unsupported("put"))
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(Self::unsupported("put_multipart"))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let read = FileRead {
            path: location.to_string(),
            wanted: Wanted::of(&options),
        };
        let ticket = Ticket::new(serde_json::to_vec(&read).expect("a read serializes"));
        let mut client = self
            .client
            .clone()
            .map_err(|e| object_store::Error::Generic {
                store: "weir worker",
                source: e.into(),
            })?;
        let mut messages = client
            .do_get(ticket)
            .await
            .map_err(|status| self.failed(location, &status))?
            .into_inner();
        let mut next = async || -> object_store::Result<Option<FlightData>> {
            messages
                .message()
                .await
                .map_err(|status| self.failed(location, &status))
        };
        let first = next().await?.ok_or_else(|| object_store::Error::Generic {
            store: "weir worker",
            source: format!("{} answered a read with nothing", self.address).into(),
        })?;
        let meta: FileMeta = serde_json::from_slice(&first.app_metadata).map_err(|e| {
            object_store::Error::Generic {
                store: "weir worker",
                source: Box::new(e),
            }
        })?;
        let mut chunks = Vec::new();
        while let Some(message) = next().await? {
            chunks.push(message.data_body);
        }
        // One message (most reads) is taken as it came, without a copy.
        let body = match chunks.len() {
            1 => chunks.pop().expect("one chunk"),
            _ => {
                let mut bytes = BytesMut::with_capacity((meta.end - meta.start) as usize);
                chunks
                    .iter()
                    .for_each(|chunk| bytes.extend_from_slice(chunk));
                bytes.freeze()
            }
        };
        let chunks: BoxStream<'static, object_store::Result<Bytes>> =
            futures::stream::once(async move { Ok(body) }).boxed();
        Ok(GetResult {
            payload: GetResultPayload::Stream(chunks),
            meta: ObjectMeta {
                location: location.clone(),
                last_modified: Default::default(),
                size: meta.size,
                e_tag: None,
                version: None,
            },
            range: Range {
                start: meta.start,
                end: meta.end,
            },
            attributes: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        locations.map(|_| Err(Self::unsupported("delete"))).boxed()
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        futures::stream::once(async { Err(Self::unsupported("list")) }).boxed()
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> object_store::Result<ListResult> {
        Err(Self::unsupported("list"))
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> object_store::Result<()> {
        Err(Self::unsupported("copy"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_partition_files_are_served() {
        for good in [
            "job-1/d0/p3-a0.ipc",
            "a1b2c3/d12/p0-a7.parquet",
            "job_x.2/d1/p10-a2.ipc",
        ] {
            assert!(partition_file_path(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "job/d0",
            "../d0/p0-a0.ipc",
            "job/../p0-a0.ipc",
            "job/d0/p0-a0.ipc/more",
            "job/d0/../../etc/passwd",
            "job/dx/p0-a0.ipc",
            "job/d0/p0-a0.txt",
            "job/d0/p0.ipc",
            "job/d0/q0-a0.ipc",
            ".hidden/d0/p0-a0.ipc",
            "/job/d0/p0-a0.ipc",
            "job/d0/p-a0.ipc",
        ] {
            assert!(partition_file_path(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn reads_ask_for_what_the_reader_wants() {
        let bounded = GetOptions {
            range: Some(GetRange::Bounded(3..9)),
            ..Default::default()
        };
        assert_eq!(Wanted::of(&bounded), Wanted::Bounded(3, 9));
        let head = GetOptions {
            head: true,
            ..Default::default()
        };
        assert_eq!(Wanted::of(&head), Wanted::Size);
        for wanted in [
            Wanted::Size,
            Wanted::All,
            Wanted::Bounded(1, 2),
            Wanted::From(5),
            Wanted::Last(16),
        ] {
            assert_eq!(Wanted::of(&wanted.options()), wanted);
        }
    }
}
