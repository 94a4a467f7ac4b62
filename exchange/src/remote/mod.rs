//! Pipelined channels between processes, over Arrow Flight.
//!
//! A producer's subpartition for a consumer in another process goes into a
//! local [`pipelined_channel`](crate::channel::pipelined_channel) whose
//! receiving end waits in the producer's [`ExchangeRegistry`] under the
//! channel's [`ChannelKey`]. The consumer's process opens a Flight
//! `DoExchange` stream to the producer's ([`remote_input`]), naming the key
//! and granting credits; the producer's [`ExchangeService`] sends one batch
//! (Arrow IPC) per credit, and the other events as application metadata.
//! The consumer grants a credit each time a batch went on into its own
//! local channel, so a slow consumer holds its producer back across
//! processes and both sides buffer no more than their channels' bounds.
//!
//! Blocking partitions a process wrote to its own local shuffle directory
//! are served by the same service (`DoGet`) to consumers elsewhere, who
//! read them as a shuffle root ([`served_partitions`]).

mod client;
mod codec;
mod input;
mod partitions;
mod registry;
mod service;

pub use client::RemoteAccess;
pub use input::{RemoteInput, remote_input};
pub use partitions::served_partitions;
pub use registry::ExchangeRegistry;
pub use service::ExchangeService;

use serde::{Deserialize, Serialize};

/// The largest Flight message a remote channel or partition read takes.
pub const MAX_MESSAGE_BYTES: usize = 256 << 20;

/// The HTTP/2 flow-control windows of exchange calls, per stream and per
/// connection: the 64 KiB default holds a block of megabytes back for a
/// round trip every 64 KiB. Backpressure does not rest on them (a
/// producer sends a batch per credit its consumer granted).
pub const WINDOW_BYTES: (u32, u32) = (8 << 20, 32 << 20);

/// The connections `listener` accepts, with Nagle's algorithm off: a
/// small message (a credit, the metadata ahead of a block) leaves at once
/// instead of waiting for the acknowledgement of the last one. With it on,
/// reading a blocking partition over Flight took 4.6 times as long
/// (`cargo bench -p weir-bench --bench exchange -- served`).
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Which channel of which job a remote consumer reads: the subpartition
/// for `consumer` of the partition attempt `attempt` of subtask `producer`
/// writes on edge `dataset`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelKey {
    /// The job.
    pub job: String,
    /// The edge.
    pub dataset: u32,
    /// The producer subtask's index.
    pub producer: u32,
    /// The consumer subtask's index.
    pub consumer: u32,
    /// The producer's attempt.
    pub attempt: u32,
}

impl std::fmt::Display for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "job {} edge {} producer {} (attempt {}) to consumer {}",
            self.job, self.dataset, self.producer, self.attempt, self.consumer
        )
    }
}
