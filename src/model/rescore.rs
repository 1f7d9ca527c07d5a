//! Scores every device against the current model, incrementally: the operator behind the
//! `kmeans` detector (and the per-device model score a query can read).
//!
//! Invariants: the output accumulated at a complete time `T` is exactly
//! `{ (device, score of state(device, T) under model(T)) }`, where `model(T)` is the model in
//! the model collection at `T` (the highest version if, transiently, there are several) —
//! empty while there is none. Changes are applied per time once both inputs' frontiers have
//! passed it; a state change re-scores that device only, a model change re-scores every
//! device of this worker, read from the features trace at that tick. The states are read
//! from the features arrangement (already placed by device), never copied: with no model
//! the operator holds nothing but the batches not yet passed; the tiny model collection is
//! broadcast to every worker.

use std::collections::BTreeMap;
use std::rc::Rc;

use foldhash::HashMap;
use std::sync::Arc;

use crate::tick_buffer::TickBuffer;
use compact_str::CompactString;
use differential_dataflow::operators::arrange::Arranged;
use differential_dataflow::trace::cursor::{Cursor, Navigable};
use differential_dataflow::trace::{SpanOf, TraceReader};
use differential_dataflow::{AsCollection, VecCollection};
use serde::{Deserialize, Serialize};
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::Broadcast;
use timely::progress::frontier::AntichainRef;

use super::Model;
use crate::detect::Real;
use crate::event::DeviceId;
use crate::feature_store::FeatureTrace;
use crate::features::FeatureLayout;
use crate::pause;
use crate::window::{DeviceWindows, StateRef, StateStore};

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
    fn score(&self, layout: &FeatureLayout, state: &DeviceWindows, detail_above: f64) -> DeviceScore {
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

/// One tick's changes: device states (handles into the worker's store) and models.
type TickChanges = (Vec<((DeviceId, StateRef), isize)>, Vec<(Model, isize)>);

/// A span of the features arrangement's batches.
type FeatureSpan = SpanOf<FeatureTrace>;

/// Calls `each(time, (device, state), diff)` for every update of `span` later than `after`
/// (the device's name from `states`: the span is keyed by the worker's device keys).
fn walk(
    span: &FeatureSpan,
    states: &StateStore,
    after: Option<u64>,
    mut each: impl FnMut(u64, (DeviceId, StateRef), isize),
) {
    let Some(batch) = &span.inner else { return };
    let keys = states.keys();
    let mut cursor = batch.cursor();
    while let Some(key) = cursor.get_key(batch) {
        let name = keys.name(*key);
        while let Some(val) = cursor.get_val(batch) {
            cursor.map_times(batch, |t, d| {
                if after.is_none_or(|a| *t > a) {
                    each(*t, (name.clone(), *val), *d);
                }
            });
            cursor.step_val(batch);
        }
        cursor.step_key(batch);
    }
}

/// `(device, score)` for every device under the current model, from the features
/// arrangement: while there is a model the operator reads the state changes out of the
/// arrangement's batches as they come; when a model arrives it reads every device's state at
/// that tick out of the trace. With no model it keeps nothing: no copy of the states.
pub fn score_devices<'s>(
    features: Arranged<'s, FeatureTrace>,
    states: Rc<StateStore>,
    models: VecCollection<'s, u64, Model>,
    layout: Arc<FeatureLayout>,
    detail_above: f64,
) -> VecCollection<'s, u64, (DeviceId, DeviceScore)> {
    let models = models.inner.broadcast();
    let mut trace = features.trace.clone();
    // Follows this operator's compaction: a state is looked up at a tick not yet passed.
    let hold = states.hold();
    features
        .stream
        .binary_frontier(models, Pipeline, Pipeline, "KMeansScore", move |_cap, _info| {
            let mut buffer: TickBuffer<TickChanges> = TickBuffer::default();
            // Batches that arrived while there was no model: read only if one arrives before
            // their times are passed (their updates after its tick), else dropped.
            let mut unread: Vec<FeatureSpan> = Vec::new();
            let mut models: BTreeMap<Model, isize> = BTreeMap::new();
            let mut current: Option<Current> = None;
            let mut emitted: HashMap<DeviceId, DeviceScore> = HashMap::default();
            move |(input1, frontier1), (input2, frontier2), output| {
                input1.for_each_stamp(|time, data| {
                    for spans in data {
                        for span in spans.drain(..).filter(|s| s.inner.is_some()) {
                            if current.is_some() {
                                buffer.stamp(&time);
                                walk(&span, &states, None, |t, change, diff| {
                                    buffer.at(t).0.push((change, diff))
                                });
                            } else {
                                unread.push(span);
                            }
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
                    let model_changed = !model_changes.is_empty();
                    for (m, diff) in model_changes {
                        let e = models.entry(m.clone()).or_insert(0);
                        *e += diff;
                        if *e == 0 {
                            models.remove(&m);
                        }
                    }
                    // The devices to score at `t`, with their state there (None: gone).
                    let mut touched: HashMap<DeviceId, Option<StateRef>> = HashMap::default();
                    let mut replaced = false;
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
                            replaced = true;
                        }
                    }
                    if replaced {
                        // Every device again: its state at `t` from the trace (which holds
                        // every batch through `t`: the frontier of its batches passed `t`).
                        if current.is_some() {
                            crate::feature_store::scan::live_states(&mut trace, &states, t, |live| {
                                for &(device, state) in live {
                                    touched.insert(device.clone(), Some(state));
                                }
                            });
                        }
                        for device in emitted.keys() {
                            touched.entry(device.clone()).or_insert(None);
                        }
                        // Batches not read while there was no model: their later updates
                        // come at their own ticks.
                        for span in unread.drain(..) {
                            walk(&span, &states, Some(t), |at, change, diff| {
                                buffer.at(at).0.push((change, diff))
                            });
                        }
                        tracing::debug!(
                            tick = t,
                            version = current.as_ref().map(|c| c.model.version),
                            devices = touched.len(),
                            "re-scoring every device against the new model"
                        );
                    } else if current.is_some() {
                        // Retractions first, so a device's old state goes before its new one.
                        state_changes.sort_by_key(|(_, diff)| *diff);
                        for ((device, state), diff) in state_changes {
                            if diff > 0 {
                                touched.insert(device, Some(state));
                            } else {
                                touched.entry(device).or_insert(None);
                            }
                        }
                    }
                    let mut touched: Vec<(DeviceId, Option<StateRef>)> = touched.into_iter().collect();
                    touched.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    for (n, (device, state)) in touched.into_iter().enumerate() {
                        // Waiting point queries are answered between devices.
                        pause::every(n, pause::every::DEVICES);
                        let new = match (&current, state) {
                            (Some(c), Some(state)) => Some(c.score(&layout, &states.get(state), detail_above)),
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
                // Every tick below `upper` is done: batches wholly below it are not needed
                // (an empty upper: the batch reaches to the end of time), and the trace is
                // read from `upper` on.
                match upper {
                    Some(u) => {
                        unread.retain(|s| s.upper().iter().all(|&b| b > u));
                        trace.set_logical_compaction(AntichainRef::new(&[u]));
                        trace.set_physical_compaction(AntichainRef::new(&[u]));
                        hold.advance(u);
                    }
                    None => {
                        unread.clear();
                        trace.set_logical_compaction(AntichainRef::new(&[]));
                        trace.set_physical_compaction(AntichainRef::new(&[]));
                        hold.advance(u64::MAX);
                    }
                }
            }
        })
        .as_collection()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use differential_dataflow::input::Input as _;
    use timely::dataflow::operators::Probe;
    use timely::dataflow::ProbeHandle;

    use super::*;
    use crate::config::Config;
    use crate::model::synth::fleet;
    use crate::model::{train, Frontier, TrainingSet};
    use crate::window::DeviceKey;
    use crate::window::DeviceState;

    type Output = Vec<((DeviceId, DeviceScore), u64, isize)>;

    /// A state change: `(device, old, new)`.
    type Change = (DeviceId, Option<DeviceState>, Option<DeviceState>);

    /// Per tick: state changes and the model entering (Some) or leaving (None).
    struct Script {
        ticks: Vec<(Vec<Change>, Option<Option<Model>>)>,
    }

    fn model(states: &[(DeviceId, DeviceState)], layout: &FeatureLayout, version: u64) -> Model {
        let rows = states.iter().map(|(d, s)| (d.clone(), layout.vector(s))).collect();
        let frontier = Frontier {
            tick: Some(0),
            as_of_ms: 999,
        };
        let mut m = train(
            &TrainingSet::new(layout.names().to_vec(), rows, frontier),
            &Config::default().model,
        )
        .expect("trains");
        m.version = version;
        m
    }

    fn script(layout: &FeatureLayout) -> Script {
        let windows_ms: Vec<u64> = Config::default()
            .maintained_windows_ticks()
            .iter()
            .map(|l| l * 1000)
            .collect();
        let a = fleet(200, 5, &windows_ms, 1);
        let b = fleet(200, 5, &windows_ms, 2);
        let (v1, v2) = (model(&a, layout, 1), model(&b, layout, 2));
        let state = |set: &[(DeviceId, DeviceState)], i: usize| Some(set[i].1.clone());
        let name = |i: usize| a[i].0.clone();
        let ins = |range: std::ops::Range<usize>| range.map(|i| (name(i), None, state(&a, i))).collect::<Vec<_>>();
        let a_to_b =
            |range: std::ops::Range<usize>| range.map(|i| (name(i), state(&a, i), state(&b, i))).collect::<Vec<_>>();
        let mut t2 = a_to_b(50..100);
        t2.extend(ins(180..190));
        Script {
            ticks: vec![
                (ins(0..150), None),
                (
                    {
                        let mut c = a_to_b(0..50);
                        c.extend(ins(150..180));
                        c
                    },
                    None,
                ),
                // The model arrives with state changes at its tick.
                (t2, Some(Some(v1.clone()))),
                (
                    (100..120)
                        .map(|i| (name(i), state(&a, i), None))
                        .chain((0..10).map(|i| (name(i), state(&b, i), state(&a, i))))
                        .collect(),
                    None,
                ),
                (ins(190..200), Some(Some(v2.clone()))),
                (a_to_b(120..140), Some(None)),
                (a_to_b(140..150), None),
                (a_to_b(150..160), Some(Some(v1))),
            ],
        }
    }

    /// What the output must accumulate to at `tick`: every present device scored under the
    /// model of that tick.
    fn expected(script: &Script, layout: &FeatureLayout, tick: usize) -> Vec<(DeviceId, DeviceScore)> {
        let mut states: std::collections::BTreeMap<DeviceId, DeviceState> = Default::default();
        let mut current: Option<Model> = None;
        for (changes, m) in &script.ticks[..=tick] {
            for (d, _, new) in changes {
                match new {
                    Some(s) => states.insert(d.clone(), s.clone()),
                    None => states.remove(d),
                };
            }
            if let Some(m) = m {
                current = m.clone();
            }
        }
        let Some(m) = current else { return Vec::new() };
        let c = Current {
            mapping: m.mapping(layout.names()),
            model: Arc::new(m),
        };
        states
            .iter()
            .map(|(d, s)| (d.clone(), c.score(layout, s, 0.5)))
            .collect()
    }

    /// Runs the script, stepping the dataflow after every tick or only at the end.
    fn run(script: Script, layout: Arc<FeatureLayout>, step_each_tick: bool) -> (Script, Output) {
        timely::execute_directly(move |worker| {
            let out: Rc<RefCell<Output>> = Rc::default();
            let sink = out.clone();
            let probe = ProbeHandle::new();
            // Every state of the script in the store once, never freed: a state is known by
            // its address.
            let store = StateStore::new();
            let mut handles: HashMap<usize, StateRef> = HashMap::default();
            let mut handle = |s: &DeviceState| {
                *handles
                    .entry(s.address())
                    .or_insert_with(|| store.insert(DeviceWindows::clone(s)))
            };
            let (mut state_in, mut model_in) = worker.dataflow::<u64, _, _>(|scope| {
                let (state_in, states) = scope.new_collection::<(DeviceKey, StateRef), isize>();
                let (model_in, models) = scope.new_collection();
                score_devices(
                    crate::feature_store::arrange(states.inner),
                    store.clone(),
                    models,
                    layout.clone(),
                    0.5,
                )
                .inspect_batch(move |_t, batch| sink.borrow_mut().extend_from_slice(batch))
                .inner
                .probe_with(&probe);
                (state_in, model_in)
            });
            let mut model_now: Option<Model> = None;
            for (tick, (changes, m)) in script.ticks.iter().enumerate() {
                for (d, old, new) in changes {
                    let key = store.keys_mut().key_or_insert(d).0;
                    if let Some(old) = old {
                        state_in.remove((key, handle(old)));
                    }
                    if let Some(new) = new {
                        state_in.insert((key, handle(new)));
                    }
                }
                if let Some(m) = m {
                    if let Some(old) = model_now.take() {
                        model_in.remove(old);
                    }
                    if let Some(new) = m {
                        model_in.insert(new.clone());
                    }
                    model_now = m.clone();
                }
                let next = tick as u64 + 1;
                state_in.advance_to(next);
                model_in.advance_to(next);
                state_in.flush();
                model_in.flush();
                if step_each_tick {
                    while probe.less_than(&next) {
                        worker.step();
                    }
                }
            }
            state_in.close();
            model_in.close();
            while worker.step() {}
            let out = out.borrow().clone();
            (script, out)
        })
    }

    #[test]
    fn scores_accumulate_to_every_present_device_under_the_model_of_each_tick() {
        let layout = Arc::new(FeatureLayout::new(&Config::default()));
        for step_each_tick in [true, false] {
            let (script, out) = run(script(&layout), layout.clone(), step_each_tick);
            assert!(!out.is_empty());
            for tick in 0..script.ticks.len() {
                let mut acc: std::collections::BTreeMap<(DeviceId, DeviceScore), isize> = Default::default();
                for ((d, s), t, diff) in &out {
                    if *t <= tick as u64 {
                        *acc.entry((d.clone(), s.clone())).or_default() += diff;
                    }
                }
                acc.retain(|_, n| *n != 0);
                assert!(acc.values().all(|n| *n == 1), "tick {tick}: {acc:?}");
                let got: Vec<(DeviceId, DeviceScore)> = acc.into_keys().collect();
                let want = expected(&script, &layout, tick);
                assert_eq!(
                    got.len(),
                    want.len(),
                    "tick {tick}, stepping each tick: {step_each_tick}"
                );
                assert!(got == want, "tick {tick}, stepping each tick: {step_each_tick}");
            }
        }
    }
}
