//! What a coordinator keeps in its state directory (a local directory or
//! an object store URL) so that its jobs outlive it: one record per
//! running job, written before the job starts and removed once it ended.
//! A coordinator started again with the same directory resumes the
//! streaming jobs it finds there from their latest checkpoint, and fails
//! the batch jobs, saying so.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use prost::Message;
use weir_exchange::StoreRoot;

use super::proto::RecordedJob;
use crate::{Error, Result};

/// The directory of the records.
const JOBS: &str = "jobs";

/// The records of a coordinator's running jobs.
#[derive(Debug)]
pub struct JobRecords {
    root: StoreRoot,
}

impl JobRecords {
    /// The records under `url`, opened with store `options`.
    ///
    /// # Errors
    /// The URL is not one of a store weir reads.
    pub fn try_new(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let root = StoreRoot::try_new(url, "coordinator state", options)?;
        Ok(Self { root })
    }

    fn path(job_id: &str) -> Path {
        Path::from(format!("{JOBS}/{job_id}.pb"))
    }

    /// Records `job`, replacing its earlier record.
    ///
    /// # Errors
    /// The record cannot be written.
    pub async fn write(&self, job: &RecordedJob) -> Result<()> {
        self.root
            .store()
            .put(&Self::path(&job.job_id), job.encode_to_vec().into())
            .await
            .map(|_| ())
            .map_err(|e| self.error("write", &e))
    }

    /// Forgets job `job_id` (it ended).
    pub async fn remove(&self, job_id: &str) {
        match self.root.store().delete(&Self::path(job_id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!("{}", self.error("remove", &e)),
        }
    }

    /// Every job recorded, by id.
    ///
    /// # Errors
    /// The records cannot be listed or read; one does not decode.
    pub async fn all(&self) -> Result<Vec<RecordedJob>> {
        let store = self.root.store();
        let files: Vec<_> = store
            .list(Some(&Path::from(JOBS)))
            .try_collect()
            .await
            .map_err(|e| self.error("list", &e))?;
        let mut jobs = Vec::new();
        for file in files {
            let bytes = store
                .get(&file.location)
                .await
                .map_err(|e| self.error("read", &e))?
                .bytes()
                .await
                .map_err(|e| self.error("read", &e))?;
            let job = RecordedJob::decode(bytes).map_err(|e| {
                Error::Cluster(format!(
                    "the record {} in {} does not decode: {e}",
                    file.location,
                    self.root.url()
                ))
            })?;
            jobs.push(job);
        }
        jobs.sort_by(|a, b| a.job_id.cmp(&b.job_id));
        Ok(jobs)
    }

    fn error(&self, what: &str, e: &object_store::Error) -> Error {
        Error::Cluster(format!(
            "cannot {what} the job records in {}: {e}",
            self.root.url()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::proto::JobSpec;

    #[tokio::test]
    async fn records_are_written_listed_and_removed() {
        let dir = tempfile::tempdir().expect("a directory");
        let records = JobRecords::try_new(&dir.path().display().to_string(), &BTreeMap::new())
            .expect("opens");
        assert!(records.all().await.expect("lists").is_empty());
        for id in ["job-b", "job-a"] {
            let job = RecordedJob {
                job_id: id.to_string(),
                name: "n".to_string(),
                spec: Some(JobSpec {
                    script: "INSERT INTO t SELECT 1".to_string(),
                    ..JobSpec::default()
                }),
                checkpoints: format!("file:///c/{id}"),
                resumes: Vec::new(),
            };
            records.write(&job).await.expect("writes");
        }
        let all = records.all().await.expect("lists");
        let ids: Vec<&str> = all.iter().map(|j| j.job_id.as_str()).collect();
        assert_eq!(ids, ["job-a", "job-b"]);
        assert_eq!(all[0].checkpoints, "file:///c/job-a");
        records.remove("job-a").await;
        records.remove("job-a").await;
        assert_eq!(records.all().await.expect("lists").len(), 1);
    }
}
