//! The devices of one tick in the window operator, each with everything it has to do there:
//! expire (a window of it loses events at the tick), its events to insert, its rejected
//! records and the hosted logics that asked to be woken then. The operator visits each device
//! once per tick, in slot order, and does all of it in that visit (expiries, insertions, the
//! collection change, the hosted logics' step), so a device's memory is fetched once per tick.
//!
//! Invariants: after [`TickDevices::prepare`], `devices` lists every device with something to
//! do exactly once, in slot order; the tick's events are sorted by `(slot, event_order,
//! arrival)` and the expiries, rejects and wake-ups by slot, so [`TickDevices::next`] walks
//! all the lists forward in one pass and hands each device its contiguous events. The order
//! in which a device's events of one tick are inserted does not change its windows (they
//! enter and leave together), so inserting them in event order gives what arrival order gave.

use crate::detect::keyed::event_order;
use crate::event::Event;

/// What one device has to do at the tick, as positions in the lists.
pub(super) struct DeviceInputs {
    pub slot: u32,
    /// Whether a window of the device loses events at the tick.
    pub expires: bool,
    /// Its events, a range of [`TickDevices::events`].
    pub events: std::ops::Range<usize>,
    pub rejects: u32,
    /// Of those, the records too far ahead, and the most any ran ahead (ms).
    pub ahead: u32,
    pub ahead_ms: u64,
    /// The `(slot, logic)` pairs that wake it now, a range of the wake-ups.
    woken: std::ops::Range<usize>,
}

impl DeviceInputs {
    /// Whether the device's windows change at the tick (an event enters or one leaves).
    pub fn touched(&self) -> bool {
        self.expires || !self.events.is_empty()
    }
}

/// A tick's devices; resumable between activations (`pos` is the next device).
#[derive(Default)]
pub(super) struct TickDevices {
    /// Whether the hosted logics step the devices at this tick.
    pub detect: bool,
    /// The slots and the events, sorted, side by side.
    event_slots: Vec<u32>,
    events: Vec<Event>,
    /// Devices with an expiry, sorted, distinct.
    expiring: Vec<u32>,
    /// `(slot, ms ahead)` of the tick's rejected records, sorted.
    rejected: Vec<(u32, u64)>,
    woken: Vec<(u32, u32)>,
    devices: Vec<u32>,
    /// Per device: whether it has events, rejects or wake-ups at the tick (otherwise only
    /// its windows lose events).
    busy: Vec<bool>,
    /// Per device, where its events start in `events` (one more entry: the end).
    event_start: Vec<u32>,
    pos: usize,
    event_pos: usize,
    expire_pos: usize,
    reject_pos: usize,
    woken_pos: usize,
}

impl TickDevices {
    /// Lists the devices of a tick: those of `events` (each with its slot, in arrival order),
    /// of `expiring` (slots with an expiry, repeats allowed), of `rejected` (`(slot, ms
    /// ahead)` of the tick's rejected records) and of `woken` (`(slot, logic)` pairs); the
    /// last two only matter when `detect`. `poll` is called around the longest sort.
    pub fn prepare(
        detect: bool,
        events: Vec<(u32, Event)>,
        mut expiring: Vec<u32>,
        mut rejected: Vec<(u32, u64)>,
        mut woken: Vec<(u32, u32)>,
        poll: impl Fn(),
    ) -> Self {
        expiring.sort_unstable();
        expiring.dedup();
        rejected.sort_unstable();
        woken.sort_unstable();
        woken.dedup();
        poll();
        // By device, then in event order, equal events as they arrived: an order of (slot,
        // index) pairs (8 bytes each), put in slot order by one primitive sort of the pairs as
        // integers, then each device's run of several events by event order (the events
        // themselves compared only within a device); the events are moved into it once.
        let mut keys: Vec<u64> = events
            .iter()
            .enumerate()
            .map(|(i, (slot, _))| u64::from(*slot) << 32 | i as u64)
            .collect();
        keys.sort_unstable();
        let mut order: Vec<(u32, u32)> = keys.iter().map(|&k| ((k >> 32) as u32, k as u32)).collect();
        for run in order.chunk_by_mut(|a, b| a.0 == b.0).filter(|run| run.len() > 1) {
            run.sort_by(|&(_, i), &(_, j)| event_order(&events[i as usize].1, &events[j as usize].1).then(i.cmp(&j)));
        }
        poll();
        let mut events: Vec<Option<Event>> = events.into_iter().map(|(_, e)| Some(e)).collect();
        let event_slots: Vec<u32> = order.iter().map(|&(slot, _)| slot).collect();
        let events = order
            .iter()
            .map(|&(_, i)| events[i as usize].take().expect("each event placed once"))
            .collect();
        // (slot, busy) pairs: sorted, a device's busy pair comes last of its pairs.
        let mut listed: Vec<(u32, bool)> = Vec::with_capacity(event_slots.len() + expiring.len());
        listed.extend(event_slots.iter().map(|&slot| (slot, true)));
        listed.extend(expiring.iter().map(|&slot| (slot, false)));
        listed.extend(rejected.iter().map(|&(slot, _)| (slot, true)));
        listed.extend(woken.iter().map(|&(slot, _)| (slot, true)));
        listed.sort_unstable();
        let mut devices = Vec::with_capacity(listed.len());
        let mut busy = Vec::with_capacity(listed.len());
        for (k, &(slot, b)) in listed.iter().enumerate() {
            if listed.get(k + 1).is_none_or(|&(next, _)| next != slot) {
                devices.push(slot);
                busy.push(b);
            }
        }
        let mut event_start = Vec::with_capacity(devices.len() + 1);
        let mut e = 0;
        for &slot in &devices {
            while event_slots.get(e).is_some_and(|&s| s < slot) {
                e += 1;
            }
            event_start.push(e as u32);
        }
        event_start.push(event_slots.len() as u32);
        TickDevices {
            detect,
            event_start,
            event_slots,
            events,
            expiring,
            rejected,
            woken,
            devices,
            busy,
            ..Default::default()
        }
    }

    /// Whether every listed device has been handed out.
    pub fn done(&self) -> bool {
        self.pos >= self.devices.len()
    }

    /// The device `ahead` places after the next one, if any, and whether it is busy (has
    /// events, rejects or wake-ups): for prefetching.
    pub fn upcoming(&self, ahead: usize) -> Option<(u32, bool)> {
        let k = self.pos + ahead;
        Some((*self.devices.get(k)?, self.busy[k]))
    }

    /// The events of the device `ahead` places after the next one (for prefetching).
    pub fn upcoming_events(&self, ahead: usize) -> &[Event] {
        let k = self.pos + ahead;
        match (self.event_start.get(k), self.event_start.get(k + 1)) {
            (Some(&a), Some(&b)) => &self.events[a as usize..b as usize],
            _ => &[],
        }
    }

    /// The next device and what it has to do at the tick; moves `pos` on.
    pub fn next(&mut self) -> DeviceInputs {
        let slot = self.devices[self.pos];
        self.pos += 1;
        let from = self.event_pos;
        while self.event_slots.get(self.event_pos) == Some(&slot) {
            self.event_pos += 1;
        }
        let expires = self.expiring.get(self.expire_pos) == Some(&slot);
        if expires {
            self.expire_pos += 1;
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
            expires,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Ip, Protocol};

    fn event(ts_ms: i64) -> Event {
        Event {
            ts_ms,
            device: "d".into(),
            src_ip: Ip(1),
            dst_ip: Ip(2),
            dst_port: 443,
            protocol: Protocol::Tcp,
            bytes_out: 1,
            bytes_in: 1,
            packets: 1,
            duration_ms: 1,
            value: None,
        }
    }

    #[test]
    fn every_device_once_in_slot_order_with_all_it_has_to_do() {
        let events = vec![(7, event(30)), (2, event(10)), (7, event(20)), (9, event(5))];
        let mut tick = TickDevices::prepare(
            true,
            events,
            vec![9, 4, 8, 4, 2],
            vec![(5, 0), (7, 120), (7, 0)],
            vec![(4, 1), (3, 0), (4, 1)],
            || {},
        );
        let mut seen = Vec::new();
        let upcoming: Vec<Vec<i64>> = (0..7)
            .map(|k| tick.upcoming_events(k).iter().map(|e| e.ts_ms).collect())
            .collect();
        assert_eq!(
            upcoming,
            [vec![10], vec![], vec![], vec![], vec![20, 30], vec![], vec![5]]
        );
        assert!(tick.upcoming_events(7).is_empty());
        let busy: Vec<(u32, bool)> = (0..7).map(|k| tick.upcoming(k).unwrap()).collect();
        assert_eq!(
            busy,
            [
                (2, true),
                (3, true),
                (4, true),
                (5, true),
                (7, true),
                (8, false),
                (9, true)
            ],
            "only an expiry: not busy"
        );
        while !tick.done() {
            let d = tick.next();
            let ts: Vec<i64> = tick.events()[d.events.clone()].iter().map(|e| e.ts_ms).collect();
            seen.push((d.slot, d.expires, ts, d.rejects, d.ahead, d.ahead_ms, tick.woken(&d, 1)));
        }
        assert_eq!(
            seen,
            vec![
                (2, true, vec![10], 0, 0, 0, false),
                (3, false, vec![], 0, 0, 0, false),
                (4, true, vec![], 0, 0, 0, true),
                (5, false, vec![], 1, 0, 0, false),
                (7, false, vec![20, 30], 2, 1, 120, false),
                (8, true, vec![], 0, 0, 0, false),
                (9, true, vec![5], 0, 0, 0, false),
            ]
        );
    }

    #[test]
    fn events_in_slot_then_event_order_then_arrival() {
        // Few slots and few distinct events: long runs per device and many equal events.
        // `event_order` does not look at the device name: it tags each event with its arrival.
        let mut rng = crate::window::test_random(11);
        let events: Vec<(u32, Event)> = (0..2_000)
            .map(|n| {
                let mut e = event(rng(5) as i64);
                e.bytes_out = rng(3);
                e.value = (rng(2) == 0).then_some(rng(3) as f64);
                e.device = n.to_string().as_str().into();
                (rng(37) as u32 * 1_000_003 % 65_537, e)
            })
            .collect();
        // The reference: one comparison sort on (slot, event order, arrival).
        let mut indexed: Vec<(usize, &(u32, Event))> = events.iter().enumerate().collect();
        indexed.sort_by(|(i, (a, x)), (j, (b, y))| a.cmp(b).then_with(|| event_order(x, y)).then(i.cmp(j)));
        let expected: Vec<(u32, String)> = indexed
            .iter()
            .map(|(_, (slot, e))| (*slot, e.device.as_str().to_owned()))
            .collect();
        let tick = TickDevices::prepare(false, events.clone(), vec![], vec![], vec![], || {});
        let got: Vec<(u32, String)> = tick
            .event_slots
            .iter()
            .zip(tick.events())
            .map(|(s, e)| (*s, e.device.as_str().to_owned()))
            .collect();
        assert_eq!(got, expected);
        assert!(got.windows(2).any(|w| w[0].0 == w[1].0), "devices with several events");
    }
}
