//! The full read of an EVE line in one hand-written pass: the keys vigil reads, and every
//! other value checked for JSON shape and skipped, without serde's visitor machinery.
//!
//! Invariant: [`parse`] answers only for lines it reads exactly as `serde_json` does, and
//! then gives the very [`Eve`] the serde path builds: the line is one JSON object (JSON
//! whitespace around it), every string in it — keys, values, nested — is free of escapes and
//! control characters, every number read into a field is a plain non-negative integer that
//! fits `u64` (other numbers are checked for JSON's number grammar and skipped), nesting stays
//! below [`MAX_DEPTH`], `flow` / `netflow` are objects when present. For anything else it
//! answers `None` and the caller parses with serde, which then also words the error.
//! `suricata::tests` and the decode fuzzer (`vigil fuzz decode --format suricata`) hold the
//! two paths to the same answer.

use std::borrow::Cow;

use super::suricata::{once_fast, Counters, Eve, EveDevice, EveSlot, Scalar};

/// Deeper nesting goes to serde (whose own limit is 128).
pub const MAX_DEPTH: usize = 64;

struct Walker<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Walker<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A string without escapes or control characters, at its opening quote.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        if self.peek() != Some(b'"') {
            return None;
        }
        let start = self.i + 1;
        let end = super::eve_scan::find_special(self.b, start, true)?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        // Both ends are ASCII quotes: char boundaries of the `&str`.
        Some(&self.s[start..end])
    }

    /// A number checked against JSON's grammar; its value when it is a plain non-negative
    /// integer that fits `u64`, else `Err(())` for a valid number of another kind.
    fn number(&mut self) -> Option<Result<u64, ()>> {
        let b = self.b;
        let mut j = self.i;
        let negative = b.get(j) == Some(&b'-');
        if negative {
            j += 1;
        }
        let digits = j;
        match b.get(j) {
            Some(b'0') => j += 1,
            Some(b'1'..=b'9') => {
                while let Some(b'0'..=b'9') = b.get(j) {
                    j += 1;
                }
            }
            _ => return None,
        }
        let int_end = j;
        let mut plain = !negative;
        if b.get(j) == Some(&b'.') {
            j += 1;
            let f = j;
            while let Some(b'0'..=b'9') = b.get(j) {
                j += 1;
            }
            if j == f {
                return None;
            }
            plain = false;
        }
        if let Some(b'e' | b'E') = b.get(j) {
            j += 1;
            if let Some(b'+' | b'-') = b.get(j) {
                j += 1;
            }
            let e = j;
            while let Some(b'0'..=b'9') = b.get(j) {
                j += 1;
            }
            if j == e {
                return None;
            }
            plain = false;
        }
        self.i = j;
        if !plain {
            return Some(Err(()));
        }
        let mut v: u64 = 0;
        for &c in &b[digits..int_end] {
            v = match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(c - b'0'))) {
                Some(v) => v,
                None => return Some(Err(())),
            };
        }
        Some(Ok(v))
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    /// Any value, checked and skipped.
    fn skip(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => self.object(depth + 1, |w, _| w.skip(depth + 1)),
            b'[' => {
                if depth + 1 > MAX_DEPTH {
                    return None;
                }
                self.i += 1;
                self.ws();
                if self.peek()? == b']' {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.skip(depth + 1)?;
                    self.ws();
                    match self.peek()? {
                        b',' => self.i += 1,
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    /// A value read as serde reads a [`Scalar`]; `None` for what serde reads otherwise
    /// (numbers that are not plain `u64`s) or what is not JSON.
    fn scalar(&mut self) -> Option<Scalar<'a>> {
        match self.peek()? {
            b'"' => Some(Scalar::Str(Cow::Borrowed(self.string()?))),
            b'{' | b'[' => self.skip(1).map(|()| Scalar::Other),
            b't' => self.literal(b"true").map(|()| Scalar::Other),
            b'f' => self.literal(b"false").map(|()| Scalar::Other),
            b'n' => self.literal(b"null").map(|()| Scalar::Absent),
            _ => match self.number()? {
                Ok(v) => Some(Scalar::U64(v)),
                Err(()) => None,
            },
        }
    }

    /// An object at its `{`: `on_value` reads the value of each key (positioned on it).
    fn object(&mut self, depth: usize, mut on_value: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        if depth > MAX_DEPTH || self.peek()? != b'{' {
            return None;
        }
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            let key = self.string()?;
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            self.ws();
            on_value(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn counters(&mut self) -> Option<Counters<'a>> {
        let mut c = Counters {
            present: true,
            ..Counters::default()
        };
        self.object(2, |w, key| match c.slot(key) {
            Some(slot) => once_fast(slot, w.scalar()?),
            None => w.skip(2),
        })?;
        Some(c)
    }
}

/// The keys vigil reads from `line`, when the hand-written pass can read it as serde does
/// (see the module invariant); `None`: ask serde.
pub(super) fn parse<'a>(line: &'a str, device: &EveDevice) -> Option<Eve<'a>> {
    let mut w = Walker {
        s: line,
        b: line.as_bytes(),
        i: 0,
    };
    let field = match device {
        EveDevice::Field(name) => Some(name.as_ref()),
        _ => None,
    };
    let mut e = Eve::default();
    w.ws();
    w.object(1, |w, key| {
        if field == Some(key) {
            let v = w.scalar()?;
            return e.put_device(key, v);
        }
        match e.slot(key) {
            EveSlot::Scalar(slot) => once_fast(slot, w.scalar()?),
            EveSlot::Counters(target) => {
                let c = w.counters()?;
                if target.present {
                    return None;
                }
                *target = c;
                Some(())
            }
            EveSlot::Other => w.skip(1),
        }
    })?;
    w.ws();
    (w.i == w.b.len()).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::suricata::tests::FLOW;
    use crate::decode::suricata::{Peeked, SuricataDecoder};

    #[test]
    fn the_fast_read_answers_for_ordinary_lines_and_agrees_with_serde_everywhere() {
        let devices = [
            EveDevice::Source,
            EveDevice::parse("field:host").unwrap(),
            EveDevice::parse("field:flow").unwrap(),
            EveDevice::parse("field:src_ip").unwrap(),
        ];
        assert!(parse(FLOW, &EveDevice::Source).is_some());
        let mut lines: Vec<String> = vec![FLOW.to_string()];
        // Every byte dropped, and odd text put at every place: the fast read must answer as
        // serde does or not at all.
        for i in 0..FLOW.len() {
            if FLOW.is_char_boundary(i) && FLOW.is_char_boundary(i + 1) {
                lines.push(format!("{}{}", &FLOW[..i], &FLOW[i + 1..]));
            }
            for odd in [
                "\\", "\"", ",", "-", "0", "1e5", "}", "{", "[", " ", "\u{1}", "null", "é",
            ] {
                if FLOW.is_char_boundary(i) {
                    lines.push(format!("{}{odd}{}", &FLOW[..i], &FLOW[i..]));
                }
            }
        }
        for extra in [
            r#""bytes_toserver":78.0"#,
            r#""bytes_toserver":-0"#,
            r#""bytes_toserver":18446744073709551616"#,
            r#""bytes_toserver":null,"bytes_toserver":5"#,
            r#""bytes_toserver":01"#,
            r#""bytes_toserver":[1,{"a":[true,false,null]}]"#,
            r#""bytes_toserver":"78""#,
        ] {
            lines.push(FLOW.replacen(r#""bytes_toserver":78"#, extra, 1));
        }
        lines.push(FLOW.replacen(r#""host":"sensor-1""#, r#""host":"a","flow":{}"#, 1));
        lines.push(FLOW.replacen(r#""host":"sensor-1""#, r#""host":null,"host":"b""#, 1));
        lines.push(format!(" \t{FLOW}\r\n"));
        let mut answered = 0;
        for line in &lines {
            for d in &devices {
                if let Err(e) = super::super::suricata::check_fast_parse(line, d) {
                    panic!("{line}: {e}");
                }
                answered += usize::from(parse(line, d).is_some());
            }
        }
        assert!(
            answered > lines.len(),
            "the fast read answered for {answered} of {}",
            lines.len() * 4
        );
    }

    #[test]
    fn one_read_gives_what_peek_and_decode_give() {
        let d = SuricataDecoder::default();
        let alert = r#"{"timestamp":"2017-07-20T04:12:52.551018+0000","event_type":"alert","alert":{"signature":"x"}}"#;
        for line in [
            FLOW,
            alert,
            r#"{"event_type":"flow","timestamp":7}"#,
            r#"{"event_type":5}"#,
        ] {
            let (peeked, decoded) = d.peek_decode(line).expect("plain lines are read");
            assert_eq!(peeked, d.peek(line), "{line}");
            match (decoded, d.decode(line)) {
                (Ok(a), Ok(b)) => assert_eq!(a, b),
                (Err(a), Err(b)) => assert_eq!((a.reason, a.detail), (b.reason, b.detail)),
                (a, b) => panic!("{line}: {a:?} against {b:?}"),
            }
        }
        assert!(matches!(d.peek_decode(alert), Some((Peeked::Skip(0), _))));
    }
}
