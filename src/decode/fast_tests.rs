//! Every fast path against the general one it stands for: on edge cases and on many
//! generated inputs, the fast path gives the same answer or none (and no plain input is left
//! to the general path).

use super::*;
use crate::decode::csv::{split_fields, Fields};

/// A small deterministic generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A string of fewer than `max` characters drawn from `alphabet`.
    pub fn text_below(&mut self, alphabet: &[&str], max: usize) -> String {
        let len = self.below(max);
        self.text(alphabet, len)
    }

    /// A string of `len` characters drawn from `alphabet`.
    pub fn text(&mut self, alphabet: &[&str], len: usize) -> String {
        (0..len).map(|_| alphabet[self.below(alphabet.len())]).collect()
    }
}

const EDGES: &[&str] = &[
    "",
    "0",
    "00",
    "-0",
    "+0",
    "-",
    "+",
    ".",
    "-.",
    "1.",
    ".5",
    "-.5",
    "0.0",
    "-0.0",
    "007",
    "007.50",
    "1e3",
    "1E3",
    "1.5e-3",
    " 7",
    "7 ",
    "7\u{a0}",
    "٣",
    "12\u{e9}",
    "1_000",
    "0x10",
    "inf",
    "NaN",
    "12345678",
    "99999999",
    "123456789",
    "999999999999999999",
    "1000000000000000000",
    "9999999999999999999",
    "18446744073709551615",
    "18446744073709551616",
    "1767571200001",
    "1767571200001.5",
    "9007199254740992",
    "9007199254740993",
    "-9007199254740992",
    "900719925474099.3",
    "9007199254740.993",
    "0.1",
    "0.30000000000000004",
    "1234567890123456789",
    "12345678901234567890",
    "1.234567890123456789",
    "1.2345678901234567890",
    "0.0000000000000000001",
    "1..2",
    "1.2.3",
    "1.2.3.4",
    "01.2.3.4",
    "0.0.0.0",
    "255.255.255.255",
    "256.0.0.1",
    "1.2.3.256",
    "1.2.3",
    "1.2.3.",
    ".1.2.3",
    "1.2.3.4.",
    "1.2.3.4.5",
    "1..3.4",
    "1.2.3.04",
    "1.2.3.00",
    "001.2.3.4",
    "1.2.3.4 ",
    "1.2.3.4x",
    "1234.1.1.1",
    "100.200.255.249",
    "::1",
    "::ffff:1.2.3.4",
    "1.2.3.-4",
    "1.2.3.+4",
    "10.0.0.50",
    "\u{661}.2.3.4",
];

fn parse_u64(t: &[u8]) -> Option<u64> {
    std::str::from_utf8(t).ok()?.parse().ok()
}

fn check_digits(t: &[u8]) {
    let fast = digits(t);
    if let Some(v) = fast {
        assert_eq!(Some(v), parse_u64(t), "digits {:?}", String::from_utf8_lossy(t));
    }
    if (1..=18).contains(&t.len()) && t.iter().all(u8::is_ascii_digit) {
        assert!(fast.is_some(), "digits misses {:?}", String::from_utf8_lossy(t));
    }
}

#[test]
fn digits_read_as_the_standard_parser_does() {
    for t in EDGES {
        check_digits(t.as_bytes());
    }
    let mut rng = Rng::new(7);
    for _ in 0..200_000 {
        let len = rng.below(21);
        let mut t: Vec<u8> = (0..len).map(|_| b'0' + rng.below(10) as u8).collect();
        check_digits(&t);
        if len > 0 {
            // One byte that is not a digit, at any place: every byte value.
            let at = rng.below(len);
            t[at] = rng.next() as u8;
            check_digits(&t);
        }
    }
    // Every byte value at every place of the SWAR lengths.
    for len in 8..=16 {
        for at in 0..len {
            for b in 0..=255u8 {
                let mut t = vec![b'7'; len];
                t[at] = b;
                check_digits(&t);
            }
        }
    }
    for n in [0u64, 9, 10, 99_999_999, 100_000_000, 999_999_999_999_999_999] {
        assert_eq!(digits(n.to_string().as_bytes()), Some(n));
    }
}

fn check_quad(t: &str) {
    let fast = dotted_quad(t.as_bytes()).map(std::net::Ipv4Addr::from);
    assert_eq!(fast, t.parse::<std::net::Ipv4Addr>().ok(), "address {t:?}");
}

#[test]
fn dotted_quads_read_as_the_standard_parser_does() {
    for t in EDGES {
        check_quad(t);
    }
    let mut rng = Rng::new(11);
    let groups = [
        "0", "1", "9", "00", "01", "10", "99", "100", "199", "255", "256", "300", "999", "0255", "1000",
    ];
    for _ in 0..100_000 {
        let n = 2 + rng.below(4);
        let parts: Vec<&str> = (0..n).map(|_| groups[rng.below(groups.len())]).collect();
        check_quad(&parts.join("."));
        check_quad(&rng.text_below(&["0", "1", "2", "5", "9", ".", ".", "a", " ", "+", "-", ":"], 17));
    }
    for a in 0..=300u32 {
        check_quad(&format!("{a}.{}.0.{}", a % 7, 300 - a));
        check_quad(&format!("0{a}.1.1.1"));
    }
}

fn check_decimal(t: &str) {
    let fast = decimal(t.as_bytes());
    let standard = t.parse::<f64>().ok();
    if let Some(v) = fast {
        assert_eq!(Some(v.to_bits()), standard.map(f64::to_bits), "decimal {t:?}");
    }
    let body = t.strip_prefix('-').unwrap_or(t);
    let plain = match body.split_once('.') {
        Some((int, frac)) => !int.is_empty() && !frac.is_empty() && (int.len() + frac.len()) <= 15,
        None => (1..=15).contains(&body.len()),
    };
    let dots = body.bytes().filter(|&b| b == b'.').count();
    if plain && dots <= 1 && body.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        assert!(fast.is_some(), "decimal misses {t:?}");
    }
}

#[test]
fn decimals_read_as_the_standard_parser_does() {
    for t in EDGES {
        check_decimal(t);
    }
    let mut rng = Rng::new(13);
    let alphabet = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
    for _ in 0..300_000 {
        let int = rng.text_below(&alphabet, 21);
        let frac = rng.text_below(&alphabet, 21);
        let sign = ["", "-", "+"][rng.below(3)];
        check_decimal(&format!("{sign}{int}"));
        check_decimal(&format!("{sign}{int}.{frac}"));
        check_decimal(&rng.text_below(&["0", "1", "9", ".", "-", "e", " "], 8));
    }
    // Around 2^53, where the fast path stops.
    for m in (1u64 << 53) - 3..=(1u64 << 53) + 3 {
        for scale in 0..4 {
            let s = m.to_string();
            let (int, frac) = s.split_at(s.len() - scale);
            check_decimal(&if scale == 0 { s.clone() } else { format!("{int}.{frac}") });
        }
    }
}

fn check_split(line: &str) {
    let mut general = Fields::new();
    let standard = split_fields(line, &mut general);
    match PlainFields::split(line) {
        Some(plain) => {
            assert!(standard.is_ok(), "{line:?}");
            let fast: Vec<&str> = (0..plain.len()).map(|i| plain.get(i)).collect();
            assert_eq!(fast, general.as_slice(), "{line:?}");
        }
        None => assert!(
            line.contains('"') || general.len() > MAX_PLAIN_FIELDS,
            "split misses {line:?}"
        ),
    }
}

#[test]
fn plain_split_is_the_general_split() {
    for line in [
        "",
        ",",
        ",,,,,,,,,,",
        "a",
        "a,b",
        "1767571200001,vm-000348,10.16.1.174,10.0.1.13,8080,tcp,17696,1248,24,105,26.4",
        "1767571200001,vm-000348,10.16.1.174,10.0.1.13,8080,tcp,17696,1248,24,105,",
        "a,\"b,c\",d",
        "ab\"c,d",
        "é,ü,,ß",
        ",,,,,,,,,,,,,,,",
        ",,,,,,,,,,,,,,,,",
        ",,,,,,,,,,,,,,,,,,,,",
    ] {
        check_split(line);
    }
    let mut rng = Rng::new(17);
    let alphabet = ["a", "1", ",", ",", ",", "\"", " ", "\r", "é", "\u{2c00}", "."];
    for _ in 0..200_000 {
        let len = rng.below(90);
        check_split(&rng.text(&alphabet, len));
        check_split(&rng.text(&alphabet[..5], len).replace('"', ""));
    }
}
