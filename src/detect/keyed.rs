//! Per-device detection logic hosted by the window operator: detectors that keep their own
//! state per device (a set of destinations a device has talked to, a robust baseline of its
//! readings, ...) run where the device's events already are, with no exchange of their own.
//!
//! A detector implements [`DeviceLogic`]: from what its device did at one tick (a
//! [`DeviceTick`]: its events, its new window state, its rejected records) it picks its own
//! inputs, and given the device's state and those inputs it says what holds for that device
//! now (a report, or nothing), may score inputs, and may ask to be woken at a later tick
//! without input (to let something expire). [`PerDevice::run`] registers a logic with the
//! host; the window operator (`crate::window::operator`) calls it.
//!
//! Invariants: a tick is processed only once the input frontier has passed it, ticks in
//! increasing order; a logic steps a device at a tick when it has inputs there or asked to
//! be woken there; its inputs of a tick are handed over sorted by [`DeviceLogic::order`] —
//! so the output does not depend on the number of workers nor on arrival order. The report
//! output is a differential collection that changes only when a device's report appears or
//! disappears (a report's content is fixed while it holds: episodes keep their first content
//! anyway), at the tick it changed. Nothing runs beyond the last input tick (wake-ups are
//! dropped once the input is exhausted). Memory: one `State` per device of this worker.

use std::cell::RefCell;
use std::rc::Rc;

use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::operators::vec::{Filter, Map};
use timely::dataflow::StreamVec;

use super::anomaly::{Anomaly, EventScore};
use crate::event::{DeviceId, Event};
use crate::window::DeviceWindows;

/// What a device's logic decided at one tick.
#[derive(Debug, Default)]
pub struct Step {
    /// What holds for the device now (None: nothing anomalous).
    pub report: Option<Anomaly>,
    /// Wake the device at this later tick even without input.
    pub wake_at: Option<u64>,
}

/// What one device did at one tick, as every hosted logic sees it.
#[derive(Clone, Copy, Debug)]
pub struct DeviceTick<'a> {
    pub device: &'a DeviceId,
    pub tick: u64,
    /// Its accepted events at this tick, in [`event_order`].
    pub events: &'a [Event],
    /// Its window state, when it changed at this tick (an event entered or one expired).
    pub state: Option<&'a DeviceWindows>,
    /// Its rejected records at this tick (those whose device could be read).
    pub rejects: u32,
    /// Of those, the records rejected as too far ahead of their partition's progress (or of
    /// the wall clock), and the most any of them ran ahead, in ms.
    pub ahead: u32,
    pub ahead_ms: u64,
}

/// Per-device detection logic, hosted by the window operator.
pub trait DeviceLogic: 'static {
    /// What the logic takes from a [`DeviceTick`] (events, rejects, states, ...).
    type Input: Clone;
    type State: 'static;
    /// Whether the logic writes per-input scores (`scores` of [`DeviceLogic::step`]).
    const SCORES: bool = false;
    /// Whether [`DeviceLogic::inputs`] takes anything from a tick with no events, rejects
    /// or wake-up (a change of the device's state alone: an event left a window). When not,
    /// the host does not ask for the logic's memory of a device at such a tick, about half
    /// of all the ticks a device changes at.
    const READS_STATE: bool = false;
    fn new_state(&self) -> Self::State;
    /// Asks the processor for the memory outside `state` that a step reads first (a
    /// queue's ends, ...): the device is stepped soon (see `crate::window::prefetch`).
    fn prefetch(&self, _state: &Self::State) {}
    /// Whether a device that will have `events` at a tick (with rejects or a wake-up, maybe)
    /// is likely to give this logic inputs there, so that its state is worth asking for
    /// ahead. A hint: a wrong answer costs a cache miss, never a result.
    fn worth_prefetching(&self, _events: &[Event]) -> bool {
        true
    }
    /// Appends this logic's inputs from what the device did at a tick (none: no step,
    /// unless the device asked to be woken then).
    fn inputs(&self, tick: &DeviceTick<'_>, out: &mut Vec<Self::Input>);
    /// The order in which a device's inputs of one tick are handed to [`DeviceLogic::step`].
    fn order(a: &Self::Input, b: &Self::Input) -> std::cmp::Ordering;
    /// Processes the device's inputs at `tick` (possibly none: a wake-up); per-input scores
    /// go to `scores`.
    fn step(
        &self,
        state: &mut Self::State,
        device: &DeviceId,
        tick: u64,
        inputs: &[Self::Input],
        scores: &mut Vec<EventScore>,
    ) -> Step;
}

/// A total order on events for deterministic processing within a tick.
pub fn event_order(a: &Event, b: &Event) -> std::cmp::Ordering {
    (
        a.ts_ms,
        a.dst_ip,
        a.dst_port,
        a.bytes_out,
        a.bytes_in,
        a.packets,
        a.duration_ms,
        a.src_ip,
    )
        .cmp(&(
            b.ts_ms,
            b.dst_ip,
            b.dst_port,
            b.bytes_out,
            b.bytes_in,
            b.packets,
            b.duration_ms,
            b.src_ip,
        ))
        .then_with(|| match (a.value, b.value) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            (x, y) => x.is_some().cmp(&y.is_some()),
        })
}

/// What a hosted logic writes at one tick: report changes `(logic, anomaly, diff)` and
/// scores `(logic, score)`.
#[derive(Default)]
pub struct HostOutput {
    pub reports: Vec<((u32, Anomaly), u64, isize)>,
    pub scores: Vec<(u32, EventScore)>,
}

/// A registered logic with its per-device states, as the host drives it (type-erased).
pub trait Hosted {
    /// Steps device `slot` at `view.tick` if the logic has inputs there or the device asked
    /// to be woken then (`woken`); returns the tick it asks to be woken at next.
    fn step(&mut self, slot: u32, view: &DeviceTick<'_>, woken: bool, out: &mut HostOutput) -> Option<u64>;

    /// Asks the processor for the memory of device `slot`'s state: it is stepped soon.
    /// `busy`: the device has events, rejects or a wake-up at the tick (otherwise only its
    /// state changed); `events`: its events there.
    fn prefetch(&self, _slot: u32, _busy: bool, _events: &[Event]) {}

    /// Asks for the memory device `slot`'s state points to (its slot is in cache by now).
    fn prefetch_state(&self, _slot: u32, _busy: bool, _events: &[Event]) {}
}

struct Slot<S> {
    state: S,
    /// Boxed: most devices never have a report, and an inline anomaly would cost every
    /// device of every logic its size.
    reported: Option<Box<Anomaly>>,
    wake: Option<u64>,
}

struct HostedLogic<L: DeviceLogic> {
    index: u32,
    logic: L,
    /// Whether its scores leave the operator (someone writes them).
    ship_scores: bool,
    /// Per device slot of the window operator (grown on demand).
    slots: Vec<Option<Slot<L::State>>>,
    inputs: Vec<L::Input>,
    scores: Vec<EventScore>,
}

impl<L: DeviceLogic> HostedLogic<L> {
    /// Whether a device may have inputs for the logic at a tick (`busy`: it has events,
    /// rejects or a wake-up there; otherwise only its state changed).
    fn stepped(&self, busy: bool, events: &[Event]) -> bool {
        L::READS_STATE || busy && self.logic.worth_prefetching(events)
    }
}

impl<L: DeviceLogic> Hosted for HostedLogic<L> {
    fn prefetch(&self, slot: u32, busy: bool, events: &[Event]) {
        if !self.stepped(busy, events) {
            return;
        }
        if let Some(s) = self.slots.get(slot as usize) {
            // Every line of the slot (a scorer's state spans several).
            crate::window::prefetch_value(s as *const Option<Slot<L::State>>);
        }
    }

    fn prefetch_state(&self, slot: u32, busy: bool, events: &[Event]) {
        if !self.stepped(busy, events) {
            return;
        }
        if let Some(Some(s)) = self.slots.get(slot as usize) {
            self.logic.prefetch(&s.state);
        }
    }

    fn step(&mut self, slot: u32, view: &DeviceTick<'_>, woken: bool, out: &mut HostOutput) -> Option<u64> {
        self.inputs.clear();
        self.logic.inputs(view, &mut self.inputs);
        let i = slot as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        let t = view.tick;
        // No input: a wake-up, stale unless it is the one the device asked for last (the
        // device's slot is read only then).
        if self.inputs.is_empty() && !(woken && self.slots[i].as_ref().is_some_and(|s| s.wake == Some(t))) {
            return None;
        }
        if self.inputs.len() > 1 {
            self.inputs.sort_by(L::order);
        }
        let logic = &self.logic;
        let s = self.slots[i].get_or_insert_with(|| Slot {
            state: logic.new_state(),
            reported: None,
            wake: None,
        });
        let step = logic.step(&mut s.state, view.device, t, &self.inputs, &mut self.scores);
        match (&s.reported, step.report) {
            (None, Some(mut a)) => {
                a.tick = t;
                out.reports.push(((self.index, a.clone()), t, 1));
                s.reported = Some(Box::new(a));
            }
            (Some(_), None) => {
                let old = s.reported.take().expect("reported");
                out.reports.push(((self.index, *old), t, -1));
            }
            _ => {}
        }
        if self.ship_scores {
            out.scores
                .extend(self.scores.drain(..).map(|score| (self.index, score)));
        } else {
            self.scores.clear();
        }
        s.wake = step.wake_at.filter(|&w| w > t);
        s.wake
    }
}

/// The logics registered with the host, in registration order.
pub type HostedLogics = Rc<RefCell<Vec<Box<dyn Hosted>>>>;

/// Where detectors register their per-device logic: the host's registry and its outputs.
#[derive(Clone)]
pub struct PerDevice<'s> {
    logics: HostedLogics,
    /// Whether per-input scores are written anywhere.
    scores_wanted: bool,
    /// Every hosted logic's report changes, tagged with the logic's index.
    reports: StreamVec<'s, u64, ((u32, Anomaly), u64, isize)>,
    /// Every hosted logic's scores, tagged with the logic's index.
    scores: StreamVec<'s, u64, (u32, EventScore)>,
}

impl<'s> PerDevice<'s> {
    /// A registry feeding the host operator whose outputs are `reports` and `scores`.
    pub fn new(
        logics: HostedLogics,
        reports: StreamVec<'s, u64, ((u32, Anomaly), u64, isize)>,
        scores: StreamVec<'s, u64, (u32, EventScore)>,
    ) -> Self {
        PerDevice {
            logics,
            scores_wanted: true,
            reports,
            scores,
        }
    }

    /// Whether per-input scores are written anywhere (when not, [`PerDevice::run`] returns
    /// none and the host drops them where they are made).
    pub fn want_scores(&mut self, wanted: bool) {
        self.scores_wanted = wanted;
    }

    /// Runs `logic` on every device; returns its reports (a collection) and, when it scores
    /// ([`DeviceLogic::SCORES`]) and scores are wanted, its per-input scores.
    pub fn run<L: DeviceLogic>(
        &self,
        logic: L,
    ) -> (VecCollection<'s, u64, Anomaly>, Option<StreamVec<'s, u64, EventScore>>) {
        let index = {
            let mut logics = self.logics.borrow_mut();
            let index = logics.len() as u32;
            logics.push(Box::new(HostedLogic {
                index,
                logic,
                ship_scores: L::SCORES && self.scores_wanted,
                slots: Vec::new(),
                inputs: Vec::new(),
                scores: Vec::new(),
            }));
            index
        };
        let reports = self
            .reports
            .clone()
            .filter(move |((i, _), _, _)| *i == index)
            .map(|((_, a), t, r)| (a, t, r))
            .as_collection();
        let scores = (L::SCORES && self.scores_wanted)
            .then(|| self.scores.clone().filter(move |(i, _)| *i == index).map(|(_, s)| s));
        (reports, scores)
    }
}

/// A rule that is a pure function of a device's window state: what holds for the device
/// is `rule(device, state)`, re-evaluated whenever its state changes.
pub struct StateRule<F>(pub F);

impl<F> DeviceLogic for StateRule<F>
where
    F: Fn(&DeviceId, u64, &DeviceWindows) -> Option<Anomaly> + 'static,
{
    /// What the rule says of the device's new state (evaluated where the state is read).
    type Input = Option<Anomaly>;
    type State = ();
    const READS_STATE: bool = true;

    fn new_state(&self) {}

    fn inputs(&self, tick: &DeviceTick<'_>, out: &mut Vec<Option<Anomaly>>) {
        out.extend(tick.state.map(|state| (self.0)(tick.device, tick.tick, state)));
    }

    fn order(_: &Option<Anomaly>, _: &Option<Anomaly>) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }

    fn step(&self, _: &mut (), _: &DeviceId, _: u64, inputs: &[Option<Anomaly>], _: &mut Vec<EventScore>) -> Step {
        Step {
            report: inputs.last().cloned().flatten(),
            wake_at: None,
        }
    }
}
