//! The run configuration: a TOML file with sane defaults, overridable from the environment.
//!
//! Invariants after [`Config::load`] / [`Config::validate`]: the tick is positive, every
//! window length is a positive multiple of the tick, window lists are sorted and free of
//! duplicates, and every internal range is a well-formed CIDR. Unknown keys are errors
//! (naming the key), never silently ignored; a key that moved to another section
//! ([`MOVED_KEYS`]) is refused with where it went. Environment variables named
//! `VIGIL__SECTION__KEY=value` override the file (value parsed as TOML, else taken as a string).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::event::Ip;

/// A configuration problem, with the file or key it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

/// A duration written as text ("1s", "5m", "1h 30m") or as whole milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct DurationMs(pub u64);

impl DurationMs {
    pub fn from_text(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. \"1s\", \"5m\", \"1h\""))?;
        Ok(DurationMs(d.as_millis() as u64))
    }
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl From<DurationMs> for String {
    fn from(d: DurationMs) -> String {
        humantime::format_duration(d.as_duration()).to_string()
    }
}

impl std::fmt::Display for DurationMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.as_duration()))
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(de)? {
            Raw::Millis(ms) => Ok(DurationMs(ms)),
            Raw::Text(t) => DurationMs::from_text(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// An address range such as `10.0.0.0/8` or `fc00::/7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Cidr {
    base: u128,
    /// Prefix length in the 128-bit (IPv4-mapped) space.
    prefix: u32,
    text_v4: bool,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, len) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a CIDR range; write e.g. \"10.0.0.0/8\""))?;
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}`: `{addr}` is not an IP address"))?;
        let len: u32 = len
            .parse()
            .map_err(|_| format!("`{text}`: `{len}` is not a prefix length"))?;
        let (max, offset) = if addr.is_ipv4() { (32, 96) } else { (128, 0) };
        if len > max {
            return Err(format!("`{text}`: prefix length {len} is larger than {max}"));
        }
        let prefix = len + offset;
        let base = Ip::from_addr(addr).0 & mask(prefix);
        Ok(Cidr {
            base,
            prefix,
            text_v4: addr.is_ipv4(),
        })
    }

    /// Whether the address lies inside the range.
    #[inline]
    pub fn contains(&self, ip: Ip) -> bool {
        ip.0 & mask(self.prefix) == self.base
    }
}

#[inline]
fn mask(prefix: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        let (addr, len) = if c.text_v4 {
            (Ip(c.base).to_string(), c.prefix - 96)
        } else {
            (std::net::Ipv6Addr::from(c.base).to_string(), c.prefix)
        };
        format!("{addr}/{len}")
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        Cidr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What to do with a record later than the allowed lateness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LatePolicy {
    /// Send it to the rejects with reason `late`.
    #[default]
    Reject,
    /// Apply it at the current watermark, as a correction (also counted as `late_corrected`).
    Correct,
}

/// `[time]`: ticks, lateness and the watermark.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TimeConfig {
    /// Granularity of dataflow timestamps: event time is truncated to it.
    pub tick: DurationMs,
    /// How far behind the highest event time seen a record may be and still be exact.
    pub lateness: DurationMs,
    pub late_policy: LatePolicy,
    /// A source partition with no data for this long (wall clock) stops holding the frontier.
    pub idle_timeout: DurationMs,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            tick: DurationMs(1_000),
            lateness: DurationMs(5_000),
            late_policy: LatePolicy::Reject,
            idle_timeout: DurationMs(30_000),
        }
    }
}

/// `[windows]`: sliding windows kept per device and tumbling windows written as rows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    pub sliding: Vec<DurationMs>,
    pub tumbling: Vec<DurationMs>,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            sliding: vec![DurationMs(60_000), DurationMs(300_000), DurationMs(3_600_000)],
            tumbling: vec![DurationMs(60_000)],
        }
    }
}

/// `[network]`: which destination addresses count as internal.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub internal: Vec<Cidr>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            internal: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]
                .iter()
                .map(|t| Cidr::parse(t).expect("default ranges are valid"))
                .collect(),
        }
    }
}

impl NetworkConfig {
    /// Whether a destination lies outside every internal range.
    #[inline]
    pub fn is_external(&self, ip: Ip) -> bool {
        !self.internal.iter().any(|c| c.contains(ip))
    }
}

/// `[input]`: how records are read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// `auto`, `csv`, `jsonl` or `zeek`.
    pub format: String,
    /// Longer records are rejected with reason `too_long`.
    pub max_record_bytes: usize,
    /// Records read per batch before the dataflow is stepped.
    pub batch_records: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            format: "auto".into(),
            max_record_bytes: 64 * 1024,
            batch_records: 16_384,
        }
    }
}

/// `[output]`: what the file outputs hold.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Also write a feature snapshot every this much event time (0 = only at the end).
    pub snapshot_every: DurationMs,
    /// How many bytes of a rejected record's raw text are kept.
    pub reject_raw_bytes: usize,
    /// `files` or `kafka` (`--sink` wins).
    pub sink: SinkKind,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            snapshot_every: DurationMs(0),
            reject_raw_bytes: 512,
            sink: SinkKind::Files,
        }
    }
}

/// `[output]`'s sink choice: where window rows, features and rejects go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// Files in the output folder (`windows.jsonl`, `features.jsonl`, `rejects.jsonl`).
    #[default]
    Files,
    /// The Kafka topics of `[kafka]` (windows, features, anomalies, dead letters).
    Kafka,
}

/// Where a Kafka input starts when its consumer group has no committed offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    #[default]
    Earliest,
    Latest,
}

/// `[kafka]`: brokers, topics, consumer group and librdkafka properties.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// `bootstrap.servers`.
    pub brokers: String,
    /// Consumer group whose committed offsets the input starts from and commits to.
    pub group_id: String,
    /// Input topics (used when `--input kafka` names none, or when no `--input` is given).
    pub topics: Vec<String>,
    /// Where to start in a partition without a committed offset.
    pub start: StartPosition,
    pub windows_topic: String,
    pub features_topic: String,
    pub anomalies_topic: String,
    pub dlq_topic: String,
    /// Partitions of output topics vigil creates when they are missing.
    pub output_partitions: u32,
    /// Emit the feature rows of devices that changed every this much event time.
    pub features_every: DurationMs,
    /// Wall-clock interval between offset commits (each preceded by a delivery flush).
    pub commit_every: DurationMs,
    /// Wall-clock interval between metadata refreshes (new partitions are picked up).
    pub metadata_refresh: DurationMs,
    /// Time-out of broker operations (metadata, committed offsets, flush).
    pub timeout: DurationMs,
    /// librdkafka properties for every client, verbatim (`"security.protocol" = "SASL_SSL"`).
    pub properties: toml::Table,
    /// librdkafka properties for the consumer only (win over `properties`).
    pub consumer_properties: toml::Table,
    /// librdkafka properties for producers only (win over `properties`).
    pub producer_properties: toml::Table,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:19092".into(),
            group_id: "vigil".into(),
            topics: Vec::new(),
            start: StartPosition::Earliest,
            windows_topic: "vigil.windows".into(),
            features_topic: "vigil.features".into(),
            anomalies_topic: "vigil.anomalies".into(),
            dlq_topic: "vigil.dlq".into(),
            output_partitions: 3,
            features_every: DurationMs(60_000),
            commit_every: DurationMs(1_000),
            metadata_refresh: DurationMs(5_000),
            timeout: DurationMs(10_000),
            properties: toml::Table::new(),
            consumer_properties: toml::Table::new(),
            producer_properties: toml::Table::new(),
        }
    }
}

impl KafkaConfig {
    /// The librdkafka properties of a client: `bootstrap.servers`, then `properties`, then
    /// the role's own table (later wins). Values are passed as text (`true`, `1048576`).
    pub fn client_properties(&self, role: KafkaRole) -> Vec<(String, String)> {
        let mut out = vec![("bootstrap.servers".to_string(), self.brokers.clone())];
        let specific = match role {
            KafkaRole::Consumer => &self.consumer_properties,
            KafkaRole::Producer => &self.producer_properties,
            KafkaRole::Admin => &self.properties,
        };
        for table in [&self.properties, specific] {
            for (k, v) in table {
                let text = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                out.retain(|(key, _)| key != k);
                out.push((k.clone(), text));
            }
        }
        out
    }
}

/// Which client a property set is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KafkaRole {
    Consumer,
    Producer,
    Admin,
}

/// `[pinot]`: the Pinot tables fed by vigil's output topics (`vigil pinot ...`).
///
/// The brokers and topic names the tables consume are `[kafka]`'s (`brokers`,
/// `windows_topic`, `features_topic`, `anomalies_topic`): the very topics the Kafka sink
/// writes, so a table reads what vigil writes. See [`MOVED_KEYS`] for the keys that moved.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PinotConfig {
    /// The controller's REST endpoint (`vigil pinot apply`; `--controller` wins).
    pub controller: String,
    /// Table (and schema) names.
    pub windows_table: String,
    pub features_table: String,
    pub anomalies_table: String,
    /// A consuming segment is committed after this much wall-clock time (or ~segment_size).
    pub segment_flush_time: DurationMs,
    /// Target size of a committed segment, as Pinot writes it ("100M").
    pub segment_size: String,
}

impl Default for PinotConfig {
    fn default() -> Self {
        PinotConfig {
            controller: "http://127.0.0.1:19000".into(),
            windows_table: "vigil_windows".into(),
            features_table: "vigil_features".into(),
            anomalies_table: "vigil_anomalies".into(),
            segment_flush_time: DurationMs(6 * 3_600_000),
            segment_size: "100M".into(),
        }
    }
}

impl PinotConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.controller.starts_with("http://") {
            return Err(invalid(
                "pinot.controller",
                &format!("`{}` must be an http:// URL", self.controller),
            ));
        }
        for (key, name) in [
            ("pinot.windows_table", &self.windows_table),
            ("pinot.features_table", &self.features_table),
            ("pinot.anomalies_table", &self.anomalies_table),
        ] {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid(key, &format!("`{name}`: use letters, digits and _ only")));
            }
        }
        let tables = [&self.windows_table, &self.features_table, &self.anomalies_table];
        if tables[0] == tables[1] || tables[1] == tables[2] || tables[0] == tables[2] {
            return Err(invalid("pinot", "the three table names must differ"));
        }
        if self.segment_size.trim().is_empty() {
            return Err(invalid("pinot.segment_size", "must not be empty"));
        }
        if self.segment_flush_time.0 < 60_000 {
            return Err(invalid("pinot.segment_flush_time", "must be at least 1m"));
        }
        Ok(())
    }
}

/// Keys that left their section: `(section, old key, new section, new key)`. A config that
/// still uses one is refused with a message saying where it went (not just "unknown field").
pub const MOVED_KEYS: [(&str, &str, &str, &str); 4] = [
    ("pinot", "kafka_brokers", "kafka", "brokers"),
    ("pinot", "windows_topic", "kafka", "windows_topic"),
    ("pinot", "features_topic", "kafka", "features_topic"),
    ("pinot", "anomalies_topic", "kafka", "anomalies_topic"),
];

/// The first key of [`MOVED_KEYS`] present in a raw config table, as an error.
fn check_moved_keys(table: &toml::Table) -> Result<(), ConfigError> {
    for (section, old, new_section, new) in MOVED_KEYS {
        let present = table
            .get(section)
            .and_then(toml::Value::as_table)
            .is_some_and(|t| t.contains_key(old));
        if present {
            return Err(invalid(
                &format!("{section}.{old}"),
                &format!(
                    "has moved to `[{new_section}] {new}` (environment: VIGIL__{}__{}): one place \
                     for the brokers and topics vigil writes and Pinot consumes; move the value \
                     there and remove it from `[{section}]`",
                    new_section.to_ascii_uppercase(),
                    new.to_ascii_uppercase()
                ),
            ));
        }
    }
    Ok(())
}

/// `[server]`: the embedded query server (`vigil run --serve`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// How much event time of closed tumbling windows `/devices/{id}/history` keeps.
    pub history_retention: DurationMs,
    /// Threads waiting for connections. A connection is served by the thread that took it
    /// (request read, asked and answered on that thread); more threads start while
    /// connections are open, up to 256.
    pub threads: usize,
    /// A query not answered within this (wall clock) gets a 503.
    pub timeout: DurationMs,
    /// While queries arrive (within the last second), each worker advances event time in
    /// steps of about this many of its events, answering queries between steps, instead of
    /// a whole input batch at once (0: never split).
    pub step_events: usize,
    /// Longest the window operator works in one activation, in microseconds, before it lets
    /// the worker's other operators run and answer queries (0: no bound). Applies whether
    /// or not the run serves.
    pub work_slice_us: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            history_retention: DurationMs(3_600_000),
            threads: 4,
            timeout: DurationMs(5_000),
            step_events: 64,
            work_slice_us: 1000,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub time: TimeConfig,
    pub windows: WindowConfig,
    pub network: NetworkConfig,
    pub input: InputConfig,
    pub output: OutputConfig,
    pub kafka: KafkaConfig,
    pub pinot: PinotConfig,
    pub server: ServerConfig,
    /// Per-detector sections, checked by the detector registry.
    pub detectors: toml::Table,
    /// `[model]`: training, registry, retraining schedule, MLflow (see `src/model/config.rs`).
    pub model: crate::model::ModelConfig,
}

impl Config {
    /// Reads a TOML file (or the defaults when `path` is `None`), applies `VIGIL__*`
    /// environment overrides, and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let (text, origin) = match path {
            Some(p) => (
                std::fs::read_to_string(p).map_err(|source| ConfigError::Io {
                    path: p.to_path_buf(),
                    source,
                })?,
                p.display().to_string(),
            ),
            None => (String::new(), "defaults".to_string()),
        };
        let overrides: Vec<(String, String)> = std::env::vars().filter(|(k, _)| k.starts_with("VIGIL__")).collect();
        Self::from_toml_with(&text, &origin, &overrides)
    }

    /// Parses TOML text with explicit overrides (`VIGIL__SECTION__KEY`, value).
    pub fn from_toml_with(text: &str, origin: &str, overrides: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| ConfigError::Parse {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        for (name, raw) in overrides {
            let path: Vec<String> = name
                .trim_start_matches("VIGIL__")
                .split("__")
                .map(|s| s.to_ascii_lowercase())
                .collect();
            let value = parse_override(raw);
            set_path(&mut table, &path, value).map_err(|message| ConfigError::Invalid {
                key: path.join("."),
                message: format!("from environment variable {name}: {message}"),
            })?;
        }
        check_moved_keys(&table)?;
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                origin: origin.to_string(),
                message: e.to_string(),
            })?;
        config.validate()
    }

    /// Parses TOML text without environment overrides.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml_with(text, "text", &[])
    }

    /// Checks the invariants stated in the module header and normalises window lists.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        let tick = self.time.tick.0;
        if tick == 0 {
            return Err(invalid("time.tick", "must be positive, e.g. \"1s\""));
        }
        for (key, list) in [
            ("windows.sliding", &mut self.windows.sliding),
            ("windows.tumbling", &mut self.windows.tumbling),
        ] {
            for w in list.iter() {
                if w.0 == 0 || w.0 % tick != 0 {
                    return Err(invalid(
                        key,
                        &format!(
                            "window {w} must be a positive multiple of time.tick ({})",
                            self.time.tick
                        ),
                    ));
                }
            }
            list.sort();
            list.dedup();
        }
        if self.windows.sliding.is_empty() {
            return Err(invalid("windows.sliding", "at least one sliding window is needed"));
        }
        if self.input.batch_records == 0 {
            return Err(invalid("input.batch_records", "must be at least 1"));
        }
        if self.output.snapshot_every.0 % tick != 0 {
            return Err(invalid("output.snapshot_every", "must be a multiple of time.tick"));
        }
        let k = &self.kafka;
        for (key, ms) in [
            ("kafka.commit_every", k.commit_every.0),
            ("kafka.metadata_refresh", k.metadata_refresh.0),
            ("kafka.timeout", k.timeout.0),
        ] {
            if ms == 0 {
                return Err(invalid(key, "must be positive, e.g. \"5s\""));
            }
        }
        if k.features_every.0 % tick != 0 {
            return Err(invalid("kafka.features_every", "must be a multiple of time.tick"));
        }
        if k.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers", "must name at least one host:port"));
        }
        for (key, value) in [
            ("kafka.group_id", &k.group_id),
            ("kafka.windows_topic", &k.windows_topic),
            ("kafka.features_topic", &k.features_topic),
            ("kafka.anomalies_topic", &k.anomalies_topic),
            ("kafka.dlq_topic", &k.dlq_topic),
        ] {
            if value.trim().is_empty() {
                return Err(invalid(key, "must not be empty"));
            }
        }
        if k.output_partitions == 0 {
            return Err(invalid("kafka.output_partitions", "must be at least 1"));
        }
        for (key, table) in [
            ("kafka.properties", &k.properties),
            ("kafka.consumer_properties", &k.consumer_properties),
            ("kafka.producer_properties", &k.producer_properties),
        ] {
            for (name, value) in table {
                if matches!(value, toml::Value::Table(_) | toml::Value::Array(_)) {
                    return Err(invalid(
                        &format!("{key}.{name}"),
                        "librdkafka properties are plain values (text, number or boolean); quote dotted names: \"security.protocol\" = \"SSL\"",
                    ));
                }
            }
        }
        self.pinot.validate()?;
        if let Err((key, message)) = self.model.check(tick) {
            return Err(invalid(&key, &message));
        }
        if self.server.threads == 0 {
            return Err(invalid("server.threads", "must be at least 1"));
        }
        if self.server.timeout.0 == 0 {
            return Err(invalid("server.timeout", "must be positive, e.g. \"5s\""));
        }
        match self.input.format.as_str() {
            "auto" | "csv" | "jsonl" | "zeek" => {}
            other => {
                return Err(invalid(
                    "input.format",
                    &format!("unknown format `{other}`; use auto, csv, jsonl or zeek"),
                ))
            }
        }
        Ok(self)
    }

    /// Tick length in milliseconds.
    pub fn tick_ms(&self) -> u64 {
        self.time.tick.0
    }

    /// The window lengths the engine maintains, in ticks: the sliding windows plus any
    /// tumbling length not already among them (tumbling rows are read off these).
    pub fn maintained_windows_ticks(&self) -> Vec<u64> {
        let mut all: Vec<u64> = self
            .windows
            .sliding
            .iter()
            .chain(self.windows.tumbling.iter())
            .map(|w| w.0 / self.tick_ms())
            .collect();
        all.sort();
        all.dedup();
        all
    }
}

fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    }
}

fn parse_override(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty key".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => {
            let entry = table
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("`{first}` is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.tick_ms(), 1000);
        assert_eq!(c.maintained_windows_ticks(), vec![60, 300, 3600]);
    }

    #[test]
    fn unknown_key_names_the_key() {
        let e = Config::from_toml("[time]\ntickk = \"1s\"\n").unwrap_err().to_string();
        assert!(e.contains("tickk"), "{e}");
    }

    #[test]
    fn window_not_multiple_of_tick_is_rejected() {
        let e = Config::from_toml("[time]\ntick = \"7s\"\n").unwrap_err().to_string();
        assert!(e.contains("windows.sliding"), "{e}");
    }

    #[test]
    fn env_override_wins() {
        let c = Config::from_toml_with(
            "[time]\ntick = \"1s\"\n",
            "t",
            &[("VIGIL__TIME__TICK".into(), "2s".into())],
        )
        .unwrap();
        assert_eq!(c.tick_ms(), 2000);
    }

    #[test]
    fn the_documented_file_is_the_defaults() {
        let documented = Config::from_toml(include_str!("../vigil.toml")).unwrap();
        assert_eq!(documented, Config::from_toml("").unwrap());
    }

    #[test]
    fn kafka_section_and_properties() {
        let c = Config::from_toml(
            "[output]\nsink = \"kafka\"\n[kafka]\nbrokers = \"b:1\"\ntopics = [\"a\", \"b\"]\nstart = \"latest\"\n\
             [kafka.properties]\n\"security.protocol\" = \"SSL\"\n\"fetch.max.bytes\" = 1048576\n\
             [kafka.consumer_properties]\n\"security.protocol\" = \"PLAINTEXT\"\n",
        )
        .unwrap();
        assert_eq!(c.output.sink, SinkKind::Kafka);
        assert_eq!(c.kafka.start, StartPosition::Latest);
        assert_eq!(c.kafka.topics, vec!["a", "b"]);
        let consumer = c.kafka.client_properties(KafkaRole::Consumer);
        assert!(consumer.contains(&("bootstrap.servers".into(), "b:1".into())));
        assert!(consumer.contains(&("security.protocol".into(), "PLAINTEXT".into())));
        assert!(consumer.contains(&("fetch.max.bytes".into(), "1048576".into())));
        let producer = c.kafka.client_properties(KafkaRole::Producer);
        assert!(producer.contains(&("security.protocol".into(), "SSL".into())));
        let e = Config::from_toml("[kafka]\nbrokerz = \"x\"\n").unwrap_err().to_string();
        assert!(e.contains("brokerz"), "{e}");
        let e = Config::from_toml("[kafka.properties]\nsasl = { a = 1 }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.properties.sasl"), "{e}");
        let c = Config::from_toml_with("", "t", &[("VIGIL__KAFKA__BROKERS".into(), "h:9".into())]).unwrap();
        assert_eq!(c.kafka.brokers, "h:9");
    }

    #[test]
    fn pinot_section() {
        let c = Config::from_toml("[pinot]\nwindows_table = \"w\"\n").unwrap();
        assert_eq!(c.pinot.windows_table, "w");
        let e = Config::from_toml("[pinot]\nwindows_table = \"a-b\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("pinot.windows_table"), "{e}");
        let e = Config::from_toml("[pinot]\ncontroler = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("controler"), "{e}");
    }

    #[test]
    fn keys_moved_from_pinot_to_kafka_say_where_they_went() {
        for (old, new) in [
            ("kafka_brokers", "[kafka] brokers"),
            ("windows_topic", "[kafka] windows_topic"),
            ("features_topic", "[kafka] features_topic"),
            ("anomalies_topic", "[kafka] anomalies_topic"),
        ] {
            let e = Config::from_toml(&format!("[pinot]\ncontroller = \"http://h:1\"\n{old} = \"x\"\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("`pinot.{old}`")) && e.contains(&format!("moved to `{new}`")),
                "{e}"
            );
        }
        // From the environment too, naming the variable to use instead.
        let e = Config::from_toml_with("", "t", &[("VIGIL__PINOT__WINDOWS_TOPIC".into(), "t.w".into())])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pinot.windows_topic") && e.contains("VIGIL__KAFKA__WINDOWS_TOPIC"),
            "{e}"
        );
        // The same keys in [kafka] are fine, and are what the Pinot tables consume.
        let c = Config::from_toml("[kafka]\nbrokers = \"k:1\"\nwindows_topic = \"t.w\"\n").unwrap();
        assert_eq!(
            (c.kafka.brokers.as_str(), c.kafka.windows_topic.as_str()),
            ("k:1", "t.w")
        );
    }

    #[test]
    fn cidr_membership() {
        let net = NetworkConfig::default();
        let ip = |s: &str| Ip::from_addr(s.parse().unwrap());
        assert!(!net.is_external(ip("10.9.8.7")));
        assert!(!net.is_external(ip("172.31.0.1")));
        assert!(net.is_external(ip("172.32.0.1")));
        assert!(net.is_external(ip("8.8.8.8")));
        assert!(net.is_external(ip("2001:db8::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
    }
}
