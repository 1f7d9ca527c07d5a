//! Configuration value types written as text: durations ("1s", "5m"), CIDR ranges and
//! secrets (shown as `***` by `Debug`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::event::Ip;

/// A duration written as text ("1s", "5m", "1h 30m") or as whole milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct DurationMs(pub u64);

impl DurationMs {
    pub fn from_text(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text.trim())
            .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. \"1s\", \"5m\", \"1h\""))?;
        Ok(DurationMs(d.as_millis() as u64))
    }
    pub fn as_duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl From<DurationMs> for String {
    fn from(d: DurationMs) -> String {
        humantime::format_duration(d.as_duration()).to_string()
    }
}

impl std::fmt::Display for DurationMs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.as_duration()))
    }
}

impl<'de> Deserialize<'de> for DurationMs {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Millis(u64),
            Text(String),
        }
        match Raw::deserialize(de)? {
            Raw::Millis(ms) => Ok(DurationMs(ms)),
            Raw::Text(t) => DurationMs::from_text(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// An address range such as `10.0.0.0/8` or `fc00::/7`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "String")]
pub struct Cidr {
    base: u128,
    /// Prefix length in the 128-bit (IPv4-mapped) space.
    prefix: u32,
    text_v4: bool,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, len) = text
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a CIDR range; write e.g. \"10.0.0.0/8\""))?;
        let addr: std::net::IpAddr = addr
            .parse()
            .map_err(|_| format!("`{text}`: `{addr}` is not an IP address"))?;
        let len: u32 = len
            .parse()
            .map_err(|_| format!("`{text}`: `{len}` is not a prefix length"))?;
        let (max, offset) = if addr.is_ipv4() { (32, 96) } else { (128, 0) };
        if len > max {
            return Err(format!("`{text}`: prefix length {len} is larger than {max}"));
        }
        let prefix = len + offset;
        let base = Ip::from_addr(addr).0 & mask(prefix);
        Ok(Cidr {
            base,
            prefix,
            text_v4: addr.is_ipv4(),
        })
    }

    /// Whether the address lies inside the range.
    #[inline]
    pub fn contains(&self, ip: Ip) -> bool {
        ip.0 & mask(self.prefix) == self.base
    }
}

#[inline]
fn mask(prefix: u32) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        let (addr, len) = if c.text_v4 {
            (Ip(c.base).to_string(), c.prefix - 96)
        } else {
            (std::net::Ipv6Addr::from(c.base).to_string(), c.prefix)
        };
        format!("{addr}/{len}")
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let text = String::deserialize(de)?;
        Cidr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A secret (the query server's token): its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}
