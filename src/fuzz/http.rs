//! Random HTTP requests for the query server: valid requests built from the API's routes,
//! then mutated the way hostile or broken clients do — methods, targets, versions, headers
//! (duplicated, conflicting, oversized, too many), bodies, truncation, byte flips, splices,
//! bare LFs, pipelining, and raw bytes — sent each on a connection of its own.
//!
//! Invariants: a case is a pure function of (seed, stream, index), so a failing case can be
//! made again from the figures a campaign prints; every exchange is bounded (an answer or a
//! close within `hang_after`, else it counts as a hang); an answer must be HTTP/1.1 with a
//! 3-digit status, and a 500 (what the server answers for a caught panic) counts as a panic.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::generate::Rng64;

/// What a campaign found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct HttpReport {
    pub cases: u64,
    /// Answers by status class: 2xx, 3xx, 4xx, 5xx.
    pub answered_2xx: u64,
    pub answered_4xx: u64,
    pub answered_5xx: u64,
    /// Closed by the server without an answer (e.g. a client that sent nothing whole).
    pub closed_silently: u64,
    /// Answers that were not HTTP/1.1 with a status.
    pub malformed_answers: u64,
    /// 500 answers: a handler panicked (caught by the server).
    pub panics: u64,
    /// No answer and no close within the bound.
    pub hangs: u64,
    /// The connection could not be made (counted, retried once after a pause).
    pub connect_failures: u64,
}

impl HttpReport {
    fn add(&mut self, o: &HttpReport) {
        self.cases += o.cases;
        self.answered_2xx += o.answered_2xx;
        self.answered_4xx += o.answered_4xx;
        self.answered_5xx += o.answered_5xx;
        self.closed_silently += o.closed_silently;
        self.malformed_answers += o.malformed_answers;
        self.panics += o.panics;
        self.hangs += o.hangs;
        self.connect_failures += o.connect_failures;
    }
}

/// A campaign's settings.
#[derive(Clone, Debug)]
pub struct HttpCampaign {
    pub addr: SocketAddr,
    pub cases: u64,
    pub seed: u64,
    /// Client threads, each its own stream of cases.
    pub clients: usize,
    /// Longest wait for an answer or a close.
    pub hang_after: Duration,
    /// Device ids known to the server (targets use them as well as made-up ones).
    pub devices: Vec<String>,
    /// Feature names, detectors and windows the server knows.
    pub features: Vec<String>,
    pub detectors: Vec<String>,
    /// Sent as a bearer token in most cases, when the server wants one.
    pub token: Option<String>,
}

/// Runs a campaign; `progress` is called with the cases done so far every few thousand.
pub fn run_campaign(c: &HttpCampaign, progress: &(dyn Fn(u64) + Sync)) -> HttpReport {
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let clients = c.clients.max(1) as u64;
    let reports: Vec<HttpReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|stream| {
                let (done, stop) = (&done, &stop);
                s.spawn(move || {
                    let mut report = HttpReport::default();
                    let share = c.cases / clients + u64::from(stream < c.cases % clients);
                    let mut gen = RequestGen::new(c, stream);
                    for i in 0..share {
                        if stop.load(Relaxed) {
                            break;
                        }
                        let case = gen.case(i);
                        report.add(&exchange(c.addr, &case, c.hang_after));
                        let n = done.fetch_add(1, Relaxed) + 1;
                        if n % 10_000 == 0 {
                            progress(n);
                        }
                    }
                    report
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    stop.store(true, Relaxed);
                    HttpReport {
                        panics: 1,
                        ..HttpReport::default()
                    }
                })
            })
            .collect()
    });
    let mut total = HttpReport::default();
    for r in &reports {
        total.add(r);
    }
    total
}

/// Sends one case on a connection of its own, says it is done sending, and reads until
/// the server closes.
pub fn exchange(addr: SocketAddr, case: &[u8], hang_after: Duration) -> HttpReport {
    let mut report = HttpReport {
        cases: 1,
        ..HttpReport::default()
    };
    let mut stream = match TcpStream::connect_timeout(&addr, hang_after) {
        Ok(s) => s,
        Err(_) => {
            // Out of ephemeral ports for a moment (TIME_WAIT): once more after a pause.
            report.connect_failures += 1;
            std::thread::sleep(Duration::from_millis(50));
            match TcpStream::connect_timeout(&addr, hang_after) {
                Ok(s) => s,
                Err(_) => {
                    report.hangs += 1;
                    return report;
                }
            }
        }
    };
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(hang_after));
    // The server may refuse and close before the whole case is sent: not an error.
    let _ = stream.write_all(case);
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + hang_after;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            report.hangs += 1;
            return report;
        }
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                report.hangs += 1;
                return report;
            }
            // Reset by the server after a refusal while bytes were still coming: a close.
            Err(_) => break,
        }
    }
    classify(&answer, &mut report);
    report
}

/// Counts the answers in what the server sent back (several for pipelined requests).
fn classify(answer: &[u8], report: &mut HttpReport) {
    if answer.is_empty() {
        report.closed_silently += 1;
        return;
    }
    let text = String::from_utf8_lossy(answer);
    if !text.starts_with("HTTP/1.1 ") {
        report.malformed_answers += 1;
        return;
    }
    for part in text.split("HTTP/1.1 ").skip(1) {
        let status = part.get(..3).and_then(|s| s.parse::<u16>().ok());
        match status {
            Some(200..=299) => report.answered_2xx += 1,
            Some(400..=499) => report.answered_4xx += 1,
            Some(500) if part.contains("internal error") => {
                report.answered_5xx += 1;
                report.panics += 1;
            }
            Some(500..=599) => report.answered_5xx += 1,
            // "HTTP/1.1 " inside a body (an echoed target): not an answer of its own.
            _ => {}
        }
    }
}

/// Makes cases: a valid request, then mutations.
pub struct RequestGen {
    rng: Rng64,
    devices: Vec<String>,
    features: Vec<String>,
    detectors: Vec<String>,
    token: Option<String>,
    host: String,
}

/// Methods other than GET (which most cases use).
const METHODS: [&str; 8] = ["HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "G3T"];
/// Versions other than HTTP/1.1 (which most cases use).
const VERSIONS: [&str; 4] = ["HTTP/1.0", "HTTP/2.0", "HTTP/1.12", "HTTP/1"];
const WINDOWS: [&str; 6] = ["30s", "1m", "5m", "1h", "2m", "0s"];
const ODD: [&str; 14] = [
    "%",
    "%zz",
    "%C3%28",
    "%00",
    "..",
    "../..",
    "%2F",
    "\u{e9}t\u{e9}",
    "a b",
    "?",
    "#",
    "&&",
    "=",
    "-1",
];
const NUMBERS: [&str; 12] = [
    "0",
    "1",
    "10",
    "-1",
    "1e3",
    "18446744073709551616",
    "9223372036854775807",
    "-9223372036854775808",
    "0x10",
    "",
    "NaN",
    "100000000",
];

impl RequestGen {
    pub fn new(c: &HttpCampaign, stream: u64) -> Self {
        RequestGen {
            rng: Rng64::stream(c.seed, 0x4854_5450 ^ stream),
            devices: if c.devices.is_empty() {
                vec!["vm-0001".into()]
            } else {
                c.devices.clone()
            },
            features: if c.features.is_empty() {
                vec!["events_1m".into()]
            } else {
                c.features.clone()
            },
            detectors: c.detectors.clone(),
            token: c.token.clone(),
            host: c.addr.to_string(),
        }
    }

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[self.rng.below(from.len() as u64) as usize]
    }

    fn pick_owned(&mut self, from: &[String]) -> String {
        if from.is_empty() {
            return String::new();
        }
        from[self.rng.below(from.len() as u64) as usize].clone()
    }

    fn number(&mut self) -> String {
        if self.rng.chance(0.6) {
            self.rng.below(2_000).to_string()
        } else {
            self.pick(&NUMBERS).to_string()
        }
    }

    fn device(&mut self) -> String {
        match self.rng.below(10) {
            0 => self.pick(&ODD).to_string(),
            1 => "x".repeat(1 + self.rng.below(3_000) as usize),
            2 => format!("unknown-{}", self.rng.below(1_000)),
            _ => crate::query::request::percent_encode(&self.pick_owned(&self.devices.clone())),
        }
    }

    /// A target the API knows, with plausible (and some wrong) parameters.
    fn target(&mut self) -> String {
        let mut t = match self.rng.below(12) {
            0 => "/health".to_string(),
            1 => "/metrics".to_string(),
            2 => "/features".to_string(),
            3 => "/models".to_string(),
            4 => format!("/models/{}", self.number()),
            // Rare: each retraining trains and registers a model.
            5 if self.rng.chance(0.01) => format!("/models/retrain?promote={}", self.pick(&["false", "maybe"])),
            5 | 6 => format!("/devices/{}", self.device()),
            7 => {
                let mut t = format!("/devices/{}/history", self.device());
                let params = [
                    ("window", self.pick(&WINDOWS).to_string()),
                    ("from", self.number()),
                    ("to", self.number()),
                    ("limit", self.number()),
                ];
                t += &self.query(&params);
                t
            }
            8 => {
                let detector = if self.rng.chance(0.7) {
                    self.pick_owned(&self.detectors.clone())
                } else {
                    self.pick(&ODD).to_string()
                };
                let params = [
                    ("detector", detector),
                    ("since", self.number()),
                    ("limit", self.number()),
                ];
                format!("/anomalies{}", self.query(&params))
            }
            9 => {
                let feature = if self.rng.chance(0.8) {
                    self.pick_owned(&self.features.clone())
                } else {
                    self.pick(&ODD).to_string()
                };
                let params = [("feature", feature), ("k", self.number())];
                format!("/top{}", self.query(&params))
            }
            10 => format!("/{}", self.pick(&ODD)),
            _ => "/".to_string(),
        };
        match self.rng.below(40) {
            0 => t = t.trim_start_matches('/').to_string(), // no leading slash
            1 => t = format!("http://{}{t}", self.host),    // absolute-form
            2 => t += "?unknown=1",
            3 => t = format!("{t}{}", "/x".repeat(self.rng.below(5_000) as usize)),
            _ => {}
        }
        t
    }

    /// A query string of some of `params` (each kept with probability 0.7), sometimes
    /// with a repeated or empty parameter.
    fn query(&mut self, params: &[(&str, String)]) -> String {
        let mut parts: Vec<String> = params
            .iter()
            .filter(|_| self.rng.chance(0.7))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        if self.rng.chance(0.05) && !parts.is_empty() {
            parts.push(parts[0].clone());
        }
        if self.rng.chance(0.03) {
            parts.push(String::new());
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!("?{}", parts.join("&"))
        }
    }

    /// A valid request (or nearly: one field chosen wrong), as bytes.
    fn request(&mut self) -> Vec<u8> {
        let method = if self.rng.chance(0.75) {
            "GET"
        } else {
            self.pick(&METHODS)
        };
        let target = self.target();
        let version = if self.rng.chance(0.85) {
            "HTTP/1.1"
        } else {
            self.pick(&VERSIONS)
        };
        let mut head = format!("{method} {target} {version}\r\n");
        if self.rng.chance(0.9) {
            head += &format!("Host: {}\r\n", self.host);
        }
        if let Some(token) = self.token.clone() {
            match self.rng.below(10) {
                0 => head += "Authorization: Bearer wrong-token-wrong-token\r\n",
                1 => head += &format!("Authorization: Basic {token}\r\n"),
                2 => {}
                _ => head += &format!("Authorization: Bearer {token}\r\n"),
            }
        }
        let mut body = Vec::new();
        match self.rng.below(14) {
            0 => head += "Connection: close\r\n",
            1 => head += "Connection: keep-alive\r\n",
            2 => head += "Connection: upgrade, Close\r\n",
            3 => {
                let n = self.rng.below(300) as usize;
                body = (0..n).map(|_| self.rng.below(256) as u8).collect();
                head += &format!("Content-Length: {n}\r\n");
            }
            4 => {
                // Conflicting lengths: the smuggling pattern.
                head += &format!(
                    "Content-Length: {}\r\nContent-Length: {}\r\n",
                    3,
                    4 + self.rng.below(10)
                );
                body = b"abc".to_vec();
            }
            5 => head += &format!("Content-Length: {}\r\n", self.pick(&NUMBERS)),
            6 => head += "Transfer-Encoding: chunked\r\n",
            7 => {
                // Many headers, around the limit.
                for i in 0..(55 + self.rng.below(20)) {
                    head += &format!("X-H{i}: {i}\r\n");
                }
            }
            8 => head += &format!("X-Long: {}\r\n", "v".repeat(self.rng.below(20_000) as usize)),
            9 => head += "Bad Header Name: x\r\n",
            10 => head += "Content-Length: 5\r\n", // announced, never sent
            _ => {}
        }
        head += "Accept: application/json\r\n\r\n";
        let mut out = head.into_bytes();
        out.extend_from_slice(&body);
        out
    }

    /// Case `i` of this stream (the stream's state advances; `i` only labels it).
    pub fn case(&mut self, _i: u64) -> Vec<u8> {
        if self.rng.chance(0.03) {
            // Raw bytes.
            let n = self.rng.below(2_000) as usize;
            return (0..n).map(|_| self.rng.below(256) as u8).collect();
        }
        let mut bytes = self.request();
        if self.rng.chance(0.1) {
            // Pipelined: a second request behind the first.
            let second = self.request();
            bytes.extend_from_slice(&second);
        }
        let mutations = match self.rng.below(10) {
            0..=4 => 0,
            5..=7 => 1,
            _ => 1 + self.rng.below(4),
        };
        for _ in 0..mutations {
            self.mutate(&mut bytes);
        }
        bytes
    }

    fn mutate(&mut self, bytes: &mut Vec<u8>) {
        if bytes.is_empty() {
            bytes.push(self.rng.below(256) as u8);
            return;
        }
        let len = bytes.len() as u64;
        let at = self.rng.below(len) as usize;
        match self.rng.below(9) {
            // Truncate.
            0 => bytes.truncate(at),
            // Flip a byte.
            1 => bytes[at] = self.rng.below(256) as u8,
            // Insert random bytes.
            2 => {
                let n = 1 + self.rng.below(16) as usize;
                let ins: Vec<u8> = (0..n).map(|_| self.rng.below(256) as u8).collect();
                bytes.splice(at..at, ins);
            }
            // Delete a range.
            3 => {
                let end = (at + 1 + self.rng.below(32) as usize).min(bytes.len());
                bytes.drain(at..end);
            }
            // Duplicate a range.
            4 => {
                let end = (at + 1 + self.rng.below(64) as usize).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            // CRLF to bare LF (or CR).
            5 => {
                let bare = if self.rng.chance(0.5) { b"\n" } else { b"\r" };
                let text = std::mem::take(bytes);
                *bytes = replace_all(&text, b"\r\n", bare);
            }
            // A NUL, DEL, 0xFF or a UTF-8 sequence cut in half.
            6 => {
                let odd: &[u8] = match self.rng.below(4) {
                    0 => b"\0",
                    1 => b"\x7f",
                    2 => b"\xff",
                    _ => b"\xc3",
                };
                bytes.splice(at..at, odd.iter().copied());
            }
            // A space or tab where it does not belong.
            7 => bytes.insert(at, if self.rng.chance(0.5) { b' ' } else { b'\t' }),
            // Case of a letter.
            _ => bytes[at] = bytes[at].to_ascii_lowercase(),
        }
    }
}

fn replace_all(text: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// Counts panics in this process (for a campaign against a server in the same process):
/// installs a hook that counts, then calls the previous hook.
pub fn count_panics() -> Arc<AtomicU64> {
    let count = Arc::new(AtomicU64::new(0));
    let for_hook = count.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        for_hook.fetch_add(1, Relaxed);
        previous(info);
    }));
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(seed: u64) -> HttpCampaign {
        HttpCampaign {
            addr: "127.0.0.1:1".parse().unwrap(),
            cases: 0,
            seed,
            clients: 1,
            hang_after: Duration::from_secs(1),
            devices: vec!["vm-1".into(), "vm 2".into()],
            features: vec!["events_1m".into()],
            detectors: vec!["silence".into()],
            token: Some("t0123456789abcdef".into()),
        }
    }

    #[test]
    fn cases_are_reproducible_and_varied() {
        let make = |seed| {
            let mut g = RequestGen::new(&campaign(seed), 0);
            (0..2_000).map(|i| g.case(i)).collect::<Vec<_>>()
        };
        let a = make(7);
        assert_eq!(a, make(7), "same seed, same cases");
        assert_ne!(a, make(8));
        let text: Vec<String> = a.iter().map(|c| String::from_utf8_lossy(c).into_owned()).collect();
        let share = |f: &dyn Fn(&str) -> bool| text.iter().filter(|t| f(t)).count();
        // Mostly requests that parse, and every kind of trouble now and then.
        assert!(share(&|t| t.starts_with("GET /")) > 400);
        assert!(share(&|t| t.contains("Content-Length: 3\r\nContent-Length:")) > 5);
        assert!(share(&|t| t.contains("Transfer-Encoding")) > 5);
        assert!(share(&|t| t.contains("/devices/")) > 200);
        assert!(share(&|t| t.contains("/top?")) > 50);
        assert!(share(&|t| t.contains("Bearer wrong")) > 20);
        assert!(share(&|t| t.matches(" HTTP/1.").count() >= 2) > 50, "pipelined");
        assert!(share(&|t| !t.contains("\r\n\r\n")) > 100, "truncated or bare LF");
    }

    #[test]
    fn answers_are_classified() {
        let mut r = HttpReport::default();
        classify(b"HTTP/1.1 200 OK\r\n\r\n{}HTTP/1.1 404 Not Found\r\n\r\n{}", &mut r);
        classify(b"", &mut r);
        classify(b"garbage", &mut r);
        classify(
            b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"error\":\"internal error\"}",
            &mut r,
        );
        assert_eq!(
            (
                r.answered_2xx,
                r.answered_4xx,
                r.closed_silently,
                r.malformed_answers,
                r.panics
            ),
            (1, 1, 1, 1, 1)
        );
    }
}
