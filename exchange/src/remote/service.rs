//! The Flight service that hands a process's outgoing remote channels to
//! their consumers, one batch per credit.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action, ActionType, Criteria, Empty, FlightData, FlightDescriptor, FlightInfo,
    HandshakeRequest, HandshakeResponse, PollInfo, PutResult, SchemaResult, Ticket,
};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use object_store::ObjectStoreExt;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status, Streaming};

use super::codec::{EventEncoder, credits_of};
use super::partitions::{CHUNK_BYTES, FileMeta, FileRead, Wanted, partition_file_path};
use super::{ChannelKey, ExchangeRegistry};
use crate::ShuffleRoot;
use crate::channel::ChannelReceiver;
use crate::event::Event;

/// How long a consumer waits for its producer to offer its channel.
const OFFER_WAIT: Duration = Duration::from_secs(30);

/// Serves the outgoing remote channels of `registry` (Flight
/// `DoExchange`) and, when given a local shuffle root, the blocking
/// partitions under it (`DoGet`, see [`super::served_partitions`]); the
/// other calls of Flight are not offered.
#[derive(Debug, Clone)]
pub struct ExchangeService {
    registry: Arc<ExchangeRegistry>,
    partitions: Option<ShuffleRoot>,
}

impl ExchangeService {
    /// Serves the channels of `registry`.
    pub fn new(registry: Arc<ExchangeRegistry>) -> Self {
        Self {
            registry,
            partitions: None,
        }
    }

    /// Also serves the partition files under `root`, this process's own
    /// shuffle directory.
    pub fn serving(self, root: ShuffleRoot) -> Self {
        Self {
            partitions: Some(root),
            ..self
        }
    }

    /// The messages answering `read` of a partition file under `root`.
    async fn read(root: &ShuffleRoot, read: FileRead) -> Result<Vec<FlightData>, Status> {
        let path = partition_file_path(&read.path).ok_or_else(|| {
            Status::invalid_argument(format!("'{}' is not a partition file", read.path))
        })?;
        let failed = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => {
                Status::not_found(format!("no partition file {path} here"))
            }
            other => Status::internal(format!("reading {path}: {other}")),
        };
        let (meta, bytes) = if read.wanted == Wanted::Size {
            let size = root.store().head(&path).await.map_err(failed)?.size;
            let meta = FileMeta {
                size,
                start: 0,
                end: 0,
            };
            (meta, Bytes::new())
        } else {
            let result = root
                .store()
                .get_opts(&path, read.wanted.options())
                .await
                .map_err(failed)?;
            let meta = FileMeta {
                size: result.meta.size,
                start: result.range.start,
                end: result.range.end,
            };
            (meta, result.bytes().await.map_err(failed)?)
        };
        let head = FlightData {
            app_metadata: serde_json::to_vec(&meta)
                .expect("metadata serializes")
                .into(),
            ..Default::default()
        };
        let chunks = (0..bytes.len()).step_by(CHUNK_BYTES).map(|at| FlightData {
            data_body: bytes.slice(at..bytes.len().min(at + CHUNK_BYTES)),
            ..Default::default()
        });
        Ok(std::iter::once(head).chain(chunks).collect())
    }
}

type Messages<T> = BoxStream<'static, Result<T, Status>>;

fn unoffered<T>() -> Result<Response<T>, Status> {
    Err(Status::unimplemented(
        "a weir worker serves its channels with DoExchange and its partitions with DoGet only",
    ))
}

/// What the stream of one channel holds between two messages.
struct Sending {
    receiver: ChannelReceiver,
    encoder: EventEncoder,
    credits: Arc<Semaphore>,
    queued: std::collections::VecDeque<FlightData>,
    ended: bool,
}

impl Sending {
    /// The next message: a batch once a credit allows, any other event at
    /// once; `None` after the end of the partition.
    async fn next(mut self) -> Option<(Result<FlightData, Status>, Self)> {
        loop {
            if let Some(message) = self.queued.pop_front() {
                return Some((Ok(message), self));
            }
            if self.ended {
                return None;
            }
            // A credit before the next event leaves the channel: the
            // producer's channel holds what the consumer cannot take yet.
            let Ok(permit) = Arc::clone(&self.credits).acquire_owned().await else {
                return None;
            };
            let event = match self.receiver.recv().await {
                Some(event) => event,
                None => {
                    self.ended = true;
                    let gone =
                        Status::aborted("the producer stopped before the end of its partition");
                    return Some((Err(gone), self));
                }
            };
            match &event {
                Event::Batch(_) => permit.forget(),
                Event::EndOfPartition => self.ended = true,
                _ => drop(permit),
            }
            match self.encoder.encode(&event) {
                Ok(messages) => self.queued.extend(messages),
                Err(e) => {
                    self.ended = true;
                    return Some((Err(Status::internal(e.to_string())), self));
                }
            }
        }
    }
}

#[tonic::async_trait]
impl FlightService for ExchangeService {
    type HandshakeStream = Messages<HandshakeResponse>;
    type ListFlightsStream = Messages<FlightInfo>;
    type DoGetStream = Messages<FlightData>;
    type DoPutStream = Messages<PutResult>;
    type DoActionStream = Messages<arrow_flight::Result>;
    type ListActionsStream = Messages<ActionType>;
    type DoExchangeStream = Pin<Box<dyn Stream<Item = Result<FlightData, Status>> + Send>>;

    async fn do_exchange(
        &self,
        request: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        let mut incoming = request.into_inner();
        let first = incoming
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("an exchange that names no channel"))?;
        let key: ChannelKey = first
            .flight_descriptor
            .as_ref()
            .and_then(|d| serde_json::from_slice(&d.cmd).ok())
            .ok_or_else(|| Status::invalid_argument("an exchange that names no channel"))?;
        let initial =
            credits_of(&first.app_metadata).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let receiver = self
            .registry
            .take(&key, OFFER_WAIT)
            .await
            .map_err(|e| Status::not_found(e.to_string()))?;
        let credits = Arc::new(Semaphore::new(initial as usize));
        let granted = Arc::clone(&credits);
        tokio::spawn(async move {
            // The consumer's credits, until it is gone: then no more batch
            // goes out, and the channel is dropped with the stream.
            while let Ok(Some(message)) = incoming.message().await {
                match credits_of(&message.app_metadata) {
                    Ok(n) => granted.add_permits(n as usize),
                    Err(_) => break,
                }
            }
            granted.close();
        });
        let sending = Sending {
            receiver,
            encoder: EventEncoder::new(),
            credits,
            queued: Default::default(),
            ended: false,
        };
        let messages = futures::stream::unfold(sending, Sending::next);
        Ok(Response::new(Box::pin(messages)))
    }

    async fn handshake(
        &self,
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        unoffered()
    }

    async fn list_flights(
        &self,
        _: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        unoffered()
    }

    async fn get_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        unoffered()
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        unoffered()
    }

    async fn get_schema(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        unoffered()
    }

    async fn do_get(
        &self,
        request: Request<Ticket>,
    ) -> Result<Response<Self::DoGetStream>, Status> {
        let Some(root) = &self.partitions else {
            return unoffered();
        };
        let read: FileRead = serde_json::from_slice(&request.into_inner().ticket)
            .map_err(|_| Status::invalid_argument("a read that names no partition file"))?;
        let messages = Self::read(root, read).await?;
        Ok(Response::new(
            futures::stream::iter(messages.into_iter().map(Ok)).boxed(),
        ))
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        unoffered()
    }

    async fn do_action(
        &self,
        _: Request<Action>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        unoffered()
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        unoffered()
    }
}
