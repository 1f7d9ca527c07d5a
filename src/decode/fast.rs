//! Fast paths of the field parsers and of the CSV split, for what generators and most real
//! sources write: lines without quotes, plain digits, dotted quads, short decimals. They read
//! eight bytes at a time where that pays (SWAR: bytes compared and digits combined inside one
//! `u64`, no `unsafe`).
//!
//! Invariant: each function here returns exactly what the general path gives for its input
//! (`str::parse` for numbers and addresses, `csv::split_fields` for a line), or `None`, and
//! then the caller takes the general path. The tests (`fast_tests.rs`) compare both on edge
//! cases and on many generated inputs.

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The high bit of each byte of `word` that equals `byte`, and no other bit (exact: no
/// carry crosses a byte, so no false positive).
#[inline]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// Bytes `at..at + 8` of `b`, little-endian (the first byte lowest).
#[inline]
fn word(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"))
}

/// Eight ASCII digits (the first one most significant, in the lowest byte), or None when a
/// byte is not an ASCII digit.
#[inline]
fn eight_digits(w: u64) -> Option<u64> {
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    // A byte passes when its high nibble is 3 and stays 3 with 6 added (0x30..=0x39); a
    // carry out of a byte happens only for a byte above 0xF9, which fails by its own nibble.
    if (w & HIGH) | ((w.wrapping_add(0x0606_0606_0606_0606) & HIGH) >> 4) != 0x3333_3333_3333_3333 {
        return None;
    }
    let v = w - ZEROS;
    // Pairs, then quads, then the eight: each step multiplies the more significant half.
    let v = (v.wrapping_mul(10 * 256 + 1) >> 8) & 0x00FF_00FF_00FF_00FF;
    let v = (v.wrapping_mul(100 * 65_536 + 1) >> 16) & 0x0000_FFFF_0000_FFFF;
    Some(v.wrapping_mul(10_000 * (1 << 32) + 1) >> 32)
}

const POW10: [u64; 19] = [
    1,
    10,
    100,
    1_000,
    10_000,
    100_000,
    1_000_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
    10_000_000_000,
    100_000_000_000,
    1_000_000_000_000,
    10_000_000_000_000,
    100_000_000_000_000,
    1_000_000_000_000_000,
    10_000_000_000_000_000,
    100_000_000_000_000_000,
    1_000_000_000_000_000_000,
];

/// The value of `t` when it is 1 to 18 ASCII digits (what `str::parse::<u64>` gives for them,
/// without overflow), else None.
#[inline]
pub(crate) fn digits(t: &[u8]) -> Option<u64> {
    let n = t.len();
    match n {
        8 => eight_digits(word(t, 0)),
        // The first eight, then the last eight with the bytes they share with the first
        // (the lowest 16 - n) read as zeros.
        9..=16 => {
            let high = eight_digits(word(t, 0))?;
            let shared = u64::MAX.checked_shr(8 * (n as u32 - 8)).unwrap_or(0);
            let low = eight_digits((word(t, n - 8) & !shared) | (ZEROS & shared))?;
            Some(high * POW10[n - 8] + low)
        }
        1..=18 => {
            let mut v = 0u64;
            for &c in t {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    return None;
                }
                v = v * 10 + u64::from(d);
            }
            Some(v)
        }
        _ => None,
    }
}

/// A dotted-quad IPv4 address (as a big-endian `u32`) exactly as `Ipv4Addr`'s parser reads
/// one: four groups of one to three digits, no leading zero in a group of two or more, each
/// at most 255, nothing else; else None.
#[inline]
pub(crate) fn dotted_quad(b: &[u8]) -> Option<u32> {
    if !(7..=15).contains(&b.len()) {
        return None;
    }
    let (mut addr, mut at) = octet(b, 0)?;
    for _ in 0..3 {
        if b.get(at) != Some(&b'.') {
            return None;
        }
        let (v, next) = octet(b, at + 1)?;
        addr = addr << 8 | v;
        at = next;
    }
    (at == b.len()).then_some(addr)
}

/// The group of one to three digits at `at` (at most 255, no leading zero unless alone) and
/// where it ends; None when there is none, or a fourth digit follows.
#[inline(always)]
fn octet(b: &[u8], at: usize) -> Option<(u32, usize)> {
    let digit = |k: usize| match b.get(at + k) {
        Some(c) if c.is_ascii_digit() => Some(u32::from(c - b'0')),
        _ => None,
    };
    let d0 = digit(0)?;
    let Some(d1) = digit(1) else { return Some((d0, at + 1)) };
    if d0 == 0 {
        return None;
    }
    let Some(d2) = digit(2) else {
        return Some((d0 * 10 + d1, at + 2));
    };
    let v = d0 * 100 + d1 * 10 + d2;
    (v <= 255 && digit(3).is_none()).then_some((v, at + 3))
}

/// What `str::parse::<f64>` gives for `t` when `t` is an optional `-`, digits, and optionally
/// a `.` and more digits, 19 digits at most, whose digits read as an integer are at most 2^53:
/// that integer and the power of ten it is divided by are exact doubles, so their quotient is
/// the correctly rounded value, as the standard parser's is. Else None.
#[inline]
pub(crate) fn decimal(t: &[u8]) -> Option<f64> {
    let (negative, b) = match t {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, t),
    };
    if b.len() > 20 {
        return None;
    }
    // Wrapping: a value with more than 19 digits (which may wrap) is refused below.
    let mut m = 0u64;
    let mut i = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        m = m.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut scale = 0;
    if i < b.len() {
        if b[i] != b'.' {
            return None;
        }
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            m = m.wrapping_mul(10).wrapping_add(u64::from(b[i] - b'0'));
            i += 1;
        }
        scale = i - start;
        if scale == 0 || i != b.len() || i > 20 {
            return None;
        }
    } else if i > 19 {
        return None;
    }
    if m > 1 << 53 {
        return None;
    }
    let v = m as f64 / POW10[scale] as f64;
    Some(if negative { -v } else { v })
}

/// Most fields [`PlainFields::split`] takes (the last one included); a line with more takes
/// the general split.
pub(crate) const MAX_PLAIN_FIELDS: usize = 16;

/// The fields of a CSV line without a quote: what `split_fields` gives for it, without a
/// copy (each field is the text between two commas).
pub(crate) struct PlainFields<'a> {
    line: &'a str,
    /// Where each field ends (its comma, or the line's end for the last).
    ends: [u32; MAX_PLAIN_FIELDS],
    len: usize,
}

impl<'a> PlainFields<'a> {
    /// Splits `line` at its commas, eight bytes at a time; None when the line holds a quote
    /// (which may open a quoted field), has more than [`MAX_PLAIN_FIELDS`] fields, or is
    /// longer than a `u32` counts.
    #[inline(always)]
    pub fn split(line: &'a str) -> Option<Self> {
        let b = line.as_bytes();
        let end = u32::try_from(b.len()).ok()?;
        let mut fields = PlainFields {
            line,
            ends: [0; MAX_PLAIN_FIELDS],
            len: 0,
        };
        let mut at = 0;
        while at + 8 <= b.len() {
            let w = word(b, at);
            if bytes_equal(w, b'"') != 0 {
                return None;
            }
            let mut commas = bytes_equal(w, b',');
            while commas != 0 {
                fields.end_field(at as u32 + commas.trailing_zeros() / 8)?;
                commas &= commas - 1;
            }
            at += 8;
        }
        for (i, &c) in b[at..].iter().enumerate() {
            if c == b'"' {
                return None;
            }
            if c == b',' {
                fields.end_field((at + i) as u32)?;
            }
        }
        fields.ends[fields.len] = end;
        fields.len += 1;
        Some(fields)
    }

    /// A field ends at `at` (a comma); None when the last field would find no room.
    #[inline(always)]
    fn end_field(&mut self, at: u32) -> Option<()> {
        if self.len + 1 >= MAX_PLAIN_FIELDS {
            return None;
        }
        self.ends[self.len] = at;
        self.len += 1;
        Some(())
    }

    /// How many fields the line has.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Field `i` (`i < len()`).
    #[inline(always)]
    pub fn get(&self, i: usize) -> &'a str {
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize + 1,
        };
        &self.line[start..self.ends[i] as usize]
    }
}

#[cfg(test)]
#[path = "fast_tests.rs"]
pub(crate) mod tests;
