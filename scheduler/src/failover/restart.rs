//! Restart strategies: whether and when failed regions may run again.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// How often and how soon a job restarts its failed regions.
#[derive(Debug, Clone, PartialEq)]
pub enum RestartStrategy {
    /// Never restart: the first task failure fails the job.
    None,
    /// Restart up to `attempts` times, waiting `delay` each time.
    FixedDelay {
        /// Restarts before the job fails.
        attempts: u32,
        /// Wait before each restart.
        delay: Duration,
    },
    /// Restart up to `attempts` times, the wait growing from `initial` by
    /// `multiplier` per restart up to `max`.
    ExponentialDelay {
        /// First wait.
        initial: Duration,
        /// Longest wait.
        max: Duration,
        /// Growth per restart (at least 1).
        multiplier: f64,
        /// Restarts before the job fails.
        attempts: u32,
    },
    /// Restart as long as there were at most `max_failures` failures within
    /// the last `interval`, waiting `delay` each time.
    FailureRate {
        /// Failures tolerated within one interval.
        max_failures: u32,
        /// The sliding interval.
        interval: Duration,
        /// Wait before each restart.
        delay: Duration,
    },
}

impl Default for RestartStrategy {
    fn default() -> Self {
        Self::fixed_delay_default()
    }
}

impl RestartStrategy {
    /// Fixed delay with its defaults: 3 attempts, 1 s apart.
    pub fn fixed_delay_default() -> Self {
        RestartStrategy::FixedDelay {
            attempts: 3,
            delay: Duration::from_secs(1),
        }
    }

    /// Exponential delay with its defaults: 1 s doubling up to 1 min, 10
    /// attempts.
    pub fn exponential_delay_default() -> Self {
        RestartStrategy::ExponentialDelay {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            attempts: 10,
        }
    }

    /// Failure rate with its defaults: at most 3 failures per 5 min, 1 s
    /// apart.
    pub fn failure_rate_default() -> Self {
        RestartStrategy::FailureRate {
            max_failures: 3,
            interval: Duration::from_secs(300),
            delay: Duration::from_secs(1),
        }
    }

    /// The strategy's configuration name.
    pub fn name(&self) -> &'static str {
        match self {
            RestartStrategy::None => "none",
            RestartStrategy::FixedDelay { .. } => "fixed-delay",
            RestartStrategy::ExponentialDelay { .. } => "exponential-delay",
            RestartStrategy::FailureRate { .. } => "failure-rate",
        }
    }
}

impl fmt::Display for RestartStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartStrategy::None => f.write_str("none"),
            RestartStrategy::FixedDelay { attempts, delay } => {
                write!(f, "fixed-delay (attempts {attempts}, delay {delay:?})")
            }
            RestartStrategy::ExponentialDelay {
                initial,
                max,
                multiplier,
                attempts,
            } => write!(
                f,
                "exponential-delay (initial {initial:?}, max {max:?}, x{multiplier}, attempts {attempts})"
            ),
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => write!(
                f,
                "failure-rate (max {max_failures} per {interval:?}, delay {delay:?})"
            ),
        }
    }
}

/// Applies a [`RestartStrategy`] to the failures of one job.
#[derive(Debug)]
pub struct RestartTracker {
    strategy: RestartStrategy,
    restarts: u32,
    failures: VecDeque<Instant>,
    /// When the restart granted last is due.
    due: Option<Instant>,
}

impl RestartTracker {
    /// A tracker that has seen no failure yet.
    pub fn new(strategy: RestartStrategy) -> Self {
        Self {
            strategy,
            restarts: 0,
            failures: VecDeque::new(),
            due: None,
        }
    }

    /// Restarts granted so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// A task failed at `now`: how long to wait before restarting, or why
    /// the job must fail instead.
    ///
    /// Failures while a restart waits to happen are part of it (one cause,
    /// such as a lost worker, fails many tasks at once): they wait for the
    /// same restart and do not count again, as Flink counts them since
    /// FLIP-364.
    ///
    /// # Errors
    /// When the strategy allows no further restart; the message says which
    /// limit was reached.
    pub fn on_failure(&mut self, now: Instant) -> Result<Duration, String> {
        if let Some(due) = self.due.filter(|due| *due > now) {
            return Ok(due - now);
        }
        let delay = match &self.strategy {
            RestartStrategy::None => {
                return Err("restart strategy 'none' allows no restart".to_string());
            }
            RestartStrategy::FixedDelay { attempts, delay } => {
                if self.restarts >= *attempts {
                    return Err(format!(
                        "restart strategy {} exhausted its {attempts} attempt(s)",
                        self.strategy
                    ));
                }
                *delay
            }
            RestartStrategy::ExponentialDelay {
                initial,
                max,
                multiplier,
                attempts,
            } => {
                if self.restarts >= *attempts {
                    return Err(format!(
                        "restart strategy {} exhausted its {attempts} attempt(s)",
                        self.strategy
                    ));
                }
                let factor = multiplier.powi(self.restarts.min(1000) as i32);
                initial.mul_f64(factor).min(*max)
            }
            RestartStrategy::FailureRate {
                max_failures,
                interval,
                delay,
            } => {
                self.failures.push_back(now);
                while self
                    .failures
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > *interval)
                {
                    self.failures.pop_front();
                }
                if self.failures.len() > *max_failures as usize {
                    return Err(format!(
                        "restart strategy {}: {} failures within {interval:?}",
                        self.strategy,
                        self.failures.len()
                    ));
                }
                *delay
            }
        };
        self.restarts += 1;
        self.due = Some(now + delay);
        Ok(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_delay_counts_attempts() {
        let mut t = RestartTracker::new(RestartStrategy::FixedDelay {
            attempts: 2,
            delay: Duration::from_millis(5),
        });
        let now = Instant::now();
        let later = |ms| now + Duration::from_millis(ms);
        assert_eq!(t.on_failure(now), Ok(Duration::from_millis(5)));
        // While that restart waits, another failure is part of it.
        assert_eq!(t.on_failure(later(2)), Ok(Duration::from_millis(3)));
        assert_eq!(t.restarts(), 1);
        assert_eq!(t.on_failure(later(5)), Ok(Duration::from_millis(5)));
        assert!(
            t.on_failure(later(10))
                .unwrap_err()
                .contains("exhausted its 2 attempt(s)")
        );
    }

    #[test]
    fn exponential_delay_grows_to_its_cap() {
        let mut t = RestartTracker::new(RestartStrategy::ExponentialDelay {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(35),
            multiplier: 2.0,
            attempts: 5,
        });
        let mut now = Instant::now();
        let delays: Vec<_> = (0..5)
            .map(|_| {
                let delay = t.on_failure(now).unwrap();
                now += delay;
                delay.as_millis()
            })
            .collect();
        assert_eq!(delays, vec![10, 20, 35, 35, 35]);
        assert!(t.on_failure(now).is_err());
    }

    #[test]
    fn failure_rate_forgets_old_failures() {
        let mut t = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: Duration::from_secs(10),
            delay: Duration::ZERO,
        });
        let start = Instant::now();
        assert!(t.on_failure(start).is_ok());
        assert!(t.on_failure(start + Duration::from_secs(1)).is_ok());
        assert!(t.on_failure(start + Duration::from_secs(2)).is_err());
        let mut t2 = RestartTracker::new(RestartStrategy::FailureRate {
            max_failures: 2,
            interval: Duration::from_secs(10),
            delay: Duration::ZERO,
        });
        assert!(t2.on_failure(start).is_ok());
        assert!(t2.on_failure(start + Duration::from_secs(1)).is_ok());
        assert!(t2.on_failure(start + Duration::from_secs(20)).is_ok());
        assert!(
            RestartTracker::new(RestartStrategy::None)
                .on_failure(start)
                .is_err()
        );
    }
}
