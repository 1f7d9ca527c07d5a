//! A frontier-driven per-device operator for detectors that keep their own state (a set of
//! destinations a device has talked to, a robust baseline of its readings, ...).
//!
//! A detector implements [`DeviceLogic`]: given a device's state and its inputs at one tick,
//! it says what holds for that device now (a report, or nothing), may score inputs, and may
//! ask to be woken at a later tick without input (to let something expire).
//!
//! Invariants: inputs are exchanged by `device.hashed()`; a tick is processed only once the
//! input frontier has passed it, ticks in increasing order, and for each device its inputs at
//! a tick are handed over sorted by [`DeviceLogic::order`] — so the output does not depend on
//! the number of workers nor on arrival order. The report output is a differential collection
//! that changes only when a device's report appears or disappears (a report's content is
//! fixed while it holds: episodes keep their first content anyway), at the tick it changed.
//! Wake-ups are dropped once the input is exhausted (no change beyond the last input tick).
//! Memory: one `State` per device seen on this worker plus the inputs of unprocessed ticks.

use std::collections::{BTreeMap, HashMap};

use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::Capability;
use timely::dataflow::StreamVec;
use timely::progress::frontier::MutableAntichain;

use super::anomaly::{Anomaly, EventScore};
use crate::event::{DeviceId, Event};
use crate::query::poll;

/// What a device's logic decided at one tick.
#[derive(Debug, Default)]
pub struct Step {
    /// What holds for the device now (None: nothing anomalous).
    pub report: Option<Anomaly>,
    /// Wake the device at this later tick even without input.
    pub wake_at: Option<u64>,
}

/// Per-device detection logic, run by [`device_operator`].
pub trait DeviceLogic: 'static {
    /// What the operator receives per device (events, rejects, ...).
    type Input: timely::ExchangeData + Clone;
    type State: 'static;
    fn new_state(&self) -> Self::State;
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

struct Slot<S> {
    state: S,
    reported: Option<Anomaly>,
    wake: Option<u64>,
}

/// Runs `logic` per device over `(tick, device, input)`; returns the reports (a collection)
/// and the per-input scores.
pub fn device_operator<'s, L: DeviceLogic>(
    name: &str,
    inputs: StreamVec<'s, u64, (u64, DeviceId, L::Input)>,
    logic: L,
) -> (VecCollection<'s, u64, Anomaly>, StreamVec<'s, u64, EventScore>) {
    let mut builder = OperatorBuilder::new(name.to_owned(), inputs.scope());
    let exchange = Exchange::new(|(_, d, _): &(u64, DeviceId, L::Input)| d.hashed());
    let mut input = builder.new_input(inputs, exchange);
    let (mut reports_out, reports) = builder.new_output::<Vec<(Anomaly, u64, isize)>>();
    let (mut scores_out, scores) = builder.new_output::<Vec<EventScore>>();
    builder.build(move |initial: Vec<Capability<u64>>| {
        let mut caps: Option<Vec<Capability<u64>>> = Some(initial);
        let mut pending: BTreeMap<u64, Vec<(DeviceId, L::Input)>> = BTreeMap::new();
        let mut wakeups: BTreeMap<u64, Vec<DeviceId>> = BTreeMap::new();
        let mut slots: HashMap<DeviceId, Slot<L::State>> = HashMap::new();
        let mut report_buf: Vec<(Anomaly, u64, isize)> = Vec::new();
        let mut score_buf: Vec<EventScore> = Vec::new();
        let mut group: Vec<L::Input> = Vec::new();
        move |frontiers: &[MutableAntichain<u64>]| {
            input.for_each(|_time, data| {
                for (tick, device, item) in data.drain(..) {
                    pending.entry(tick).or_default().push((device, item));
                }
            });
            let Some(held) = caps.as_mut() else { return };
            let upper = frontiers[0].frontier().first().copied();
            let mut reports_session = reports_out.activate();
            let mut scores_session = scores_out.activate();
            loop {
                let next_input = pending.keys().next().copied();
                let next_wake = if upper.is_some() {
                    wakeups.keys().next().copied()
                } else {
                    None
                };
                let Some(t) = [next_input, next_wake].into_iter().flatten().min() else {
                    break;
                };
                if upper.is_some_and(|u| t >= u) {
                    break;
                }
                let mut items = pending.remove(&t).unwrap_or_default();
                let mut woken = wakeups.remove(&t).unwrap_or_default();
                // Sorting a tick's items and wake-ups is the longest stretch without a poll.
                poll::poll();
                items.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| L::order(&a.1, &b.1)));
                poll::poll();
                woken.sort();
                woken.dedup();
                poll::poll();
                // Devices with input, then woken devices without input, each once.
                let mut i = 0;
                let mut devices: Vec<(DeviceId, std::ops::Range<usize>)> = Vec::new();
                while i < items.len() {
                    let mut j = i + 1;
                    while j < items.len() && items[j].0 == items[i].0 {
                        j += 1;
                    }
                    devices.push((items[i].0.clone(), i..j));
                    i = j;
                }
                let with_input = devices.len();
                for d in woken {
                    if devices[..with_input].binary_search_by(|(x, _)| x.cmp(&d)).is_err() {
                        devices.push((d, 0..0));
                    }
                }
                for (n, (device, range)) in devices.into_iter().enumerate() {
                    // Waiting point queries are answered between devices.
                    poll::poll_every(n, poll::every::DEVICES);
                    group.clear();
                    group.extend(items[range].iter().map(|(_, x)| x.clone()));
                    let slot = slots.entry(device.clone()).or_insert_with(|| Slot {
                        state: logic.new_state(),
                        reported: None,
                        wake: None,
                    });
                    if group.is_empty() && slot.wake != Some(t) {
                        continue; // a stale wake-up
                    }
                    let step = logic.step(&mut slot.state, &device, t, &group, &mut score_buf);
                    match (&slot.reported, step.report) {
                        (None, Some(mut a)) => {
                            a.tick = t;
                            report_buf.push((a.clone(), t, 1));
                            slot.reported = Some(a);
                        }
                        (Some(_), None) => {
                            let old = slot.reported.take().expect("reported");
                            report_buf.push((old, t, -1));
                        }
                        _ => {}
                    }
                    slot.wake = step.wake_at.filter(|&w| w > t);
                    if let Some(w) = slot.wake {
                        wakeups.entry(w).or_default().push(device);
                    }
                }
                if !report_buf.is_empty() {
                    reports_session.give(&held[0], &mut report_buf);
                    report_buf.clear();
                }
                if !score_buf.is_empty() {
                    scores_session.give(&held[1], &mut score_buf);
                    score_buf.clear();
                }
            }
            match upper {
                None => {
                    caps = None;
                    pending.clear();
                    wakeups.clear();
                    slots.clear();
                }
                Some(u) => {
                    let next = [pending.keys().next().copied(), wakeups.keys().next().copied()]
                        .into_iter()
                        .flatten()
                        .min();
                    let target = next.map_or(u, |n| n.min(u));
                    for c in held.iter_mut() {
                        if target > *c.time() {
                            c.downgrade(&target);
                        }
                    }
                }
            }
        }
    });
    (reports.as_collection(), scores)
}

/// The accepted events as `(tick, device, event)`, the usual input of a [`DeviceLogic`].
pub fn events_by_device<'s>(events: &StreamVec<'s, u64, (u64, Event)>) -> StreamVec<'s, u64, (u64, DeviceId, Event)> {
    use timely::dataflow::operators::vec::Map;
    events.clone().map(|(t, e)| (t, e.device.clone(), e))
}
