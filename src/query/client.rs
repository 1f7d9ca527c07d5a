//! The client of the query server (`vigil query`, `vigil train --server`, tests, the load
//! benchmark), on `ureq`: plain HTTP or https, a bearer token when the server asks for one,
//! and a CA file for a server whose certificate no public authority signed.
//!
//! Invariants: never panics on what a server sends; every failure is a [`ClientError`]
//! naming the address and saying what to try; every request is bounded by the timeout.
//! A [`Client`] keeps its connection alive between requests (ureq's pool, one idle
//! connection) and reconnects when the server has closed it; [`get`], [`post`] and
//! [`request`] open a connection for one request.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the vigil query server at {addr} ({message}); is `vigil run --serve {host}` running?")]
    Connect {
        addr: String,
        host: String,
        message: String,
    },
    #[error("no answer from {addr} within {seconds} s ({message})")]
    Timeout {
        addr: String,
        seconds: u64,
        message: String,
    },
    #[error("TLS with {addr} failed ({message}); a self-signed server certificate needs --ca-file (or VIGIL_CA_FILE) naming it or its CA")]
    Tls { addr: String, message: String },
    #[error("cannot read the CA file {}: {message}", path.display())]
    CaFile { path: PathBuf, message: String },
    #[error("talking to {addr}: {message}")]
    Http { addr: String, message: String },
}

/// A response: status and body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
}

impl Response {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// How to reach a server: the wait, its token, the CA that signed its certificate.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Longest wait for one whole request (connect, send, answer).
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// PEM file of the certificate(s) to trust for https instead of the public roots.
    pub ca_file: Option<PathBuf>,
}

impl ClientOptions {
    /// Plain options: this timeout, no token, the public roots.
    pub fn with_timeout(timeout: Duration) -> Self {
        ClientOptions {
            timeout,
            token: None,
            ca_file: None,
        }
    }
}

/// A client of one server, its connection kept alive between requests.
pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port` or `https://host:port`, no trailing slash.
    base: String,
    /// What the user gave, for messages.
    addr: String,
    token: Option<String>,
    timeout: Duration,
}

impl Client {
    /// A client of `addr`: `host:port` (plain HTTP), or a URL `http://…` / `https://…`.
    pub fn new(addr: &str, options: &ClientOptions) -> Result<Client, ClientError> {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{addr}")
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .max_redirects(0)
            .max_idle_connections(1)
            .max_idle_connections_per_host(1)
            .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &options.ca_file {
            config = config.tls_config(TlsConfig::builder().root_certs(roots_from(path)?).build());
        }
        Ok(Client {
            agent: config.build().new_agent(),
            base,
            addr: addr.to_string(),
            token: options.token.clone(),
            timeout: options.timeout,
        })
    }

    /// `GET path` (with its query string).
    pub fn get(&self, path: &str) -> Result<Response, ClientError> {
        self.request("GET", path)
    }

    /// `POST path` with an empty body.
    pub fn post(&self, path: &str) -> Result<Response, ClientError> {
        self.request("POST", path)
    }

    /// One request with an empty body.
    pub fn request(&self, method: &str, path: &str) -> Result<Response, ClientError> {
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            builder = builder.header("Authorization", format!("Bearer {token}"));
        }
        // No body for GET and HEAD; an empty one, with its length, for the others (without a
        // length ureq would send them chunked, which the server refuses).
        let sent = if matches!(method, "GET" | "HEAD") {
            builder.body(()).map(|r| self.agent.run(r))
        } else {
            builder.body("").map(|r| self.agent.run(r))
        };
        let response = sent.map_err(|e| self.http(e.to_string()))?.map_err(|e| self.error(e))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .with_config()
            .limit(256 * 1024 * 1024)
            .lossy_utf8(true)
            .read_to_string()
            .map_err(|e| self.error(e))?;
        Ok(Response { status, body })
    }

    /// host:port, without the scheme.
    fn host(&self) -> String {
        let rest = self.base.split_once("://").map_or(self.base.as_str(), |(_, r)| r);
        rest.split('/').next().unwrap_or(rest).to_string()
    }

    fn http(&self, message: String) -> ClientError {
        ClientError::Http {
            addr: self.addr.clone(),
            message,
        }
    }

    fn error(&self, e: ureq::Error) -> ClientError {
        let addr = self.addr.clone();
        match e {
            ureq::Error::Timeout(_) => ClientError::Timeout {
                addr,
                seconds: self.timeout.as_secs().max(1),
                message: e.to_string(),
            },
            ureq::Error::Io(io) if is_tls(&io) => ClientError::Tls {
                addr,
                message: io.to_string(),
            },
            ureq::Error::Io(io) if is_connect(&io) => ClientError::Connect {
                host: self.host(),
                addr,
                message: io.to_string(),
            },
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => ClientError::Connect {
                host: self.host(),
                addr,
                message: e.to_string(),
            },
            ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::Pem(_) => ClientError::Tls {
                addr,
                message: e.to_string(),
            },
            other => ClientError::Http {
                addr,
                message: other.to_string(),
            },
        }
    }
}

/// A TLS failure that ureq hands on as an I/O error (e.g. an untrusted certificate).
fn is_tls(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>())
}

fn is_connect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
    )
}

/// The certificates of a PEM file, as the only roots to trust.
fn roots_from(path: &Path) -> Result<RootCerts, ClientError> {
    let fail = |message: String| ClientError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let certs: Vec<Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in it".into()));
    }
    Ok(RootCerts::new_with_certs(&certs))
}

/// `GET path` (with its query string) from `addr`, on a connection of its own.
pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<Response, ClientError> {
    request(addr, "GET", path, timeout)
}

/// `POST path` with an empty body (e.g. `/models/retrain`).
pub fn post(addr: &str, path: &str, timeout: Duration) -> Result<Response, ClientError> {
    request(addr, "POST", path, timeout)
}

/// One request with an empty body, on a connection of its own.
pub fn request(addr: &str, method: &str, path: &str, timeout: Duration) -> Result<Response, ClientError> {
    Client::new(addr, &ClientOptions::with_timeout(timeout))?.request(method, path)
}

/// A loopback address with a port that was free a moment ago (tests, benchmarks).
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}
