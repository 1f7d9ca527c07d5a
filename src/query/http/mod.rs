//! The HTTP/1.1 transport of the query server: one event-loop thread ([`event_loop`], on
//! `mio`) holds every connection, plain or TLS ([`tls`]); requests that wait for the disk
//! or run long go to a small pool of handler threads ([`pool`]).
//!
//! Why an event loop: a thread per connection lets idle or slow connections hold every
//! thread (256 idle connections once made `/health` wait 29 s). Here a waiting connection is
//! a few hundred bytes in the loop's table, and the loop never blocks, so a new connection
//! is read as soon as its bytes arrive whatever the others do. The handler decides per
//! request ([`Dispatch`]): what reads only the process's counters (`/health`, `/metrics`,
//! refusals) is answered on the loop thread at once, without a thread hop; a query is handed
//! to a dataflow worker from the loop and the worker sends its answer straight back to the
//! loop ([`Dispatch::Ask`], one hop each way); what reads files or trains goes to a handler
//! thread, and its answer comes back to the loop, which writes it.
//!
//! Invariants: a request head is at most [`head::MAX_HEAD`] bytes with at most
//! [`head::MAX_HEADERS`] headers and a body at most [`head::MAX_BODY`]; malformed input gets
//! a 4xx/5xx JSON answer (`{"error", "status"}`) and the connection is closed; nothing a
//! client sends panics or blocks the server; the [`Limits`] (connections, idle and request
//! clocks) hold whatever clients do. Responses always carry a length (no chunking) and are
//! written with TCP_NODELAY.

pub mod conn;
pub mod event_loop;
pub mod head;
pub mod pool;
pub mod tls;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

pub use head::{Head, HttpReply};
pub use pool::{Responder, Work};

use crate::output::metrics::Metrics;

/// Most handler threads at once (each runs one long request).
pub const MAX_HANDLER_THREADS: usize = 64;
/// File descriptors kept for the rest of the process (input files, Kafka, cluster links)
/// when the connection limit is fitted under the open-files limit.
const RESERVED_FDS: u64 = 256;

/// How a request is answered.
pub enum Dispatch {
    /// On the spot, on the loop thread: for what reads only counters (never blocks).
    Now(HttpReply),
    /// On a handler thread: for what waits for the disk or runs long.
    Later(Work),
    /// Started on the loop thread (it must not block: it hands the request on) and
    /// answered later from any thread through the [`Responder`]; when no answer comes
    /// within `timeout`, the loop answers with `timed_out()` instead and drops the late one.
    Ask(Ask),
}

/// A request answered from another thread without a thread waiting for it.
pub struct Ask {
    pub start: Box<dyn FnOnce(Responder) + Send>,
    pub timeout: Duration,
    pub timed_out: Box<dyn FnOnce() -> HttpReply + Send>,
}

/// Answers one request head (its body, if any, is ignored).
pub type Handler = dyn Fn(&Head) -> Dispatch + Send + Sync;

/// What the transport allows.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Connections held at once; beyond, the stalest gives way to the new one.
    pub max_connections: usize,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// A request head must arrive whole within this of its first byte (408), and an answer
    /// be taken by the client within this.
    pub request_timeout: Duration,
    /// Handler threads kept ready (more start while all are busy, up to
    /// [`MAX_HANDLER_THREADS`]).
    pub handler_threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            idle_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(10),
            handler_threads: 4,
        }
    }
}

/// A running transport. Dropping it without [`HttpServer::stop`] leaves its threads running
/// until the process ends.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<mio::Waker>,
    thread: JoinHandle<()>,
    limits: Limits,
}

impl HttpServer {
    /// Serves `listener` with `handler` (over TLS with `tls`), within `limits`; the
    /// connection limit is lowered to fit the open-files limit, which is first raised to its
    /// hard maximum.
    pub fn start(
        listener: TcpListener,
        mut limits: Limits,
        tls: Option<Arc<rustls::ServerConfig>>,
        handler: Arc<Handler>,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        let open_files = raise_open_files_limit();
        let fit = open_files.saturating_sub(RESERVED_FDS).max(16);
        if (limits.max_connections as u64) > fit {
            tracing::warn!(
                open_files,
                max_connections = fit,
                "the open-files limit allows fewer query connections than configured"
            );
            limits.max_connections = fit as usize;
        }
        listener.set_nonblocking(true)?;
        let mut listener = mio::net::TcpListener::from_std(listener);
        let poll = mio::Poll::new()?;
        poll.registry()
            .register(&mut listener, mio::Token(0), mio::Interest::READABLE)?;
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(1))?);
        let (done_tx, done_rx) = mpsc::channel();
        let pool = pool::Pool::start(
            limits.handler_threads,
            MAX_HANDLER_THREADS,
            done_tx.clone(),
            waker.clone(),
        )?;
        let stop = Arc::new(AtomicBool::new(false));
        let event_loop = event_loop::EventLoop::new(
            poll,
            listener,
            handler,
            pool,
            (done_tx, done_rx, waker.clone()),
            tls,
            limits,
            metrics,
            stop.clone(),
        );
        let thread = std::thread::Builder::new()
            .name("vigil-http".into())
            .spawn(move || event_loop.run())?;
        Ok(HttpServer {
            addr,
            stop,
            waker,
            thread,
            limits,
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The limits in force (the connection limit fitted to the open-files limit).
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Stops serving: closes every connection, lets the handler threads finish their
    /// current request and joins every thread.
    pub fn stop(self) {
        self.stop.store(true, SeqCst);
        let _ = self.waker.wake();
        let _ = self.thread.join();
    }
}

/// Raises the soft open-files limit to the hard one (a server holds a descriptor per
/// connection) and returns the soft limit in force.
pub fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!(error = %e, "cannot raise the open-files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use super::*;

    /// Echoes method and target; `/slow…` is answered by a handler thread after a pause,
    /// `/boom` panics there; `/ask…` is answered from another thread through a responder
    /// (`/ask-never` never, `/ask-late` after its 200 ms timeout).
    fn echo_server(limits: Limits) -> (HttpServer, Arc<Metrics>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let metrics = Arc::new(Metrics::default());
        let handler = |head: &Head| {
            let reply = HttpReply {
                status: if head.target == "/missing" { 404 } else { 200 },
                content_type: "text/plain",
                body: format!("{} {}", head.method, head.target),
            };
            if head.target.starts_with("/ask") {
                let pause = match head.target.as_str() {
                    "/ask-never" => None,
                    "/ask-late" => Some(Duration::from_millis(600)),
                    _ => Some(Duration::from_millis(20)),
                };
                Dispatch::Ask(Ask {
                    start: Box::new(move |responder| {
                        if let Some(pause) = pause {
                            std::thread::spawn(move || {
                                std::thread::sleep(pause);
                                responder.send(reply);
                            });
                        }
                    }),
                    timeout: Duration::from_millis(200),
                    timed_out: Box::new(|| HttpReply::error(503, "timed out")),
                })
            } else if head.target == "/boom" {
                Dispatch::Later(Box::new(|| panic!("a handler panics")))
            } else if head.target.starts_with("/slow") {
                Dispatch::Later(Box::new(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    reply
                }))
            } else {
                Dispatch::Now(reply)
            }
        };
        let server = HttpServer::start(listener, limits, None, Arc::new(handler), metrics.clone()).unwrap();
        (server, metrics)
    }

    fn exchange(addr: SocketAddr, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Reads from a kept-alive stream until the text ends with `want`.
    fn read_until(c: &mut TcpStream, want: &str) -> String {
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).ends_with(want) {
            let mut b = [0u8; 512];
            let n = c.read(&mut b).unwrap();
            assert!(n > 0, "closed before {want}: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&b[..n]);
        }
        String::from_utf8_lossy(&got).into_owned()
    }

    #[test]
    fn answers_kept_alive_pipelined_one_shot_and_head_requests_and_closes_bad_ones() {
        let (server, _) = echo_server(Limits::default());
        let addr = server.addr();
        // Pipelined requests on a kept-alive connection, some answered by a handler thread,
        // answered in order; then one that closes it.
        let out = exchange(
            addr,
            b"GET /slow1 HTTP/1.1\r\n\r\nGET /one HTTP/1.1\r\n\r\nGET /slow2 HTTP/1.1\r\n\r\nGET /missing HTTP/1.1\r\n\r\nPOST /three HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
        );
        let parts: Vec<&str> = out.split("HTTP/1.1 ").filter(|p| !p.is_empty()).collect();
        assert_eq!(parts.len(), 5, "{out}");
        assert!(
            parts[0].starts_with("200 OK")
                && parts[0].contains("Connection: keep-alive")
                && parts[0].ends_with("GET /slow1")
        );
        assert!(parts[1].ends_with("GET /one"));
        assert!(parts[2].ends_with("GET /slow2"));
        assert!(parts[3].starts_with("404 Not Found") && parts[3].ends_with("GET /missing"));
        assert!(parts[4].contains("Connection: close") && parts[4].ends_with("POST /three"));
        // HEAD: the length of the body, not the body.
        let out = exchange(addr, b"HEAD /h HTTP/1.0\r\n\r\n");
        assert!(
            out.contains("Content-Length: 7\r\n") && out.ends_with("\r\n\r\n"),
            "{out}"
        );
        // Garbage: a JSON 400 with its status, and the connection closed.
        let out = exchange(addr, b"\x00\x01\x02 garbage\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 400 Bad Request") && out.contains("\"status\":400"),
            "{out}"
        );
        let out = exchange(addr, b"GET health HTTP/1.1\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 400 Bad Request") && out.contains("must start with /"),
            "{out}"
        );
        // A panicking handler: a 500, and the server goes on.
        let out = exchange(addr, b"GET /boom HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 500"), "{out}");
        // A client that half-closes after its request still gets the answer.
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"GET /slow-half HTTP/1.1\r\n\r\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.ends_with("GET /slow-half"), "{out}");
        server.stop();
    }

    #[test]
    fn answers_asked_of_other_threads_come_in_order_and_a_late_one_is_replaced_by_the_timeout_answer() {
        let (server, _) = echo_server(Limits::default());
        let addr = server.addr();
        let out = exchange(
            addr,
            b"GET /ask1 HTTP/1.1\r\n\r\nGET /one HTTP/1.1\r\n\r\nGET /ask-never HTTP/1.1\r\n\r\nGET /ask-late HTTP/1.1\r\n\r\nGET /ask2 HTTP/1.1\r\n\r\nGET /two HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let parts: Vec<&str> = out.split("HTTP/1.1 ").filter(|p| !p.is_empty()).collect();
        assert_eq!(parts.len(), 6, "{out}");
        assert!(
            parts[0].starts_with("200 OK") && parts[0].ends_with("GET /ask1"),
            "{out}"
        );
        assert!(parts[1].ends_with("GET /one"), "{out}");
        assert!(parts[2].starts_with("503") && parts[2].contains("timed out"), "{out}");
        assert!(parts[3].starts_with("503") && parts[3].contains("timed out"), "{out}");
        assert!(
            parts[4].starts_with("200 OK") && parts[4].ends_with("GET /ask2"),
            "the late answer is dropped: {out}"
        );
        assert!(parts[5].ends_with("GET /two"), "{out}");
        server.stop();
    }

    #[test]
    fn more_kept_alive_connections_than_handler_threads_are_all_served_and_stop_closes_them() {
        let (server, metrics) = echo_server(Limits {
            handler_threads: 1,
            ..Limits::default()
        });
        let addr = server.addr();
        let mut conns: Vec<TcpStream> = (0..12).map(|_| TcpStream::connect(addr).unwrap()).collect();
        for round in 0..3 {
            for (i, c) in conns.iter_mut().enumerate() {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                c.write_all(format!("GET /slow/{round}/{i} HTTP/1.1\r\n\r\n").as_bytes())
                    .unwrap();
            }
            for (i, c) in conns.iter_mut().enumerate() {
                read_until(c, &format!("GET /slow/{round}/{i}"));
            }
        }
        assert_eq!(metrics.connections.accepted.load(SeqCst), 12);
        assert_eq!(metrics.connections.open.load(SeqCst), 12);
        server.stop();
        let mut b = [0u8; 16];
        assert_eq!(conns[0].read(&mut b).unwrap_or(0), 0, "closed by the stop");
    }

    #[test]
    fn at_the_connection_limit_the_stalest_connection_gives_way() {
        let (server, metrics) = echo_server(Limits {
            max_connections: 4,
            ..Limits::default()
        });
        let addr = server.addr();
        let mut held: Vec<TcpStream> = Vec::new();
        for i in 0..4 {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            c.write_all(format!("GET /{i} HTTP/1.1\r\n\r\n").as_bytes()).unwrap();
            read_until(&mut c, &format!("GET /{i}"));
            held.push(c);
        }
        // Connection 0 is the least recently active: a fifth connection takes its place.
        held[1].write_all(b"GET /again HTTP/1.1\r\n\r\n").unwrap();
        read_until(&mut held[1], "GET /again");
        let out = exchange(addr, b"GET /fifth HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(out.ends_with("GET /fifth"), "{out}");
        let mut b = [0u8; 16];
        assert_eq!(held[0].read(&mut b).unwrap_or(0), 0, "the stalest was closed");
        held[1].write_all(b"GET /still HTTP/1.1\r\n\r\n").unwrap();
        read_until(&mut held[1], "GET /still");
        assert_eq!(metrics.connections.evicted.load(SeqCst), 1);
        server.stop();
    }

    #[test]
    fn a_head_that_does_not_arrive_in_time_gets_a_408_and_idle_connections_are_closed() {
        let (server, metrics) = echo_server(Limits {
            idle_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        let addr = server.addr();
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        slow.write_all(b"GET /never-fin").unwrap();
        let mut idle = TcpStream::connect(addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

        let mut out = String::new();
        let _ = slow.read_to_string(&mut out);
        assert!(
            out.starts_with("HTTP/1.1 408") && out.contains("\"status\":408"),
            "{out}"
        );
        let mut b = [0u8; 16];
        assert_eq!(idle.read(&mut b).unwrap_or(0), 0, "the idle connection was closed");
        assert_eq!(metrics.connections.timed_out.load(SeqCst), 2);
        server.stop();
    }
}
