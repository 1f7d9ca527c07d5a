//! `kmeans` (all three threats, model based): a device far from every k-means cluster of
//! the current model.
//!
//! Invariant: reports a device exactly while its score under the current model (see
//! `model::rescore`) is at least `threshold`; a new model version re-scores every device, so
//! anomalies open and close with the model as they do with the data. With no model in the
//! registry it reports nothing.

use serde::{Deserialize, Serialize};

use crate::detect::{Anomaly, Detected, DetectorContext, Real, Severity, TypedDetector};
use crate::model::rescore::score_devices;
use crate::pause::pausing;
use crate::event::DeviceId;
use crate::model::rescore::DeviceScore;

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Scores at or above this are anomalies.
    pub threshold: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params { threshold: 0.95 }
    }
}

pub struct KMeansDetector;

impl TypedDetector for KMeansDetector {
    type Params = Params;
    const NAME: &'static str = "kmeans";
    const DESCRIPTION: &'static str =
        "model based: a device far from every cluster of the current k-means model (score = distance / cluster spread)";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[(
        "threshold",
        "score in [0, 1] at or above which a device is reported (score = 1 - exp(-r²/2), r = distance / spread)",
    )];

    fn check(params: &Params) -> Result<(), (String, String)> {
        if !(0.0..=1.0).contains(&params.threshold) {
            return Err(("threshold".into(), "must lie in [0, 1]".into()));
        }
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, params: &Params) -> Detected<'s> {
        let threshold = params.threshold;
        let scores = score_devices(ctx.arranged.clone(), ctx.states.clone(), ctx.models.clone(), ctx.features.clone(), threshold);
        let anomalies = scores.clone().flat_map(pausing(move |(device, s): (DeviceId, DeviceScore)| {
            (s.score.0 >= threshold).then(|| {
                let ratio = s.distance.0 / s.spread.0;
                let why: Vec<&str> = s.top.iter().map(|(k, _)| k.trim_start_matches("z:")).collect();
                let mut evidence = vec![
                    ("score".into(), s.score),
                    ("cluster".into(), Real(s.cluster as f64)),
                    ("distance".into(), s.distance),
                    ("spread".into(), s.spread),
                    ("model_version".into(), Real(s.model_version as f64)),
                ];
                evidence.extend(s.top.iter().cloned());
                Anomaly {
                    detector: KMeansDetector::NAME.into(),
                    device,
                    tick: 0,
                    window_ms: None,
                    score: s.score,
                    severity: Severity::from_score(s.score.0),
                    reason: format!(
                        "{ratio:.1}× the spread of cluster {} (model v{}); most different: {}",
                        s.cluster,
                        s.model_version,
                        why.join(", ")
                    ),
                    evidence,
                }
            })
        }));
        Detected {
            anomalies,
            scores: None,
            model_scores: Some(scores),
        }
    }
}
