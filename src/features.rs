//! The feature store's vector: one named, documented feature vector per device, a pure
//! function of the device's window statistics at a time.
//!
//! Invariants: the names and their order depend only on the configured sliding windows
//! (`FeatureLayout::new`), never on the data; every value is a finite f64 (absent readings
//! give 0, with `value_count_*` saying how many readings there were), so models can use the
//! vector as it is. Windows are named by their length as humantime writes it ("1m", "1h").

use crate::config::Config;
use crate::window::stats::{DeviceWindows, WindowStats};

/// Per-window features, in order; `{w}` is replaced by the window's name.
pub const PER_WINDOW: [(&str, &str); 17] = [
    ("events_{w}", "events in the window"),
    ("bytes_out_{w}", "bytes sent"),
    ("bytes_in_{w}", "bytes received"),
    ("packets_{w}", "packets"),
    ("bytes_out_ext_{w}", "bytes sent to external (non-internal) addresses"),
    ("distinct_dst_{w}", "distinct destination addresses"),
    ("distinct_ports_{w}", "distinct destination ports"),
    ("value_count_{w}", "valid readings"),
    ("value_invalid_{w}", "invalid readings (NaN, infinite, beyond ±1e9)"),
    ("value_mean_{w}", "mean reading (0 when none)"),
    ("value_std_{w}", "standard deviation of readings (0 when none)"),
    ("value_min_{w}", "smallest reading (0 when none)"),
    ("value_max_{w}", "largest reading (0 when none)"),
    ("event_rate_{w}", "events per minute"),
    ("bytes_out_rate_{w}", "bytes sent per second"),
    ("ext_ratio_{w}", "share of bytes sent that went to external addresses"),
    ("out_in_ratio_{w}", "bytes sent / (bytes received + 1)"),
];

/// Cross-window features (shortest vs longest sliding window).
pub const CROSS_WINDOW: [(&str, &str); 3] = [
    (
        "rate_ratio",
        "event rate of the shortest window / event rate of the longest (0 when the longest is empty)",
    ),
    (
        "ext_rate_ratio",
        "external bytes rate of the shortest window / of the longest (0 when the longest has none)",
    ),
    (
        "dst_ratio",
        "distinct destinations of the shortest window / of the longest (0 when the longest has none)",
    ),
];

/// Which maintained windows feed the features, and the resulting names.
#[derive(Clone, Debug)]
pub struct FeatureLayout {
    /// (index into `DeviceWindows::windows`, length in ms, name) per sliding window.
    windows: Vec<(usize, u64, String)>,
    names: Vec<String>,
    /// The columns of a feature row in the order its JSON object has them (a
    /// `serde_json::Map`'s: by name), each with its key written out (`"name":`).
    row_columns: Vec<(String, RowColumn)>,
}

/// A column of a feature row ([`feature_row`]).
#[derive(Clone, Copy, Debug)]
enum RowColumn {
    Device,
    AsOf,
    LastSeen,
    Feature(usize),
}

/// A window length as a feature-name suffix: "1m", "5m", "1h", "1h30m".
pub fn window_name(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms))
        .to_string()
        .replace(' ', "")
}

impl FeatureLayout {
    pub fn new(config: &Config) -> Self {
        let maintained = config.maintained_windows_ticks();
        let tick = config.tick_ms();
        let windows: Vec<(usize, u64, String)> = config
            .windows
            .sliding
            .iter()
            .map(|w| {
                let i = maintained
                    .iter()
                    .position(|&l| l * tick == w.0)
                    .expect("sliding windows are maintained");
                (i, w.0, window_name(w.0))
            })
            .collect();
        let mut names = Vec::new();
        for (_, _, wname) in &windows {
            for (pattern, _) in PER_WINDOW {
                names.push(pattern.replace("{w}", wname));
            }
        }
        for (name, _) in CROSS_WINDOW {
            names.push(name.to_string());
        }
        let mut columns: Vec<(&str, RowColumn)> = vec![
            ("device_id", RowColumn::Device),
            ("as_of_ms", RowColumn::AsOf),
            ("last_seen_ms", RowColumn::LastSeen),
        ];
        columns.extend(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_str(), RowColumn::Feature(i))),
        );
        columns.sort_by(|a, b| a.0.cmp(b.0));
        let row_columns = columns
            .into_iter()
            .map(|(name, column)| (format!("{}:", serde_json::Value::from(name)), column))
            .collect();
        FeatureLayout {
            windows,
            names,
            row_columns,
        }
    }

    /// Feature names, in vector order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Name and description of every feature, for documentation and `--help` output.
    pub fn describe(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (_, _, wname) in &self.windows {
            for (pattern, text) in PER_WINDOW {
                out.push((pattern.replace("{w}", wname), format!("{text}, last {wname}")));
            }
        }
        for (name, text) in CROSS_WINDOW {
            out.push((name.to_string(), text.to_string()));
        }
        out
    }

    /// Index of a feature by name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// One feature of a device state (the same value as `vector(state)[index]`), computing
    /// only the window it comes from; `scratch` is reused between calls.
    pub fn value(&self, state: &DeviceWindows, index: usize, scratch: &mut Vec<f64>) -> f64 {
        let per = PER_WINDOW.len();
        if let Some(&(i, ms, _)) = self.windows.get(index / per) {
            return per_window_one(&state.windows[i], ms, index % per);
        }
        scratch.clear();
        scratch.extend(self.vector(state));
        scratch.get(index).copied().unwrap_or(0.0)
    }

    /// One feature of many device states, as [`FeatureLayout::value`] gives it for each. For
    /// a per-window feature, two passes, each a loop whose memory reads do not depend on one
    /// another: the processor then fetches many states at once. Reading scattered states is
    /// mostly waiting for memory (a `/top` spent half its time there).
    pub fn values(&self, states: &[&DeviceWindows], index: usize) -> Vec<f64> {
        let per = PER_WINDOW.len();
        if let Some(&(i, ms, _)) = self.windows.get(index / per) {
            let stats: Vec<&WindowStats> = states.iter().map(|s| &s.windows[i]).collect();
            return stats.iter().map(|w| per_window_one(w, ms, index % per)).collect();
        }
        let mut scratch = Vec::new();
        states.iter().map(|s| self.value(s, index, &mut scratch)).collect()
    }

    /// The feature vector of one device state.
    pub fn vector(&self, state: &DeviceWindows) -> Vec<f64> {
        let mut v = Vec::with_capacity(self.names.len());
        for &(i, ms, _) in &self.windows {
            per_window(&state.windows[i], ms, &mut v);
        }
        let (first, last) = (
            self.windows.first().expect("one window"),
            self.windows.last().expect("one window"),
        );
        let (s, l) = (&state.windows[first.0], &state.windows[last.0]);
        let (s_min, l_min) = (first.1 as f64 / 60_000.0, last.1 as f64 / 60_000.0);
        v.push(ratio(s.count as f64 / s_min, l.count as f64 / l_min));
        v.push(ratio(
            s.bytes_out_external as f64 / s_min,
            l.bytes_out_external as f64 / l_min,
        ));
        v.push(ratio(s.distinct_dst as f64, l.distinct_dst as f64));
        v
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn per_window(s: &WindowStats, ms: u64, v: &mut Vec<f64>) {
    v.extend((0..PER_WINDOW.len()).map(|j| per_window_one(s, ms, j)));
}

/// Feature `j` of [`PER_WINDOW`] for one window's stats.
fn per_window_one(s: &WindowStats, ms: u64, j: usize) -> f64 {
    let minutes = ms as f64 / 60_000.0;
    let seconds = ms as f64 / 1_000.0;
    match j {
        0 => s.count as f64,
        1 => s.bytes_out as f64,
        2 => s.bytes_in as f64,
        3 => s.packets as f64,
        4 => s.bytes_out_external as f64,
        5 => s.distinct_dst as f64,
        6 => s.distinct_ports as f64,
        7 => s.value_count as f64,
        8 => s.value_invalid as f64,
        9 => s.value_mean().unwrap_or(0.0),
        10 => s.value_std().unwrap_or(0.0),
        11 => s.value_min_f64().unwrap_or(0.0),
        12 => s.value_max_f64().unwrap_or(0.0),
        13 => s.count as f64 / minutes,
        14 => s.bytes_out as f64 / seconds,
        15 => ratio(s.bytes_out_external as f64, s.bytes_out as f64),
        16 => s.bytes_out as f64 / (s.bytes_in as f64 + 1.0),
        _ => unreachable!("PER_WINDOW has 17 features"),
    }
}

/// One line of `features.jsonl`: the device, the time it is as of, and its named features.
pub fn feature_row(layout: &FeatureLayout, device: &str, as_of_ms: i64, state: &DeviceWindows) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    map.insert("device_id".into(), device.into());
    map.insert("as_of_ms".into(), as_of_ms.into());
    map.insert("last_seen_ms".into(), state.last_seen_ms.into());
    for (name, value) in layout.names().iter().zip(layout.vector(state)) {
        map.insert(name.clone(), serde_json::json!(value));
    }
    serde_json::Value::Object(map)
}

/// Writes [`feature_row`]'s JSON, byte for byte, to `out`, without building the row (no map,
/// no allocation per column): the Kafka and file sinks write a row per device and period.
pub fn write_feature_row(
    layout: &FeatureLayout,
    device: &str,
    as_of_ms: i64,
    state: &DeviceWindows,
    out: &mut Vec<u8>,
) {
    use std::io::Write as _;
    let values = layout.vector(state);
    out.push(b'{');
    for (n, (key, column)) in layout.row_columns.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        out.extend_from_slice(key.as_bytes());
        // Writing to a vector cannot fail; a non-finite value is written `null`, as `json!` does.
        let written = match *column {
            RowColumn::Device => serde_json::to_writer(&mut *out, device),
            RowColumn::AsOf => write!(out, "{as_of_ms}").map_err(serde_json::Error::io),
            RowColumn::LastSeen => write!(out, "{}", state.last_seen_ms).map_err(serde_json::Error::io),
            RowColumn::Feature(i) => serde_json::to_writer(&mut *out, &values[i]),
        };
        debug_assert!(written.is_ok());
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_writer_writes_what_the_json_row_serializes_to() {
        let mut rng = 5u64;
        let mut next = || {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            rng >> 11
        };
        for toml in ["", "[windows]\nsliding = [\"10s\", \"1m\", \"1h30m\"]\n"] {
            let layout = FeatureLayout::new(&Config::from_toml(toml).unwrap());
            let n = layout.windows.iter().map(|w| w.0).max().unwrap() + 1;
            for round in 0..300u64 {
                let windows: Vec<WindowStats> = (0..n)
                    .map(|_| {
                        let count = next() % 50;
                        let valid = count.min(next() % 7);
                        WindowStats {
                            count,
                            bytes_out: next() % 1_000_000_000,
                            bytes_in: next() % 3,
                            packets: next() % 100,
                            bytes_out_external: next() % 1000,
                            distinct_dst: (next() % 9) as u32,
                            distinct_ports: (next() % 5) as u32,
                            value_count: valid,
                            value_invalid: next() % 2,
                            value_sum: (next() % 2_000_000) as i128 - 1_000_000,
                            value_sumsq: (next() % 1_000_000_000_000) as i128,
                            value_min: (valid > 0).then(|| -((next() % 1000) as i64)),
                            value_max: (valid > 0).then(|| (next() % 1_000_000_000) as i64),
                        }
                    })
                    .collect();
                let state = DeviceWindows {
                    last_seen_ms: next() as i64 - (1 << 52),
                    windows: windows.into(),
                };
                let device = ["vm-1", "a \"quoted\" name\\", "ünïcode-\u{1}", ""][round as usize % 4];
                let as_of_ms = 1_767_600_000_000 + round as i64;
                let mut written = Vec::new();
                write_feature_row(&layout, device, as_of_ms, &state, &mut written);
                let reference = serde_json::to_vec(&feature_row(&layout, device, as_of_ms, &state)).unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(reference).unwrap()
                );
            }
        }
    }

    #[test]
    fn names_follow_the_windows() {
        let config = Config::from_toml("").unwrap();
        let layout = FeatureLayout::new(&config);
        assert_eq!(layout.names().len(), 3 * PER_WINDOW.len() + CROSS_WINDOW.len());
        assert_eq!(layout.names()[0], "events_1m");
        assert!(layout.names().contains(&"bytes_out_ext_1h".to_string()));
    }

    #[test]
    fn vector_values() {
        let config = Config::from_toml("").unwrap();
        let layout = FeatureLayout::new(&config);
        let w = |count, ext| WindowStats {
            count,
            bytes_out: 100,
            bytes_out_external: ext,
            ..Default::default()
        };
        let state = DeviceWindows {
            last_seen_ms: 0,
            windows: vec![w(6, 50), w(10, 50), w(60, 100)].into(),
        };
        let v = layout.vector(&state);
        assert_eq!(v.len(), layout.names().len());
        let at = |name: &str| v[layout.names().iter().position(|n| n == name).unwrap()];
        assert_eq!(at("events_1m"), 6.0);
        assert_eq!(at("event_rate_1h"), 1.0);
        assert_eq!(at("ext_ratio_1m"), 0.5);
        assert_eq!(at("rate_ratio"), 6.0);
        assert!(v.iter().all(|x| x.is_finite()));
        let mut scratch = Vec::new();
        for (i, x) in v.iter().enumerate() {
            assert_eq!(
                layout.value(&state, i, &mut scratch).to_bits(),
                x.to_bits(),
                "{}",
                layout.names()[i]
            );
        }
        // Many states at once: the same value as one at a time, for every feature.
        let other = DeviceWindows {
            last_seen_ms: 5,
            windows: vec![w(1, 0), w(3, 7), w(9, 80)].into(),
        };
        let states = [&state, &other, &state];
        for i in 0..v.len() {
            let many = layout.values(&states, i);
            let one: Vec<f64> = states.iter().map(|s| layout.value(s, i, &mut scratch)).collect();
            assert_eq!(
                many.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                one.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                "{}",
                layout.names()[i]
            );
        }
    }
}
