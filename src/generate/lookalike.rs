//! Benign look-alikes: what real estates do that looks like an incident at first sight, placed
//! on the fleet and labelled `benign` (never as incidents), so detection figures mean
//! something.
//!
//! - `backup`: scheduled backups to cloud storage — large uploads (50 MB–1.5 GB in a few
//!   minutes) to one or two hosts of a shared storage pool, every hour at a device-specific
//!   minute or once a night at a device-specific time; the backup agent checks in with its
//!   storage every few minutes in between (small calls);
//! - `update`: software updates and CDN downloads — a burst of large downloads from 2–5
//!   external hosts never seen before (CDN edges), with small requests out;
//! - `batch_burst`: a batch job — a batch worker's event rate ×8–25 for 5–15 minutes (the
//!   label covers the burst and the hour after it, the hour a rate baseline remembers it);
//! - `maintenance`: a planned maintenance — a group of 5–12 servers of one kind, neighbours
//!   in the address plan (a rack, a subnet), all quiet for 10–30 minutes from a quarter hour;
//! - `site_upload`: a workstation uploads a file (2–20 MB) to a web site it never visited.
//!
//! Invariants: placed after the incidents with their own random stream, so the incidents
//! of a seed are where they were; a look-alike never overlaps an incident window of its
//! device (with a gap), so labels stay clean; look-alike records are benign (delivery noise
//! may touch them); hosts of updates and uploads are fresh public addresses, recorded as
//! known so no exfiltration reuses them.

use serde::{Deserialize, Serialize};

use super::fleet::Fleet;
use super::incident::{Effect, Exfil, IncidentKind, Label, Shape, Window, MIN};
use super::net::random_public;
use super::profile::{Profile, DAY_MS};
use super::rng::Rng64;
use super::services::{EXT_STORAGE, S_EXT_STORAGE};

/// How many look-alikes of each kind to place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BenignPlan {
    /// Devices with scheduled backups (databases first, then batch workers, web servers).
    pub backups: u32,
    /// Update / CDN download bursts.
    pub updates: u32,
    /// Batch-job bursts on batch workers.
    pub batch_bursts: u32,
    /// Groups of servers in planned maintenance.
    pub maintenance: u32,
    /// Workstation uploads to a new web site.
    pub site_uploads: u32,
}

impl BenignPlan {
    /// The default for a fleet: per 1,000 devices 25 backup devices, 20 updates, 25 batch
    /// bursts, 5 maintenance groups and 20 site uploads (none below 10 devices).
    pub fn for_devices(devices: u32) -> Self {
        if devices < 10 {
            return BenignPlan::default();
        }
        let per = |k: u32| (devices / k).max(1);
        BenignPlan {
            backups: per(40),
            updates: per(50),
            batch_bursts: per(40),
            maintenance: per(200),
            site_uploads: per(50),
        }
    }

    pub fn total(&self) -> u32 {
        self.backups + self.updates + self.batch_bursts + self.maintenance + self.site_uploads
    }
}

const GAP: i64 = 5 * MIN;

fn label(fleet: &Fleet, d: u32, start: i64, end: i64, detail: &str) -> Label {
    Label {
        kind: IncidentKind::Benign,
        device: fleet.devices[d as usize].name.clone(),
        start_ms: start,
        end_ms: end,
        detail: detail.to_string(),
    }
}

fn devices_of(fleet: &Fleet, profiles: &[Profile]) -> Vec<u32> {
    (0..fleet.devices.len() as u32)
        .filter(|&d| profiles.contains(&fleet.devices[d as usize].profile))
        .collect()
}

fn push_window(fleet: &mut Fleet, d: u32, start: i64, end: i64, effect: Effect) {
    let windows = &mut fleet.devices[d as usize].windows;
    windows.push(Window { start, end, effect });
    windows.sort_by_key(|w| w.start);
}

/// Places the planned look-alikes on a stream expected to cover `[start, end)`: adds device
/// windows (maintenance, bursts), destinations (backup check-ins) and flow streams to
/// `flows`; returns their labels.
pub(crate) fn place(
    plan: &BenignPlan,
    fleet: &mut Fleet,
    start: i64,
    end: i64,
    seed: u64,
    flows: &mut Vec<Exfil>,
) -> Vec<Label> {
    let mut rng = Rng64::stream(seed, 5);
    let mut labels = Vec::new();
    let span = end - start;
    if span < 20 * MIN || fleet.devices.is_empty() {
        return labels;
    }
    let servers = [Profile::WebServer, Profile::Database, Profile::BatchWorker];

    // Planned maintenance: neighbours of one kind go quiet together from a quarter hour.
    for _ in 0..plan.maintenance {
        let kind = servers[rng.below(3) as usize];
        let group = devices_of(fleet, &[kind]);
        if group.is_empty() {
            continue;
        }
        let size = (5 + rng.below(8) as usize).min(group.len());
        let first = rng.below((group.len() - size + 1) as u64) as usize;
        let dur = (rng.range(10.0, 30.0) * MIN as f64) as i64;
        let latest = end - dur - 10 * MIN;
        let earliest = start + (30 * MIN).max(span / 5);
        if latest <= earliest {
            continue;
        }
        let s = earliest + (rng.f64() * (latest - earliest) as f64) as i64;
        let s = s - (s - start).rem_euclid(15 * MIN) + 15 * MIN;
        for &d in &group[first..first + size] {
            if fleet.devices[d as usize].free(s, s + dur, GAP) {
                push_window(fleet, d, s, s + dur, Effect::Quiet);
                labels.push(label(fleet, d, s, s + dur, "maintenance"));
            }
        }
    }

    // Batch jobs: a worker's rate jumps for a few minutes.
    let mut workers = devices_of(fleet, &[Profile::BatchWorker]);
    if workers.is_empty() {
        workers = devices_of(fleet, &servers);
    }
    rng.shuffle(&mut workers);
    for i in 0..plan.batch_bursts as usize {
        let Some(&d) = workers.get(i % workers.len().max(1)) else {
            break;
        };
        let dur = (rng.range(5.0, 15.0) * MIN as f64) as i64;
        let s = start + 10 * MIN + (rng.f64() * (span - dur - 20 * MIN).max(0) as f64) as i64;
        let factor = rng.range(8.0, 25.0);
        if fleet.devices[d as usize].free(s, s + dur, GAP) {
            push_window(fleet, d, s, s + dur, Effect::Burst(factor));
            labels.push(label(fleet, d, s, s + dur + 60 * MIN, "batch_burst"));
        }
    }

    // Scheduled backups to cloud storage, with the agent's check-ins in between.
    let mut candidates = Vec::new();
    for p in [Profile::Database, Profile::BatchWorker, Profile::WebServer] {
        let mut v = devices_of(fleet, &[p]);
        rng.shuffle(&mut v);
        candidates.extend(v);
    }
    for &d in candidates.iter().take(plan.backups as usize) {
        let hosts: Vec<u32> = (0..1 + rng.below(2))
            .map(|_| {
                fleet
                    .ips
                    .intern(EXT_STORAGE[rng.below(EXT_STORAGE.len() as u64) as usize])
            })
            .collect();
        let rate = fleet.devices[d as usize].rate.max(0.1);
        for &h in &hosts {
            fleet.devices[d as usize].add_dest(h, S_EXT_STORAGE, (0.2 / rate / hosts.len() as f64).min(0.2));
        }
        let hourly = rng.chance(0.5);
        let (period, offset, size) = if hourly {
            (60 * MIN, (rng.f64() * 60.0) as i64 * MIN, rng.log_range(50e6, 400e6))
        } else {
            (
                DAY_MS,
                (30 + (rng.f64() * 120.0) as i64) * MIN,
                rng.log_range(200e6, 1.5e9),
            )
        };
        let dur_min = rng.range(4.0, 12.0);
        let flows_per_min = rng.range(2.0, 8.0);
        let port = 443;
        let mut t = start - start.rem_euclid(period) + offset;
        while t < end {
            let e = t + (dur_min * MIN as f64) as i64;
            if t >= start && fleet.devices[d as usize].free(t, e, GAP) {
                flows.push(Exfil {
                    device: d,
                    start: t,
                    end: e,
                    dests: hosts.clone(),
                    port,
                    flows_per_ms: flows_per_min / MIN as f64,
                    out_median: size / dur_min / flows_per_min / (0.125f64).exp(),
                    shape: Shape::Upload,
                    incident: false,
                    rng: Rng64::stream(seed, 5_000_000 + flows.len() as u64),
                });
                labels.push(label(fleet, d, t, e, "backup"));
            }
            t += period;
        }
    }

    // Updates and CDN downloads from fresh hosts; uploads to a new web site.
    let talkers = devices_of(fleet, &[Profile::WebServer, Profile::BatchWorker, Profile::Workstation]);
    let mut desks = devices_of(fleet, &[Profile::Workstation]);
    if desks.is_empty() {
        desks = talkers.clone();
    }
    let plans = [
        (plan.updates, &talkers, "update"),
        (plan.site_uploads, &desks, "site_upload"),
    ];
    for (count, pool, detail) in plans {
        if pool.is_empty() {
            continue;
        }
        for _ in 0..count {
            let d = pool[rng.below(pool.len() as u64) as usize];
            let upload = detail == "site_upload";
            let dur = if upload {
                rng.range(1.0, 3.0)
            } else {
                rng.range(2.0, 10.0)
            };
            let dur_ms = (dur * MIN as f64) as i64;
            let s = start + 10 * MIN + (rng.f64() * (span - dur_ms - 20 * MIN).max(0) as f64) as i64;
            if !fleet.devices[d as usize].free(s, s + dur_ms, GAP) {
                continue;
            }
            let hosts = if upload { 1 } else { 2 + rng.below(4) };
            let dests: Vec<u32> = (0..hosts)
                .map(|_| {
                    let a = random_public(&mut rng, &fleet.known_external);
                    fleet.known_external.insert(a);
                    fleet.ips.intern(a)
                })
                .collect();
            let (flows_total, shape, out_median) = if upload {
                (1.0 + rng.below(2) as f64, Shape::Upload, rng.log_range(2e6, 20e6))
            } else {
                let in_median = rng.log_range(5e6, 80e6);
                (
                    rng.range(3.0, 12.0),
                    Shape::Download { in_median },
                    rng.log_range(3e3, 150e3),
                )
            };
            flows.push(Exfil {
                device: d,
                start: s,
                end: s + dur_ms,
                dests,
                port: 443,
                flows_per_ms: flows_total / dur_ms as f64,
                out_median,
                shape,
                incident: false,
                rng: Rng64::stream(seed, 5_000_000 + flows.len() as u64),
            });
            labels.push(label(fleet, d, s, s + dur_ms, detail));
        }
    }
    labels
}
