//! The event loop: one thread that accepts every connection, reads every request, answers
//! what needs no engine on the spot and hands the rest to the handler [`pool`](super::pool).
//!
//! Invariants: no socket operation here blocks, so an idle or slow connection costs the
//! loop nothing while it waits; a connection holds at most one request at a handler at a
//! time (pipelined requests are answered in order); a request head must arrive whole within
//! `request_timeout` of its first byte (408), an idle connection is closed after
//! `idle_timeout`, an answer not taken by the client within `request_timeout` closes the
//! connection; an answer asked of another thread ([`Dispatch::Ask`]) that does not come
//! within its timeout is replaced by the request's timeout answer. At `max_connections` a new connection is still accepted: the least recently
//! active connection not waiting for a handler, of the address that holds the most
//! connections, is closed to make room (or, out of file descriptors, one such connection is
//! closed and the accept tried again). Handler answers are matched to their connection by
//! slot and generation, so an answer for a connection closed meanwhile is dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

use super::conn::{Conn, ReadOutcome, READ_CAP};
use super::head::{self, HttpReply};
use super::pool::{Done, Job, Pool, Responder};
use super::{Ask, Dispatch, Handler, Limits};
use crate::output::metrics::Metrics;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Connection slot `i` is token `i + FIRST`.
const FIRST: usize = 2;
/// How often the clocks of the connections are looked at.
const SWEEP: Duration = Duration::from_millis(100);

/// A request asked of another thread, waiting for its answer.
struct Asked {
    generation: u64,
    keep_alive: bool,
    head_only: bool,
    deadline: Instant,
    timed_out: Box<dyn FnOnce() -> HttpReply + Send>,
}

pub struct EventLoop {
    pub poll: Poll,
    pub listener: mio::net::TcpListener,
    pub handler: Arc<Handler>,
    pub pool: Pool,
    pub done: mpsc::Receiver<Done>,
    /// Where answers asked of other threads are sent back, and how the loop is woken.
    answers: mpsc::Sender<Done>,
    waker: Arc<mio::Waker>,
    /// The requests asked of another thread, by connection slot.
    asked: HashMap<usize, Asked>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    pub stop: Arc<AtomicBool>,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    per_peer: HashMap<IpAddr, usize>,
    open: usize,
    generation: u64,
    /// An accept failed (out of file descriptors): try again at the next sweep, since the
    /// listener does not signal connections already waiting.
    accept_again: bool,
    scratch: Vec<u8>,
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        poll: Poll,
        listener: mio::net::TcpListener,
        handler: Arc<Handler>,
        pool: Pool,
        (answers, done, waker): (mpsc::Sender<Done>, mpsc::Receiver<Done>, Arc<mio::Waker>),
        tls: Option<Arc<rustls::ServerConfig>>,
        limits: Limits,
        metrics: Arc<Metrics>,
        stop: Arc<AtomicBool>,
    ) -> EventLoop {
        EventLoop {
            poll,
            listener,
            handler,
            pool,
            done,
            answers,
            waker,
            asked: HashMap::new(),
            tls,
            limits,
            metrics,
            stop,
            conns: Vec::new(),
            free: Vec::new(),
            per_peer: HashMap::new(),
            open: 0,
            generation: 0,
            accept_again: false,
            scratch: vec![0; 16 * 1024],
        }
    }

    /// Serves until the stop flag is set (and the waker woken); then closes every
    /// connection and stops the handler threads.
    pub fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut last_sweep = Instant::now();
        while !self.stop.load(SeqCst) {
            if let Err(e) = self.poll.poll(&mut events, Some(SWEEP)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    tracing::error!(error = %e, "the query server's event loop failed");
                    break;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => self.drive(t - FIRST),
                }
            }
            self.take_answers();
            if last_sweep.elapsed() >= SWEEP {
                last_sweep = Instant::now();
                self.sweep(last_sweep);
            }
        }
        for i in 0..self.conns.len() {
            self.close(i);
        }
        self.pool.stop();
    }

    fn accept(&mut self) {
        self.accept_again = false;
        loop {
            match self.listener.accept() {
                Ok((stream, peer)) => self.admit(stream, peer.ip()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    // Out of file descriptors (EMFILE/ENFILE) and the like: close the
                    // stalest connection and try again, later if nothing could be closed.
                    tracing::debug!(error = %e, "accepting a connection");
                    if !self.evict() {
                        self.accept_again = true;
                        return;
                    }
                }
            }
        }
    }

    fn admit(&mut self, mut stream: mio::net::TcpStream, peer: IpAddr) {
        let metrics = self.metrics.clone();
        let m = &metrics.connections;
        m.accepted.fetch_add(1, Relaxed);
        if self.open >= self.limits.max_connections && !self.evict() {
            // Every connection waits for a handler: this one cannot be served now.
            return;
        }
        let _ = stream.set_nodelay(true);
        let tls = match &self.tls {
            None => None,
            Some(config) => match rustls::ServerConnection::new(config.clone()) {
                Ok(mut c) => {
                    c.set_buffer_limit(None);
                    Some(c)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start a TLS session");
                    return;
                }
            },
        };
        let index = self.free.pop().unwrap_or_else(|| {
            self.conns.push(None);
            self.conns.len() - 1
        });
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(index + FIRST), Interest::READABLE)
        {
            tracing::debug!(error = %e, "registering a connection");
            self.free.push(index);
            return;
        }
        self.generation += 1;
        self.conns[index] = Some(Conn::new(stream, peer, tls, self.generation, Instant::now()));
        self.open += 1;
        *self.per_peer.entry(peer).or_default() += 1;
        m.open.store(self.open as u64, Relaxed);
        // A connection that is readable already (its request came with the handshake).
        self.drive(index);
    }

    /// Closes one connection to make room: of the address with the most connections (or
    /// of any), the least recently active one not waiting for a handler. False when every
    /// connection waits for a handler.
    fn evict(&mut self) -> bool {
        let heaviest = self.per_peer.iter().max_by_key(|(_, n)| **n).map(|(ip, _)| *ip);
        let pick = |only: Option<IpAddr>| {
            self.conns
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
                .filter(|(_, c)| !c.busy && only.is_none_or(|ip| c.peer == ip))
                .min_by_key(|(_, c)| c.last_active)
                .map(|(i, _)| i)
        };
        match pick(heaviest).or_else(|| pick(None)) {
            Some(victim) => {
                self.metrics.connections.evicted.fetch_add(1, Relaxed);
                self.close(victim);
                true
            }
            None => false,
        }
    }

    fn close(&mut self, index: usize) {
        let Some(mut conn) = self.conns.get_mut(index).and_then(Option::take) else {
            return;
        };
        conn.close_tls();
        let _ = self.poll.registry().deregister(&mut conn.stream);
        drop(conn.stream);
        self.asked.remove(&index);
        self.free.push(index);
        self.open -= 1;
        if let Some(n) = self.per_peer.get_mut(&conn.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&conn.peer);
            }
        }
        self.metrics.connections.open.store(self.open as u64, Relaxed);
        if self.open == 0 {
            // After a flood: give the slots' memory back.
            self.conns = Vec::new();
            self.free = Vec::new();
            self.per_peer = HashMap::new();
        }
    }

    /// Reads, answers and writes what a connection allows now.
    fn drive(&mut self, index: usize) {
        let now = Instant::now();
        loop {
            let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
                return;
            };
            if !conn.peer_done && !conn.closing {
                match conn.read(&mut self.scratch) {
                    ReadOutcome::Some => conn.last_active = now,
                    ReadOutcome::Nothing => {}
                    ReadOutcome::Eof => conn.peer_done = true,
                    ReadOutcome::Broken => return self.close(index),
                }
            }
            // A read that stopped at the cap (not at WouldBlock) goes on once requests have
            // been taken off the input.
            let full = conn.input.len() >= READ_CAP;
            if !(self.answer_buffered(index, now) && full) {
                break;
            }
        }
        self.finish(index, now);
    }

    /// Answers the complete requests at the head of the connection's input, in order, until
    /// one goes to a handler. True when it answered or handed on any.
    fn answer_buffered(&mut self, index: usize, now: Instant) -> bool {
        let mut any = false;
        loop {
            let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
                return any;
            };
            if conn.busy || conn.closing || conn.input.is_empty() {
                return any;
            }
            let head = match head::parse_head(&conn.input) {
                Ok(Some(head)) if conn.input.len() >= head.len + head.body => head,
                Ok(_) => return any,
                Err(refusal) => {
                    conn.queue(&head::response(&refusal.reply(), false, false), now);
                    conn.closing = true;
                    conn.input = Vec::new();
                    return true;
                }
            };
            any = true;
            conn.input.drain(..head.len + head.body);
            conn.started = None;
            let keep_alive = head.keep_alive && !self.stop.load(Relaxed);
            let head_only = head.method == "HEAD";
            match (self.handler)(&head) {
                Dispatch::Now(reply) => {
                    conn.queue(&head::response(&reply, keep_alive, head_only), now);
                    conn.closing |= !keep_alive;
                }
                Dispatch::Later(work) => {
                    conn.busy = true;
                    let job = Job {
                        index,
                        generation: conn.generation,
                        keep_alive,
                        head_only,
                        work,
                    };
                    self.pool.submit(job);
                }
                Dispatch::Ask(Ask {
                    start,
                    timeout,
                    timed_out,
                }) => {
                    conn.busy = true;
                    let generation = conn.generation;
                    let asked = Asked {
                        generation,
                        keep_alive,
                        head_only,
                        deadline: now + timeout,
                        timed_out,
                    };
                    self.asked.insert(index, asked);
                    start(Responder {
                        index,
                        generation,
                        keep_alive,
                        head_only,
                        done: self.answers.clone(),
                        waker: self.waker.clone(),
                    });
                }
            }
        }
    }

    /// Writes what can be written, closes a finished connection, sets its clocks and the
    /// readiness it waits for.
    fn finish(&mut self, index: usize, now: Instant) {
        let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
            return;
        };
        if conn.flush().is_err() {
            return self.close(index);
        }
        // The client is done sending and nothing it sent is left to answer.
        if conn.peer_done && !conn.busy {
            conn.closing = true;
        }
        if conn.closing && !conn.busy && !conn.wants_write() {
            return self.close(index);
        }
        conn.started = if conn.input.is_empty() && !conn.handshaking() {
            None
        } else {
            conn.started.or(Some(now))
        };
        if conn.input.is_empty() && conn.input.capacity() > 4096 {
            conn.input = Vec::new();
        }
        let writable = conn.wants_write();
        if writable != conn.writable_interest {
            let interest = if writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if self
                .poll
                .registry()
                .reregister(&mut conn.stream, Token(index + FIRST), interest)
                .is_err()
            {
                return self.close(index);
            }
            conn.writable_interest = writable;
        }
    }

    /// Queues the answers the handler threads finished and goes on with their connections.
    fn take_answers(&mut self) {
        let now = Instant::now();
        while let Ok(done) = self.done.try_recv() {
            let Some(conn) = self.conns.get_mut(done.index).and_then(Option::as_mut) else {
                continue;
            };
            if conn.generation != done.generation {
                continue; // closed meanwhile; the slot serves another connection now
            }
            conn.busy = false;
            conn.last_active = now;
            self.asked.remove(&done.index);
            conn.queue(&head::response(&done.reply, done.keep_alive, done.head_only), now);
            conn.closing |= !done.keep_alive;
            self.drive(done.index);
        }
    }

    /// Closes the connections whose clocks ran out.
    fn sweep(&mut self, now: Instant) {
        if self.accept_again {
            self.accept();
        }
        self.expire_asked(now);
        let limits = self.limits;
        let mut late = Vec::new();
        let mut idle = Vec::new();
        for (i, conn) in self.conns.iter().enumerate() {
            let Some(c) = conn else { continue };
            if c.busy {
                continue;
            }
            if c.write_since.is_some_and(|t| now - t >= limits.request_timeout) {
                idle.push(i); // the client does not take its answer
            } else if c.started.is_some_and(|t| now - t >= limits.request_timeout) && !c.closing {
                late.push(i);
            } else if c.input.is_empty() && !c.wants_write() && now - c.last_active >= limits.idle_timeout {
                idle.push(i);
            }
        }
        let metrics = self.metrics.clone();
        let timed_out = &metrics.connections.timed_out;
        for i in idle {
            timed_out.fetch_add(1, Relaxed);
            self.close(i);
        }
        for i in late {
            timed_out.fetch_add(1, Relaxed);
            let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let reply = HttpReply::error(
                408,
                &format!(
                    "the request did not arrive whole within {} s of its first byte",
                    limits.request_timeout.as_secs_f64()
                ),
            );
            conn.queue(&head::response(&reply, false, false), now);
            conn.closing = true;
            conn.input = Vec::new();
            self.finish(i, now);
        }
    }

    /// Answers the asked requests whose deadline passed with their timeout answer; the
    /// connection takes a new generation, so the late answer, if it comes, is dropped.
    fn expire_asked(&mut self, now: Instant) {
        let expired: Vec<usize> = self
            .asked
            .iter()
            .filter(|(_, a)| a.deadline <= now)
            .map(|(i, _)| *i)
            .collect();
        for index in expired {
            let Some(asked) = self.asked.remove(&index) else {
                continue;
            };
            let Some(conn) = self.conns.get_mut(index).and_then(Option::as_mut) else {
                continue;
            };
            if conn.generation != asked.generation || !conn.busy {
                continue;
            }
            self.generation += 1;
            conn.generation = self.generation;
            conn.busy = false;
            conn.last_active = now;
            let reply = (asked.timed_out)();
            conn.queue(&head::response(&reply, asked.keep_alive, asked.head_only), now);
            conn.closing |= !asked.keep_alive;
            self.drive(index);
        }
    }
}
