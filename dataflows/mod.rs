//! The detector registry: one file per detector in this folder, one line per detector in
//! [`DETECTORS`]. See "Writing a detector" in the README.

pub mod kmeans;
pub mod silence;

use crate::detect::Detector;

/// Every detector vigil knows, in the order `vigil detectors` lists them.
pub static DETECTORS: &[&dyn Detector] = &[&silence::Silence, &kmeans::KMeansDetector];
