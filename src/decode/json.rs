//! JSON-lines records: one object per line with the canonical keys, and Zeek `conn.log` JSON.
//!
//! Invariants: numbers may be JSON numbers or strings holding numbers; `null` or a missing
//! optional key means "absent" exactly as an empty CSV field does; a line that is not a JSON
//! object is `malformed`. Zeek's device is the originating host (`id.orig_h`).

use serde_json::{Map, Value};

use super::fields::*;
use super::reject::{DecodeError, RejectReason};
use crate::event::{Event, Protocol, MAX_BYTES, MAX_DURATION_MS, MAX_PACKETS};

fn parse_object(line: &str) -> Result<Map<String, Value>, DecodeError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(DecodeError::new(RejectReason::Malformed, "not a JSON object")),
        Err(e) => Err(DecodeError::new(RejectReason::Malformed, format!("invalid JSON: {e}"))),
    }
}

/// A field as text, whatever its JSON type; absent and null give "".
fn text<'a>(map: &'a Map<String, Value>, key: &str) -> std::borrow::Cow<'a, str> {
    match map.get(key) {
        None | Some(Value::Null) => "".into(),
        Some(Value::String(s)) => s.as_str().into(),
        Some(other) => other.to_string().into(),
    }
}

fn ts_field(map: &Map<String, Value>) -> Result<i64, DecodeError> {
    parse_ts_text(&text(map, "ts"), "ts")
}

/// Decodes a canonical JSON event.
pub fn decode_jsonl(line: &str) -> Result<Event, DecodeError> {
    let map = parse_object(line)?;
    let ts_ms = ts_field(&map)?;
    Ok(Event {
        ts_ms,
        device: parse_device(&text(&map, "device_id"), "device_id")?,
        src_ip: parse_ip(&text(&map, "src_ip"), "src_ip")?,
        dst_ip: parse_ip(&text(&map, "dst_ip"), "dst_ip")?,
        dst_port: parse_port(&text(&map, "dst_port"), "dst_port")?,
        protocol: Protocol::parse(&text(&map, "protocol")),
        bytes_out: parse_counter(&text(&map, "bytes_out"), "bytes_out", MAX_BYTES)?,
        bytes_in: parse_counter(&text(&map, "bytes_in"), "bytes_in", MAX_BYTES)?,
        packets: parse_counter(&text(&map, "packets"), "packets", MAX_PACKETS)?,
        duration_ms: parse_counter(&text(&map, "duration_ms"), "duration_ms", MAX_DURATION_MS)?,
        value: parse_value(&text(&map, "value"), "value")?,
    })
}

/// A key's value as text, from a line that is a JSON object.
pub fn peek_key(line: &str, key: &str) -> Option<String> {
    let map = parse_object(line).ok()?;
    let t = text(&map, key).into_owned();
    (!t.is_empty()).then_some(t)
}

/// The timestamp of a canonical JSON event alone.
pub fn peek_ts_jsonl(line: &str) -> Option<i64> {
    ts_field(&parse_object(line).ok()?).ok()
}

/// Zeek's `ts`: epoch seconds as a float, or an ISO 8601 string.
fn zeek_ts(map: &Map<String, Value>) -> Result<i64, DecodeError> {
    match map.get("ts") {
        Some(Value::Number(n)) => {
            let secs = n.as_f64().unwrap_or(f64::NAN);
            if !secs.is_finite() {
                return Err(DecodeError::new(
                    RejectReason::BadTimestamp,
                    "ts is not a finite number",
                ));
            }
            check_ts_range((secs * 1000.0).round() as i64, "ts")
        }
        Some(Value::String(s)) => match s.parse::<f64>() {
            Ok(secs) if secs.is_finite() => check_ts_range((secs * 1000.0).round() as i64, "ts"),
            _ => parse_ts_text(s, "ts"),
        },
        None | Some(Value::Null) => Err(DecodeError::new(RejectReason::MissingField, "ts is missing")),
        Some(_) => Err(DecodeError::new(
            RejectReason::BadTimestamp,
            "ts is neither a number nor a string",
        )),
    }
}

/// Decodes a Zeek `conn.log` JSON record.
pub fn decode_zeek(line: &str) -> Result<Event, DecodeError> {
    let map = parse_object(line)?;
    let ts_ms = zeek_ts(&map)?;
    let orig = text(&map, "id.orig_h");
    if orig.trim().is_empty() {
        return Err(DecodeError::new(RejectReason::MissingField, "id.orig_h is missing"));
    }
    let src_ip = parse_ip(&orig, "id.orig_h")?;
    let orig_pkts = parse_counter(&text(&map, "orig_pkts"), "orig_pkts", MAX_PACKETS)?;
    let resp_pkts = parse_counter(&text(&map, "resp_pkts"), "resp_pkts", MAX_PACKETS)?;
    let packets = orig_pkts + resp_pkts;
    if packets > MAX_PACKETS {
        return Err(DecodeError::new(
            RejectReason::TooLarge,
            format!("orig_pkts + resp_pkts {packets} is above its largest plausible value {MAX_PACKETS}"),
        ));
    }
    let duration_ms = match map.get("duration") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => parse_seconds_as_ms(n.as_f64().unwrap_or(f64::NAN), "duration")?,
        Some(other) => {
            let t = match other {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            let secs = t.trim().parse::<f64>().map_err(|_| {
                DecodeError::new(
                    RejectReason::BadNumber,
                    format!("duration {} is not a number", quote(&t)),
                )
            })?;
            parse_seconds_as_ms(secs, "duration")?
        }
    };
    Ok(Event {
        ts_ms,
        device: parse_device(&orig, "id.orig_h")?,
        src_ip,
        dst_ip: parse_ip(&text(&map, "id.resp_h"), "id.resp_h")?,
        dst_port: parse_port(&text(&map, "id.resp_p"), "id.resp_p")?,
        protocol: Protocol::parse(&text(&map, "proto")),
        bytes_out: parse_counter(&text(&map, "orig_bytes"), "orig_bytes", MAX_BYTES)?,
        bytes_in: parse_counter(&text(&map, "resp_bytes"), "resp_bytes", MAX_BYTES)?,
        packets,
        duration_ms,
        value: None,
    })
}

/// The timestamp of a Zeek record alone.
pub fn peek_ts_zeek(line: &str) -> Option<i64> {
    zeek_ts(&parse_object(line).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_accepts_numbers_as_strings_and_nulls() {
        let e = decode_jsonl(
            r#"{"ts":"1700000000000","device_id":"vm-1","dst_ip":"8.8.8.8","bytes_out":"5","value":null}"#,
        )
        .unwrap();
        assert_eq!(e.bytes_out, 5);
        assert_eq!(e.value, None);
        assert_eq!(decode_jsonl("[1,2]").unwrap_err().reason, RejectReason::Malformed);
        assert_eq!(decode_jsonl("{").unwrap_err().reason, RejectReason::Malformed);
    }

    #[test]
    fn zeek_conn_record() {
        let e = decode_zeek(
            r#"{"ts":1700000000.25,"uid":"C1","id.orig_h":"10.0.0.5","id.orig_p":5353,"id.resp_h":"1.1.1.1","id.resp_p":443,"proto":"tcp","duration":1.5,"orig_bytes":100,"resp_bytes":200,"orig_pkts":3,"resp_pkts":4}"#,
        )
        .unwrap();
        assert_eq!(e.ts_ms, 1_700_000_000_250);
        assert_eq!(e.device.as_str(), "10.0.0.5");
        assert_eq!(e.packets, 7);
        assert_eq!(e.duration_ms, 1500);
        assert_eq!(e.dst_port, 443);
    }
}
