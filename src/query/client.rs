//! A minimal HTTP/1.1 GET/POST client for the query server (`vigil query`, tests, the load
//! benchmark): one request per connection ([`get`], [`post`]) or a kept-alive connection
//! for many ([`Connection`]), no dependencies beyond std.
//!
//! Invariants: never panics on what a server sends; every failure is a [`ClientError`]
//! naming the address; reads are bounded by a timeout.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot resolve {addr}: {message}")]
    Resolve { addr: String, message: String },
    #[error("cannot reach the vigil query server at {addr} ({source}); is `vigil run --serve {addr}` running?")]
    Connect { addr: String, source: std::io::Error },
    #[error("talking to {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("{addr} sent a response that is not HTTP")]
    Malformed { addr: String },
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

/// `GET path` (with its query string) from `addr` ("host:port").
pub fn get(addr: &str, path: &str, timeout: Duration) -> Result<Response, ClientError> {
    request(addr, "GET", path, timeout)
}

/// `POST path` with an empty body (e.g. `/models/retrain`).
pub fn post(addr: &str, path: &str, timeout: Duration) -> Result<Response, ClientError> {
    request(addr, "POST", path, timeout)
}

/// One request with an empty body.
pub fn request(addr: &str, method: &str, path: &str, timeout: Duration) -> Result<Response, ClientError> {
    let target = resolve(addr)?;
    let io = |source| ClientError::Io {
        addr: addr.to_string(),
        source,
    };
    let mut stream = connect(addr, target, timeout)?;
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAccept: application/json\r\nContent-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(io)?;
    read_response(&mut BufReader::new(stream), addr).map(|(response, _)| response)
}

/// A kept-alive connection (`Connection: keep-alive`): many requests over one TCP stream,
/// as a dashboard or a load generator sends them. It reconnects once when the server has
/// closed the stream between two requests.
pub struct Connection {
    addr: String,
    target: SocketAddr,
    timeout: Duration,
    stream: Option<BufReader<TcpStream>>,
    connects: usize,
}

impl Connection {
    /// Resolves `addr`; connects at the first request.
    pub fn new(addr: &str, timeout: Duration) -> Result<Connection, ClientError> {
        Ok(Connection {
            addr: addr.to_string(),
            target: resolve(addr)?,
            timeout,
            stream: None,
            connects: 0,
        })
    }

    /// How many TCP connections it has opened so far.
    pub fn connects(&self) -> usize {
        self.connects
    }

    /// `GET path` over the kept-alive stream.
    pub fn get(&mut self, path: &str) -> Result<Response, ClientError> {
        let reused = self.stream.is_some();
        match self.exchange(path) {
            Ok(r) => Ok(r),
            // A stream the server closed while idle: one fresh try.
            Err(ClientError::Io { .. } | ClientError::Malformed { .. }) if reused => {
                self.stream = None;
                self.exchange(path)
            }
            Err(e) => Err(e),
        }
    }

    fn exchange(&mut self, path: &str) -> Result<Response, ClientError> {
        let addr = self.addr.clone();
        let io = |source| ClientError::Io {
            addr: addr.clone(),
            source,
        };
        if self.stream.is_none() {
            self.stream = Some(BufReader::new(connect(&self.addr, self.target, self.timeout)?));
            self.connects += 1;
        }
        let reader = self.stream.as_mut().expect("connected above");
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nContent-Length: 0\r\n\r\n",
            self.addr
        );
        let outcome = (|| {
            reader.get_mut().write_all(request.as_bytes()).map_err(io)?;
            read_response(reader, &addr)
        })();
        match outcome {
            Ok((response, keep)) => {
                if !keep {
                    self.stream = None;
                }
                Ok(response)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

/// Reads one response off a stream (kept alive or not): (response, whether the stream stays
/// open).
fn read_response(reader: &mut impl BufRead, addr: &str) -> Result<(Response, bool), ClientError> {
    let io = |source| ClientError::Io {
        addr: addr.to_string(),
        source,
    };
    let malformed = || ClientError::Malformed { addr: addr.to_string() };
    let mut line = String::new();
    let mut head = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(io)? == 0 {
            return Err(malformed());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        head.push(l.to_string());
        if head.len() > 100 {
            return Err(malformed());
        }
    }
    let status: u16 = head
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(malformed)?;
    let header = |name: &str| {
        head.iter().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_ascii_lowercase())
        })
    };
    let keep = header("connection").is_none_or(|v| v != "close");
    let body = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(io)?;
            let size =
                usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| malformed())?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(io)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
        body
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| malformed())?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(io)?;
        body
    } else {
        // No length: the body runs to the end of the stream.
        let mut body = Vec::new();
        reader.read_to_end(&mut body).map_err(io)?;
        return Ok((
            Response {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            },
            false,
        ));
    };
    Ok((
        Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
        keep,
    ))
}

fn resolve(addr: &str) -> Result<SocketAddr, ClientError> {
    addr.to_socket_addrs()
        .map_err(|e| ClientError::Resolve {
            addr: addr.to_string(),
            message: e.to_string(),
        })?
        .next()
        .ok_or_else(|| ClientError::Resolve {
            addr: addr.to_string(),
            message: "no address".into(),
        })
}

fn connect(addr: &str, target: SocketAddr, timeout: Duration) -> Result<TcpStream, ClientError> {
    let stream = TcpStream::connect_timeout(&target, timeout).map_err(|source| ClientError::Connect {
        addr: addr.to_string(),
        source,
    })?;
    let io = |source| ClientError::Io {
        addr: addr.to_string(),
        source,
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// A loopback address with a port that was free a moment ago (tests, benchmarks).
pub fn free_loopback_addr() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole response as one buffer (what a one-shot request reads).
    fn parse_response(raw: &[u8]) -> Option<Response> {
        read_response(&mut std::io::Cursor::new(raw.to_vec()), "test")
            .ok()
            .map(|(r, _)| r)
    }

    #[test]
    fn parses_plain_and_chunked() {
        let r = parse_response(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "{}"));
        let r =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(r.body, "abcde");
        assert!(parse_response(b"garbage").is_none());
    }

    fn read_kept(raw: &[u8]) -> Result<(Response, bool), ClientError> {
        read_response(&mut std::io::Cursor::new(raw.to_vec()), "test")
    }

    #[test]
    fn reads_one_response_of_a_kept_alive_stream_and_no_more() {
        // Two responses back to back: the first is read to its length, the rest left.
        let mut stream = std::io::Cursor::new(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc"
                .to_vec(),
        );
        let (r, keep) = read_response(&mut stream, "test").unwrap();
        assert_eq!((r.status, r.body.as_str(), keep), (200, "{}", true));
        let (r, keep) = read_response(&mut stream, "test").unwrap();
        assert_eq!((r.status, r.body.as_str(), keep), (404, "abc", true));
        // Chunked, and a server that closes after this response.
        let (r, keep) = read_kept(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2;x=1\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((r.body.as_str(), keep), ("abcde", false));
        // No length: the body runs to the end and the stream is not reused.
        let (r, keep) = read_kept(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!((r.body.as_str(), keep), ("all of it", false));
        // Cut short or not HTTP: an error, not a panic.
        assert!(read_kept(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").is_err());
        assert!(read_kept(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n").is_err());
        assert!(read_kept(b"garbage\r\n\r\n").is_err());
        assert!(read_kept(b"").is_err());
    }
}
