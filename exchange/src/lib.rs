//! # weir-exchange
//!
//! The exchange layer of weir: it moves [`Event`]s between the subtasks of a
//! job and knows nothing about the operators that produce or consume them.
//!
//! - [`event`]: what flows on every edge — record batches, watermarks,
//!   checkpoint barriers and the end of a partition.
//! - [`partitioner`]: how a producer's output is split into subpartitions
//!   (`forward`, `hash(keys)`, `rebalance`, `rescale`, `broadcast`). Hashing is
//!   stable across processes and runs ([`hash`]).
//! - [`channel`]: pipelined local channels with credit-based backpressure,
//!   bounded in bytes and in batches.
//! - [`remote`]: pipelined channels between processes, over Arrow Flight,
//!   with credits flowing back from the consumer.
//! - [`blocking`]: blocking result partitions, written whole before they are
//!   read, as Arrow IPC or Parquet files under a [`ShuffleRoot`]: one file per
//!   producer subtask, with a per-subpartition index and checksums.
//! - [`cpu`]: the one rayon pool on which CPU work runs, and the hand-off from
//!   async (tokio) code to it.
//! - [`spill`]: local spill files of operators over their memory budget.
//! - [`checkpoint_store`]: checkpoint state files and metadata, checked
//!   against their recorded length and checksum.
//! - [`job_owner`]: which process a job's directories belong to, so that
//!   what a killed job left behind is removed and nothing a live job uses.
//! - [`store_url`]: object store URLs (local paths, `file://`, `s3://`,
//!   `memory://`) for shuffle roots and connectors.
//!
//! Errors that drive failover ([`Error::PartitionNotFound`],
//! [`Error::PartitionCorrupt`]) are typed variants, never strings.

pub mod blocking;
pub mod channel;
pub mod checkpoint_store;
pub mod cpu;
mod error;
pub mod event;
pub mod hash;
pub mod job_owner;
pub mod partitioner;
pub mod remote;
mod shuffle_root;
pub mod spill;
mod store_root;
pub mod store_url;

pub use error::{Error, Result};
pub use event::Event;
pub use partitioner::{PartitionRouter, Partitioner};
pub use shuffle_root::{ResultPartitionId, ShuffleRoot};
pub use store_root::StoreRoot;
pub use store_url::StoreUrl;
