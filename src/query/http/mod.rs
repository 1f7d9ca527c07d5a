//! The HTTP/1.1 transport of the query server: connection threads that read a request,
//! hand it to the handler on the same thread and write the answer, over kept-alive or
//! one-shot connections.
//!
//! Why our own and not a general server: a query's answer comes from a dataflow worker, so
//! every thread hop on the way in or out waits for a core the workers keep busy. Here the
//! thread that accepted a connection parses, asks and answers: one wake-up on the way in,
//! one on the way back. A parsed request never waits in a queue for another thread.
//!
//! Invariants: at least `min_idle` threads wait in `accept` while the server runs; a thread
//! that takes a connection starts another when none would be left waiting, up to
//! [`MAX_CONNECTIONS`] (further connections wait in the kernel's backlog). A request head is
//! at most [`MAX_HEAD`] bytes and a body at most [`MAX_BODY`]; a connection idle for
//! [`IDLE_TIMEOUT`] is closed, and one that sends half a request for [`REQUEST_TIMEOUT`]
//! gets a 408. Malformed input gets a 4xx/5xx JSON answer and the connection is closed;
//! nothing a client sends panics or blocks the server. Responses always carry a length
//! (no chunking) and go out in one write with TCP_NODELAY.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most connections served at once (one thread each).
pub const MAX_CONNECTIONS: usize = 256;
/// Longest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request body (the API takes none; a small one is read and ignored).
pub const MAX_BODY: usize = 64 * 1024;
/// A kept-alive connection with no request for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A request must arrive whole within this once it has begun.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a waiting connection thread looks whether the server stops.
const STOP_CHECK: Duration = Duration::from_millis(200);

/// What a handler answers.
#[derive(Clone, Debug)]
pub struct HttpReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// Answers one request: (method, request target).
pub type Handler = dyn Fn(&str, &str) -> HttpReply + Send + Sync;

struct Shared {
    listener: TcpListener,
    metrics: Arc<crate::output::metrics::Metrics>,
    addr: SocketAddr,
    handler: Box<Handler>,
    stop: AtomicBool,
    /// Threads waiting in `accept`, and threads alive.
    idle: AtomicUsize,
    live: AtomicUsize,
    min_idle: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running transport. Dropping it without [`HttpServer::stop`] leaves its threads running
/// until the process ends.
pub struct HttpServer {
    shared: Arc<Shared>,
}

impl HttpServer {
    /// Serves `listener` with `handler`, keeping `min_idle` threads ready to accept.
    pub fn start(
        listener: TcpListener,
        min_idle: usize,
        handler: Box<Handler>,
        metrics: Arc<crate::output::metrics::Metrics>,
    ) -> std::io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            listener,
            metrics,
            addr,
            handler,
            stop: AtomicBool::new(false),
            idle: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            min_idle: min_idle.max(1),
            threads: Mutex::new(Vec::new()),
        });
        for _ in 0..shared.min_idle {
            spawn_acceptor(&shared)?;
        }
        Ok(HttpServer { shared })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Stops accepting, closes the connections once their current request is answered and
    /// joins every thread.
    pub fn stop(self) {
        self.shared.stop.store(true, SeqCst);
        // Threads blocked in accept wake up to a connection and see the flag; one may enter
        // accept after a round of these, so round after round until none is alive.
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        while self.shared.live.load(SeqCst) > 0 && Instant::now() < deadline {
            for _ in 0..self.shared.idle.load(SeqCst) {
                let _ = TcpStream::connect_timeout(&self.shared.addr, Duration::from_millis(200));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let threads: Vec<JoinHandle<()>> = match self.shared.threads.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => return,
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

fn spawn_acceptor(shared: &Arc<Shared>) -> std::io::Result<()> {
    shared.live.fetch_add(1, SeqCst);
    let n = shared.live.load(SeqCst);
    let for_thread = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("vigil-http-{n}"))
        .spawn(move || acceptor(for_thread));
    match spawned {
        Ok(handle) => {
            if let Ok(mut t) = shared.threads.lock() {
                t.push(handle);
            }
            Ok(())
        }
        Err(e) => {
            shared.live.fetch_sub(1, SeqCst);
            Err(e)
        }
    }
}

fn acceptor(shared: Arc<Shared>) {
    while !shared.stop.load(SeqCst) {
        shared.idle.fetch_add(1, SeqCst);
        let accepted = shared.listener.accept();
        let idle_left = shared.idle.fetch_sub(1, SeqCst) - 1;
        if shared.stop.load(SeqCst) {
            break;
        }
        match accepted {
            Ok((stream, _)) => {
                shared.metrics.connections.accepted.fetch_add(1, SeqCst);
                // Someone must go on accepting while this thread serves.
                if idle_left < shared.min_idle && shared.live.load(SeqCst) < MAX_CONNECTIONS {
                    if let Err(e) = spawn_acceptor(&shared) {
                        tracing::warn!(error = %e, "cannot start another query server thread");
                    }
                }
                serve(stream, &shared);
            }
            Err(e) => {
                // Out of file descriptors and the like: do not spin.
                tracing::debug!(error = %e, "accepting a connection");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        // Enough threads wait already: this one leaves.
        if shared.idle.load(SeqCst) >= shared.min_idle {
            break;
        }
    }
    shared.live.fetch_sub(1, SeqCst);
}

/// One parsed request head.
struct Head {
    method: String,
    target: String,
    /// Bytes of the head, and of the body that follows it.
    len: usize,
    body: usize,
    keep_alive: bool,
}

/// Why a request cannot be answered by the handler.
#[derive(Debug)]
struct Refusal {
    status: u16,
    message: String,
}

fn refuse(status: u16, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// Parses the head at the start of `buf`: Ok(None) while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Refusal> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(refuse(431, format!("the request head is over {MAX_HEAD} bytes")))
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(refuse(431, "more than 64 request headers")),
        Err(e) => return Err(refuse(400, format!("malformed HTTP request ({e})"))),
    };
    if len > MAX_HEAD {
        return Err(refuse(431, format!("the request head is over {MAX_HEAD} bytes")));
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some() {
        return Err(refuse(
            501,
            "request bodies with Transfer-Encoding are not supported; the API takes no body",
        ));
    }
    let body = match header("content-length") {
        None => 0,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| refuse(400, format!("Content-Length is not a number: {v:?}")))?,
    };
    if body > MAX_BODY {
        return Err(refuse(413, format!("the request body is over {MAX_BODY} bytes")));
    }
    let connection = header("connection").unwrap_or_default();
    let keep_alive = match req.version {
        Some(1) => !connection.split(',').any(|t| t.trim() == "close"),
        _ => connection.split(',').any(|t| t.trim() == "keep-alive"),
    };
    Ok(Some(Head {
        method: req.method.unwrap_or("GET").to_string(),
        target: req.path.unwrap_or("/").to_string(),
        len,
        body,
        keep_alive,
    }))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The whole response, head and body, for one write.
fn response(reply: &HttpReply, keep_alive: bool, head_only: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(reply.body.len() + 160);
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\nServer: vigil\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reply.status,
        reason(reply.status),
        reply.content_type,
        reply.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    if !head_only {
        out.extend_from_slice(reply.body.as_bytes());
    }
    out
}

fn refusal_reply(r: &Refusal) -> HttpReply {
    HttpReply {
        status: r.status,
        content_type: "application/json",
        body: serde_json::json!({ "error": r.message }).to_string(),
    }
}

/// Serves one connection until the client closes it, asks to, goes idle, or misbehaves.
fn serve(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    if stream.set_read_timeout(Some(STOP_CHECK)).is_err() || stream.set_write_timeout(Some(REQUEST_TIMEOUT)).is_err() {
        return;
    }
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut waiting_since = Instant::now();
    loop {
        // Answer every complete request in the buffer (pipelined ones in order).
        loop {
            let head = match parse_head(&buf) {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(refusal) => {
                    let _ = stream.write_all(&response(&refusal_reply(&refusal), false, false));
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            };
            if buf.len() < head.len + head.body {
                break;
            }
            let reply = (shared.handler)(&head.method, &head.target);
            let keep_alive = head.keep_alive && !shared.stop.load(SeqCst);
            let out = response(&reply, keep_alive, head.method == "HEAD");
            if stream.write_all(&out).is_err() || !keep_alive {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            buf.drain(..head.len + head.body);
            waiting_since = Instant::now();
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if shared.stop.load(SeqCst) {
                    return;
                }
                let waited = waiting_since.elapsed();
                if buf.is_empty() && waited >= IDLE_TIMEOUT {
                    return;
                }
                if !buf.is_empty() && waited >= REQUEST_TIMEOUT {
                    let refusal = refuse(
                        408,
                        format!(
                            "the request did not arrive whole within {} s",
                            REQUEST_TIMEOUT.as_secs()
                        ),
                    );
                    let _ = stream.write_all(&response(&refusal_reply(&refusal), false, false));
                    let _ = stream.shutdown(Shutdown::Both);
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo_server(min_idle: usize) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        HttpServer::start(
            listener,
            min_idle,
            Box::new(|method, target| HttpReply {
                status: if target == "/missing" { 404 } else { 200 },
                content_type: "text/plain",
                body: format!("{method} {target}"),
            }),
            Default::default(),
        )
        .unwrap()
    }

    fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn parses_heads_and_refuses_what_it_does_not_take() {
        let h = parse_head(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            (h.method.as_str(), h.target.as_str(), h.body, h.keep_alive),
            ("GET", "/a?b=1", 0, true)
        );
        let h = parse_head(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive, "HTTP/1.0 closes unless asked");
        let h = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
        let h = parse_head(b"POST /x HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
            .unwrap()
            .unwrap();
        assert_eq!((h.len, h.body), (39, 3));
        assert!(
            parse_head(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap().is_none(),
            "incomplete"
        );
        let status = |raw: &[u8]| parse_head(raw).err().map(|r| r.status);
        assert_eq!(status(b"\x00\x01 garbage\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET / HTTP/1.1\r\nContent-Length: lots\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"),
            Some(413)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(501)
        );
        let long = format!("GET /{} HTTP/1.1\r\n", "x".repeat(MAX_HEAD));
        assert_eq!(status(long.as_bytes()), Some(431));
    }

    #[test]
    fn answers_kept_alive_pipelined_one_shot_and_head_requests_and_closes_bad_ones() {
        let server = echo_server(2);
        let addr = server.addr();
        // Two pipelined requests on a kept-alive connection, then one that closes it.
        let out = exchange(
            addr,
            b"GET /one HTTP/1.1\r\n\r\nGET /missing HTTP/1.1\r\n\r\nPOST /three HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        );
        let parts: Vec<&str> = out.split("HTTP/1.1 ").filter(|p| !p.is_empty()).collect();
        assert_eq!(parts.len(), 3, "{out}");
        assert!(
            parts[0].starts_with("200 OK")
                && parts[0].contains("Connection: keep-alive")
                && parts[0].ends_with("GET /one")
        );
        assert!(parts[1].starts_with("404 Not Found") && parts[1].ends_with("GET /missing"));
        assert!(parts[2].contains("Connection: close") && parts[2].ends_with("POST /three"));
        // HEAD: the length of the body, not the body.
        let out = exchange(addr, b"HEAD /h HTTP/1.0\r\n\r\n");
        assert!(
            out.contains("Content-Length: 7\r\n") && out.ends_with("\r\n\r\n"),
            "{out}"
        );
        // Garbage: a JSON 400 and the connection closed.
        let out = exchange(addr, b"\x00\x01\x02 garbage\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 400 Bad Request") && out.contains("\"error\""),
            "{out}"
        );
        server.stop();
    }

    #[test]
    fn more_kept_alive_connections_than_threads_are_all_served_and_stop_joins_them() {
        let server = echo_server(1);
        let addr = server.addr();
        let mut conns: Vec<TcpStream> = (0..12).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for round in 0..3 {
            for (i, c) in conns.iter_mut().enumerate() {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                c.write_all(format!("GET /{round}/{i} HTTP/1.1\r\n\r\n").as_bytes())
                    .unwrap();
                let mut got = Vec::new();
                let want = format!("GET /{round}/{i}");
                while !String::from_utf8_lossy(&got).ends_with(&want) {
                    let mut b = [0u8; 512];
                    let n = c.read(&mut b).unwrap();
                    assert!(n > 0, "closed before the answer to {want}");
                    got.extend_from_slice(&b[..n]);
                }
            }
        }
        // Stopping with connections open (idle, kept alive) returns.
        server.stop();
        let mut b = [0u8; 16];
        assert_eq!(conns[0].read(&mut b).unwrap_or(0), 0, "closed by the stop");
    }
}
