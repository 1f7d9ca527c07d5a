//! `silence` (denial of service): a device that was active goes quiet, or its event rate
//! collapses against its own baseline.
//!
//! For every maintained window `w` shorter than the longest, the device's baseline rate is
//! the rate of the period before it: `(count(long) - count(w)) / (span(long) - span(w))`
//! (exact, since window counts subtract), where `span` is the event time a window covers at
//! the tick: its length, or less early in a step for a window advancing in steps
//! (`WindowLayout::span_ms`). With `expected = rate · span(w)` and `observed = count(w)`,
//! the device is reported when, for some `w`, `expected >= min_expected`,
//! `observed <= max_ratio · expected` and the Poisson tail bound
//! `-ln P(X <= observed | expected) >= min_surprise`.
//!
//! The baseline rate is robust to bursts (a batch job at 20× its rate for ten minutes would
//! make the normal rate after it look like a collapse): it is at most the device's *robust*
//! per-minute rate, the mean of its per-minute record counts over the hour before the recent
//! 5 minutes (up to its last record), leaving out burst minutes (above `burst_factor` × the
//! lower quartile + 3).
//!
//! Longer horizons (`horizons`, 10 minutes by default): a slow device (a few records a
//! minute) never expects `min_expected` records in the short windows, so its silence would
//! never show there. Its records of the last `k` minutes (from its per-minute counts, the
//! current minute up to the tick) are judged the same way against its robust rate over the
//! minutes before them; a quiet device is woken every minute while a horizon can still see it.
//!
//! Rejected records of the device count as observed (records that arrive but do not decode
//! are corruption, not silence). Once open, a candidate holds while some window still shows
//! `observed <= 2 · max_ratio · expected` with `expected >= min_expected / 2` (hysteresis);
//! horizons open candidates but do not hold them, so an episode ends soon after the device
//! is back.
//!
//! A candidate is reported `confirm` after it opened if it still holds then (a busy device's
//! one empty minute is no silence), until it closes, unless it went quiet with a group of
//! its neighbours (the group stage, `silence/group.rs`): a planned maintenance or an outage
//! of a rack makes many devices of one source subnet (/24, or /64 for IPv6) go quiet at one
//! moment, which is not one device's denial of service. A device went quiet between its
//! last event and the gap in which it would have sent `group_gap` events at its usual rate
//! (a slow device's stop is uncertain); the moment inside most such intervals (widened by
//! `group_window`) of a subnet, if it holds `group_min` devices, is a group's, and so on
//! greedily, so a device that sent events after a group stopped is not taken for one of it.
//! A member still quiet `group_outlast` after the rest of its group came back is reported
//! after all. Peers come from the data (the addresses devices send from, and who
//! went quiet when), not from names.
//!
//! A device is judged once it has 20 complete minutes of history (its robust rate).
//!
//! Invariants: driven by the device's window states, which change only once the frontier
//! has passed a tick (so it fires only when the silence is proven, not guessed, e.g. at the
//! tick where the window emptied), and by minute wake-ups of quiet devices; a report is
//! withdrawn when its candidate closes; the group stage is a differential computation over
//! the candidates (exact under late data, independent of workers); memory per device is its
//! latest window counts, 60 per-minute record counts (u16), a few cached robust rates and
//! the ticks of its rejected records in the longest recent window; the group stage keeps
//! the candidates' onsets of the last `group_memory`.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::detect::baseline::{human_ms, parse_duration_ms, poisson_low_surprise};
use crate::detect::keyed::{DeviceLogic, DeviceTick, Step};
use crate::detect::{Threat, Anomaly, Detected, DetectorContext, EventScore, Real, Severity, TypedDetector};
use crate::event::DeviceId;

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Events the baseline must predict in a window before its emptiness means anything.
    pub min_expected: f64,
    /// Observed / expected at or below which the rate counts as collapsed.
    pub max_ratio: f64,
    /// Minimum surprise (-ln of the Poisson probability of so few events).
    pub min_surprise: f64,
    /// Longer horizons (whole minutes, at most 40m) over which the device's records are also
    /// judged against its robust rate, so a slow device's silence shows once it lasts.
    pub horizons: Vec<String>,
    /// Minutes with more than this many times the lower quartile (+3) are bursts, left out of the
    /// robust rate.
    pub burst_factor: f64,
    /// How long after it opens a candidate is reported (peers going quiet too are seen first).
    pub confirm: String,
    /// Devices going quiet within `group_window` of each other that make a group (a planned
    /// maintenance, an outage), not reported one by one; 0 turns grouping off.
    pub group_min: u32,
    pub group_window: String,
    /// A device went quiet at most the gap in which it would have sent this many events
    /// after its last one (so a slow device's stop is uncertain), at most `group_max_gap`.
    pub group_gap: f64,
    pub group_max_gap: String,
    /// A member still quiet this long after the rest of its group came back is reported.
    pub group_outlast: String,
    /// How long a closed candidate's onset still counts for its group.
    pub group_memory: String,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_expected: 10.0,
            max_ratio: 0.2,
            min_surprise: 12.0,
            horizons: vec!["10m".into()],
            burst_factor: 3.0,
            confirm: "4m".into(),
            group_min: 3,
            group_window: "15s".into(),
            group_gap: 6.0,
            group_max_gap: "5m".into(),
            group_outlast: "10m".into(),
            group_memory: "2h".into(),
        }
    }
}

pub struct Silence;

impl TypedDetector for Silence {
    type Params = Params;
    const NAME: &'static str = "silence";
    const THREAT: Option<Threat> = Some(Threat::DenialOfService);
    const DESCRIPTION: &'static str =
        "denial of service: an active device goes quiet or its event rate collapses against its own baseline";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        (
            "min_expected",
            "events the device's baseline must predict in a window before a shortfall counts",
        ),
        ("max_ratio", "observed/expected events at or below which the rate has collapsed"),
        (
            "min_surprise",
            "-ln P(so few events | baseline), Poisson bound; 12 ≈ 1 in 160000",
        ),
        (
            "horizons",
            "longer spans (whole minutes, up to 40m) the device's records are also judged over, against its robust rate",
        ),
        (
            "burst_factor",
            "minutes above this × the lower quartile (+3) are bursts, left out of the robust rate",
        ),
        ("confirm", "how long after it opens a silence is reported (peers going quiet are seen first)"),
        (
            "group_min",
            "devices going quiet within group_window of each other that make a group (maintenance), not reported; 0: off",
        ),
        ("group_window", "how far apart the moments a group's devices went quiet may be"),
        (
            "group_gap",
            "a device went quiet at most the gap in which it would have sent this many events after its last one",
        ),
        ("group_max_gap", "the longest such gap (a slow device's stop time is that uncertain at most)"),
        (
            "group_outlast",
            "a group's device still quiet this long after the rest of the group came back is reported",
        ),
        ("group_memory", "how long a closed silence still counts for its group"),
    ];

    fn check(p: &Params) -> Result<(), (String, String)> {
        if !(p.min_expected >= 1.0 && p.min_expected.is_finite()) {
            return Err(("min_expected".into(), "must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&p.max_ratio) {
            return Err(("max_ratio".into(), "must lie in [0, 1)".into()));
        }
        if !(p.min_surprise > 0.0 && p.min_surprise.is_finite()) {
            return Err(("min_surprise".into(), "must be positive".into()));
        }
        if !(p.group_gap >= 0.0 && p.group_gap.is_finite()) {
            return Err(("group_gap".into(), "must be a number of events, 0 or more".into()));
        }
        if !(p.burst_factor >= 1.0 && p.burst_factor.is_finite()) {
            return Err(("burst_factor".into(), "must be at least 1".into()));
        }
        for h in &p.horizons {
            let ms = parse_duration_ms("horizons", h)?;
            if ms % 60_000 != 0 || !(60_000..=MAX_HORIZON_MIN * 60_000).contains(&ms) {
                return Err((
                    "horizons".into(),
                    format!("`{h}`: each must be whole minutes, from 1m to {MAX_HORIZON_MIN}m"),
                ));
            }
        }
        for (key, text) in [
            ("confirm", &p.confirm),
            ("group_window", &p.group_window),
            ("group_max_gap", &p.group_max_gap),
            ("group_outlast", &p.group_outlast),
            ("group_memory", &p.group_memory),
        ] {
            parse_duration_ms(key, text)?;
        }
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, p: &Params) -> Detected<'s> {
        let layout = ctx.windows.clone();
        let long = layout.longest();
        let long_len = layout.lens_ms[long];
        let recent: Vec<usize> = (0..layout.lens_ms.len())
            .filter(|&i| layout.lens_ms[i] < long_len)
            .collect();
        let tick_ms = layout.tick_ms.max(1);
        let ms = |text: &str| parse_duration_ms("", text).unwrap_or(0);
        let logic = Logic {
            p: p.clone(),
            horizons: p.horizons.iter().map(|h| ms(h) / 60_000).collect(),
            recent,
            long,
            layout,
        };
        let (candidates, _) = ctx.per_device.run(logic);
        Detected::reports(group::report(
            candidates,
            ms(&p.confirm).div_ceil(tick_ms),
            p.group_min as usize,
            ms(&p.group_window).max(1) as i64,
            p.group_gap,
            ms(&p.group_max_gap) as i64,
            ms(&p.group_outlast).div_ceil(tick_ms),
            ms(&p.group_memory).div_ceil(tick_ms),
        ))
    }
}

mod group;

/// What the silence logic sees: the device's new window state, or one of its rejected
/// records (a sign of life: records that arrive but do not decode are corruption, not
/// silence).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Input {
    /// Every window's event count and the latest event time of the new state.
    State {
        counts: smallvec::SmallVec<[u64; 3]>,
        last_seen_ms: i64,
    },
    /// Its accepted events at the tick (for the per-minute counts).
    /// One accepted event at the tick, with its source subnet (for the per-minute counts and
    /// the device's neighbourhood).
    Event(u64),
    Reject,
}

/// The longest horizon: its robust rate needs 20 minutes of the 60 the device keeps.
const MAX_HORIZON_MIN: u64 = 40;

struct Logic {
    p: Params,
    /// The horizons, in minutes.
    horizons: Vec<u64>,
    recent: Vec<usize>,
    long: usize,
    /// For the event time a window covers at a tick (less than its length early in a step).
    layout: std::sync::Arc<crate::detect::WindowLayout>,
}

/// What the logic keeps of a device's latest window state: every window's event count and
/// the latest event time (a copy, so the shared state is not held).
#[derive(Default)]
struct Counts {
    counts: smallvec::SmallVec<[u64; 3]>,
    last_seen_ms: i64,
}

#[derive(Default)]
struct State {
    latest: Option<Counts>,
    /// Ticks of rejected records within the longest recent window.
    rejects: VecDeque<u64>,
    open: bool,
    /// Events per minute of event time, by minute mod 60, up to `minute`.
    minutes: Minutes,
    /// Its source subnet (its neighbours in the address plan: a rack, a cluster).
    subnet: u64,
}

/// A device's network neighbourhood: its source /24 (IPv4) or /64 (IPv6), as a number an
/// `f64` holds exactly (0 before any event).
fn subnet(ip: crate::event::Ip) -> u64 {
    if ip.0 >> 32 == 0xffff {
        ((ip.0 as u32) >> 8) as u64
    } else {
        ((ip.0 >> 64) as u64) & ((1 << 52) - 1)
    }
}

/// A device's record counts (events and rejected records) of the last 60 minutes, and its
/// robust rates (cached per minute).
struct Minutes {
    counts: [u16; 60],
    /// The latest minute counted, and the first (None before any record).
    minute: u64,
    first: Option<u64>,
    /// The robust rates per minute as of `robust_at`, by the `recent` minutes they leave out
    /// (None: not enough history).
    robust: smallvec::SmallVec<[(u64, Option<f64>); 4]>,
    robust_at: u64,
}

impl Default for Minutes {
    fn default() -> Self {
        Minutes {
            counts: [0; 60],
            minute: 0,
            first: None,
            robust: smallvec::SmallVec::new(),
            robust_at: u64::MAX,
        }
    }
}

impl Minutes {
    /// Counts `n` events at minute `m` (minutes never go back: ticks come in order).
    fn add(&mut self, m: u64, n: u32) {
        if self.first.is_none() {
            self.first = Some(m);
            self.minute = m;
        }
        if m > self.minute {
            let from = if m - self.minute >= 60 { m - 59 } else { self.minute + 1 };
            for k in from..=m {
                self.counts[(k % 60) as usize] = 0;
            }
            self.minute = m;
        }
        let c = &mut self.counts[(m % 60) as usize];
        *c = c.saturating_add(n.min(u16::MAX as u32) as u16);
    }

    /// The records counted at minute `k` (0 outside the last 60 minutes counted).
    fn at(&self, k: u64) -> u64 {
        match self.first {
            Some(first) if k >= first && k <= self.minute && k + 60 > self.minute => self.counts[(k % 60) as usize] as u64,
            _ => 0,
        }
    }

    /// The records of minutes `from..=to`.
    fn sum(&self, from: u64, to: u64) -> u64 {
        (from..=to).map(|k| self.at(k)).sum()
    }

    /// The mean records per minute over the complete minutes of the hour before the last
    /// `recent` minutes (at least 20 of them), leaving out those above `factor` × the lower quartile
    /// + 3 (bursts); cached per minute and `recent`.
    fn robust(&mut self, m: u64, recent: u64, factor: f64) -> Option<f64> {
        if self.robust_at != m {
            self.robust_at = m;
            self.robust.clear();
        }
        if let Some(&(_, r)) = self.robust.iter().find(|(k, _)| *k == recent) {
            return r;
        }
        let r = self.robust_uncached(m, recent, factor);
        self.robust.push((recent, r));
        r
    }

    fn robust_uncached(&self, m: u64, recent: u64, factor: f64) -> Option<f64> {
        let first = self.first?;
        // The rate while the device was active: the quiet minutes since its last event (the
        // silence being judged) do not count; minutes before the ring are gone.
        let lo = (first + 1).max(m.saturating_sub(59));
        let hi = m.checked_sub(recent + 1)?.min(self.minute);
        if hi < lo || hi - lo + 1 < 20 {
            return None;
        }
        let mut v: smallvec::SmallVec<[u16; 60]> = (lo..=hi).map(|k| self.counts[(k % 60) as usize]).collect();
        v.sort_unstable();
        // The lower quartile: a burst longer than half the history cannot move it.
        let cut = factor * v[v.len() / 4] as f64 + 3.0;
        let (sum, n) = v
            .iter()
            .map(|&c| c as f64)
            .filter(|&c| c <= cut)
            .fold((0.0, 0u32), |(s, n), c| (s + c, n + 1));
        Some(sum / n.max(1) as f64)
    }
}

impl Logic {
    fn tick_ms(&self) -> u64 {
        self.layout.tick_ms.max(1)
    }
}

impl DeviceLogic for Logic {
    type Input = Input;
    type State = State;
    const READS_STATE: bool = true;

    fn new_state(&self) -> State {
        State::default()
    }

    fn inputs(&self, tick: &DeviceTick<'_>, out: &mut Vec<Input>) {
        if let Some(s) = tick.state {
            let mut counts = smallvec::SmallVec::new();
            for w in &s.windows {
                counts.push(w.count);
            }
            out.push(Input::State {
                counts,
                last_seen_ms: s.last_seen_ms,
            });
        }
        out.extend(tick.events.iter().map(|e| Input::Event(subnet(e.src_ip))));
        out.extend((0..tick.rejects).map(|_| Input::Reject));
    }

    fn order(a: &Input, b: &Input) -> std::cmp::Ordering {
        let rank = |i: &Input| match i {
            Input::State { .. } => 0u8,
            Input::Event(_) => 1,
            Input::Reject => 2,
        };
        let net = |i: &Input| match i {
            Input::Event(n) => *n,
            _ => 0,
        };
        rank(a).cmp(&rank(b)).then(net(a).cmp(&net(b)))
    }

    fn step(&self, s: &mut State, device: &DeviceId, tick: u64, inputs: &[Input], _: &mut Vec<EventScore>) -> Step {
        for i in inputs {
            match i {
                Input::State { counts, last_seen_ms } => {
                    // Copied over the kept counts in place (no new vector per change).
                    let latest = s.latest.get_or_insert_with(Counts::default);
                    latest.counts.clear();
                    latest.counts.extend_from_slice(counts);
                    latest.last_seen_ms = *last_seen_ms;
                }
                Input::Event(subnet) => {
                    s.minutes.add(tick * self.tick_ms() / 60_000, 1);
                    s.subnet = *subnet;
                }
                Input::Reject => {
                    s.rejects.push_back(tick);
                    s.minutes.add(tick * self.tick_ms() / 60_000, 1);
                }
            }
        }
        let horizon = self.recent.iter().map(|&w| self.layout.lens_ms[w]).max().unwrap_or(0) / self.tick_ms();
        while s.rejects.front().is_some_and(|&t| t + horizon <= tick) {
            s.rejects.pop_front();
        }
        let Some(state) = s.latest.as_ref() else {
            return Step::default();
        };
        let p = &self.p;
        let long_len = self.layout.span_ms(self.long, tick);
        let long_count = state.counts[self.long];
        let minute = tick * self.tick_ms() / 60_000;
        // No report before the device has a robust rate (20 complete minutes of history): a
        // young device's mean may be all burst.
        let Some(robust_per_ms) = s.minutes.robust(minute, 5, p.burst_factor).map(|r| r / 60_000.0) else {
            s.open = false;
            return Step::default();
        };
        let robust_per_ms = Some(robust_per_ms);
        // The strongest shortfall over the recent windows (opening thresholds, or the relaxed
        // holding ones while an episode is open).
        // (surprise, span, nominal length, observed, expected, rate per minute)
        let mut best: Option<(f64, u64, u64, f64, f64, f64)> = None;
        let mut holds = false;
        for &w in &self.recent {
            let len = self.layout.span_ms(w, tick);
            let rejected = s.rejects.iter().filter(|&&t| t + len / self.tick_ms() > tick).count() as f64;
            let observed = state.counts[w] as f64 + rejected;
            let before = (long_count - state.counts[w]) as f64;
            let mean_per_ms = before / (long_len - len) as f64;
            let rate_per_ms = robust_per_ms.map_or(mean_per_ms, |r| r.min(mean_per_ms));
            let expected = rate_per_ms * len as f64;
            if s.open && expected >= p.min_expected / 2.0 && observed <= 2.0 * p.max_ratio * expected {
                holds = true;
            }
            if expected < p.min_expected || observed > p.max_ratio * expected {
                continue;
            }
            let surprise = poisson_low_surprise(observed, expected);
            if surprise >= p.min_surprise && best.is_none_or(|b| surprise > b.0) {
                best = Some((surprise, len, self.layout.lens_ms[w], observed, expected, rate_per_ms * 60_000.0));
            }
        }
        // The longer horizons: the records of the last `k` minutes (the current one up to this
        // tick) against the robust rate of the minutes before them. They open a silence (a
        // slow device's shows only after a while); holding is left to the windows, so an
        // episode ends soon after the device is back.
        let end_ms = (tick + 1) * self.tick_ms();
        for &k in &self.horizons {
            let Some(from) = (minute + 1).checked_sub(k) else { continue };
            let Some(per_min) = s.minutes.robust(minute, k - 1, p.burst_factor) else {
                continue;
            };
            let len = end_ms.saturating_sub(from * 60_000).max(1);
            let observed = s.minutes.sum(from, minute) as f64;
            let expected = per_min * len as f64 / 60_000.0;
            if expected < p.min_expected || observed > p.max_ratio * expected {
                continue;
            }
            let surprise = poisson_low_surprise(observed, expected);
            if surprise >= p.min_surprise && best.is_none_or(|b| surprise > b.0) {
                best = Some((surprise, len, k * 60_000, observed, expected, per_min));
            }
        }
        s.open = best.is_some() || holds;
        let report = best.map(|(surprise, len, nominal, observed, expected, per_min)| {
            let score = (1.0 - observed / expected).clamp(0.0, 1.0) * (1.0 - (-surprise / 10.0).exp());
            let reason = if observed == 0.0 {
                format!(
                    "no events for {} or more; usual rate {per_min:.1}/min ({expected:.0} expected)",
                    human_ms(len)
                )
            } else {
                format!(
                    "{observed:.0} records in the last {} against {expected:.0} expected; usual rate {per_min:.1}/min",
                    human_ms(len)
                )
            };
            Anomaly {
                detector: Silence::NAME.into(),
                device: device.clone(),
                tick,
                window_ms: Some(nominal),
                score: Real(score),
                severity: Severity::from_score(score),
                reason,
                evidence: vec![
                    ("observed".into(), Real(observed)),
                    ("expected".into(), Real(expected)),
                    ("baseline_rate_per_min".into(), Real(per_min)),
                    ("surprise".into(), Real(surprise)),
                    ("last_seen_ms".into(), Real(state.last_seen_ms as f64)),
                    ("subnet".into(), Real(s.subnet as f64)),
                ],
            }
        });
        // While holding, the report's content does not matter (episodes keep the first).
        let report = report.or_else(|| {
            holds.then(|| Anomaly {
                detector: Silence::NAME.into(),
                device: device.clone(),
                tick,
                window_ms: None,
                score: Real(0.5),
                severity: Severity::Medium,
                reason: "still quiet".into(),
                evidence: Vec::new(),
            })
        });
        // A quiet device's window state may not change for a while (nothing left to expire):
        // woken every minute while a horizon can still see it go quiet.
        let wake_at = self
            .horizons
            .iter()
            .max()
            .filter(|&&h| minute <= s.minutes.minute + h)
            .map(|_| ((minute + 1) * 60_000).div_ceil(self.tick_ms()));
        Step { report, wake_at }
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::WindowLayout;

    fn logic() -> Logic {
        logic_with(&[])
    }

    fn logic_with(horizons: &[u64]) -> Logic {
        let layout = std::sync::Arc::new(WindowLayout {
            tick_ms: 1000,
            lens_ms: vec![60_000, 300_000, 3_600_000],
            steps: vec![1, 1, 1],
            sliding: vec![0, 1, 2],
        });
        Logic {
            p: Params::default(),
            horizons: horizons.to_vec(),
            recent: vec![0, 1],
            long: 2,
            layout,
        }
    }

    /// Steps a device whose events are at `ticks` (sorted) through every tick up to `until`;
    /// returns the ticks where its report opened and closed.
    fn drive(ticks: &[u64], until: u64) -> Vec<(u64, bool)> {
        drive_with(&logic(), ticks, until)
    }

    fn drive_with(l: &Logic, ticks: &[u64], until: u64) -> Vec<(u64, bool)> {
        let mut s = l.new_state();
        let device = DeviceId::from("d");
        let mut changes = Vec::new();
        let mut open = false;
        for t in 0..until {
            let count = |len: u64| ticks.iter().filter(|&&e| e <= t && e + len > t).count() as u64;
            let mut inputs = vec![Input::State {
                counts: [count(60), count(300), count(3600)].into_iter().collect(),
                last_seen_ms: ticks.iter().rev().find(|&&e| e <= t).map_or(0, |&e| e as i64 * 1000),
            }];
            inputs.extend(ticks.iter().filter(|&&e| e == t).map(|_| Input::Event(7)));
            let step = l.step(&mut s, &device, t, &inputs, &mut Vec::new());
            if step.report.is_some() != open {
                open = !open;
                changes.push((t, open));
            }
        }
        changes
    }

    #[test]
    fn a_quiet_device_opens_within_a_minute_or_two_and_closes_when_back() {
        // 30 events a minute for 40 minutes, quiet for 10, back for 5.
        let ticks: Vec<u64> = (0..2400).step_by(2).chain((3000..3300).step_by(2)).collect();
        let c = drive(&ticks, 3300);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].1 && (2400..2520).contains(&c[0].0), "{c:?}");
        // Closed once the 5-minute window shows enough traffic again.
        assert!(!c[1].1 && (3000..3150).contains(&c[1].0), "{c:?}");
        // Steady traffic never opens.
        let steady: Vec<u64> = (0..3300).step_by(2).collect();
        assert!(drive(&steady, 3300).is_empty());
    }

    #[test]
    fn a_slow_device_is_judged_over_a_longer_horizon() {
        // 2 events a minute for 40 minutes, then quiet: the 5-minute window never expects more
        // than 10 (a surprise of 10, below the bar); 10 minutes of quiet expect 20.
        let ticks: Vec<u64> = (0..2400).step_by(30).collect();
        assert!(drive(&ticks, 3600).is_empty());
        let c = drive_with(&logic_with(&[10]), &ticks, 3600);
        assert_eq!(c.len(), 1, "{c:?}");
        assert!(c[0].1 && (2400 + 300..=2400 + 600).contains(&c[0].0), "{c:?}");
        // A collapse to a tenth of the rate shows too (2 records in 10 minutes against 20).
        let collapse: Vec<u64> = (0..2400).step_by(30).chain((2400..3600).step_by(300)).collect();
        let c = drive_with(&logic_with(&[10]), &collapse, 3600);
        assert!(c.first().is_some_and(|x| x.1 && (2700..=3100).contains(&x.0)), "{c:?}");
        // The same steady slow traffic never opens.
        let steady: Vec<u64> = (0..3600).step_by(30).collect();
        assert!(drive_with(&logic_with(&[10, 20, 30]), &steady, 3600).is_empty());
    }

    #[test]
    fn minutes_outside_the_ring_count_nothing() {
        let mut m = Minutes::default();
        m.add(100, 7);
        m.add(101, 3);
        assert_eq!((m.at(99), m.at(100), m.at(101), m.at(102)), (0, 7, 3, 0));
        assert_eq!(m.sum(95, 105), 10);
        // 60 minutes later minute 100's slot is reused: its old count is gone.
        m.add(160, 1);
        assert_eq!((m.at(100), m.at(101), m.at(160)), (0, 3, 1));
        m.add(161, 2);
        assert_eq!((m.at(101), m.at(161)), (0, 2));
    }

    #[test]
    fn the_rate_after_a_burst_is_not_a_collapse() {
        // 10 a minute, 180 a minute for 15 minutes, then 10 a minute again.
        let mut ticks: Vec<u64> = (0..1500).step_by(6).collect();
        ticks.extend((1500..2400).flat_map(|t| [t, t, t]));
        ticks.extend((2400..4800).step_by(6));
        ticks.sort_unstable();
        assert!(drive(&ticks, 4800).is_empty());
    }

    #[test]
    fn robust_rate_leaves_out_bursts_and_needs_history() {
        let mut m = Minutes::default();
        for k in 0..60u64 {
            m.add(1000 + k, if (1020..1035).contains(&(1000 + k)) { 200 } else { 10 });
        }
        let r = m.robust(1060, 5, 3.0).expect("an hour of history");
        assert!((r - 10.0).abs() < 1e-9, "{r}");
        // The quiet minutes since the last event are not part of it (the silence itself).
        assert_eq!(m.robust(1070, 5, 3.0), Some(10.0));
        // Leaving out more recent minutes: the burst is now part of the hour before them.
        let mut k = Minutes::default();
        for m in 0..60u64 {
            k.add(m, if m >= 40 { 1 } else { 10 });
        }
        // A collapse 20 minutes ago: over minutes 1..=54 its 15 quiet minutes are the lower
        // quartile, so the busy ones look like bursts; before the last 20 minutes they are not.
        assert_eq!(k.robust(60, 5, 3.0), Some(1.0));
        assert_eq!(k.robust(60, 19, 3.0), Some(391.0 / 40.0));
        assert_eq!(k.robust(60, 5, 3.0), Some(1.0), "cached per horizon");
        let mut young = Minutes::default();
        young.add(5, 10);
        assert_eq!(young.robust(20, 5, 3.0), None);
    }

    #[test]
    fn neighbours_share_a_subnet() {
        assert_eq!(
            subnet(crate::event::Ip::from_addr("10.5.5.17".parse().unwrap())),
            subnet(crate::event::Ip::from_addr("10.5.5.200".parse().unwrap()))
        );
        assert_ne!(
            subnet(crate::event::Ip::from_addr("10.5.5.17".parse().unwrap())),
            subnet(crate::event::Ip::from_addr("10.5.6.17".parse().unwrap()))
        );
    }
}
