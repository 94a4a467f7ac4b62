//! Who may call a cluster's services: every call carries the cluster's
//! shared secret when one is set, and every service refuses calls
//! without it. A service listens beyond loopback only with one. Messages
//! are bounded both ways. With TLS, services present their certificate
//! (`https://` URLs) and callers check it against the cluster's
//! certificate authority.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};
use tonic::{Request, Status};
use weir_exchange::remote::RemoteAccess;

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

/// The environment variables naming the PEM files of a process's TLS:
/// its certificate, its key, and the certificate authority it checks
/// others' certificates with.
pub const TLS_VARIABLES: [&str; 3] = [
    "WEIR_CLUSTER_TLS_CERT",
    "WEIR_CLUSTER_TLS_KEY",
    "WEIR_CLUSTER_TLS_CA",
];

/// The shortest secret taken.
const MIN_TOKEN_BYTES: usize = 16;

/// How a process of the cluster is called and calls others: the cluster's
/// shared secret, if it has one, and its TLS, if it speaks it.
#[derive(Clone, Default)]
pub struct Token(Option<Arc<str>>, Option<Arc<Tls>>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = if self.0.is_some() { "set" } else { "none" };
        f.debug_tuple("Token")
            .field(&set)
            .field(&self.1.is_some())
            .finish()
    }
}

/// The PEM files of a process's TLS, as its flags name them.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// Its certificate (chain).
    pub cert: Option<PathBuf>,
    /// Its private key.
    pub key: Option<PathBuf>,
    /// The certificate authority that signs the cluster's certificates.
    pub ca: Option<PathBuf>,
}

/// A process's TLS: the identity its services present, and the authority
/// it checks the services it calls with.
pub struct Tls {
    identity: Option<Identity>,
    ca: Option<Arc<[u8]>>,
}

impl Tls {
    /// The TLS `files` (else the environment's [`TLS_VARIABLES`]) name;
    /// `None` without any.
    ///
    /// # Errors
    /// A file cannot be read, or a certificate comes without its key.
    pub fn load(files: &TlsFiles, env: &dyn Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let [cert_var, key_var, ca_var] = TLS_VARIABLES;
        let pick = |flag: &Option<PathBuf>, var: &str| {
            flag.clone().or_else(|| env(var).map(PathBuf::from))
        };
        let read = |path: Option<PathBuf>, what: &str| -> Result<Option<Vec<u8>>> {
            path.map(|path| {
                std::fs::read(&path).map_err(|e| {
                    Error::Cluster(format!(
                        "cannot read the TLS {what} {}: {e}",
                        path.display()
                    ))
                })
            })
            .transpose()
        };
        let cert = read(pick(&files.cert, cert_var), "certificate")?;
        let key = read(pick(&files.key, key_var), "key")?;
        let ca = read(pick(&files.ca, ca_var), "certificate authority")?;
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(Identity::from_pem(cert, key)),
            (None, None) => None,
            _ => {
                return Err(Error::Cluster(format!(
                    "TLS needs a certificate and its key together (--tls-cert and --tls-key, \
                     or {cert_var} and {key_var})"
                )));
            }
        };
        Ok((identity.is_some() || ca.is_some()).then(|| Self {
            identity,
            ca: ca.map(Into::into),
        }))
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
                None => return Ok(Self(None, None)),
            },
        };
        let secret = secret.trim();
        if secret.len() < MIN_TOKEN_BYTES || MetadataValue::try_from(secret).is_err() {
            return Err(Error::Cluster(format!(
                "{from}: a token is at least {MIN_TOKEN_BYTES} printable characters"
            )));
        }
        Ok(Self(Some(secret.into()), None))
    }

    /// A token of `secret` (tests).
    pub fn of(secret: &str) -> Self {
        Self(Some(secret.into()), None)
    }

    /// The same secret, speaking `tls`.
    pub fn with_tls(self, tls: Option<Tls>) -> Self {
        Self(self.0, tls.map(Arc::new))
    }

    /// The scheme of this process's services' URLs: `https` when they
    /// speak TLS.
    pub fn scheme(&self) -> &'static str {
        match self.1.as_ref().and_then(|tls| tls.identity.as_ref()) {
            Some(_) => "https",
            None => "http",
        }
    }

    /// What this process's services present to their callers, when they
    /// speak TLS.
    pub fn server_tls(&self) -> Option<ServerTlsConfig> {
        let identity = self.1.as_ref()?.identity.clone()?;
        Some(ServerTlsConfig::new().identity(identity))
    }

    /// How this process calls other processes' exchange services.
    pub fn remote_access(&self) -> RemoteAccess {
        RemoteAccess {
            token: self.0.clone(),
            ca: self.1.as_ref().and_then(|tls| tls.ca.clone()),
        }
    }

    /// The endpoint of the service at `url`: `http://HOST:PORT`, or
    /// `https://HOST:PORT`, whose certificate is checked against the
    /// cluster's certificate authority.
    ///
    /// # Errors
    /// [`Error::Cluster`] when `url` is not one, or is `https://` and this
    /// process has no certificate authority.
    pub fn endpoint(&self, url: &str) -> Result<Endpoint> {
        let bad = |why: &str| {
            Error::Cluster(format!(
                "'{url}': {why}; give it as http://HOST:PORT (https:// with TLS)"
            ))
        };
        let (tls, address) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(address), _) => (true, address),
            (None, Some(address)) => (false, address),
            (None, None) => return Err(bad("not an http:// or https:// URL")),
        };
        if address
            .rsplit_once(':')
            .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            return Err(bad("no port"));
        }
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| bad(&e.to_string()))?
            .connect_timeout(Duration::from_secs(2));
        if !tls {
            return Ok(endpoint);
        }
        let [_, _, ca_var] = TLS_VARIABLES;
        let ca = self
            .1
            .as_ref()
            .and_then(|tls| tls.ca.as_ref())
            .ok_or_else(|| {
                bad(&format!(
                    "speaking TLS needs the cluster's certificate authority (--tls-ca or {ca_var})"
                ))
            })?;
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        endpoint.tls_config(tls).map_err(|e| bad(&e.to_string()))
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

    /// A server builder for this process's services: speaking TLS when it
    /// has a certificate.
    ///
    /// # Errors
    /// [`Error::Cluster`] when the certificate or key does not load.
    pub fn server(&self) -> Result<tonic::transport::Server> {
        let (stream, connection) = weir_exchange::remote::WINDOW_BYTES;
        let builder = tonic::transport::Server::builder()
            .initial_stream_window_size(stream)
            .initial_connection_window_size(connection);
        match self.server_tls() {
            Some(tls) => builder
                .tls_config(tls)
                .map_err(|e| Error::Cluster(format!("the TLS certificate or key: {e}"))),
            None => Ok(builder),
        }
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
    fn urls_are_http_or_https_with_a_port_and_https_needs_an_authority() {
        let plain = Token::default();
        assert!(plain.endpoint("http://127.0.0.1:6123").is_ok());
        for bad in ["127.0.0.1:6123", "http://127.0.0.1", "http://h:port"] {
            let e = plain.endpoint(bad).expect_err(bad).to_string();
            assert!(e.contains("http://HOST:PORT"), "{bad}: {e}");
        }
        let e = plain
            .endpoint("https://h:1")
            .expect_err("no authority")
            .to_string();
        assert!(
            e.contains("--tls-ca") && e.contains(TLS_VARIABLES[2]),
            "{e}"
        );
        assert_eq!(plain.scheme(), "http");
        assert!(plain.server_tls().is_none());
    }

    #[test]
    fn tls_files_come_from_flags_or_the_environment_and_go_in_pairs() {
        let dir = tempfile::tempdir().expect("a directory");
        let (cert, ca) = (dir.path().join("cert.pem"), dir.path().join("ca.pem"));
        std::fs::write(&cert, "not checked until used").expect("writes");
        std::fs::write(&ca, "not checked until used").expect("writes");
        assert!(
            Tls::load(&TlsFiles::default(), &env_of(&[]))
                .expect("none")
                .is_none()
        );
        let alone = TlsFiles {
            cert: Some(cert.clone()),
            ..TlsFiles::default()
        };
        let e = Tls::load(&alone, &env_of(&[]))
            .err()
            .expect("a certificate without its key")
            .to_string();
        assert!(e.contains("--tls-key"), "{e}");
        let ca_var = TLS_VARIABLES[2];
        let ca_path: &'static str = Box::leak(ca.display().to_string().into_boxed_str());
        let client = Tls::load(&TlsFiles::default(), &env_of(&[(ca_var, ca_path)]))
            .expect("loads")
            .expect("some");
        let token = Token::default().with_tls(Some(client));
        assert_eq!(token.scheme(), "http", "a client presents nothing");
        assert!(token.remote_access().ca.is_some());
        let missing = TlsFiles {
            ca: Some(dir.path().join("missing.pem")),
            ..TlsFiles::default()
        };
        let e = Tls::load(&missing, &env_of(&[]))
            .err()
            .expect("missing")
            .to_string();
        assert!(e.contains("missing.pem"), "{e}");
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
