//! A quick look at an EVE line's top level: its `timestamp` and `event_type` texts, without
//! parsing the rest (what every worker does for every line; the owner then decodes in full).
//!
//! Invariant: [`scan`] answers only for a line whose top level is well formed (an object of
//! string keys without escapes, each once among the two keys read, and values whose strings
//! and brackets balance) and whose two values, when present, are plain strings without
//! escapes; for anything else it answers `None` and the caller parses in full. On the lines
//! it answers for, its two values are those a JSON parser reads.

/// The top-level `timestamp` and `event_type` strings of a line, when the quick look can
/// tell (see the module invariant).
pub fn scan(line: &str) -> Option<(Option<&str>, Option<&str>)> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let (mut ts, mut kind) = (None, None);
    if b.get(i) == Some(&b'}') {
        return (skip_ws(b, i + 1) == b.len()).then_some((None, None));
    }
    loop {
        // A key: a string without escapes.
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let end = find_special(b, i + 1, false)?;
        if b[end] != b'"' {
            return None;
        }
        let key = &line[i + 1..end];
        i = skip_ws(b, end + 1);
        if b.get(i) != Some(&b':') {
            return None;
        }
        i = skip_ws(b, i + 1);
        let start = i;
        i = skip_value(b, i)?;
        let slot = match key {
            "timestamp" => Some(&mut ts),
            "event_type" => Some(&mut kind),
            _ => None,
        };
        if let Some(slot) = slot {
            let v = &line[start..i];
            let inner = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'))?;
            if slot.is_some() || inner.contains('\\') {
                return None;
            }
            *slot = Some(inner);
        }
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i = skip_ws(b, i + 1),
            Some(b'}') => return (skip_ws(b, i + 1) == b.len()).then_some((ts, kind)),
            _ => return None,
        }
    }
}

/// Suricata's time `YYYY-MM-DDTHH:MM:SS[.ffffff](+HHMM|+HH:MM|Z)` in epoch milliseconds
/// (fractions below the millisecond cut, as chrono's `timestamp_millis` does), read without
/// chrono's format machinery; `None` for any other shape (the caller then asks chrono, so
/// the result never differs from it).
pub fn fast_time(t: &str) -> Option<i64> {
    let b = t.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut i = 19;
    let mut ms = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start || i - start > 9 {
            return None;
        }
        for k in 0..3 {
            ms = ms * 10
                + if start + k < i {
                    i64::from(b[start + k] - b'0')
                } else {
                    0
                };
        }
    }
    let offset_s = match &b[i..] {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest.len() {
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                5 if rest[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                _ => return None,
            };
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *sign == b'-' {
                -o
            } else {
                o
            }
        }
        _ => return None,
    };
    // Days from the civil date (H. Hinnant's algorithm).
    let (yy, mm) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * mm + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + s - offset_s) * 1000 + ms)
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of a string starting at `i` (its opening quote), escapes honoured.
fn skip_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i = find_special(b, i, false)?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
        if i > b.len() {
            return None;
        }
    }
}

/// The first `"` or `\\` at or after `from` (and, with `controls`, the first byte below
/// 0x20), eight bytes at a time: strings are most of an EVE line.
#[inline]
pub fn find_special(b: &[u8], from: usize, controls: bool) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut i = from;
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        // The lowest flagged byte of each test is a true match (borrows only flag above one).
        let mut hits = zero(w ^ (ONES * u64::from(b'"'))) | zero(w ^ (ONES * u64::from(b'\\')));
        if controls {
            hits |= w.wrapping_sub(ONES * 0x20) & !w & HIGHS;
        }
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    b[i.min(b.len())..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || (controls && c < 0x20))
        .map(|k| i + k)
}

/// The end of the value at `i`: a string, a bracketed value (strings inside skipped whole),
/// or a scalar up to the next `,`, `}` or `]`.
fn skip_value(b: &[u8], i: usize) -> Option<usize> {
    match b.get(i)? {
        b'"' => skip_string(b, i),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut j = i;
            while j < b.len() {
                match b[j] {
                    b'"' => {
                        j = skip_string(b, j)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(j + 1);
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            None
        }
        _ => {
            let n = b[i..]
                .iter()
                .position(|c| matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'))
                .unwrap_or(b.len() - i);
            (n > 0).then_some(i + n)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_time_agrees_with_chrono() {
        let chrono_ms = |t: &str| {
            chrono::DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z")
                .ok()
                .map(|d| d.timestamp_millis())
        };
        for t in [
            "2017-07-20T04:12:52.551018+0000",
            "2017-07-20T04:12:52.551918-0600",
            "2000-02-29T23:59:59.999999+05:30",
            "2099-12-31T00:00:00+0000",
            "2024-02-29T12:00:00.1+0000",
            "1970-01-01T00:00:00.000000+0000",
        ] {
            assert_eq!(fast_time(t), chrono_ms(t), "{t}");
            assert!(fast_time(t).is_some(), "{t}");
        }
        for odd in [
            "2023-02-29T00:00:00+0000",
            "2017-13-20T04:12:52+0000",
            "2017-07-20T24:00:00+0000",
            "2017-07-20T04:12:60+0000",
            "2017-07-20 04:12:52+0000",
            "2017-07-20T04:12:52.+0000",
            "2017-07-20T04:12:52",
            "2017-07-20T04:12:52+00",
        ] {
            assert_eq!(fast_time(odd), None, "{odd}");
        }
    }

    #[test]
    fn reads_the_two_top_level_strings_and_gives_up_on_the_unusual() {
        let line = r#"{"timestamp":"2017-07-20T04:12:52.551018+0000","flow":{"event_type":"x","s":"a\"}"},"event_type":"flow","n":[1,{"a":2}]}"#;
        assert_eq!(
            scan(line),
            Some((Some("2017-07-20T04:12:52.551018+0000"), Some("flow")))
        );
        assert_eq!(scan(r#"{"event_type":"alert"}"#), Some((None, Some("alert"))));
        assert_eq!(scan("{}"), Some((None, None)));
        for odd in [
            r#"{"event_type":"alert","event_type":"flow"}"#,
            r#"{"\u0065vent_type":"alert"}"#,
            r#"{"event_type":"al\"ert"}"#,
            r#"{"event_type":3}"#,
            r#"{"event_type":"alert""#,
            r#"{"event_type":"alert"} x"#,
            r#"{"a":{"b":1}"#,
            "[1]",
            "",
        ] {
            assert_eq!(scan(odd), None, "{odd}");
        }
    }

    #[test]
    fn find_special_is_the_first_quote_escape_or_control() {
        let naive = |b: &[u8], from: usize, controls: bool| {
            (from..b.len()).find(|&i| b[i] == b'"' || b[i] == b'\\' || (controls && b[i] < 0x20))
        };
        let alphabet = [
            b'a', b'"', b'\\', 0x1f, 0x20, 0x7f, 0x80, 0xff, 0x00, b'!', b'{', b'}', b'[', b']', b'y', b'Y', 0x79, 0x5d,
        ];
        let mut x: u64 = 7;
        for len in 0..40 {
            for _ in 0..200 {
                let b: Vec<u8> = (0..len)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        if (x >> 60) < 12 {
                            b'a'
                        } else {
                            alphabet[(x >> 33) as usize % alphabet.len()]
                        }
                    })
                    .collect();
                for from in 0..=len {
                    for controls in [false, true] {
                        assert_eq!(
                            find_special(&b, from, controls),
                            naive(&b, from, controls),
                            "{b:?} {from}"
                        );
                    }
                }
            }
        }
    }
}
