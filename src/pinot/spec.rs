//! Pinot schemas and REALTIME table configs for vigil's three output topics.
//!
//! Invariants: a schema's fields are exactly [`super::columns`] for its table; schema name =
//! table name; topic names and the broker list are `[kafka]`'s, the ones the Kafka sink
//! (`src/output/kafka.rs`) writes to; every table consumes its topic with Pinot's low-level (partition-level)
//! Kafka consumer from the earliest offset, JSON-decoded. Window stats and anomalies are
//! append tables; the feature table is an upsert table (`mode FULL`) keyed by `device_id`
//! with `as_of_ms` as comparison column, strict replica-group routing and no star-tree,
//! which is what Pinot requires of an upsert table; the topic must be keyed by `device_id`
//! so that all rows of a device are in one partition (the sink keys every row so). The
//! features topic is a changelog — rows of changed devices every `kafka.features_every`,
//! snapshots, every device at the end of a run, possibly replays of older rows — so the
//! comparison column, not the order of arrival, decides which row of a device is current. The output is deterministic, so
//! applying it twice compares equal.

use serde_json::{json, Map, Value};

use super::columns::{self, Column, Role};
use crate::config::{Config, PinotConfig};
use crate::features::FeatureLayout;

/// One of vigil's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Table {
    Windows,
    Features,
    Anomalies,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Windows, Table::Features, Table::Anomalies];

    pub fn as_str(self) -> &'static str {
        match self {
            Table::Windows => "windows",
            Table::Features => "features",
            Table::Anomalies => "anomalies",
        }
    }
}

/// The schema and table config of one table, as posted to the controller.
#[derive(Clone, Debug, PartialEq)]
pub struct TableSpec {
    pub table: Table,
    /// Table and schema name.
    pub name: String,
    pub topic: String,
    pub schema: Value,
    pub table_config: Value,
}

/// The specs of the three tables for a configuration.
pub fn specs(config: &Config) -> Vec<TableSpec> {
    Table::ALL.iter().map(|&t| spec(config, t)).collect()
}

/// The spec of one table.
pub fn spec(config: &Config, table: Table) -> TableSpec {
    let (p, k) = (&config.pinot, &config.kafka);
    let (name, topic, columns, time) = match table {
        Table::Windows => (
            &p.windows_table,
            &k.windows_topic,
            columns::window_columns(),
            columns::WINDOWS_TIME,
        ),
        Table::Features => (
            &p.features_table,
            &k.features_topic,
            columns::feature_columns(&FeatureLayout::new(config)),
            columns::FEATURES_TIME,
        ),
        Table::Anomalies => (
            &p.anomalies_table,
            &k.anomalies_topic,
            columns::anomaly_columns(),
            columns::ANOMALIES_TIME,
        ),
    };
    let primary_key = (table == Table::Features).then_some(columns::FEATURES_KEY);
    let schema = schema_json(name, &columns, primary_key);
    let table_config = table_json(p, &k.brokers, table, name, topic, time);
    TableSpec {
        table,
        name: name.clone(),
        topic: topic.clone(),
        schema,
        table_config,
    }
}

fn field_spec(c: &Column) -> Value {
    let mut f = Map::new();
    f.insert("name".into(), c.name.clone().into());
    f.insert("dataType".into(), c.data_type.as_str().into());
    if c.role == Role::DateTime {
        f.insert("format".into(), "1:MILLISECONDS:EPOCH".into());
        f.insert("granularity".into(), "1:MILLISECONDS".into());
    }
    if let Some(n) = c.max_length {
        f.insert("maxLength".into(), n.into());
    }
    Value::Object(f)
}

fn schema_json(name: &str, columns: &[Column], primary_key: Option<&str>) -> Value {
    let of = |role: Role| -> Vec<Value> { columns.iter().filter(|c| c.role == role).map(field_spec).collect() };
    let mut s = Map::new();
    s.insert("schemaName".into(), name.into());
    if let Some(key) = primary_key {
        s.insert("primaryKeyColumns".into(), json!([key]));
    }
    s.insert("dimensionFieldSpecs".into(), of(Role::Dimension).into());
    s.insert("metricFieldSpecs".into(), of(Role::Metric).into());
    s.insert("dateTimeFieldSpecs".into(), of(Role::DateTime).into());
    Value::Object(s)
}

fn table_json(p: &PinotConfig, brokers: &str, table: Table, name: &str, topic: &str, time: &str) -> Value {
    let flush_time = format!("{}m", p.segment_flush_time.0 / 60_000);
    let stream = json!({
        "streamType": "kafka",
        "stream.kafka.consumer.type": "lowlevel",
        "stream.kafka.topic.name": topic,
        "stream.kafka.broker.list": brokers,
        "stream.kafka.consumer.factory.class.name": "org.apache.pinot.plugin.stream.kafka20.KafkaConsumerFactory",
        "stream.kafka.decoder.class.name": "org.apache.pinot.plugin.stream.kafka.KafkaJSONMessageDecoder",
        "stream.kafka.consumer.prop.auto.offset.reset": "smallest",
        "stream.kafka.fetch.timeout.millis": "1000",
        "realtime.segment.flush.threshold.rows": "0",
        "realtime.segment.flush.threshold.time": flush_time,
        "realtime.segment.flush.threshold.segment.size": p.segment_size,
    });
    let (inverted, range, json_index, sorted): (&[&str], &[&str], &[&str], &[&str]) = match table {
        Table::Windows => (
            &["device_id", "window_len_ms"],
            &["window_start_ms"],
            &[],
            &["device_id"],
        ),
        // Upsert: one valid row per device; lookups by device.
        Table::Features => (&["device_id"], &[], &[], &[]),
        Table::Anomalies => (
            &["device_id", "detector", "severity", "op"],
            &["ts_ms"],
            &["evidence"],
            &[],
        ),
    };
    let mut index = json!({
        "loadMode": "MMAP",
        "nullHandlingEnabled": true,
        "invertedIndexColumns": inverted,
        "rangeIndexColumns": range,
        "jsonIndexColumns": json_index,
        "sortedColumn": sorted,
        "streamConfigs": stream,
    });
    if let Value::Object(map) = &mut index {
        // Pinot leaves empty lists out of the config it stores: so do we, so they compare equal.
        map.retain(|_, v| v.as_array().is_none_or(|a| !a.is_empty()));
    }
    if table == Table::Features {
        // Pinot refuses star-tree indexes on upsert tables; say so explicitly.
        index["enableDefaultStarTree"] = false.into();
    }
    let mut t = json!({
        "tableName": name,
        "tableType": "REALTIME",
        "segmentsConfig": {
            "schemaName": name,
            "timeColumnName": time,
            "timeType": "MILLISECONDS",
            "replication": "1",
            "replicasPerPartition": "1",
        },
        "tenants": {"broker": "DefaultTenant", "server": "DefaultTenant"},
        "tableIndexConfig": index,
        "metadata": {"customConfigs": {
            "vigil.rows": table.as_str(),
            "vigil.generated_by": "vigil pinot tables",
        }},
    });
    if table == Table::Features {
        t["routing"] = json!({"instanceSelectorType": "strictReplicaGroup"});
        t["upsertConfig"] = json!({"mode": "FULL", "comparisonColumn": columns::FEATURES_TIME});
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_topics_come_from_the_config() {
        // The topics and brokers are [kafka]'s: the tables read what the Kafka sink writes.
        let config = Config::from_toml(
            "[pinot]\nfeatures_table = \"f\"\n[kafka]\nfeatures_topic = \"t.f\"\nbrokers = \"k:1\"\n",
        )
        .unwrap();
        let s = spec(&config, Table::Features);
        assert_eq!(s.schema["schemaName"], "f");
        assert_eq!(s.table_config["tableName"], "f");
        assert_eq!(s.table_config["segmentsConfig"]["schemaName"], "f");
        let stream = &s.table_config["tableIndexConfig"]["streamConfigs"];
        assert_eq!(stream["stream.kafka.topic.name"], "t.f");
        assert_eq!(stream["stream.kafka.broker.list"], "k:1");
        assert_eq!(stream["realtime.segment.flush.threshold.time"], "360m");
    }

    #[test]
    fn features_table_meets_pinot_upsert_requirements() {
        let s = spec(&Config::default(), Table::Features);
        assert_eq!(s.schema["primaryKeyColumns"], json!(["device_id"]));
        let t = &s.table_config;
        assert_eq!(t["upsertConfig"]["mode"], "FULL");
        assert_eq!(t["upsertConfig"]["comparisonColumn"], "as_of_ms");
        assert_eq!(t["routing"]["instanceSelectorType"], "strictReplicaGroup");
        assert_eq!(
            t["tableIndexConfig"]["streamConfigs"]["stream.kafka.consumer.type"],
            "lowlevel"
        );
        assert_eq!(t["tableIndexConfig"]["enableDefaultStarTree"], false);
        assert_eq!(t["segmentsConfig"]["timeColumnName"], "as_of_ms");
        let metrics = s.schema["metricFieldSpecs"].as_array().unwrap();
        assert_eq!(metrics.len(), FeatureLayout::new(&Config::default()).names().len());
    }

    #[test]
    fn append_tables_have_time_columns_and_no_upsert() {
        for (table, time) in [(Table::Windows, "window_start_ms"), (Table::Anomalies, "at_ms")] {
            let s = spec(&Config::default(), table);
            assert_eq!(s.table_config["segmentsConfig"]["timeColumnName"], time);
            assert!(s.table_config.get("upsertConfig").is_none());
            assert!(s.schema.get("primaryKeyColumns").is_none());
            let times: Vec<&str> = s.schema["dateTimeFieldSpecs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap())
                .collect();
            assert!(times.contains(&time));
        }
        let a = spec(&Config::default(), Table::Anomalies);
        assert_eq!(
            a.table_config["tableIndexConfig"]["jsonIndexColumns"],
            json!(["evidence"])
        );
    }

    #[test]
    fn every_schema_field_appears_once() {
        for s in specs(&Config::default()) {
            let mut names: Vec<String> = ["dimensionFieldSpecs", "metricFieldSpecs", "dateTimeFieldSpecs"]
                .iter()
                .flat_map(|k| s.schema[*k].as_array().unwrap().clone())
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect();
            let n = names.len();
            names.sort();
            names.dedup();
            assert_eq!(n, names.len(), "{}", s.name);
        }
    }
}
