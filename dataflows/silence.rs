//! `silence` (denial of service): a device that was active goes quiet.
//!
//! Invariant: fires at the tick where the device's short window empties while its long
//! window still shows it was active (so only the frontier passing proves the silence), and
//! closes when an event arrives or when the long window forgets the device ever was active.

use serde::{Deserialize, Serialize};

use crate::detect::{Anomaly, Detected, DetectorContext, Real, Severity, TypedDetector};

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Quiet window: the sliding window that must be empty (nearest maintained length).
    pub quiet: String,
    /// Events the device must have had in the longest window to count as active.
    pub min_events: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            quiet: "5m".into(),
            min_events: 20,
        }
    }
}

pub struct Silence;

impl TypedDetector for Silence {
    type Params = Params;
    const NAME: &'static str = "silence";
    const DESCRIPTION: &'static str = "denial of service: an active device goes quiet";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        (
            "quiet",
            "how long without events counts as silence (nearest maintained window)",
        ),
        (
            "min_events",
            "events in the longest window for the device to count as active",
        ),
    ];

    fn check(params: &Params) -> Result<(), (String, String)> {
        humantime::parse_duration(&params.quiet)
            .map_err(|e| ("quiet".to_string(), format!("`{}`: {e}", params.quiet)))?;
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, params: &Params) -> Detected<'s> {
        let quiet_ms = humantime::parse_duration(&params.quiet)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(300_000);
        let quiet = ctx.windows.nearest(quiet_ms);
        let long = ctx.windows.longest();
        let quiet_len = ctx.windows.lens_ms[quiet];
        let min_events = params.min_events;
        let anomalies = ctx.states.clone().flat_map(move |(device, state)| {
            let q = &state.windows[quiet];
            let l = &state.windows[long];
            (q.count == 0 && l.count >= min_events).then(|| {
                let score = (l.count as f64 / (2.0 * min_events as f64)).min(1.0);
                Anomaly {
                    detector: Silence::NAME.into(),
                    device: device.clone(),
                    tick: 0,
                    window_ms: Some(quiet_len),
                    score: Real(score),
                    severity: Severity::from_score(score),
                    reason: format!(
                        "no events for {}; {} events in the window before",
                        humantime::format_duration(std::time::Duration::from_millis(quiet_len)),
                        l.count
                    ),
                    evidence: vec![
                        ("events_long".into(), Real(l.count as f64)),
                        ("last_seen_ms".into(), Real(state.last_seen_ms as f64)),
                    ],
                }
            })
        });
        Detected {
            anomalies,
            scores: None,
        }
    }
}
