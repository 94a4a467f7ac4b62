//! Blocking partitions on one process's local disk, read by another over
//! real Flight on loopback: every subpartition reads back as it reads
//! locally, in both formats; a partition its holder does not have, or a
//! holder that is gone, is a partition not found (failover reruns its
//! producer); nothing but partition files is served.

mod support;

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow_flight::Ticket;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::flight_service_server::FlightServiceServer;
use support::batch;
use tonic::transport::Server;
use weir_exchange::blocking::{
    BlockingFormat, BlockingOptions, BlockingPartitionWriter, SubpartitionReader,
};
use weir_exchange::remote::{self, ExchangeRegistry, ExchangeService, served_partitions};
use weir_exchange::{Error, ResultPartitionId, ShuffleRoot};

const SUBPARTITIONS: usize = 3;

/// An exchange service on loopback serving `root`: its address, and what
/// stops it.
async fn serve(root: ShuffleRoot) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listens");
    let address = format!("http://{}", listener.local_addr().expect("an address"));
    let service = ExchangeService::new(Arc::new(ExchangeRegistry::default())).serving(root);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(FlightServiceServer::new(service))
            .serve_with_incoming_shutdown(remote::incoming(listener), async {
                let _ = stopped.await;
            }),
    );
    (address, stop)
}

fn partition(attempt: u32) -> ResultPartitionId {
    ResultPartitionId {
        dataset: 4,
        producer: 1,
        attempt,
    }
}

/// Writes partition attempt 0 under `root`: 30 batches over the
/// subpartitions, in blocks of about 64 KiB.
async fn write(root: &ShuffleRoot, format: BlockingFormat) {
    let options = BlockingOptions::default()
        .with_format(format)
        .with_buffer_bytes(64 << 10);
    let mut writer = BlockingPartitionWriter::try_new(
        root,
        "job-7",
        partition(0),
        batch(0).schema(),
        SUBPARTITIONS,
        &options,
    )
    .await
    .expect("a writer");
    for n in 0..30 {
        writer
            .write(n as usize % SUBPARTITIONS, batch(n))
            .await
            .expect("written");
    }
    writer.finish().await.expect("finished");
}

async fn read(
    root: &ShuffleRoot,
    id: ResultPartitionId,
    subpartition: usize,
    format: BlockingFormat,
) -> weir_exchange::Result<Vec<RecordBatch>> {
    let mut reader = SubpartitionReader::open(root, "job-7", id, subpartition, format).await?;
    let mut batches = Vec::new();
    while let Some(batch) = reader.next_batch().await? {
        batches.push(batch);
    }
    Ok(batches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subpartitions_read_over_flight_as_they_read_locally() {
    for format in [BlockingFormat::Ipc, BlockingFormat::Parquet] {
        let dir = tempfile::tempdir().expect("a directory");
        let url = dir.path().to_str().expect("a path").to_string();
        let local = ShuffleRoot::try_new(&url, &Default::default()).expect("a root");
        write(&local, format).await;
        let (address, _stop) = serve(local.clone()).await;
        let remote = served_partitions(&address, &Default::default());
        assert!(!remote.is_shared() && !local.is_shared());
        let mut rows = 0;
        for subpartition in 0..SUBPARTITIONS {
            let here = read(&local, partition(0), subpartition, format)
                .await
                .expect("read locally");
            let there = read(&remote, partition(0), subpartition, format)
                .await
                .expect("read over Flight");
            assert_eq!(here, there, "{format} subpartition {subpartition}");
            rows += there.iter().map(RecordBatch::num_rows).sum::<usize>();
        }
        assert_eq!(rows, 30 * support::ROWS as usize, "{format}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_not_held_or_a_holder_gone_is_a_partition_not_found() {
    let dir = tempfile::tempdir().expect("a directory");
    let url = dir.path().to_str().expect("a path").to_string();
    let local = ShuffleRoot::try_new(&url, &Default::default()).expect("a root");
    write(&local, BlockingFormat::Ipc).await;
    let (address, stop) = serve(local).await;
    let remote = served_partitions(&address, &Default::default());
    // Another attempt than the one written.
    let missing = read(&remote, partition(1), 0, BlockingFormat::Ipc).await;
    assert!(
        matches!(&missing, Err(Error::PartitionNotFound { partition: p, .. }) if *p == partition(1)),
        "{missing:?}"
    );
    // The holder goes away: what it held is lost for its readers.
    stop.send(()).expect("the server runs");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let gone = served_partitions(&address, &Default::default());
    let lost = read(&gone, partition(0), 0, BlockingFormat::Ipc).await;
    assert!(
        matches!(&lost, Err(Error::PartitionNotFound { partition: p, .. }) if *p == partition(0)),
        "{lost:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_but_partition_files_is_served() {
    let dir = tempfile::tempdir().expect("a directory");
    std::fs::write(dir.path().join("secret"), "not a partition").expect("written");
    let shuffle = dir.path().join("shuffle");
    let url = shuffle.to_str().expect("a path").to_string();
    let local = ShuffleRoot::try_new(&url, &Default::default()).expect("a root");
    write(&local, BlockingFormat::Ipc).await;
    let (address, _stop) = serve(local).await;
    let channel = tonic::transport::Endpoint::from_shared(address)
        .expect("a URL")
        .connect()
        .await
        .expect("connects");
    let mut client = FlightServiceClient::new(channel);
    for path in ["../secret", "job-7/../../secret", "job-7/d4", "/etc/passwd"] {
        let ticket = format!(r#"{{"path":"{path}","wanted":"All"}}"#);
        let refused = client
            .do_get(Ticket::new(ticket.into_bytes()))
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{path}");
    }
    let garbage = client
        .do_get(Ticket::new(b"not json".to_vec()))
        .await
        .expect_err("refused");
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument);
}
