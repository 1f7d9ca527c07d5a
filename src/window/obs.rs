//! What a device's windows keep of one event ([`Obs`]), and how its sums enter and leave a
//! window's statistics ([`add`], [`remove`]; saturating, see `super::sliding`'s header).
//!
//! Invariant: an `Obs` is 64 bytes (checked at compile time): every event held by a window
//! sliding every tick is one, so its size is most of the engine's memory per device.

use super::stats::{quantize, WindowStats};

/// What the window keeps of one event (64 bytes: see the module header).
#[derive(Clone, Copy, Debug)]
pub struct Obs {
    pub tick: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets: u64,
    /// Destination address (0 = absent), as two halves: a `u128` field would align the
    /// record to 16 bytes and make it 80.
    pub(super) dst_hi: u64,
    pub(super) dst_lo: u64,
    /// Reading in micro-units, or [`ABSENT`] / [`INVALID`] (quantized readings are within
    /// ±1e15, far from both).
    pub(super) value: i64,
    /// Destination port (0 = absent).
    pub port: u16,
    pub external: bool,
    pub(super) dst_first: bool,
    pub(super) port_first: bool,
    /// Whether a later tick's event has the same destination (port): then this event's
    /// expiry removes it from no window (set by that event's insertion, so that an expiry
    /// needs no look-up).
    pub(super) dst_superseded: bool,
    pub(super) port_superseded: bool,
}

const _: () = assert!(std::mem::size_of::<Obs>() == 64);

/// `Obs::value` of an event without a reading.
const ABSENT: i64 = i64::MIN;
/// `Obs::value` of an invalid reading (NaN, infinite, beyond the limit).
const INVALID: i64 = i64::MIN + 1;

impl Obs {
    /// The fields of an event that windows keep (positional: this is the hot path).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tick: u64,
        bytes_out: u64,
        bytes_in: u64,
        packets: u64,
        external: bool,
        dst: u128,
        port: u16,
        value: Option<f64>,
    ) -> Self {
        Obs {
            tick,
            bytes_out,
            bytes_in,
            packets,
            external,
            dst_hi: (dst >> 64) as u64,
            dst_lo: dst as u64,
            port,
            value: match value.map(quantize) {
                None => ABSENT,
                Some(None) => INVALID,
                Some(Some(q)) => q,
            },
            dst_first: false,
            port_first: false,
            dst_superseded: false,
            port_superseded: false,
        }
    }

    /// Destination address (0 = absent).
    pub fn dst(&self) -> u128 {
        (u128::from(self.dst_hi) << 64) | u128::from(self.dst_lo)
    }

    /// Reading: `Some(Some(q))` valid, `Some(None)` invalid, `None` absent.
    pub fn value(&self) -> Option<Option<i64>> {
        match self.value {
            ABSENT => None,
            INVALID => Some(None),
            q => Some(Some(q)),
        }
    }
}

/// Adds an event's sums to a window's, saturating (see the module header).
#[inline]
pub(super) fn add(s: &mut WindowStats, o: &Obs) {
    s.count += 1;
    s.bytes_out = s.bytes_out.saturating_add(o.bytes_out);
    s.bytes_in = s.bytes_in.saturating_add(o.bytes_in);
    s.packets = s.packets.saturating_add(o.packets);
    if o.external {
        s.bytes_out_external = s.bytes_out_external.saturating_add(o.bytes_out);
    }
    match o.value() {
        Some(Some(q)) => {
            s.value_count += 1;
            s.value_sum += q as i128;
            s.value_sumsq = s.value_sumsq.saturating_add((q as i128) * (q as i128));
        }
        Some(None) => s.value_invalid += 1,
        None => {}
    }
}

/// Takes an event's sums out of a window's, saturating at 0 (see the module header).
#[inline]
pub(super) fn remove(s: &mut WindowStats, o: &Obs) {
    s.count -= 1;
    s.bytes_out = s.bytes_out.saturating_sub(o.bytes_out);
    s.bytes_in = s.bytes_in.saturating_sub(o.bytes_in);
    s.packets = s.packets.saturating_sub(o.packets);
    if o.external {
        s.bytes_out_external = s.bytes_out_external.saturating_sub(o.bytes_out);
    }
    match o.value() {
        Some(Some(q)) => {
            s.value_count -= 1;
            s.value_sum -= q as i128;
            s.value_sumsq = s.value_sumsq.saturating_sub((q as i128) * (q as i128)).max(0);
        }
        Some(None) => s.value_invalid -= 1,
        None => {}
    }
}
