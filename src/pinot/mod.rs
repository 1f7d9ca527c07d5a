//! vigil's outputs in Apache Pinot: schemas and REALTIME table configs generated from the
//! row shapes vigil writes to its output topics, a controller client that applies them
//! idempotently, and the SQL that reads them back (retractions folded).
//!
//! Invariants: the generated schemas name exactly the keys of the rows (checked by tests in
//! [`columns`]); table names come from the `[pinot]` config section, topic and broker names
//! from `[kafka]` (the topics the Kafka sink writes);
//! window stats and anomalies are append tables, the feature store an upsert table keyed by
//! `device_id` (latest `as_of_ms` wins). Targets Pinot 0.11 (flat rows; the anomalies'
//! `evidence` object goes into a JSON column, where Pinot drops its `null` members).

pub mod client;
pub mod columns;
pub mod diff;
pub mod spec;

pub use client::{apply, Applied, Broker, Controller, Outcome, PinotError};
pub use spec::{spec, specs, Table, TableSpec};

/// The open anomalies: every inserted anomaly without a matching retraction. An anomaly
/// episode is retracted with exactly the content it was inserted with, and a device has at
/// most one open episode per detector, so `(detector, device_id, ts_ms)` identifies it;
/// the running sum of +1 (insert) / -1 (retract) over that key is 1 while it is open.
/// `{table}` is the anomalies table.
pub const OPEN_ANOMALIES_SQL: &str = "SELECT detector, device_id, ts_ms, MAX(score) AS score, \
     SUM(CASE WHEN op = 'insert' THEN 1 ELSE -1 END) AS open_count \
     FROM {table} GROUP BY detector, device_id, ts_ms \
     HAVING open_count > 0 ORDER BY ts_ms, detector, device_id LIMIT 100000";

/// [`OPEN_ANOMALIES_SQL`] for a table name.
pub fn open_anomalies_sql(table: &str) -> String {
    OPEN_ANOMALIES_SQL.replace("{table}", table)
}

/// The anomalies that were open at event time `at_ms`: the same fold over the changes made
/// up to it (`at_ms` is when an insert or retract happened).
pub fn open_anomalies_at_sql(table: &str, at_ms: i64) -> String {
    open_anomalies_sql(table).replace(" GROUP BY ", &format!(" WHERE at_ms <= {at_ms} GROUP BY "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_anomalies_queries_name_the_table_and_the_time() {
        let all = open_anomalies_sql("t_a");
        assert!(all.contains("FROM t_a GROUP BY detector, device_id, ts_ms"), "{all}");
        let at = open_anomalies_at_sql("t_a", 1_767_600_000_000);
        assert!(
            at.contains("FROM t_a WHERE at_ms <= 1767600000000 GROUP BY detector"),
            "{at}"
        );
        assert_eq!(at.replace(" WHERE at_ms <= 1767600000000", ""), all);
    }
}
