//! Every device's windows on one worker, worked tick by tick: what the `window_stats`
//! operator ([`super::operator`]) drives. A tick's work is one visit per device, in slot
//! order ([`super::tick_devices`]): its expiries, its events, its collection change and the
//! hosted detectors' step, all while its memory is in cache (the visits ask for the memory
//! of the devices a few places ahead); then the rows of tumbling periods closing at the tick.
//! A tick may be cut into slices between devices and resumed.
//!
//! Invariants: see the operator's (expiries before insertions for every touched device, each
//! touched device's change emitted once per tick as its old state out and its new state in,
//! a state put in the worker's [`StateStore`] and its predecessor retired at that tick); a
//! tick cut into slices gives exactly what it gives at once.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use super::device_keys::{self, DeviceKey};
use super::obs::Obs;
use super::operator::{WindowChange, WindowSpec};
use super::sliding::DeviceSlide;
use super::state_store::{StateRef, StateStore};
use super::stats::WindowRow;
use super::tick_devices::{DeviceInputs, TickDevices};
use crate::detect::keyed::{DeviceTick, HostOutput, HostedLogics};
use crate::event::{DeviceId, Event};

/// One device's slot: whole cache lines (aligned), the fields the detection stage reads in
/// the first one (in this order), the windows after them.
#[repr(C, align(64))]
struct DeviceSlot {
    /// The state most recently emitted (None before the first).
    emitted: Option<StateRef>,
    /// Tick of the latest processing of this device (expiries applied up to it).
    processed: u64,
    name: DeviceId,
    last_seen_ms: i64,
    /// Tick of the latest insertion.
    latest_tick: Option<u64>,
    /// Per tumbling window: boundary tick of the period this device is listed in (inline:
    /// read for every event).
    tumble_mark: smallvec::SmallVec<[u64; 2]>,
    slide: DeviceSlide,
}

// A visit asks for every line of the slot at once (`prefetch_value` covers 1 KiB).
const _: () = assert!(std::mem::size_of::<DeviceSlot>() <= 1024);

/// Devices from which the index of device names is asked for ahead of its lookups (below,
/// its entries — 32 bytes each — fit in the processor's caches).
const PREFETCH_INDEX_FROM: usize = 16_384;

/// Where the work on one tick stands (see [`WindowState::process_tick`]).
struct TickWork {
    now: u64,
    /// Whether the tick's collection changes are emitted (see the operator).
    emit: bool,
    stage: Stage,
    /// The tick's devices and what each has to do.
    devices: TickDevices,
    /// Rows: the tumbling window being written, its devices in name order, the position.
    period: usize,
    rows: Vec<u32>,
    pos: usize,
}

/// The stages of a tick, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Devices,
    Rows,
}

/// Every device's windows on this worker.
pub(super) struct WindowState {
    pub(super) spec: WindowSpec,
    /// Where the emitted states are kept (the collection carries handles).
    pub(super) states: Rc<StateStore>,
    /// By device key (the store's [`super::DeviceKeys`] give a device its key).
    slots: Vec<DeviceSlot>,
    /// Events not yet processed, by tick.
    pub(super) pending: BTreeMap<u64, Vec<Event>>,
    /// Devices with an expiry at a tick.
    wakeups: BTreeMap<u64, Vec<u32>>,
    /// Per tumbling window: boundary tick → devices with events in that period.
    periods: Vec<BTreeMap<u64, Vec<u32>>>,
    /// The tick being worked on, when an activation ran out of time in the middle of it.
    current: Option<TickWork>,
    /// Events held in device windows, and events waiting in `pending`.
    pub(super) held: usize,
    pub(super) pending_events: usize,
    /// Devices with at least one event (slots also exist for devices seen only in rejects).
    with_events: usize,
    /// The hosted per-device logics, their rejected-record inputs by tick, and the
    /// `(slot, logic)` pairs woken at a tick.
    pub(super) logics: HostedLogics,
    /// `(device, ms ahead)` of the rejected records of a tick (0: not too far ahead).
    pub(super) pending_rejects: BTreeMap<u64, Vec<(DeviceId, u64)>>,
    logic_wakeups: BTreeMap<u64, Vec<(u32, u32)>>,
    pub(super) host_out: HostOutput,
}

impl WindowState {
    pub(super) fn new(spec: WindowSpec, logics: HostedLogics, states: Rc<StateStore>) -> Self {
        let periods = vec![BTreeMap::new(); spec.tumbling.len()];
        WindowState {
            spec,
            states,
            slots: Vec::new(),
            pending: BTreeMap::new(),
            wakeups: BTreeMap::new(),
            periods,
            current: None,
            held: 0,
            pending_events: 0,
            with_events: 0,
            logics,
            pending_rejects: BTreeMap::new(),
            logic_wakeups: BTreeMap::new(),
            host_out: HostOutput::default(),
        }
    }

    /// The earliest tick with work to do (`running`: the input is not exhausted, so hosted
    /// logics' wake-ups still count).
    pub(super) fn next_tick(&self, running: bool) -> Option<u64> {
        if let Some(work) = &self.current {
            return Some(work.now);
        }
        let mut next = self.pending.keys().next().copied();
        let mut consider = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        consider(self.wakeups.keys().next().copied());
        consider(self.pending_rejects.keys().next().copied());
        if running {
            consider(self.logic_wakeups.keys().next().copied());
        }
        for p in &self.periods {
            consider(p.keys().next().copied());
        }
        next
    }

    /// Whether nothing is left to do once the input is exhausted.
    pub(super) fn finished(&self) -> bool {
        self.current.is_none()
            && self.pending.is_empty()
            && self.pending_rejects.is_empty()
            && self.periods.iter().all(|p| p.is_empty())
    }

    fn slot_for(&mut self, name: &DeviceId) -> u32 {
        self.slot_for_hashed(name, device_keys::hash(name))
    }

    /// [`WindowState::slot_for`] with the name's hash already computed.
    fn slot_for_hashed(&mut self, name: &DeviceId, hash: u64) -> u32 {
        let (DeviceKey(i), new) = self.states.keys_mut().key_or_insert_hashed(name, hash);
        if !new {
            return i;
        }
        debug_assert_eq!(i as usize, self.slots.len(), "keys are slots");
        self.slots.push(DeviceSlot {
            name: name.clone(),
            slide: DeviceSlide::new(&self.spec.lens, &self.spec.steps),
            last_seen_ms: i64::MIN,
            emitted: None,
            processed: u64::MAX,
            latest_tick: None,
            tumble_mark: smallvec::smallvec![u64::MAX; self.spec.tumbling.len()],
        });
        i
    }

    /// Applies device `i`'s expiries up to `now`, once per tick.
    fn expire_to(&mut self, i: u32, now: u64) {
        let slot = &mut self.slots[i as usize];
        if slot.processed == now {
            return;
        }
        let before = slot.slide.held();
        slot.slide.advance_to(now);
        self.held -= before - slot.slide.held();
        slot.processed = now;
    }

    /// Works on tick `now` (the earliest with work, see [`WindowState::next_tick`]): one
    /// visit per device with something to do (expiries, insertions, then — when `emit` — its
    /// change and the hosted logics' step), then the tumbling rows of periods ending at `now`;
    /// `emit` counts when the tick is started. Stops early once `deadline` has passed and
    /// returns false; the next call goes on where this one stopped (the input frontier is past
    /// `now`, so nothing new arrives for it meanwhile). True when the tick is done.
    pub(super) fn process_tick(
        &mut self,
        now: u64,
        emit: bool,
        out: &mut Vec<WindowChange>,
        rows: &mut Vec<WindowRow>,
        deadline: Option<Instant>,
    ) -> bool {
        let mut work = match self.current.take() {
            Some(work) => {
                debug_assert_eq!(work.now, now);
                work
            }
            None => self.start_tick(now, emit),
        };
        // Every CHECK_EVERY items the worker answers its waiting point queries and reads the
        // clock (reading it costs more than one item).
        const CHECK_EVERY: usize = 32;
        let past = |done: usize| {
            done % CHECK_EVERY == CHECK_EVERY - 1 && {
                crate::pause::now();
                deadline.is_some_and(|d| Instant::now() >= d)
            }
        };
        // One item done: past the deadline, keep the work for the next call and stop.
        macro_rules! checkpoint {
            ($state:ident, $work:ident) => {
                $work.pos += 1;
                if past($work.pos) {
                    $state.current = Some($work);
                    return false;
                }
            };
        }
        loop {
            match work.stage {
                Stage::Devices => {
                    while !work.devices.done() {
                        self.prefetch_ahead(&work.devices);
                        let inputs = work.devices.next();
                        self.visit(&inputs, &work, out);
                        checkpoint!(self, work);
                    }
                    work.stage = Stage::Rows;
                    work.pos = 0;
                    work.devices = TickDevices::default();
                }
                Stage::Rows => {
                    while work.period < self.spec.tumbling.len() {
                        if work.pos == 0 && work.rows.is_empty() {
                            let mut devices = self.periods[work.period].remove(&now).unwrap_or_default();
                            // Every device of a closing period at once: one pass over the
                            // slots for the names, not one per comparison, and polls around.
                            crate::pause::now();
                            devices.sort_by_cached_key(|&i| self.slots[i as usize].name.clone());
                            crate::pause::now();
                            work.rows = devices;
                        }
                        while work.pos < work.rows.len() {
                            let i = work.rows[work.pos];
                            rows.push(self.row(i, now, work.period));
                            checkpoint!(self, work);
                        }
                        work.period += 1;
                        work.pos = 0;
                        work.rows.clear();
                    }
                    return true;
                }
            }
        }
    }

    /// Lists the devices of tick `now` and what each has to do there: its events, its
    /// expiries and — when the tick's changes are emitted — its rejected records and the
    /// hosted logics' wake-ups.
    fn start_tick(&mut self, now: u64, emit: bool) -> TickWork {
        // The states every reader has moved past are freed (their slots reused).
        self.states.collect();
        let events = self.pending.remove(&now).unwrap_or_default();
        self.pending_events -= events.len();
        let events = self.with_slots(events);
        let expiring = self.wakeups.remove(&now).unwrap_or_default();
        let detect = emit && !self.logics.borrow().is_empty();
        let (mut rejected, mut woken) = (Vec::new(), Vec::new());
        if emit {
            let rejects = self.pending_rejects.remove(&now).unwrap_or_default();
            if detect {
                rejected = rejects.iter().map(|(d, ahead)| (self.slot_for(d), *ahead)).collect();
                woken = self.logic_wakeups.remove(&now).unwrap_or_default();
            }
        }
        TickWork {
            now,
            emit,
            stage: Stage::Devices,
            devices: TickDevices::prepare(detect, events, expiring, rejected, woken, crate::pause::now),
            period: 0,
            rows: Vec::new(),
            pos: 0,
        }
    }

    /// The tick's events with their devices' slots (a new device gets one): the names are
    /// hashed first, so that the index entry of each is asked for `AHEAD` names before its
    /// lookup (see `super::prefetch`).
    fn with_slots(&mut self, events: Vec<Event>) -> Vec<(u32, Event)> {
        use super::prefetch::AHEAD;
        // A small index stays in cache: nothing to ask for.
        if self.slots.len() < PREFETCH_INDEX_FROM {
            return events.into_iter().map(|e| (self.slot_for(&e.device), e)).collect();
        }
        let hashes: Vec<u64> = events.iter().map(|e| device_keys::hash(&e.device)).collect();
        let mut slotted = Vec::with_capacity(events.len());
        for (n, event) in events.into_iter().enumerate() {
            if let Some(&ahead) = hashes.get(n + AHEAD) {
                self.states.keys().prefetch(ahead);
            }
            slotted.push((self.slot_for_hashed(&event.device, hashes[n]), event));
        }
        slotted
    }

    /// Asks for the memory of the devices a few places after the next one: the slot and the
    /// hosted logics' slots of the one `AHEAD` places on; the windows, the logics' states and
    /// the store slot a new state will take for the one half as far (its slot is in cache by
    /// then).
    fn prefetch_ahead(&self, devices: &TickDevices) {
        use super::prefetch::{prefetch_value, AHEAD};
        if let Some((i, busy)) = devices.upcoming(AHEAD) {
            prefetch_value(&self.slots[i as usize] as *const DeviceSlot);
            if devices.detect {
                let events = devices.upcoming_events(AHEAD);
                for logic in self.logics.borrow().iter() {
                    logic.prefetch(i, busy, events);
                }
            }
        }
        if let Some((i, busy)) = devices.upcoming(AHEAD / 2) {
            let slide = &self.slots[i as usize].slide;
            slide.prefetch();
            for event in devices.upcoming_events(AHEAD / 2) {
                slide.prefetch_event(event.dst_ip.0, event.dst_port);
            }
            self.states.prefetch_free(AHEAD / 2);
            if devices.detect {
                let events = devices.upcoming_events(AHEAD / 2);
                for logic in self.logics.borrow().iter() {
                    logic.prefetch_state(i, busy, events);
                }
            }
        }
    }

    /// One device's work at the tick: its expiries and events, then (when the tick emits) its
    /// change if its windows changed and the hosted logics' step.
    fn visit(&mut self, inputs: &DeviceInputs, work: &TickWork, out: &mut Vec<WindowChange>) {
        let (i, now) = (inputs.slot, work.now);
        let touched = inputs.touched();
        if touched {
            self.expire_to(i, now);
            for event in &work.devices.events()[inputs.events.clone()] {
                self.insert(i, now, event);
            }
        }
        if !work.emit {
            return;
        }
        if touched {
            self.emit_change(i, now, out);
        }
        if work.devices.detect {
            self.detect_device(inputs, work);
        }
    }

    /// Emits the change of touched device `i` at `now`: its previous state out, its new one
    /// in (a touched device always changed: an event entered or one expired), the two in
    /// handle order — the tick's devices are visited in key order, so a tick's changes come
    /// out sorted by `(device key, handle)` (the arrangement's batcher relies on it for speed,
    /// not for correctness).
    fn emit_change(&mut self, i: u32, now: u64, out: &mut Vec<WindowChange>) {
        let slot = &mut self.slots[i as usize];
        let old = slot.emitted.take();
        if let Some(old) = old {
            self.states.retire(old, now);
        }
        let (slide, last_seen_ms) = (&slot.slide, slot.last_seen_ms);
        let state = self.states.insert_with(|w| {
            w.last_seen_ms = last_seen_ms;
            slide.write_stats(&mut w.windows);
        });
        debug_assert!(
            old.is_none_or(|old| *self.states.get(old) != *self.states.get(state)),
            "a touched device changes"
        );
        let key = DeviceKey(i);
        match old {
            Some(old) if old < state => {
                out.push(((key, old), now, -1));
                out.push(((key, state), now, 1));
            }
            Some(old) => {
                out.push(((key, state), now, 1));
                out.push(((key, old), now, -1));
            }
            None => out.push(((key, state), now, 1)),
        }
        slot.emitted = Some(state);
    }

    /// Steps the device of `inputs` with every hosted logic.
    fn detect_device(&mut self, inputs: &DeviceInputs, work: &TickWork) {
        let (i, now) = (inputs.slot, work.now);
        let slot = &self.slots[i as usize];
        let state = match slot.emitted {
            Some(state) if slot.processed == now => Some(self.states.get(state)),
            _ => None,
        };
        let view = DeviceTick {
            device: &slot.name,
            tick: now,
            // The events of one device are contiguous: the view borrows them in place.
            events: &work.devices.events()[inputs.events.clone()],
            state: state.as_deref(),
            rejects: inputs.rejects,
            ahead: inputs.ahead,
            ahead_ms: inputs.ahead_ms,
        };
        let mut logics = self.logics.borrow_mut();
        for (k, logic) in logics.iter_mut().enumerate() {
            let woken = work.devices.woken(inputs, k as u32);
            if let Some(w) = logic.step(i, &view, woken, &mut self.host_out) {
                self.logic_wakeups.entry(w).or_default().push((i, k as u32));
            }
        }
    }

    /// Inserts `event` at tick `now` into the windows of its device, slot `i`.
    /// The device was brought to `now` first ([`WindowState::expire_to`]).
    fn insert(&mut self, i: u32, now: u64, event: &Event) {
        debug_assert_eq!(self.slots[i as usize].processed, now);
        let external = event.dst_ip.0 != 0 && self.spec.network.is_external(event.dst_ip);
        let obs = Obs::new(
            now,
            event.bytes_out,
            event.bytes_in,
            event.packets,
            external,
            event.dst_ip.0,
            event.dst_port,
            event.value,
        );
        let slot = &mut self.slots[i as usize];
        let before = slot.slide.held();
        slot.slide.insert(obs);
        self.held += slot.slide.held() - before;
        slot.last_seen_ms = slot.last_seen_ms.max(event.ts_ms);
        if slot.latest_tick.is_none() {
            self.with_events += 1;
        }
        if slot.latest_tick != Some(now) {
            let previous = slot.latest_tick.replace(now);
            for (&len, &step) in self.spec.lens.iter().zip(&self.spec.steps) {
                // A window sliding every tick loses the event `len` ticks on; a stepped one
                // loses the event's whole step when the step `len` ticks after it begins.
                if step == 1 {
                    self.wakeups.entry(now + len).or_default().push(i);
                } else if previous.is_none_or(|p| p / step != now / step) {
                    self.wakeups.entry(now / step * step + len).or_default().push(i);
                }
            }
            for (k, &wi) in self.spec.tumbling.iter().enumerate() {
                let len = self.spec.lens[wi];
                let boundary = (now / len) * len + len - 1;
                if slot.tumble_mark[k] != boundary {
                    slot.tumble_mark[k] = boundary;
                    self.periods[k].entry(boundary).or_default().push(i);
                }
            }
        }
    }

    /// The row of device `i`'s tumbling window number `k`, closing at `now`.
    fn row(&mut self, i: u32, now: u64, k: usize) -> WindowRow {
        let wi = self.spec.tumbling[k];
        let len = self.spec.lens[wi];
        let tick_ms = self.spec.tick_ms as i64;
        self.expire_to(i, now);
        let slot = &self.slots[i as usize];
        WindowRow {
            window_end_ms: (now as i64 + 1) * tick_ms,
            window_len_ms: len * self.spec.tick_ms,
            device: slot.name.clone(),
            window_start_ms: (now as i64 + 1 - len as i64) * tick_ms,
            stats: *slot.slide.stats(wi),
        }
    }

    /// Number of devices with events this worker maintains.
    pub(super) fn devices(&self) -> usize {
        self.with_events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Ip, Protocol};
    use crate::window::DeviceWindows;

    fn event(device: &str, ts_ms: i64, value: f64) -> Event {
        Event {
            ts_ms,
            device: device.into(),
            src_ip: Ip(1),
            dst_ip: Ip(0x0a00_0000 + (ts_ms as u128 % 7)),
            dst_port: 443,
            protocol: Protocol::Tcp,
            bytes_out: 10 + ts_ms as u64 % 13,
            bytes_in: 5,
            packets: 1,
            duration_ms: 1,
            value: Some(value),
        }
    }

    /// A change with its device's name and its state read out of the store.
    type ReadChange = ((DeviceId, DeviceWindows), u64, isize);

    /// Runs every tick to the end, each call with `deadline`; returns the changes, the rows
    /// and how many calls it took.
    fn drain(spec: &WindowSpec, deadline: impl Fn() -> Option<Instant>) -> (Vec<ReadChange>, Vec<WindowRow>, usize) {
        let states = StateStore::new();
        let mut state = WindowState::new(spec.clone(), HostedLogics::default(), states.clone());
        for i in 0..3_000i64 {
            let device = format!("d{}", i % 301);
            let ts = i * 10;
            let tick = ts as u64 / spec.tick_ms;
            state.pending_events += 1;
            state
                .pending
                .entry(tick)
                .or_default()
                .push(event(&device, ts, (i % 11) as f64));
        }
        let (mut changes, mut rows, mut calls) = (Vec::new(), Vec::new(), 0);
        while let Some(t) = state.next_tick(true) {
            assert!(t < 10_000, "ticks end");
            calls += 1;
            state.process_tick(t, true, &mut changes, &mut rows, deadline());
        }
        let changes = changes
            .into_iter()
            .map(|((d, s), t, r)| ((states.device_name(d), states.get(s).clone()), t, r))
            .collect();
        (changes, rows, calls)
    }

    #[test]
    fn a_tick_cut_into_slices_gives_what_it_gives_at_once() {
        let config =
            crate::config::Config::from_toml("[windows]\nsliding = [\"10s\", \"1m\"]\ntumbling = [\"10s\", \"1m\"]\n")
                .unwrap();
        let spec = WindowSpec::from_config(&config);
        let (whole, whole_rows, whole_calls) = drain(&spec, || None);
        // A deadline already past: every call stops after one check's worth of items.
        let (sliced, sliced_rows, sliced_calls) = drain(&spec, || Some(Instant::now()));
        assert!(!whole.is_empty() && !whole_rows.is_empty());
        assert!(
            sliced_calls > whole_calls,
            "{sliced_calls} calls vs {whole_calls}: the work was cut"
        );
        assert_eq!(sliced, whole);
        assert_eq!(sliced_rows, whole_rows);
    }
}
