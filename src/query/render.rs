//! Turning the merged parts of a query into its JSON answer.
//!
//! Invariants: every answer carries `as_of_tick` and `as_of_ms` (the event time, inclusive,
//! that everything in it is consistent with); the order of every list is total and does not
//! depend on which worker sent which part, so the same query at the same tick gives the
//! same bytes on every process and for any number of workers.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::reader::{merge_top, sort_anomalies};
use super::{Answer, Part, Query};
use crate::config::Config;
use crate::detect::Anomaly;
use crate::features::{window_name, FeatureLayout};
use crate::model::rescore::DeviceScore;
use crate::window::DeviceWindows;

/// Renders answers (held by the origin worker).
pub struct Renderer {
    layout: Arc<FeatureLayout>,
    /// Length in ms of each maintained window, in `DeviceWindows::windows` order.
    lens_ms: Vec<u64>,
    tick_ms: u64,
}

impl Renderer {
    pub fn new(config: &Config, layout: Arc<FeatureLayout>) -> Self {
        Renderer {
            layout,
            lens_ms: config
                .maintained_windows_ticks()
                .iter()
                .map(|l| l * config.tick_ms())
                .collect(),
            tick_ms: config.tick_ms(),
        }
    }

    fn as_of(&self, tick: u64, map: &mut Map<String, Value>) {
        map.insert("as_of_tick".into(), tick.into());
        map.insert("as_of_ms".into(), ((tick as i64 + 1) * self.tick_ms as i64 - 1).into());
    }

    fn anomaly(&self, a: &Anomaly) -> Value {
        let mut v = a.to_json("open", 0, self.tick_ms);
        if let Some(m) = v.as_object_mut() {
            m.remove("op");
            m.remove("at_ms");
        }
        v
    }

    /// The answer to `query` read at `tick`, from every expected part.
    pub fn render(&self, query: &Query, tick: u64, parts: Vec<Part>) -> Answer {
        let mut map = Map::new();
        match query {
            Query::Device { device } => {
                let mut state: Option<Box<DeviceWindows>> = None;
                let mut anomalies = Vec::new();
                let mut model = None;
                for p in parts {
                    if let Part::Device {
                        state: s,
                        anomalies: a,
                        model: m,
                    } = p
                    {
                        state = state.or(s);
                        anomalies.extend(a);
                        model = model.or(m);
                    }
                }
                let Some(state) = state else {
                    let mut extra = Map::new();
                    self.as_of(tick, &mut extra);
                    return Answer::error(
                        404,
                        &format!("unknown device `{device}` (no event of it up to as_of_ms)"),
                        &[
                            ("device_id", device.as_str().into()),
                            ("as_of_tick", extra["as_of_tick"].clone()),
                            ("as_of_ms", extra["as_of_ms"].clone()),
                        ],
                    );
                };
                sort_anomalies(&mut anomalies);
                map.insert("device_id".into(), device.as_str().into());
                self.as_of(tick, &mut map);
                map.insert("last_seen_ms".into(), state.last_seen_ms.into());
                let windows: Vec<Value> = state
                    .windows
                    .iter()
                    .zip(&self.lens_ms)
                    .map(|(stats, &ms)| {
                        let mut w = stats.to_json();
                        if let Some(m) = w.as_object_mut() {
                            m.insert("window".into(), window_name(ms).into());
                            m.insert("window_ms".into(), ms.into());
                        }
                        w
                    })
                    .collect();
                map.insert("windows".into(), windows.into());
                let vector = self.layout.vector(&state);
                let features: Map<String, Value> = self
                    .layout
                    .names()
                    .iter()
                    .zip(&vector)
                    .map(|(n, v)| (n.clone(), json!(v)))
                    .collect();
                map.insert("features".into(), Value::Object(features));
                // The same values in vector order (names in that order: GET /features).
                map.insert("feature_vector".into(), json!(vector));
                map.insert(
                    "anomalies".into(),
                    anomalies.iter().map(|a| self.anomaly(a)).collect::<Vec<_>>().into(),
                );
                map.insert("model".into(), model.map_or(Value::Null, |m| model_json(&m)));
            }
            Query::History {
                device,
                window_ms,
                from_ms,
                to_ms,
                ..
            } => {
                let mut known = false;
                let mut rows = Vec::new();
                for p in parts {
                    if let Part::History { known: k, rows: r } = p {
                        known |= k;
                        rows.extend(r);
                    }
                }
                if !known {
                    return Answer::error(
                        404,
                        &format!("unknown device `{device}` (no event of it up to as_of_ms)"),
                        &[("device_id", device.as_str().into())],
                    );
                }
                rows.sort();
                map.insert("device_id".into(), device.as_str().into());
                self.as_of(tick, &mut map);
                map.insert("window".into(), window_name(*window_ms).into());
                map.insert("window_ms".into(), (*window_ms).into());
                map.insert("from_ms".into(), json!(from_ms));
                map.insert("to_ms".into(), json!(to_ms));
                map.insert(
                    "rows".into(),
                    rows.iter().map(|r| r.to_json()).collect::<Vec<_>>().into(),
                );
            }
            Query::Anomalies {
                detector,
                since_ms,
                min_severity,
                offset,
                limit,
            } => {
                let mut all: Vec<Anomaly> = Vec::new();
                for p in parts {
                    if let Part::Anomalies(a) = p {
                        all.extend(a);
                    }
                }
                sort_anomalies(&mut all);
                all.truncate(offset.saturating_add(*limit));
                all.drain(..(*offset).min(all.len()));
                self.as_of(tick, &mut map);
                map.insert("detector".into(), json!(detector));
                map.insert("since_ms".into(), json!(since_ms));
                map.insert("severity".into(), json!(min_severity.map(|s| s.as_str())));
                map.insert("offset".into(), (*offset).into());
                map.insert("count".into(), all.len().into());
                map.insert(
                    "anomalies".into(),
                    all.iter().map(|a| self.anomaly(a)).collect::<Vec<_>>().into(),
                );
            }
            Query::Top { feature, k } => {
                let lists: Vec<_> = parts
                    .into_iter()
                    .filter_map(|p| match p {
                        Part::Top(t) => Some(t),
                        _ => None,
                    })
                    .collect();
                let top = merge_top(lists, *k);
                self.as_of(tick, &mut map);
                let name = self.layout.names().get(*feature).cloned().unwrap_or_default();
                map.insert("feature".into(), name.into());
                map.insert("k".into(), (*k).into());
                map.insert(
                    "devices".into(),
                    top.iter()
                        .map(|(d, v)| json!({"device_id": d.as_str(), "value": v}))
                        .collect::<Vec<_>>()
                        .into(),
                );
            }
            // Answered by the trainer (query::models), never rendered here.
            Query::Retrain { .. } => {
                return Answer::error(500, "a retraining answer reached the renderer", &[]);
            }
        }
        Answer::json(200, &Value::Object(map))
    }
}

/// A device's model score as JSON: `{model_version, score, cluster, distance, spread,
/// top_deviations}` (top deviations only for scores at the detector's threshold or above).
fn model_json(s: &DeviceScore) -> Value {
    let top: Map<String, Value> = s
        .top
        .iter()
        .map(|(k, v)| (k.trim_start_matches("z:").to_string(), json!(v.0)))
        .collect();
    json!({
        "model_version": s.model_version,
        "score": s.score.0,
        "cluster": s.cluster,
        "distance": s.distance.0,
        "spread": s.spread.0,
        "top_deviations": top,
    })
}
