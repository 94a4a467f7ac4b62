//! The transactions of an exactly-once Kafka sink
//! (`sink.delivery-guarantee` = `exactly-once`), as Flink's Kafka sink
//! keeps them.
//!
//! Each subtask writes the rows between two checkpoints in one Kafka
//! transaction, under the transactional id `<prefix>-<subtask>-<n>`, where
//! `n` counts the subtask's transactions. At a barrier the subtask flushes
//! its transaction and hands it to the [`Ledger`], which commits it once
//! the checkpoint completes (with every earlier one of the subtask whose
//! checkpoint failed), or when the job ends, for what followed the last
//! checkpoint. A failed job's transactions are aborted.
//!
//! A producer that starts with a transactional id fences every producer
//! that used the id before, and Kafka aborts their open transaction. So a
//! subtask's new attempt, and a job resumed from a checkpoint, first fence
//! every id that the attempts after the checkpoint may have used: a
//! subtask never has more than [`MAX_UNCOMMITTED`] transactions after its
//! last committed one.
//!
//! A job that resumes from a checkpoint in another process than the one
//! that took it commits the checkpoint's transactions that process may
//! not have committed before it died: with the producer id and epoch the
//! checkpoint recorded, as Flink does, by sending Kafka's EndTxn request
//! itself. Committing one that was committed changes nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{Producer, ThreadedProducer};
use serde::{Deserialize, Serialize};

use rdkafka::config::RDKafkaLogLevel;

use super::client::{BrokerWatch, ClientSettings, ProducerId, client_error, off_workers, release};
use super::end_txn;
use crate::{Error, Result};

/// How many transactions of one subtask may wait for their checkpoint to
/// complete, the open one included: one more (a run of failed checkpoints)
/// fails the subtask, which restarts from the latest completed checkpoint.
pub const MAX_UNCOMMITTED: u64 = 8;

/// A transactional producer.
pub type TransactionalProducer = ThreadedProducer<BrokerWatch>;

/// What a subtask's checkpoint commits: its transactions up to `number`
/// (those it did not commit yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committable {
    /// The prefix of the transactional ids.
    pub prefix: String,
    /// The subtask.
    pub subtask: usize,
    /// The subtask's last transaction before the checkpoint.
    pub number: u64,
    /// Its transactions that wait for a commit, for a job that resumes
    /// from the checkpoint in another process.
    #[serde(default)]
    pub waiting: Vec<WaitingTransaction>,
}

/// A flushed transaction, as another process can commit it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingTransaction {
    /// Its number.
    pub number: u64,
    /// Its producer's id and epoch (`None`: librdkafka did not say).
    pub producer: Option<ProducerId>,
    /// The first and last offset written, by partition.
    pub offsets: BTreeMap<i32, (i64, i64)>,
}

/// A transaction that Kafka committed: its id and the offsets its
/// messages got, per partition (first and last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedTransaction {
    /// Its transactional id.
    pub transactional_id: String,
    /// The first and last offset written, by partition.
    pub offsets: BTreeMap<i32, (i64, i64)>,
}

/// How many of the latest committed transactions a ledger keeps.
const COMMITS_KEPT: usize = 10_000;

/// A transaction flushed and waiting for its commit.
struct Prepared {
    attempt: u32,
    producer: Arc<TransactionalProducer>,
}

impl Prepared {
    /// Where its messages went, as its producer recorded them.
    fn offsets(&self) -> BTreeMap<i32, (i64, i64)> {
        self.producer
            .context()
            .written()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// What the ledger knows of one subtask's transactions.
#[derive(Default)]
struct SubtaskLedger {
    /// Flushed transactions waiting for a commit, by number.
    prepared: BTreeMap<u64, Prepared>,
    /// The number of its last committed transaction (0: none).
    committed: u64,
    /// The highest number an attempt began, or may have begun.
    begun: u64,
}

/// The transactions of a sink's subtasks, shared by the sink's factory
/// (which commits and aborts them) and its subtasks (which write them).
pub struct Ledger {
    prefix: String,
    settings: ClientSettings,
    /// Properties every producer of the sink gets.
    overrides: Vec<(&'static str, String)>,
    subtasks: Mutex<HashMap<usize, SubtaskLedger>>,
    /// The latest committed transactions, oldest first.
    committed: Mutex<VecDeque<CommittedTransaction>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// The ledger of a sink whose transactional ids start with `prefix`,
    /// its producers made with `settings` and `overrides`.
    pub fn new(
        prefix: String,
        settings: ClientSettings,
        overrides: Vec<(&'static str, String)>,
    ) -> Self {
        Self {
            prefix,
            settings,
            overrides,
            subtasks: Mutex::default(),
            committed: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<usize, SubtaskLedger>> {
        self.subtasks.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn transactional_id(prefix: &str, subtask: usize, number: u64) -> String {
        format!("{prefix}-{subtask}-{number}")
    }

    /// The transactions committed so far (the latest 10,000), in the
    /// order of their commits.
    pub fn committed(&self) -> Vec<CommittedTransaction> {
        self.committed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// A producer with transactional id `id`, which fenced every earlier
    /// producer with it (their open transaction is aborted).
    async fn fenced_producer(&self, id: String) -> Result<TransactionalProducer> {
        let mut overrides: Vec<(&str, &str)> = self
            .overrides
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect();
        overrides.push(("transactional.id", &id));
        // librdkafka logs the producer id it gets (and says it nowhere
        // else): a job resuming in another process commits with it.
        let debug = match self.settings.properties.get("debug") {
            Some(debug) => format!("{debug},eos"),
            None => "eos".to_string(),
        };
        overrides.push(("debug", &debug));
        let mut config = self.settings.config(&overrides);
        config.set_log_level(RDKafkaLogLevel::Debug);
        let producer: TransactionalProducer = config
            .create_with_context(BrokerWatch::recording_offsets())
            .map_err(|e| client_error(&e))?;
        let timeout = self.settings.timeout;
        let servers = self.settings.servers().to_string();
        off_workers(move || {
            producer
                .init_transactions(timeout)
                .map_err(|e| Error::Kafka {
                    message: format!(
                        "cannot start the transactions of '{id}' with the brokers at {servers}: {e}"
                    ),
                })?;
            Ok(producer)
        })
        .await
    }

    /// Fences the ids `numbers` of `subtask` under `prefix`: whatever
    /// transactions a dead or failed attempt left open under them are
    /// aborted.
    async fn fence(
        &self,
        prefix: &str,
        subtask: usize,
        numbers: impl Iterator<Item = u64>,
    ) -> Result<()> {
        let fencing =
            numbers.map(|n| self.fenced_producer(Self::transactional_id(prefix, subtask, n)));
        for fenced in futures::future::join_all(fencing).await {
            // Fencing was all it was for.
            release(fenced?);
        }
        Ok(())
    }

    /// Attempt `attempt` of `subtask` starts: the transactions of its
    /// earlier attempts are aborted, and the ids they may have used are
    /// fenced. Returns the number of its first transaction.
    ///
    /// # Errors
    /// When the brokers cannot be reached.
    pub async fn start(&self, subtask: usize, attempt: u32) -> Result<u64> {
        let (earlier, committed, begun) = {
            let mut ledger = self.lock();
            let entry = ledger.entry(subtask).or_default();
            // A zombie of an older attempt starting late must not take a
            // newer attempt's transactions.
            let (earlier, own): (BTreeMap<u64, Prepared>, _) = std::mem::take(&mut entry.prepared)
                .into_iter()
                .partition(|(_, p)| p.attempt < attempt);
            entry.prepared = own;
            (earlier, entry.committed, entry.begun)
        };
        for prepared in earlier.into_values() {
            abort(prepared.producer, self.settings.timeout).await;
        }
        // The first transaction's own producer fences its id.
        self.fence(&self.prefix, subtask, committed + 2..=begun)
            .await?;
        Ok(committed + 1)
    }

    /// Begins transaction `number` of `subtask`.
    ///
    /// # Errors
    /// When the subtask has too many transactions waiting for their
    /// checkpoints, or the brokers refuse.
    pub async fn begin(&self, subtask: usize, number: u64) -> Result<Arc<TransactionalProducer>> {
        {
            let mut ledger = self.lock();
            let entry = ledger.entry(subtask).or_default();
            if number > entry.committed + MAX_UNCOMMITTED {
                return Err(Error::Kafka {
                    message: format!(
                        "subtask {subtask} of the Kafka sink has {MAX_UNCOMMITTED} transactions \
                         waiting for checkpoints that did not complete: it restarts from the \
                         latest completed checkpoint"
                    ),
                });
            }
            entry.begun = entry.begun.max(number);
        }
        let id = Self::transactional_id(&self.prefix, subtask, number);
        let producer = self.fenced_producer(id.clone()).await?;
        // Asks librdkafka's own thread, and waits for it.
        off_workers(move || {
            producer.begin_transaction().map_err(|e| Error::Kafka {
                message: format!("cannot begin transaction '{id}': {e}"),
            })?;
            Ok(Arc::new(producer))
        })
        .await
    }

    /// Transaction `number` of `subtask`, flushed by attempt `attempt`,
    /// waits for its commit. Returns what commits it.
    ///
    /// # Errors
    /// When a later attempt of the subtask took over (this one is a
    /// zombie, its transaction aborted).
    pub fn prepared(
        &self,
        subtask: usize,
        attempt: u32,
        number: u64,
        producer: Arc<TransactionalProducer>,
    ) -> Result<Committable> {
        let mut ledger = self.lock();
        let prepared = &mut ledger.entry(subtask).or_default().prepared;
        if let Some(later) = prepared.get(&number).filter(|p| p.attempt > attempt) {
            release(producer);
            return Err(Error::Kafka {
                message: format!(
                    "transaction '{}' was fenced: attempt {} of the subtask took over",
                    Self::transactional_id(&self.prefix, subtask, number),
                    later.attempt
                ),
            });
        }
        prepared.insert(number, Prepared { attempt, producer });
        drop(ledger);
        Ok(self.committable(subtask, number))
    }

    /// What commits the transactions of `subtask` up to `number`.
    pub fn committable(&self, subtask: usize, number: u64) -> Committable {
        let waiting = self
            .lock()
            .get(&subtask)
            .map(|entry| {
                entry
                    .prepared
                    .range(..=number)
                    .map(|(n, prepared)| WaitingTransaction {
                        number: *n,
                        producer: prepared.producer.context().producer_id(),
                        offsets: prepared.offsets(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Committable {
            prefix: self.prefix.clone(),
            subtask,
            number,
            waiting,
        }
    }

    /// Commits the transactions of a completed checkpoint's `committables`
    /// (each with the subtask's earlier ones still waiting). `restored`:
    /// the checkpoint is one a job resumes from; what it recorded and this
    /// process does not hold was committed by the process that took it, or
    /// cannot be, and the ids its later transactions may have used are
    /// fenced.
    ///
    /// # Errors
    /// When Kafka does not commit a transaction; the job fails.
    pub async fn commit(&self, committables: &[Committable], restored: bool) -> Result<()> {
        // The last transaction of each subtask, by prefix and subtask.
        let mut last: BTreeMap<(&str, usize), u64> = BTreeMap::new();
        for committable in committables {
            let Committable {
                prefix,
                subtask,
                number,
                ..
            } = committable;
            let (due, earlier) = {
                let mut ledger = self.lock();
                let entry = ledger.entry(*subtask).or_default();
                let later = entry.prepared.split_off(&(number + 1));
                let earlier = entry.committed;
                entry.committed = entry.committed.max(*number);
                (std::mem::replace(&mut entry.prepared, later), earlier)
            };
            let held: Vec<u64> = due.keys().copied().collect();
            for (n, prepared) in due {
                let id = Self::transactional_id(&self.prefix, *subtask, n);
                self.commit_held(id, prepared).await?;
            }
            if restored {
                // A checkpoint may carry those of checkpoints that failed
                // before it, which another committable named already.
                let waiting = committable
                    .waiting
                    .iter()
                    .filter(|w| w.number > earlier && !held.contains(&w.number));
                for waiting in waiting {
                    self.resume(committable, waiting).await?;
                }
                let entry = last.entry((prefix.as_str(), *subtask)).or_default();
                *entry = (*entry).max(*number);
            }
        }
        // Only then: fencing a transaction aborts it.
        for ((prefix, subtask), number) in last {
            self.fence(prefix, subtask, number + 1..=number + MAX_UNCOMMITTED)
                .await?;
        }
        Ok(())
    }

    /// Commits a transaction this process holds.
    async fn commit_held(&self, transactional_id: String, prepared: Prepared) -> Result<()> {
        let offsets = prepared.offsets();
        // The producer ends on the blocking thread, with its transaction.
        let (producer, timeout) = (prepared.producer, self.settings.timeout);
        let id = transactional_id.clone();
        off_workers(move || {
            producer.commit_transaction(timeout).map_err(|e| {
                let fenced = matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::Fenced
                            | RDKafkaErrorCode::ProducerFenced
                            | RDKafkaErrorCode::InvalidProducerEpoch
                    )
                );
                let why = if fenced {
                    ": another producer took over its transactional id (the same job \
                     running twice, or a process thought dead), and Kafka aborted it"
                } else {
                    ""
                };
                Error::Kafka {
                    message: format!("cannot commit transaction '{id}'{why}: {e}"),
                }
            })
        })
        .await?;
        self.record(transactional_id, offsets);
        Ok(())
    }

    /// Commits a transaction of an earlier run that a checkpoint recorded.
    async fn resume(&self, committable: &Committable, waiting: &WaitingTransaction) -> Result<()> {
        let id = Self::transactional_id(&committable.prefix, committable.subtask, waiting.number);
        let plaintext = self
            .settings
            .properties
            .get("security.protocol")
            .is_none_or(|p| p.eq_ignore_ascii_case("plaintext"));
        let Some(producer) = waiting.producer.filter(|_| plaintext) else {
            tracing::warn!(
                "transaction '{id}' of the checkpoint this job resumes from cannot be committed \
                 by this process (no producer id was recorded, or the brokers are not reached \
                 in plain text): if the run that took the checkpoint ended before it \
                 committed it, its messages are not in the topic"
            );
            return Ok(());
        };
        let (servers, timeout) = (self.settings.servers().to_string(), self.settings.timeout);
        let resumed = id.clone();
        off_workers(move || end_txn::commit(&servers, &resumed, producer, timeout)).await?;
        self.record(id, waiting.offsets.clone());
        Ok(())
    }

    fn record(&self, transactional_id: String, offsets: BTreeMap<i32, (i64, i64)>) {
        tracing::info!(
            "committed Kafka transaction '{transactional_id}': offsets {}",
            offsets
                .iter()
                .map(|(p, (first, last))| format!("{p}:{first}-{last}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut committed = self.committed.lock().unwrap_or_else(|p| p.into_inner());
        if committed.len() == COMMITS_KEPT {
            committed.pop_front();
        }
        committed.push_back(CommittedTransaction {
            transactional_id,
            offsets,
        });
    }

    /// The job ended well: commits the transactions of the final attempt
    /// of every subtask (`attempts`, by subtask) and aborts the others.
    ///
    /// # Errors
    /// When Kafka does not commit a transaction.
    pub async fn commit_job(&self, attempts: &[u32]) -> Result<()> {
        for (subtask, prepared) in self.take_prepared() {
            for (number, prepared) in prepared {
                if attempts.get(subtask) == Some(&prepared.attempt) {
                    let id = Self::transactional_id(&self.prefix, subtask, number);
                    self.commit_held(id, prepared).await?;
                } else {
                    abort(prepared.producer, self.settings.timeout).await;
                }
            }
        }
        Ok(())
    }

    /// The job failed: aborts every transaction it began.
    ///
    /// # Errors
    /// When the brokers cannot be reached.
    pub async fn abort_job(&self) -> Result<()> {
        let begun: Vec<(usize, u64, u64)> = self
            .lock()
            .iter()
            .map(|(subtask, entry)| (*subtask, entry.committed, entry.begun))
            .collect();
        for (_, prepared) in self.take_prepared() {
            for prepared in prepared.into_values() {
                abort(prepared.producer, self.settings.timeout).await;
            }
        }
        // The open transactions of the last attempts.
        for (subtask, committed, begun) in begun {
            self.fence(&self.prefix, subtask, committed + 1..=begun)
                .await?;
        }
        Ok(())
    }

    fn take_prepared(&self) -> Vec<(usize, BTreeMap<u64, Prepared>)> {
        let mut ledger = self.lock();
        let mut all: Vec<_> = ledger
            .iter_mut()
            .map(|(subtask, entry)| (*subtask, std::mem::take(&mut entry.prepared)))
            .collect();
        all.sort_by_key(|(subtask, _)| *subtask);
        all
    }
}

/// Aborts the transaction of `producer`; when it cannot, Kafka aborts it
/// after `transaction.timeout.ms` (a fenced producer's is aborted already).
async fn abort(producer: Arc<TransactionalProducer>, timeout: std::time::Duration) {
    let aborted = off_workers(move || {
        producer
            .abort_transaction(timeout)
            .map_err(|e| Error::Kafka {
                message: e.to_string(),
            })
    })
    .await;
    if let Err(e) = aborted {
        tracing::warn!("a Kafka transaction could not be aborted, Kafka aborts it later: {e}");
    }
}
