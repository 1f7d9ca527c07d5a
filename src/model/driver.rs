//! The model side of a run: the model input collection, the active model at start, and
//! retraining on an event-time schedule from a point-in-time snapshot gathered from every
//! worker of every process.
//!
//! Invariants:
//! - the model collection holds at most one model at any time: worker 0 inserts the
//!   registry's active version at time 0 and replaces it by retraction (`-old, +new` at one
//!   time); other workers only advance the input;
//! - with `retrain_every = E` (ticks), a model is trained at every boundary `s = kE − 1` the
//!   watermark passes: every worker reads its shard of the feature store as of `s` (`s` is
//!   complete and not yet compacted), sends it through a small gather dataflow whose exchange
//!   routes every record to worker 0 (timely's exchange crosses processes, so a cluster's
//!   trainer sees every device), and worker 0 trains on the union once the gather's frontier
//!   has passed the round. The new model enters the dataflow at `s + 1`, so which events it
//!   was trained on and which scores it produced depend only on event time, not on timing;
//!   late events applied after `s` are not in it;
//! - the model input is never ahead of `s + 1` while boundary `s` is pending (the pipeline
//!   advances through [`ModelDriver::due`] boundaries in order);
//! - a promotion made with `vigil models promote|rollback` while the engine runs is picked up
//!   by worker 0 within a second (wall clock) at the current input time.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::input::{Input as _, InputSession};
use differential_dataflow::VecCollection;
use timely::dataflow::operators::vec::input::Input as _;
use timely::dataflow::operators::{Exchange, Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle, Scope};

use super::{Frontier, Model, ModelConfig, ModelError, Registry, TrainingSet};
use crate::config::Config;
use crate::event::DeviceId;
use crate::feature_store::FeatureStore;
use crate::features::FeatureLayout;

/// The model input of the main dataflow: an input session and its collection.
pub fn model_collection<'s>(scope: Scope<'s, u64>) -> (InputSession<u64, Model, isize>, VecCollection<'s, u64, Model>) {
    scope.new_collection::<Model, isize>()
}

type Rows = Rc<RefCell<Vec<(DeviceId, Vec<f64>)>>>;

/// One worker's model driver.
pub struct ModelDriver {
    index: usize,
    config: ModelConfig,
    tick_ms: u64,
    layout: Arc<FeatureLayout>,
    registry: Registry,
    input: InputSession<u64, Model, isize>,
    /// The model in the collection (worker 0 only).
    active: Option<Model>,
    every: u64,
    next: Option<u64>,
    gather: InputHandleVec<u64, (DeviceId, Vec<f64>)>,
    gather_probe: ProbeHandle<u64>,
    gathered: Rows,
    last_poll: Instant,
    /// Versions trained by this run (worker 0).
    pub trained: Vec<u64>,
}

impl ModelDriver {
    /// Builds the gather dataflow (on every worker, right after the main dataflow) and, on
    /// worker 0, enters the registry's active model.
    pub fn new(
        worker: &mut timely::worker::Worker,
        config: &Config,
        mut input: InputSession<u64, Model, isize>,
    ) -> Result<Self, ModelError> {
        let index = worker.index();
        let gathered: Rows = Rc::new(RefCell::new(Vec::new()));
        let gather_probe = ProbeHandle::new();
        let sink = gathered.clone();
        let probe = gather_probe.clone();
        let gather = worker.dataflow::<u64, _, _>(|scope| {
            let (handle, stream) = scope.new_input::<(DeviceId, Vec<f64>)>();
            stream
                .exchange(|_| 0)
                .inspect(move |row: &(DeviceId, Vec<f64>)| sink.borrow_mut().push(row.clone()))
                .probe_with(&probe);
            handle
        });
        let registry = Registry::new(&config.model.registry);
        let mut active = None;
        if index == 0 {
            if let Some(model) = registry.active()? {
                tracing::info!(model = %model.summary(), registry = %registry.dir().display(), "active model");
                input.update_at(model.clone(), 0, 1);
                input.flush();
                active = Some(model);
            }
        }
        Ok(ModelDriver {
            index,
            tick_ms: config.tick_ms(),
            every: config.model.retrain_every.0 / config.tick_ms(),
            config: config.model.clone(),
            layout: Arc::new(FeatureLayout::new(config)),
            registry,
            input,
            active,
            next: None,
            gather,
            gather_probe,
            gathered,
            last_poll: Instant::now(),
            trained: Vec::new(),
        })
    }

    /// The next retraining boundary `s` with `s + 1 <= upto`, if one is due.
    pub fn due(&mut self, upto: u64) -> Option<u64> {
        if self.every == 0 {
            return None;
        }
        let next = *self
            .next
            .get_or_insert_with(|| (upto / self.every + 1) * self.every - 1);
        (next < upto).then_some(next)
    }

    /// Advances the model input (never past a pending boundary + 1).
    pub fn advance_to(&mut self, t: u64) {
        let cap = self.next.map_or(t, |n| t.min(n + 1));
        if cap > *self.input.time() {
            self.input.advance_to(cap);
            self.input.flush();
        }
    }

    /// Trains at boundary `s` (complete on this worker): every worker sends its shard; worker
    /// 0 trains on all of them, registers the version and (with `auto_promote`) enters it.
    pub fn retrain(&mut self, worker: &mut timely::worker::Worker, store: &mut FeatureStore, s: u64) {
        let shard: Vec<(DeviceId, Vec<f64>)> = store
            .read_at(s)
            .into_iter()
            .map(|(d, state)| {
                let v = self.layout.vector(&state);
                (d, v)
            })
            .collect();
        tracing::debug!(
            worker = self.index,
            tick = s,
            devices = shard.len(),
            "sending feature shard to the trainer"
        );
        if *self.gather.time() <= s {
            self.gather.advance_to(s);
        }
        for row in shard {
            self.gather.send(row);
        }
        self.gather.advance_to(s + 1);
        while self.gather_probe.less_than(&(s + 1)) {
            worker.step();
        }
        self.next = Some(s + self.every);
        if self.index != 0 {
            return;
        }
        let rows = std::mem::take(&mut *self.gathered.borrow_mut());
        let set = TrainingSet::new(
            self.layout.names().to_vec(),
            rows,
            Frontier {
                tick: Some(s),
                as_of_ms: ((s + 1) * self.tick_ms) as i64 - 1,
            },
        );
        match self.train_and_register(&set) {
            Ok(model) => {
                self.trained.push(model.version);
                if self.config.auto_promote {
                    self.replace(model, s + 1);
                }
            }
            Err(e) => tracing::warn!(tick = s, error = %e, "scheduled retraining failed; keeping the current model"),
        }
    }

    fn train_and_register(&self, set: &TrainingSet) -> Result<Model, ModelError> {
        super::train_and_register(set, &self.config, self.config.auto_promote).map(|r| r.model)
    }

    /// Replaces the model in the collection at time `at` (worker 0).
    fn replace(&mut self, model: Model, at: u64) {
        let at = at.max(*self.input.time());
        if let Some(old) = self.active.take() {
            self.input.update_at(old, at, -1);
        }
        self.input.update_at(model.clone(), at, 1);
        self.input.flush();
        self.active = Some(model);
    }

    /// Worker 0: picks up a promotion or rollback made in the registry (once a second).
    pub fn poll_registry(&mut self) {
        if self.index != 0 || self.last_poll.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last_poll = Instant::now();
        let wanted = match self.registry.index() {
            Ok(i) => i.active,
            Err(e) => {
                tracing::warn!(error = %e, "reading the model registry");
                return;
            }
        };
        if wanted.is_some() && wanted != self.active.as_ref().map(|m| m.version) {
            match self.registry.load(wanted.unwrap_or_default()) {
                Ok(model) => {
                    tracing::info!(model = %model.summary(), "registry promotion: replacing the model");
                    let at = *self.input.time();
                    self.replace(model, at);
                }
                Err(e) => tracing::warn!(error = %e, "loading the promoted model"),
            }
        }
    }
}
