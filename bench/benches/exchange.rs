//! Benchmarks of weir's exchange internals: partitioners, the pipelined
//! local channel, the per-batch hand-off from tokio to the rayon CPU pool, and
//! blocking result partitions written to and read back from a local
//! directory in every format and compression, and read from another
//! process's exchange service over Flight.
//!
//! Run with `cargo bench -p weir-bench --bench exchange`; pass a filter to
//! run a part, e.g. `cargo bench -p weir-bench --bench exchange -- handoff`.
//! `bench/README.md` explains what each benchmark measures and lists figures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow_flight::flight_service_server::FlightServiceServer;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use weir_bench::{BATCH_ROWS, data_bytes, lineitem_batches, lineitem_schema, q6_filter};
use weir_engine::task::CPU_QUEUE_DEPTH;
use weir_exchange::blocking::{
    BlockingFormat, BlockingOptions, BlockingPartitionWriter, Compression, SubpartitionReader,
};
use weir_exchange::channel::{ChannelBounds, ChannelReceiver, ChannelSender, pipelined_channel};
use weir_exchange::remote::{
    self, ChannelKey, ExchangeRegistry, ExchangeService, RemoteInput, remote_input,
};
use weir_exchange::{Event, PartitionRouter, Partitioner, ResultPartitionId, ShuffleRoot, cpu};

/// Subpartitions (consumer subtasks) of the partitioner and blocking benches.
const SUBPARTITIONS: usize = 4;
/// Batches sent through the channel per iteration.
const CHANNEL_BATCHES: usize = 64;
/// Distinct batches the hand-off benches cycle through, so the kernel does
/// not always find the same batch in the cache.
const HANDOFF_BATCHES: usize = 8;
/// Batches written to one blocking partition per iteration.
const BLOCKING_BATCHES: usize = 16;
/// The job whose files the blocking benches write.
const JOB: &str = "bench";

/// A runtime like the one weir's tasks run on: multi-threaded, one worker per
/// core.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can be started")
}

/// Runs `future` as a task on a worker of `rt` (as weir's tasks run), rather
/// than on the thread that blocks on it.
fn run_on_worker<T, F>(rt: &Runtime, future: F) -> T
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    rt.block_on(rt.spawn(future))
        .expect("the benchmark task panicked")
}

/// Times `iters` calls of `step`, one per batch, cycling over `batches`, in
/// one task on a tokio worker.
fn time_batches<F, Fut>(
    rt: &Runtime,
    batches: &Arc<Vec<RecordBatch>>,
    iters: u64,
    step: F,
) -> Duration
where
    F: Fn(RecordBatch) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let batches = Arc::clone(batches);
    run_on_worker(rt, async move {
        let start = Instant::now();
        for batch in batches.iter().cycle().take(iters as usize) {
            step(batch.clone()).await;
        }
        start.elapsed()
    })
}

/// `PartitionRouter::route` of one 8192-row batch into 4 subpartitions.
fn partitioner(c: &mut Criterion) {
    let batch = lineitem_batches(1, BATCH_ROWS).remove(0);
    let mut group = c.benchmark_group("partitioner");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(BATCH_ROWS as u64));
    for (name, partitioner) in [
        ("hash", Partitioner::hash(["l_orderkey"])),
        ("rebalance", Partitioner::Rebalance),
        ("broadcast", Partitioner::Broadcast),
    ] {
        let mut router = PartitionRouter::new(partitioner, SUBPARTITIONS, 0);
        group.bench_function(format!("{name}/{SUBPARTITIONS}"), |b| {
            b.iter(|| router.route(black_box(batch.clone())).expect("route"))
        });
    }
    group.finish();
}

/// 64 batches from a producer task to a consumer task through one pipelined
/// local channel with the default bounds (4 MiB, 16 batches).
fn channel(c: &mut Criterion) {
    let rt = runtime();
    let batches = Arc::new(lineitem_batches(8, BATCH_ROWS));
    let mut group = c.benchmark_group("channel");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements((CHANNEL_BATCHES * BATCH_ROWS) as u64));
    group.bench_function("pipelined/local", |b| {
        b.iter_custom(|iters| local_transfers(&rt, &batches, iters))
    });
    group.finish();
}

/// Times `iters` transfers of `CHANNEL_BATCHES` of `batches` through a
/// pipelined local channel with the default bounds.
fn local_transfers(rt: &Runtime, batches: &Arc<Vec<RecordBatch>>, iters: u64) -> Duration {
    let batches = Arc::clone(batches);
    run_on_worker(rt, async move {
        let start = Instant::now();
        for _ in 0..iters {
            let (tx, rx) = pipelined_channel(ChannelBounds::default());
            let rows = transfer(Arc::clone(&batches), tx, rx).await;
            assert_eq!(rows, CHANNEL_BATCHES * BATCH_ROWS);
        }
        start.elapsed()
    })
}

/// Sends `CHANNEL_BATCHES` of `batches` and the end of partition into
/// `tx`, and counts the rows `rx` gets.
async fn transfer(batches: Arc<Vec<RecordBatch>>, tx: ChannelSender, rx: ChannelReceiver) -> usize {
    let producer = tokio::spawn(async move {
        for batch in batches.iter().cycle().take(CHANNEL_BATCHES) {
            tx.send(Event::Batch(batch.clone())).await?;
        }
        tx.send(Event::EndOfPartition).await
    });
    let mut rows = 0;
    while let Some(event) = rx.recv().await {
        match event {
            Event::Batch(batch) => rows += black_box(batch).num_rows(),
            Event::EndOfPartition => break,
            _ => {}
        }
    }
    producer.await.expect("producer").expect("send");
    rows
}

/// Bytes per second through one pipelined channel with the default
/// bounds: in memory (`local`, batches passed by reference), and between
/// two tasks over Arrow Flight on loopback (`remote`: the producer's
/// channel offered by an exchange service, read by a remote input with
/// credits, each batch encoded as Arrow IPC and decoded again).
fn exchange_transfer(c: &mut Criterion) {
    let rt = runtime();
    let batches = Arc::new(lineitem_batches(8, BATCH_ROWS));
    let bytes: usize = batches
        .iter()
        .cycle()
        .take(CHANNEL_BATCHES)
        .map(data_bytes)
        .sum();
    let registry = Arc::new(ExchangeRegistry::default());
    let address = serve(&rt, ExchangeService::new(Arc::clone(&registry)));
    let mut group = c.benchmark_group("transfer");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("local", |b| {
        b.iter_custom(|iters| local_transfers(&rt, &batches, iters))
    });
    let sent = Arc::new(std::sync::atomic::AtomicU32::new(0));
    group.bench_function("remote", |b| {
        b.iter_custom(|iters| {
            let (batches, registry, address) =
                (Arc::clone(&batches), Arc::clone(&registry), address.clone());
            let sent = Arc::clone(&sent);
            run_on_worker(&rt, async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let key = ChannelKey {
                        job: JOB.to_string(),
                        dataset: 0,
                        producer: 0,
                        consumer: 0,
                        attempt: sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    };
                    let (tx, offered) = pipelined_channel(ChannelBounds::default());
                    registry.register(key.clone(), offered);
                    let rx = remote_input(RemoteInput {
                        address: address.clone(),
                        key,
                        bounds: ChannelBounds::default(),
                        access: Default::default(),
                    });
                    let rows = transfer(Arc::clone(&batches), tx, rx).await;
                    assert_eq!(rows, CHANNEL_BATCHES * BATCH_ROWS);
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

/// Starts `service` on a free loopback port of `rt`, as a worker's exchange
/// service: its address.
fn serve(rt: &Runtime, service: ExchangeService) -> String {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listens");
        let address = format!("http://{}", listener.local_addr().expect("an address"));
        let service = FlightServiceServer::new(service)
            .max_decoding_message_size(remote::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(remote::MAX_MESSAGE_BYTES);
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(remote::incoming(listener)),
        );
        address
    })
}

/// The cost of handing each batch's work from a tokio task to the CPU pool:
/// the Q6 filter run inline on the tokio worker; through `cpu::run`, one
/// batch at a time, waiting for each; through a `cpu::Worker` kept up to
/// four batches ahead, as a task runs its operator chain; and the bare
/// `cpu::run` round trip of a closure that only hands the batch back. At
/// 1024, 8192 and 65536 rows per batch.
fn handoff(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("handoff");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for rows in [1024, BATCH_ROWS, 65536] {
        let batches = Arc::new(lineitem_batches(HANDOFF_BATCHES, rows));
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(format!("inline/{rows}"), |b| {
            b.iter_custom(|iters| {
                time_batches(&rt, &batches, iters, |batch| async move {
                    black_box(q6_filter(black_box(&batch)).expect("filter"));
                })
            })
        });
        group.bench_function(format!("run-each/{rows}"), |b| {
            b.iter_custom(|iters| {
                time_batches(&rt, &batches, iters, |batch| async move {
                    let out = cpu::run(move || q6_filter(black_box(&batch))).await;
                    black_box(out.expect("filter"));
                })
            })
        });
        group.bench_function(format!("worker/{rows}"), |b| {
            b.iter_custom(|iters| {
                let batches = Arc::clone(&batches);
                run_on_worker(&rt, async move {
                    let start = Instant::now();
                    let mut worker = cpu::Worker::new((), CPU_QUEUE_DEPTH);
                    for batch in batches.iter().cycle().take(iters as usize) {
                        if !worker.has_room() {
                            black_box(worker.next_result().await);
                        }
                        let batch = batch.clone();
                        worker.submit(move |_: &mut ()| {
                            q6_filter(black_box(&batch)).expect("filter")
                        });
                    }
                    while let Some(out) = worker.next_result().await {
                        black_box(out);
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function(format!("round-trip/{rows}"), |b| {
            b.iter_custom(|iters| {
                time_batches(&rt, &batches, iters, |batch| async move {
                    black_box(cpu::run(move || black_box(batch)).await);
                })
            })
        });
    }
    group.finish();
}

/// Writes one partition of `pieces` (`(subpartition, batch)` pairs) as
/// attempt `attempt`, then reads every subpartition back, each in its own
/// task (as its consumer subtask would). Returns the file's size.
async fn write_and_read(
    root: ShuffleRoot,
    options: BlockingOptions,
    attempt: u32,
    pieces: Arc<Vec<(usize, RecordBatch)>>,
) -> u64 {
    let id = ResultPartitionId {
        dataset: 1,
        producer: 0,
        attempt,
    };
    let (rows, bytes) = write_partition(&root, &options, &id, &pieces).await;
    assert_eq!(read_partition(&root, &id, options.format).await, rows);
    bytes
}

/// Writes partition `id` of `pieces`: its rows and file bytes.
async fn write_partition(
    root: &ShuffleRoot,
    options: &BlockingOptions,
    id: &ResultPartitionId,
    pieces: &[(usize, RecordBatch)],
) -> (u64, u64) {
    let mut writer = BlockingPartitionWriter::try_new(
        root,
        JOB,
        id.clone(),
        lineitem_schema(),
        SUBPARTITIONS,
        options,
    )
    .await
    .expect("writer");
    for (subpartition, batch) in pieces {
        writer
            .write(*subpartition, batch.clone())
            .await
            .expect("write");
    }
    let stats = writer.finish().await.expect("finish");
    (stats.rows, stats.bytes)
}

/// Reads every subpartition of partition `id` under `root`, each in its
/// own task (as its consumer subtask would): the rows read.
async fn read_partition(root: &ShuffleRoot, id: &ResultPartitionId, format: BlockingFormat) -> u64 {
    let readers: Vec<_> = (0..SUBPARTITIONS)
        .map(|subpartition| {
            let (root, id) = (root.clone(), id.clone());
            tokio::spawn(async move {
                let mut reader = SubpartitionReader::open(&root, JOB, id, subpartition, format)
                    .await
                    .expect("open");
                let mut rows = 0;
                while let Some(batch) = reader.next_batch().await.expect("read") {
                    rows += black_box(batch).num_rows() as u64;
                }
                rows
            })
        })
        .collect();
    let mut rows = 0;
    for reader in readers {
        rows += reader.await.expect("reader");
    }
    rows
}

/// A blocking partition of 16 x 8192 rows, hash-partitioned on `l_orderkey`
/// into 4 subpartitions, written to a local directory and read back whole,
/// in every format and compression. The throughput counts the Arrow bytes
/// of the partition once.
fn blocking(c: &mut Criterion) {
    let rt = runtime();
    let pieces = Arc::new(hashed_pieces());
    let bytes: usize = pieces.iter().map(|(_, batch)| data_bytes(batch)).sum();
    let (_dir, root) = temporary_root();

    let mut group = c.benchmark_group("blocking");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(bytes as u64));
    for (format, compression) in [
        (BlockingFormat::Ipc, Compression::None),
        (BlockingFormat::Ipc, Compression::Lz4),
        (BlockingFormat::Ipc, Compression::Zstd),
        (BlockingFormat::Parquet, Compression::None),
    ] {
        let options = BlockingOptions::default()
            .with_format(format)
            .with_compression(compression);
        let file_bytes = run_on_worker(
            &rt,
            write_and_read(root.clone(), options.clone(), 0, Arc::clone(&pieces)),
        );
        rt.block_on(root.remove_job(JOB)).expect("remove the files");
        println!(
            "blocking/{format}/{compression}: {file_bytes} file bytes for {bytes} Arrow bytes \
             ({:.2}x)",
            bytes as f64 / file_bytes as f64
        );
        // Every write is a new attempt, as a rerun would be.
        let mut attempt = 1;
        group.bench_function(format!("{format}/{compression}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (task_root, options, pieces) =
                        (root.clone(), options.clone(), Arc::clone(&pieces));
                    total += run_on_worker(&rt, async move {
                        let start = Instant::now();
                        black_box(write_and_read(task_root, options, attempt, pieces).await);
                        start.elapsed()
                    });
                    attempt += 1;
                    // Removing the files is not part of the measurement.
                    rt.block_on(root.remove_job(JOB)).expect("remove the files");
                }
                total
            })
        });
    }
    group.finish();
}

/// A shuffle root in a new temporary directory (removed when dropped).
fn temporary_root() -> (tempfile::TempDir, ShuffleRoot) {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = ShuffleRoot::try_new(
        dir.path().to_str().expect("a UTF-8 temporary directory"),
        &Default::default(),
    )
    .expect("shuffle root");
    (dir, root)
}

/// 16 x 8192 rows of `lineitem`, hash-partitioned on `l_orderkey` into
/// 4 subpartitions: `(subpartition, piece)` pairs.
fn hashed_pieces() -> Vec<(usize, RecordBatch)> {
    let mut router = PartitionRouter::new(Partitioner::hash(["l_orderkey"]), SUBPARTITIONS, 0);
    let mut pieces = Vec::new();
    for batch in lineitem_batches(BLOCKING_BATCHES, BATCH_ROWS) {
        pieces.extend(router.route(batch).expect("route"));
    }
    pieces
}

/// The partition of `blocking` (default options), written once and read
/// back whole by its 4 consumers: from the local directory (`local`), and
/// from the exchange service of the process that wrote it, over Flight
/// `DoGet` on loopback (`flight`), as consumers on other workers read it.
/// The throughput counts the Arrow bytes of the partition once.
fn served(c: &mut Criterion) {
    let rt = runtime();
    let pieces = hashed_pieces();
    let bytes: usize = pieces.iter().map(|(_, batch)| data_bytes(batch)).sum();
    let (_dir, root) = temporary_root();
    let options = BlockingOptions::default();
    let id = ResultPartitionId {
        dataset: 1,
        producer: 0,
        attempt: 0,
    };
    let (rows, _) = rt.block_on(write_partition(&root, &options, &id, &pieces));
    let service = ExchangeService::new(Arc::default()).serving(root.clone());
    let address = serve(&rt, service);
    // Its client connects on the runtime's tasks.
    let served = {
        let _runtime = rt.enter();
        remote::served_partitions(&address, &Default::default())
    };
    let mut group = c.benchmark_group("served");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(bytes as u64));
    for (name, from) in [("local", root), ("flight", served)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let (from, id) = (from.clone(), id.clone());
                run_on_worker(&rt, async move {
                    let start = Instant::now();
                    for _ in 0..iters {
                        assert_eq!(read_partition(&from, &id, options.format).await, rows);
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    partitioner,
    channel,
    exchange_transfer,
    handoff,
    blocking,
    served
);
criterion_main!(benches);
