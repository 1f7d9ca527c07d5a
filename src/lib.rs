//! vigil: incremental anomaly detection over security event logs, on timely and
//! differential dataflow.
//!
//! The library holds everything; `src/main.rs` is a thin command line over it. Data flows
//! decode → event time → per-device windows → features → detectors → outputs; see
//! `docs/semantics.md` for the exact definitions every module keeps.

pub mod cluster;
pub mod config;
pub mod convert;
#[path = "../dataflows/mod.rs"]
pub mod dataflows;
pub mod decode;
pub mod detect;
pub mod device_id;
pub mod eval;
pub mod event;
pub mod feature_store;
pub mod features;
pub mod fuzz;
pub mod generate;
pub mod model;
pub mod output;
pub mod pause;
pub mod pinot;
pub mod pipeline;
pub mod query;
pub mod source;
pub mod tick_buffer;
pub mod window;
