//! Fuzzing on a stable toolchain: structure-aware random inputs with campaigns of N cases
//! (`vigil fuzz`). [`http`]: random requests against the query server.
//!
//! Invariants: every campaign is reproducible from its seed and bounded in count and time;
//! it talks to loopback addresses only when it starts its own server.

pub mod http;
