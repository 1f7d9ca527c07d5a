//! Driving a worker's dataflow forward: stepping until a tick is complete (answering queries
//! between steps), and the scheduled retrainings, which need the dataflow complete at their
//! tick first.
//!
//! Invariant: a worker that waits for the others parks for at most [`WAIT_PARK`] and looks at
//! its queries after every step, so waiting never holds a query up.

use std::time::Duration;

use timely::dataflow::{InputHandleVec, ProbeHandle};

use crate::event::{DeviceId, Event};
use crate::feature_store::FeatureStore;

/// Longest a worker waiting for the others parks when it has nothing to do (data and
/// progress from other workers wake it at once): it leaves the cores to the other workers and
/// the query server's threads instead of spinning.
const WAIT_PARK: Duration = Duration::from_millis(1);

/// The main dataflow's completed frontier (every tick below it is final; MAX when done).
pub(super) fn completed(probe: &ProbeHandle<u64>) -> u64 {
    probe.with_frontier(|f| f.first().copied()).unwrap_or(u64::MAX)
}

/// Steps the worker until the dataflow has completed every tick before `t`, answering
/// queries between steps.
pub(super) fn step_until(
    worker: &mut timely::worker::Worker,
    probe: &ProbeHandle<u64>,
    queries: &mut crate::query::Queries,
    t: u64,
) {
    worker.step();
    while probe.less_than(&t) {
        worker.step_or_park(Some(WAIT_PARK));
        queries.step(completed(probe));
    }
}

/// The event and reject inputs of the main dataflow.
pub(super) type RunInputs<'a> = (
    &'a mut InputHandleVec<u64, (u64, Event)>,
    &'a mut InputHandleVec<u64, (DeviceId, u64, u64)>,
);

/// Models: retrains at each schedule boundary `s < upto` as of `s` (the inputs go to `s + 1`
/// and the dataflow completes `s` first), then lets the model input follow to `upto`.
pub(super) fn retrain_due(
    worker: &mut timely::worker::Worker,
    probe: &ProbeHandle<u64>,
    (input, reject_input): RunInputs<'_>,
    models: &mut crate::model::driver::ModelDriver,
    store: &mut FeatureStore,
    queries: &mut crate::query::Queries,
    upto: u64,
) {
    while let Some(s) = models.due(upto) {
        if s + 1 > *input.time() {
            input.advance_to(s + 1);
            reject_input.advance_to(s + 1);
        }
        models.advance_to(s + 1);
        step_until(worker, probe, queries, s + 1);
        models.retrain(worker, store, s);
    }
    models.advance_to(upto);
}
