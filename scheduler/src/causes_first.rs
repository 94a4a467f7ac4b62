//! Failures reported cause first.
//!
//! When a task fails, the tasks reading its pipelined outputs fail too, as
//! their inputs close before their end; which of those failures reaches
//! the job master first is a race. The job master acts on (and a failed
//! job reports) the failure it meets first, so a consumer's "the producer
//! stopped" could hide the producer's own error, which says what went
//! wrong (and whether running again can help). [`CausesFirst`] holds such
//! a consequence back for a moment and reports a cause that comes in the
//! meantime first.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;

use crate::deployment::AttemptPlan;
use crate::task_executor::{TaskExecutor, TaskOutcome};

/// How long a failure that follows from another waits for that one.
const CAUSE_WAIT: Duration = Duration::from_millis(200);

/// Reports the outcomes of the executor it wraps, a failure that another
/// caused after the failure that caused it when that one comes within
/// [`CAUSE_WAIT`].
pub struct CausesFirst {
    inner: Box<dyn TaskExecutor>,
    /// Outcomes taken from `inner` and not reported yet, in order.
    held: VecDeque<TaskOutcome>,
}

impl CausesFirst {
    /// Reorders the outcomes of `inner`.
    pub fn new(inner: Box<dyn TaskExecutor>) -> Self {
        Self {
            inner,
            held: VecDeque::new(),
        }
    }
}

/// Whether `outcome` is a failure that follows from another task's.
fn is_consequence(outcome: &TaskOutcome) -> bool {
    matches!(&outcome.result, Err(e) if e.is_input_closed())
}

#[async_trait]
impl TaskExecutor for CausesFirst {
    fn deploy(&mut self, plans: Vec<AttemptPlan>) {
        self.inner.deploy(plans);
    }

    fn cancel(&mut self, subtask: usize) {
        self.inner.cancel(subtask);
    }

    async fn cancel_all(&mut self) {
        self.held.clear();
        self.inner.cancel_all().await;
    }

    fn is_idle(&self) -> bool {
        self.held.is_empty() && self.inner.is_idle()
    }

    fn waiting(&self) -> usize {
        self.inner.waiting()
    }

    fn has_lost(&self, worker: &str) -> bool {
        self.inner.has_lost(worker)
    }

    async fn next_outcome(&mut self) -> Option<TaskOutcome> {
        let first = match self.held.pop_front() {
            Some(held) => held,
            None => self.inner.next_outcome().await?,
        };
        if !is_consequence(&first) {
            return Some(first);
        }
        // Outcomes already held came in before this one: their causes, if
        // any, were looked for then.
        let deadline = tokio::time::Instant::now() + CAUSE_WAIT;
        while !self.inner.is_idle() {
            match tokio::time::timeout_at(deadline, self.inner.next_outcome()).await {
                Err(_) => break,
                Ok(None) => {}
                Ok(Some(next)) if next.result.is_err() && !is_consequence(&next) => {
                    self.held.push_front(first);
                    return Some(next);
                }
                Ok(Some(next)) => self.held.push_back(next),
            }
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An executor whose outcomes are given, each reported at its instant
    /// (cancel-safe, as the job master needs every executor to be).
    struct Scripted(VecDeque<(tokio::time::Instant, TaskOutcome)>);

    #[async_trait]
    impl TaskExecutor for Scripted {
        fn deploy(&mut self, _: Vec<AttemptPlan>) {}
        fn cancel(&mut self, _: usize) {}
        async fn cancel_all(&mut self) {}
        fn is_idle(&self) -> bool {
            self.0.is_empty()
        }
        async fn next_outcome(&mut self) -> Option<TaskOutcome> {
            let (at, _) = self.0.front()?;
            tokio::time::sleep_until(*at).await;
            self.0.pop_front().map(|(_, outcome)| outcome)
        }
    }

    fn failed(subtask: usize, error: weir_engine::Error) -> TaskOutcome {
        TaskOutcome {
            subtask,
            attempt: 0,
            result: Err(error),
            host: None,
        }
    }

    fn closed() -> weir_engine::Error {
        weir_exchange::Error::ChannelClosed("the producer stopped").into()
    }

    fn cause() -> weir_engine::Error {
        weir_engine::Error::Operator {
            operator: "check".to_string(),
            message: "two rows".to_string(),
        }
    }

    async fn order(script: Vec<(u64, TaskOutcome)>) -> Vec<usize> {
        let mut at = tokio::time::Instant::now();
        let script = script
            .into_iter()
            .map(|(ms, o)| {
                at += Duration::from_millis(ms);
                (at, o)
            })
            .collect();
        let mut executor = CausesFirst::new(Box::new(Scripted(script)));
        let mut order = Vec::new();
        while !executor.is_idle() {
            order.extend(executor.next_outcome().await.map(|o| o.subtask));
        }
        order
    }

    #[tokio::test]
    async fn a_cause_soon_after_its_consequence_is_reported_first() {
        // The consumer (1) fails first; its producer's failure (0) comes
        // 20 ms later.
        assert_eq!(
            order(vec![(0, failed(1, closed())), (20, failed(0, cause()))]).await,
            [0, 1]
        );
        // Too late: the order stays.
        let late = CAUSE_WAIT.as_millis() as u64 + 100;
        assert_eq!(
            order(vec![(0, failed(1, closed())), (late, failed(0, cause()))]).await,
            [1, 0]
        );
        // Causes and successes in order need no wait.
        let done = TaskOutcome {
            subtask: 2,
            attempt: 0,
            result: Ok(Default::default()),
            host: None,
        };
        assert_eq!(
            order(vec![(0, failed(0, cause())), (5, done)]).await,
            [0, 2]
        );
    }
}
