//! Sources of raw records and the event-time logic every source shares.
//!
//! Invariant: a source yields records of one *source partition* in order; the
//! [`watermark::Watermark`] of that partition decides lateness exactly as
//! `docs/semantics.md` states, so any worker reading the same partition decides the same.

pub mod file;
pub mod watermark;

/// A problem with an input as a whole (not a single record).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("input {path}: {message}")]
    Input { path: String, message: String },
    #[error("input {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}
