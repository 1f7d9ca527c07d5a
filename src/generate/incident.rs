//! Injected incidents: the plan (how many of each kind), where they land (device, event-time
//! window, flavour), what they do to a device's traffic, and their ground-truth labels.
//!
//! Invariants: every incident window lies after the warm-up (at least 30 minutes or 20% of
//! the expected span, whichever fits) and before 95% of the expected span; windows on one
//! device never overlap and keep a gap between them; silence goes to busy, steadily active
//! devices (not workstations), exfiltration to non-sensors, corruption of readings to
//! devices that report a `value` (sensors first); exfiltration destinations are public
//! addresses no device ever contacts otherwise; one label per incident, in event time.

use serde::{Deserialize, Serialize};

use super::emit::{Fault, Record};
use super::fleet::Fleet;
use super::net::random_public;
use super::profile::Profile;
use super::rng::Rng64;
use crate::detect::Threat;
use crate::event::Protocol;

/// What a label marks: one of the three threats, or a benign look-alike (not an incident).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// Denial of service: the device goes silent or its traffic collapses.
    Silence,
    /// Data loss: large outbound volumes to new external hosts.
    Exfiltration,
    /// Data corruption: erroneous readings or malformed records.
    Corruption,
    /// Benign behaviour that looks like one (a backup, an update, a batch burst, a planned
    /// maintenance, an upload to a new web site): detectors should stay quiet on it.
    Benign,
}

impl IncidentKind {
    /// The threat a label of this kind is an instance of (None: benign).
    pub fn threat(self) -> Option<Threat> {
        match self {
            IncidentKind::Silence => Some(Threat::DenialOfService),
            IncidentKind::Exfiltration => Some(Threat::DataLoss),
            IncidentKind::Corruption => Some(Threat::DataCorruption),
            IncidentKind::Benign => None,
        }
    }
}

/// Ground truth for one injected incident (event time, `[start_ms, end_ms)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub kind: IncidentKind,
    pub device: String,
    pub start_ms: i64,
    pub end_ms: i64,
    /// The flavour: `silent`, `collapse`, `burst_new_hosts`, `out_of_range`, `nan`,
    /// `stuck`, `shift` or `malformed`; for benign labels `backup`, `update`, `batch_burst`,
    /// `maintenance` or `site_upload`.
    pub detail: String,
}

/// How many incidents of each kind to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct IncidentPlan {
    pub silence: u32,
    pub exfiltration: u32,
    pub corruption: u32,
}

impl IncidentPlan {
    /// The default for a fleet: `max(1, devices / 100)` of each kind from 10 devices up.
    pub fn for_devices(devices: u32) -> Self {
        let n = if devices >= 10 { (devices / 100).max(1) } else { 0 };
        IncidentPlan {
            silence: n,
            exfiltration: n,
            corruption: n,
        }
    }

    pub fn total(&self) -> u32 {
        self.silence + self.exfiltration + self.corruption
    }
}

/// What an incident (or a benign look-alike) does to its device's own traffic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Effect {
    Silent,
    /// Keep only this share of events.
    Collapse(f64),
    /// Normal traffic continues; the extra flows come from an [`Exfil`] stream.
    Exfil,
    Corrupt(Corrupt),
    /// Benign: a planned maintenance, no events (like `Silent`, but not an incident).
    Quiet,
    /// Benign: a batch job, events at this many times the usual rate.
    Burst(f64),
}

impl Effect {
    /// Whether the effect is an injected incident (its records are never delayed or broken
    /// by delivery noise); look-alikes are benign.
    pub fn is_incident(self) -> bool {
        !matches!(self, Effect::Quiet | Effect::Burst(_))
    }
}

/// The volumes of an extra flow stream.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Shape {
    /// Uploads: bytes out log-normal around `out_median`, a little in (acks, responses).
    Upload,
    /// Downloads: bytes in log-normal around this median, bytes out around `out_median`.
    Download { in_median: f64 },
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Corrupt {
    OutOfRange { values: [f64; 2], p: f64 },
    Nan { p: f64 },
    Stuck,
    Shift { delta: f64 },
    Malformed { p: f64 },
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub start: i64,
    pub end: i64,
    pub effect: Effect,
}

/// The extra flows of one exfiltration, or of a benign look-alike (a backup, an update, an
/// upload): a Poisson stream of flows from a device to a few external hosts.
#[derive(Debug)]
pub(crate) struct Exfil {
    pub device: u32,
    pub start: i64,
    pub end: i64,
    pub dests: Vec<u32>,
    pub port: u16,
    pub flows_per_ms: f64,
    pub out_median: f64,
    pub shape: Shape,
    /// Whether its records belong to an incident (see [`Effect::is_incident`]).
    pub incident: bool,
    pub rng: Rng64,
}

impl Exfil {
    pub fn first_ts(&mut self) -> i64 {
        let gap = self.rng.exp1() / self.flows_per_ms;
        self.start + (gap as i64).min((self.end - self.start) / 3)
    }

    pub fn next_ts(&mut self, ts: i64) -> Option<i64> {
        let t = ts + ((self.rng.exp1() / self.flows_per_ms) as i64).max(1);
        (t < self.end).then_some(t)
    }

    pub fn record(&mut self, ts: i64, src: u32) -> Record {
        let rng = &mut self.rng;
        let (bytes_out, bytes_in) = match self.shape {
            Shape::Upload => {
                let out = rng.log_normal(self.out_median, 0.5).round().max(1.0) as u64;
                (out, 2_000 + (out as f64 * rng.range(0.005, 0.02)) as u64)
            }
            Shape::Download { in_median } => (
                rng.log_normal(self.out_median, 0.8).round().max(1.0) as u64,
                rng.log_normal(in_median, 0.6).round().max(1.0) as u64,
            ),
        };
        let throughput = rng.range(1_000.0, 5_000.0); // bytes per ms
        Record {
            ts,
            device: self.device,
            src,
            dst: self.dests[rng.below(self.dests.len() as u64) as usize],
            port: self.port,
            proto: Protocol::Tcp,
            bytes_out,
            bytes_in,
            packets: 3 + (bytes_out.div_ceil(1448) + bytes_in.div_ceil(1448)) * 3 / 2,
            duration_ms: (rng.range(40.0, 200.0) + bytes_out as f64 / throughput) as u64,
            value: None,
            decimals: 0,
            fault: Fault::None,
            incident: self.incident,
        }
    }
}

pub(crate) const MIN: i64 = 60_000;
const CORRUPTIONS: [&str; 5] = ["out_of_range", "nan", "stuck", "shift", "malformed"];

/// Devices to draw from: unused ones first, in a random order.
struct Pool {
    devices: Vec<u32>,
}

impl Pool {
    fn pick(&self, used: &[bool], attempt: usize, rng: &mut Rng64) -> u32 {
        let fresh: Vec<u32> = self.devices.iter().copied().filter(|&d| !used[d as usize]).collect();
        if attempt < 3 && !fresh.is_empty() {
            fresh[attempt.min(fresh.len() - 1)]
        } else {
            self.devices[rng.below(self.devices.len() as u64) as usize]
        }
    }
}

/// Places the planned incidents on the fleet (adding windows to devices) for a stream
/// expected to cover `[start, end)`; returns their labels and the exfiltration streams.
pub(crate) fn place(
    plan: &IncidentPlan,
    fleet: &mut Fleet,
    start: i64,
    end: i64,
    seed: u64,
) -> (Vec<Label>, Vec<Exfil>) {
    let mut rng = Rng64::stream(seed, 3);
    let span = end - start;
    let last = start + span * 95 / 100;
    let mut warm = start + (30 * MIN).max(span / 5);
    if warm + MIN > last {
        warm = start + span / 5;
    }
    let avail = last - warm;
    let (mut labels, mut exfils) = (Vec::new(), Vec::new());
    if avail < MIN || fleet.devices.is_empty() {
        return (labels, exfils);
    }
    let gap = (15 * MIN).min(avail / 10);
    let n = fleet.devices.len() as u32;
    let shuffled = |rng: &mut Rng64, keep: &dyn Fn(u32) -> bool| {
        let mut v: Vec<u32> = (0..n).filter(|&d| keep(d)).collect();
        rng.shuffle(&mut v);
        v
    };
    let devs = &fleet.devices;
    // Silence: the busier half of the steadily active devices.
    let mut busy: Vec<u32> = (0..n)
        .filter(|&d| devs[d as usize].profile != Profile::Workstation)
        .collect();
    if busy.is_empty() {
        busy = (0..n).collect();
    }
    busy.sort_by(|&a, &b| devs[b as usize].rate.total_cmp(&devs[a as usize].rate).then(a.cmp(&b)));
    busy.truncate(busy.len().div_ceil(2));
    rng.shuffle(&mut busy);
    let mut talkers = shuffled(&mut rng, &|d| devs[d as usize].profile != Profile::Sensor);
    if talkers.is_empty() {
        talkers = shuffled(&mut rng, &|_| true);
    }
    let mut readers = shuffled(&mut rng, &|d| devs[d as usize].profile == Profile::Sensor);
    readers.extend(shuffled(&mut rng, &|d| {
        devs[d as usize].profile != Profile::Sensor && devs[d as usize].metric.is_some()
    }));
    if readers.is_empty() {
        readers = shuffled(&mut rng, &|_| true);
    }
    let pools = [
        Pool { devices: busy },
        Pool { devices: talkers },
        Pool { devices: readers },
    ];
    let offset = rng.below(10) as usize;
    let mut used = vec![false; n as usize];
    let kinds = [
        (IncidentKind::Silence, plan.silence, (10, 40)),
        (IncidentKind::Exfiltration, plan.exfiltration, (5, 20)),
        (IncidentKind::Corruption, plan.corruption, (10, 30)),
    ];
    for (k, (kind, count, (lo, hi))) in kinds.into_iter().enumerate() {
        for i in 0..count as usize {
            let dur = ((rng.range(lo as f64, hi as f64) * MIN as f64) as i64)
                .min(avail / 2)
                .max(MIN);
            let mut placed = None;
            for attempt in 0..24 {
                let d = pools[k].pick(&used, attempt, &mut rng);
                let s = warm + (rng.f64() * (avail - dur) as f64) as i64;
                let clash = fleet.devices[d as usize]
                    .windows
                    .iter()
                    .any(|w| s < w.end + gap && w.start < s + dur + gap);
                if !clash {
                    placed = Some((d, s));
                    break;
                }
            }
            let Some((d, s)) = placed else { continue };
            used[d as usize] = true;
            let e = s + dur;
            let device = &fleet.devices[d as usize];
            let (effect, detail) = match kind {
                IncidentKind::Silence if (i + offset) % 2 == 0 => (Effect::Silent, "silent"),
                IncidentKind::Silence => (Effect::Collapse(rng.range(0.01, 0.045)), "collapse"),
                IncidentKind::Exfiltration => {
                    // Fresh public hosts, then known, so no later incident reuses them.
                    let dests: Vec<u32> = (0..3 + rng.below(18))
                        .map(|_| {
                            let a = random_public(&mut rng, &fleet.known_external);
                            fleet.known_external.insert(a);
                            fleet.ips.intern(a)
                        })
                        .collect();
                    let flows_per_min = rng.range(1.0, 6.0);
                    let target = rng.log_range(10.0, 100.0) * device.usual_out_per_min();
                    exfils.push(Exfil {
                        device: d,
                        start: s,
                        end: e,
                        dests,
                        port: [443, 443, 443, 22, 8443, 873][rng.below(6) as usize],
                        flows_per_ms: flows_per_min / MIN as f64,
                        out_median: target / flows_per_min / (0.125f64).exp(),
                        shape: Shape::Upload,
                        incident: true,
                        rng: Rng64::stream(seed, 4_000_000 + exfils.len() as u64),
                    });
                    (Effect::Exfil, "burst_new_hosts")
                }
                IncidentKind::Benign => continue,
                IncidentKind::Corruption => {
                    let detail = match &device.metric {
                        Some(_) => CORRUPTIONS[(i + offset) % CORRUPTIONS.len()],
                        None => "malformed",
                    };
                    (corruption(detail, device.metric.as_ref(), &mut rng), detail)
                }
            };
            let windows = &mut fleet.devices[d as usize].windows;
            windows.push(Window {
                start: s,
                end: e,
                effect,
            });
            windows.sort_by_key(|w| w.start);
            labels.push(Label {
                kind,
                device: fleet.devices[d as usize].name.clone(),
                start_ms: s,
                end_ms: e,
                detail: detail.to_string(),
            });
        }
    }
    labels.sort_by(|a, b| (a.start_ms, &a.device).cmp(&(b.start_ms, &b.device)));
    (labels, exfils)
}

fn corruption(detail: &str, metric: Option<&super::metric::Metric>, rng: &mut Rng64) -> Effect {
    let Some(m) = metric else {
        return Effect::Corrupt(Corrupt::Malformed { p: rng.range(0.3, 0.8) });
    };
    Effect::Corrupt(match detail {
        "out_of_range" => {
            let bad = m.kind.impossible();
            let pick = |rng: &mut Rng64| bad[rng.below(bad.len() as u64) as usize];
            Corrupt::OutOfRange {
                values: [pick(rng), pick(rng)],
                p: rng.range(0.3, 1.0),
            }
        }
        "nan" => Corrupt::Nan { p: rng.range(0.3, 1.0) },
        "stuck" => Corrupt::Stuck,
        "shift" => {
            let (lo, hi) = m.kind.range();
            let level = m.last;
            let up = hi - level >= level - lo;
            let room = if up { hi - level } else { level - lo };
            let delta = (rng.range(6.0, 12.0) * m.spread()).min(0.5 * room);
            Corrupt::Shift {
                delta: if up { delta } else { -delta },
            }
        }
        _ => Corrupt::Malformed { p: rng.range(0.3, 0.8) },
    })
}
