//! The sections of the run configuration (`[time]`, `[windows]`, `[network]`, `[input]`,
//! `[output]`, `[kafka]`, `[pinot]`, `[server]`) with their defaults.

use serde::{Deserialize, Serialize};

use super::{invalid, Cidr, ConfigError, DurationMs, Secret};
use crate::event::Ip;

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
    /// How far a record may run ahead of its partition's recent progress (and, following
    /// live Kafka, of the wall clock); records beyond are rejected as `too_far_ahead`
    /// (`source::ahead`). 0: no bound.
    pub max_ahead: DurationMs,
}

impl Default for TimeConfig {
    fn default() -> Self {
        TimeConfig {
            tick: DurationMs(1_000),
            lateness: DurationMs(5_000),
            late_policy: LatePolicy::Reject,
            idle_timeout: DurationMs(30_000),
            max_ahead: DurationMs(3_600_000),
        }
    }
}

/// `[windows]`: sliding windows kept per device and tumbling windows written as rows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    pub sliding: Vec<DurationMs>,
    pub tumbling: Vec<DurationMs>,
    /// Windows longer than this advance in steps of it (as Flink's HOP windows do): at tick
    /// `T` such a window holds the events of the current step and of the whole steps before it
    /// that fit in its length, so it equals the exact sliding window at the last tick of every
    /// step. Windows of at most this length slide every tick. `"1s"` (the tick) makes every
    /// window slide every tick.
    pub step: DurationMs,
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig {
            sliding: vec![DurationMs(60_000), DurationMs(300_000), DurationMs(3_600_000)],
            tumbling: vec![DurationMs(60_000)],
            step: DurationMs(60_000),
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
    /// `auto`, `csv`, `jsonl`, `zeek` (Zeek JSON), `zeek-tsv` or `suricata`.
    pub format: String,
    /// Suricata EVE: what names the device: `source` (`src_ip`), `destination` (`dest_ip`) or
    /// `field:NAME` (a top-level field such as `host`).
    pub suricata_device: String,
    /// Longer records are rejected with reason `too_long`.
    pub max_record_bytes: usize,
    /// Records read per batch before the dataflow is stepped.
    pub batch_records: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        InputConfig {
            format: "auto".into(),
            suricata_device: "source".into(),
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
    /// Write per-event scores to `OUT/scores.jsonl` (as large as the input: off unless asked;
    /// `--scores-out FILE` writes them to FILE).
    pub scores: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            snapshot_every: DurationMs(0),
            reject_raw_bytes: 512,
            sink: SinkKind::Files,
            scores: false,
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
    /// Time-out of broker operations (metadata, committed offsets).
    pub timeout: DurationMs,
    /// How long an output flush waits for delivery (a broker restart within it is ridden out).
    pub delivery_timeout: DurationMs,
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
            delivery_timeout: DurationMs(120_000),
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
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
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

/// `[server]`: the embedded query server (`vigil run --serve`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// How much event time of closed tumbling windows `/devices/{id}/history` keeps.
    pub history_retention: DurationMs,
    /// Handler threads kept ready for the requests that wait for the engine (queries,
    /// retraining, the model registry); more start while all are busy, up to 64. Connections
    /// themselves are held by one event-loop thread, whatever their number.
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
    /// Connections held at once; at the limit the least recently active connection (of the
    /// address holding the most) is closed to make room for a new one. Lowered to fit the
    /// process's open-files limit.
    pub max_connections: usize,
    /// A kept-alive connection with no request for this long is closed.
    pub idle_timeout: DurationMs,
    /// A request head must arrive whole within this of its first byte (else 408 and the
    /// connection closed).
    pub request_timeout: DurationMs,
    /// Bearer token every request but `GET /health` must carry (`Authorization: Bearer
    /// <token>`), else 401. Required to serve beyond loopback (unless `--insecure`).
    pub token: Option<Secret>,
    /// TLS certificate chain (PEM); with `tls_key`, the server speaks only https.
    pub tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM) of `tls_cert`.
    pub tls_key: Option<std::path::PathBuf>,
    /// Serve a non-loopback address without a token (`vigil run --insecure`).
    pub insecure: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            history_retention: DurationMs(3_600_000),
            threads: 4,
            timeout: DurationMs(5_000),
            step_events: 64,
            work_slice_us: 1000,
            max_connections: 10_000,
            idle_timeout: DurationMs(30_000),
            request_timeout: DurationMs(10_000),
            token: None,
            tls_cert: None,
            tls_key: None,
            insecure: false,
        }
    }
}

impl ServerConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.threads == 0 {
            return Err(invalid("server.threads", "must be at least 1"));
        }
        for (key, d) in [
            ("server.timeout", self.timeout),
            ("server.idle_timeout", self.idle_timeout),
            ("server.request_timeout", self.request_timeout),
        ] {
            if d.0 == 0 {
                return Err(invalid(key, "must be positive, e.g. \"5s\""));
            }
        }
        if self.max_connections == 0 {
            return Err(invalid("server.max_connections", "must be at least 1"));
        }
        if let Some(token) = &self.token {
            let t = token.expose();
            if t.len() < 16 || !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    "server.token",
                    "must be at least 16 printable characters without spaces, e.g. from `openssl rand -hex 32`",
                ));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid(
                "server.tls_cert",
                "TLS needs both tls_cert and tls_key (PEM files), or neither",
            ));
        }
        Ok(())
    }
}
