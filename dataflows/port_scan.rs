//! `port_scan`: a device suddenly contacts many distinct destination ports — most of the
//! ports it used in the longest window appeared in the shortest one.
//!
//! Invariants: a pure function of the device's window state (distinct port counts of the
//! shortest and longest sliding windows); no memory of its own.

use serde::{Deserialize, Serialize};

use crate::detect::keyed::StateRule;
use crate::detect::{Threat, Anomaly, Detected, DetectorContext, Real, Severity, TypedDetector};
use crate::event::DeviceId;
use crate::window::DeviceWindows;

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Distinct destination ports in the shortest window that make a scan.
    pub min_ports: u32,
    /// Share of the longest window's distinct ports that must be in the shortest one.
    pub min_new_share: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_ports: 100,
            min_new_share: 0.5,
        }
    }
}

pub struct PortScan;

impl TypedDetector for PortScan {
    type Params = Params;
    const NAME: &'static str = "port_scan";
    const THREAT: Option<Threat> = Some(Threat::Reconnaissance);
    const DESCRIPTION: &'static str = "reconnaissance: a burst of distinct destination ports from one device";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        ("min_ports", "distinct destination ports in the shortest window that make a scan"),
        ("min_new_share", "share of the longest window's distinct ports seen in the shortest"),
    ];

    fn check(p: &Params) -> Result<(), (String, String)> {
        if !(0.0..=1.0).contains(&p.min_new_share) {
            return Err(("min_new_share".into(), "must lie in [0, 1]".into()));
        }
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, p: &Params) -> Detected<'s> {
        let (short, long) = (ctx.windows.shortest(), ctx.windows.longest());
        let window_ms = ctx.windows.lens_ms[short];
        let p = p.clone();
        let rule = StateRule(move |device: &DeviceId, _tick: u64, state: &DeviceWindows| {
            scan(&p, short, long, window_ms, device, state)
        });
        let (anomalies, _) = ctx.per_device.run(rule);
        Detected::reports(anomalies)
    }
}

/// The rule on one device's window state: a burst of distinct ports in the shortest window
/// (`short`), most of them new in the longest (`long`).
fn scan(p: &Params, short: usize, long: usize, window_ms: u64, device: &DeviceId, state: &DeviceWindows) -> Option<Anomaly> {
    let ports = state.windows[short].distinct_ports;
    let share = ports as f64 / state.windows[long].distinct_ports.max(1) as f64;
    (ports >= p.min_ports && share >= p.min_new_share).then(|| {
        let score = (1.0 - p.min_ports as f64 / (2.0 * ports as f64)).clamp(0.5, 1.0);
        Anomaly {
            detector: PortScan::NAME.into(),
            device: device.clone(),
            tick: 0,
            window_ms: Some(window_ms),
            score: Real(score),
            severity: Severity::from_score(score),
            reason: format!("{ports} distinct destination ports in the last minute(s); {:.0}% of the hour's", share * 100.0),
            evidence: vec![
                ("distinct_ports_short".into(), Real(ports as f64)),
                ("distinct_ports_long".into(), Real(state.windows[long].distinct_ports as f64)),
            ],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowStats;

    fn state(short_ports: u32, long_ports: u32) -> DeviceWindows {
        let w = |ports| WindowStats {
            distinct_ports: ports,
            ..Default::default()
        };
        DeviceWindows {
            last_seen_ms: 0,
            windows: [w(short_ports), w(long_ports)].into_iter().collect(),
        }
    }

    #[test]
    fn a_burst_of_new_ports_fires_a_steady_spread_does_not() {
        let p = Params::default();
        let d = DeviceId::from("d");
        let fires = |s, l| scan(&p, 0, 1, 60_000, &d, &state(s, l)).is_some();
        assert!(fires(150, 160), "150 ports in a minute, nearly all new");
        assert!(!fires(50, 60), "below min_ports");
        assert!(!fires(150, 1000), "a server that always uses many ports");
    }
}
