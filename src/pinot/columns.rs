//! The columns of vigil's three Pinot tables, derived from the code that makes the rows.
//!
//! Invariants: the windows and anomalies column lists name exactly the keys of
//! `WindowRow::to_json` and `Anomaly::to_json` (plus, for windows, the `op` key the Kafka sink
//! adds, marked [`Column::sink_only`]); the features columns are `device_id`, `as_of_ms`,
//! `last_seen_ms` and then `FeatureLayout::names()` in order, so they follow the configured
//! windows. Every column's Pinot type accepts the JSON value the row carries (tests below
//! build real rows and check both directions, so the lists cannot drift from the rows).

use crate::features::FeatureLayout;

/// A Pinot data type, as written in a schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    String,
    Int,
    Long,
    Double,
    /// A nested JSON object, stored as its text (queried with `JSON_EXTRACT_SCALAR`, `JSON_MATCH`).
    Json,
}

impl DataType {
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::String => "STRING",
            DataType::Int => "INT",
            DataType::Long => "LONG",
            DataType::Double => "DOUBLE",
            DataType::Json => "JSON",
        }
    }
}

/// Which field-spec list of a Pinot schema a column goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Dimension,
    Metric,
    /// Epoch milliseconds.
    DateTime,
}

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub data_type: DataType,
    pub role: Role,
    /// The row may carry `null` here (stored as Pinot's default, flagged in the null vector).
    pub nullable: bool,
    /// Added by the Kafka sink, not part of the file row (`op` of window rows).
    pub sink_only: bool,
    /// Longest text kept (STRING/JSON); Pinot's default 512 when `None`.
    pub max_length: Option<u32>,
}

const fn col(name: &'static str, data_type: DataType, role: Role) -> StaticColumn {
    StaticColumn {
        name,
        data_type,
        role,
        nullable: false,
        sink_only: false,
        max_length: None,
    }
}

/// A column known at compile time.
#[derive(Clone, Copy, Debug)]
pub struct StaticColumn {
    pub name: &'static str,
    pub data_type: DataType,
    pub role: Role,
    pub nullable: bool,
    pub sink_only: bool,
    pub max_length: Option<u32>,
}

impl StaticColumn {
    const fn nullable(mut self) -> Self {
        self.nullable = true;
        self
    }
    const fn sink_only(mut self) -> Self {
        self.sink_only = true;
        self
    }
    const fn max_length(mut self, n: u32) -> Self {
        self.max_length = Some(n);
        self
    }
    fn to_column(self) -> Column {
        Column {
            name: self.name.to_string(),
            data_type: self.data_type,
            role: self.role,
            nullable: self.nullable,
            sink_only: self.sink_only,
            max_length: self.max_length,
        }
    }
}

use DataType::{Double, Int, Json, Long, String as Str};
use Role::{DateTime, Dimension, Metric};

/// The time column of the windows table.
pub const WINDOWS_TIME: &str = "window_start_ms";
/// The columns of a window row (`WindowRow::to_json`, plus the sink's `op`).
pub const WINDOW_COLUMNS: [StaticColumn; 18] = [
    col("device_id", Str, Dimension),
    col("window_start_ms", Long, DateTime),
    col("window_end_ms", Long, DateTime),
    col("window_len_ms", Long, Dimension),
    col("count", Long, Metric),
    col("bytes_out", Long, Metric),
    col("bytes_in", Long, Metric),
    col("packets", Long, Metric),
    col("bytes_out_external", Long, Metric),
    col("distinct_dst", Int, Metric),
    col("distinct_ports", Int, Metric),
    col("value_count", Long, Metric),
    col("value_invalid", Long, Metric),
    col("value_mean", Double, Metric).nullable(),
    col("value_std", Double, Metric).nullable(),
    col("value_min", Double, Metric).nullable(),
    col("value_max", Double, Metric).nullable(),
    col("op", Str, Dimension).sink_only(),
];

/// The time column of the anomalies table: when the change (insert or retract) happened.
pub const ANOMALIES_TIME: &str = "at_ms";
/// The columns of an anomaly row (`Anomaly::to_json`).
pub const ANOMALY_COLUMNS: [StaticColumn; 10] = [
    col("op", Str, Dimension),
    col("at_ms", Long, DateTime),
    col("detector", Str, Dimension),
    col("device_id", Str, Dimension),
    col("ts_ms", Long, DateTime),
    col("window_ms", Long, Dimension).nullable(),
    col("score", Double, Metric),
    col("severity", Str, Dimension),
    col("reason", Str, Dimension).max_length(4096),
    col("evidence", Json, Dimension).max_length(16384),
];

/// The time column (and upsert comparison column) of the features table.
pub const FEATURES_TIME: &str = "as_of_ms";
/// The primary key of the features table.
pub const FEATURES_KEY: &str = "device_id";

pub fn window_columns() -> Vec<Column> {
    WINDOW_COLUMNS.iter().map(|c| c.to_column()).collect()
}

pub fn anomaly_columns() -> Vec<Column> {
    ANOMALY_COLUMNS.iter().map(|c| c.to_column()).collect()
}

/// The columns of a feature row (`feature_row`) for this layout.
pub fn feature_columns(layout: &FeatureLayout) -> Vec<Column> {
    let mut out = vec![
        col(FEATURES_KEY, Str, Dimension).to_column(),
        col(FEATURES_TIME, Long, DateTime).to_column(),
        col("last_seen_ms", Long, DateTime).to_column(),
    ];
    out.extend(layout.names().iter().map(|name| Column {
        name: name.clone(),
        data_type: Double,
        role: Metric,
        nullable: false,
        sink_only: false,
        max_length: None,
    }));
    out
}

/// Whether a JSON value of a row fits a column (`null` only where nullable).
pub fn accepts(column: &Column, value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::Null => column.nullable,
        Value::String(_) => column.data_type == Str,
        Value::Object(_) => column.data_type == Json,
        Value::Number(n) => match column.data_type {
            Int => n.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
            Long => n.as_i64().is_some(),
            Double => true,
            Str | Json => false,
        },
        Value::Bool(_) | Value::Array(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::detect::anomaly::{Anomaly, Real, Severity};
    use crate::features::feature_row;
    use crate::window::stats::{DeviceWindows, WindowRow, WindowStats};

    /// Every key of the row has a column that accepts its value, and every column (other
    /// than sink-only ones) is a key of the row.
    fn check(table: &str, columns: &[Column], row: &serde_json::Value) {
        let map = row.as_object().expect("rows are objects");
        for (key, value) in map {
            let column = columns
                .iter()
                .find(|c| &c.name == key)
                .unwrap_or_else(|| panic!("{table}: row key `{key}` has no Pinot column"));
            assert!(
                accepts(column, value),
                "{table}: column `{key}` ({:?}) does not accept {value}",
                column.data_type
            );
        }
        for column in columns {
            if !column.sink_only {
                assert!(
                    map.contains_key(&column.name),
                    "{table}: column `{}` is not a key of the row",
                    column.name
                );
            }
        }
        let mut names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), columns.len(), "{table}: duplicate column names");
    }

    fn stats(valued: bool) -> WindowStats {
        WindowStats {
            count: 3,
            bytes_out: 1 << 40,
            bytes_in: 7,
            packets: 9,
            bytes_out_external: 5,
            distinct_dst: 2,
            distinct_ports: 1,
            value_count: valued as u64 * 2,
            value_invalid: 1,
            value_sum: if valued { 3_000_000 } else { 0 },
            value_sumsq: if valued { 5_000_000_000_000 } else { 0 },
            value_min: valued.then_some(1_000_000),
            value_max: valued.then_some(2_000_000),
        }
    }

    #[test]
    fn window_rows_match_the_columns() {
        for valued in [true, false] {
            let row = WindowRow {
                window_end_ms: 1_767_600_060_000,
                window_len_ms: 60_000,
                device: "dev-1".into(),
                window_start_ms: 1_767_600_000_000,
                stats: stats(valued),
            };
            check("windows", &window_columns(), &row.to_json());
        }
        // The Kafka sink's row: the file row plus "op".
        let row = WindowRow {
            window_end_ms: 1,
            window_len_ms: 1,
            device: "d".into(),
            window_start_ms: 0,
            stats: stats(true),
        };
        let mut json = row.to_json();
        json["op"] = "insert".into();
        check("windows (kafka)", &window_columns(), &json);
    }

    #[test]
    fn feature_rows_match_the_columns() {
        for text in ["", "[windows]\nsliding = [\"30s\", \"10m\"]\ntumbling = [\"30s\"]\n"] {
            let config = Config::from_toml(text).unwrap();
            let layout = FeatureLayout::new(&config);
            let n = config.maintained_windows_ticks().len();
            let state = DeviceWindows {
                last_seen_ms: 1_767_600_000_000,
                windows: (0..n).map(|i| stats(i % 2 == 0)).collect(),
            };
            let row = feature_row(&layout, "dev-1", 1_767_600_000_999, &state);
            check("features", &feature_columns(&layout), &row);
        }
    }

    #[test]
    fn anomaly_rows_match_the_columns() {
        for window_ms in [Some(60_000), None] {
            let a = Anomaly {
                detector: "silence".into(),
                device: "dev-1".into(),
                tick: 1_767_600_000,
                window_ms,
                score: Real(0.8),
                severity: Severity::High,
                reason: "no events for 4m".into(),
                evidence: vec![("events_1m".into(), Real(0.0)), ("rate".into(), Real(f64::NAN))],
            };
            for op in ["insert", "retract"] {
                check("anomalies", &anomaly_columns(), &a.to_json(op, 1_767_600_000_000, 1000));
            }
        }
    }

    #[test]
    fn time_columns_are_date_times() {
        for (columns, time) in [
            (window_columns(), WINDOWS_TIME),
            (anomaly_columns(), ANOMALIES_TIME),
            (feature_columns(&FeatureLayout::new(&Config::default())), FEATURES_TIME),
        ] {
            let c = columns.iter().find(|c| c.name == time).unwrap();
            assert_eq!((c.role, c.data_type, c.nullable), (DateTime, Long, false));
        }
    }
}
