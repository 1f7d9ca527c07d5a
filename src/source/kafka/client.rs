//! Kafka clients built from `[kafka]`: consumer, producer and admin configs with the
//! librdkafka properties passed through verbatim, topic metadata, and topic creation.
//!
//! Invariants: every broker round trip here is bounded by `kafka.timeout` (an unreachable
//! broker is an error naming the brokers, never a hang); a property librdkafka does not
//! know is an error naming it (librdkafka checks them when the client is created).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{KafkaConfig, KafkaRole};

/// A Kafka problem, with what vigil was doing when it happened.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    #[error("kafka: creating the {role} client: {message} (check [kafka] properties)")]
    Client { role: &'static str, message: String },
    #[error("kafka: brokers {brokers} did not answer within {timeout_ms} ms: {message}")]
    Unreachable {
        brokers: String,
        timeout_ms: u64,
        message: String,
    },
    #[error("kafka: topic `{topic}` does not exist (create it, e.g. `vigil produce --topic {topic}` or scripts/kafka.sh topic {topic} N)")]
    UnknownTopic { topic: String },
    #[error("kafka: {context}: {message}")]
    Other { context: String, message: String },
}

impl KafkaError {
    pub fn other(context: impl Into<String>, e: impl std::fmt::Display) -> Self {
        KafkaError::Other {
            context: context.into(),
            message: e.to_string(),
        }
    }
}

fn role_name(role: KafkaRole) -> &'static str {
    match role {
        KafkaRole::Consumer => "consumer",
        KafkaRole::Producer => "producer",
        KafkaRole::Admin => "admin",
    }
}

/// The client config of a role: vigil's defaults first, then the user's properties (which win).
pub fn client_config(config: &KafkaConfig, role: KafkaRole, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut cc = ClientConfig::new();
    for (k, v) in defaults {
        cc.set(*k, *v);
    }
    for (k, v) in config.client_properties(role) {
        cc.set(k, v);
    }
    cc
}

/// A consumer for reading topics by explicit assignment (no auto commit, no auto offset store).
pub fn consumer(config: &KafkaConfig, group_id: &str) -> Result<BaseConsumer, KafkaError> {
    let mut cc = client_config(
        config,
        KafkaRole::Consumer,
        &[
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "false"),
            ("auto.offset.reset", "earliest"),
            ("fetch.wait.max.ms", "100"),
        ],
    );
    cc.set("group.id", group_id);
    cc.create().map_err(|e| KafkaError::Client {
        role: role_name(KafkaRole::Consumer),
        message: e.to_string(),
    })
}

/// An admin client.
pub fn admin(config: &KafkaConfig) -> Result<AdminClient<DefaultClientContext>, KafkaError> {
    client_config(config, KafkaRole::Admin, &[])
        .create()
        .map_err(|e| KafkaError::Client {
            role: role_name(KafkaRole::Admin),
            message: e.to_string(),
        })
}

/// The partitions of `topic`, ascending; an error when the topic does not exist. A topic
/// just created may be missing from a broker's metadata for a moment, so an unknown topic
/// (or one without a leader yet) is asked again for up to 5 s before it is an error.
pub fn partitions<C: Consumer>(consumer: &C, config: &KafkaConfig, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let deadline = std::time::Instant::now() + config.timeout.as_duration().min(Duration::from_secs(5));
    loop {
        match partitions_once(consumer, config, topic) {
            Err(KafkaError::UnknownTopic { .. }) | Err(KafkaError::Other { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

fn partitions_once<C: Consumer>(consumer: &C, config: &KafkaConfig, topic: &str) -> Result<Vec<i32>, KafkaError> {
    let timeout = config.timeout.as_duration();
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| unreachable(config, e))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Err(KafkaError::UnknownTopic { topic: topic.into() });
    };
    if let Some(err) = t.error() {
        let code: RDKafkaErrorCode = err.into();
        if code == RDKafkaErrorCode::UnknownTopicOrPartition || code == RDKafkaErrorCode::UnknownTopic {
            return Err(KafkaError::UnknownTopic { topic: topic.into() });
        }
        return Err(KafkaError::other(format!("metadata of topic `{topic}`"), code));
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    if ids.is_empty() {
        return Err(KafkaError::UnknownTopic { topic: topic.into() });
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Checks that the brokers answer (a metadata request bounded by `kafka.timeout`).
pub fn check_reachable<C: Consumer>(consumer: &C, config: &KafkaConfig) -> Result<(), KafkaError> {
    consumer
        .fetch_metadata(None, config.timeout.as_duration())
        .map(|_| ())
        .map_err(|e| unreachable(config, e))
}

fn unreachable(config: &KafkaConfig, e: rdkafka::error::KafkaError) -> KafkaError {
    KafkaError::Unreachable {
        brokers: config.brokers.clone(),
        timeout_ms: config.timeout.0,
        message: e.to_string(),
    }
}

/// Creates the topics that do not exist yet with `partitions` partitions (replication 1, or
/// the broker default when `replication` is None); existing topics are left as they are.
pub fn ensure_topics(config: &KafkaConfig, topics: &[&str], partitions: u32) -> Result<(), KafkaError> {
    let admin = admin(config)?;
    let timeout = config.timeout.as_duration();
    // Fail fast (and clearly) when the brokers cannot be reached.
    admin
        .inner()
        .fetch_metadata(None, timeout)
        .map_err(|e| unreachable(config, e))?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions as i32, TopicReplication::Fixed(-1)))
        .collect();
    let opts = AdminOptions::new()
        .request_timeout(Some(timeout))
        .operation_timeout(Some(timeout));
    let results = futures_executor::block_on(admin.create_topics(new.iter(), &opts))
        .map_err(|e| KafkaError::other("creating topics", e))?;
    let mut created = Vec::new();
    for r in results {
        match r {
            Ok(name) => {
                tracing::info!(topic = %name, partitions, "created topic");
                created.push(name);
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(KafkaError::other(format!("creating topic `{name}`"), code)),
        }
    }
    // A broker that has just started (or a loaded one) answers the creation before its
    // metadata lists the topic: wait until every partition of each new topic has a leader
    // (up to `kafka.timeout`), so that the next client to ask finds it.
    let deadline = std::time::Instant::now() + timeout;
    for name in &created {
        while !has_leaders(&admin, name, partitions, timeout) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

/// Whether the brokers' metadata lists `topic` with `partitions` partitions, each with a
/// leader.
fn has_leaders(admin: &AdminClient<DefaultClientContext>, topic: &str, partitions: u32, timeout: Duration) -> bool {
    let Ok(md) = admin.inner().fetch_metadata(Some(topic), timeout) else {
        return false;
    };
    md.topics().iter().any(|t| {
        t.name() == topic
            && t.error().is_none()
            && t.partitions().len() == partitions as usize
            && t.partitions().iter().all(|p| p.leader() >= 0 && p.error().is_none())
    })
}

/// Low and high watermark offsets of a partition.
pub fn watermarks<C: Consumer>(
    consumer: &C,
    config: &KafkaConfig,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64), KafkaError> {
    consumer
        .fetch_watermarks(topic, partition, config.timeout.as_duration())
        .map_err(|e| KafkaError::other(format!("end offsets of {topic}/{partition}"), e))
}

/// A short pause used while waiting for other workers or data.
pub const IDLE_POLL: Duration = Duration::from_millis(5);

/// A producer context that counts deliveries and keeps the first delivery error, so a
/// flush can tell whether everything sent was acknowledged.
#[derive(Debug, Default)]
pub struct DeliveryTracker {
    pub delivered: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    first_error: std::sync::Mutex<Option<String>>,
}

impl DeliveryTracker {
    /// The first delivery error not reported yet (clears it).
    pub fn take_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|mut e| e.take())
    }
}

impl rdkafka::ClientContext for DeliveryTracker {}

impl rdkafka::producer::ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &rdkafka::producer::DeliveryResult<'_>, _: ()) {
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Relaxed);
            }
            Err((e, msg)) => {
                self.failed.fetch_add(1, Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| format!("delivery to {} failed: {e}", rdkafka::Message::topic(msg)));
                }
            }
        }
    }
}

/// The producer vigil uses (sink and `vigil produce`): idempotent (so per-partition order
/// survives retries), batching, delivery tracked.
pub type TrackedProducer = rdkafka::producer::ThreadedProducer<DeliveryTracker>;

/// Creates a producer with vigil's defaults, then `[kafka] properties` and
/// `producer_properties` (which win).
pub fn producer(config: &KafkaConfig) -> Result<TrackedProducer, KafkaError> {
    // A message is retried for as long as a flush waits for it.
    let message_timeout = config.delivery_timeout.0.to_string();
    client_config(
        config,
        KafkaRole::Producer,
        &[
            ("enable.idempotence", "true"),
            ("linger.ms", "20"),
            ("batch.size", "1000000"),
            ("batch.num.messages", "100000"),
            ("queue.buffering.max.messages", "1000000"),
            ("queue.buffering.max.kbytes", "1048576"),
            ("message.timeout.ms", message_timeout.as_str()),
        ],
    )
    .create_with_context(DeliveryTracker::default())
    .map_err(|e| KafkaError::Client {
        role: role_name(KafkaRole::Producer),
        message: e.to_string(),
    })
}

/// Sends one message, waiting while the local queue is full.
pub fn send(
    producer: &TrackedProducer,
    record: rdkafka::producer::BaseRecord<'_, [u8], [u8]>,
) -> Result<(), KafkaError> {
    let mut record = record;
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((e, _)) => return Err(KafkaError::other("sending a message", e)),
        }
    }
}

/// Waits until every message sent was delivered (or `kafka.delivery_timeout` passed); an
/// error when one failed or the time-out passed.
pub fn flush(producer: &TrackedProducer, config: &KafkaConfig) -> Result<(), KafkaError> {
    use rdkafka::producer::Producer;
    producer
        .flush(config.delivery_timeout.as_duration())
        .map_err(|e| KafkaError::Unreachable {
            brokers: config.brokers.clone(),
            timeout_ms: config.delivery_timeout.0,
            message: format!("awaiting delivery of {} messages: {e}", producer.in_flight_count()),
        })?;
    match producer.context().take_error() {
        Some(e) => Err(KafkaError::other("producing", e)),
        None => Ok(()),
    }
}
