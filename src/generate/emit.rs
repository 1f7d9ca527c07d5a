//! Rendering records as canonical CSV or JSON lines (including deliberately malformed ones),
//! and the output sink that applies the engine's lateness rule while it writes.
//!
//! Invariants: a record without a fault renders to a line that `RecordDecoder` accepts
//! (CSV in the canonical column order, or a JSON object with the canonical keys, NaN and
//! infinities as the strings the decoders read back); a record with a fault renders to a
//! non-blank line the decoder rejects. The sink counts a record as late exactly when the
//! engine will: it is valid and `ts < M - lateness`, where `M` is the highest timestamp of
//! every earlier line whose timestamp parses and is in range (for malformed lines the sink
//! asks the engine's own `peek_ts`). Lines are written through one reusable buffer.

use std::io::{self, Write};

use crate::decode::{Format, RecordDecoder};
use crate::event::{Protocol, CSV_HEADER};

use super::fleet::Fleet;
use super::rng::Rng64;
use super::OutputFormat;

/// Ways a line is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    None,
    /// `bytes_out` is not a number (`1534k`).
    BadBytes,
    /// `bytes_out` is negative.
    NegativeBytes,
    /// `value` holds an error text (`ERR`, `N/A`, ...).
    ValueText(u8),
    /// `device_id` is empty.
    MissingDevice,
    /// `dst_ip` has an octet above 255.
    BadIp,
    /// `dst_port` is above 65535.
    BadPort,
    /// `ts` is epoch seconds with a fraction (`1767571200.123`).
    BadTimestamp,
    /// A line that is not a record at all (log noise, binary junk).
    Garbage(u8),
    /// The record cut short (a partial write).
    Truncated(u8),
}

const VALUE_TEXT: [&str; 5] = ["ERR", "N/A", "--", "0xFFFF", "#VALUE!"];
const GARBAGE: [&str; 6] = [
    "<134>Jan  5 10:11:12 collector rsyslogd: action 'action-0-omfwd' suspended",
    "HTTP/1.1 502 Bad Gateway",
    "\\x1f\\x8b\\x08\\x00\\x00\\x00\\x00\\x00",
    "-- MARK --",
    "null",
    "#separator \\x09",
];

impl Fault {
    /// A fault a misbehaving device produces in its own records (still attributed to it).
    pub fn incident(rng: &mut Rng64) -> Fault {
        match rng.below(4) {
            0 => Fault::BadBytes,
            1 => Fault::NegativeBytes,
            _ => Fault::ValueText(rng.below(VALUE_TEXT.len() as u64) as u8),
        }
    }

    /// Any fault: pipeline noise.
    pub fn background(rng: &mut Rng64) -> Fault {
        match rng.below(9) {
            0 => Fault::BadBytes,
            1 => Fault::NegativeBytes,
            2 => Fault::ValueText(rng.below(VALUE_TEXT.len() as u64) as u8),
            3 => Fault::MissingDevice,
            4 => Fault::BadIp,
            5 => Fault::BadPort,
            6 => Fault::BadTimestamp,
            7 => Fault::Garbage(rng.below(GARBAGE.len() as u64) as u8),
            _ => Fault::Truncated(2 + rng.below(8) as u8),
        }
    }
}

/// One generated record before rendering.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Record {
    pub ts: i64,
    /// Index of the device in the fleet.
    pub device: u32,
    /// Interned addresses.
    pub src: u32,
    pub dst: u32,
    pub port: u16,
    pub proto: Protocol,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets: u64,
    pub duration_ms: u64,
    pub value: Option<f64>,
    pub decimals: u8,
    pub fault: Fault,
    /// Produced inside one of the device's incident windows.
    pub incident: bool,
}

const DIGITS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v` in decimal, written straight into the buffer: room for 20 digits is added
/// with a fixed-size copy (inlined, where a variable-length one calls `memmove`), the
/// digits are written in place, and the buffer is cut back to length.
#[inline]
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let n = v.checked_ilog10().map_or(1, |l| l as usize + 1);
    let len = buf.len();
    buf.extend_from_slice(&[0u8; 20]);
    let out = &mut buf[len..len + n];
    let mut i = n;
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        out[i..i + 2].copy_from_slice(&DIGITS[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        out[..2].copy_from_slice(&DIGITS[d..d + 2]);
    } else {
        out[0] = b'0' + v as u8;
    }
    buf.truncate(len + n);
}

#[inline]
fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(buf, v.unsigned_abs());
}

/// A finite reading with `decimals` places (it was quantised to exactly that).
fn push_fixed(buf: &mut Vec<u8>, v: f64, decimals: u8) {
    let scale = [1u64, 10, 100, 1000][decimals.min(3) as usize];
    let scaled = (v * scale as f64).round();
    if scaled.abs() >= 9e15 {
        let _ = write!(buf, "{v}");
        return;
    }
    let scaled = scaled as i64;
    if scaled < 0 {
        buf.push(b'-');
    }
    let a = scaled.unsigned_abs();
    push_u64(buf, a / scale);
    if decimals > 0 {
        buf.push(b'.');
        let frac = a % scale;
        let mut div = scale / 10;
        while div > 0 {
            buf.push(b'0' + ((frac / div) % 10) as u8);
            div /= 10;
        }
    }
}

/// Starts a field: the separator (CSV) or the key (JSON; the first one opens the object).
fn key(buf: &mut Vec<u8>, json: bool, name: &str, first: bool) {
    if json {
        buf.extend_from_slice(if first { b"{\"" } else { b",\"" });
        buf.extend_from_slice(name.as_bytes());
        buf.extend_from_slice(b"\":");
    } else if !first {
        buf.push(b',');
    }
}

/// A field's text: raw in CSV, a string in JSON.
fn text(buf: &mut Vec<u8>, json: bool, s: &[u8]) {
    if json {
        buf.push(b'"');
    }
    buf.extend_from_slice(s);
    if json {
        buf.push(b'"');
    }
}

/// Appends `r` as one line (without the newline).
pub(crate) fn render(buf: &mut Vec<u8>, r: &Record, fleet: &Fleet, json: bool) {
    if let Fault::Garbage(k) = r.fault {
        buf.extend_from_slice(GARBAGE[k as usize].as_bytes());
        return;
    }
    let start = buf.len();
    key(buf, json, CSV_HEADER[0], true);
    if r.fault == Fault::BadTimestamp {
        let secs = r.ts.div_euclid(1000);
        let ms = r.ts.rem_euclid(1000) as u64;
        let mut t = Vec::with_capacity(24);
        push_i64(&mut t, secs);
        t.extend_from_slice(&[
            b'.',
            b'0' + (ms / 100) as u8,
            b'0' + (ms / 10 % 10) as u8,
            b'0' + (ms % 10) as u8,
        ]);
        text(buf, json, &t);
    } else {
        push_i64(buf, r.ts);
    }
    let device = &fleet.devices[r.device as usize];
    if r.fault == Fault::MissingDevice {
        key(buf, json, CSV_HEADER[1], false);
        text(buf, json, b"");
        key(buf, json, CSV_HEADER[2], false);
        text(buf, json, fleet.ips.text(r.src));
    } else {
        buf.extend_from_slice(&device.prefix[json as usize]);
    }
    key(buf, json, CSV_HEADER[3], false);
    if r.fault != Fault::BadIp {
        if json {
            buf.push(b'"');
        }
        fleet.ips.push_text(buf, r.dst);
        if json {
            buf.push(b'"');
        }
    } else {
        let dst = fleet.ips.text(r.dst);
        let cut = dst.iter().rposition(|&b| b == b'.').map_or(0, |i| i + 1);
        let mut t = dst[..cut].to_vec();
        push_u64(&mut t, 256 + r.ts.rem_euclid(700) as u64);
        text(buf, json, &t);
    }
    key(buf, json, CSV_HEADER[4], false);
    push_u64(buf, r.port as u64 + if r.fault == Fault::BadPort { 65_536 } else { 0 });
    key(buf, json, CSV_HEADER[5], false);
    text(buf, json, r.proto.as_str().as_bytes());
    key(buf, json, CSV_HEADER[6], false);
    match r.fault {
        Fault::BadBytes => {
            let mut t = Vec::with_capacity(24);
            push_u64(&mut t, r.bytes_out);
            t.push(b'k');
            text(buf, json, &t);
        }
        Fault::NegativeBytes => push_i64(buf, -(r.bytes_out.clamp(1, i64::MAX as u64) as i64)),
        _ => push_u64(buf, r.bytes_out),
    }
    for (i, v) in [(7, r.bytes_in), (8, r.packets), (9, r.duration_ms)] {
        key(buf, json, CSV_HEADER[i], false);
        push_u64(buf, v);
    }
    key(buf, json, CSV_HEADER[10], false);
    match (r.fault, r.value) {
        (Fault::ValueText(k), _) => text(buf, json, VALUE_TEXT[k as usize].as_bytes()),
        (_, Some(v)) if v.is_finite() => push_fixed(buf, v, r.decimals),
        (_, Some(v)) => {
            let t: &[u8] = if v.is_nan() {
                b"NaN"
            } else if v > 0.0 {
                b"inf"
            } else {
                b"-inf"
            };
            text(buf, json, t);
        }
        (_, None) if json => buf.extend_from_slice(b"null"),
        (_, None) => {}
    }
    if json {
        buf.push(b'}');
    }
    if let Fault::Truncated(k) = r.fault {
        let line = &buf[start..];
        let cut = if json {
            (line.len() - 1) * k as usize / 10
        } else {
            // Right after the k-th separator, plus a little of the next field.
            let comma = line.iter().enumerate().filter(|(_, &b)| b == b',').nth(k as usize - 1);
            comma.map_or(line.len(), |(i, _)| {
                let next = line[i + 1..].iter().position(|&b| b == b',').unwrap_or(0);
                i + 1 + next.min(2)
            })
        };
        buf.truncate(start + cut.max(1));
    }
}

/// Where records go: renders, counts, and applies the lateness rule.
pub(crate) struct Sink<W: Write> {
    out: W,
    buf: Vec<u8>,
    json: bool,
    peek: RecordDecoder,
    lateness: i64,
    /// Highest valid timestamp of every line written so far.
    pub max_ts: Option<i64>,
    pub records: u64,
    pub malformed: u64,
    pub late: u64,
}

const FLUSH_AT: usize = 256 * 1024;

impl<W: Write> Sink<W> {
    pub fn new(mut out: W, format: OutputFormat, lateness_ms: u64) -> io::Result<Self> {
        let json = format == OutputFormat::Jsonl;
        if !json {
            out.write_all(CSV_HEADER.join(",").as_bytes())?;
            out.write_all(b"\n")?;
        }
        let decode_format = if json { Format::Jsonl } else { Format::Csv };
        Ok(Sink {
            out,
            buf: Vec::with_capacity(FLUSH_AT + 4096),
            json,
            peek: RecordDecoder::new(decode_format, usize::MAX),
            lateness: lateness_ms.min(i64::MAX as u64 / 4) as i64,
            max_ts: None,
            records: 0,
            malformed: 0,
            late: 0,
        })
    }

    /// Writes one record as the next line.
    pub fn emit(&mut self, r: &Record, fleet: &Fleet) -> io::Result<()> {
        let start = self.buf.len();
        render(&mut self.buf, r, fleet, self.json);
        let ts = if r.fault == Fault::None {
            if matches!(self.max_ts, Some(m) if r.ts < m - self.lateness) {
                self.late += 1;
            }
            Some(r.ts)
        } else {
            self.malformed += 1;
            self.peek.peek_ts(&self.buf[start..])
        };
        if let Some(t) = ts {
            self.max_ts = Some(self.max_ts.map_or(t, |m| m.max(t)));
        }
        self.buf.push(b'\n');
        self.records += 1;
        if self.buf.len() >= FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.out.flush()
    }
}
