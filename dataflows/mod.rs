//! The detector registry: one file per detector in this folder, one line per detector in the
//! [`registry!`] table below (it declares the module and lists the detector in
//! [`DETECTORS`]). See "Writing a detector" in the README.
//!
//! Invariant: `DETECTORS` lists every detector once, in the order `vigil detectors` shows them;
//! names are unique (checked by a test).

use crate::detect::Detector;

/// `module::Type` per line: declares `pub mod module;` and registers `&module::Type`.
macro_rules! registry {
    ($($module:ident :: $detector:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every detector vigil knows, in the order `vigil detectors` lists them.
        pub static DETECTORS: &[&dyn Detector] = &[$(&$module::$detector),*];
    };
}

registry! {
    silence::Silence,
    exfiltration::Exfiltration,
    corruption::Corruption,
    value_outlier::ValueOutlier,
    port_scan::PortScan,
    clock_skew::ClockSkew,
    kmeans::KMeansDetector,
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = super::DETECTORS.iter().map(|d| d.name()).collect();
        names.sort();
        let n = names.len();
        names.dedup();
        assert_eq!(n, names.len());
    }
}
