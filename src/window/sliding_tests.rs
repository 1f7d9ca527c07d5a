//! Tests of [`super::DeviceSlide`]: window boundaries and distincts by hand, then the
//! stepped and exact windows against their definition at every tick (random events,
//! buckets split by overflow, a re-based step count) and saturating sums.

use super::*;

#[test]
fn an_observation_is_64_bytes_and_round_trips() {
    assert_eq!(std::mem::size_of::<Obs>(), 64);
    let o = Obs::new(7, 1, 2, 3, true, u128::MAX - 5, 443, Some(-2.5));
    assert_eq!((o.dst(), o.value()), (u128::MAX - 5, Some(Some(-2_500_000))));
    assert_eq!(Obs::new(7, 1, 2, 3, false, 0, 0, None).value(), None);
    assert_eq!(Obs::new(7, 1, 2, 3, false, 0, 0, Some(f64::NAN)).value(), Some(None));
}

fn obs(tick: u64, dst: u128, port: u16, value: Option<f64>) -> Obs {
    Obs::new(tick, 10, 1, 1, dst > 100, dst, port, value)
}

#[test]
fn window_boundaries_and_distincts() {
    let mut d = DeviceSlide::new(&[2, 5], &[1, 1]);
    d.advance_to(0);
    d.insert(obs(0, 1, 80, Some(1.0)));
    d.insert(obs(0, 1, 80, Some(3.0)));
    d.advance_to(1);
    d.insert(obs(1, 200, 443, Some(2.0)));
    assert_eq!(d.stats(0).count, 3);
    assert_eq!(d.stats(0).distinct_dst, 2);
    assert_eq!(d.stats(0).value_min, Some(1_000_000));
    d.advance_to(2); // tick 0 leaves the 2-window
    assert_eq!(d.stats(0).count, 1);
    assert_eq!(d.stats(0).distinct_dst, 1);
    assert_eq!(d.stats(0).distinct_ports, 1);
    assert_eq!(d.stats(0).value_min, Some(2_000_000));
    assert_eq!(d.stats(0).bytes_out_external, 10);
    assert_eq!(d.stats(1).count, 3);
    d.insert(obs(2, 1, 80, None));
    assert_eq!(d.stats(0).distinct_dst, 2);
    d.advance_to(5); // ticks 0 leave the 5-window; dst 1 is still there (tick 2)
    assert_eq!(d.stats(1).count, 2);
    assert_eq!(d.stats(1).distinct_dst, 2);
    assert_eq!(d.stats(0).count, 0);
    assert_eq!(d.stats(0).distinct_dst, 0);
    d.advance_to(7);
    assert!(d.is_empty());
    assert_eq!(d.stats(1), &WindowStats::default());
}

/// The statistics of `events` inside `(t / step + 1) * step - len <= tick <= t`, from the
/// definition.
fn brute(events: &[Obs], t: u64, len: u64, step: u64) -> WindowStats {
    let inside: Vec<&Obs> = events
        .iter()
        .filter(|o| o.tick <= t && o.tick + len >= (t / step + 1) * step)
        .collect();
    let mut s = WindowStats::default();
    for o in &inside {
        add(&mut s, o);
    }
    let valid = || inside.iter().filter_map(|o| o.value().flatten());
    s.value_min = valid().min();
    s.value_max = valid().max();
    let dsts: std::collections::BTreeSet<u128> = inside.iter().map(|o| o.dst()).filter(|&d| d != 0).collect();
    let ports: std::collections::BTreeSet<u16> = inside.iter().map(|o| o.port).filter(|&p| p != 0).collect();
    s.distinct_dst = dsts.len() as u32;
    s.distinct_ports = ports.len() as u32;
    s
}

/// Every window of `d` at tick `t` equals [`brute`] over the events inserted so far.
fn assert_windows_are_their_definition(d: &DeviceSlide, seen: &[Obs], lens: &[u64], steps: &[u64], t: u64) {
    for (i, (&len, &step)) in lens.iter().zip(steps).enumerate() {
        assert_eq!(d.stats(i), &brute(seen, t, len, step), "window {i} at tick {t}");
    }
}

#[test]
fn sums_saturate_instead_of_wrapping_and_recover_when_the_events_leave() {
    // Windows of 2 and 4 ticks sliding every tick, and of 8 advancing in steps of 4.
    let mut d = DeviceSlide::new(&[2, 4, 8], &[1, 1, 4]);
    let huge = u64::MAX / 3 + 1;
    let big = |tick| Obs::new(tick, huge, huge, huge, true, 200, 443, Some(1e9));
    d.advance_to(0);
    for _ in 0..2 {
        d.insert(big(0));
    }
    for i in 0..3 {
        assert_eq!(d.stats(i).bytes_out, 2 * huge, "window {i}: exact while it fits");
    }
    d.insert(big(0));
    d.insert(big(0));
    for i in 0..3 {
        let s = d.stats(i);
        assert_eq!(s.count, 4);
        assert_eq!(
            (s.bytes_out, s.bytes_in, s.packets, s.bytes_out_external),
            (u64::MAX, u64::MAX, u64::MAX, u64::MAX),
            "window {i} saturates, never wraps"
        );
        assert_eq!(s.value_sum, 4 * 1_000_000_000_000_000);
    }
    // Many readings at the limit: the sum of squares saturates too, never negative.
    let mut s = WindowStats {
        value_sumsq: i128::MAX - 5,
        ..Default::default()
    };
    add(&mut s, &Obs::new(0, 0, 0, 0, false, 0, 0, Some(-1e9)));
    assert_eq!(s.value_sumsq, i128::MAX);
    remove(&mut s, &Obs::new(0, 0, 0, 0, false, 0, 0, Some(-1e9)));
    assert!(s.value_sumsq >= 0);
    // Once every event has left, every window is back at zero.
    d.advance_to(8);
    for i in 0..3 {
        assert_eq!(d.stats(i), &WindowStats::default(), "window {i}");
    }
    // Below saturation adding and removing is exact: many events at the decoder's bound.
    let max = crate::event::MAX_BYTES;
    let mut e = DeviceSlide::new(&[2, 4, 8], &[1, 1, 4]);
    for t in 0..6 {
        e.advance_to(t);
        for _ in 0..1000 {
            e.insert(Obs::new(t, max, max, crate::event::MAX_PACKETS, true, 200, 443, None));
        }
    }
    assert_eq!(e.stats(0).bytes_out, 2 * 1000 * max);
    assert_eq!(e.stats(1).bytes_out, 4 * 1000 * max);
    assert_eq!(e.stats(2).bytes_out, 6 * 1000 * max, "steps 0 and 1: ticks 0 to 5");
    assert_eq!(e.stats(2).packets, 6 * 1000 * crate::event::MAX_PACKETS);
}

#[test]
fn stepped_and_exact_windows_equal_their_definition_at_every_tick() {
    let (lens, steps) = ([2, 3, 6, 12], [1, 1, 3, 3]);
    let mut d = DeviceSlide::new(&lens, &steps);
    let mut seen = Vec::new();
    let mut next = super::super::test_random(0x2545_f491_4f6c_dd1d);
    for t in 0..400u64 {
        d.advance_to(t);
        // Bursts and gaps: some ticks have several events, some none.
        let n = [0, 0, 1, 1, 2, 4][next(6) as usize];
        for _ in 0..n {
            let value = match next(5) {
                0 => None,
                1 => Some(f64::NAN),
                v => Some(v as f64 - next(100) as f64),
            };
            let o = Obs::new(t, next(50), 1, 1, next(2) == 0, next(6) as u128, next(4) as u16, value);
            d.insert(o);
            seen.push(o);
        }
        assert_windows_are_their_definition(&d, &seen, &lens, &steps, t);
    }
    // Everything leaves: the maps and buckets empty with the windows.
    d.advance_to(1_000);
    assert!(d.is_empty() && d.dst_last.is_empty() && d.port_last.is_empty());
}

#[test]
fn a_step_whose_sums_overflow_one_bucket_takes_several_and_stays_exact() {
    // 4,000 readings of 1e9 per tick: a bucket's i64 sum of readings (micro-units) holds
    // about 9,200, so each 3-tick step takes two buckets or more.
    let (lens, steps) = ([2, 6, 12], [1, 3, 3]);
    let mut d = DeviceSlide::new(&lens, &steps);
    let mut seen = Vec::new();
    for t in 0..30u64 {
        d.advance_to(t);
        for i in 0..4_000u64 {
            let dst = (t * 7 + i) % 5 + 1;
            let o = Obs::new(t, 1, 1, 1, false, dst as u128, (i % 3) as u16 + 1, Some(1e9));
            d.insert(o);
            seen.push(o);
        }
        if t % 3 == 2 {
            assert!(d.buckets.len() >= 2, "tick {t}: 12,000 readings in a step split it");
        }
        assert_windows_are_their_definition(&d, &seen, &lens, &steps, t);
    }
    d.advance_to(100);
    assert!(d.is_empty() && d.dst_last.is_empty() && d.port_last.is_empty());
}

#[test]
fn buckets_count_their_steps_from_a_new_base_when_the_old_one_is_too_far() {
    let (lens, steps) = ([2, 6, 12], [1, 3, 3]);
    let mut d = DeviceSlide::new(&lens, &steps);
    let mut seen = Vec::new();
    let start = 3 * (1u64 << 33);
    let mut next = super::super::test_random(0x9e37_79b9_7f4a_7c15);
    for t in start..start + 60 {
        d.advance_to(t);
        for _ in 0..next(4) {
            let o = Obs::new(
                t,
                next(50),
                1,
                1,
                false,
                next(6) as u128,
                next(4) as u16,
                Some(next(9) as f64),
            );
            d.insert(o);
            seen.push(o);
        }
        if t == start + 5 {
            // As if the base had been set 2^32 - 3 steps ago: the next steps no longer fit.
            let back = (1u64 << 32) - 3;
            d.bucket_base -= back;
            for b in d.buckets.iter_mut() {
                b.rel += back as u32;
            }
        }
        assert_windows_are_their_definition(&d, &seen, &lens, &steps, t);
    }
    assert!(d.bucket_base >= start / 3, "rebased onto the oldest bucket's step");
}
