//! The `window_stats` timely operator: per-device sliding windows for every device, driven
//! by the input frontier, emitting a differential collection of `(device, DeviceWindows)`
//! (each state a handle into the worker's [`StateStore`], see [`super::state_store`]) and the
//! rows of closed tumbling windows — and the host of every detector's per-device
//! logic ([`crate::detect::keyed`]): one exchange per event, all per-device work where the
//! device's events already are.
//!
//! Invariants: events arrive exchanged by device hash (the same placement differential's
//! arrangements use), each tagged with its tick, never below the stream's frontier. A tick is
//! processed only once the input frontier has passed it, ticks in increasing order, and for
//! each touched device expiries before insertions — so every emitted state is final and the
//! accumulated output at `T` is `DeviceWindows(d, T)` for every device seen by `T`
//! (`docs/semantics.md`). After a tick's changes, each hosted logic steps every device that
//! has inputs for it at that tick (its events in [`crate::detect::keyed::event_order`], its new state, its rejected
//! records) or asked to be woken then, devices in slot order; rejected records arrive on a
//! second input, exchanged by device like the events. When the input is exhausted, the
//! remaining open tumbling periods are closed and written, but no collection change beyond the last event tick is emitted.
//! Work is cut into slices of at most `[server] work_slice_us` (between items: an expiry, an
//! event, a change, a row; a tick may span several activations): the worker answers queries
//! between operator runs. The capabilities stay at the unfinished tick, so downstream sees a
//! tick complete only once all of it was emitted. The work on ticks itself is in
//! [`super::worker_state`].

use std::rc::Rc;
use std::time::{Duration, Instant};

use differential_dataflow::hashable::Hashable;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;

use super::device_keys::DeviceKey;
use super::state_store::{StateRef, StateStore};
use super::stats::WindowRow;
use super::worker_state::WindowState;
use crate::config::{Config, NetworkConfig};
use crate::detect::anomaly::{Anomaly, EventScore};
use crate::detect::keyed::{HostedLogics, PerDevice};
use crate::event::{DeviceId, Event};

/// A change of the window-stats collection: `((device, state), tick, diff)`, the device its
/// key on the worker and the state a handle into the worker's [`StateStore`] (which keeps
/// both).
pub type WindowChange = ((DeviceKey, StateRef), u64, isize);

/// A change of the window-stats collection with its state read out of the store (what the
/// sinks are handed).
pub type StateChange = ((DeviceId, super::DeviceState), u64, isize);

/// The window layout the operator maintains.
#[derive(Clone, Debug)]
pub struct WindowSpec {
    /// Maintained window lengths in ticks, ascending.
    pub lens: Vec<u64>,
    /// The step of each window in ticks (1: it slides every tick).
    pub steps: Vec<u64>,
    /// Indices into `lens` of the tumbling windows.
    pub tumbling: Vec<usize>,
    pub tick_ms: u64,
    pub network: NetworkConfig,
    /// Longest the operator works in one activation (None: no bound). The worker answers
    /// queries between operator runs, so this bounds how long a query waits for this
    /// operator; work is split between items (an event, an expiry, a change, a row).
    pub work_slice: Option<Duration>,
}

impl WindowSpec {
    pub fn from_config(config: &Config) -> Self {
        let lens = config.maintained_windows_ticks();
        let tick_ms = config.tick_ms();
        let tumbling = config
            .windows
            .tumbling
            .iter()
            .map(|w| {
                lens.iter()
                    .position(|&l| l == w.0 / tick_ms)
                    .expect("tumbling lengths are maintained")
            })
            .collect();
        WindowSpec {
            lens,
            steps: config.window_steps_ticks(),
            tumbling,
            tick_ms,
            network: config.network.clone(),
            work_slice: (config.server.work_slice_us > 0).then(|| Duration::from_micros(config.server.work_slice_us)),
        }
    }
}

/// What a window operator holds, for metrics (set by the operator, read by its worker).
#[derive(Debug, Default)]
pub struct WindowGauges {
    pub devices: std::cell::Cell<usize>,
    /// Events in sliding windows plus events waiting for their tick.
    pub events: std::cell::Cell<usize>,
}

/// What the window operator produces: the window-stats collection's changes, the closed
/// tumbling rows, and the registry where detectors add per-device logic (whose reports and
/// scores come out of the same operator).
pub struct WindowOutputs<'s> {
    pub changes: StreamVec<'s, u64, WindowChange>,
    pub rows: StreamVec<'s, u64, WindowRow>,
    pub per_device: PerDevice<'s>,
}

/// Builds the operator over a stream of `(tick, event)` and the devices of rejected records
/// (`(device, tick, ms ahead)`, one per record as the reject input sends them; the ms by
/// which a record rejected as too far ahead ran ahead, 0 for any other).
pub fn window_stats<'s>(
    events: StreamVec<'s, u64, (u64, Event)>,
    rejects: StreamVec<'s, u64, (DeviceId, u64, u64)>,
    spec: WindowSpec,
    states: Rc<StateStore>,
    gauges: Rc<WindowGauges>,
) -> WindowOutputs<'s> {
    let scope = events.scope();
    let mut builder = OperatorBuilder::new("WindowStats".to_owned(), scope);
    let activator = scope.activator_for(builder.operator_info().address);
    let mut input = builder.new_input(events, Exchange::new(|(_, e): &(u64, Event)| e.device.hashed()));
    let mut reject_input = builder.new_input(rejects, Exchange::new(|(d, _, _): &(DeviceId, u64, u64)| d.hashed()));
    let (mut changes_out, changes) = builder.new_output::<Vec<WindowChange>>();
    let (mut rows_out, rows) = builder.new_output::<Vec<WindowRow>>();
    let (mut reports_out, reports) = builder.new_output::<Vec<((u32, Anomaly), u64, isize)>>();
    let (mut scores_out, scores) = builder.new_output::<Vec<(u32, EventScore)>>();
    let logics = HostedLogics::default();
    let per_device = PerDevice::new(logics.clone(), reports, scores);
    builder.build(move |initial: Vec<Capability<u64>>| {
        // One capability per output, held at the earliest time any may still emit.
        let mut caps: Option<Vec<Capability<u64>>> = Some(initial);
        let mut state = WindowState::new(spec, logics, states);
        let mut changes_buf = Vec::new();
        let mut rows_buf = Vec::new();
        move |frontiers: &[MutableAntichain<u64>]| {
            input.for_each(|_time, data| {
                state.pending_events += data.len();
                // Events come mostly in tick order: one look-up per run of a tick.
                let mut events = data.drain(..).peekable();
                while let Some((tick, event)) = events.next() {
                    let at_tick = state.pending.entry(tick).or_default();
                    at_tick.push(event);
                    while let Some((_, event)) = events.next_if(|(t, _)| *t == tick) {
                        at_tick.push(event);
                    }
                }
            });
            reject_input.for_each(|_time, data| {
                for (device, tick, ahead) in data.drain(..) {
                    state.pending_rejects.entry(tick).or_default().push((device, ahead));
                }
            });
            let Some(held) = caps.as_mut() else { return };
            let upper = frontiers.iter().filter_map(|f| f.frontier().first().copied()).min();
            // Sessions flush the (exchange) pushers when dropped, at the end of this call.
            let mut changes_session = changes_out.activate();
            let mut rows_session = rows_out.activate();
            let mut reports_session = reports_out.activate();
            let mut scores_session = scores_out.activate();
            let deadline = state.spec.work_slice.map(|slice| Instant::now() + slice);
            let mut yielded = false;
            while let Some(t) = state.next_tick(upper.is_some()) {
                match upper {
                    Some(u) if t >= u => break,
                    // A tick cut short keeps its rows in `current` (its period is already taken out
                    // of `periods`): it is finished before the operator lets go.
                    None if state.finished() => break,
                    _ => {}
                }
                // Once the input is exhausted only the tumbling periods are still written.
                let emit = upper.is_some() || !state.pending.is_empty() || !state.pending_rejects.is_empty();
                let done = state.process_tick(t, emit, &mut changes_buf, &mut rows_buf, deadline);
                if !changes_buf.is_empty() {
                    changes_session.give(&held[0], &mut changes_buf);
                    changes_buf.clear();
                }
                if !rows_buf.is_empty() {
                    rows_session.give(&held[1], &mut rows_buf);
                    rows_buf.clear();
                }
                if !state.host_out.reports.is_empty() {
                    reports_session.give(&held[2], &mut state.host_out.reports);
                    state.host_out.reports.clear();
                }
                if !state.host_out.scores.is_empty() {
                    scores_session.give(&held[3], &mut state.host_out.scores);
                    state.host_out.scores.clear();
                }
                // Bounded work per activation: the worker answers queries between operator
                // runs, so after the work slice the rest waits for the next run.
                if !done || deadline.is_some_and(|d| Instant::now() >= d) {
                    yielded = true;
                    activator.activate();
                    break;
                }
            }
            gauges.devices.set(state.devices());
            gauges.events.set(state.held + state.pending_events);
            match upper {
                None if yielded => {}
                None => {
                    caps = None;
                    state = WindowState::new(state.spec.clone(), state.logics.clone(), state.states.clone());
                }
                Some(u) => {
                    crate::tick_buffer::downgrade_to(held, crate::tick_buffer::hold_target(u, state.next_tick(true)))
                }
            }
        }
    });
    WindowOutputs {
        changes,
        rows,
        per_device,
    }
}
