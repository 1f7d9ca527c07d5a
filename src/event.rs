//! The canonical event, whatever the source format, and the facts derived from it.
//!
//! Invariants: an [`Event`] has passed validation (non-empty device, non-negative counters
//! within their plausible ranges [`MAX_BYTES`], [`MAX_PACKETS`], [`MAX_DURATION_MS`],
//! timestamp inside [`MIN_TS_MS`, `MAX_TS_MS`)); `value` is `None` when the source had no
//! reading and may be NaN or infinite when the device reported one (the corruption detector
//! needs to see those). Addresses are stored as 128-bit numbers (IPv4 mapped into IPv6) so the
//! event stays `Copy`-cheap apart from the device name.

use std::net::{IpAddr, Ipv6Addr};

use serde::{Deserialize, Serialize};

pub use crate::device_id::DeviceId;

/// Earliest accepted event time: 2000-01-01T00:00:00Z.
pub const MIN_TS_MS: i64 = 946_684_800_000;
/// First rejected event time: 2100-01-01T00:00:00Z.
pub const MAX_TS_MS: i64 = 4_102_444_800_000;

/// Largest accepted `bytes_out` / `bytes_in` of one record: 1 TB (10^12 bytes). A flow record
/// reports one connection; none carries more, and with this bound a window's byte sum needs
/// more than 18 million records at the bound (of one device, in one window) to reach 2^64.
pub const MAX_BYTES: u64 = 1_000_000_000_000;
/// Largest accepted `packets` of one record: 10^10 (1 TB in 100-byte packets).
pub const MAX_PACKETS: u64 = 10_000_000_000;
/// Largest accepted `duration_ms` of one record: 366 days.
pub const MAX_DURATION_MS: u64 = 366 * 24 * 3_600_000;

/// An IP address as a 128-bit number; IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct Ip(pub u128);

impl Ip {
    /// Converts any address to its 128-bit form.
    pub fn from_addr(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => Ip(u128::from(v4.to_ipv6_mapped())),
            IpAddr::V6(v6) => Ip(u128::from(v6)),
        }
    }

    /// The address back in its natural form (IPv4 when mapped).
    pub fn to_addr(self) -> IpAddr {
        let v6 = Ipv6Addr::from(self.0);
        match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        }
    }
}

impl std::fmt::Display for Ip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.to_addr().fmt(f)
    }
}

/// Transport protocol of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
    #[default]
    Other,
}

impl Protocol {
    /// Parses a protocol name, case-insensitively; unknown names map to `Other`.
    pub fn parse(text: &str) -> Self {
        // The lower-case names as outputs write them, without a trim.
        match text.as_bytes() {
            b"tcp" => return Protocol::Tcp,
            b"udp" => return Protocol::Udp,
            b"icmp" => return Protocol::Icmp,
            _ => {}
        }
        match text.trim() {
            t if t.eq_ignore_ascii_case("tcp") => Protocol::Tcp,
            t if t.eq_ignore_ascii_case("udp") => Protocol::Udp,
            t if t.eq_ignore_ascii_case("icmp") => Protocol::Icmp,
            _ => Protocol::Other,
        }
    }

    /// The lower-case name used in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
            Protocol::Other => "other",
        }
    }
}

/// One validated network/device event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Event time, epoch milliseconds.
    pub ts_ms: i64,
    pub device: DeviceId,
    pub src_ip: Ip,
    pub dst_ip: Ip,
    pub dst_port: u16,
    pub protocol: Protocol,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets: u64,
    pub duration_ms: u64,
    /// The device's own reading, when it reported one.
    pub value: Option<f64>,
}

/// Column names of the canonical CSV header, in order.
pub const CSV_HEADER: [&str; 11] = [
    "ts",
    "device_id",
    "src_ip",
    "dst_ip",
    "dst_port",
    "protocol",
    "bytes_out",
    "bytes_in",
    "packets",
    "duration_ms",
    "value",
];

impl Event {
    /// Writes the event as one canonical CSV line (without the newline).
    pub fn write_csv(&self, out: &mut String) {
        use std::fmt::Write;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{},{},",
            self.ts_ms,
            CsvField(&self.device),
            self.src_ip,
            self.dst_ip,
            self.dst_port,
            self.protocol.as_str(),
            self.bytes_out,
            self.bytes_in,
            self.packets,
            self.duration_ms
        );
        if let Some(v) = self.value {
            let _ = write!(out, "{v}");
        }
    }
}

/// A CSV field as RFC 4180 writes it: quoted (quotes doubled) when it holds a separator,
/// a quote or a line break.
pub struct CsvField<'a>(pub &'a str);

impl std::fmt::Display for CsvField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.contains([',', '"', '\n', '\r']) {
            write!(f, "\"{}\"", self.0.replace('"', "\"\""))
        } else {
            f.write_str(self.0)
        }
    }
}

impl Event {
    /// The event as a JSON object with the canonical keys.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "ts": self.ts_ms,
            "device_id": self.device.as_str(),
            "src_ip": self.src_ip.to_string(),
            "dst_ip": self.dst_ip.to_string(),
            "dst_port": self.dst_port,
            "protocol": self.protocol.as_str(),
            "bytes_out": self.bytes_out,
            "bytes_in": self.bytes_in,
            "packets": self.packets,
            "duration_ms": self.duration_ms,
            "value": self.value.map(json_number),
        })
    }
}

/// A reading as JSON: finite numbers as numbers, NaN and infinities as strings
/// ("NaN", "inf", "-inf"), which the JSON decoder accepts back.
pub fn json_number(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else if v.is_nan() {
        serde_json::json!("NaN")
    } else if v > 0.0 {
        serde_json::json!("inf")
    } else {
        serde_json::json!("-inf")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_round_trips_through_mapped_form() {
        let addr: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(Ip::from_addr(addr).to_addr(), addr);
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(Ip::from_addr(v6).to_addr(), v6);
    }

    #[test]
    fn protocol_names_parse_case_insensitively_and_trimmed() {
        for (text, p) in [
            ("tcp", Protocol::Tcp),
            ("TCP", Protocol::Tcp),
            (" tcp\t", Protocol::Tcp),
            ("udp", Protocol::Udp),
            ("Udp\u{a0}", Protocol::Udp),
            ("icmp", Protocol::Icmp),
            ("iCMP", Protocol::Icmp),
            ("tcp6", Protocol::Other),
            ("tc", Protocol::Other),
            ("", Protocol::Other),
            ("sctp", Protocol::Other),
        ] {
            assert_eq!(Protocol::parse(text), p, "{text:?}");
        }
    }

    #[test]
    fn csv_line_has_eleven_fields() {
        let e = Event {
            ts_ms: MIN_TS_MS,
            device: "vm-1".into(),
            src_ip: Ip::from_addr("10.0.0.1".parse().unwrap()),
            dst_ip: Ip::from_addr("8.8.8.8".parse().unwrap()),
            dst_port: 53,
            protocol: Protocol::Udp,
            bytes_out: 1,
            bytes_in: 2,
            packets: 3,
            duration_ms: 4,
            value: None,
        };
        let mut s = String::new();
        e.write_csv(&mut s);
        assert_eq!(s.split(',').count(), 11);
        assert_eq!(s, "946684800000,vm-1,10.0.0.1,8.8.8.8,53,udp,1,2,3,4,");
    }
}
