//! Who may call a cluster's services: every call carries the cluster's
//! shared secret when one is set, and every service refuses calls
//! without it. A service listens beyond loopback only with one. Messages
//! are bounded both ways.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use super::proto::coordinator_client::CoordinatorClient;
use super::proto::worker_client::WorkerClient;
use crate::{Error, Result};

/// The largest message a service or client takes or sends: a query's
/// batch of rows, a job's script.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The environment variable holding the cluster's shared secret.
pub const TOKEN_VARIABLE: &str = "WEIR_CLUSTER_TOKEN";

/// The environment variable naming a file that holds it.
pub const TOKEN_FILE_VARIABLE: &str = "WEIR_CLUSTER_TOKEN_FILE";

/// The shortest secret taken.
const MIN_TOKEN_BYTES: usize = 16;

/// The cluster's shared secret, if it has one.
#[derive(Clone, Default)]
pub struct Token(Option<Arc<str>>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = if self.0.is_some() { "set" } else { "none" };
        f.debug_tuple("Token").field(&set).finish()
    }
}

impl Token {
    /// The secret `file` holds (else the file `WEIR_CLUSTER_TOKEN_FILE`
    /// names, else `WEIR_CLUSTER_TOKEN`; none without any), read with
    /// `env`.
    ///
    /// # Errors
    /// The file cannot be read, or the secret is shorter than 16 bytes.
    pub fn load(file: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let file = file
            .map(Path::to_path_buf)
            .or_else(|| env(TOKEN_FILE_VARIABLE).map(Into::into));
        let (secret, from) = match file {
            Some(file) => {
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    Error::Cluster(format!(
                        "cannot read the token file {}: {e}",
                        file.display()
                    ))
                })?;
                (text, format!("the token file {}", file.display()))
            }
            None => match env(TOKEN_VARIABLE) {
                Some(secret) => (secret, TOKEN_VARIABLE.to_string()),
                None => return Ok(Self(None)),
            },
        };
        let secret = secret.trim();
        if secret.len() < MIN_TOKEN_BYTES || MetadataValue::try_from(secret).is_err() {
            return Err(Error::Cluster(format!(
                "{from}: a token is at least {MIN_TOKEN_BYTES} printable characters"
            )));
        }
        Ok(Self(Some(secret.into())))
    }

    /// A token of `secret` (tests).
    pub fn of(secret: &str) -> Self {
        Self(Some(secret.into()))
    }

    /// The secret, if the cluster has one.
    pub fn secret(&self) -> Option<Arc<str>> {
        self.0.clone()
    }

    /// Whether the cluster has a secret.
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// The address a service listens on: beyond loopback only with a
    /// secret.
    ///
    /// # Errors
    /// [`Error::Cluster`] for an address that does not parse, or one
    /// beyond loopback without a secret.
    pub fn listen_address(&self, bind: &str) -> Result<SocketAddr> {
        let address: SocketAddr = bind
            .parse()
            .map_err(|e| Error::Cluster(format!("'{bind}' is not HOST:PORT ({e})")))?;
        if !address.ip().is_loopback() && !self.is_set() {
            return Err(Error::Cluster(format!(
                "not binding to {bind}: listening beyond loopback needs an access token; set \
                 {TOKEN_VARIABLE}, or {TOKEN_FILE_VARIABLE} or --token-file to a file holding \
                 one, the same for every process of the cluster and its clients"
            )));
        }
        Ok(address)
    }

    /// What services check each call with.
    pub fn check(&self) -> Check {
        Check(self.0.clone())
    }

    /// A client of the coordinator at `endpoint`, connecting when first
    /// used.
    pub fn coordinator(&self, endpoint: &Endpoint) -> CoordinatorClient<Authorized> {
        CoordinatorClient::with_interceptor(endpoint.connect_lazy(), self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A client of the coordinator over `channel`.
    pub fn coordinator_over(&self, channel: Channel) -> CoordinatorClient<Authorized> {
        CoordinatorClient::with_interceptor(channel, self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }

    /// A client of the worker at `endpoint`, connecting when first used.
    pub fn worker(&self, endpoint: &Endpoint) -> WorkerClient<Authorized> {
        WorkerClient::with_interceptor(endpoint.connect_lazy(), self.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// A channel whose calls carry the cluster's secret.
pub type Authorized = InterceptedService<Channel, Token>;

/// The metadata key of the secret.
const AUTHORIZATION: &str = "authorization";

impl Interceptor for Token {
    fn call(&mut self, mut request: Request<()>) -> std::result::Result<Request<()>, Status> {
        if let Some(secret) = &self.0 {
            let value = MetadataValue::try_from(format!("Bearer {secret}"))
                .map_err(|_| Status::internal("the token is not a header value"))?;
            request.metadata_mut().insert(AUTHORIZATION, value);
        }
        Ok(request)
    }
}

/// Refuses calls without the cluster's secret, when it has one.
#[derive(Clone)]
pub struct Check(Option<Arc<str>>);

impl Interceptor for Check {
    fn call(&mut self, request: Request<()>) -> std::result::Result<Request<()>, Status> {
        let Some(secret) = &self.0 else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(given) if same(given.as_bytes(), secret.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated(
                "wrong access token: use the cluster's (WEIR_CLUSTER_TOKEN)",
            )),
            None => Err(Status::unauthenticated(
                "this cluster needs an access token: set WEIR_CLUSTER_TOKEN (or \
                 WEIR_CLUSTER_TOKEN_FILE) to the cluster's",
            )),
        }
    }
}

/// Whether `a` and `b` are equal, in a time that does not tell where
/// they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        let vars = vars.to_vec();
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn tokens_come_from_a_file_or_the_environment_and_are_long_enough() {
        assert!(!Token::load(None, &env_of(&[])).expect("none").is_set());
        let env = env_of(&[(TOKEN_VARIABLE, "0123456789abcdef")]);
        assert!(Token::load(None, &env).expect("loads").is_set());
        let e = Token::load(None, &env_of(&[(TOKEN_VARIABLE, "short")]))
            .expect_err("too short")
            .to_string();
        assert!(e.contains(TOKEN_VARIABLE) && e.contains("16"), "{e}");
        let dir = tempfile::tempdir().expect("a directory");
        let file = dir.path().join("token");
        std::fs::write(&file, "fedcba9876543210fedcba\n").expect("writes");
        let token = Token::load(Some(&file), &env_of(&[])).expect("loads");
        assert!(token.is_set());
        let missing = dir.path().join("missing");
        let e = Token::load(Some(&missing), &env)
            .expect_err("missing")
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }

    #[test]
    fn calls_without_the_secret_are_refused_and_listening_beyond_loopback_needs_one() {
        let secret = "0123456789abcdef";
        let mut check = Token::of(secret).check();
        let e = check.call(Request::new(())).expect_err("no token");
        assert_eq!(e.code(), tonic::Code::Unauthenticated);
        let wrong = Token::of("0123456789abcdeX")
            .call(Request::new(()))
            .expect("adds");
        let e = check.call(wrong).expect_err("wrong token");
        assert!(
            e.message().contains("wrong access token"),
            "{}",
            e.message()
        );
        let right = Token::of(secret).call(Request::new(())).expect("adds");
        assert!(check.call(right).is_ok());
        assert!(Token::default().check().call(Request::new(())).is_ok());

        let e = Token::default()
            .listen_address("0.0.0.0:6123")
            .expect_err("beyond loopback")
            .to_string();
        assert!(
            e.contains("access token") && e.contains(TOKEN_VARIABLE),
            "{e}"
        );
        assert!(Token::default().listen_address("127.0.0.1:0").is_ok());
        assert!(Token::of(secret).listen_address("0.0.0.0:0").is_ok());
        assert!(Token::default().listen_address("nowhere").is_err());
    }
}
