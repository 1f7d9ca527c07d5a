//! One client connection of the event loop: its socket (plain or TLS), the bytes read and
//! not yet answered, the answer bytes not yet written, and its clocks.
//!
//! Invariants: every socket operation is non-blocking and stops at `WouldBlock`; at most
//! [`READ_CAP`] bytes of request wait in `input` (a whole request of the largest allowed
//! size fits, so a cap never blocks a request that may be answered); TLS records are
//! decrypted as they arrive and answers are encrypted as they are queued, so `input` and
//! [`Conn::queue`] always see plain HTTP.

use std::io::{ErrorKind, Read, Write};
use std::net::IpAddr;
use std::time::Instant;

use super::head::{MAX_BODY, MAX_HEAD};

/// Most request bytes held for one connection: a whole request of the largest size.
pub const READ_CAP: usize = MAX_HEAD + MAX_BODY + 1;

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes arrived (plain HTTP bytes, or TLS records that may have held none).
    Some,
    /// Nothing more for now.
    Nothing,
    /// The client has finished sending.
    Eof,
    /// The connection is broken (or the TLS session failed).
    Broken,
}

pub struct Conn {
    pub stream: mio::net::TcpStream,
    pub peer: IpAddr,
    tls: Option<Box<rustls::ServerConnection>>,
    /// Plain request bytes read and not yet answered.
    pub input: Vec<u8>,
    /// Plain-socket answer bytes not yet written (TLS keeps its own).
    output: Vec<u8>,
    written: usize,
    /// Tells the connection apart from a later one in the same slot.
    pub generation: u64,
    /// A request of this connection is with a handler thread.
    pub busy: bool,
    /// The client has finished sending.
    pub peer_done: bool,
    /// Close once the queued answer is written.
    pub closing: bool,
    /// When the request under way (or the TLS handshake) began.
    pub started: Option<Instant>,
    /// When anything last happened on the connection.
    pub last_active: Instant,
    /// Since when answer bytes wait to be written.
    pub write_since: Option<Instant>,
    /// The interest registered includes WRITABLE.
    pub writable_interest: bool,
}

impl Conn {
    pub fn new(
        stream: mio::net::TcpStream,
        peer: IpAddr,
        tls: Option<rustls::ServerConnection>,
        generation: u64,
        now: Instant,
    ) -> Conn {
        Conn {
            stream,
            peer,
            tls: tls.map(Box::new),
            input: Vec::new(),
            output: Vec::new(),
            written: 0,
            generation,
            busy: false,
            peer_done: false,
            closing: false,
            started: None,
            last_active: now,
            write_since: None,
            writable_interest: false,
        }
    }

    /// The TLS handshake is under way.
    pub fn handshaking(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.is_handshaking())
    }

    /// Reads what the socket has, up to [`READ_CAP`] bytes of request held.
    pub fn read(&mut self, scratch: &mut [u8]) -> ReadOutcome {
        let mut got = ReadOutcome::Nothing;
        while self.input.len() < READ_CAP {
            let outcome = match self.tls.as_deref_mut() {
                None => read_plain(&mut self.stream, scratch, &mut self.input),
                Some(tls) => read_tls(tls, &mut self.stream, scratch, &mut self.input),
            };
            match outcome {
                ReadOutcome::Some => got = ReadOutcome::Some,
                ReadOutcome::Nothing => return got,
                end => return end,
            }
        }
        got
    }

    /// Queues an answer (encrypting it on a TLS connection).
    pub fn queue(&mut self, bytes: &[u8], now: Instant) {
        match self.tls.as_deref_mut() {
            None => self.output.extend_from_slice(bytes),
            Some(tls) => {
                // Unlimited plaintext buffer (set at accept): write_all cannot stall.
                let _ = tls.writer().write_all(bytes);
            }
        }
        self.write_since.get_or_insert(now);
    }

    /// Bytes wait to be written (answers, or TLS handshake records).
    pub fn wants_write(&self) -> bool {
        match self.tls.as_deref() {
            None => self.written < self.output.len(),
            Some(tls) => tls.wants_write(),
        }
    }

    /// Writes what it can; Err when the connection is broken.
    pub fn flush(&mut self) -> std::io::Result<()> {
        match self.tls.as_deref_mut() {
            None => {
                while self.written < self.output.len() {
                    match self.stream.write(&self.output[self.written..]) {
                        Ok(0) => return Err(ErrorKind::WriteZero.into()),
                        Ok(n) => self.written += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                if self.written == self.output.len() {
                    self.output = Vec::new();
                    self.written = 0;
                }
            }
            Some(tls) => {
                while tls.wants_write() {
                    match tls.write_tls(&mut self.stream) {
                        Ok(0) => return Err(ErrorKind::WriteZero.into()),
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if !self.wants_write() {
            self.write_since = None;
        }
        Ok(())
    }

    /// Says goodbye on a TLS connection (close_notify), best effort.
    pub fn close_tls(&mut self) {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let _ = tls.write_tls(&mut self.stream);
        }
    }
}

fn read_plain(stream: &mut mio::net::TcpStream, scratch: &mut [u8], input: &mut Vec<u8>) -> ReadOutcome {
    let room = (READ_CAP - input.len()).min(scratch.len());
    loop {
        return match stream.read(&mut scratch[..room]) {
            Ok(0) => ReadOutcome::Eof,
            Ok(n) => {
                input.extend_from_slice(&scratch[..n]);
                ReadOutcome::Some
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => ReadOutcome::Nothing,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => ReadOutcome::Broken,
        };
    }
}

fn read_tls(
    tls: &mut rustls::ServerConnection,
    stream: &mut mio::net::TcpStream,
    scratch: &mut [u8],
    input: &mut Vec<u8>,
) -> ReadOutcome {
    let arrived = loop {
        match tls.read_tls(stream) {
            Ok(0) => break ReadOutcome::Eof,
            Ok(_) => break ReadOutcome::Some,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break ReadOutcome::Nothing,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return ReadOutcome::Broken,
        }
    };
    if tls.process_new_packets().is_err() {
        // The alert rustls queued tells the client why.
        let _ = tls.write_tls(stream);
        return ReadOutcome::Broken;
    }
    // Decrypted bytes: as many as fit.
    loop {
        let room = (READ_CAP - input.len()).min(scratch.len());
        if room == 0 {
            break;
        }
        match tls.reader().read(&mut scratch[..room]) {
            Ok(0) => return ReadOutcome::Eof, // close_notify
            Ok(n) => input.extend_from_slice(&scratch[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => return ReadOutcome::Eof, // the peer closed without close_notify
        }
    }
    arrived
}
