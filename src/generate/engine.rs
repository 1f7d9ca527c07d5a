//! The stream: merges every device's events (and every exfiltration's extra flows) in
//! event-time order, decides how each record is delivered (on time, out of order, late,
//! malformed), and hands records to the sink in arrival order.
//!
//! Invariants: exactly `events` records are produced; generation is in `(time, source)`
//! order — slice by slice of event time, each source producing its events of the slice in
//! turn, then the slice sorted — which is the order a merge of the sources would give. An out-of-order record with delay `d < lateness` is written before any record newer
//! than `ts + d`, so the highest earlier timestamp is at most `ts + d` and the engine does
//! not call it late. A late record with delay `D > lateness` is held until a record with
//! timestamp at least `ts + D` has been written, so it is late by the engine's rule (unless
//! the stream ends first; the sink counts by the rule either way). Background faults never
//! touch a record inside an incident window, and incident records are never held back
//! beyond the lateness, so labelled evidence reaches the engine.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::io::{self, Write};

use super::emit::{Fault, Record, Sink};
use super::fleet::Fleet;
use super::incident::Exfil;
use super::rng::Rng64;
use super::GeneratorConfig;

/// A record held back, released in `(release, seq)` order.
struct Held {
    release: i64,
    seq: u64,
    rec: Record,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.release, self.seq) == (other.release, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.release, self.seq).cmp(&(other.release, other.seq))
    }
}

/// Records generated per time slice, about, for small fleets (see [`run`]); larger
/// fleets use about one per device, so scanning the sources costs O(1) per record.
const SLICE_RECORDS: f64 = 4_096.0;

/// Generates and writes the whole stream; returns the first and last event time generated.
pub(crate) fn run<W: Write>(
    cfg: &GeneratorConfig,
    fleet: &mut Fleet,
    exfils: &mut [Exfil],
    sink: &mut Sink<W>,
) -> io::Result<(i64, i64)> {
    let n = fleet.devices.len();
    let base = cfg.start_ms;
    // The next event time of every source: the devices, then the exfiltration streams.
    let mut next: Vec<Option<i64>> = Vec::with_capacity(n + exfils.len());
    for d in fleet.devices.iter_mut() {
        next.push(Some(d.first_ts(base, &fleet.rhythm)));
    }
    for x in exfils.iter_mut() {
        next.push(Some(x.first_ts()));
    }
    let per_minute: f64 = fleet.devices.iter().map(|d| d.rate).sum();
    let per_slice = SLICE_RECORDS.max(n as f64);
    let slice_ms = ((per_slice / per_minute * 60_000.0) as i64).clamp(1, 3_600_000);
    let mut slice: Vec<Record> = Vec::new();
    let mut order: Vec<u64> = Vec::new();
    let mut slice_start = base;

    let mut delivery = Rng64::stream(cfg.seed, 2);
    let mut early: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut late: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let lateness = cfg.lateness_ms.min(i64::MAX as u64 / 4) as i64;
    let p_early = cfg.out_of_order_share;
    let p_late = cfg.out_of_order_share + cfg.late_share;
    let mut seq = 0u64;
    let (mut first, mut last) = (cfg.start_ms, cfg.start_ms);
    let mut k = 0;
    let mut pending = 0..0;

    while k < cfg.events {
        if pending.is_empty() {
            // Generate every event of the next slice of event time, one source after the
            // other (its state stays in cache), then order them by (time, source): the
            // sort key is the time offset above the position, and positions follow sources.
            let slice_end = slice_start + slice_ms;
            slice.clear();
            for (s, t) in next.iter_mut().enumerate() {
                while let Some(ts) = t.filter(|&ts| ts < slice_end) {
                    if s < n {
                        let d = &mut fleet.devices[s];
                        slice.push(d.record(s as u32, ts, &fleet.rhythm, &fleet.pool));
                        *t = Some(d.next_ts(ts, &fleet.rhythm));
                    } else {
                        let x = &mut exfils[s - n];
                        slice.push(x.record(ts, fleet.devices[x.device as usize].src));
                        *t = x.next_ts(ts);
                    }
                }
            }
            order.clear();
            order.extend(
                slice
                    .iter()
                    .enumerate()
                    .map(|(i, r)| ((r.ts - slice_start) as u64) << 32 | i as u64),
            );
            order.sort_unstable();
            pending = 0..order.len();
            slice_start = slice_end;
            continue;
        }
        let at = pending.next().expect("not empty");
        let mut rec = slice[(order[at] & 0xFFFF_FFFF) as usize];
        let ts = rec.ts;
        if k == 0 {
            first = ts;
        }
        last = ts;

        while early.peek().is_some_and(|Reverse(h)| h.release < ts) {
            let Reverse(h) = early.pop().expect("peeked");
            sink.emit(&h.rec, fleet)?;
        }
        if rec.fault == Fault::None && !rec.incident && delivery.chance(cfg.malformed_share) {
            rec.fault = Fault::background(&mut delivery);
        }
        let mut held = false;
        if rec.fault == Fault::None && k > 0 {
            let u = delivery.f64();
            if u < p_early {
                if lateness >= 2 {
                    let v = delivery.f64();
                    let release = ts + 1 + ((lateness - 2) as f64 * v * v) as i64;
                    early.push(Reverse(Held { release, seq, rec }));
                    held = true;
                }
            } else if u < p_late && !rec.incident {
                let release = ts + lateness + 1_000 + delivery.below(119_001) as i64;
                late.push(Reverse(Held { release, seq, rec }));
                held = true;
            }
            seq += 1;
        }
        if !held {
            sink.emit(&rec, fleet)?;
        }
        k += 1;
        while late
            .peek()
            .is_some_and(|Reverse(h)| sink.max_ts.is_some_and(|m| h.release <= m))
        {
            let Reverse(h) = late.pop().expect("peeked");
            sink.emit(&h.rec, fleet)?;
        }
    }

    // The stream ends: whatever is still held arrives last, in release order.
    let mut rest: Vec<Held> = early.into_iter().chain(late).map(|Reverse(h)| h).collect();
    rest.sort();
    for h in &rest {
        sink.emit(&h.rec, fleet)?;
    }
    Ok((first, last))
}
