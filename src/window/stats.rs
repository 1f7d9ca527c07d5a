//! Per-device window statistics: the record the window operator maintains and emits.
//!
//! Invariants: every field is an exact integer, so results do not depend on the order in
//! which events were added or removed (and so not on how many workers computed them).
//! Readings are kept in micro-units (`value * 1e6`, rounded); a reading that is NaN,
//! infinite or larger in magnitude than [`VALUE_LIMIT`] counts in `value_invalid` and not in
//! the mean, variance, min or max. Address `::` (absent) and port 0 are not counted as
//! destinations or ports and are never external.

use serde::{Deserialize, Serialize};

/// Readings beyond this magnitude are invalid (no physical telemetry reports them).
pub const VALUE_LIMIT: f64 = 1e9;
/// Micro-units per unit of a reading.
pub const VALUE_SCALE: f64 = 1e6;

/// A reading in micro-units, or `None` when it is invalid (NaN, infinite, beyond the limit).
#[inline]
pub fn quantize(value: f64) -> Option<i64> {
    if value.is_finite() && value.abs() <= VALUE_LIMIT {
        Some((value * VALUE_SCALE).round() as i64)
    } else {
        None
    }
}

/// Statistics of one device over one window (plain numbers: `Copy`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowStats {
    /// Events in the window.
    pub count: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets: u64,
    /// Bytes sent to destinations outside the internal ranges.
    pub bytes_out_external: u64,
    /// Distinct destination addresses.
    pub distinct_dst: u32,
    /// Distinct destination ports.
    pub distinct_ports: u32,
    /// Valid readings.
    pub value_count: u64,
    /// Readings that were NaN, infinite or beyond ±1e9.
    pub value_invalid: u64,
    /// Sum of valid readings, micro-units.
    pub value_sum: i128,
    /// Sum of squares of valid readings, micro-units squared.
    pub value_sumsq: i128,
    /// Smallest valid reading, micro-units.
    pub value_min: Option<i64>,
    /// Largest valid reading, micro-units.
    pub value_max: Option<i64>,
}

impl WindowStats {
    /// Mean of the valid readings.
    pub fn value_mean(&self) -> Option<f64> {
        (self.value_count > 0).then(|| self.value_sum as f64 / self.value_count as f64 / VALUE_SCALE)
    }

    /// Population variance of the valid readings (exact numerator when it fits in 128 bits).
    pub fn value_variance(&self) -> Option<f64> {
        if self.value_count == 0 {
            return None;
        }
        let n = self.value_count as i128;
        let exact = n.checked_mul(self.value_sumsq).and_then(|a| {
            self.value_sum
                .checked_mul(self.value_sum)
                .and_then(|b| a.checked_sub(b))
        });
        let var_micro = match exact {
            Some(num) => num as f64 / (n as f64 * n as f64),
            None => {
                let mean = self.value_sum as f64 / n as f64;
                self.value_sumsq as f64 / n as f64 - mean * mean
            }
        };
        Some((var_micro / (VALUE_SCALE * VALUE_SCALE)).max(0.0))
    }

    pub fn value_std(&self) -> Option<f64> {
        self.value_variance().map(f64::sqrt)
    }

    pub fn value_min_f64(&self) -> Option<f64> {
        self.value_min.map(|v| v as f64 / VALUE_SCALE)
    }

    pub fn value_max_f64(&self) -> Option<f64> {
        self.value_max.map(|v| v as f64 / VALUE_SCALE)
    }

    /// The statistics as a flat JSON object (derived readings as floats, absent as null).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "bytes_out": self.bytes_out,
            "bytes_in": self.bytes_in,
            "packets": self.packets,
            "bytes_out_external": self.bytes_out_external,
            "distinct_dst": self.distinct_dst,
            "distinct_ports": self.distinct_ports,
            "value_count": self.value_count,
            "value_invalid": self.value_invalid,
            "value_mean": self.value_mean(),
            "value_std": self.value_std(),
            "value_min": self.value_min_f64(),
            "value_max": self.value_max_f64(),
        })
    }
}

/// The statistics of every maintained window of a device: inline for up to three windows
/// (the default layout), so that a shared state is one allocation.
pub type WindowList = smallvec::SmallVec<[WindowStats; 3]>;

/// Everything the engine maintains for one device at one time: its statistics for each
/// maintained window (in the order of `Config::maintained_windows_ticks`) and the time of its
/// latest event.
#[derive(Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceWindows {
    /// Event time of the device's latest event (epoch ms), whether or not still in a window.
    pub last_seen_ms: i64,
    pub windows: WindowList,
}

impl Clone for DeviceWindows {
    fn clone(&self) -> Self {
        DeviceWindows {
            last_seen_ms: self.last_seen_ms,
            windows: WindowList::from_slice(&self.windows),
        }
    }

    /// Copies `source` over `self` in place (one copy of the statistics, no new list).
    fn clone_from(&mut self, source: &Self) {
        self.last_seen_ms = source.last_seen_ms;
        self.windows.clear();
        self.windows.extend_from_slice(&source.windows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_copied_in_place_equals_its_source() {
        let stats = |n: u64| WindowStats {
            count: n,
            value_sum: -(n as i128) << 70,
            value_min: Some(-(n as i64)),
            ..WindowStats::default()
        };
        let three = DeviceWindows {
            last_seen_ms: 7,
            windows: (1..=3).map(stats).collect(),
        };
        let one = DeviceWindows {
            last_seen_ms: -1,
            windows: [stats(9)].into_iter().collect(),
        };
        for (mut to, from) in [
            (one.clone(), &three),
            (three.clone(), &one),
            (DeviceWindows::default(), &three),
        ] {
            to.clone_from(from);
            assert_eq!(&to, from);
            assert_eq!(&from.clone(), from);
        }
    }

    #[test]
    fn a_row_with_its_op_writes_what_its_json_map_prints() {
        let row = WindowRow {
            window_end_ms: 60_000,
            window_len_ms: 60_000,
            device: "vm-\"7\"".into(),
            window_start_ms: 0,
            stats: WindowStats {
                count: 3,
                value_count: 2,
                value_sum: 3_000_000,
                value_sumsq: 5_000_000_000_000,
                value_min: Some(1_000_000),
                value_max: Some(2_000_000),
                ..Default::default()
            },
        };
        let mut map = row.to_json();
        map.as_object_mut().unwrap().insert("op".into(), "insert".into());
        let mut written = Vec::new();
        row.write_json_with_op("insert", &mut written);
        assert_eq!(String::from_utf8(written).unwrap(), map.to_string());
    }

    #[test]
    fn quantize_limits() {
        assert_eq!(quantize(1.5), Some(1_500_000));
        assert_eq!(quantize(-0.000_000_4), Some(0));
        assert_eq!(quantize(f64::NAN), None);
        assert_eq!(quantize(2e9), None);
    }

    #[test]
    fn mean_and_variance_are_exact_for_small_sets() {
        let vals = [1.0, 2.0, 3.0, 4.0];
        let mut s = WindowStats::default();
        for v in vals {
            let q = quantize(v).unwrap() as i128;
            s.value_count += 1;
            s.value_sum += q;
            s.value_sumsq += q * q;
        }
        assert_eq!(s.value_mean(), Some(2.5));
        assert_eq!(s.value_variance(), Some(1.25));
    }
}

/// One closed tumbling window of one device: a row of `windows.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WindowRow {
    /// End of the window (exclusive), epoch ms; first so rows sort by time.
    pub window_end_ms: i64,
    pub window_len_ms: u64,
    pub device: crate::event::DeviceId,
    pub window_start_ms: i64,
    pub stats: WindowStats,
}

impl WindowRow {
    /// The row as a flat JSON object (the `windows.jsonl` and Kafka/Pinot row shape).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.json_view()).unwrap_or_default()
    }

    /// Appends the row's JSON object (the same text `to_json` prints, keys in sorted
    /// order) to `out` without building a `serde_json::Value` (the file sink's hot path).
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // Serializing plain numbers and a string into a Vec cannot fail.
        let _ = serde_json::to_writer(out, &self.json_view());
    }

    /// [`WindowRow::write_json`] with an `"op"` key (in its sorted place), as the Kafka
    /// topic's rows have.
    pub fn write_json_with_op(&self, op: &'static str, out: &mut Vec<u8>) {
        let view = RowJson {
            op: Some(op),
            ..self.json_view()
        };
        let _ = serde_json::to_writer(out, &view);
    }

    fn json_view(&self) -> RowJson<'_> {
        let s = &self.stats;
        RowJson {
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            bytes_out_external: s.bytes_out_external,
            count: s.count,
            device_id: self.device.as_str(),
            distinct_dst: s.distinct_dst,
            distinct_ports: s.distinct_ports,
            op: None,
            packets: s.packets,
            value_count: s.value_count,
            value_invalid: s.value_invalid,
            value_max: s.value_max_f64(),
            value_mean: s.value_mean(),
            value_min: s.value_min_f64(),
            value_std: s.value_std(),
            window_end_ms: self.window_end_ms,
            window_len_ms: self.window_len_ms,
            window_start_ms: self.window_start_ms,
        }
    }
}

/// A window row as JSON; fields in sorted order, as a `serde_json::Value` map prints them.
#[derive(Serialize)]
struct RowJson<'a> {
    bytes_in: u64,
    bytes_out: u64,
    bytes_out_external: u64,
    count: u64,
    device_id: &'a str,
    distinct_dst: u32,
    distinct_ports: u32,
    /// The Kafka topic's operation (`"insert"`); absent from the file's rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    op: Option<&'static str>,
    packets: u64,
    value_count: u64,
    value_invalid: u64,
    value_max: Option<f64>,
    value_mean: Option<f64>,
    value_min: Option<f64>,
    value_std: Option<f64>,
    window_end_ms: i64,
    window_len_ms: u64,
    window_start_ms: i64,
}

/// A device's state as shared in the dataflow: cheap to clone, and ordered by a content
/// fingerprint before content. Arrangements sort and merge states all the time, and the
/// retraction of a state is usually the very allocation that was inserted, so equality is
/// decided by pointer first, and otherwise by the fingerprint (one 64-bit compare, no pointer
/// chase) unless two fingerprints are equal. The fingerprint is a fixed function of the
/// content (FNV-1a over the fields), the same in every process, and travels with the state.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeviceState {
    fingerprint: u64,
    windows: std::sync::Arc<DeviceWindows>,
}

impl DeviceState {
    pub fn new(windows: DeviceWindows) -> Self {
        DeviceState {
            fingerprint: fingerprint(&windows),
            windows: std::sync::Arc::new(windows),
        }
    }

    /// The address of the shared content: equal for clones of one state.
    pub fn address(&self) -> usize {
        std::sync::Arc::as_ptr(&self.windows) as usize
    }
}

/// FNV-1a over every field of `w` (a fixed function: it must agree across processes).
fn fingerprint(w: &DeviceWindows) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut mix = |x: u64| {
        h = (h ^ x).wrapping_mul(0x0000_0100_0000_01b3);
    };
    mix(w.last_seen_ms as u64);
    for s in &w.windows {
        for x in [
            s.count,
            s.bytes_out,
            s.bytes_in,
            s.packets,
            s.bytes_out_external,
            u64::from(s.distinct_dst) << 32 | u64::from(s.distinct_ports),
            s.value_count,
            s.value_invalid,
            s.value_sum as u64,
            (s.value_sum >> 64) as u64,
            s.value_sumsq as u64,
            (s.value_sumsq >> 64) as u64,
            s.value_min.map_or(u64::MAX, |v| v as u64),
            s.value_max.map_or(u64::MAX, |v| v as u64),
        ] {
            mix(x);
        }
    }
    h
}

impl std::ops::Deref for DeviceState {
    type Target = DeviceWindows;
    fn deref(&self) -> &DeviceWindows {
        &self.windows
    }
}

impl PartialEq for DeviceState {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.windows, &other.windows)
            || (self.fingerprint == other.fingerprint && *self.windows == *other.windows)
    }
}

impl Eq for DeviceState {}

impl PartialOrd for DeviceState {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for DeviceState {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        if std::sync::Arc::ptr_eq(&self.windows, &other.windows) {
            std::cmp::Ordering::Equal
        } else {
            self.fingerprint
                .cmp(&other.fingerprint)
                .then_with(|| self.windows.cmp(&other.windows))
        }
    }
}

impl std::hash::Hash for DeviceState {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.fingerprint.hash(state)
    }
}
