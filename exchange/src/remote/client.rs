//! The Flight client of one process's exchange service, carrying the
//! cluster's token.

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::MAX_MESSAGE_BYTES;
use crate::{Error, Result};

/// Adds the cluster's token to every call.
#[derive(Debug, Clone)]
pub(super) struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

/// A Flight client of another process's exchange service.
pub(super) type FlightClient = FlightServiceClient<InterceptedService<Channel, Bearer>>;

/// A client of the exchange service at `address` (`http://HOST:PORT`),
/// connecting on its first call; its calls carry `token`.
///
/// # Errors
/// [`Error::Remote`] when `address` is not a URL or `token` not a header
/// value.
pub(super) fn flight_client(address: &str, token: Option<Arc<str>>) -> Result<FlightClient> {
    let bad = |e: &dyn std::fmt::Display| Error::Remote(format!("exchange service {address}: {e}"));
    let channel = Endpoint::from_shared(address.to_string())
        .map_err(|e| bad(&e))?
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let token = token
        .map(|t| MetadataValue::try_from(format!("Bearer {t}")))
        .transpose()
        .map_err(|e| bad(&e))?;
    Ok(
        FlightServiceClient::with_interceptor(channel, Bearer(token))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}
