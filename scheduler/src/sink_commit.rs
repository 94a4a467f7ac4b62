//! The job-level commit of a job's sinks: what makes their output visible
//! or discards it, at checkpoints and when the job ends. The sinks do the
//! work ([`SinkFactory`]); this part decides when each step happens and
//! what it is given.

use std::sync::Arc;

use weir_engine::graph::{JobGraph, VertexId};
use weir_engine::{CheckpointCommit, JobCommit, SinkFactory};

use crate::checkpoint_coordinator::CheckpointMetadata;

/// One sink of a job: a vertex's sink, or the sink of its late records.
struct JobSink {
    vertex: VertexId,
    parallelism: usize,
    late: bool,
    factory: Arc<dyn SinkFactory>,
}

/// The sinks of one job.
pub struct SinkCommits {
    job_id: Arc<str>,
    sinks: Vec<JobSink>,
}

impl SinkCommits {
    /// The sinks of `job`, run as `job_id`.
    pub fn new(job_id: Arc<str>, job: &JobGraph) -> Self {
        let sinks = job
            .vertices
            .iter()
            .flat_map(|v| {
                let main = v.chain.sink.iter().map(|s| (s, false));
                let late = v.chain.late_sink.iter().map(|s| (s, true));
                main.chain(late).map(|(factory, late)| JobSink {
                    vertex: v.id,
                    parallelism: v.parallelism,
                    late,
                    factory: Arc::clone(factory),
                })
            })
            .collect();
        Self { job_id, sinks }
    }

    /// Why an unbounded job that takes no periodic checkpoints cannot run:
    /// one of its sinks commits only at checkpoints.
    pub fn needs_checkpoints(&self) -> Option<String> {
        self.sinks.iter().find_map(|sink| {
            let reason = sink.factory.needs_checkpoints()?;
            Some(format!(
                "sink '{}' writes an unbounded job only at checkpoints, and the job takes \
                 none: {reason}",
                sink.factory.name()
            ))
        })
    }

    /// Every sink of the job, with what its tasks prepared for checkpoint
    /// `metadata`.
    fn committables<'a>(
        &'a self,
        metadata: &'a CheckpointMetadata,
    ) -> impl Iterator<Item = (&'a JobSink, Vec<serde_json::Value>)> {
        self.sinks.iter().map(move |sink| {
            let committables = metadata.committables(sink.vertex.0 as usize, sink.late);
            (sink, committables)
        })
    }

    /// Every task acknowledged checkpoint `metadata`, which completes once
    /// its metadata is written at `decided_by`: has each sink record what
    /// it commits first.
    ///
    /// # Errors
    /// Why the checkpoint is declined: a sink that could not.
    pub async fn prepare_checkpoint(
        &self,
        metadata: &CheckpointMetadata,
        decided_by: &str,
    ) -> Result<(), String> {
        for (sink, committables) in self.committables(metadata) {
            let commit = self.checkpoint_commit(metadata, &committables, Some(decided_by));
            if let Err(e) = sink.factory.prepare_checkpoint_commit(&commit).await {
                return Err(format!(
                    "sink '{}' could not prepare its commit: {e}",
                    sink.factory.name()
                ));
            }
        }
        Ok(())
    }

    /// Has every sink commit what its tasks prepared for checkpoint
    /// `metadata`: one that completed (`decided_by` its metadata's URL),
    /// or one the job resumes from (`None`).
    ///
    /// # Errors
    /// What a sink could not commit; the job fails.
    pub async fn commit_checkpoint(
        &self,
        metadata: &CheckpointMetadata,
        decided_by: Option<&str>,
    ) -> Result<(), String> {
        for (sink, committables) in self.committables(metadata) {
            let commit = self.checkpoint_commit(metadata, &committables, decided_by);
            sink.factory.commit_checkpoint(&commit).await.map_err(|e| {
                format!(
                    "sink '{}' could not commit checkpoint {}: {e}",
                    sink.factory.name(),
                    metadata.checkpoint
                )
            })?;
        }
        Ok(())
    }

    fn checkpoint_commit<'a>(
        &'a self,
        metadata: &CheckpointMetadata,
        committables: &'a [serde_json::Value],
        decided_by: Option<&'a str>,
    ) -> CheckpointCommit<'a> {
        CheckpointCommit {
            job_id: &self.job_id,
            checkpoint: metadata.checkpoint,
            committables,
            decided_by,
        }
    }

    /// The job starts here: every sink records this process as the owner
    /// of what the job stages.
    ///
    /// # Errors
    /// What a sink could not record; the job fails.
    pub async fn open_job(&self) -> Result<(), String> {
        for sink in &self.sinks {
            sink.factory
                .open_job(&self.job_id)
                .await
                .map_err(|e| format!("sink '{}' could not open: {e}", sink.factory.name()))?;
        }
        Ok(())
    }

    /// The job succeeded: publishes the output of every sink, as written
    /// by the final attempt (`attempt(vertex, subtask)`) of each subtask.
    ///
    /// # Errors
    /// What a sink could not publish; the job fails.
    pub async fn commit_job(&self, attempt: impl Fn(VertexId, usize) -> u32) -> Result<(), String> {
        for sink in &self.sinks {
            let commit = JobCommit {
                job_id: Arc::clone(&self.job_id),
                attempts: (0..sink.parallelism)
                    .map(|index| attempt(sink.vertex, index))
                    .collect(),
            };
            sink.factory
                .commit_job(&commit)
                .await
                .map_err(|e| format!("sink '{}' could not commit: {e}", sink.factory.name()))?;
        }
        Ok(())
    }

    /// The job did not succeed: discards what the sinks staged (failures
    /// are logged; the job failed anyway).
    pub async fn abort_job(&self) {
        for sink in &self.sinks {
            if let Err(e) = sink.factory.abort_job(&self.job_id).await {
                tracing::warn!(
                    "sink '{}' could not remove the staged output of job {}: {e}",
                    sink.factory.name(),
                    self.job_id
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use weir_engine::checkpoint::TaskCheckpoint;
    use weir_engine::dataframe::Dataflow;
    use weir_engine::sources::SequenceGenerator;
    use weir_engine::{Sink, TaskInfo};

    use super::*;
    use crate::JobConfig;
    use crate::checkpoint_coordinator::{Carried, VertexCheckpoint};

    /// A sink that records what it is asked to do.
    #[derive(Debug, Default)]
    struct Recording {
        calls: Mutex<Vec<String>>,
        refuses: bool,
    }

    impl Recording {
        fn note(&self, call: String) -> weir_engine::Result<()> {
            self.calls.lock().expect("not poisoned").push(call);
            match self.refuses {
                true => Err(weir_engine::Error::Checkpoint("refused".to_string())),
                false => Ok(()),
            }
        }

        fn calls(&self) -> Vec<String> {
            self.calls.lock().expect("not poisoned").clone()
        }
    }

    #[async_trait]
    impl SinkFactory for Recording {
        fn name(&self) -> String {
            "recording".to_string()
        }

        fn create(&self, _: &TaskInfo) -> weir_engine::Result<Box<dyn Sink>> {
            unreachable!("no task runs here")
        }

        fn needs_checkpoints(&self) -> Option<String> {
            self.refuses
                .then(|| "it commits at checkpoints".to_string())
        }

        async fn commit_job(&self, commit: &JobCommit) -> weir_engine::Result<()> {
            self.note(format!("job {:?}", commit.attempts))
        }

        async fn prepare_checkpoint_commit(
            &self,
            commit: &CheckpointCommit<'_>,
        ) -> weir_engine::Result<()> {
            self.note(format!(
                "prepare {} {:?}",
                commit.checkpoint, commit.committables
            ))
        }

        async fn commit_checkpoint(
            &self,
            commit: &CheckpointCommit<'_>,
        ) -> weir_engine::Result<()> {
            let decided = commit.decided_by.unwrap_or("restored");
            self.note(format!(
                "commit {} {:?} {decided}",
                commit.checkpoint, commit.committables
            ))
        }

        async fn abort_job(&self, job_id: &str) -> weir_engine::Result<()> {
            self.note(format!("abort {job_id}"))
        }
    }

    /// A job of one vertex of parallelism 2 into `sink`.
    fn sinks(sink: &Arc<Recording>) -> SinkCommits {
        let flow = Dataflow::new("commits").with_parallelism(2);
        flow.read(Arc::new(SequenceGenerator::new(Some(10), 1)))
            .write(Arc::clone(sink) as Arc<dyn SinkFactory>);
        let job = JobConfig::default().build(flow.builder()).expect("builds");
        SinkCommits::new("job".into(), &job)
    }

    /// Checkpoint 4: subtask 0 prepared "a", subtask 1 nothing, and "z"
    /// was carried from a checkpoint that failed.
    fn checkpoint() -> CheckpointMetadata {
        let prepared = |c: Option<&str>| TaskCheckpoint {
            committable: c.map(|c| serde_json::json!(c)),
            ..TaskCheckpoint::default()
        };
        CheckpointMetadata {
            checkpoint: 4,
            timestamp_ms: 0,
            max_parallelism: 128,
            vertices: vec![VertexCheckpoint {
                name: "v".to_string(),
                state: String::new(),
                tasks: vec![prepared(Some("a")), prepared(None)],
                carried: Carried {
                    committables: vec![serde_json::json!("z")],
                    late_committables: Vec::new(),
                },
            }],
        }
    }

    #[tokio::test]
    async fn sinks_are_told_what_their_tasks_prepared_and_the_final_attempts() {
        let sink = Arc::new(Recording::default());
        let sinks = sinks(&sink);
        assert_eq!(sinks.needs_checkpoints(), None);
        let metadata = checkpoint();
        sinks
            .prepare_checkpoint(&metadata, "chk-4/_metadata")
            .await
            .expect("prepares");
        sinks
            .commit_checkpoint(&metadata, Some("chk-4/_metadata"))
            .await
            .expect("commits");
        sinks
            .commit_checkpoint(&metadata, None)
            .await
            .expect("commits");
        sinks
            .commit_job(|_, subtask| 10 + subtask as u32)
            .await
            .expect("commits");
        sinks.abort_job().await;
        assert_eq!(
            sink.calls(),
            vec![
                r#"prepare 4 [String("z"), String("a")]"#,
                r#"commit 4 [String("z"), String("a")] chk-4/_metadata"#,
                r#"commit 4 [String("z"), String("a")] restored"#,
                "job [10, 11]",
                "abort job",
            ]
        );
    }

    #[tokio::test]
    async fn a_sink_that_refuses_is_named() {
        let sink = Arc::new(Recording {
            refuses: true,
            ..Recording::default()
        });
        let sinks = sinks(&sink);
        let needs = sinks.needs_checkpoints().expect("it needs checkpoints");
        assert!(needs.contains("sink 'recording'"), "{needs}");
        let e = sinks
            .prepare_checkpoint(&checkpoint(), "chk-4/_metadata")
            .await
            .expect_err("refused");
        assert!(
            e.contains("sink 'recording' could not prepare its commit"),
            "{e}"
        );
        let e = sinks.commit_job(|_, _| 0).await.expect_err("refused");
        assert!(e.contains("sink 'recording' could not commit"), "{e}");
    }
}
