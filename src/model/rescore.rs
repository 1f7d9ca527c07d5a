//! Scores every device against the current model, incrementally: the operator behind the
//! `kmeans` detector (and the per-device model score a query can read).
//!
//! Invariants: the output accumulated at a complete time `T` is exactly
//! `{ (device, score of state(device, T) under model(T)) }`, where `model(T)` is the model in
//! the model collection at `T` (the highest version if, transiently, there are several) —
//! empty while there is none. Changes are applied per time once both inputs' frontiers have
//! passed it; a state change re-scores that device only, a model change re-scores every
//! device of this worker. States stay where they are (the window operator already placed
//! them by device); the tiny model collection is broadcast to every worker.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashSet};
use std::sync::Arc;

use crate::tick_buffer::TickBuffer;
use compact_str::CompactString;
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;

use super::Model;
use crate::detect::Real;
use crate::event::DeviceId;
use crate::features::FeatureLayout;
use crate::query::poll::{every, poll_every};
use crate::window::DeviceState;

/// A device's score under one model version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeviceScore {
    /// In [0, 1].
    pub score: Real,
    pub cluster: u32,
    /// Distance to the nearest centroid (standardized space).
    pub distance: Real,
    /// That cluster's spread.
    pub spread: Real,
    pub model_version: u64,
    /// When the score is at least the detail threshold: the features that differ most from
    /// the centroid, as standardized differences.
    pub top: Vec<(CompactString, Real)>,
}

struct Current {
    model: Arc<Model>,
    mapping: Option<Vec<Option<usize>>>,
}

impl Current {
    fn score(&self, layout: &FeatureLayout, state: &DeviceState, detail_above: f64) -> DeviceScore {
        let raw = layout.vector(state);
        let raw = match &self.mapping {
            Some(m) => self.model.remap(m, &raw),
            None => raw,
        };
        let s = self.model.score(&raw);
        let top = if s.score >= detail_above {
            self.model.top_deviations(&raw, s.cluster, 3)
        } else {
            Vec::new()
        };
        DeviceScore {
            score: Real(s.score),
            cluster: s.cluster as u32,
            distance: Real(s.distance),
            spread: self.model.spread[s.cluster],
            model_version: self.model.version,
            top,
        }
    }
}

/// One tick's changes: device states and models.
type TickChanges = (Vec<((DeviceId, DeviceState), isize)>, Vec<(Model, isize)>);

/// `(device, score)` for every device under the current model.
pub fn score_devices<'s>(
    states: VecCollection<'s, u64, (DeviceId, DeviceState)>,
    models: VecCollection<'s, u64, Model>,
    layout: Arc<FeatureLayout>,
    detail_above: f64,
) -> VecCollection<'s, u64, (DeviceId, DeviceScore)> {
    let models = models.inner.broadcast();
    states
        .inner
        .binary_frontier(models, Pipeline, Pipeline, "KMeansScore", move |_cap, _info| {
            let mut buffer: TickBuffer<TickChanges> = TickBuffer::default();
            let mut devices: HashMap<DeviceId, DeviceState> = HashMap::default();
            let mut models: BTreeMap<Model, isize> = BTreeMap::new();
            let mut current: Option<Current> = None;
            let mut emitted: HashMap<DeviceId, DeviceScore> = HashMap::default();
            move |(input1, frontier1), (input2, frontier2), output| {
                input1.for_each_stamp(|time, data| {
                    buffer.stamp(&time);
                    for batch in data {
                        for (d, at, diff) in batch.drain(..) {
                            buffer.at(at).0.push((d, diff));
                        }
                    }
                });
                input2.for_each_stamp(|time, data| {
                    buffer.stamp(&time);
                    for batch in data {
                        for (m, at, diff) in batch.drain(..) {
                            buffer.at(at).1.push((m, diff));
                        }
                    }
                });
                let upper = [
                    frontier1.frontier().first().copied(),
                    frontier2.frontier().first().copied(),
                ]
                .into_iter()
                .flatten()
                .min();
                let mut out = Vec::new();
                while let Some((t, (mut state_changes, model_changes))) = buffer.pop_complete(upper) {
                    // Retractions first, so a device's old state goes before its new one.
                    state_changes.sort_by_key(|(_, diff)| *diff);
                    // Without a model (and none arriving) nothing is scored: only the states
                    // are kept, for the first model.
                    let scoring = current.is_some() || !model_changes.is_empty();
                    let mut touched: HashSet<DeviceId> = HashSet::default();
                    for ((device, state), diff) in state_changes {
                        if diff < 0 {
                            if devices.get(&device) == Some(&state) {
                                devices.remove(&device);
                            }
                        } else {
                            devices.insert(device.clone(), state);
                        }
                        if scoring {
                            touched.insert(device);
                        }
                    }
                    let model_changed = !model_changes.is_empty();
                    for (m, diff) in model_changes {
                        let e = models.entry(m.clone()).or_insert(0);
                        *e += diff;
                        if *e == 0 {
                            models.remove(&m);
                        }
                    }
                    if model_changed {
                        let best = models
                            .iter()
                            .filter(|(_, n)| **n > 0)
                            .map(|(m, _)| m)
                            .max_by_key(|m| m.version);
                        let new = best.map(|m| Current {
                            mapping: m.mapping(layout.names()),
                            model: Arc::new(m.clone()),
                        });
                        if new.as_ref().map(|c| c.model.version) != current.as_ref().map(|c| c.model.version)
                            || new.as_ref().map(|c| &c.model) != current.as_ref().map(|c| &c.model)
                        {
                            current = new;
                            touched.extend(devices.keys().cloned());
                            touched.extend(emitted.keys().cloned());
                            tracing::debug!(
                                tick = t,
                                version = current.as_ref().map(|c| c.model.version),
                                devices = devices.len(),
                                "re-scoring every device against the new model"
                            );
                        }
                    }
                    let mut touched: Vec<DeviceId> = touched.into_iter().collect();
                    touched.sort();
                    for (n, device) in touched.into_iter().enumerate() {
                        // Waiting point queries are answered between devices.
                        poll_every(n, every::DEVICES);
                        let new = match (&current, devices.get(&device)) {
                            (Some(c), Some(state)) => Some(c.score(&layout, state, detail_above)),
                            _ => None,
                        };
                        let old = emitted.get(&device);
                        if old == new.as_ref() {
                            continue;
                        }
                        if let Some(old) = emitted.remove(&device) {
                            out.push(((device.clone(), old), t, -1));
                        }
                        if let Some(new) = new {
                            out.push(((device.clone(), new.clone()), t, 1));
                            emitted.insert(device, new);
                        }
                    }
                }
                if !out.is_empty() {
                    output.session(buffer.capability()).give_iterator(out.drain(..));
                }
                buffer.release(upper);
            }
        })
        .as_collection()
}
