//! Mutations: from a valid record to a hostile one, field by field and byte by byte.
//!
//! Invariant: a mutation is a pure function of the sample and the random stream, so a case is
//! reproduced from its seed and index alone. Field-level mutations keep the record's shape
//! (a CSV line, a JSON object) and change one field's text to a value chosen to sit at an
//! edge (numbers at and past every integer width, NaN and infinities, dates at the ends of
//! the accepted range and impossible ones, addresses that almost parse, separators, quotes,
//! control characters, invalid UTF-8); byte-level ones break the shape itself.

use serde_json::{json, Value};

use super::inputs::{Fields, Sample};
use crate::event::CsvField;
use crate::generate::rng::Rng64;

/// Texts at the edges of what the field parsers accept.
const EDGE_TEXTS: &[&str] = &[
    "",
    " ",
    "-",
    "-0",
    "0",
    "00000000000000000000000000001",
    "1.0",
    "1.5",
    "-1",
    "1e3",
    "1e309",
    "-1e309",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "0x10",
    "+5",
    "٣",
    "65535",
    "65536",
    "-65536",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "18000000000000000000.0",
    "1.8e19",
    "1e19",
    "99999999999999999999999999999999999999",
    "946684800000",
    "946684799999",
    "4102444799999",
    "4102444800000",
    "1999-12-31T23:59:59.999Z",
    "2000-01-01T00:00:00Z",
    "2099-12-31T23:59:59.999Z",
    "2100-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:60Z",
    "2026-01-01T00:00:00+25:00",
    "2026-01-01 00:00:00",
    "2026-01-01T00:00:00.1234567891234Z",
    "256.1.1.1",
    "1.2.3",
    "1.2.3.4.5",
    "::ffff:1.2.3.4",
    "::",
    "fe80::1%eth0",
    "[::1]",
    "1.2.3.4:80",
    "\"",
    "\"\"",
    "\"a\"b",
    "a\"b",
    ",",
    ",,,,,,,,,,",
    "\t",
    "\r",
    "\u{0}",
    "\u{1b}[31m",
    "\u{feff}",
    "é",
    "{",
    "}",
    "[]",
    "null",
    "true",
];

/// JSON values at the edges of what the JSON decoders accept.
fn edge_json(rng: &mut Rng64) -> Value {
    match rng.below(16) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!([]),
        3 => json!({}),
        4 => json!(-1),
        5 => json!(1.5),
        6 => json!(u64::MAX),
        7 => json!(i64::MIN),
        8 => json!(f64::MAX),
        9 => json!(-0.0),
        10 => json!([1, "2", null]),
        11 => json!({"nested": {"deeper": [1]}}),
        12 => json!(1e-300),
        13 => Value::String("a".repeat(rng.below(2_000) as usize)),
        _ => Value::String(pick(rng, EDGE_TEXTS).to_string()),
    }
}

/// Bytes that matter to some decoder, for insertions.
const EDGE_BYTES: &[u8] = b",\"{}[]:\\\r\n\t \x00\x7f\x80\xbf\xc0\xc3\xe2\xf0\xff0123456789-+.eE";

fn pick<'a, T>(rng: &mut Rng64, items: &'a [T]) -> &'a T {
    &items[rng.below(items.len() as u64) as usize]
}

/// A hostile record derived from `sample`: one to three mutations, field-level first.
pub(crate) fn mutate(sample: &Sample, rng: &mut Rng64) -> Vec<u8> {
    if rng.chance(0.05) {
        return random_bytes(rng);
    }
    let mut fields = sample.fields.clone();
    let rounds = 1 + rng.below(3);
    let mut byte_rounds = 0;
    for _ in 0..rounds {
        if rng.chance(0.7) {
            mutate_field(&mut fields, rng);
        } else {
            byte_rounds += 1;
        }
    }
    let mut bytes = Sample {
        header: None,
        fields,
        event: sample.event.clone(),
    }
    .render();
    for _ in 0..byte_rounds {
        mutate_bytes(&mut bytes, rng);
    }
    bytes
}

/// Random bytes, sometimes made mostly of the characters records are made of.
fn random_bytes(rng: &mut Rng64) -> Vec<u8> {
    let len = rng.below(300) as usize;
    let structured = rng.chance(0.5);
    (0..len)
        .map(|_| {
            if structured {
                *pick(rng, EDGE_BYTES)
            } else {
                rng.u64() as u8
            }
        })
        .collect()
}

fn mutate_field(fields: &mut Fields, rng: &mut Rng64) {
    match fields {
        Fields::Csv(texts) | Fields::Tsv(texts) => {
            if texts.is_empty() {
                texts.push(pick(rng, EDGE_TEXTS).to_string());
                return;
            }
            let i = rng.below(texts.len() as u64) as usize;
            match rng.below(8) {
                0 => {
                    texts.remove(i);
                }
                1 => texts.insert(i, pick(rng, EDGE_TEXTS).to_string()),
                2 => {
                    let j = rng.below(texts.len() as u64) as usize;
                    texts.swap(i, j);
                }
                // A field written raw, quotes and separators unescaped.
                3 => texts[i] = format!("{RAW}{}", pick(rng, EDGE_TEXTS)),
                4 => texts[i] = format!("{}{}", texts[i], pick(rng, EDGE_TEXTS)),
                _ => texts[i] = pick(rng, EDGE_TEXTS).to_string(),
            }
        }
        Fields::Json(members) => {
            if members.is_empty() {
                members.push(("ts".into(), edge_json(rng)));
                return;
            }
            let i = rng.below(members.len() as u64) as usize;
            match rng.below(8) {
                0 => {
                    members.remove(i);
                }
                // A duplicate key with another value.
                1 => {
                    let key = members[i].0.clone();
                    members.push((key, edge_json(rng)));
                }
                2 => members[i].0 = members[i].0.to_uppercase(),
                3 => {
                    let text = match &members[i].1 {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    members[i].1 = Value::String(format!("{text}{}", pick(rng, EDGE_TEXTS)));
                }
                _ => members[i].1 = edge_json(rng),
            }
        }
    }
}

fn mutate_bytes(bytes: &mut Vec<u8>, rng: &mut Rng64) {
    let len = bytes.len();
    let at = |rng: &mut Rng64| rng.below(len as u64 + 1) as usize;
    match rng.below(7) {
        // Mostly ASCII: a byte past 0x7f nearly always makes the record invalid UTF-8, which
        // the decoders refuse before parsing anything (variant 5 covers that).
        0 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            bytes[i] = if rng.chance(0.9) {
                rng.below(128) as u8
            } else {
                rng.u64() as u8
            };
        }
        1 => {
            let i = at(rng);
            let n = 1 + rng.below(4) as usize;
            for _ in 0..n {
                bytes.insert(i, *pick(rng, EDGE_BYTES));
            }
        }
        2 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            let j = (i + 1 + rng.below(16) as usize).min(len);
            bytes.drain(i..j);
        }
        3 => {
            let i = at(rng);
            bytes.truncate(i);
        }
        4 if len > 0 => {
            let i = rng.below(len as u64) as usize;
            let j = (i + 1 + rng.below(32) as usize).min(len);
            let copy = bytes[i..j].to_vec();
            let k = at(rng);
            bytes.splice(k..k, copy);
        }
        // An overlong or truncated UTF-8 sequence.
        5 => {
            let i = at(rng);
            const BROKEN: [&[u8]; 5] = [b"\xc0\xaf", b"\xe2\x82", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xff"];
            let seq = *pick(rng, &BROKEN);
            bytes.splice(i..i, seq.iter().copied());
        }
        _ => {
            let i = at(rng);
            bytes.truncate(i);
            let tail = random_bytes(rng);
            bytes.extend_from_slice(&tail[..tail.len().min(40)]);
        }
    }
}

/// Marks a field [`mutate_field`] wants written as it is, unquoted whatever it holds.
const RAW: char = '\u{1}';

/// Renders `text` as a CSV field, quoted as RFC 4180 says, unless it carries the [`RAW`] mark.
pub(super) fn csv_text(text: &str) -> String {
    match text.strip_prefix(RAW) {
        Some(raw) => raw.to_string(),
        None => CsvField(text).to_string(),
    }
}
