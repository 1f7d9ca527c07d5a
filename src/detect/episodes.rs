//! Turns what detectors report at each time into anomaly *episodes*: an anomaly opens (is
//! inserted) when a device first meets a detector's condition, keeps the content it had
//! then, and is retracted when the condition stops holding.
//!
//! Invariants: input changes are applied per key `(detector, device)` in time order, once
//! the frontier has passed their time; at any time each key has at most one open episode;
//! the output is a differential collection whose accumulation at `T` is exactly the open
//! episodes at `T`.

use std::collections::BTreeMap;

use foldhash::HashMap;

use compact_str::CompactString;
use differential_dataflow::hashable::Hashable;
use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::anomaly::Anomaly;
use crate::event::DeviceId;
use crate::tick_buffer::TickBuffer;

type Key = (CompactString, DeviceId);

#[derive(Default)]
struct KeyState {
    /// The detector's current reports for this key, with multiplicities.
    current: BTreeMap<Anomaly, isize>,
    /// The open episode.
    open: Option<Anomaly>,
}

/// Episodes of a collection of reported anomalies.
pub fn episodes<'s>(reports: VecCollection<'s, u64, Anomaly>) -> VecCollection<'s, u64, Anomaly> {
    let exchange = Exchange::new(|(a, _, _): &(Anomaly, u64, isize)| a.device.hashed());
    reports
        .inner
        .unary_frontier(exchange, "Episodes", |_cap, _info| {
            let mut buffer: TickBuffer<Vec<(Anomaly, isize)>> = TickBuffer::default();
            let mut keys: HashMap<Key, KeyState> = HashMap::default();
            move |(input, frontier), output| {
                input.for_each_stamp(|time, data| {
                    buffer.stamp(&time);
                    for batch in data {
                        for (a, at, diff) in batch.drain(..) {
                            buffer.at(at).push((a, diff));
                        }
                    }
                });
                let upper = frontier.frontier().first().copied();
                let mut out = Vec::new();
                while let Some((t, changes)) = buffer.pop_complete(upper) {
                    let mut touched: Vec<Key> = Vec::new();
                    for (a, diff) in changes {
                        let key = (a.detector.clone(), a.device.clone());
                        let state = keys.entry(key.clone()).or_default();
                        let m = state.current.entry(a.clone()).or_insert(0);
                        *m += diff;
                        if *m == 0 {
                            state.current.remove(&a);
                        }
                        touched.push(key);
                    }
                    touched.sort();
                    touched.dedup();
                    for key in touched {
                        let state = keys.get_mut(&key).expect("touched key");
                        let active = state.current.iter().find(|(_, m)| **m > 0).map(|(a, _)| a.clone());
                        match (&state.open, active) {
                            (None, Some(mut a)) => {
                                a.tick = t;
                                out.push((a.clone(), t, 1));
                                state.open = Some(a);
                            }
                            (Some(open), None) => {
                                out.push((open.clone(), t, -1));
                                state.open = None;
                            }
                            _ => {}
                        }
                        if state.open.is_none() && state.current.is_empty() {
                            keys.remove(&key);
                        }
                    }
                }
                if !out.is_empty() {
                    output.session(buffer.capability()).give_iterator(out.drain(..));
                }
                buffer.release(upper);
            }
        })
        .as_collection()
}
