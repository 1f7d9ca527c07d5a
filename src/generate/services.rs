//! The service catalog: what a flow to a DNS resolver, a database, a Kafka broker or an
//! update server looks like (port, protocol, peers, volumes, duration).
//!
//! Invariants: infrastructure peers are RFC 1918 addresses; every address listed as
//! external is public unicast (tested in `net`); volumes are log-normal (median, log-space
//! spread), a spread of 0 meaning a fixed size (NTP, ICMP) that device scaling leaves alone;
//! `S_*` constants index `SERVICES` in order.

use super::net::v4;
use crate::event::Protocol;

/// Where a service's addresses come from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Peers {
    /// Fixed infrastructure or well-known external addresses.
    Fixed(&'static [u32]),
    /// The addresses of devices of a profile (index into `Profile::ALL`), e.g. a web
    /// server's databases; `fallback` when the fleet has none.
    Devices(usize, &'static [u32]),
    /// The shared pool of popular external web sites.
    WebPool,
}

/// One kind of flow: port, protocol, peers, and the shape of its volumes and duration.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Service {
    pub port: u16,
    pub proto: Protocol,
    pub peers: Peers,
    pub external: bool,
    /// Median bytes out / in and their log-space spread (0 = fixed size, not scaled).
    pub out: (f64, f64),
    pub inb: (f64, f64),
    /// Median setup/think time in ms and its spread; transfer time is added on top.
    pub dur: (f64, f64),
}

const DNS: &[u32] = &[v4(10, 0, 0, 2), v4(10, 0, 0, 3)];
const NTP: &[u32] = &[v4(10, 0, 0, 123)];
const SYSLOG: &[u32] = &[v4(10, 0, 0, 50)];
const METRICS: &[u32] = &[v4(10, 0, 0, 60), v4(10, 0, 0, 61)];
const LDAP: &[u32] = &[v4(10, 0, 0, 10), v4(10, 0, 0, 11)];
const PROXY: &[u32] = &[v4(10, 0, 0, 80), v4(10, 0, 0, 81)];
const FILES: &[u32] = &[v4(10, 0, 0, 40), v4(10, 0, 0, 41)];
const MAIL: &[u32] = &[v4(10, 0, 0, 25)];
const LB: &[u32] = &[v4(10, 0, 1, 10), v4(10, 0, 1, 11), v4(10, 0, 1, 12), v4(10, 0, 1, 13)];
const CACHE: &[u32] = &[v4(172, 16, 3, 10), v4(172, 16, 3, 11), v4(172, 16, 3, 12)];
const KAFKA: &[u32] = &[v4(172, 16, 5, 10), v4(172, 16, 5, 11), v4(172, 16, 5, 12)];
const OBJECTS: &[u32] = &[v4(172, 16, 8, 20), v4(172, 16, 8, 21)];
const MQTT: &[u32] = &[v4(192, 168, 1, 10), v4(192, 168, 1, 11)];
const GATEWAY: &[u32] = &[v4(10, 0, 0, 1), v4(172, 16, 0, 1), v4(192, 168, 1, 1)];
const FALLBACK_DB: &[u32] = &[v4(10, 32, 0, 2), v4(10, 32, 0, 3)];
const FALLBACK_WEB: &[u32] = &[v4(10, 16, 0, 2), v4(10, 16, 0, 3), v4(10, 16, 0, 4)];
// Well-known external services (resolvers, NTP pool, OS/package updates, cloud APIs,
// container registry, IoT vendor cloud, conferencing relays).
const EXT_DNS: &[u32] = &[v4(8, 8, 8, 8), v4(1, 1, 1, 1)];
const EXT_NTP: &[u32] = &[v4(162, 159, 200, 1), v4(162, 159, 200, 123)];
const EXT_UPDATE: &[u32] = &[
    v4(91, 189, 91, 81),
    v4(91, 189, 91, 82),
    v4(151, 101, 2, 132),
    v4(13, 107, 4, 50),
    v4(140, 82, 112, 3),
];
const EXT_CLOUD: &[u32] = &[v4(52, 94, 236, 248), v4(52, 119, 168, 48), v4(34, 120, 195, 249)];
const EXT_REGISTRY: &[u32] = &[v4(44, 205, 64, 79), v4(54, 236, 113, 205)];
const EXT_IOT: &[u32] = &[v4(35, 156, 58, 17), v4(18, 184, 104, 180)];
const EXT_MEDIA: &[u32] = &[v4(52, 112, 0, 10), v4(52, 113, 194, 132), v4(13, 107, 64, 2)];
/// Cloud object storage endpoints backups go to.
pub(crate) const EXT_STORAGE: &[u32] = &[
    v4(52, 216, 8, 35),
    v4(52, 217, 96, 12),
    v4(3, 5, 140, 2),
    v4(142, 250, 153, 128),
    v4(20, 60, 40, 4),
    v4(20, 150, 90, 36),
];

/// Every fixed external address of the catalog.
pub(crate) const KNOWN_EXTERNAL: &[&[u32]] = &[
    EXT_DNS,
    EXT_NTP,
    EXT_UPDATE,
    EXT_CLOUD,
    EXT_REGISTRY,
    EXT_IOT,
    EXT_MEDIA,
    EXT_STORAGE,
];

const fn svc(
    port: u16,
    proto: Protocol,
    peers: Peers,
    external: bool,
    out: (f64, f64),
    inb: (f64, f64),
    dur: (f64, f64),
) -> Service {
    Service {
        port,
        proto,
        peers,
        external,
        out,
        inb,
        dur,
    }
}

use Peers::*;
use Protocol::{Icmp, Tcp, Udp};

/// The catalog, in the order of the `S_*` constants that name its entries.
pub(crate) const SERVICES: &[Service] = &[
    svc(53, Udp, Fixed(DNS), false, (70.0, 0.15), (180.0, 0.5), (6.0, 0.8)),
    svc(123, Udp, Fixed(NTP), false, (48.0, 0.0), (48.0, 0.0), (12.0, 0.5)),
    svc(514, Udp, Fixed(SYSLOG), false, (600.0, 0.8), (0.0, 0.0), (0.0, 0.0)),
    svc(
        9091,
        Tcp,
        Fixed(METRICS),
        false,
        (4000.0, 0.6),
        (300.0, 0.3),
        (20.0, 0.6),
    ),
    svc(636, Tcp, Fixed(LDAP), false, (900.0, 0.5), (2500.0, 0.7), (30.0, 0.7)),
    svc(88, Tcp, Fixed(LDAP), false, (1500.0, 0.3), (1600.0, 0.3), (8.0, 0.6)),
    svc(
        3128,
        Tcp,
        Fixed(PROXY),
        false,
        (1800.0, 0.9),
        (45_000.0, 1.8),
        (700.0, 1.2),
    ),
    svc(
        445,
        Tcp,
        Fixed(FILES),
        false,
        (3000.0, 1.2),
        (120_000.0, 2.0),
        (1500.0, 1.3),
    ),
    svc(
        993,
        Tcp,
        Fixed(MAIL),
        false,
        (1500.0, 1.0),
        (25_000.0, 1.8),
        (2000.0, 1.0),
    ),
    svc(8080, Tcp, Fixed(LB), false, (18_000.0, 1.5), (1200.0, 0.7), (90.0, 1.0)),
    svc(
        5432,
        Tcp,
        Devices(1, FALLBACK_DB),
        false,
        (900.0, 0.8),
        (12_000.0, 1.6),
        (20.0, 1.0),
    ),
    svc(
        5432,
        Tcp,
        Devices(0, FALLBACK_WEB),
        false,
        (12_000.0, 1.6),
        (900.0, 0.8),
        (20.0, 1.0),
    ),
    svc(
        5432,
        Tcp,
        Devices(1, FALLBACK_DB),
        false,
        (250_000.0, 1.2),
        (3000.0, 0.5),
        (4000.0, 0.8),
    ),
    svc(6379, Tcp, Fixed(CACHE), false, (300.0, 0.6), (2500.0, 1.3), (2.0, 0.7)),
    svc(
        9092,
        Tcp,
        Fixed(KAFKA),
        false,
        (40_000.0, 1.3),
        (150_000.0, 1.4),
        (300.0, 1.0),
    ),
    svc(
        443,
        Tcp,
        Fixed(OBJECTS),
        false,
        (300_000.0, 1.8),
        (800_000.0, 1.8),
        (3000.0, 1.2),
    ),
    svc(8883, Tcp, Fixed(MQTT), false, (350.0, 0.4), (60.0, 0.3), (40.0, 0.6)),
    svc(0, Icmp, Fixed(GATEWAY), false, (64.0, 0.0), (64.0, 0.0), (1.0, 0.5)),
    svc(
        443,
        Tcp,
        Fixed(EXT_UPDATE),
        true,
        (2500.0, 0.7),
        (400_000.0, 2.2),
        (4000.0, 1.3),
    ),
    svc(53, Udp, Fixed(EXT_DNS), true, (70.0, 0.15), (200.0, 0.5), (25.0, 0.6)),
    svc(123, Udp, Fixed(EXT_NTP), true, (48.0, 0.0), (48.0, 0.0), (30.0, 0.5)),
    svc(
        443,
        Tcp,
        Fixed(EXT_CLOUD),
        true,
        (3000.0, 1.2),
        (8000.0, 1.4),
        (150.0, 1.0),
    ),
    svc(
        443,
        Tcp,
        Fixed(EXT_REGISTRY),
        true,
        (4000.0, 0.6),
        (3_000_000.0, 1.5),
        (8000.0, 1.0),
    ),
    svc(
        8883,
        Tcp,
        Fixed(EXT_IOT),
        true,
        (1200.0, 0.7),
        (400.0, 0.5),
        (200.0, 0.7),
    ),
    svc(443, Tcp, WebPool, true, (1500.0, 1.0), (60_000.0, 2.0), (600.0, 1.3)),
    svc(
        3478,
        Udp,
        Fixed(EXT_MEDIA),
        true,
        (400_000.0, 1.0),
        (450_000.0, 1.0),
        (60_000.0, 1.0),
    ),
    svc(
        443,
        Tcp,
        Fixed(EXT_STORAGE),
        true,
        (1500.0, 0.6),
        (3000.0, 0.8),
        (80.0, 0.8),
    ),
];

pub(crate) const S_DNS: usize = 0;
pub(crate) const S_NTP: usize = 1;
pub(crate) const S_SYSLOG: usize = 2;
pub(crate) const S_METRICS: usize = 3;
pub(crate) const S_LDAP: usize = 4;
pub(crate) const S_KERBEROS: usize = 5;
pub(crate) const S_PROXY: usize = 6;
pub(crate) const S_SMB: usize = 7;
pub(crate) const S_MAIL: usize = 8;
pub(crate) const S_LB: usize = 9;
pub(crate) const S_DB_CLIENT: usize = 10;
pub(crate) const S_DB_SERVER: usize = 11;
pub(crate) const S_REPLICATION: usize = 12;
pub(crate) const S_CACHE: usize = 13;
pub(crate) const S_KAFKA: usize = 14;
pub(crate) const S_OBJECTS: usize = 15;
pub(crate) const S_MQTT: usize = 16;
pub(crate) const S_ICMP: usize = 17;
pub(crate) const S_EXT_UPDATE: usize = 18;
pub(crate) const S_EXT_DNS: usize = 19;
pub(crate) const S_EXT_NTP: usize = 20;
pub(crate) const S_EXT_CLOUD: usize = 21;
pub(crate) const S_EXT_REGISTRY: usize = 22;
pub(crate) const S_EXT_IOT: usize = 23;
pub(crate) const S_EXT_WEB: usize = 24;
pub(crate) const S_EXT_MEDIA: usize = 25;
/// A backup agent's check-in with its storage (listing, small metadata calls).
pub(crate) const S_EXT_STORAGE: usize = 26;
