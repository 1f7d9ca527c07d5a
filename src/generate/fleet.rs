//! The fleet: every device with its profile, address, busyness, usual destinations and
//! reading, and how it produces its next event (time and content).
//!
//! Invariants: the fleet depends only on `(devices, rate_per_min, seed)`; the mean of the
//! devices' base rates is exactly `rate_per_min`; a device's destinations are fixed at
//! creation (a small weighted set, mostly internal; workstations also browse a shared pool
//! of popular sites); `next_ts` is strictly increasing and honours the device's incident
//! windows (no event inside a `silent` window, thinned inside a `collapse` one); a device's
//! own random stream drives all of this, so other devices or delivery settings never
//! change it.

use std::collections::HashSet;

use super::emit::{Fault, Record};
use super::incident::{Corrupt, Effect, Window};
use super::metric::Metric;
use super::net::*;
use super::profile::*;
use super::rng::Rng64;
use super::services::*;

/// `Dest::ip` value meaning "a site drawn from the web pool".
const POOL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Dest {
    ip: u32,
    svc: u8,
    cum: f64,
}

/// One device.
#[derive(Debug)]
pub(crate) struct Device {
    pub name: String,
    pub profile: Profile,
    /// Interned own address.
    pub src: u32,
    /// Mean events per minute at rhythm 1.
    pub rate: f64,
    /// The device's day runs this many minutes early or late.
    pub shift: i32,
    pub metric: Option<Metric>,
    /// Incident windows, sorted and disjoint.
    pub windows: Vec<Window>,
    /// The rendered `device_id` and `src_ip` fields with their leading separators:
    /// `,name,src` (CSV) and `,"device_id":"name","src_ip":"src"` (JSON).
    pub prefix: [Box<[u8]>; 2],
    dests: Vec<Dest>,
    out_scale: f64,
    in_scale: f64,
    rng: Rng64,
}

/// All devices and the shared network tables.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub devices: Vec<Device>,
    pub ips: IpTable,
    pub pool: WebPool,
    /// Every external address some device may normally talk to, and every exfiltration
    /// destination chosen so far (so none is reused).
    pub known_external: HashSet<u32>,
    pub rhythm: Rhythm,
}

/// Flow volumes: (bytes_out, bytes_in, packets, duration_ms).
pub(crate) fn flow(svc: &Service, out_scale: f64, in_scale: f64, rng: &mut Rng64) -> (u64, u64, u64, u64) {
    let draw = |(median, sigma): (f64, f64), scale: f64, rng: &mut Rng64| -> u64 {
        if median == 0.0 {
            0
        } else if sigma == 0.0 {
            median as u64
        } else {
            ((rng.log_normal(median * scale, sigma) + 0.5) as u64).max(1)
        }
    };
    let out = draw(svc.out, out_scale, rng);
    let inb = draw(svc.inb, in_scale, rng);
    let segments = out.div_ceil(1448) + inb.div_ceil(1448);
    let packets = match svc.proto {
        crate::event::Protocol::Tcp => 3 + segments + segments / 2,
        _ => segments.max(1),
    };
    let throughput = if svc.external { 2_500.0 } else { 20_000.0 };
    let dur = rng.log_normal(svc.dur.0, svc.dur.1) + (out + inb) as f64 / throughput;
    (out, inb, packets, (dur + 0.5) as u64)
}

impl Fleet {
    pub fn build(n: u32, rate_per_min: f64, seed: u64) -> Fleet {
        let mut rng = Rng64::stream(seed, 1);
        let counts = fleet_counts(n);
        let mut profiles: Vec<Profile> = Vec::with_capacity(n as usize);
        for (p, &c) in Profile::ALL.iter().zip(&counts) {
            profiles.extend(std::iter::repeat_n(*p, c as usize));
        }
        rng.shuffle(&mut profiles);

        let mut ips = IpTable::default();
        let mut known_external: HashSet<u32> = KNOWN_EXTERNAL.iter().flat_map(|l| l.iter().copied()).collect();
        let pool = WebPool::new(2000, &mut rng, &mut ips, &mut known_external);
        let mut serial = [0u32; 4];
        let mut hosts = [0u32; 5];
        let mut by_profile: [Vec<u32>; 5] = Default::default();
        let mut named = Vec::with_capacity(n as usize);
        for &p in &profiles {
            let name = device_name(p, rng.chance(0.5), &mut serial);
            let (base, blocks) = p.address_block();
            let addr = host_addr(base, blocks, hosts[p.index()]);
            hosts[p.index()] += 1;
            by_profile[p.index()].push(addr);
            named.push((name, p, addr));
        }

        let mut devices = Vec::with_capacity(n as usize);
        for (i, (name, profile, addr)) in named.into_iter().enumerate() {
            let mut rng = Rng64::stream(seed, 1_000_000 + i as u64);
            let mut dests = Vec::new();
            let mut total = 0.0;
            for &(svc, weight, peers) in profile.services() {
                let weight = weight * rng.log_normal(1.0, 0.5);
                let mut push = |ip: u32, w: f64| {
                    total += w;
                    dests.push(Dest {
                        ip,
                        svc: svc as u8,
                        cum: total,
                    });
                };
                let candidates: &[u32] = match SERVICES[svc].peers {
                    Peers::Fixed(list) => list,
                    Peers::Devices(p, _) if by_profile[p].iter().any(|&a| a != addr) => &by_profile[p],
                    Peers::Devices(_, fallback) => fallback,
                    Peers::WebPool => {
                        // A few favourite sites, then the long tail.
                        for j in 0..peers {
                            push(pool.pick(&mut rng), 0.75 * weight / (j as f64 + 1.0) / 2.7);
                        }
                        push(POOL, 0.25 * weight);
                        continue;
                    }
                };
                let mut chosen: Vec<u32> = Vec::with_capacity(peers);
                for _ in 0..peers * 4 {
                    let a = candidates[rng.below(candidates.len() as u64) as usize];
                    if a != addr && !chosen.contains(&a) {
                        chosen.push(a);
                    }
                    if chosen.len() == peers {
                        break;
                    }
                }
                let share: f64 = (0..chosen.len()).map(|j| 1.0 / (j as f64 + 1.0)).sum();
                for (j, &a) in chosen.iter().enumerate() {
                    push(ips.intern(a), weight / (j as f64 + 1.0) / share);
                }
            }
            for d in &mut dests {
                d.cum /= total;
            }
            let metric = metric_for(profile, rng.f64()).map(|k| Metric::new(k, &mut rng));
            let out_scale = rng.log_normal(1.0, 0.4);
            let src = ips.intern(addr);
            let ip = String::from_utf8_lossy(ips.text(src)).into_owned();
            let prefix = [
                format!(",{name},{ip}").into_bytes().into(),
                format!(",\"device_id\":\"{name}\",\"src_ip\":\"{ip}\"")
                    .into_bytes()
                    .into(),
            ];
            devices.push(Device {
                name,
                profile,
                src,
                rate: profile.relative_rate() * rng.log_normal(1.0, 0.35),
                shift: (20.0 * rng.normal()).clamp(-60.0, 60.0) as i32,
                metric,
                windows: Vec::new(),
                prefix,
                dests,
                out_scale,
                in_scale: out_scale * rng.log_normal(1.0, 0.25),
                rng,
            });
        }
        let mean = devices.iter().map(|d| d.rate).sum::<f64>() / devices.len().max(1) as f64;
        for d in &mut devices {
            d.rate *= rate_per_min / mean;
        }
        Fleet {
            devices,
            ips,
            pool,
            known_external,
            rhythm: Rhythm::new(),
        }
    }

    /// Expected event time by which the fleet has produced `events` events from `start`
    /// (daily and weekly rhythm included, incidents ignored).
    pub fn expected_end(&self, start: i64, events: u64) -> i64 {
        let mut per_profile = [0.0; 5];
        for d in &self.devices {
            per_profile[d.profile.index()] += d.rate;
        }
        let per_minute = |t: i64| -> f64 {
            Profile::ALL
                .iter()
                .map(|&p| per_profile[p.index()] * self.rhythm.at(p, t, 0))
                .sum()
        };
        const WEEK_MIN: i64 = 7 * 1440;
        let week: f64 = (0..WEEK_MIN).map(|m| per_minute(start + m * MINUTE_MS)).sum();
        if week <= 0.0 {
            return start;
        }
        let mut left = events as f64;
        let weeks = ((left / week).floor() - 1.0).max(0.0);
        left -= weeks * week;
        let mut t = start + (weeks as i64) * WEEK_MIN * MINUTE_MS;
        loop {
            let r = per_minute(t);
            if r >= left {
                return t + (MINUTE_MS as f64 * left / r) as i64;
            }
            left -= r;
            t += MINUTE_MS;
        }
    }
}

impl Device {
    /// The incident effect active at `ts`, if any.
    #[inline]
    pub fn effect(&self, ts: i64) -> Option<Effect> {
        if self.windows.is_empty() {
            return None;
        }
        self.windows
            .iter()
            .find(|w| w.start <= ts && ts < w.end)
            .map(|w| w.effect)
    }

    /// Adds a destination that gets `share` of the device's flows (the others keep their
    /// proportions): e.g. the storage host a backup agent checks in with.
    pub fn add_dest(&mut self, ip: u32, svc: usize, share: f64) {
        let keep = 1.0 - share.clamp(0.0, 0.5);
        for d in &mut self.dests {
            d.cum *= keep;
        }
        if let Some(last) = self.dests.last_mut() {
            last.cum = keep;
        }
        self.dests.push(Dest {
            ip,
            svc: svc as u8,
            cum: 1.0,
        });
    }

    /// Whether `[start, end)` keeps `gap` away from every window of the device.
    pub fn free(&self, start: i64, end: i64, gap: i64) -> bool {
        self.windows
            .iter()
            .all(|w| end + gap <= w.start || w.end + gap <= start)
    }

    /// Expected bytes out per minute in normal operation (rhythm 1).
    pub fn usual_out_per_min(&self) -> f64 {
        let mut prev = 0.0;
        let mut per_flow = 0.0;
        for d in &self.dests {
            let (median, sigma) = SERVICES[d.svc as usize].out;
            let scale = if sigma > 0.0 { self.out_scale } else { 1.0 };
            per_flow += (d.cum - prev) * median * scale * (sigma * sigma / 2.0).exp();
            prev = d.cum;
        }
        self.rate * per_flow
    }

    /// The time of the first event at or after `start`.
    pub fn first_ts(&mut self, start: i64, rhythm: &Rhythm) -> i64 {
        match self.profile.arrivals() {
            Arrivals::Periodic => {
                let t = start + (60_000.0 / self.rate * self.rng.f64()) as i64;
                if self.keeps(t) {
                    t
                } else {
                    self.next_ts(t, rhythm)
                }
            }
            Arrivals::Poisson => self.next_ts(start, rhythm),
        }
    }

    /// Whether an event due at `t` happens (silence drops it, collapse mostly does).
    fn keeps(&mut self, t: i64) -> bool {
        match self.effect(t) {
            Some(Effect::Silent) => false,
            Some(Effect::Collapse(m)) => self.rng.chance(m),
            Some(Effect::Quiet) => false,
            _ => true,
        }
    }

    /// The time of the event after one at `ts`.
    pub fn next_ts(&mut self, ts: i64, rhythm: &Rhythm) -> i64 {
        let mut t = ts;
        loop {
            let gap = match self.profile.arrivals() {
                Arrivals::Periodic if self.rng.chance(0.004) => self.rng.range(200.0, 3000.0), // retry
                Arrivals::Periodic => 60_000.0 / self.rate * (1.0 + 0.02 * self.rng.normal()).max(0.5),
                Arrivals::Poisson => {
                    let burst = match self.effect(t) {
                        Some(Effect::Burst(m)) => m,
                        _ => 1.0,
                    };
                    60_000.0 * self.rng.exp1() / (self.rate * burst * rhythm.at(self.profile, t, self.shift)).max(1e-6)
                }
            };
            t += (gap as i64).max(1);
            if self.keeps(t) {
                return t;
            }
        }
    }

    /// The device's event at `ts` (`index` is its position in the fleet).
    pub fn record(&mut self, index: u32, ts: i64, rhythm: &Rhythm, pool: &WebPool) -> Record {
        let effect = self.effect(ts);
        let u = self.rng.f64();
        let i = self.dests.partition_point(|d| d.cum <= u).min(self.dests.len() - 1);
        let dest = self.dests[i];
        let svc = &SERVICES[dest.svc as usize];
        let dst = if dest.ip == POOL {
            pool.pick(&mut self.rng)
        } else {
            dest.ip
        };
        let (bytes_out, bytes_in, packets, duration_ms) = flow(svc, self.out_scale, self.in_scale, &mut self.rng);
        let mut fault = Fault::None;
        let value = match (&mut self.metric, effect) {
            (None, _) => None,
            (Some(m), Some(Effect::Corrupt(c))) => {
                let rng = &mut self.rng;
                let activity = rhythm.at(self.profile, ts, self.shift);
                Some(match c {
                    Corrupt::OutOfRange { values, p } => {
                        let v = m.next(ts, activity, rng);
                        if rng.chance(p) {
                            values[rng.below(2) as usize]
                        } else {
                            v
                        }
                    }
                    Corrupt::Nan { p } => {
                        let v = m.next(ts, activity, rng);
                        match rng.f64() {
                            x if x >= p => v,
                            x if x < 0.7 * p => f64::NAN,
                            x if x < 0.85 * p => f64::INFINITY,
                            _ => f64::NEG_INFINITY,
                        }
                    }
                    Corrupt::Stuck => {
                        m.sample(ts, activity, rng);
                        m.last
                    }
                    Corrupt::Shift { delta } => {
                        let raw = m.sample(ts, activity, rng) + delta;
                        m.finish(raw)
                    }
                    Corrupt::Malformed { p } => {
                        if rng.chance(p) {
                            fault = Fault::incident(rng);
                        }
                        m.next(ts, activity, rng)
                    }
                })
            }
            (Some(m), _) => Some(m.next(ts, rhythm.at(self.profile, ts, self.shift), &mut self.rng)),
        };
        if fault == Fault::None {
            if let (None, Some(Effect::Corrupt(Corrupt::Malformed { p }))) = (&self.metric, effect) {
                if self.rng.chance(p) {
                    fault = Fault::incident(&mut self.rng);
                }
            }
        }
        Record {
            ts,
            device: index,
            src: self.src,
            dst,
            port: svc.port,
            proto: svc.proto,
            bytes_out,
            bytes_in,
            packets,
            duration_ms,
            value,
            decimals: self.metric.as_ref().map_or(0, |m| m.kind.decimals()),
            fault,
            incident: effect.is_some_and(Effect::is_incident),
        }
    }
}
