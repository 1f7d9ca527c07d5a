//! `exfiltration` (data loss): a device ships data out — a sustained burst of uploads to
//! external destinations it never talked to before.
//!
//! Per device (own state over the events): an external destination is *new* for `new_for`
//! after the first contact, when the device had not talked to it within `memory` and the
//! device has been seen for at least `learn` (so the hosts it talks to regularly — the
//! storage a backup agent checks in with, its update servers — are learned and a nightly
//! backup to them is not new). Only *uploads* count: flows sending at least `min_upload_ratio`
//! times what they receive (software updates, CDN downloads and web browsing receive far more
//! than they send, however new their hosts). Reported while, in the recent window, at least
//! `min_new_flows` uploads went to at least `min_new_destinations` new destinations carrying
//! at least `min_new_bytes` and `new_bytes_factor` times the device's usual outbound bytes per
//! window, and has held for `confirm` with uploads to new destinations still going on after it
//! first held (a file or two sent in one go, then nothing, is not a burst); once holding, it
//! holds while new destinations still received half those bytes.
//!
//! The usual outbound bytes per window are the median of the device's last `usual_windows`
//! whole windows (aligned blocks of `window`) of bytes to destinations that were not new: a
//! mean would be inflated by the device's own hourly backup or batch job, and an exfiltration
//! from a device that backs up a gigabyte an hour would have to beat the backup.
//!
//! There is no rule on outbound volume alone: a backup of a gigabyte to the usual storage is
//! the normal night of a database, and raw volume cannot tell it from a theft.
//!
//! Invariants: the rule is per device and deterministic (inputs of a tick are processed
//! sorted); memory per device is bounded: at most `max_destinations` remembered destinations
//! (the least recently used are forgotten first, which can only make a destination look new
//! again), the flows of the recent window to new destinations, and `usual_windows` totals.

use std::collections::VecDeque;

use foldhash::HashMap;

use serde::{Deserialize, Serialize};

use crate::config::NetworkConfig;
use crate::detect::baseline::{human_ms, parse_duration_ms};
use crate::detect::keyed::{event_order, DeviceLogic, DeviceTick, Step};
use crate::detect::{Threat, Anomaly, Detected, DetectorContext, EventScore, Real, Severity, TypedDetector};
use crate::event::{DeviceId, Event};

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The recent window the rule looks at.
    pub window: String,
    /// A flow is an upload when it sends at least this many times what it receives.
    pub min_upload_ratio: f64,
    /// New external destinations (in the recent window) for the new-destination rule.
    pub min_new_destinations: u32,
    /// Flows to new destinations in the recent window (one big upload is not a burst).
    pub min_new_flows: u32,
    /// Bytes sent to new destinations in the recent window, at least, for the new-destination rule.
    pub min_new_bytes: u64,
    /// ... and at least this many times the device's usual outbound bytes per window.
    pub new_bytes_factor: f64,
    /// The usual outbound bytes per window: the median of the device's last this many whole
    /// windows (its own backups and batch jobs do not inflate it).
    pub usual_windows: usize,
    /// How long a device is watched before its destinations can be new.
    pub learn: String,
    /// A destination not contacted for this long is new again.
    pub memory: String,
    /// How long a destination stays new after the first contact.
    pub new_for: String,
    /// Destinations remembered per device (least recently used forgotten first).
    pub max_destinations: usize,
    /// The new-destination rule must hold this long, and uploads to new destinations go on
    /// after it first held, before it is reported (a short burst of uploads is not an
    /// exfiltration).
    pub confirm: String,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            window: "5m".into(),
            min_upload_ratio: 4.0,
            min_new_destinations: 2,
            min_new_flows: 3,
            min_new_bytes: 1_000_000,
            new_bytes_factor: 5.0,
            usual_windows: 12,
            learn: "30m".into(),
            memory: "24h".into(),
            new_for: "1h".into(),
            max_destinations: 4096,
            confirm: "2m".into(),
        }
    }
}

pub struct Exfiltration;

impl TypedDetector for Exfiltration {
    type Params = Params;
    const NAME: &'static str = "exfiltration";
    const THREAT: Option<Threat> = Some(Threat::DataLoss);
    const DESCRIPTION: &'static str =
        "data loss: a sustained burst of uploads to external destinations the device never talked to";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        ("window", "the recent window the rule looks at"),
        (
            "min_upload_ratio",
            "a flow counts when it sends at least this many times what it receives (an upload)",
        ),
        ("min_new_destinations", "new external destinations in the window for the new-destination rule"),
        ("min_new_flows", "flows to new destinations in the window (one big upload is not a burst)"),
        ("min_new_bytes", "bytes sent to new destinations in the window, at least, for the new-destination rule"),
        (
            "new_bytes_factor",
            "... and at least this many times the device's usual outbound bytes per window",
        ),
        (
            "usual_windows",
            "the usual outbound bytes per window: the median of the device's last this many whole windows",
        ),
        ("learn", "how long a device is watched before any destination counts as new"),
        ("memory", "a destination not contacted for this long is new again"),
        ("new_for", "how long a destination stays new after the first contact"),
        ("max_destinations", "destinations remembered per device (memory bound)"),
        (
            "confirm",
            "how long the new-destination rule must hold (uploads to new hosts going on after it first held) before it is reported",
        ),
    ];

    fn check(p: &Params) -> Result<(), (String, String)> {
        for (key, text) in [
            ("window", &p.window),
            ("learn", &p.learn),
            ("memory", &p.memory),
            ("new_for", &p.new_for),
            ("confirm", &p.confirm),
        ] {
            parse_duration_ms(key, text)?;
        }
        if !(p.min_upload_ratio >= 0.0 && p.min_upload_ratio.is_finite()) {
            return Err(("min_upload_ratio".into(), "must be a non-negative number".into()));
        }
        if !(p.new_bytes_factor >= 0.0 && p.new_bytes_factor.is_finite()) {
            return Err(("new_bytes_factor".into(), "must be a non-negative number".into()));
        }
        if p.min_new_destinations == 0 {
            return Err(("min_new_destinations".into(), "must be at least 1".into()));
        }
        if p.max_destinations == 0 {
            return Err(("max_destinations".into(), "must be at least 1".into()));
        }
        if p.usual_windows == 0 {
            return Err(("usual_windows".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, p: &Params) -> Detected<'s> {
        let ms = |text: &str| parse_duration_ms("", text).unwrap_or(300_000);
        let tick = ctx.windows.tick_ms.max(1);
        let logic = NewDestinations {
            network: ctx.network.clone(),
            window: ms(&p.window).div_ceil(tick).max(1),
            learn: ms(&p.learn).div_ceil(tick),
            memory: ms(&p.memory).div_ceil(tick),
            new_for: ms(&p.new_for).div_ceil(tick),
            window_ms: ms(&p.window),
            min_new: p.min_new_destinations as usize,
            min_flows: p.min_new_flows as usize,
            confirm: ms(&p.confirm).div_ceil(tick),
            min_bytes: p.min_new_bytes,
            factor: p.new_bytes_factor,
            max_known: p.max_destinations,
            upload_ratio: p.min_upload_ratio,
            usual_windows: p.usual_windows,
        };
        let (new_dst, _) = ctx.per_device.run(logic);
        Detected::reports(new_dst)
    }
}

fn human_bytes(b: f64) -> String {
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b:.0} B"),
    }
}

struct NewDestinations {
    network: std::sync::Arc<NetworkConfig>,
    /// Durations in ticks.
    window: u64,
    learn: u64,
    memory: u64,
    new_for: u64,
    window_ms: u64,
    min_new: usize,
    min_flows: usize,
    confirm: u64,
    min_bytes: u64,
    factor: f64,
    max_known: usize,
    upload_ratio: f64,
    usual_windows: usize,
}

#[derive(Default)]
struct DstState {
    first_tick: Option<u64>,
    /// Destination → last contact tick.
    known: HashMap<u128, u64>,
    /// Destinations first contacted recently → first contact tick.
    new: HashMap<u128, u64>,
    /// Flows to new destinations in the recent window: (tick, destination, bytes).
    flows: VecDeque<(u64, u128, u64)>,
    /// Per destination in `flows`: bytes.
    by_dst: HashMap<u128, u64>,
    bytes: u64,
    /// The current block of `window` ticks (tick / window) and the bytes sent in it to
    /// destinations that were not new.
    block: u64,
    block_out: u64,
    /// Those bytes of the last `usual_windows` whole blocks, oldest first (the baseline).
    blocks: VecDeque<u64>,
    /// Whether the rule holds (then it keeps holding down to half the byte thresholds).
    open: bool,
    /// Since when the rule holds.
    since: Option<u64>,
    /// Whether an upload to a new destination came after the tick the rule began to hold.
    went_on: bool,
}

/// The median of `v` (the mean of the two middle values for an even length); 0 when empty.
fn median(v: impl Iterator<Item = u64>) -> f64 {
    // On the stack for the usual number of blocks.
    let mut v: smallvec::SmallVec<[u64; 16]> = v.collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] as f64 + v[n / 2] as f64) / 2.0
    }
}

impl NewDestinations {
    /// Closes the blocks before `tick`'s (a block without events sent nothing), keeping the
    /// last `usual_windows` of them.
    fn roll_blocks(&self, s: &mut DstState, tick: u64) {
        let block = tick / self.window;
        if block == s.block {
            return;
        }
        let empty = (block - s.block - 1).min(self.usual_windows as u64);
        for b in std::iter::once(s.block_out).chain(std::iter::repeat_n(0, empty as usize)) {
            if s.blocks.len() == self.usual_windows {
                s.blocks.pop_front();
            }
            s.blocks.push_back(b);
        }
        s.block = block;
        s.block_out = 0;
    }

    /// The device's usual outbound bytes per window: the median of its whole blocks, or, before
    /// the first one closed, what the current block has so far.
    fn usual(&self, s: &DstState) -> f64 {
        if s.blocks.is_empty() {
            s.block_out as f64
        } else {
            median(s.blocks.iter().copied())
        }
    }
}

impl DeviceLogic for NewDestinations {
    type Input = Event;
    type State = DstState;

    fn new_state(&self) -> DstState {
        DstState::default()
    }

    fn inputs(&self, tick: &DeviceTick<'_>, out: &mut Vec<Event>) {
        out.extend_from_slice(tick.events);
    }

    fn order(a: &Event, b: &Event) -> std::cmp::Ordering {
        event_order(a, b)
    }

    fn step(&self, s: &mut DstState, device: &DeviceId, tick: u64, events: &[Event], _: &mut Vec<EventScore>) -> Step {
        if s.first_tick.is_none() {
            s.first_tick = Some(tick);
            s.block = tick / self.window;
        }
        let first = s.first_tick.unwrap_or(tick);
        self.roll_blocks(s, tick);
        while let Some(&(t, d, b)) = s.flows.front() {
            if t + self.window > tick {
                break;
            }
            s.flows.pop_front();
            s.bytes = s.bytes.saturating_sub(b);
            if let Some(v) = s.by_dst.get_mut(&d) {
                *v = v.saturating_sub(b);
                if *v == 0 {
                    s.by_dst.remove(&d);
                }
            }
        }
        if !s.new.is_empty() {
            let new_for = self.new_for;
            s.new.retain(|_, f| *f + new_for > tick);
        }
        let learning = tick < first + self.learn;
        for e in events {
            if e.dst_ip.0 == 0 || !self.network.is_external(e.dst_ip) || learning {
                if e.dst_ip.0 == 0 || !s.new.contains_key(&e.dst_ip.0) {
                    s.block_out = s.block_out.saturating_add(e.bytes_out);
                }
                if e.dst_ip.0 != 0 && self.network.is_external(e.dst_ip) {
                    s.known.insert(e.dst_ip.0, tick);
                }
                continue;
            }
            let d = e.dst_ip.0;
            let is_new = match s.known.get(&d) {
                None => true,
                Some(&last) => last + self.memory <= tick,
            };
            if is_new && !learning {
                s.new.insert(d, tick);
            }
            let upload = e.bytes_out as f64 >= self.upload_ratio * e.bytes_in as f64;
            if s.new.contains_key(&d) && e.bytes_out > 0 && upload && !learning {
                s.flows.push_back((tick, d, e.bytes_out));
                s.bytes = s.bytes.saturating_add(e.bytes_out);
                let to_dst = s.by_dst.entry(d).or_insert(0);
                *to_dst = to_dst.saturating_add(e.bytes_out);
                if s.since.is_some_and(|t| t < tick) {
                    s.went_on = true;
                }
            }
            if !s.new.contains_key(&d) {
                s.block_out = s.block_out.saturating_add(e.bytes_out);
            }
            s.known.insert(d, tick);
        }
        if s.known.len() > self.max_known {
            // Forget the least recently used quarter (amortised O(1) per insertion).
            let mut ticks: Vec<u64> = s.known.values().copied().collect();
            ticks.sort_unstable();
            let cut = ticks[ticks.len() / 4];
            s.known.retain(|_, t| *t > cut);
        }
        let distinct = s.by_dst.len();
        let k = if s.open { 0.5 } else { 1.0 };
        // The usual volume (a median over the device's blocks, in memory of its own) last:
        // most steps fail a test before it.
        s.open = distinct >= if s.open { 1 } else { self.min_new }
            && s.flows.len() >= if s.open { 1 } else { self.min_flows }
            && s.bytes as f64 >= k * self.min_bytes as f64
            && s.bytes as f64 >= k * self.factor * self.usual(s);
        s.since = if s.open { Some(s.since.unwrap_or(tick)) } else { None };
        s.went_on &= s.open;
        let confirmed_at = s.since.map(|t| t + self.confirm);
        let report = (s.went_on && confirmed_at.is_some_and(|c| c <= tick)).then(|| {
            let usual = self.usual(s);
            let score = (1.0 - self.min_bytes as f64 / (2.0 * s.bytes as f64)).clamp(0.5, 1.0);
            Anomaly {
                detector: Exfiltration::NAME.into(),
                device: device.clone(),
                tick,
                window_ms: Some(self.window_ms),
                score: Real(score),
                severity: Severity::from_score(score),
                reason: format!(
                    "{} sent to {distinct} external destinations never seen before, in {}; usually {} in all",
                    human_bytes(s.bytes as f64),
                    human_ms(self.window_ms),
                    human_bytes(usual)
                ),
                evidence: vec![
                    ("new_destinations".into(), Real(distinct as f64)),
                    ("bytes_to_new".into(), Real(s.bytes as f64)),
                    ("usual_bytes_out".into(), Real(usual)),
                    ("known_destinations".into(), Real(s.known.len() as f64)),
                ],
            }
        });
        Step {
            report,
            wake_at: [s.flows.front().map(|&(t, _, _)| t + self.window), confirmed_at.filter(|&c| c > tick)]
                .into_iter()
                .flatten()
                .min(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Ip, Protocol};

    fn logic() -> NewDestinations {
        let p = Params::default();
        let ms = |text: &str| parse_duration_ms("", text).unwrap();
        NewDestinations {
            network: std::sync::Arc::new(NetworkConfig::default()),
            window: ms(&p.window) / 1000,
            learn: ms(&p.learn) / 1000,
            memory: ms(&p.memory) / 1000,
            new_for: ms(&p.new_for) / 1000,
            window_ms: ms(&p.window),
            min_new: p.min_new_destinations as usize,
            min_flows: p.min_new_flows as usize,
            confirm: ms(&p.confirm) / 1000,
            min_bytes: p.min_new_bytes,
            factor: p.new_bytes_factor,
            max_known: p.max_destinations,
            upload_ratio: p.min_upload_ratio,
            usual_windows: p.usual_windows,
        }
    }

    fn flow(tick: u64, dst: &str, out: u64, inb: u64) -> Event {
        Event {
            ts_ms: tick as i64 * 1000,
            device: "d".into(),
            src_ip: Ip::from_addr("10.0.0.1".parse().unwrap()),
            dst_ip: Ip::from_addr(dst.parse().unwrap()),
            dst_port: 443,
            protocol: Protocol::Tcp,
            bytes_out: out,
            bytes_in: inb,
            packets: 10,
            duration_ms: 100,
            value: None,
        }
    }

    /// Runs the logic over `(tick, flow)` (sorted) tick by tick up to `until`; returns the
    /// ticks at which the report opened.
    fn opened(flows: &[(u64, Event)], until: u64) -> Vec<u64> {
        let l = logic();
        let mut s = l.new_state();
        let device = DeviceId::from("d");
        let (mut open, mut opened) = (false, Vec::new());
        for t in 0..until {
            let events: Vec<Event> = flows.iter().filter(|f| f.0 == t).map(|f| f.1.clone()).collect();
            let step = l.step(&mut s, &device, t, &events, &mut Vec::new());
            if step.report.is_some() && !open {
                opened.push(t);
            }
            open = step.report.is_some();
        }
        opened
    }

    /// Internal traffic every 10 s and a DNS lookup a minute over `[0, until)` s.
    fn usual(until: u64) -> Vec<(u64, Event)> {
        let mut v: Vec<(u64, Event)> = (0..until).step_by(10).map(|t| (t, flow(t, "10.1.2.3", 1_000, 800))).collect();
        v.extend((5..until).step_by(60).map(|t| (t, flow(t, "8.8.8.8", 80, 200))));
        v
    }

    fn with(mut base: Vec<(u64, Event)>, extra: impl IntoIterator<Item = (u64, Event)>) -> Vec<(u64, Event)> {
        base.extend(extra);
        base.sort_by_key(|f| f.0);
        base
    }

    #[test]
    fn uploads_to_new_hosts_fire_after_confirm() {
        let burst = (2400..3000).step_by(20).map(|t| (t + 1, flow(t + 1, &format!("198.51.100.{}", t % 7), 3_000_000, 20_000)));
        let o = opened(&with(usual(3600), burst), 3600);
        assert_eq!(o.len(), 1, "{o:?}");
        assert!((2400..2700).contains(&o[0]), "{o:?}");
    }

    #[test]
    fn downloads_known_hosts_and_learning_do_not_fire() {
        // Downloads from new hosts (an update): far more in than out.
        let update = (2400..3000).step_by(20).map(|t| (t + 1, flow(t + 1, &format!("198.51.100.{}", t % 7), 300_000, 50_000_000)));
        assert!(opened(&with(usual(3600), update), 3600).is_empty());
        // A backup to hosts the device checks in with every 5 minutes.
        let checkins = (0..3600).step_by(300).flat_map(|t| [(t + 2, flow(t + 2, "52.216.8.35", 1_500, 3_000)), (t + 3, flow(t + 3, "52.217.96.12", 1_500, 3_000))]);
        let backup = (2400..3000).step_by(10).map(|t| (t + 4, flow(t + 4, if t % 20 == 0 { "52.216.8.35" } else { "52.217.96.12" }, 8_000_000, 80_000)));
        assert!(opened(&with(with(usual(3600), checkins), backup), 3600).is_empty());
        // Uploads to new hosts during the first `learn` of the device.
        let early = (600..1200).step_by(20).map(|t| (t + 1, flow(t + 1, &format!("198.51.100.{}", t % 7), 3_000_000, 20_000)));
        assert!(opened(&with(usual(1800), early), 1800).is_empty());
    }

    #[test]
    fn median_of_blocks() {
        assert_eq!(median([].into_iter()), 0.0);
        assert_eq!(median([7].into_iter()), 7.0);
        assert_eq!(median([9, 1, 5].into_iter()), 5.0);
        assert_eq!(median([9, 1, 5, 3].into_iter()), 4.0);
        assert_eq!(median([u64::MAX, 0, 0].into_iter()), 0.0);
    }

    #[test]
    fn usual_is_the_median_of_the_last_whole_windows() {
        let l = logic(); // window 300 ticks, usual_windows 12
        let mut s = l.new_state();
        let device = DeviceId::from("d");
        let step = |s: &mut DstState, t: u64, out: u64| {
            l.step(s, &device, t, &[flow(t, "10.1.2.3", out, 10)], &mut Vec::new());
        };
        // Block 0 (ticks 0..300): 1,000 + 2,000 bytes; nothing whole yet: the block so far.
        step(&mut s, 10, 1_000);
        step(&mut s, 20, 2_000);
        assert_eq!(l.usual(&s), 3_000.0);
        // Block 1: 10,000; block 2 empty (no event); block 3: 500 → blocks [3000, 10000, 0].
        step(&mut s, 310, 10_000);
        step(&mut s, 950, 500);
        assert_eq!(s.blocks, [3_000, 10_000, 0]);
        assert_eq!(l.usual(&s), 3_000.0);
        // A gap of 20 blocks: only `usual_windows` (12) are kept, all of them empty.
        step(&mut s, 950 + 20 * 300, 1);
        assert_eq!(s.blocks.len(), 12);
        assert_eq!(l.usual(&s), 0.0);
    }

    #[test]
    fn a_backup_of_its_own_does_not_hide_an_exfiltration() {
        // The device backs up 400 MB in 5 minutes to storage it checks in with (known), then
        // uploads 3 MB every 20 s (45 MB per window) to 7 new hosts. Its mean outbound per
        // window over the hour is about 33 MB (5 × = 167 MB: the upload would be hidden); the
        // median of its windows is its ordinary 30 kB (internal 1 kB / 10 s).
        let checkins = (0..3600).step_by(300).map(|t| (t + 2, flow(t + 2, "52.216.8.35", 1_500, 3_000)));
        let backup = (1800..2100).step_by(10).map(|t| (t + 4, flow(t + 4, "52.216.8.35", 400_000_000 / 30, 80_000)));
        let burst = (2700..3300).step_by(20).map(|t| (t + 1, flow(t + 1, &format!("198.51.100.{}", t % 7), 3_000_000, 20_000)));
        let o = opened(&with(with(with(usual(3600), checkins), backup), burst), 3600);
        assert_eq!(o.len(), 1, "{o:?}");
        assert!((2700..3000).contains(&o[0]), "{o:?}");
    }

    #[test]
    fn uploads_in_one_go_then_nothing_are_not_sustained() {
        // Three uploads (1.2 MB each) to two new hosts within 30 s, then nothing: the rule holds
        // (3.6 MB ≥ 1 MB, 2 hosts, 3 flows) but nothing went on after it held.
        let go = [(2400, "198.51.100.1"), (2410, "198.51.100.2"), (2430, "198.51.100.1")];
        let one_go = go.iter().map(|&(t, d)| (t, flow(t, d, 1_200_000, 20_000)));
        assert!(opened(&with(usual(3600), one_go.clone()), 3600).is_empty());
        // One more upload to a new host a minute later: sustained, reported 2 minutes after
        // the rule first held (2430 + 120).
        let more = one_go.chain([(2490, flow(2490, "198.51.100.3", 1_200_000, 20_000))]);
        assert_eq!(opened(&with(usual(3600), more), 3600), [2550]);
        // Going on after it held, but only at the tick it first held, does not count.
        let same_tick = [(2400, "198.51.100.1"), (2410, "198.51.100.2"), (2430, "198.51.100.1"), (2430, "198.51.100.2")];
        let same = same_tick.iter().map(|&(t, d)| (t, flow(t, d, 1_200_000, 20_000)));
        assert!(opened(&with(usual(3600), same), 3600).is_empty());
    }

    #[test]
    fn a_small_device_sending_a_few_megabytes_fires() {
        // 150 kB every 20 s to 3 new hosts (2.25 MB per window) over 10 minutes: above the
        // 1 MB floor and far above the device's ordinary 30 kB per window.
        let burst = (2400..3000).step_by(20).map(|t| (t + 1, flow(t + 1, &format!("198.51.100.{}", t % 3), 150_000, 3_000)));
        let o = opened(&with(usual(3600), burst), 3600);
        assert_eq!(o.len(), 1, "{o:?}");
        // The same with 30 kB flows (450 kB per window) stays below the floor.
        let small = (2400..3000).step_by(20).map(|t| (t + 1, flow(t + 1, &format!("198.51.100.{}", t % 3), 30_000, 600)));
        assert!(opened(&with(usual(3600), small), 3600).is_empty());
    }
}
