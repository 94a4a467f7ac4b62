//! The CPU pool: every CPU-heavy piece of work (operators, partitioning,
//! encoding and decoding of partition files) runs on one rayon pool, and async
//! code on tokio hands it over with [`run`]. Tokio workers never run CPU work
//! and rayon workers never wait on I/O or channels. A task's operator chain
//! lives on the pool as a [`Worker`], which takes a queue of jobs per hand-off.

mod worker;

use std::sync::OnceLock;

pub use worker::Worker;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// Sizes the CPU pool. Only the first call (before any work ran) has an
/// effect; later calls return `false`.
pub fn init_pool(threads: usize) -> bool {
    let mut installed = false;
    POOL.get_or_init(|| {
        installed = true;
        build_pool(threads)
    });
    installed
}

/// The stack of each thread of the CPU pool: expressions are evaluated
/// recursively, and generated SQL nests them thousands deep (a 5,000-term
/// sum). Memory is only taken as the stack is used.
pub const STACK_BYTES: usize = 64 << 20;

fn build_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(STACK_BYTES)
        .thread_name(|i| format!("weir-cpu-{i}"))
        .build()
        .expect("the CPU pool's threads can be started")
}

/// The shared CPU pool (sized to the machine's cores unless [`init_pool`]
/// said otherwise).
pub fn pool() -> &'static rayon::ThreadPool {
    POOL.get_or_init(|| build_pool(std::thread::available_parallelism().map_or(1, |n| n.get())))
}

/// Whether the calling thread is one of the CPU pool's.
pub fn on_pool() -> bool {
    POOL.get()
        .is_some_and(|pool| pool.current_thread_index().is_some())
}

/// The message a panic carried (`panic!("...")`'s text).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Runs a decoder over untrusted bytes: a panic inside it means the bytes
/// are malformed, not that the worker should die. The panic's message
/// says what the decoder found.
///
/// # Errors
/// The decoder's, or its panic as one.
pub fn decode_guarded<T>(decode: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|panic| {
        Err(format!(
            "the decoder failed on malformed data: {}",
            panic_message(panic.as_ref())
        ))
    })
}

/// Runs `work` on the CPU pool and waits for its result without blocking the
/// calling tokio worker. A panic inside `work` is resumed in the caller.
pub async fn run<R, F>(work: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    pool().spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        // The receiver is gone when the task was cancelled: nothing to report.
        let _ = tx.send(result);
    });
    match rx.await {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => unreachable!("the CPU pool dropped a job without running it"),
    }
}
