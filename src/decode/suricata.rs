//! Suricata EVE JSON: `flow` and `netflow` records become events; every other event type is
//! skipped (counted by type, neither an event nor a reject).
//!
//! Invariants: a line is one JSON object, parsed in one pass without building a tree (a
//! record that is not valid JSON is `malformed`, a known key given twice too); only
//! top-level keys and those of the `flow` / `netflow` objects are read. The event time is the
//! record's `timestamp` (when Suricata logged the flow: in file order), the duration is
//! `end − start` of the flow; the device is the source address unless configured otherwise
//! ([`EveDevice`]). What a line is (a flow record and its time, or a type to skip) is read
//! by [`super::eve_scan`]'s quick look at the top level when it can tell, else by the full
//! parse: a skipped line is checked for JSON shape at its top level only. `flow` counts both directions (`bytes_toserver` out, `bytes_toclient` in,
//! `pkts_*` summed); `netflow` is one direction (`bytes` out, `pkts`). [`SKIP_KINDS`] is the
//! closed set of skipped types reported in metrics (`other` for the rest).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::fields::*;
use super::reject::{DecodeError, RejectReason};
use crate::event::{Event, Protocol, MAX_BYTES, MAX_DURATION_MS, MAX_PACKETS};

/// Which address or field names the device.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum EveDevice {
    /// `src_ip` (the default).
    #[default]
    Source,
    /// `dest_ip`.
    Destination,
    /// A top-level string field, such as `host` or `in_iface`.
    Field(Arc<str>),
}

impl EveDevice {
    /// `source`, `destination`, or `field:NAME`.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "source" => Ok(EveDevice::Source),
            "destination" => Ok(EveDevice::Destination),
            t => match t.strip_prefix("field:") {
                Some(name) if !name.is_empty() => Ok(EveDevice::Field(name.into())),
                _ => Err(format!(
                    "`{t}`: use source, destination or field:NAME (e.g. field:host)"
                )),
            },
        }
    }
}

/// Event types skipped, as counted (index into this list; the last is every other type).
pub const SKIP_KINDS: [&str; 27] = [
    "alert", "anomaly", "dcerpc", "dhcp", "dnp3", "dns", "drop", "engine", "fileinfo", "ftp", "http", "http2", "krb5",
    "ldap", "mqtt", "nfs", "quic", "rdp", "sip", "smb", "smtp", "snmp", "ssh", "stats", "tftp", "tls", "other",
];

/// The index in [`SKIP_KINDS`] of a skipped event type.
pub fn skip_kind(event_type: &str) -> usize {
    SKIP_KINDS
        .iter()
        .position(|k| *k == event_type)
        .unwrap_or(SKIP_KINDS.len() - 1)
}

/// A JSON value as read: scalars kept, objects and arrays skipped.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) enum Scalar<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    U64(u64),
    I64(i64),
    F64(f64),
    Other,
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::F64(v))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Absent)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Absent)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

impl Scalar<'_> {
    fn is_absent(&self) -> bool {
        matches!(self, Scalar::Absent)
    }

    /// As text for the shared field parsers (numbers formatted: only on rare paths).
    fn text(&self) -> Cow<'_, str> {
        match self {
            Scalar::Absent => "".into(),
            Scalar::Str(s) => Cow::Borrowed(s),
            Scalar::U64(v) => v.to_string().into(),
            Scalar::I64(v) => v.to_string().into(),
            Scalar::F64(v) => v.to_string().into(),
            Scalar::Other => "(object)".into(),
        }
    }

    fn counter(&self, field: &str, max: u64) -> Result<u64, DecodeError> {
        match self {
            Scalar::U64(v) if *v <= max => Ok(*v),
            Scalar::Str(s) => parse_counter(s, field, max),
            Scalar::Absent => Ok(0),
            other => parse_counter(&other.text(), field, max),
        }
    }
}

/// The counters of a `flow` or `netflow` object.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Counters<'a> {
    pub(super) pkts_toserver: Scalar<'a>,
    pub(super) pkts_toclient: Scalar<'a>,
    pub(super) bytes_toserver: Scalar<'a>,
    pub(super) bytes_toclient: Scalar<'a>,
    pub(super) pkts: Scalar<'a>,
    pub(super) bytes: Scalar<'a>,
    pub(super) start: Scalar<'a>,
    pub(super) end: Scalar<'a>,
    pub(super) present: bool,
}

/// [`once`] for the hand-written pass (`None`: the key came before).
pub(super) fn once_fast<'a>(slot: &mut Scalar<'a>, value: Scalar<'a>) -> Option<()> {
    slot.is_absent().then(|| *slot = value)
}

impl<'a> Counters<'a> {
    /// Where the value of `key` of a `flow` / `netflow` object goes (`None`: not read).
    pub(super) fn slot(&mut self, key: &str) -> Option<&mut Scalar<'a>> {
        Some(match key {
            "pkts_toserver" => &mut self.pkts_toserver,
            "pkts_toclient" => &mut self.pkts_toclient,
            "bytes_toserver" => &mut self.bytes_toserver,
            "bytes_toclient" => &mut self.bytes_toclient,
            "pkts" => &mut self.pkts,
            "bytes" => &mut self.bytes,
            "start" => &mut self.start,
            "end" => &mut self.end,
            _ => return None,
        })
    }
}

/// Where the value of a top-level key goes (both readers decide by this).
pub(super) enum EveSlot<'e, 'a> {
    Scalar(&'e mut Scalar<'a>),
    /// `flow` or `netflow`: an object of counters, once.
    Counters(&'e mut Counters<'a>),
    /// Not read (its value is checked and skipped).
    Other,
}

impl<'a> Eve<'a> {
    /// Where the value of top-level `key` goes, unless `key` is the configured device field.
    pub(super) fn slot(&mut self, key: &str) -> EveSlot<'_, 'a> {
        EveSlot::Scalar(match key {
            "timestamp" => &mut self.timestamp,
            "event_type" => &mut self.event_type,
            "src_ip" => &mut self.src_ip,
            "dest_ip" => &mut self.dest_ip,
            "dest_port" => &mut self.dest_port,
            "proto" => &mut self.proto,
            "flow" => return EveSlot::Counters(&mut self.flow),
            "netflow" => return EveSlot::Counters(&mut self.netflow),
            _ => return EveSlot::Other,
        })
    }

    /// Stores the value of the configured device field `key` (also as `src_ip` / `dest_ip`
    /// when it is one of them); `None`: the key came before.
    pub(super) fn put_device(&mut self, key: &str, v: Scalar<'a>) -> Option<()> {
        match key {
            "src_ip" => once_fast(&mut self.src_ip, v.clone())?,
            "dest_ip" => once_fast(&mut self.dest_ip, v.clone())?,
            _ => {}
        }
        once_fast(&mut self.device, v)
    }
}

fn duplicate<E: de::Error>(key: &str) -> E {
    E::custom(format_args!("duplicate key `{key}`"))
}

/// Stores `value` in `slot` unless the key came before.
fn once<'a, E: de::Error>(slot: &mut Scalar<'a>, value: Scalar<'a>, key: &str) -> Result<(), E> {
    once_fast(slot, value).ok_or_else(|| duplicate(key))
}

impl<'de> de::Deserialize<'de> for Counters<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Counters<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a flow object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                let mut c = Counters {
                    present: true,
                    ..Counters::default()
                };
                while let Some(key) = m.next_key::<Cow<'de, str>>()? {
                    match c.slot(&key) {
                        Some(slot) => once(slot, m.next_value()?, &key)?,
                        None => {
                            m.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(c)
            }
        }
        d.deserialize_map(V)
    }
}

/// The keys vigil reads from one EVE record.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Eve<'a> {
    pub(super) timestamp: Scalar<'a>,
    pub(super) event_type: Scalar<'a>,
    pub(super) src_ip: Scalar<'a>,
    pub(super) dest_ip: Scalar<'a>,
    pub(super) dest_port: Scalar<'a>,
    pub(super) proto: Scalar<'a>,
    pub(super) device: Scalar<'a>,
    pub(super) flow: Counters<'a>,
    pub(super) netflow: Counters<'a>,
}

/// Reads an [`Eve`], the device from the configured field.
struct EveSeed<'c>(&'c EveDevice);

impl<'de> DeserializeSeed<'de> for EveSeed<'_> {
    type Value = Eve<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EveSeed<'_> {
    type Value = Eve<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an EVE JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
        let mut e = Eve::default();
        let field = match self.0 {
            EveDevice::Field(name) => Some(name.as_ref()),
            _ => None,
        };
        while let Some(key) = m.next_key::<Cow<'de, str>>()? {
            let key = key.as_ref();
            if field == Some(key) {
                let v: Scalar<'de> = m.next_value()?;
                e.put_device(key, v).ok_or_else(|| duplicate(key))?;
                continue;
            }
            match e.slot(key) {
                EveSlot::Scalar(slot) => once(slot, m.next_value()?, key)?,
                EveSlot::Counters(target) => {
                    let c: Counters<'de> = m.next_value()?;
                    if target.present {
                        return Err(duplicate(key));
                    }
                    *target = c;
                }
                EveSlot::Other => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(e)
    }
}

/// What one line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peeked {
    /// A flow record (or a line that is not valid EVE: decoding rejects it), with its
    /// timestamp when that parses and is in range.
    Record(Option<i64>),
    /// Another event type: skipped, counted under this index of [`SKIP_KINDS`].
    Skip(usize),
}

/// Decodes EVE lines with a device choice.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuricataDecoder {
    pub device: EveDevice,
}

/// The keys vigil reads from a line: by the hand-written pass when it can tell
/// ([`super::eve_fast`]), else by serde, which also words what is wrong.
fn parse<'a>(line: &'a str, device: &EveDevice) -> Result<Eve<'a>, DecodeError> {
    match super::eve_fast::parse(line, device) {
        Some(e) => Ok(e),
        None => parse_serde(line, device),
    }
}

/// Whether the hand-written pass, when it answers for `line`, gives what serde gives (for
/// the decode fuzzer and tests).
pub fn check_fast_parse(line: &str, device: &EveDevice) -> Result<(), String> {
    match super::eve_fast::parse(line, device) {
        None => Ok(()),
        Some(fast) => match parse_serde(line, device) {
            Ok(slow) if slow == fast => Ok(()),
            Ok(slow) => Err(format!("the fast EVE read gives {fast:?}, serde {slow:?}")),
            Err(e) => Err(format!("the fast EVE read accepts a line serde refuses ({})", e.detail)),
        },
    }
}

fn parse_serde<'a>(line: &'a str, device: &EveDevice) -> Result<Eve<'a>, DecodeError> {
    let mut de = serde_json::Deserializer::from_str(line);
    let eve = EveSeed(device)
        .deserialize(&mut de)
        .and_then(|e| de.end().map(|()| e))
        .map_err(|e| {
            // serde's message may quote a whole value: keep its start.
            let message = e.to_string();
            let cut: String = message.chars().take(120).collect();
            let more = if cut.len() < message.len() { "…" } else { "" };
            DecodeError::new(RejectReason::Malformed, format!("invalid EVE JSON: {cut}{more}"))
        })?;
    Ok(eve)
}

/// An EVE time: RFC 3339, or Suricata's own `2019-01-01T00:00:00.123456+0000`; without an
/// offset, UTC.
pub fn eve_time(text: &str, field: &str) -> Result<i64, DecodeError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DecodeError::new(
            RejectReason::MissingField,
            format!("{field} is missing"),
        ));
    }
    if let Some(ms) = super::eve_scan::fast_time(t) {
        return check_ts_range(ms, field);
    }
    if let Ok(d) = chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return check_ts_range(d.timestamp_millis(), field);
    }
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f") {
        return check_ts_range(d.and_utc().timestamp_millis(), field);
    }
    parse_ts_text(t, field)
}

fn ts_of(e: &Eve<'_>) -> Result<i64, DecodeError> {
    match &e.timestamp {
        Scalar::Absent => Err(DecodeError::new(RejectReason::MissingField, "timestamp is missing")),
        Scalar::Str(s) => eve_time(s, "timestamp"),
        other => parse_ts_text(&other.text(), "timestamp"),
    }
}

impl SuricataDecoder {
    /// Whether a line is a flow record (and its timestamp) or a type to skip.
    pub fn peek(&self, line: &str) -> Peeked {
        // The quick look first: every worker looks at every line.
        if let Some((ts, kind)) = super::eve_scan::scan(line) {
            return match kind {
                Some(t) if t != "flow" && t != "netflow" => Peeked::Skip(skip_kind(t)),
                _ => Peeked::Record(ts.and_then(|t| eve_time(t, "timestamp").ok())),
            };
        }
        let Ok(e) = parse(line, &self.device) else {
            return Peeked::Record(None);
        };
        match &e.event_type {
            Scalar::Str(t) if t != "flow" && t != "netflow" => Peeked::Skip(skip_kind(t.as_ref())),
            _ => Peeked::Record(ts_of(&e).ok()),
        }
    }

    /// The device a record names, when it can be read.
    pub fn peek_device(&self, line: &str) -> Option<String> {
        let e = parse(line, &self.device).ok()?;
        let d = self.device_scalar(&e).text().into_owned();
        (!d.trim().is_empty()).then_some(d)
    }

    fn device_scalar<'e, 'a>(&self, e: &'e Eve<'a>) -> &'e Scalar<'a> {
        match self.device {
            EveDevice::Source => &e.src_ip,
            EveDevice::Destination => &e.dest_ip,
            EveDevice::Field(_) => &e.device,
        }
    }

    /// What a line is and, for a flow record, its event, from one read of the line: `None`
    /// when the hand-written read cannot tell (then [`Self::peek`] and [`Self::decode`]
    /// answer, and agree with this where it answers).
    pub fn peek_decode(&self, line: &str) -> Option<(Peeked, Result<Event, DecodeError>)> {
        let e = super::eve_fast::parse(line, &self.device)?;
        let peeked = match &e.event_type {
            Scalar::Str(t) if t != "flow" && t != "netflow" => Peeked::Skip(skip_kind(t.as_ref())),
            _ => Peeked::Record(ts_of(&e).ok()),
        };
        Some((peeked, self.decode_eve(&e)))
    }

    /// Decodes a `flow` or `netflow` record.
    pub fn decode(&self, line: &str) -> Result<Event, DecodeError> {
        self.decode_eve(&parse(line, &self.device)?)
    }

    fn decode_eve(&self, e: &Eve<'_>) -> Result<Event, DecodeError> {
        let netflow = match &e.event_type {
            Scalar::Str(t) if t == "flow" => false,
            Scalar::Str(t) if t == "netflow" => true,
            Scalar::Absent => return Err(DecodeError::new(RejectReason::MissingField, "event_type is missing")),
            other => {
                return Err(DecodeError::new(
                    RejectReason::Malformed,
                    format!("event_type {} is not flow or netflow", quote(&other.text())),
                ))
            }
        };
        let ts_ms = ts_of(e)?;
        let device_name = match self.device_scalar(e) {
            Scalar::Str(s) => s.clone(),
            Scalar::Absent => Cow::Borrowed(""),
            other => other.text().into_owned().into(),
        };
        let device_key = match &self.device {
            EveDevice::Source => "src_ip",
            EveDevice::Destination => "dest_ip",
            EveDevice::Field(f) => f,
        };
        let device = parse_device(&device_name, device_key)?;
        let (bytes_out, bytes_in, packets, c) = if netflow {
            let c = &e.netflow;
            (
                c.bytes.counter("netflow.bytes", MAX_BYTES)?,
                0,
                c.pkts.counter("netflow.pkts", MAX_PACKETS)?,
                c,
            )
        } else {
            let c = &e.flow;
            let to_server = c.pkts_toserver.counter("flow.pkts_toserver", MAX_PACKETS)?;
            let to_client = c.pkts_toclient.counter("flow.pkts_toclient", MAX_PACKETS)?;
            let packets = to_server + to_client;
            if packets > MAX_PACKETS {
                return Err(DecodeError::new(
                    RejectReason::TooLarge,
                    format!("flow.pkts_toserver + flow.pkts_toclient {packets} is above its largest plausible value {MAX_PACKETS}"),
                ));
            }
            (
                c.bytes_toserver.counter("flow.bytes_toserver", MAX_BYTES)?,
                c.bytes_toclient.counter("flow.bytes_toclient", MAX_BYTES)?,
                packets,
                c,
            )
        };
        let (section, start_key, end_key) = if netflow {
            ("netflow", "netflow.start", "netflow.end")
        } else {
            ("flow", "flow.start", "flow.end")
        };
        let duration_ms = match (&c.start, &c.end) {
            (Scalar::Absent, _) | (_, Scalar::Absent) => 0,
            (start, end) => {
                let s = eve_time(&start.text(), start_key)?;
                let t = eve_time(&end.text(), end_key)?;
                if t < s {
                    return Err(DecodeError::new(
                        RejectReason::NegativeValue,
                        format!("{section}.end is {} ms before {section}.start", s - t),
                    ));
                }
                let d = (t - s) as u64;
                if d > MAX_DURATION_MS {
                    return Err(DecodeError::new(
                        RejectReason::TooLarge,
                        format!("{section}.end − {section}.start {d} ms is above its largest plausible value {MAX_DURATION_MS} ms"),
                    ));
                }
                d
            }
        };
        Ok(Event {
            ts_ms,
            device,
            src_ip: parse_ip(&e.src_ip.text(), "src_ip")?,
            dst_ip: parse_ip(&e.dest_ip.text(), "dest_ip")?,
            dst_port: parse_port(&e.dest_port.text(), "dest_port")?,
            protocol: Protocol::parse(&e.proto.text()),
            bytes_out,
            bytes_in,
            packets,
            duration_ms,
            value: None,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::decode) const FLOW: &str = r#"{"timestamp":"2017-07-20T04:12:52.551018+0000","flow_id":1097640186390574,"event_type":"flow","src_ip":"10.16.1.11","src_port":49369,"dest_ip":"10.16.1.1","dest_port":53,"proto":"UDP","app_proto":"dns","flow":{"pkts_toserver":1,"pkts_toclient":1,"bytes_toserver":78,"bytes_toclient":94,"start":"2017-07-20T04:12:52.541038+0000","end":"2017-07-20T04:12:52.551018+0000","age":0,"state":"established","reason":"timeout","alerted":false},"host":"sensor-1"}"#;

    #[test]
    fn a_flow_record() {
        let d = SuricataDecoder::default();
        let e = d.decode(FLOW).unwrap();
        assert_eq!(e.ts_ms, 1_500_523_972_551);
        assert_eq!(e.device.as_str(), "10.16.1.11");
        assert_eq!((e.bytes_out, e.bytes_in, e.packets, e.duration_ms), (78, 94, 2, 10));
        assert_eq!((e.dst_port, e.protocol), (53, Protocol::Udp));
        assert_eq!(d.peek(FLOW), Peeked::Record(Some(e.ts_ms)));
        let dest = SuricataDecoder {
            device: EveDevice::Destination,
        };
        assert_eq!(dest.decode(FLOW).unwrap().device.as_str(), "10.16.1.1");
        let host = SuricataDecoder {
            device: EveDevice::parse("field:host").unwrap(),
        };
        assert_eq!(host.decode(FLOW).unwrap().device.as_str(), "sensor-1");
        assert_eq!(host.peek_device(FLOW).as_deref(), Some("sensor-1"));
    }

    #[test]
    fn netflow_is_one_direction_and_other_types_are_skipped() {
        let d = SuricataDecoder::default();
        let nf = r#"{"timestamp":"2017-07-20T04:12:52.551018+0000","event_type":"netflow","src_ip":"10.0.0.1","dest_ip":"10.0.0.2","dest_port":80,"proto":"TCP","netflow":{"pkts":3,"bytes":180,"start":"2017-07-20T04:12:51.000000+0000","end":"2017-07-20T04:12:52.500000+0000"}}"#;
        let e = d.decode(nf).unwrap();
        assert_eq!((e.bytes_out, e.bytes_in, e.packets, e.duration_ms), (180, 0, 3, 1500));
        let alert = r#"{"timestamp":"2017-07-20T04:12:52.551018+0000","event_type":"alert","alert":{"signature":"x"}}"#;
        assert_eq!(d.peek(alert), Peeked::Skip(0));
        assert_eq!(
            d.peek(r#"{"event_type":"weird_new_type"}"#),
            Peeked::Skip(SKIP_KINDS.len() - 1)
        );
        assert_eq!(d.decode(alert).unwrap_err().reason, RejectReason::Malformed);
    }

    #[test]
    fn bad_records_are_rejected_with_their_reason() {
        let d = SuricataDecoder::default();
        for (from, to, reason) in [
            (
                r#""src_ip":"10.16.1.11""#,
                r#""src_ip":"10.16.1.311""#,
                RejectReason::BadIp,
            ),
            (r#""src_ip":"10.16.1.11","#, "", RejectReason::MissingField),
            (
                r#""bytes_toserver":78"#,
                r#""bytes_toserver":-78"#,
                RejectReason::NegativeValue,
            ),
            (
                r#""bytes_toserver":78"#,
                r#""bytes_toserver":"x""#,
                RejectReason::BadNumber,
            ),
            (r#""dest_port":53"#, r#""dest_port":70000"#, RejectReason::BadPort),
            (
                r#""timestamp":"2017"#,
                r#""timestamp":"1917"#,
                RejectReason::TimeOutOfRange,
            ),
            (
                r#""timestamp":"2017-07-20T"#,
                r#""timestamp":"2017-07-20 "#,
                RejectReason::BadTimestamp,
            ),
            (r#""event_type":"flow","#, "", RejectReason::MissingField),
            (
                r#""proto":"UDP""#,
                r#""proto":"UDP","proto":"TCP""#,
                RejectReason::Malformed,
            ),
            ("}", "", RejectReason::Malformed),
        ] {
            let line = FLOW.replacen(from, to, 1);
            assert_ne!(line, FLOW, "{from}");
            assert_eq!(d.decode(&line).unwrap_err().reason, reason, "{line}");
        }
    }
}
