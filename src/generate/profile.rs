//! Device profiles: what kind of machine a device is, how busy it is, when in the day and
//! week it works, which services it talks to, and which reading (if any) it reports.
//!
//! Invariants: each profile's daily rhythm table averages exactly 1 over the 1440 minutes
//! of a day (so on weekdays a fleet's mean rate is the configured rate); a weekend factor
//! only ever lowers it; the fleet mix is apportioned exactly (largest remainder), so even a
//! 10-device fleet has every profile it can; device names are unique.

use super::net::v4;
use super::services::*;

/// The kinds of device in the synthetic fleet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Web/app servers behind load balancers (VMs and containers): busy, business-hours peak.
    WebServer,
    /// Database servers: answer the web tier, replicate, back up at night.
    Database,
    /// Batch/stream workers (containers): Kafka, object store, night-time jobs.
    BatchWorker,
    /// IoT/telemetry sensors: report a reading on a fixed period, around the clock.
    Sensor,
    /// Office workstations: proxy/web, file shares, mail; office hours, quiet weekends.
    Workstation,
}

/// How a profile's arrivals are spaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arrivals {
    /// Exponential gaps at the rhythm-modulated rate.
    Poisson,
    /// A fixed reporting period with a little jitter.
    Periodic,
}

impl Profile {
    pub const ALL: [Profile; 5] = [
        Profile::WebServer,
        Profile::Database,
        Profile::BatchWorker,
        Profile::Sensor,
        Profile::Workstation,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::WebServer => "web_server",
            Profile::Database => "database",
            Profile::BatchWorker => "batch_worker",
            Profile::Sensor => "sensor",
            Profile::Workstation => "workstation",
        }
    }

    /// Share of the fleet.
    pub(crate) fn fleet_share(self) -> f64 {
        [0.25, 0.08, 0.15, 0.27, 0.25][self.index()]
    }

    /// Relative busyness (events per minute, before scaling to the configured rate).
    pub(crate) fn relative_rate(self) -> f64 {
        [2.0, 1.5, 0.8, 1.0, 0.6][self.index()]
    }

    /// Rate multiplier on Saturdays and Sundays.
    pub(crate) fn weekend_factor(self) -> f64 {
        [0.8, 0.85, 1.0, 1.0, 0.12][self.index()]
    }

    pub(crate) fn arrivals(self) -> Arrivals {
        match self {
            Profile::Sensor => Arrivals::Periodic,
            _ => Arrivals::Poisson,
        }
    }

    /// The services a device of this profile uses: (service, weight, distinct peers).
    pub(crate) fn services(self) -> &'static [(usize, f64, usize)] {
        match self {
            Profile::WebServer => &[
                (S_LB, 40.0, 2),
                (S_DB_CLIENT, 22.0, 2),
                (S_CACHE, 15.0, 1),
                (S_DNS, 8.0, 2),
                (S_SYSLOG, 4.0, 1),
                (S_METRICS, 2.0, 1),
                (S_EXT_CLOUD, 1.5, 2),
                (S_NTP, 0.5, 1),
                (S_ICMP, 0.4, 1),
                (S_EXT_UPDATE, 0.3, 1),
            ],
            Profile::Database => &[
                (S_DB_SERVER, 55.0, 4),
                (S_REPLICATION, 5.0, 1),
                (S_DNS, 5.0, 1),
                (S_SYSLOG, 4.0, 1),
                (S_METRICS, 3.0, 1),
                (S_LDAP, 1.0, 1),
                (S_OBJECTS, 0.8, 1),
                (S_NTP, 0.5, 1),
                (S_EXT_UPDATE, 0.2, 1),
            ],
            Profile::BatchWorker => &[
                (S_KAFKA, 30.0, 3),
                (S_OBJECTS, 20.0, 1),
                (S_DB_CLIENT, 15.0, 1),
                (S_DNS, 10.0, 2),
                (S_CACHE, 5.0, 1),
                (S_METRICS, 4.0, 1),
                (S_SYSLOG, 3.0, 1),
                (S_EXT_CLOUD, 2.0, 2),
                (S_EXT_REGISTRY, 0.6, 1),
                (S_NTP, 0.3, 1),
            ],
            Profile::Sensor => &[
                (S_MQTT, 80.0, 1),
                (S_EXT_IOT, 6.0, 1),
                (S_EXT_DNS, 4.0, 1),
                (S_DNS, 2.0, 1),
                (S_EXT_NTP, 2.5, 1),
                (S_ICMP, 1.5, 1),
                (S_EXT_UPDATE, 0.2, 1),
            ],
            Profile::Workstation => &[
                (S_PROXY, 30.0, 1),
                (S_EXT_WEB, 25.0, 8),
                (S_DNS, 12.0, 2),
                (S_SMB, 8.0, 1),
                (S_MAIL, 5.0, 1),
                (S_LDAP, 4.0, 1),
                (S_KERBEROS, 4.0, 1),
                (S_EXT_MEDIA, 3.0, 2),
                (S_EXT_UPDATE, 2.0, 2),
                (S_NTP, 0.5, 1),
                (S_ICMP, 0.5, 1),
            ],
        }
    }

    /// Address block of the profile's own hosts: (first /24, number of /24s).
    pub(crate) fn address_block(self) -> (u32, u32) {
        match self {
            Profile::WebServer => (v4(10, 16, 0, 0), 4096),
            Profile::Database => (v4(10, 32, 0, 0), 4096),
            Profile::BatchWorker => (v4(172, 20, 0, 0), 1024),
            Profile::Sensor => (v4(192, 168, 16, 0), 240),
            Profile::Workstation => (v4(10, 64, 0, 0), 4096),
        }
    }

    /// Unnormalised activity at hour `h` (0..24) of a weekday.
    fn curve(self, h: f64) -> f64 {
        let g = |center: f64, width: f64| {
            let d = (h - center).rem_euclid(24.0);
            let d = d.min(24.0 - d);
            (-0.5 * (d / width) * (d / width)).exp()
        };
        match self {
            Profile::WebServer => 0.35 + 1.0 * g(14.0, 4.5) + 0.3 * g(20.5, 2.0),
            Profile::Database => 0.6 + 0.6 * g(14.0, 5.0) + 0.5 * g(2.0, 1.5),
            Profile::BatchWorker => 0.5 + 1.8 * g(2.5, 1.5) + 0.3 * g(13.0, 3.0),
            Profile::Sensor => 1.0,
            Profile::Workstation => 0.06 + 1.5 * g(10.5, 1.8) + 1.3 * g(15.0, 2.0),
        }
    }
}

/// Per-profile rate multipliers by minute of day (mean 1) and day of week.
#[derive(Debug)]
pub(crate) struct Rhythm {
    table: Vec<f32>,
}

pub(crate) const MINUTE_MS: i64 = 60_000;
pub(crate) const DAY_MS: i64 = 86_400_000;

impl Rhythm {
    pub fn new() -> Self {
        let mut table = Vec::with_capacity(5 * 1440);
        for p in Profile::ALL {
            let day: Vec<f64> = (0..1440).map(|m| p.curve((m as f64 + 0.5) / 60.0)).collect();
            let mean = day.iter().sum::<f64>() / 1440.0;
            table.extend(day.iter().map(|v| (v / mean) as f32));
        }
        Rhythm { table }
    }

    /// The rate multiplier of profile `p` at time `ts`, for a device whose day is shifted by
    /// `shift` minutes.
    #[inline]
    pub fn at(&self, p: Profile, ts: i64, shift: i32) -> f64 {
        let minute = (ts.div_euclid(MINUTE_MS) + shift as i64).rem_euclid(1440) as usize;
        let m = self.table[p.index() * 1440 + minute] as f64;
        // 1970-01-01 was a Thursday: weekday 0 = Monday.
        let weekday = (ts.div_euclid(DAY_MS) + 3).rem_euclid(7);
        if weekday >= 5 {
            m * p.weekend_factor()
        } else {
            m
        }
    }
}

/// Number of devices of each profile in a fleet of `n` (largest remainder apportionment).
pub(crate) fn fleet_counts(n: u32) -> [u32; 5] {
    let quotas: Vec<f64> = Profile::ALL.iter().map(|p| p.fleet_share() * n as f64).collect();
    let mut counts: Vec<u32> = quotas.iter().map(|q| q.floor() as u32).collect();
    let mut order: Vec<usize> = (0..5).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (quotas[a] - quotas[a].floor(), quotas[b] - quotas[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    let mut left = n - counts.iter().sum::<u32>();
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        counts[i] += 1;
        left -= 1;
    }
    [counts[0], counts[1], counts[2], counts[3], counts[4]]
}

/// Which reading a device reports in `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MetricKind {
    /// Degrees Celsius; physical range −40..125 (sensor spec).
    TemperatureC,
    /// Relative humidity, 0..100 %.
    HumidityPct,
    /// CPU load, 0..100 %.
    CpuPct,
    /// Work queue depth, a non-negative count.
    QueueDepth,
}

impl MetricKind {
    pub fn name(self) -> &'static str {
        match self {
            MetricKind::TemperatureC => "temperature_c",
            MetricKind::HumidityPct => "humidity_pct",
            MetricKind::CpuPct => "cpu_pct",
            MetricKind::QueueDepth => "queue_depth",
        }
    }

    /// Physical range of valid readings.
    pub fn range(self) -> (f64, f64) {
        match self {
            MetricKind::TemperatureC => (-40.0, 125.0),
            MetricKind::HumidityPct | MetricKind::CpuPct => (0.0, 100.0),
            MetricKind::QueueDepth => (0.0, f64::INFINITY),
        }
    }

    /// Decimal places the device reports.
    pub fn decimals(self) -> u8 {
        match self {
            MetricKind::TemperatureC => 2,
            MetricKind::HumidityPct | MetricKind::CpuPct => 1,
            MetricKind::QueueDepth => 0,
        }
    }

    /// Impossible readings a faulty device sends (overflow sentinels, sign errors).
    pub fn impossible(self) -> &'static [f64] {
        match self {
            MetricKind::TemperatureC => &[1e6, 6553.5, -999.0, -3276.8],
            MetricKind::HumidityPct => &[1e6, 6553.5, -12.5, 150.0],
            MetricKind::CpuPct => &[1e6, 6553.5, -5.0, 400.0],
            MetricKind::QueueDepth => &[-1.0, -4096.0, 4_294_967_295.0, 1e12],
        }
    }
}

/// The reading a new device of profile `p` reports, given a uniform draw `u`.
pub(crate) fn metric_for(p: Profile, u: f64) -> Option<MetricKind> {
    match p {
        Profile::Sensor if u < 0.6 => Some(MetricKind::TemperatureC),
        Profile::Sensor => Some(MetricKind::HumidityPct),
        Profile::Database if u < 0.7 => Some(MetricKind::CpuPct),
        Profile::WebServer if u < 0.4 => Some(MetricKind::CpuPct),
        Profile::BatchWorker if u < 0.8 => Some(MetricKind::QueueDepth),
        _ => None,
    }
}

/// The device name: `vm-000123`, `ctr-000045`, `host-0007`, `sensor-0012`.
pub(crate) fn device_name(p: Profile, container: bool, serial: &mut [u32; 4]) -> String {
    let (slot, prefix, width) = match p {
        Profile::WebServer if container => (1, "ctr", 6),
        Profile::WebServer | Profile::Database => (0, "vm", 6),
        Profile::BatchWorker => (1, "ctr", 6),
        Profile::Workstation => (2, "host", 4),
        Profile::Sensor => (3, "sensor", 4),
    };
    serial[slot] += 1;
    format!("{prefix}-{:0width$}", serial[slot], width = width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rhythm_means_one_and_fleet_mix_is_exact() {
        let r = Rhythm::new();
        let monday = 1_767_571_200_000; // 2026-01-05T00:00:00Z
        for p in Profile::ALL {
            let mean: f64 = (0..1440).map(|m| r.at(p, monday + m * MINUTE_MS, 0)).sum::<f64>() / 1440.0;
            assert!((mean - 1.0).abs() < 1e-4, "{p:?} {mean}");
        }
        let saturday = monday + 5 * DAY_MS + 11 * 3_600_000;
        assert!(r.at(Profile::Workstation, saturday, 0) < 0.5);
        assert_eq!(fleet_counts(10), [3, 1, 1, 3, 2]);
        assert_eq!(fleet_counts(1000).iter().sum::<u32>(), 1000);
        assert_eq!(fleet_counts(1).iter().sum::<u32>(), 1);
        let mut serial = [0; 4];
        assert_eq!(device_name(Profile::Sensor, false, &mut serial), "sensor-0001");
        assert_eq!(device_name(Profile::Database, false, &mut serial), "vm-000001");
    }
}
