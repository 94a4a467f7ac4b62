//! What the throughput runners (`src/bin/`) share: how they start and how
//! they give up on bad arguments.

/// The CPU pool and a tokio runtime, both of `threads` threads.
pub fn runtime(threads: usize) -> tokio::runtime::Runtime {
    weir_exchange::cpu::init_pool(threads);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The value of `result`, or the end of the process with its error and
/// exit status 2 (bad arguments or options).
pub fn or_exit<T>(result: Result<T, String>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(2);
    })
}
