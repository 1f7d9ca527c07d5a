//! The run configuration: a TOML file with sane defaults, overridable from the environment.
//!
//! Invariants after [`Config::load`] / [`Config::validate`]: the tick is positive, every
//! window length is a positive multiple of the tick, window lists are sorted and free of
//! duplicates, and every internal range is a well-formed CIDR. Unknown keys are errors
//! (naming the key), never silently ignored; a key that moved to another section
//! ([`MOVED_KEYS`]) is refused with where it went. Environment variables named
//! `VIGIL__SECTION__KEY=value` override the file (value parsed as TOML, else taken as a string;
//! a secret such as `VIGIL__SERVER__TOKEN` is always taken as the string it is).

mod sections;
mod values;

pub use sections::{
    InputConfig, KafkaConfig, KafkaRole, LatePolicy, NetworkConfig, OutputConfig, PinotConfig, ServerConfig, SinkKind,
    StartPosition, TimeConfig, WindowConfig,
};
pub use values::{Cidr, DurationMs, Secret};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
            let value = if TEXT_KEYS.contains(&path.join(".").as_str()) {
                toml::Value::String(raw.clone())
            } else {
                parse_override(raw)
            };
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
        let step = self.windows.step;
        if step.0 == 0 || step.0 % tick != 0 {
            return Err(invalid(
                "windows.step",
                &format!(
                    "must be a positive multiple of time.tick ({}), e.g. \"1m\"",
                    self.time.tick
                ),
            ));
        }
        for w in self.windows.sliding.iter().chain(&self.windows.tumbling) {
            // A window longer than a step of more than a tick keeps buckets, which count steps
            // in 32 bits (`window::bucket`).
            if step.0 > tick && w.0 / step.0 > 1 << 31 {
                return Err(invalid(
                    "windows.step",
                    &format!("window {w} spans more than 2^31 steps of {step}: set a longer step"),
                ));
            }
            if w.0 > step.0 && w.0 % step.0 != 0 {
                return Err(invalid(
                    "windows.step",
                    &format!(
                        "window {w} is longer than the step ({step}) but not a multiple of it: \
                         make it a multiple, or set a step that divides it (\"1s\" slides every window every tick)"
                    ),
                ));
            }
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
            ("kafka.delivery_timeout", k.delivery_timeout.0),
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
        self.server.validate()?;
        match self.input.format.as_str() {
            "auto" | "csv" | "jsonl" | "zeek" | "zeek-tsv" | "suricata" => {}
            other => {
                return Err(invalid(
                    "input.format",
                    &format!("unknown format `{other}`; use auto, csv, jsonl, zeek, zeek-tsv or suricata"),
                ))
            }
        }
        match self.input.suricata_device.as_str() {
            "source" | "destination" => {}
            d if d.strip_prefix("field:").is_some_and(|f| !f.is_empty()) => {}
            other => {
                return Err(invalid(
                    "input.suricata_device",
                    &format!("`{other}`: use source, destination or field:NAME (e.g. field:host)"),
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

    /// The step of each maintained window in ticks, in the order of
    /// [`Config::maintained_windows_ticks`]: 1 for a window that slides every tick (at most
    /// `windows.step` long), `windows.step` in ticks for a longer one.
    pub fn window_steps_ticks(&self) -> Vec<u64> {
        let step = self.windows.step.0 / self.tick_ms();
        self.maintained_windows_ticks()
            .into_iter()
            .map(|len| if len > step { step } else { 1 })
            .collect()
    }
}

pub(crate) fn invalid(key: &str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    }
}

/// Keys whose environment override is taken as text as it is (a token of digits stays text).
const TEXT_KEYS: [&str; 1] = ["server.token"];

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
    fn window_steps() {
        let c = Config::from_toml("").unwrap();
        assert_eq!(c.window_steps_ticks(), vec![1, 60, 60]);
        let e = Config::from_toml("[windows]\nsliding = [\"1m\", \"90s\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("windows.step") && e.contains("not a multiple"), "{e}");
        let e = Config::from_toml("[windows]\nstep = \"1500ms\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("windows.step") && e.contains("multiple of time.tick"), "{e}");
        let c = Config::from_toml("[windows]\nsliding = [\"1m\", \"90s\"]\nstep = \"30s\"\n").unwrap();
        assert_eq!(c.window_steps_ticks(), vec![30, 30]);
        // A stepped window's buckets count their steps in 32 bits.
        let e = Config::from_toml("[time]\ntick = \"1ms\"\n[windows]\nsliding = [\"1s\", \"60d\"]\nstep = \"2ms\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("windows.step") && e.contains("2^31 steps"), "{e}");
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
    fn the_server_token_from_the_environment_stays_text_and_is_not_shown() {
        let c = Config::from_toml_with(
            "",
            "t",
            &[("VIGIL__SERVER__TOKEN".into(), "12345678901234567890".into())],
        )
        .unwrap();
        let token = c.server.token.as_ref().unwrap();
        assert_eq!(token.expose(), "12345678901234567890");
        assert!(!format!("{c:?}").contains("1234567890"), "Debug hides the token");
        let e = Config::from_toml_with("", "t", &[("VIGIL__SERVER__TOKEN".into(), "short".into())]).unwrap_err();
        assert!(e.to_string().contains("server.token"), "{e}");
        let e = Config::from_toml("[server]\ntls_cert = \"c.pem\"\n").unwrap_err();
        assert!(e.to_string().contains("tls_key"), "{e}");
    }

    #[test]
    fn the_documented_file_is_the_defaults() {
        let documented = Config::from_toml(include_str!("../../vigil.toml")).unwrap();
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
        let ip = |s: &str| crate::event::Ip::from_addr(s.parse().unwrap());
        assert!(!net.is_external(ip("10.9.8.7")));
        assert!(!net.is_external(ip("172.31.0.1")));
        assert!(net.is_external(ip("172.32.0.1")));
        assert!(net.is_external(ip("8.8.8.8")));
        assert!(net.is_external(ip("2001:db8::1")));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
    }
}
