//! Helpers for the tests against the real Kafka broker started by `scripts/kafka.sh`:
//! finding it (or failing loudly when `VIGIL_REQUIRE_KAFKA=1`), unique topic names, running
//! the `vigil` binary, and reading topics back.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use serde_json::Value;
use vigil::generate::{generate, GeneratorConfig, IncidentPlan, OutputFormat};

/// The brokers of the test broker (`VIGIL_KAFKA_BROKERS`, default 127.0.0.1:19092), or
/// None (with a loud message) when it does not answer — a failure when
/// `VIGIL_REQUIRE_KAFKA=1` (set by scripts/test.sh).
pub fn broker() -> Option<String> {
    let brokers = std::env::var("VIGIL_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .expect("consumer");
    match consumer.fetch_metadata(None, Duration::from_secs(10)) {
        Ok(_) => Some(brokers),
        Err(e) => {
            let msg =
                format!("Kafka broker at {brokers} is not reachable ({e}); start it with `scripts/kafka.sh start`");
            if std::env::var("VIGIL_REQUIRE_KAFKA").is_ok_and(|v| v == "1") {
                panic!("{msg} (VIGIL_REQUIRE_KAFKA=1)");
            }
            eprintln!("\n!!!!!!!! SKIPPING Kafka test: {msg} !!!!!!!!\n");
            None
        }
    }
}

/// A topic or group name no other test (or earlier run) uses.
pub fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}-{}", std::process::id(), nanos % 1_000_000_000_000)
}

/// Runs the vigil binary with `args` and `env`; panics with its output unless it succeeds.
pub fn vigil_ok(args: &[&str], env: &[(String, String)]) -> Output {
    let out = vigil(args, env);
    assert!(
        out.status.success(),
        "vigil {args:?} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

pub fn vigil(args: &[&str], env: &[(String, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args(args).env("VIGIL_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("running vigil")
}

/// Environment that points every Kafka output of a run at topics prefixed by `prefix`.
pub fn output_env(brokers: &str, prefix: &str) -> Vec<(String, String)> {
    vec![
        ("VIGIL__KAFKA__BROKERS".into(), brokers.into()),
        ("VIGIL__KAFKA__WINDOWS_TOPIC".into(), format!("{prefix}.windows")),
        ("VIGIL__KAFKA__FEATURES_TOPIC".into(), format!("{prefix}.features")),
        ("VIGIL__KAFKA__ANOMALIES_TOPIC".into(), format!("{prefix}.anomalies")),
        ("VIGIL__KAFKA__DLQ_TOPIC".into(), format!("{prefix}.dlq")),
    ]
}

/// One message read back.
#[derive(Debug, Clone)]
pub struct Msg {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: BTreeMap<String, String>,
}

impl Msg {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.value).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.value))
    }
}

/// Every message of `topic`, in partition then offset order.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Msg> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    // A topic just created may not have a leader yet: retry for a while.
    let retry_deadline = Instant::now() + Duration::from_secs(30);
    let retry = |what: &str, e: &dyn std::fmt::Display| {
        assert!(Instant::now() < retry_deadline, "{what} of {topic}: {e}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let parts: Vec<i32> = loop {
        match consumer.fetch_metadata(Some(topic), Duration::from_secs(10)) {
            Ok(md)
                if md
                    .topics()
                    .first()
                    .is_some_and(|t| t.error().is_none() && !t.partitions().is_empty()) =>
            {
                break md.topics()[0].partitions().iter().map(|p| p.id()).collect()
            }
            Ok(_) => retry("metadata", &"no partitions yet"),
            Err(e) => retry("metadata", &e),
        }
    };
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for &p in &parts {
        let (low, high) = loop {
            match consumer.fetch_watermarks(topic, p, Duration::from_secs(10)) {
                Ok(w) => break w,
                Err(e) => retry("watermarks", &e),
            }
        };
        if high > low {
            ends.insert(p, high);
            tpl.add_partition_offset(topic, p, Offset::Offset(low)).unwrap();
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return out;
    }
    consumer.assign(&tpl).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    while ends.iter().any(|(p, &e)| next.get(p).copied().unwrap_or(0) < e) {
        assert!(Instant::now() < deadline, "timed out reading {topic}");
        let Some(r) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = r.expect("consume");
        let mut headers = BTreeMap::new();
        if let Some(h) = m.headers() {
            for hd in h.iter() {
                headers.insert(
                    hd.key.to_string(),
                    String::from_utf8_lossy(hd.value.unwrap_or_default()).into_owned(),
                );
            }
        }
        next.insert(m.partition(), m.offset() + 1);
        out.push(Msg {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| k.to_vec()),
            value: m.payload().unwrap_or_default().to_vec(),
            headers,
        });
    }
    out.sort_by_key(|m| (m.partition, m.offset));
    out
}

/// Committed offsets of `group` for `topic`'s partitions (None: nothing committed).
pub fn committed(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed");
    (0..partitions)
        .map(|p| match got.find_partition(topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => Some(o),
            _ => None,
        })
        .collect()
}

/// Kills (SIGKILL) and reaps a child process when dropped, so a failing test leaves no
/// vigil running.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Sends raw messages to partition `partition` of an existing topic.
pub fn send_raw(brokers: &str, topic: &str, partition: i32, messages: &[(&[u8], &[u8])]) {
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    for (key, value) in messages {
        producer
            .send(BaseRecord::to(topic).partition(partition).key(*key).payload(*value))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Windows short enough that a restart replays minutes, not hours.
pub const SHORT_WINDOWS: &str = "[windows]\nsliding = [\"1m\", \"5m\"]\ntumbling = [\"1m\"]\n";

/// Generated CSV: out-of-order and malformed records, no late ones (lateness is decided per
/// partition, so a record late in the file may be on time in its partition).
pub fn events(n: u64, devices: u32, seed: u64) -> Vec<u8> {
    let gen = GeneratorConfig {
        events: n,
        devices,
        seed,
        rate_per_min: 30.0,
        out_of_order_share: 0.05,
        late_share: 0.0,
        malformed_share: 0.01,
        incidents: IncidentPlan::for_devices(devices),
        ..GeneratorConfig::default()
    };
    let mut data = Vec::new();
    generate(&gen, OutputFormat::Csv, &mut data).unwrap();
    data
}

/// Latest row per key (messages are in partition/offset order; a key lives in one partition).
pub fn fold(msgs: &[Msg], key: impl Fn(&Value) -> String) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for m in msgs {
        let v = m.json();
        out.insert(key(&v), v);
    }
    out
}

pub fn window_key(v: &Value) -> String {
    format!("{}|{}|{}", v["device_id"], v["window_start_ms"], v["window_len_ms"])
}

pub fn device_key(v: &Value) -> String {
    v["device_id"].to_string()
}

pub fn write_events(dir: &Path, name: &str, data: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.display().to_string()
}

pub fn produce(brokers: &str, file: &str, topic: &str, partitions: u32) {
    vigil_ok(
        &[
            "produce",
            "--input",
            file,
            "--topic",
            topic,
            "--partitions",
            &partitions.to_string(),
            "--brokers",
            brokers,
        ],
        &[],
    );
}
