//! A piece of state that lives on the CPU pool and works through an ordered
//! queue of jobs: the hand-off a task uses for its operator chain.
//!
//! [`run`](super::run) hands one closure over and waits for it, so every
//! batch pays two thread wake-ups (the pool's and the tokio worker's) while
//! both sides take turns. A [`Worker`] lets the async side queue several jobs
//! ahead and go on reading input while the pool works: one pool job drains
//! everything queued, and results come back in order. The pool side wakes
//! the async side only when half of the queue's depth is done or the queue
//! ran dry, so wake-ups are paid per run of jobs, not per batch, and
//! reading, computing and writing overlap.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use tokio::sync::Notify;

use super::pool;

type Job<S, R> = Box<dyn FnOnce(&mut S) -> R + Send>;

/// State `S` owned by the CPU pool, with jobs run on it one at a time in the
/// order they were submitted; each job's result `R` is handed back in that
/// order by [`Worker::next_result`]. The caller keeps at most `depth` jobs
/// in flight ([`Worker::has_room`]).
///
/// Dropping the worker drops the jobs not yet started; one already running
/// finishes on the pool and its result is discarded.
pub struct Worker<S, R> {
    shared: Arc<Shared<S, R>>,
    depth: usize,
    in_flight: usize,
}

struct Shared<S, R> {
    queue: Mutex<Queue<S, R>>,
    /// Wakes the async side waiting for results.
    ready: Notify,
    /// Results waiting before the pool side wakes the async side.
    wake_at: usize,
}

struct Queue<S, R> {
    jobs: VecDeque<Job<S, R>>,
    results: VecDeque<thread::Result<R>>,
    /// The state while no pool job drains the queue (the drain holds it).
    state: Option<S>,
    /// A job panicked or the worker was dropped: run nothing more.
    stopped: bool,
}

impl<S, R> std::fmt::Debug for Worker<S, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl<S: Send + 'static, R: Send + 'static> Worker<S, R> {
    /// A worker owning `state`, for up to `depth` jobs in flight; nothing
    /// runs until a job is submitted.
    pub fn new(state: S, depth: usize) -> Self {
        let depth = depth.max(1);
        Self {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    results: VecDeque::new(),
                    state: Some(state),
                    stopped: false,
                }),
                ready: Notify::new(),
                wake_at: depth.div_ceil(2),
            }),
            depth,
            in_flight: 0,
        }
    }

    /// Queues `job` behind the jobs submitted before it; starts a drain on
    /// the pool unless one is running. Never blocks and never waits: the
    /// caller submits only while [`has_room`](Self::has_room).
    pub fn submit(&mut self, job: impl FnOnce(&mut S) -> R + Send + 'static) {
        self.in_flight += 1;
        let mut queue = self.shared.lock();
        queue.jobs.push_back(Box::new(job));
        if let Some(state) = queue.state.take() {
            drop(queue);
            let shared = Arc::clone(&self.shared);
            pool().spawn(move || shared.drain(state));
        }
    }

    /// Jobs submitted whose results were not taken yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether fewer than `depth` jobs are in flight.
    pub fn has_room(&self) -> bool {
        self.in_flight < self.depth
    }

    /// The result of the oldest job not taken yet, once it ran; `None` when
    /// nothing is in flight. A panic of the job is resumed here. Cancel-safe:
    /// a result is only taken when the returned future completes.
    pub async fn next_result(&mut self) -> Option<R> {
        if self.in_flight == 0 {
            return None;
        }
        let result = loop {
            // A wake-up sent between this check and the wait is kept by
            // `Notify` as a permit, so none is lost.
            if let Some(result) = self.shared.lock().results.pop_front() {
                break result;
            }
            self.shared.ready.notified().await;
        };
        self.in_flight -= 1;
        match result {
            Ok(value) => Some(value),
            Err(panic) => {
                // Nothing queued behind a panic runs (see `drain`).
                self.in_flight = 0;
                resume_unwind(panic)
            }
        }
    }
}

impl<S, R> Drop for Worker<S, R> {
    fn drop(&mut self) {
        let mut queue = self.shared.lock();
        queue.stopped = true;
        queue.jobs.clear();
    }
}

impl<S, R> Shared<S, R> {
    fn lock(&self) -> MutexGuard<'_, Queue<S, R>> {
        // Jobs run outside the lock, so it is never poisoned by their panics.
        self.queue
            .lock()
            .expect("the worker's queue lock is not poisoned")
    }

    /// Runs queued jobs until the queue is empty, then puts the state back.
    fn drain(&self, mut state: S) {
        loop {
            let job = {
                let mut queue = self.lock();
                if queue.stopped {
                    return;
                }
                match queue.jobs.pop_front() {
                    Some(job) => job,
                    None => {
                        queue.state = Some(state);
                        return;
                    }
                }
            };
            let result = catch_unwind(AssertUnwindSafe(|| job(&mut state)));
            let panicked = result.is_err();
            let wake = {
                let mut queue = self.lock();
                queue.results.push_back(result);
                if panicked {
                    // The state may be half-updated: run nothing more on it.
                    queue.stopped = true;
                    queue.jobs.clear();
                }
                panicked || queue.jobs.is_empty() || queue.results.len() >= self.wake_at
            };
            if wake {
                self.ready.notify_one();
            }
            if panicked {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_in_order_on_one_state() {
        let mut worker = Worker::new(Vec::new(), 8);
        let mut seen = Vec::new();
        for i in 0..1000u32 {
            worker.submit(move |log: &mut Vec<u32>| {
                log.push(i);
                log.len()
            });
            if !worker.has_room() {
                seen.push(worker.next_result().await.expect("in flight"));
            }
        }
        while let Some(len) = worker.next_result().await {
            seen.push(len);
        }
        assert_eq!(seen, (1..=1000).collect::<Vec<_>>());
        assert!(worker.next_result().await.is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_run_on_the_pool() {
        let mut worker = Worker::new((), 1);
        worker.submit(|_: &mut ()| thread::current().name().map(str::to_owned));
        let name = worker.next_result().await.expect("in flight");
        assert!(name.is_some_and(|n| n.starts_with("weir-cpu-")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panic_is_resumed_and_stops_the_worker() {
        let mut worker = Worker::new(0u32, 4);
        worker.submit(|n: &mut u32| {
            *n += 1;
            *n
        });
        worker.submit(|_: &mut u32| panic!("boom"));
        worker.submit(|n: &mut u32| *n);
        assert_eq!(worker.next_result().await, Some(1));
        let panicked = tokio::spawn(async move { worker.next_result().await }).await;
        assert!(panicked.expect_err("the job panicked").is_panic());
    }
}
