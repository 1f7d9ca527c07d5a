//! Field parsers shared by every format: timestamps, counters, ports, addresses, readings.
//!
//! Invariant: each parser either returns a validated value or a [`DecodeError`] whose detail
//! names the field and quotes (a bounded part of) the offending text. The public parsers of
//! the hot fields are inlined fast paths (plain digits, a dotted quad, a short decimal: see
//! [`fast`]) in front of their general form, which gives the same answer for those inputs.

use super::fast;
use super::reject::{DecodeError, RejectReason};
use crate::event::{Ip, MAX_TS_MS, MIN_TS_MS};

/// A counter's largest plausible value, or the `too_large` reject naming the field.
#[inline]
fn check_max(value: u64, max: u64, field: &str, text: &str) -> Result<u64, DecodeError> {
    if value <= max {
        Ok(value)
    } else {
        Err(too_large(max, field, text))
    }
}

#[cold]
fn too_large(max: u64, field: &str, text: &str) -> DecodeError {
    DecodeError::new(
        RejectReason::TooLarge,
        format!("{field} {} is above its largest plausible value {max}", quote(text)),
    )
}

/// A bounded part of `text`, quoted, for a reject detail.
pub(crate) fn quote(text: &str) -> String {
    let mut t: String = text.chars().take(40).collect();
    if t.len() < text.len() {
        t.push('…');
    }
    format!("`{t}`")
}

/// `text.trim()`, without its scan of both ends when they are plainly not whitespace (a
/// printable ASCII byte other than the space, or DEL): the common case of a clean field. Any
/// other end byte takes `trim` itself.
#[inline]
fn trim(text: &str) -> &str {
    let clean = |b: u8| (0x21..0x80).contains(&b);
    match text.as_bytes() {
        [first, .., last] if clean(*first) && clean(*last) => text,
        [only] if clean(*only) => text,
        _ => text.trim(),
    }
}

/// The value of `t` when it is 1 to 18 ASCII digits, else None (see [`fast::digits`]).
#[inline]
fn digits(t: &str) -> Option<u64> {
    fast::digits(t.as_bytes())
}

/// Checks the accepted event-time range.
pub fn check_ts_range(ts_ms: i64, field: &str) -> Result<i64, DecodeError> {
    if (MIN_TS_MS..MAX_TS_MS).contains(&ts_ms) {
        Ok(ts_ms)
    } else {
        Err(DecodeError::new(
            RejectReason::TimeOutOfRange,
            format!("{field} {ts_ms} ms is outside 2000-01-01..2100-01-01"),
        ))
    }
}

/// Epoch milliseconds (an integer) or an RFC 3339 date-time.
#[inline]
pub fn parse_ts_text(text: &str, field: &str) -> Result<i64, DecodeError> {
    // Plain digits in range (nothing to trim): what the general path gives, at once.
    match fast::digits(text.as_bytes()) {
        Some(v) if (MIN_TS_MS as u64..MAX_TS_MS as u64).contains(&v) => Ok(v as i64),
        _ => ts_text(text, field),
    }
}

/// [`parse_ts_text`] in general.
fn ts_text(text: &str, field: &str) -> Result<i64, DecodeError> {
    let t = trim(text);
    if t.is_empty() {
        return Err(DecodeError::new(
            RejectReason::MissingField,
            format!("{field} is empty"),
        ));
    }
    let ms = if let Some(v) = digits(t) {
        v as i64
    } else if t.as_bytes()[0].is_ascii_digit() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<i64>()
            .map_err(|_| DecodeError::new(RejectReason::BadTimestamp, format!("{field} {} is too large", quote(t))))?
    } else if t.starts_with('-') && t[1..].bytes().all(|b| b.is_ascii_digit()) && t.len() > 1 {
        return Err(DecodeError::new(
            RejectReason::TimeOutOfRange,
            format!("{field} {} is before 2000-01-01", quote(t)),
        ));
    } else {
        chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|_| {
                DecodeError::new(
                    RejectReason::BadTimestamp,
                    format!("{field} {} is neither epoch milliseconds nor RFC 3339", quote(t)),
                )
            })?
            .timestamp_millis()
    };
    check_ts_range(ms, field)
}

/// A non-negative integer counter of at most `max`; empty means 0.
#[inline]
pub fn parse_counter(text: &str, field: &str, max: u64) -> Result<u64, DecodeError> {
    match fast::digits(text.as_bytes()) {
        Some(v) if v <= max => Ok(v),
        _ => counter(text, field, max),
    }
}

/// [`parse_counter`] in general.
fn counter(text: &str, field: &str, max: u64) -> Result<u64, DecodeError> {
    let t = trim(text);
    if t.is_empty() {
        return Ok(0);
    }
    if let Some(v) = digits(t) {
        return check_max(v, max, field, t);
    }
    if let Ok(v) = t.parse::<u64>() {
        return check_max(v, max, field, t);
    }
    match t.parse::<f64>() {
        Ok(f) if f < 0.0 => Err(DecodeError::new(
            RejectReason::NegativeValue,
            format!("{field} {} is negative", quote(t)),
        )),
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f <= max as f64 => Ok(f as u64),
        Ok(f) if f.is_finite() && f.fract() == 0.0 => check_max(u64::MAX, max, field, t),
        _ => Err(DecodeError::new(
            RejectReason::BadNumber,
            format!("{field} {} is not a whole number", quote(t)),
        )),
    }
}

/// A float counter such as Zeek's duration in seconds, returned in milliseconds (at most
/// `MAX_DURATION_MS`).
pub fn parse_seconds_as_ms(value: f64, field: &str) -> Result<u64, DecodeError> {
    if !value.is_finite() {
        return Err(DecodeError::new(
            RejectReason::BadNumber,
            format!("{field} is not finite"),
        ));
    }
    if value < 0.0 {
        return Err(DecodeError::new(
            RejectReason::NegativeValue,
            format!("{field} {value} is negative"),
        ));
    }
    let ms = (value * 1000.0).round();
    let max = crate::event::MAX_DURATION_MS;
    if ms > max as f64 {
        return Err(DecodeError::new(
            RejectReason::TooLarge,
            format!(
                "{field} {value} s is above its largest plausible value {} s",
                max / 1000
            ),
        ));
    }
    Ok(ms as u64)
}

/// A destination port; empty means 0.
#[inline]
pub fn parse_port(text: &str, field: &str) -> Result<u16, DecodeError> {
    match fast::digits(text.as_bytes()) {
        Some(v) if v <= 65535 => Ok(v as u16),
        _ => port(text, field),
    }
}

/// [`parse_port`] in general.
fn port(text: &str, field: &str) -> Result<u16, DecodeError> {
    let t = trim(text);
    if t.is_empty() {
        return Ok(0);
    }
    match digits(t).map_or_else(|| t.parse::<i64>(), |v| Ok(v as i64)) {
        Ok(p) if (0..=65535).contains(&p) => Ok(p as u16),
        Ok(_) => Err(DecodeError::new(
            RejectReason::BadPort,
            format!("{field} {} is not in 0..=65535", quote(t)),
        )),
        Err(_) => Err(DecodeError::new(
            RejectReason::BadNumber,
            format!("{field} {} is not a port number", quote(t)),
        )),
    }
}

/// An IP address; empty means "no address" (`::`).
#[inline]
pub fn parse_ip(text: &str, field: &str) -> Result<Ip, DecodeError> {
    match fast::dotted_quad(text.as_bytes()) {
        Some(v4) => Ok(mapped_v4(v4)),
        None => ip(text, field),
    }
}

/// `Ip::from_addr` of an IPv4 address given as its big-endian bits: IPv4-mapped IPv6,
/// `::ffff:a.b.c.d`.
#[inline]
fn mapped_v4(v4: u32) -> Ip {
    Ip(0xffff << 32 | u128::from(v4))
}

/// [`parse_ip`] in general.
fn ip(text: &str, field: &str) -> Result<Ip, DecodeError> {
    let t = trim(text);
    if t.is_empty() {
        return Ok(Ip(0));
    }
    if let Some(v4) = fast::dotted_quad(t.as_bytes()) {
        return Ok(mapped_v4(v4));
    }
    t.parse::<std::net::IpAddr>().map(Ip::from_addr).map_err(|_| {
        DecodeError::new(
            RejectReason::BadIp,
            format!("{field} {} is not an IP address", quote(t)),
        )
    })
}

/// The device's reading: empty means none; NaN and infinities are kept (they are evidence).
#[inline]
pub fn parse_value(text: &str, field: &str) -> Result<Option<f64>, DecodeError> {
    match fast::decimal(text.as_bytes()) {
        Some(v) => Ok(Some(v)),
        None => value(text, field),
    }
}

/// [`parse_value`] in general.
fn value(text: &str, field: &str) -> Result<Option<f64>, DecodeError> {
    let t = trim(text);
    if t.is_empty() {
        return Ok(None);
    }
    if let Some(v) = fast::decimal(t.as_bytes()) {
        return Ok(Some(v));
    }
    t.parse::<f64>()
        .map(Some)
        .map_err(|_| DecodeError::new(RejectReason::BadNumber, format!("{field} {} is not a number", quote(t))))
}

/// The device name: required, trimmed, at most 256 bytes.
pub fn parse_device(text: &str, field: &str) -> Result<crate::event::DeviceId, DecodeError> {
    let t = trim(text);
    if t.is_empty() {
        return Err(DecodeError::new(
            RejectReason::MissingField,
            format!("{field} is empty"),
        ));
    }
    if t.len() > 256 {
        return Err(DecodeError::new(
            RejectReason::Malformed,
            format!("{field} is longer than 256 bytes"),
        ));
    }
    Ok(t.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Odd texts for the fast paths: white space of every kind at either end, signs, leading
    /// zeros, overflow, non-ASCII digits and near-addresses.
    const ODD: &[&str] = &[
        "",
        " ",
        "0",
        "7",
        " 7",
        "7 ",
        "\t7\n",
        "\u{b}7",
        "7\u{c}",
        "\u{a0}7",
        "7\u{85}",
        "\u{3000}",
        "\u{1}7",
        "7\u{1c}",
        "\u{7f}",
        "7\u{7f}",
        "+7",
        "-7",
        "007",
        "18446744073709551615",
        "18446744073709551616",
        "999999999999999999",
        "1000000000000000000",
        "1e3",
        "٣",
        "7.0",
        "1.2.3.4",
        "01.2.3.4",
        "1.2.3.04",
        "0.0.0.0",
        "255.255.255.255",
        "256.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "1..3.4",
        "1.2.3.4 ",
        "1.2.3.4x",
        "1234.1.1.1",
        "::1",
        "::ffff:1.2.3.4",
        "1.2.3.-4",
        "10.0.0.50",
    ];

    #[test]
    fn fast_paths_read_as_the_standard_parsers_do() {
        for &t in ODD {
            assert_eq!(trim(t), t.trim(), "trim {t:?}");
            if let Some(v) = digits(t) {
                assert_eq!(Ok(v), t.parse::<u64>(), "digits {t:?}");
            }
            if let Some(v4) = fast::dotted_quad(t.as_bytes()) {
                assert_eq!(Ok(v4.into()), t.parse::<std::net::Ipv4Addr>(), "address {t:?}");
            } else {
                assert!(
                    t.parse::<std::net::Ipv4Addr>().is_err() || t.len() > 15,
                    "the fast path misses no plain address: {t:?}"
                );
            }
        }
        for a in 0..=300u32 {
            let t = format!("{a}.{}.0.{}", a % 7, 300 - a);
            let v4 = fast::dotted_quad(t.as_bytes()).map(std::net::Ipv4Addr::from);
            assert_eq!(v4, t.parse().ok(), "{t}");
        }
    }

    #[test]
    fn inlined_fast_paths_answer_as_the_general_parsers_do() {
        use crate::decode::fast::tests::Rng;
        use crate::event::{MAX_BYTES, MAX_PACKETS};
        let mut texts: Vec<String> = ODD.iter().map(|t| t.to_string()).collect();
        texts.extend(
            [
                "946684800000",
                "946684799999",
                "4102444800000",
                "4102444799999",
                "65535",
                "65536",
                "1000000000000",
                "1000000000001",
                "10000000000",
                "10000000001",
                "-0.0",
                "26.4",
            ]
            .map(String::from),
        );
        let mut rng = Rng::new(29);
        let alphabet = ["0", "1", "4", "5", "6", "9", "9", ".", "-", " ", "e"];
        for _ in 0..100_000 {
            texts.push(rng.text_below(&alphabet, 20));
        }
        for t in &texts {
            let t = t.as_str();
            assert_eq!(parse_ts_text(t, "ts"), ts_text(t, "ts"), "{t:?}");
            for max in [MAX_BYTES, MAX_PACKETS, 100] {
                assert_eq!(parse_counter(t, "b", max), counter(t, "b", max), "{t:?}");
            }
            assert_eq!(parse_port(t, "p"), port(t, "p"), "{t:?}");
            assert_eq!(parse_ip(t, "ip"), ip(t, "ip"), "{t:?}");
            assert_eq!(
                format!("{:?}", parse_value(t, "v")),
                format!("{:?}", value(t, "v")),
                "{t:?}"
            );
        }
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_ts_text("1700000000000", "ts").unwrap(), 1_700_000_000_000);
        assert_eq!(parse_ts_text("2023-11-14T22:13:20Z", "ts").unwrap(), 1_700_000_000_000);
        assert_eq!(
            parse_ts_text("2023-11-14T23:13:20.5+01:00", "ts").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_ts_text("12", "ts").unwrap_err().reason,
            RejectReason::TimeOutOfRange
        );
        assert_eq!(
            parse_ts_text("-5", "ts").unwrap_err().reason,
            RejectReason::TimeOutOfRange
        );
        assert_eq!(
            parse_ts_text("yesterday", "ts").unwrap_err().reason,
            RejectReason::BadTimestamp
        );
        assert_eq!(parse_ts_text("", "ts").unwrap_err().reason, RejectReason::MissingField);
    }

    #[test]
    fn counters_are_bounded_at_their_plausible_range() {
        use crate::event::{MAX_BYTES, MAX_DURATION_MS};
        assert_eq!(
            parse_counter("1000000000000", "bytes_out", MAX_BYTES).unwrap(),
            MAX_BYTES
        );
        assert_eq!(parse_counter("1e12", "bytes_out", MAX_BYTES).unwrap(), MAX_BYTES);
        for beyond in [
            "1000000000001",
            "1.000000000001e12",
            "18446744073709551615",
            "99999999999999999999999",
            "1e30",
        ] {
            let e = parse_counter(beyond, "bytes_out", MAX_BYTES).unwrap_err();
            assert_eq!(e.reason, RejectReason::TooLarge, "{beyond}");
            assert!(
                e.detail.starts_with("bytes_out `") && e.detail.ends_with("1000000000000"),
                "{}",
                e.detail
            );
        }
        let max_s = (MAX_DURATION_MS / 1000) as f64;
        assert_eq!(parse_seconds_as_ms(max_s, "duration").unwrap(), MAX_DURATION_MS);
        let e = parse_seconds_as_ms(max_s + 0.001, "duration").unwrap_err();
        assert_eq!(e.reason, RejectReason::TooLarge);
        assert!(e.detail.starts_with("duration "), "{}", e.detail);
        assert_eq!(
            parse_seconds_as_ms(1e300, "duration").unwrap_err().reason,
            RejectReason::TooLarge
        );
    }

    #[test]
    fn counters_and_ports() {
        assert_eq!(parse_counter("", "b", 100).unwrap(), 0);
        assert_eq!(parse_counter("12", "b", 100).unwrap(), 12);
        assert_eq!(parse_counter("12.0", "b", 100).unwrap(), 12);
        assert_eq!(
            parse_counter("-3", "b", 100).unwrap_err().reason,
            RejectReason::NegativeValue
        );
        assert_eq!(
            parse_counter("x", "b", 100).unwrap_err().reason,
            RejectReason::BadNumber
        );
        assert_eq!(parse_port("70000", "p").unwrap_err().reason, RejectReason::BadPort);
        assert_eq!(parse_port("http", "p").unwrap_err().reason, RejectReason::BadNumber);
        assert_eq!(parse_ip("300.1.1.1", "ip").unwrap_err().reason, RejectReason::BadIp);
        assert!(parse_value("NaN", "v").unwrap().unwrap().is_nan());
        assert_eq!(parse_value("", "v").unwrap(), None);
    }
}
