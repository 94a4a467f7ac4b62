//! The Flight client of one process's exchange service, carrying the
//! cluster's token, over TLS when the service speaks it.

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_client::FlightServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::{MAX_MESSAGE_BYTES, WINDOW_BYTES};
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

/// How a process calls the exchange services of others: the cluster's
/// token, and the certificate authority of its TLS (PEM) when its
/// services speak TLS (`https://` addresses).
#[derive(Debug, Clone, Default)]
pub struct RemoteAccess {
    /// The cluster's shared secret, when it has one.
    pub token: Option<Arc<str>>,
    /// The PEM certificates that sign the services' own.
    pub ca: Option<Arc<[u8]>>,
}

/// A client of the exchange service at `address` (`http://HOST:PORT`, or
/// `https://` with TLS), connecting on its first call, as `access` says.
///
/// # Errors
/// [`Error::Remote`] when `address` is not a URL, the token not a header
/// value, or an `https://` address comes without a certificate authority.
pub(super) fn flight_client(address: &str, access: &RemoteAccess) -> Result<FlightClient> {
    let bad = |e: &dyn std::fmt::Display| Error::Remote(format!("exchange service {address}: {e}"));
    let mut endpoint = Endpoint::from_shared(address.to_string())
        .map_err(|e| bad(&e))?
        .connect_timeout(Duration::from_secs(2))
        .initial_stream_window_size(WINDOW_BYTES.0)
        .initial_connection_window_size(WINDOW_BYTES.1);
    if address.starts_with("https://") {
        let ca = access
            .ca
            .as_ref()
            .ok_or_else(|| bad(&"speaks TLS, and this process has no certificate authority"))?;
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        endpoint = endpoint.tls_config(tls).map_err(|e| bad(&e))?;
    }
    let channel = endpoint.connect_lazy();
    let token = access
        .token
        .as_ref()
        .map(|t| MetadataValue::try_from(format!("Bearer {t}")))
        .transpose()
        .map_err(|e| bad(&e))?;
    Ok(
        FlightServiceClient::with_interceptor(channel, Bearer(token))
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}
