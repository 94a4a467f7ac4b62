//! Where checkpoints live: state files (Arrow IPC) and checkpoint metadata
//! (JSON) under a checkpoint directory, a local path or any object store
//! URL (`execution.checkpointing.dir`).
//!
//! A state file records its length and CRC-32 in the metadata that names
//! it, so a truncated or damaged file is a typed error
//! ([`Error::CheckpointCorrupt`]) and a missing one another
//! ([`Error::CheckpointNotFound`]): restoring falls back to an older
//! checkpoint on either, never silently to an empty state.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::store_root::StoreRoot;
use crate::{Error, Result};

/// A state file written for a checkpoint, as its metadata names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateFile {
    /// The file's path under the checkpoint directory.
    pub path: String,
    /// Its length in bytes.
    pub bytes: u64,
    /// The CRC-32 of its bytes.
    pub crc32: u32,
    /// The rows it holds.
    pub rows: u64,
}

/// The checkpoint directory.
#[derive(Debug, Clone)]
pub struct CheckpointStore {
    root: StoreRoot,
    options: BTreeMap<String, String>,
}

impl CheckpointStore {
    /// Opens the checkpoint directory at `url` with store `options` (see
    /// [`StoreRoot::try_new`]).
    ///
    /// # Errors
    /// When the URL is not supported or the directory cannot be created.
    pub fn try_new(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        Ok(Self {
            root: StoreRoot::try_new(url, "checkpoint", options)?,
            options: options.clone(),
        })
    }

    /// Opens another directory, `url`, with this one's store options (a
    /// savepoint's, next to the checkpoints).
    ///
    /// # Errors
    /// As [`CheckpointStore::try_new`].
    pub fn open(&self, url: &str) -> Result<Self> {
        Self::try_new(url, &self.options)
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &str {
        self.root.url()
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        self.root.store()
    }

    /// Writes `batches` (all of `schema`) as the Arrow IPC file `path`.
    ///
    /// # Errors
    /// When the batches cannot be encoded or the file cannot be written.
    pub async fn write_state(
        &self,
        path: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<StateFile> {
        let mut buffer = Vec::new();
        {
            let mut writer = FileWriter::try_new(&mut buffer, schema)?;
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
        }
        let file = StateFile {
            path: path.to_string(),
            bytes: buffer.len() as u64,
            crc32: crc32fast::hash(&buffer),
            rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
        };
        self.store()
            .put(&Path::from(path), PutPayload::from(buffer))
            .await?;
        Ok(file)
    }

    /// The batches of a state file, checked against its length and
    /// checksum.
    ///
    /// # Errors
    /// [`Error::CheckpointNotFound`] when the file is gone,
    /// [`Error::CheckpointCorrupt`] when it does not match its metadata or
    /// cannot be decoded.
    pub async fn read_state(&self, file: &StateFile) -> Result<Vec<RecordBatch>> {
        let bytes = self.read(&file.path).await?;
        let corrupt = |reason: String| Error::CheckpointCorrupt {
            path: self.url_of(&file.path),
            reason,
        };
        if bytes.len() as u64 != file.bytes {
            return Err(corrupt(format!(
                "{} bytes, the checkpoint recorded {}",
                bytes.len(),
                file.bytes
            )));
        }
        if crc32fast::hash(&bytes) != file.crc32 {
            return Err(corrupt("its checksum does not match".to_string()));
        }
        let reader =
            FileReader::try_new(Cursor::new(bytes), None).map_err(|e| corrupt(e.to_string()))?;
        reader
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))
    }

    /// Writes a small file (checkpoint metadata) whole.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub async fn write_file(&self, path: &str, bytes: Vec<u8>) -> Result<()> {
        self.store()
            .put(&Path::from(path), PutPayload::from(bytes))
            .await?;
        Ok(())
    }

    /// The bytes of file `path`.
    ///
    /// # Errors
    /// [`Error::CheckpointNotFound`] when it does not exist; the store's
    /// error otherwise.
    pub async fn read(&self, path: &str) -> Result<Bytes> {
        match self.store().get(&Path::from(path)).await {
            Ok(file) => Ok(file.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(Error::CheckpointNotFound {
                path: self.url_of(path),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// The paths of the files under `prefix`.
    ///
    /// # Errors
    /// When the store cannot list them.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let prefix = Path::from(prefix);
        let files: Vec<_> = self.store().list(Some(&prefix)).try_collect().await?;
        Ok(files.into_iter().map(|f| f.location.to_string()).collect())
    }

    /// Removes every file under `prefix`.
    ///
    /// # Errors
    /// When the files cannot be listed or deleted.
    pub async fn remove(&self, prefix: &str) -> Result<()> {
        self.root.remove_prefix(prefix).await
    }

    /// Removes file `path` (gone already is fine).
    ///
    /// # Errors
    /// When it cannot be deleted.
    pub async fn remove_file(&self, path: &str) -> Result<()> {
        match self.store().delete(&Path::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The URL of `path`, for messages.
    pub fn url_of(&self, path: &str) -> String {
        format!("{}/{path}", self.url().trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1, 2, 3]))])
            .expect("batch")
    }

    #[tokio::test]
    async fn state_files_read_back_and_damage_is_typed() {
        let dir = tempfile::tempdir().expect("dir");
        let store = CheckpointStore::try_new(dir.path().to_str().expect("utf-8"), &BTreeMap::new())
            .expect("store");
        let batch = batch();
        let file = store
            .write_state(
                "job/chk-1/state.arrow",
                &batch.schema(),
                std::slice::from_ref(&batch),
            )
            .await
            .expect("writes");
        assert_eq!(file.rows, 3);
        assert_eq!(store.read_state(&file).await.expect("reads"), vec![batch]);
        // Damaged in place: the checksum says so.
        let path = dir.path().join("job/chk-1/state.arrow");
        let mut bytes = std::fs::read(&path).expect("reads");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, &bytes).expect("writes");
        let e = store.read_state(&file).await.expect_err("corrupt");
        assert!(matches!(e, Error::CheckpointCorrupt { .. }), "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");
        // Truncated.
        std::fs::write(&path, &bytes[..10]).expect("writes");
        let e = store.read_state(&file).await.expect_err("truncated");
        assert!(
            e.to_string().contains("10 bytes, the checkpoint recorded"),
            "{e}"
        );
        // Gone.
        store.remove("job/chk-1").await.expect("removes");
        let e = store.read_state(&file).await.expect_err("gone");
        assert!(matches!(e, Error::CheckpointNotFound { .. }), "{e}");
        assert!(store.list("job").await.expect("lists").is_empty());
    }
}
