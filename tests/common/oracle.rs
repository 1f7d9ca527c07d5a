//! A plain, single-threaded reference implementation of `docs/semantics.md`.
//!
//! Everything here is recomputed from scratch from the list of accepted events: no
//! incremental state, no retractions, no arrangements. Decoding (`Format::detect`,
//! `RecordDecoder`) is shared with the library; what is reimplemented independently is the
//! reading of files into records, the lateness rule, the windowing, the statistics and the
//! tumbling rows.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use vigil::config::{Config, LatePolicy};
use vigil::decode::{DecodeError, Format, RecordDecoder, Reject, RejectReason};
use vigil::event::{DeviceId, Event, Ip};
use vigil::window::stats::quantize;
use vigil::window::{DeviceWindows, WindowRow, WindowStats};

/// The input of one source partition: its files, in order, each with its name (the `source`
/// of its rejects). The files are read one after the other as one ordered stream; each file
/// has its own format detection and CSV header, and its own line numbers.
#[derive(Clone, Debug, Default)]
pub struct OracleInput<'a> {
    pub sources: Vec<(String, &'a [u8])>,
}

impl<'a> OracleInput<'a> {
    /// One partition made of a single file.
    pub fn single(name: &str, bytes: &'a [u8]) -> Self {
        OracleInput {
            sources: vec![(name.to_string(), bytes)],
        }
    }
}

/// An accepted event and the tick it is applied at (its own tick, or the watermark tick when
/// it was late and corrected).
#[derive(Clone, Debug, PartialEq)]
pub struct OracleEvent {
    pub event: Event,
    pub tick: u64,
}

/// Everything the semantics define for one run.
#[derive(Clone, Debug, Default)]
pub struct Oracle {
    /// Accepted events, partition by partition, in record order.
    pub accepted: Vec<OracleEvent>,
    /// Rejected records, partition by partition, in record order.
    pub rejects: Vec<Reject>,
    /// Late records accepted at the watermark (`late_policy = "correct"`).
    pub late_corrected: u64,
    /// Records read: non-blank lines that are not a CSV header.
    pub read: u64,
    /// Highest tick of any accepted event.
    pub t_last: Option<u64>,
}

/// The lines of a file: split at `\n`, one trailing `\r` removed; a last line without `\n`
/// is still a line. Returns (1-based line number, line).
fn lines(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let mut out = Vec::new();
    let mut number = 0u64;
    let mut rest = bytes;
    while !rest.is_empty() {
        number += 1;
        let (line, next) = match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.push((number, line));
        rest = next;
    }
    out
}

/// Empty or only (ASCII) white space: not a record.
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

/// The tick of an event time.
pub fn tick_of(config: &Config, ts_ms: i64) -> u64 {
    ts_ms.div_euclid(config.tick_ms() as i64) as u64
}

/// State of one source partition while it is read.
struct Partition {
    /// Highest valid timestamp of the records read so far (not counting those too far ahead).
    max_ts: Option<i64>,
    /// Every valid timestamp read so far, in record order (the last `RECENT` are the recent
    /// progress the `max_ahead` bound measures against).
    times: Vec<i64>,
}

/// One record of a partition, before it is decided.
struct Item<'a> {
    name: String,
    number: u64,
    line: &'a [u8],
    decoder: RecordDecoder,
    /// Rejected whatever the watermark (an unusable header line).
    error: Option<DecodeError>,
}

/// How many recent timestamps measure a partition's progress, how many records with one a
/// partition holds before deciding any, and how many usual gaps a sparse partition may jump.
const RECENT: usize = 7;
const WARM_UP: usize = 5;
const GAPS: i64 = 4;

/// The lower median of a list.
fn lower_median(mut v: Vec<i64>) -> Option<i64> {
    v.sort();
    v.get(v.len().saturating_sub(1) / 2).copied()
}

impl Partition {
    /// Whether `ts` is more than the bound ahead of the partition's progress (docs/semantics.md):
    /// progress `max(M, median of the last RECENT times)`, bound `max(max_ahead, GAPS × the
    /// median gap between those times, sorted)`.
    fn too_far_ahead(&self, config: &Config, ts: i64) -> bool {
        let max_ahead = config.time.max_ahead.0 as i64;
        if max_ahead == 0 {
            return false;
        }
        let recent: Vec<i64> = self.times[self.times.len().saturating_sub(RECENT)..].to_vec();
        let progress = match (self.max_ts, lower_median(recent.clone())) {
            (Some(m), Some(r)) => m.max(r),
            (Some(m), None) => m,
            (None, Some(r)) => r,
            (None, None) => return false,
        };
        let mut sorted = recent;
        sorted.sort();
        let gaps: Vec<i64> = sorted.windows(2).map(|w| w[1] - w[0]).collect();
        let bound = max_ahead.max(GAPS * lower_median(gaps).unwrap_or(0));
        ts > progress + bound
    }
}

impl Oracle {
    /// Reads one source partition.
    pub fn run(config: &Config, format: Option<Format>, input: &OracleInput) -> Oracle {
        Self::run_partitions(config, format, std::slice::from_ref(input))
    }

    /// Reads several independent source partitions (each with its own watermark), one after
    /// the other.
    pub fn run_partitions(config: &Config, format: Option<Format>, partitions: &[OracleInput]) -> Oracle {
        let mut oracle = Oracle::default();
        for input in partitions {
            let mut items = Vec::new();
            for (name, bytes) in &input.sources {
                items.extend(file_items(config, format, name, bytes));
            }
            oracle.decide_partition(config, &items);
        }
        oracle.t_last = oracle.accepted.iter().map(|e| e.tick).max();
        oracle
    }

    /// Decides a partition's records in order. With a `max_ahead` bound, the records up to
    /// the WARM_UP-th with a timestamp are decided once all of them are read, their times
    /// being the recent progress (they are not added to it a second time).
    fn decide_partition(&mut self, config: &Config, items: &[Item]) {
        let mut partition = Partition {
            max_ts: None,
            times: Vec::new(),
        };
        let mut held = 0;
        if config.time.max_ahead.0 > 0 {
            let mut with_ts = 0;
            for item in items {
                held += 1;
                if let Some(ts) = item.decoder.peek_ts(item.line) {
                    partition.times.push(ts);
                    with_ts += 1;
                    if with_ts == WARM_UP {
                        break;
                    }
                }
            }
        }
        for item in &items[..held] {
            self.decide(config, &mut partition, item, false);
        }
        // Hold on a jump: a record too far ahead as things stand is decided, with the records
        // after it up to the WARM_UP-th with a timestamp, once their times are in.
        let mut i = held;
        while i < items.len() {
            let item = &items[i];
            let jump = item
                .decoder
                .peek_ts(item.line)
                .is_some_and(|ts| partition.too_far_ahead(config, ts));
            if !jump {
                self.decide(config, &mut partition, item, true);
                i += 1;
                continue;
            }
            let (mut end, mut with_ts) = (i, 0);
            while end < items.len() && with_ts < WARM_UP {
                if let Some(ts) = items[end].decoder.peek_ts(items[end].line) {
                    partition.times.push(ts);
                    with_ts += 1;
                }
                end += 1;
            }
            for item in &items[i..end] {
                self.decide(config, &mut partition, item, false);
            }
            i = end;
        }
    }

    fn decide(&mut self, config: &Config, partition: &mut Partition, item: &Item, note: bool) {
        let (name, number, line) = (item.name.as_str(), item.number, item.line);
        self.read += 1;
        let peeked = item.decoder.peek_ts(line);
        let ahead = peeked.is_some_and(|ts| partition.too_far_ahead(config, ts));
        match item.error.clone().map_or_else(|| item.decoder.decode(line), Err) {
            Err(error) => self.reject(config, name, number, error, line),
            Ok(event) if ahead => {
                let error = DecodeError::new(RejectReason::TooFarAhead, "too far ahead".to_string());
                self.reject(config, name, number, error, line);
                let _ = event;
            }
            Ok(event) => {
                let lateness = config.time.lateness.0 as i64;
                match partition.max_ts {
                    Some(m) if event.ts_ms < m - lateness => match config.time.late_policy {
                        LatePolicy::Reject => {
                            let error = DecodeError::new(
                                RejectReason::Late,
                                format!(
                                    "ts {} ms is before the watermark {} ms (highest ts {} ms minus lateness {} ms)",
                                    event.ts_ms,
                                    m - lateness,
                                    m,
                                    lateness
                                ),
                            );
                            self.reject(config, name, number, error, line);
                        }
                        LatePolicy::Correct => {
                            let tick = tick_of(config, m - lateness);
                            self.late_corrected += 1;
                            self.accepted.push(OracleEvent { event, tick });
                        }
                    },
                    _ => {
                        let tick = tick_of(config, event.ts_ms);
                        self.accepted.push(OracleEvent { event, tick });
                    }
                }
            }
        }
        if let Some(ts) = peeked {
            if note {
                partition.times.push(ts);
            }
            if !ahead {
                partition.max_ts = Some(partition.max_ts.map_or(ts, |m| m.max(ts)));
            }
        }
    }

    fn reject(&mut self, config: &Config, name: &str, line: u64, error: DecodeError, raw: &[u8]) {
        let limit = config.output.reject_raw_bytes;
        let cut = &raw[..raw.len().min(limit)];
        self.rejects.push(Reject {
            source: name.to_string(),
            line,
            reason: error.reason,
            detail: error.detail,
            raw: String::from_utf8_lossy(cut).into_owned(),
        });
    }

    /// The accepted events of each device, sorted by tick (stable: record order within a
    /// tick).
    fn by_device(&self) -> BTreeMap<DeviceId, Vec<&OracleEvent>> {
        let mut map: BTreeMap<DeviceId, Vec<&OracleEvent>> = BTreeMap::new();
        for e in &self.accepted {
            map.entry(e.event.device.clone()).or_default().push(e);
        }
        for events in map.values_mut() {
            events.sort_by_key(|e| e.tick);
        }
        map
    }

    /// The window-stats collection at tick `t`: every device with an accepted event of tick
    /// `<= t`, with its stats for every maintained window at `t`.
    pub fn state_at(&self, config: &Config, t: u64) -> BTreeMap<DeviceId, DeviceWindows> {
        state_from(&self.by_device(), config, t)
    }

    /// The collection at each of `ticks` (the same as calling [`Oracle::state_at`] for each,
    /// but sorting the events only once).
    pub fn states_at(&self, config: &Config, ticks: &[u64]) -> Vec<BTreeMap<DeviceId, DeviceWindows>> {
        let devices = self.by_device();
        ticks.iter().map(|&t| state_from(&devices, config, t)).collect()
    }

    /// The collection at every change tick, in order: `(tick, collection)`.
    pub fn all_states(&self, config: &Config) -> Vec<(u64, BTreeMap<DeviceId, DeviceWindows>)> {
        let ticks = self.change_ticks(config);
        let states = self.states_at(config, &ticks);
        ticks.into_iter().zip(states).collect()
    }

    /// Every tick at which the collection can change: each accepted event's tick `t` and,
    /// for each maintained window of length `L` and step `S`, the first tick it no longer
    /// holds the event (`t + L` when `S` is 1, `(t / S) * S + L` otherwise), restricted to
    /// `<= t_last`; sorted, distinct.
    pub fn change_ticks(&self, config: &Config) -> Vec<u64> {
        let Some(t_last) = self.t_last else {
            return Vec::new();
        };
        let lengths = config.maintained_windows_ticks();
        let steps = config.window_steps_ticks();
        let mut ticks = BTreeSet::new();
        for e in &self.accepted {
            ticks.insert(e.tick);
            for (&len, &step) in lengths.iter().zip(&steps) {
                ticks.insert(e.tick / step * step + len);
            }
        }
        ticks.into_iter().filter(|&t| t <= t_last).collect()
    }

    /// The collection at `t_last` (the end-of-run snapshot); empty when nothing was accepted.
    pub fn final_state(&self, config: &Config) -> BTreeMap<DeviceId, DeviceWindows> {
        match self.t_last {
            Some(t) => self.state_at(config, t),
            None => BTreeMap::new(),
        }
    }

    /// Every tumbling row: for each tumbling length `L`, device and period `k` holding at
    /// least one of the device's accepted events (by tick), sorted.
    pub fn tumbling_rows(&self, config: &Config) -> Vec<WindowRow> {
        let tick_ms = config.tick_ms();
        let lengths: BTreeSet<u64> = config.windows.tumbling.iter().map(|w| w.0 / tick_ms).collect();
        // (length, device, period) -> the events of that device in that period.
        let mut groups: BTreeMap<(u64, DeviceId, u64), Vec<&Event>> = BTreeMap::new();
        for len in lengths {
            for e in &self.accepted {
                let key = (len, e.event.device.clone(), e.tick / len);
                groups.entry(key).or_default().push(&e.event);
            }
        }
        let mut rows: Vec<WindowRow> = groups
            .into_iter()
            .map(|((len, device, k), events)| WindowRow {
                window_end_ms: ((k + 1) * len * tick_ms) as i64,
                window_len_ms: len * tick_ms,
                device,
                window_start_ms: (k * len * tick_ms) as i64,
                stats: stats_of(config, events),
            })
            .collect();
        rows.sort();
        rows
    }
}

/// The collection at tick `t` from the events of each device sorted by tick.
fn state_from(
    devices: &BTreeMap<DeviceId, Vec<&OracleEvent>>,
    config: &Config,
    t: u64,
) -> BTreeMap<DeviceId, DeviceWindows> {
    let lengths = config.maintained_windows_ticks();
    let steps = config.window_steps_ticks();
    let mut out = BTreeMap::new();
    for (device, events) in devices {
        // The device's events with tick <= t.
        let seen = &events[..events.partition_point(|e| e.tick <= t)];
        let Some(last_seen_ms) = seen.iter().map(|e| e.event.ts_ms).max() else {
            continue;
        };
        let windows = lengths
            .iter()
            .zip(&steps)
            .map(|(&len, &step)| {
                // (t / step + 1) * step - len <= tick <= t, written without subtraction; with
                // a step of 1 that is t - len < tick <= t.
                let inside = seen
                    .iter()
                    .filter(|e| e.tick + len >= (t / step + 1) * step)
                    .map(|e| &e.event);
                stats_of(config, inside)
            })
            .collect();
        out.insert(device.clone(), DeviceWindows { last_seen_ms, windows });
    }
    out
}

/// `WindowStats` of a set of events, computed field by field from the definition. Sums
/// saturate at their type's limit (the engine's sums equal these while they have never
/// saturated: `src/window/sliding.rs`).
pub fn stats_of<'e>(config: &Config, events: impl IntoIterator<Item = &'e Event>) -> WindowStats {
    let events: Vec<&Event> = events.into_iter().collect();
    let absent = Ip(0);

    let count = events.len() as u64;
    let bytes_out = events.iter().fold(0u64, |s, e| s.saturating_add(e.bytes_out));
    let bytes_in = events.iter().fold(0u64, |s, e| s.saturating_add(e.bytes_in));
    let packets = events.iter().fold(0u64, |s, e| s.saturating_add(e.packets));
    let bytes_out_external = events
        .iter()
        .filter(|e| e.dst_ip != absent && config.network.is_external(e.dst_ip))
        .fold(0u64, |s, e| s.saturating_add(e.bytes_out));

    let destinations: HashSet<Ip> = events.iter().map(|e| e.dst_ip).filter(|ip| *ip != absent).collect();
    let ports: HashSet<u16> = events.iter().map(|e| e.dst_port).filter(|p| *p != 0).collect();

    let readings: Vec<f64> = events.iter().filter_map(|e| e.value).collect();
    let valid: Vec<i64> = readings.iter().filter_map(|v| quantize(*v)).collect();
    let value_invalid = readings.iter().filter(|v| quantize(**v).is_none()).count() as u64;

    let mut value_min: Option<i64> = None;
    let mut value_max: Option<i64> = None;
    for &q in &valid {
        if value_min.is_none_or(|m| q < m) {
            value_min = Some(q);
        }
        if value_max.is_none_or(|m| q > m) {
            value_max = Some(q);
        }
    }

    WindowStats {
        count,
        bytes_out,
        bytes_in,
        packets,
        bytes_out_external,
        distinct_dst: destinations.len() as u32,
        distinct_ports: ports.len() as u32,
        value_count: valid.len() as u64,
        value_invalid,
        value_sum: valid.iter().fold(0i128, |s, q| s.wrapping_add(*q as i128)),
        value_sumsq: valid
            .iter()
            .fold(0i128, |s, q| s.saturating_add((*q as i128) * (*q as i128))),
        value_min,
        value_max,
    }
}

/// The records of one file, in order: blank lines are not records; a first line that is a
/// header is not one either; a first line that looks like a header but is not usable is a
/// record rejected for that reason, and the file is then read in canonical column order.
fn file_items<'a>(config: &Config, format: Option<Format>, name: &str, bytes: &'a [u8]) -> Vec<Item<'a>> {
    let max_bytes = config.input.max_record_bytes;
    let records: Vec<(u64, &[u8])> = lines(bytes).into_iter().filter(|(_, l)| !is_blank(l)).collect();
    let Some(&(first_number, first_line)) = records.first() else {
        return Vec::new();
    };
    let format = format.unwrap_or_else(|| Format::detect(Some(Path::new(name)), first_line));
    let item = |decoder: &RecordDecoder, (number, line): (u64, &'a [u8]), error| Item {
        name: name.to_string(),
        number,
        line,
        decoder: decoder.clone(),
        error,
    };
    match RecordDecoder::for_file(format, first_line, max_bytes) {
        Ok((decoder, true)) => records[1..].iter().map(|&r| item(&decoder, r, None)).collect(),
        Ok((decoder, false)) => records.iter().map(|&r| item(&decoder, r, None)).collect(),
        Err(error) => {
            let decoder = RecordDecoder::new(format, max_bytes);
            let mut out = vec![item(&decoder, (first_number, first_line), Some(error))];
            out.extend(records[1..].iter().map(|&r| item(&decoder, r, None)));
            out
        }
    }
}
