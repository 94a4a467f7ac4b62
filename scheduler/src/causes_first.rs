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
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::deployment::AttemptPlan;
use crate::task_executor::{TaskExecutor, TaskOutcome};

/// How long a failure that follows from another waits for that one.
const CAUSE_WAIT: Duration = Duration::from_millis(200);

/// Reports the outcomes of the executor it wraps, a failure that another
/// caused after the failure that caused it when that one comes within
/// [`CAUSE_WAIT`].
///
/// Cancel-safe as the executor it wraps: what it took from that executor
/// stays in it until reported, and a consequence's wait keeps its
/// deadline across calls.
pub struct CausesFirst {
    inner: Box<dyn TaskExecutor>,
    /// A consequence waiting for its cause, until when.
    waiting: Option<(TaskOutcome, Instant)>,
    /// Outcomes to report as they are, in order.
    ready: VecDeque<TaskOutcome>,
}

impl CausesFirst {
    /// Reorders the outcomes of `inner`.
    pub fn new(inner: Box<dyn TaskExecutor>) -> Self {
        Self {
            inner,
            waiting: None,
            ready: VecDeque::new(),
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
        self.waiting = None;
        self.ready.clear();
        self.inner.cancel_all().await;
    }

    fn is_idle(&self) -> bool {
        self.waiting.is_none() && self.ready.is_empty() && self.inner.is_idle()
    }

    fn waiting(&self) -> usize {
        self.inner.waiting()
    }

    fn has_lost(&self, worker: &str) -> bool {
        self.inner.has_lost(worker)
    }

    async fn next_outcome(&mut self) -> Option<TaskOutcome> {
        loop {
            if let Some((_, deadline)) = &self.waiting {
                let deadline = *deadline;
                if self.inner.is_idle() {
                    return self.waiting.take().map(|(outcome, _)| outcome);
                }
                match tokio::time::timeout_at(deadline.into(), self.inner.next_outcome()).await {
                    Err(_) => return self.waiting.take().map(|(outcome, _)| outcome),
                    // A cancelled attempt ended: that wakes the caller.
                    Ok(None) => return None,
                    Ok(Some(next)) if next.result.is_err() && !is_consequence(&next) => {
                        let (consequence, _) = self.waiting.take().expect("a consequence waits");
                        self.ready.push_front(consequence);
                        return Some(next);
                    }
                    // Came in while the consequence waited: reported after
                    // it, as they are.
                    Ok(Some(next)) => self.ready.push_back(next),
                }
                continue;
            }
            if let Some(ready) = self.ready.pop_front() {
                return Some(ready);
            }
            let first = self.inner.next_outcome().await?;
            if !is_consequence(&first) {
                return Some(first);
            }
            self.waiting = Some((first, Instant::now() + CAUSE_WAIT));
        }
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

    /// Dropped while a consequence waits (the job master's select took
    /// another branch), it loses nothing, and the wait keeps its deadline.
    #[tokio::test]
    async fn a_call_dropped_while_a_consequence_waits_loses_nothing() {
        let start = tokio::time::Instant::now();
        let script = [
            (start, failed(1, closed())),
            (start + CAUSE_WAIT * 4, failed(0, cause())),
        ];
        let mut executor = CausesFirst::new(Box::new(Scripted(script.into_iter().collect())));
        for _ in 0..2 {
            let dropped = tokio::time::timeout(CAUSE_WAIT / 4, executor.next_outcome()).await;
            assert!(dropped.is_err(), "the consequence waits for its cause");
        }
        let next = executor.next_outcome().await.expect("the consequence");
        assert_eq!(next.subtask, 1);
        assert!(
            start.elapsed() < CAUSE_WAIT * 2,
            "the wait kept its deadline"
        );
        let next = executor.next_outcome().await.expect("the cause, late");
        assert_eq!(next.subtask, 0);
        assert!(executor.is_idle());
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
