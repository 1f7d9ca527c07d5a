//! The detection stage of one tick in the window operator: which devices the hosted
//! per-device logics step at that tick, and what each one did there.
//!
//! Invariants: after [`DetectWork::prepare`], `devices` lists every device to step once, in
//! slot order (touched, with rejected records, or woken); the tick's events are sorted by
//! `(slot, event_order)` and the rejects and wake-ups by slot, so [`DetectWork::next`] walks
//! all four lists forward in one pass and hands each device its contiguous events.

use crate::detect::keyed::event_order;
use crate::event::Event;

/// What one device did at the tick, as positions in the stage's lists.
pub(super) struct DeviceInputs {
    pub slot: u32,
    /// Its events, a range of [`DetectWork::events`].
    pub events: std::ops::Range<usize>,
    pub rejects: u32,
    /// Of those, the records too far ahead, and the most any ran ahead (ms).
    pub ahead: u32,
    pub ahead_ms: u64,
    /// The `(slot, logic)` pairs that wake it now, a range of the stage's wake-ups.
    woken: std::ops::Range<usize>,
}

/// The detection stage's state; resumable between activations (`pos` is the next device).
#[derive(Default)]
pub(super) struct DetectWork {
    /// Whether logics are hosted (otherwise the tick's events are not kept).
    pub hosting: bool,
    /// The tick's events with their device slot, as inserted.
    inserted: Vec<(u32, Event)>,
    /// Once prepared: the slots and the events, sorted, side by side.
    event_slots: Vec<u32>,
    events: Vec<Event>,
    /// `(slot, ms ahead)` of the tick's rejected records, sorted.
    rejected: Vec<(u32, u64)>,
    woken: Vec<(u32, u32)>,
    devices: Vec<u32>,
    pos: usize,
    event_pos: usize,
    reject_pos: usize,
    woken_pos: usize,
}

impl DetectWork {
    pub fn new(hosting: bool, events: usize) -> Self {
        DetectWork {
            hosting,
            inserted: Vec::with_capacity(if hosting { events } else { 0 }),
            ..Default::default()
        }
    }

    /// Keeps an inserted event for the logics (when hosting).
    pub fn keep(&mut self, slot: u32, event: Event) {
        if self.hosting {
            self.inserted.push((slot, event));
        }
    }

    /// Lists the devices to step: `touched` (their state changed), those of `rejected`
    /// (`(slot, ms ahead)` of the tick's rejected records), those of `woken` (`(slot, logic)`
    /// pairs). `poll` is called around the longest sort.
    pub fn prepare(
        &mut self,
        touched: &[u32],
        mut rejected: Vec<(u32, u64)>,
        mut woken: Vec<(u32, u32)>,
        poll: impl Fn(),
    ) {
        rejected.sort_unstable();
        woken.sort_unstable();
        woken.dedup();
        poll();
        // By device, then in event order, equal events as inserted: an order of (slot, index)
        // pairs (8 bytes each, the events themselves compared only within a device), then the
        // events moved into it once.
        let inserted = std::mem::take(&mut self.inserted);
        let mut order: Vec<(u32, u32)> = inserted
            .iter()
            .enumerate()
            .map(|(i, (slot, _))| (*slot, i as u32))
            .collect();
        order.sort_unstable_by(|&(a, i), &(b, j)| {
            a.cmp(&b)
                .then_with(|| event_order(&inserted[i as usize].1, &inserted[j as usize].1))
                .then(i.cmp(&j))
        });
        poll();
        let mut events: Vec<Option<Event>> = inserted.into_iter().map(|(_, e)| Some(e)).collect();
        self.event_slots = order.iter().map(|&(slot, _)| slot).collect();
        self.events = order
            .iter()
            .map(|&(_, i)| events[i as usize].take().expect("each event placed once"))
            .collect();
        let mut devices: Vec<u32> = touched.to_vec();
        devices.extend(rejected.iter().map(|&(slot, _)| slot));
        devices.extend(woken.iter().map(|&(i, _)| i));
        devices.sort_unstable();
        devices.dedup();
        self.rejected = rejected;
        self.woken = woken;
        self.devices = devices;
    }

    /// Whether every listed device has been handed out.
    pub fn done(&self) -> bool {
        self.pos >= self.devices.len()
    }

    /// The device `ahead` places after the next one, if any (for prefetching).
    pub fn upcoming(&self, ahead: usize) -> Option<u32> {
        self.devices.get(self.pos + ahead).copied()
    }

    /// The next device and what it did at the tick; moves `pos` on.
    pub fn next(&mut self) -> DeviceInputs {
        let slot = self.devices[self.pos];
        self.pos += 1;
        let from = self.event_pos;
        while self.event_slots.get(self.event_pos) == Some(&slot) {
            self.event_pos += 1;
        }
        let (mut rejects, mut ahead, mut ahead_ms) = (0u32, 0u32, 0u64);
        while let Some(&(_, by)) = self.rejected.get(self.reject_pos).filter(|(s, _)| *s == slot) {
            self.reject_pos += 1;
            rejects += 1;
            if by > 0 {
                ahead += 1;
                ahead_ms = ahead_ms.max(by);
            }
        }
        let woken_from = self.woken_pos;
        while self.woken.get(self.woken_pos).is_some_and(|(s, _)| *s == slot) {
            self.woken_pos += 1;
        }
        DeviceInputs {
            slot,
            events: from..self.event_pos,
            rejects,
            ahead,
            ahead_ms,
            woken: woken_from..self.woken_pos,
        }
    }

    /// Whether `logic` asked to wake the device of `inputs` now.
    pub fn woken(&self, inputs: &DeviceInputs, logic: u32) -> bool {
        self.woken[inputs.woken.clone()].iter().any(|&(_, l)| l == logic)
    }

    /// The tick's events, sorted (index them with [`DeviceInputs::events`]).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Frees the tick's events once every device is stepped.
    pub fn finish(&mut self) {
        *self = DetectWork::default();
    }
}
