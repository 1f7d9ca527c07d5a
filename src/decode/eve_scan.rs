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
        let end = i + 1 + memchr::memchr2(b'"', b'\\', &b[i + 1..])?;
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
        i += memchr::memchr2(b'"', b'\\', &b[i..])?;
        if b[i] == b'"' {
            return Some(i + 1);
        }
        i += 2;
        if i > b.len() {
            return None;
        }
    }
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
}
