//! Who may call a coordinator, over real gRPC on loopback: with a token
//! set, calls without it or with another are refused; messages over the
//! bound are refused; a worker of another weir version is refused at
//! registration, saying why.

use std::sync::Arc;
use std::time::Duration;

use weir_engine::sinks::RowsOut;
use weir_scheduler::cluster::access::{MAX_MESSAGE_BYTES, Token};
use weir_scheduler::cluster::proto::coordinator_client::CoordinatorClient;
use weir_scheduler::cluster::proto::{JobSpec, ListWorkersRequest, RegisterWorker};
use weir_scheduler::cluster::service::CoordinatorConfig;
use weir_scheduler::cluster::{Heartbeats, JobPlanner, ScriptPart, VERSION, service};

/// Plans nothing: these tests never get as far as a job.
struct NoPlans;

#[async_trait::async_trait]
impl JobPlanner for NoPlans {
    async fn plan(&self, _: &JobSpec, _: Arc<dyn RowsOut>) -> Result<Vec<ScriptPart>, String> {
        Err("no plans here".to_string())
    }
}

const SECRET: &str = "0123456789abcdef0123";

/// A coordinator on loopback that checks `token`: its URL.
async fn coordinator(token: Token) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listens");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    let config = CoordinatorConfig {
        heartbeats: Heartbeats {
            interval: Duration::from_millis(100),
            timeout: Duration::from_secs(1),
        },
        token,
        settings: Vec::new(),
        state: None,
    };
    tokio::spawn(service::serve(listener, config, Arc::new(NoPlans)));
    url
}

fn register(version: &str) -> RegisterWorker {
    RegisterWorker {
        slots: 2,
        version: version.to_string(),
        host: "here".to_string(),
        address: "http://127.0.0.1:1".to_string(),
    }
}

#[tokio::test]
async fn calls_need_the_token_messages_are_bounded_and_versions_must_match() {
    let url = coordinator(Token::of(SECRET)).await;
    let endpoint = tonic::transport::Endpoint::from_shared(url.clone()).expect("a URL");
    let channel = endpoint.connect().await.expect("connects");

    // No token, then a wrong one: refused, saying which.
    let e = CoordinatorClient::new(channel.clone())
        .list_workers(ListWorkersRequest {})
        .await
        .expect_err("no token");
    assert_eq!(e.code(), tonic::Code::Unauthenticated);
    assert!(
        e.message().contains("WEIR_CLUSTER_TOKEN"),
        "{}",
        e.message()
    );
    let e = Token::of("another secret, long")
        .coordinator_over(channel.clone())
        .list_workers(ListWorkersRequest {})
        .await
        .expect_err("a wrong token");
    assert!(
        e.message().contains("wrong access token"),
        "{}",
        e.message()
    );

    // The cluster's token: taken.
    let mut client = Token::of(SECRET).coordinator_over(channel.clone());
    assert!(client.list_workers(ListWorkersRequest {}).await.is_ok());

    // A worker of another version: refused, saying so.
    let e = client
        .register(register("0.0.0-other"))
        .await
        .expect_err("another version");
    assert_eq!(e.code(), tonic::Code::FailedPrecondition);
    assert!(
        e.message().contains("weir 0.0.0-other") && e.message().contains(VERSION),
        "{}",
        e.message()
    );
    assert!(client.register(register(VERSION)).await.is_ok());

    // A message over the bound, from a client that does not bound its own.
    let unbounded = CoordinatorClient::with_interceptor(channel, Token::of(SECRET))
        .max_encoding_message_size(usize::MAX);
    let spec = JobSpec {
        script: "-".repeat(MAX_MESSAGE_BYTES + 1),
        ..JobSpec::default()
    };
    let e = unbounded
        .clone()
        .submit_job(spec)
        .await
        .expect_err("too large");
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e}");
}
