//! The cluster's control plane, as Flink's JobManager and TaskManagers
//! have it: a coordinator whose resource manager takes the slots workers
//! register, and workers that keep telling it they are alive. Both sides
//! watch the other: the coordinator declares a worker lost after the
//! heartbeat timeout without a heartbeat, and a worker that hears nothing
//! from its coordinator for as long registers again.
//!
//! Jobs do not run on workers yet: this is the part of the cluster that
//! knows which workers and slots exist.

pub mod coordinator;
pub mod worker;

use std::net::SocketAddr;
use std::time::Duration;

use crate::{Error, Result};

/// The gRPC messages and services, generated from `proto/cluster.proto`.
#[allow(
    missing_docs,
    unused_qualifications,
    clippy::all,
    clippy::pedantic,
    clippy::restriction
)]
pub mod proto {
    tonic::include_proto!("weir.cluster");
}

/// The weir version of this process: a coordinator takes workers of its
/// own version only.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// How often workers send heartbeats, and how long each side waits for
/// the other before it counts it as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeats {
    /// Between two heartbeats of a worker.
    pub interval: Duration,
    /// Without a heartbeat (or an answer to one) until the other side is
    /// lost.
    pub timeout: Duration,
}

impl Default for Heartbeats {
    /// Flink's defaults scaled down five times (`heartbeat.interval` 10 s,
    /// `heartbeat.timeout` 50 s): lost workers fail over within seconds.
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
        }
    }
}

/// The address a coordinator listens on, refusing one beyond loopback:
/// those need a shared-secret token, which this weir cannot check yet.
///
/// # Errors
/// [`Error::Cluster`] for an address that does not parse, or is not a
/// loopback one.
pub fn loopback_address(bind: &str) -> Result<SocketAddr> {
    let address: SocketAddr = bind
        .parse()
        .map_err(|e| Error::Cluster(format!("'{bind}' is not HOST:PORT ({e})")))?;
    if !address.ip().is_loopback() {
        return Err(Error::Cluster(format!(
            "not binding to {bind}: listening beyond loopback needs an access token, which this \
             weir cannot check yet; bind to 127.0.0.1 and reach it through a tunnel"
        )));
    }
    Ok(address)
}
