//! Job configuration: Flink-style `key = value` options with defaults that
//! work with no configuration at all.

use std::collections::BTreeMap;
use std::time::Duration;

use weir_engine::graph::{JobBuilder, JobGraph, RuntimeMode, ShuffleMode};
use weir_exchange::blocking::{BlockingFormat, BlockingOptions, Compression};
use weir_exchange::channel::ChannelBounds;
use weir_exchange::store_url::STORE_OPTIONS;

use weir_engine::duration::parse_duration;
use weir_engine::memory::parse_bytes;
use weir_engine::suggest::did_you_mean;

use crate::failover::restart::RestartStrategy;
use crate::{Error, Result};

/// Which regions restart when a task fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailoverKind {
    /// The failed region, the producers of lost partitions, and the
    /// consumers of non-deterministic producers (default).
    #[default]
    Region,
    /// Every region of the job.
    RestartAll,
}

/// How a job runs.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Parallelism of vertices that do not set their own.
    pub parallelism: usize,
    /// Slots of the embedded worker.
    pub slots: usize,
    /// Batch or streaming (`None`: streaming when a source is unbounded).
    pub runtime_mode: Option<RuntimeMode>,
    /// Exchange mode of edges that do not set their own (batch jobs).
    pub shuffle_mode: ShuffleMode,
    /// Operator chaining on or off.
    pub chaining: bool,
    /// Number of key groups.
    pub max_parallelism: usize,
    /// Where blocking partitions are written (directory or URL).
    pub shuffle_root: String,
    /// Endpoint, region and credentials of the object store URLs of the
    /// shuffle root, checkpoints and savepoints (`s3.*` keys; otherwise
    /// from the environment).
    pub store_options: BTreeMap<String, String>,
    /// Format, compression and buffering of blocking partitions.
    pub blocking: BlockingOptions,
    /// Bounds of pipelined channels.
    pub channel: ChannelBounds,
    /// Which regions restart on failure.
    pub failover: FailoverKind,
    /// When and how often they may restart.
    pub restart: RestartStrategy,
    /// Memory for the stateful operators of one slot, in bytes; the tasks
    /// sharing a slot split it.
    pub memory_per_slot: usize,
    /// Whether operators over budget spill (otherwise they fail).
    pub spill: bool,
    /// Where spill files go (a job's files are under a directory of its
    /// own, removed when the job ends).
    pub spill_dir: std::path::PathBuf,
    /// How often streaming jobs take checkpoints (`None`: never).
    pub checkpoint_interval: Option<Duration>,
    /// Where checkpoints are written (directory or URL).
    pub checkpoint_dir: String,
    /// How many completed checkpoints are kept.
    pub checkpoints_retained: usize,
    /// How long a checkpoint may take before it expires and counts as
    /// failed (Flink's `execution.checkpointing.timeout`).
    pub checkpoint_timeout: Duration,
    /// How many checkpoints in a row may fail before the job fails over
    /// (restarts from its latest completed checkpoint under its restart
    /// strategy), as Flink's tolerable failed checkpoints.
    pub tolerable_failed_checkpoints: u32,
    /// Where savepoints asked for without a directory go, each into a
    /// directory of its own (`savepoint-<job>-<n>`).
    pub savepoint_dir: Option<String>,
    /// A savepoint (or retained checkpoint) the job starts from.
    pub restore_from: Option<String>,
    /// Whether state of the savepoint that fits no vertex of the job may
    /// be dropped (otherwise the job does not start).
    pub allow_non_restored: bool,
    /// On a cluster: how long a region waits for the slots it needs before
    /// its attempts fail (and restart under the restart strategy), as
    /// Flink's `slot.request.timeout`.
    pub slot_request_timeout: Duration,
}

/// The least default memory per slot: 256 MiB.
pub const MIN_DEFAULT_MEMORY_PER_SLOT: usize = 256 << 20;

/// The default memory per slot: half the machine's memory split over one
/// slot per core (as DuckDB and Flink give most of a machine's memory to
/// their operators), but at least [`MIN_DEFAULT_MEMORY_PER_SLOT`].
pub fn default_memory_per_slot(cores: usize) -> usize {
    physical_memory()
        .map_or(0, |bytes| bytes / 2 / cores.max(1))
        .max(MIN_DEFAULT_MEMORY_PER_SLOT)
}

/// The machine's memory in bytes, where the system says (Linux).
fn physical_memory() -> Option<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: usize = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

impl Default for JobConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self {
            parallelism: cores,
            slots: cores,
            runtime_mode: None,
            shuffle_mode: ShuffleMode::AllBlocking,
            chaining: true,
            max_parallelism: weir_exchange::partitioner::DEFAULT_MAX_PARALLELISM,
            shuffle_root: std::env::temp_dir()
                .join("weir-shuffle")
                .display()
                .to_string(),
            store_options: BTreeMap::new(),
            blocking: BlockingOptions::default(),
            channel: ChannelBounds::default(),
            failover: FailoverKind::Region,
            restart: RestartStrategy::default(),
            memory_per_slot: default_memory_per_slot(cores),
            spill: true,
            spill_dir: std::env::temp_dir().join("weir-spill"),
            checkpoint_interval: None,
            checkpoint_dir: std::env::temp_dir()
                .join("weir-checkpoints")
                .display()
                .to_string(),
            checkpoints_retained: 1,
            checkpoint_timeout: Duration::from_secs(600),
            tolerable_failed_checkpoints: 0,
            savepoint_dir: None,
            restore_from: None,
            allow_non_restored: false,
            slot_request_timeout: Duration::from_secs(300),
        }
    }
}

/// Every configuration key, with what it takes.
pub const CONFIG_KEYS: &[(&str, &str)] = &[
    (
        "parallelism.default",
        "default parallelism of vertices (number)",
    ),
    ("worker.slots", "slots of the embedded worker (number)"),
    (
        "execution.runtime-mode",
        "batch | streaming (streaming pipelines every exchange)",
    ),
    (
        "execution.batch-shuffle-mode",
        "all-blocking | all-pipelined | auto",
    ),
    ("pipeline.operator-chaining", "true | false"),
    ("pipeline.max-parallelism", "number of key groups (number)"),
    (
        "shuffle.root",
        "directory or URL (file://, s3://, memory://) of blocking partitions",
    ),
    ("shuffle.format", "ipc | parquet"),
    ("shuffle.compression", "none | lz4 | zstd"),
    (
        "shuffle.buffer-bytes",
        "bytes buffered per blocking partition before a block is written",
    ),
    (
        "exchange.channel.max-bytes",
        "bytes buffered per pipelined channel",
    ),
    (
        "exchange.channel.max-batches",
        "batches buffered per pipelined channel",
    ),
    (
        "memory.per-slot",
        "memory of the stateful operators of one slot (e.g. 256 mb, 1 gb, 4096)",
    ),
    (
        "spill.enabled",
        "true | false: spill when over budget, or fail",
    ),
    ("spill.dir", "directory of spill files"),
    (
        "execution.checkpointing.interval",
        "how often streaming jobs take checkpoints (e.g. 10 s); none by default",
    ),
    (
        "execution.checkpointing.dir",
        "directory or URL (file://, s3://, memory://) checkpoints are written to",
    ),
    (
        "execution.checkpointing.num-retained",
        "completed checkpoints kept (number, default 1)",
    ),
    (
        "execution.checkpointing.timeout",
        "how long a checkpoint may take before it fails (e.g. 1 min); 10 min by default",
    ),
    (
        "execution.checkpointing.tolerable-failed-checkpoints",
        "checkpoints that may fail in a row before the job fails over (number, default 0)",
    ),
    (
        "execution.checkpointing.savepoint-dir",
        "directory or URL savepoints asked for without one go to, each into a directory of its own",
    ),
    (
        "execution.savepoint.path",
        "a savepoint (directory or URL) the job starts from",
    ),
    (
        "execution.savepoint.ignore-unclaimed-state",
        "true | false: start vertices the savepoint has no state of afresh",
    ),
    (
        "s3.endpoint",
        "endpoint of s3:// shuffle roots, checkpoints and savepoints (default: AWS_ENDPOINT_URL, or AWS)",
    ),
    ("s3.region", "their region (default: AWS_REGION)"),
    (
        "s3.access-key-id",
        "their credentials (default: AWS_ACCESS_KEY_ID, ...)",
    ),
    (
        "s3.secret-access-key",
        "the secret key of those credentials",
    ),
    ("s3.session-token", "the session token of those credentials"),
    ("s3.allow-http", "true | false: allow an http:// endpoint"),
    ("failover.strategy", "region | restart-all"),
    (
        "restart-strategy.type",
        "none | fixed-delay | exponential-delay | failure-rate",
    ),
    (
        "restart-strategy.fixed-delay.attempts",
        "restarts before the job fails",
    ),
    (
        "restart-strategy.fixed-delay.delay",
        "wait before each restart (e.g. 1 s, 200 ms)",
    ),
    (
        "restart-strategy.exponential-delay.initial-backoff",
        "first wait",
    ),
    (
        "restart-strategy.exponential-delay.max-backoff",
        "longest wait",
    ),
    (
        "restart-strategy.exponential-delay.backoff-multiplier",
        "growth per restart",
    ),
    (
        "restart-strategy.exponential-delay.attempts",
        "restarts before the job fails",
    ),
    (
        "restart-strategy.failure-rate.max-failures-per-interval",
        "failures tolerated per interval",
    ),
    (
        "restart-strategy.failure-rate.failure-rate-interval",
        "the interval",
    ),
    (
        "restart-strategy.failure-rate.delay",
        "wait before each restart",
    ),
    (
        "slot.request.timeout",
        "on a cluster: how long a region waits for free slots before it fails (default 5 min)",
    ),
];

impl JobConfig {
    /// Builds `job` as these settings say: runtime mode, shuffle mode,
    /// chaining and key groups.
    ///
    /// # Errors
    /// As [`JobBuilder::build`].
    pub fn build(&self, job: JobBuilder) -> weir_engine::Result<JobGraph> {
        job.with_chaining(self.chaining)
            .with_max_parallelism(self.max_parallelism)
            .with_runtime_mode(self.runtime_mode)
            .build(self.shuffle_mode, self.slots)
    }

    /// Sets one option by key.
    ///
    /// # Errors
    /// An unknown key (the message lists the valid ones) or a value that does
    /// not parse.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let bad = |what: &str| Error::Config(format!("'{key}' = '{value}': expected {what}"));
        let number = || {
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| bad("a whole number"))
        };
        let positive = || {
            number().and_then(|n| {
                if n == 0 {
                    Err(bad("a number above 0"))
                } else {
                    Ok(n)
                }
            })
        };
        let duration =
            || parse_duration(value).ok_or_else(|| bad("a duration such as '1 s' or '200 ms'"));
        match key {
            "parallelism.default" => self.parallelism = positive()?,
            // Bounded inputs run in either mode; streaming pipelines every
            // exchange, so every task is deployed at once.
            "execution.runtime-mode" => {
                self.runtime_mode = Some(value.parse().map_err(|_| bad("batch or streaming"))?)
            }
            "worker.slots" => self.slots = positive()?,
            "execution.batch-shuffle-mode" => {
                self.shuffle_mode = value.parse().map_err(Error::Config)?
            }
            "pipeline.operator-chaining" => {
                self.chaining = value.parse().map_err(|_| bad("true or false"))?;
            }
            "pipeline.max-parallelism" => self.max_parallelism = positive()?,
            "shuffle.root" => self.shuffle_root = value.to_string(),
            "shuffle.format" => {
                self.blocking.format = value
                    .parse::<BlockingFormat>()
                    .map_err(|_| bad("ipc or parquet"))?;
            }
            "shuffle.compression" => {
                self.blocking.compression = value
                    .parse::<Compression>()
                    .map_err(|_| bad("none, lz4 or zstd"))?;
            }
            "shuffle.buffer-bytes" => self.blocking.buffer_bytes = positive()?,
            "exchange.channel.max-bytes" => self.channel.max_bytes = positive()?,
            "exchange.channel.max-batches" => self.channel.max_batches = positive()?,
            "memory.per-slot" => {
                self.memory_per_slot = parse_bytes(value)
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("a size such as '64 mb', '1 gb' or '4096'"))?;
            }
            "spill.enabled" => self.spill = value.parse().map_err(|_| bad("true or false"))?,
            "spill.dir" => self.spill_dir = value.into(),
            "execution.checkpointing.interval" => {
                self.checkpoint_interval = Some(duration()?).filter(|d| !d.is_zero())
            }
            "execution.checkpointing.dir" => self.checkpoint_dir = value.to_string(),
            "slot.request.timeout" => self.slot_request_timeout = duration()?,
            "execution.checkpointing.num-retained" => self.checkpoints_retained = positive()?,
            "execution.checkpointing.timeout" => {
                self.checkpoint_timeout = Some(duration()?)
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| bad("a duration above zero, such as '1 min'"))?
            }
            "execution.checkpointing.tolerable-failed-checkpoints" => {
                self.tolerable_failed_checkpoints = value
                    .trim()
                    .parse()
                    .map_err(|_| bad("a number of checkpoints"))?;
            }
            "execution.checkpointing.savepoint-dir" => self.savepoint_dir = Some(value.to_string()),
            "execution.savepoint.path" => self.restore_from = Some(value.to_string()),
            "execution.savepoint.ignore-unclaimed-state" => {
                self.allow_non_restored = value.parse().map_err(|_| bad("true or false"))?
            }
            _ if STORE_OPTIONS.contains(&key) => {
                if key == "s3.allow-http" {
                    value.parse::<bool>().map_err(|_| bad("true or false"))?;
                }
                self.store_options
                    .insert(key.to_string(), value.to_string());
            }
            "failover.strategy" => {
                self.failover = match value {
                    "region" => FailoverKind::Region,
                    "restart-all" | "full" => FailoverKind::RestartAll,
                    _ => return Err(bad("region or restart-all")),
                }
            }
            "restart-strategy.type" => {
                self.restart = match value {
                    "none" | "disable" => RestartStrategy::None,
                    "fixed-delay" => RestartStrategy::fixed_delay_default(),
                    "exponential-delay" => RestartStrategy::exponential_delay_default(),
                    "failure-rate" => RestartStrategy::failure_rate_default(),
                    _ => return Err(bad("none, fixed-delay, exponential-delay or failure-rate")),
                }
            }
            _ if key.starts_with("restart-strategy.") => {
                self.set_restart(key, value, number, duration)?
            }
            _ => {
                let valid: Vec<_> = CONFIG_KEYS.iter().map(|(k, _)| *k).collect();
                return Err(Error::Config(format!(
                    "unknown option '{key}' ({}valid: {})",
                    did_you_mean(key, valid.iter().copied()),
                    valid.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn set_restart(
        &mut self,
        key: &str,
        value: &str,
        number: impl Fn() -> Result<usize>,
        duration: impl Fn() -> Result<Duration>,
    ) -> Result<()> {
        let strategy = self.restart.name();
        let mismatch = || {
            Error::Config(format!(
                "'{key}' does not apply to restart strategy '{strategy}': set restart-strategy.type first"
            ))
        };
        match (
            &mut self.restart,
            key.trim_start_matches("restart-strategy."),
        ) {
            (RestartStrategy::FixedDelay { attempts, .. }, "fixed-delay.attempts") => {
                *attempts = number()? as u32
            }
            (RestartStrategy::FixedDelay { delay, .. }, "fixed-delay.delay") => {
                *delay = duration()?
            }
            (
                RestartStrategy::ExponentialDelay { initial, .. },
                "exponential-delay.initial-backoff",
            ) => {
                *initial = duration()?;
            }
            (RestartStrategy::ExponentialDelay { max, .. }, "exponential-delay.max-backoff") => {
                *max = duration()?
            }
            (
                RestartStrategy::ExponentialDelay { multiplier, .. },
                "exponential-delay.backoff-multiplier",
            ) => {
                *multiplier = value
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|m| *m >= 1.0)
                    .ok_or_else(|| {
                        Error::Config(format!("'{key}' = '{value}': expected a number >= 1"))
                    })?;
            }
            (RestartStrategy::ExponentialDelay { attempts, .. }, "exponential-delay.attempts") => {
                *attempts = number()? as u32;
            }
            (
                RestartStrategy::FailureRate { max_failures, .. },
                "failure-rate.max-failures-per-interval",
            ) => {
                *max_failures = number()? as u32;
            }
            (
                RestartStrategy::FailureRate { interval, .. },
                "failure-rate.failure-rate-interval",
            ) => {
                *interval = duration()?;
            }
            (RestartStrategy::FailureRate { delay, .. }, "failure-rate.delay") => {
                *delay = duration()?
            }
            _ if CONFIG_KEYS.iter().any(|(k, _)| *k == key) => return Err(mismatch()),
            _ => {
                let valid: Vec<_> = CONFIG_KEYS
                    .iter()
                    .filter(|(k, _)| k.starts_with("restart-strategy."))
                    .map(|(k, _)| *k)
                    .collect();
                return Err(Error::Config(format!(
                    "unknown option '{key}' ({}valid: {})",
                    did_you_mean(key, valid.iter().copied()),
                    valid.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_memory_is_half_the_machine_over_the_cores() {
        let total = physical_memory().expect("/proc/meminfo says the memory");
        assert!(total > 0);
        assert_eq!(
            default_memory_per_slot(2),
            (total / 4).max(MIN_DEFAULT_MEMORY_PER_SLOT)
        );
        assert_eq!(
            default_memory_per_slot(usize::MAX),
            MIN_DEFAULT_MEMORY_PER_SLOT
        );
    }

    #[test]
    fn unknown_keys_list_the_valid_ones() {
        let err = JobConfig::default()
            .set("paralelism", "2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown option 'paralelism'")
                && err.contains("parallelism.default")
                && !err.contains("did you mean"),
            "{err}"
        );
        let err = JobConfig::default()
            .set("restart-strategy.fixed-delay.attempt", "2")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("did you mean 'restart-strategy.fixed-delay.attempts'?"),
            "{err}"
        );
    }

    #[test]
    fn restart_options_apply_to_their_strategy() {
        let mut config = JobConfig::default();
        config.set("restart-strategy.type", "fixed-delay").unwrap();
        config
            .set("restart-strategy.fixed-delay.attempts", "7")
            .unwrap();
        config
            .set("restart-strategy.fixed-delay.delay", "250 ms")
            .unwrap();
        assert_eq!(
            config.restart,
            RestartStrategy::FixedDelay {
                attempts: 7,
                delay: Duration::from_millis(250)
            }
        );
        let err = config
            .set("restart-strategy.failure-rate.delay", "1 s")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not apply"), "{err}");
    }
}
