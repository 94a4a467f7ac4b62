//! Remote channels over real Flight on loopback: events arrive in order
//! and whole; a slow consumer holds its producer back, so that neither
//! side buffers more than its channel's bound; a producer or consumer
//! that goes away ends the other side with an error, never a hang.

mod support;

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use support::batch;
use tonic::transport::Server;
use weir_exchange::channel::{ChannelBounds, pipelined_channel};
use weir_exchange::event::{Barrier, Event};
use weir_exchange::remote::{
    self, ChannelKey, ExchangeRegistry, ExchangeService, RemoteInput, remote_input,
};

/// An exchange service on loopback: its registry and address.
async fn serve() -> (Arc<ExchangeRegistry>, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listens");
    let address = format!("http://{}", listener.local_addr().expect("an address"));
    let registry = Arc::new(ExchangeRegistry::default());
    let service = FlightServiceServer::new(ExchangeService::new(Arc::clone(&registry)));
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(remote::incoming(listener)),
    );
    (registry, address)
}

fn key(job: &str) -> ChannelKey {
    ChannelKey {
        job: job.to_string(),
        dataset: 1,
        producer: 0,
        consumer: 2,
        attempt: 3,
    }
}

const BOUNDS: ChannelBounds = ChannelBounds {
    max_bytes: 1 << 20,
    max_batches: 4,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_in_order_and_a_slow_consumer_holds_the_producer_back() {
    let (registry, address) = serve().await;
    // The consumer connects first: it waits for the producer's offer.
    let receiver = remote_input(RemoteInput {
        address,
        key: key("j"),
        bounds: BOUNDS,
        access: Default::default(),
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (sender, offered) = pipelined_channel(BOUNDS);
    let probe = sender.probe();
    registry.register(key("j"), offered);
    const BATCHES: i64 = 200;
    let producer = tokio::spawn(async move {
        for n in 0..BATCHES {
            sender.send(Event::Batch(batch(n))).await.expect("sends");
            if n % 50 == 49 {
                sender.send(Event::Watermark(n)).await.expect("sends");
                let barrier = Barrier {
                    checkpoint_id: n as u64,
                    timestamp_ms: n,
                };
                sender.send(Event::Barrier(barrier)).await.expect("sends");
            }
        }
        sender.send(Event::EndOfPartition).await.expect("sends");
    });
    let mut batches = 0;
    let mut marks = Vec::new();
    loop {
        match receiver.recv().await.expect("an event before the end") {
            Event::Batch(b) => {
                assert_eq!(b, batch(batches), "batch {batches}");
                batches += 1;
                // A slow consumer.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Event::Watermark(ts) => marks.push(format!("w{ts}")),
            Event::Barrier(b) => marks.push(format!("b{}", b.checkpoint_id)),
            Event::WatermarkStatus(_) => panic!("no status was sent"),
            Event::EndOfPartition => break,
        }
    }
    producer.await.expect("the producer ends");
    assert_eq!(batches, BATCHES);
    assert_eq!(
        marks,
        ["w49", "b49", "w99", "b99", "w149", "b149", "w199", "b199"]
    );
    // The producer's channel never held more than its bound, although the
    // consumer took far longer than the producer to go through the data.
    let one_batch = batch(0).get_array_memory_size();
    assert!(BATCHES as usize * one_batch > 10 * BOUNDS.max_bytes);
    assert!(
        probe.peak_bytes() <= BOUNDS.max_bytes,
        "the producer buffered {} bytes, over its bound of {}",
        probe.peak_bytes(),
        BOUNDS.max_bytes
    );
    assert_eq!(registry.waiting(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_or_consumer_that_goes_away_ends_the_other_side() {
    let (registry, address) = serve().await;
    // The producer stops before the end of its partition: the consumer's
    // channel closes without it.
    let (sender, offered) = pipelined_channel(BOUNDS);
    registry.register(key("gone-producer"), offered);
    let receiver = remote_input(RemoteInput {
        address: address.clone(),
        key: key("gone-producer"),
        bounds: BOUNDS,
        access: Default::default(),
    });
    sender.send(Event::Batch(batch(0))).await.expect("sends");
    drop(sender);
    assert!(matches!(receiver.recv().await, Some(Event::Batch(_))));
    assert!(receiver.recv().await.is_none(), "closed, with no end");

    // The consumer goes away: the producer's sends fail.
    let (sender, offered) = pipelined_channel(BOUNDS);
    registry.register(key("gone-consumer"), offered);
    let receiver = remote_input(RemoteInput {
        address: address.clone(),
        key: key("gone-consumer"),
        bounds: BOUNDS,
        access: Default::default(),
    });
    sender.send(Event::Batch(batch(0))).await.expect("sends");
    assert!(matches!(receiver.recv().await, Some(Event::Batch(_))));
    drop(receiver);
    let failed = tokio::time::timeout(Duration::from_secs(10), async {
        for n in 1.. {
            if sender.send(Event::Batch(batch(n))).await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(failed.is_ok(), "the producer never noticed");

    // Nobody offers the channel: the consumer ends, it does not hang.
    let receiver = remote_input(RemoteInput {
        address: "http://127.0.0.1:1".to_string(),
        key: key("nowhere"),
        bounds: BOUNDS,
        access: Default::default(),
    });
    let ended = tokio::time::timeout(Duration::from_secs(10), receiver.recv()).await;
    assert!(matches!(ended, Ok(None)));
}
