//! Kafka as a source: each partition of the input topics is one source partition with its
//! own watermark and lateness (`docs/semantics.md`), assigned to one worker; offsets are
//! committed only once the outputs that depend on them are final and delivered, trailing
//! the frontier by the longest window plus the lateness so that a restart rebuilds every
//! window exactly (see [`resume`]).
//!
//! Invariants: nothing here panics on a message's content (bad records become rejects,
//! which the Kafka sink sends to the dead-letter topic); broker round trips are bounded by
//! `kafka.timeout`.

pub mod client;
pub mod input;
pub mod partition;
pub mod produce;
pub mod resume;
pub mod shared;

use std::sync::Arc;

pub use client::KafkaError;
pub use shared::KafkaShared;

/// What `--input kafka://topic[,topic]` names, plus the run's shared Kafka state.
#[derive(Clone, Debug)]
pub struct KafkaSpec {
    pub topics: Vec<String>,
    /// Read up to the end offsets present at start, then finish.
    pub bounded: bool,
    pub shared: Arc<KafkaShared>,
}

impl PartialEq for KafkaSpec {
    fn eq(&self, other: &Self) -> bool {
        self.topics == other.topics && self.bounded == other.bounded && Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for KafkaSpec {}

impl KafkaSpec {
    /// Parses `kafka://a,b` (or `kafka:` / `kafka` with the topics of `[kafka] topics`).
    pub fn parse_input(text: &str, default_topics: &[String]) -> Option<Result<Vec<String>, String>> {
        let rest = text
            .strip_prefix("kafka://")
            .or_else(|| text.strip_prefix("kafka:"))
            .or_else(|| (text == "kafka").then_some(""))?;
        let topics: Vec<String> = rest
            .split(',')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        let topics = if topics.is_empty() {
            default_topics.to_vec()
        } else {
            topics
        };
        if topics.is_empty() {
            return Some(Err(format!(
                "`{text}` names no topic: write kafka://topic[,topic] or set [kafka] topics"
            )));
        }
        if let Some(bad) = topics.iter().find(|t| !valid_topic(t)) {
            return Some(Err(format!(
                "`{bad}` is not a valid Kafka topic name (letters, digits, `.`, `_`, `-`, at most 249)"
            )));
        }
        Some(Ok(topics))
    }
}

/// Kafka's rule for topic names.
pub fn valid_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_urls() {
        assert_eq!(KafkaSpec::parse_input("events.csv", &[]), None);
        assert_eq!(
            KafkaSpec::parse_input("kafka://a,b", &[]),
            Some(Ok(vec!["a".to_string(), "b".to_string()]))
        );
        assert_eq!(
            KafkaSpec::parse_input("kafka", &["x".to_string()]),
            Some(Ok(vec!["x".to_string()]))
        );
        assert!(matches!(KafkaSpec::parse_input("kafka://", &[]), Some(Err(_))));
        assert!(matches!(KafkaSpec::parse_input("kafka://a b", &[]), Some(Err(_))));
    }
}
