//! The group stage of `silence`: a candidate (a device's silence episode, as the per-device
//! logic opened it) is reported `confirm` after it opened if it still holds then, unless it
//! went quiet with enough neighbours (a planned maintenance, an outage of a rack: not one
//! device's denial of service).
//!
//! A candidate's *onset* is the device's last event time when it opened, its
//! *neighbourhood* the source subnet of its events, and its *stop interval* the time from
//! its onset to the end of the gap in which it would have sent `gap` events at its usual
//! rate (at most `max_gap`), widened by `window`: when it went quiet, as far as its own
//! traffic tells. Per neighbourhood, the moment inside most stop intervals is a group's if
//! at least `min` distinct devices' intervals hold it; those are taken out and the next
//! moment is looked for (greedy), so a device that sent events after a group stopped does not
//! join it through slow members' wide intervals. A member still open while every other
//! member of its group has been back for `outlast` is not explained by the group.
//!
//! Members: the open candidates, and those that lasted `confirm`, for `memory` after they
//! closed (a group stays a group while its members come back one by one; a busy device's
//! empty minute does not make a group for `memory`).
//!
//! Invariants: a differential computation over the candidates, so exact under late data and
//! independent of the number of workers; keyed by subnet (a reduce over the subnet's members
//! of the last `memory`, quadratic in their number, so its cost is per candidate, not per
//! event); what it keeps is bounded by `memory`.

use differential_dataflow::{AsCollection, VecCollection};
use timely::dataflow::operators::vec::Filter;

use crate::detect::Anomaly;
use crate::event::DeviceId;

fn evidence(a: &Anomaly, key: &str) -> Option<f64> {
    a.evidence.iter().find(|(k, _)| k == key).map(|(_, v)| v.0)
}

/// A candidate's neighbourhood and onset: the device's source subnet (maintenance is
/// planned per rack, subnet or cluster) and its last event time when it opened.
pub fn onset(a: &Anomaly) -> (u64, i64) {
    (
        evidence(a, "subnet").unwrap_or(0.0) as u64,
        evidence(a, "last_seen_ms").map_or(a.tick as i64, |v| v as i64),
    )
}

/// When a candidate's device went quiet, at the latest: its onset plus the gap in which it
/// would have sent `gap` events at its usual rate (a slow device's last event says less about
/// when it stopped), at most `max_gap_ms`.
pub fn latest_stop(a: &Anomaly, gap: f64, max_gap_ms: i64) -> i64 {
    let rate = evidence(a, "baseline_rate_per_min").unwrap_or(0.0);
    let g = if rate > 0.0 {
        (gap * 60_000.0 / rate).min(max_gap_ms as f64) as i64
    } else {
        max_gap_ms
    };
    onset(a).1 + g
}

/// Of candidate stops (`(onset, latest stop + window, device)`, any order), the groups that
/// went quiet together (indices, sorted): greedily, the moment inside the most stop intervals
/// is taken as a group's if at least `min` distinct devices stopped then, its devices are
/// removed, and so on. A device that went quiet after a group stopped (it sent an event
/// after every member's latest stop) is not one of that group, even when slow members'
/// wide intervals reach its own.
pub fn grouped(stops: &[(i64, i64, &DeviceId)], min: usize) -> Vec<Vec<usize>> {
    let mut left: Vec<usize> = (0..stops.len()).collect();
    left.sort_by_key(|&i| (stops[i].0, stops[i].1, stops[i].2));
    let mut out = Vec::new();
    loop {
        // The left ends are the candidate moments: the most-covered moment is one of them.
        let mut best: Option<(usize, i64)> = None;
        for &i in &left {
            let p = stops[i].0;
            let mut devices: Vec<&DeviceId> = left
                .iter()
                .filter(|&&j| stops[j].0 <= p && p <= stops[j].1)
                .map(|&j| stops[j].2)
                .collect();
            devices.sort();
            devices.dedup();
            if best.is_none_or(|b| devices.len() > b.0) {
                best = Some((devices.len(), p));
            }
        }
        let Some((n, p)) = best.filter(|b| b.0 >= min.max(1)) else { break };
        debug_assert!(n >= 1);
        let (mut members, rest): (Vec<usize>, Vec<usize>) =
            left.iter().partition(|&&j| stops[j].0 <= p && p <= stops[j].1);
        members.sort_unstable();
        out.push(members);
        left = rest;
    }
    out
}

/// What the group stage knows of a member: still open, or back (closed `outlast` ago).
const MEMBER: u8 = 0;
const OPEN: u8 = 1;
const BACK: u8 = 2;

/// Of a group's devices (`(open, back)` flags), those it still explains: all but an open one
/// that outlasted it — every other device back for `outlast` while it is still quiet. (Not
/// "half of them": two groups that stopped at one moment are one group here, and the longer
/// one would be reported when the shorter is back.)
fn explained(flags: &[(bool, bool)]) -> Vec<bool> {
    let back = flags.iter().filter(|f| f.1).count();
    flags
        .iter()
        .map(|&(open, own_back)| {
            let others_back = back - own_back as usize;
            debug_assert!(!(open && own_back), "a device still quiet is not back");
            !(open && others_back >= 1 && others_back == flags.len() - 1)
        })
        .collect()
}

/// Of a subnet's member stops (`(onset, latest stop + window, device)`) and their flags
/// (`(open, back)`: the candidate is open; it closed `outlast` ago), the indices of those a
/// group explains. Flags are the device's: a device with an open candidate is not back, even
/// when an earlier candidate of the same silence closed long ago.
pub fn explained_members(stops: &[(i64, i64, &DeviceId)], flags: &[(bool, bool)], min: usize) -> Vec<usize> {
    let mut open: Vec<&DeviceId> = stops.iter().zip(flags).filter(|(_, f)| f.0).map(|(s, _)| s.2).collect();
    open.sort();
    open.dedup();
    let mut back: Vec<&DeviceId> = stops.iter().zip(flags).filter(|(_, f)| f.1).map(|(s, _)| s.2).collect();
    back.sort();
    back.dedup();
    let mut out = Vec::new();
    for group in grouped(stops, min) {
        let mut devices: Vec<&DeviceId> = group.iter().map(|&i| stops[i].2).collect();
        devices.sort();
        devices.dedup();
        let fl: Vec<(bool, bool)> = devices
            .iter()
            .map(|d| {
                let o = open.binary_search(d).is_ok();
                (o, !o && back.binary_search(d).is_ok())
            })
            .collect();
        let keep = explained(&fl);
        out.extend(group.into_iter().filter(|&i| devices.binary_search(&stops[i].2).is_ok_and(|k| keep[k])));
    }
    out.sort_unstable();
    out
}

/// The reported silences: `candidates` still open `confirm` ticks after they opened (shown
/// from then until they close), less those that went quiet as a group (`min` devices whose
/// stops lie within `window` ms; `min <= 1`: no groups) and have not outlasted it (still
/// quiet while the rest of the group has been back for `outlast` ticks). A candidate
/// counts as a group's member while it is open and, once it lasted `confirm`, for `memory`
/// ticks after it closed.
#[allow(clippy::too_many_arguments)]
pub fn report<'s>(
    candidates: VecCollection<'s, u64, Anomaly>,
    confirm: u64,
    min: usize,
    window: i64,
    gap: f64,
    max_gap_ms: i64,
    outlast: u64,
    memory: u64,
) -> VecCollection<'s, u64, Anomaly> {
    let open = candidates.clone().map(|a| (a.device.clone(), onset(&a))).distinct();
    let confirmed = candidates
        .clone()
        .delay(move |t| t + confirm)
        .map(|a| ((a.device.clone(), onset(&a)), a))
        .semijoin(open);
    if min <= 1 {
        return confirmed.map(|(_, a)| a);
    }
    // Members: the open candidates, and the confirmed ones for `memory` after they closed.
    // Tagged: a member (open, or lasted `confirm`: for `memory` after it closed), open, or
    // back for `outlast` (until `memory` after it closed).
    let stop = move |a: &Anomaly, tag: u8| {
        let (net, o) = onset(a);
        (net, (o, latest_stop(a, gap, max_gap_ms) + window, a.device.clone(), tag))
    };
    let confirmed = confirmed.consolidate();
    let lasted = confirmed.inner.clone().filter(|(_, _, d)| *d > 0).as_collection();
    let ends = confirmed.inner.clone().filter(|(_, _, d)| *d < 0).as_collection();
    let closed = ends.clone().delay(move |t| t + memory);
    let back = ends
        .clone()
        .negate()
        .delay(move |t| t + outlast)
        .concat(ends.delay(move |t| t + memory.max(outlast)))
        .map(move |(_, a)| stop(&a, BACK));
    let open = candidates.map(move |a| stop(&a, OPEN));
    let members = lasted
        .concat(closed)
        .map(move |(_, a)| stop(&a, MEMBER))
        .concat(open.clone().map(|(net, (o, hi, d, _))| (net, (o, hi, d, MEMBER))))
        .concat(open)
        .concat(back)
        .distinct();
    let grouped = members
        .reduce_named("SilenceGroups", move |&net, input, output| {
            // One stop per member, with its flags.
            let mut stops: Vec<(i64, i64, &DeviceId)> = Vec::new();
            let mut flags: Vec<(bool, bool)> = Vec::new();
            for (v, _) in input {
                if stops.last() != Some(&(v.0, v.1, &v.2)) {
                    stops.push((v.0, v.1, &v.2));
                    flags.push((false, false));
                }
                let f = flags.last_mut().expect("pushed");
                f.0 |= v.3 == OPEN;
                f.1 |= v.3 == BACK;
            }
            for i in explained_members(&stops, &flags, min) {
                output.push(((stops[i].2.clone(), (net, stops[i].0)), 1isize));
            }
        })
        .map(|(_, key)| key);
    confirmed.antijoin(grouped).map(|(_, a)| a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_the_moment_most_devices_stopped() {
        let names: Vec<DeviceId> = ["a", "b", "c", "d", "e"].iter().map(|&n| DeviceId::from(n)).collect();
        // a, b, c (busy: narrow intervals) stopped around 0; d, slow, may have stopped any
        // time up to 80 s; e's last event came 60 s after the group's latest stop.
        let stops = [
            (-5_000, 5_000, &names[0]),
            (-2_000, 8_000, &names[1]),
            (0, 10_000, &names[2]),
            (-10_000, 80_000, &names[3]),
            (70_000, 80_000, &names[4]),
        ];
        assert_eq!(grouped(&stops, 3), [vec![0, 1, 2, 3]]);
        // Four are needed: still a group of four.
        assert_eq!(grouped(&stops, 4), [vec![0, 1, 2, 3]]);
        assert!(grouped(&stops, 5).is_empty());
        // One device's two silences are one device.
        let twice = [(0, 10_000, &names[0]), (1_000, 9_000, &names[0]), (2_000, 9_000, &names[1])];
        assert!(grouped(&twice, 3).is_empty());
        assert_eq!(grouped(&twice, 2), [vec![0, 1, 2]]);
        // Two groups in turn: the second is what is left once the first is taken.
        let two = [
            (0, 10_000, &names[0]),
            (0, 10_000, &names[1]),
            (50_000, 60_000, &names[2]),
            (55_000, 60_000, &names[3]),
        ];
        assert_eq!(grouped(&two, 2), [vec![0, 1], vec![2, 3]]);
    }

    #[test]
    fn a_member_still_quiet_after_its_group_came_back_is_not_explained_by_it() {
        // (open, back): the group of four is back but one.
        let flags = [(false, true), (false, true), (false, true), (true, false)];
        assert_eq!(explained(&flags), [true, true, true, false]);
        // Only one of four back: the group is still quiet, all are explained.
        let flags = [(false, true), (true, false), (true, false), (true, false)];
        assert_eq!(explained(&flags), [true; 4]);
        // Two groups stopped at one moment and the shorter is back: the longer is still a group.
        let flags = [(false, true), (false, true), (true, false), (true, false)];
        assert_eq!(explained(&flags), [true; 4]);
    }

    #[test]
    fn a_device_still_quiet_is_not_back_even_if_an_earlier_candidate_closed() {
        let names: Vec<DeviceId> = ["a", "b", "c"].iter().map(|&n| DeviceId::from(n)).collect();
        // Each device's silence opened twice with the same onset (the first candidate closed
        // and the next opened before it was confirmed, at another rate: another interval);
        // the first closed `outlast` ago, the second is open: the group is still quiet.
        let mut stops = Vec::new();
        let mut flags = Vec::new();
        for d in &names {
            stops.push((0, 20_000, d));
            flags.push((false, true));
            stops.push((0, 30_000, d));
            flags.push((true, false));
        }
        assert_eq!(explained_members(&stops, &flags, 3), [0, 1, 2, 3, 4, 5]);
        // Two really back, one still quiet: that one outlasted the group.
        let flags = [
            (false, true),
            (false, false),
            (false, true),
            (false, false),
            (true, false),
            (true, false),
        ];
        assert_eq!(explained_members(&stops, &flags, 3), [0, 1, 2, 3]);
    }
}
