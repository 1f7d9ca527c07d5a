//! The training benchmark (`vigil bench-train`): retraining time on N synthetic devices and
//! the cost of re-scoring every device in the dataflow after a model change.
//!
//! Invariant: measures only; the numbers are wall-clock on this machine, one worker thread
//! for the dataflow part (the trainer runs on worker 0 in a real run, too).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use differential_dataflow::input::Input as _;
use serde::Serialize;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use super::rescore::score_devices;
use super::synth::fleet;
use super::{train, Frontier, ModelError, TrainingSet};
use crate::config::Config;
use crate::event::DeviceId;
use crate::features::FeatureLayout;
use crate::window::{DeviceKey, DeviceState, DeviceWindows, StateRef, StateStore};

/// What the benchmark reports.
#[derive(Clone, Debug, Serialize)]
pub struct TrainBench {
    pub devices: usize,
    pub features: usize,
    pub k: u64,
    /// Feature vectors of every device from their window states.
    pub vectors_ms: f64,
    /// `train`: standardize, k-means, spreads (the retraining time).
    pub train_ms: f64,
    pub silhouette: f64,
    /// Dataflow: first scoring of every device (states and model enter together).
    pub initial_score_ms: f64,
    /// Dataflow: a new model version replaces the old one; every device is re-scored.
    pub model_change_ms: f64,
    /// Output changes (retractions + insertions) caused by the model change.
    pub model_change_updates: u64,
    /// Dataflow: 1% of the devices change state under the same model.
    pub state_change_ms: f64,
    pub state_change_updates: u64,
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

/// Runs the benchmark over `devices` synthetic devices.
pub fn run(devices: usize, config: &Config) -> Result<TrainBench, ModelError> {
    let tick = config.tick_ms();
    let windows_ms: Vec<u64> = config.maintained_windows_ticks().iter().map(|l| l * tick).collect();
    let layout = Arc::new(FeatureLayout::new(config));
    let states = fleet(devices, devices / 1000, &windows_ms, 1);
    let t = Instant::now();
    let rows: Vec<(DeviceId, Vec<f64>)> = states.iter().map(|(d, s)| (d.clone(), layout.vector(s))).collect();
    let vectors_ms = ms(t);
    let frontier = Frontier {
        tick: Some(0),
        as_of_ms: tick as i64 - 1,
    };
    let t = Instant::now();
    let set = TrainingSet::new(layout.names().to_vec(), rows, frontier.clone());
    let mut v1 = train(&set, &config.model)?;
    let train_ms = ms(t);
    v1.version = 1;
    // A second version, trained on a different fleet.
    let other = fleet(devices, 0, &windows_ms, 2);
    let rows2 = other.iter().map(|(d, s)| (d.clone(), layout.vector(s))).collect();
    let mut v2 = train(
        &TrainingSet::new(layout.names().to_vec(), rows2, frontier),
        &config.model,
    )?;
    v2.version = 2;
    let changed: Vec<(DeviceId, DeviceState, DeviceState)> = states
        .iter()
        .zip(&other)
        .step_by(100)
        .map(|((d, s), (_, o))| (d.clone(), s.clone(), o.clone()))
        .collect();
    let summary = (v1.metrics.silhouette.0, v1.params.k, layout.names().len());
    let timings = timely::execute_directly(move |worker| {
        let updates = Rc::new(Cell::new(0u64));
        let counter = updates.clone();
        let probe = ProbeHandle::new();
        // Every state in the worker's store once (never freed), known by its address.
        let store = StateStore::new();
        let mut handles: foldhash::HashMap<usize, StateRef> = Default::default();
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
                0.95,
            )
            .inspect_batch(move |_t, batch| counter.set(counter.get() + batch.len() as u64))
            .inner
            .probe_with(&probe);
            (state_in, model_in)
        });
        let step_to = |worker: &mut timely::worker::Worker, t: u64| {
            while probe.less_than(&t) {
                worker.step();
            }
        };
        let t0 = Instant::now();
        let key = |d: &DeviceId| store.keys_mut().key_or_insert(d).0;
        for (d, s) in states {
            state_in.insert((key(&d), handle(&s)));
        }
        model_in.insert(v1.clone());
        state_in.advance_to(1);
        model_in.advance_to(1);
        state_in.flush();
        model_in.flush();
        step_to(worker, 1);
        let initial = ms(t0);
        updates.set(0);
        let t1 = Instant::now();
        model_in.remove(v1);
        model_in.insert(v2);
        state_in.advance_to(2);
        model_in.advance_to(2);
        state_in.flush();
        model_in.flush();
        step_to(worker, 2);
        let model_change = (ms(t1), updates.get());
        updates.set(0);
        let t2 = Instant::now();
        for (d, old, new) in changed {
            state_in.remove((key(&d), handle(&old)));
            state_in.insert((key(&d), handle(&new)));
        }
        state_in.advance_to(3);
        model_in.advance_to(3);
        state_in.flush();
        model_in.flush();
        step_to(worker, 3);
        (initial, model_change, (ms(t2), updates.get()))
    });
    let (initial, (model_change_ms, model_change_updates), (state_change_ms, state_change_updates)) = timings;
    Ok(TrainBench {
        devices,
        features: summary.2,
        k: summary.1,
        vectors_ms,
        train_ms,
        silhouette: summary.0,
        initial_score_ms: initial,
        model_change_ms,
        model_change_updates,
        state_change_ms,
        state_change_updates,
    })
}
