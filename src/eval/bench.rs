//! Per-event detectors over labelled series, and their figures: every NAB profile at its
//! optimal threshold; point-wise precision/recall/F1 and range recall at the optimal
//! standard-profile threshold; the best point-wise F1 over all thresholds; and per file.
//!
//! Scorers: `value_outlier` (the engine's per-device logic, run directly on each channel —
//! the same scores `vigil run --scores-out` writes, see `tests/series_eval.rs`),
//! `robust_z` (`value_outlier` with `method = "robust_z"`, the old scorer), and the baseline
//! `windowed_gaussian` (NAB's: the mean and deviation of the last 6400 readings, refreshed every
//! 100 readings; score `erf(|z|/√2)`, i.e. 1 − the two-sided normal tail).
//!
//! Invariants: pure functions of the series and parameters; files in their given order.

use std::collections::VecDeque;

use serde::Serialize;

use super::nab::{optimal, score_file, NabFile, NabOutcome, PROFILES, STANDARD};
use super::pointwise::{at_threshold, best_f1, PointFigures};
use super::series::Series;
use crate::dataflows::value_outlier::{Method, Outlier, Params};
use crate::detect::baseline::z_score01;

/// A per-event scorer of one channel: readings `(ts_ms, value)` → scores.
pub type Scorer = Box<dyn Fn(&[(i64, f64)]) -> Vec<f64>>;

/// The scorers `vigil eval bench` compares: `value_outlier` with `params`, the old robust z
/// and the windowed Gaussian baseline.
pub fn scorers(params: &Params) -> Vec<(String, Scorer)> {
    let likelihood = Outlier(Params {
        method: Method::Likelihood,
        ..params.clone()
    });
    let robust = Outlier(Params {
        method: Method::RobustZ,
        ..params.clone()
    });
    vec![
        (
            "value_outlier".into(),
            Box::new(move |r: &[(i64, f64)]| likelihood.score_series(r)),
        ),
        (
            "robust_z".into(),
            Box::new(move |r: &[(i64, f64)]| robust.score_series(r)),
        ),
        (
            "windowed_gaussian".into(),
            Box::new(|r: &[(i64, f64)]| windowed_gaussian(r, 6400, 100)),
        ),
    ]
}

/// NAB's windowed Gaussian baseline.
pub fn windowed_gaussian(readings: &[(i64, f64)], window: usize, step: usize) -> Vec<f64> {
    let mut buf: VecDeque<f64> = VecDeque::with_capacity(window);
    let (mut mean, mut sd) = (0.0, 0.0);
    let mut out = Vec::with_capacity(readings.len());
    for (i, &(_, x)) in readings.iter().enumerate() {
        out.push(if buf.len() < 2 || sd == 0.0 {
            if buf.len() >= 2 && x != mean {
                1.0
            } else {
                0.0
            }
        } else {
            z_score01((x - mean) / sd)
        });
        if buf.len() == window {
            buf.pop_front();
        }
        buf.push_back(x);
        if i % step == 0 || buf.len() < step {
            let n = buf.len() as f64;
            mean = buf.iter().sum::<f64>() / n;
            sd = (buf.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        }
    }
    out
}

/// Row scores of a series under a scorer: each channel scored on its own, the row's score the
/// highest of its channels'.
pub fn row_scores(series: &Series, scorer: &Scorer) -> Vec<f64> {
    let mut rows = vec![0.0f64; series.len()];
    for (_, values) in &series.channels {
        let readings: Vec<(usize, (i64, f64))> = values
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_nan())
            .map(|(i, &v)| (i, (series.ts_ms[i], v)))
            .collect();
        let only: Vec<(i64, f64)> = readings.iter().map(|r| r.1).collect();
        for ((i, _), s) in readings.iter().zip(scorer(&only)) {
            rows[*i] = rows[*i].max(s);
        }
    }
    rows
}

/// One file's NAB figures at the set's optimal standard threshold.
#[derive(Clone, Debug, Serialize)]
pub struct FileFigures {
    pub file: String,
    pub rows: usize,
    pub windows: usize,
    pub detected: usize,
    pub false_positives: usize,
    pub raw: f64,
}

/// A detector's figures on a set of series.
#[derive(Clone, Debug, Serialize)]
pub struct Figures {
    pub detector: String,
    /// Per profile: name, optimal threshold, outcome, normalised score.
    pub nab: Vec<(String, f64, NabOutcome, f64)>,
    /// Point-wise and range figures at the optimal standard-profile threshold.
    pub at_nab_threshold: PointFigures,
    pub best_f1: PointFigures,
    pub files: Vec<FileFigures>,
}

impl Figures {
    /// The normalised NAB score under a profile.
    pub fn nab_score(&self, profile: &str) -> f64 {
        self.nab.iter().find(|p| p.0 == profile).map_or(0.0, |p| p.3)
    }
}

/// The figures of one detector's row scores on `series` (aligned).
pub fn figures(detector: &str, series: &[Series], scores: &[Vec<f64>]) -> Figures {
    let nab_files: Vec<NabFile> = series.iter().map(|s| NabFile::new(s.len(), &s.ranges())).collect();
    let pairs: Vec<(&NabFile, &[f64])> = nab_files.iter().zip(scores.iter().map(|v| &v[..])).collect();
    let nab: Vec<(String, f64, NabOutcome, f64)> = PROFILES
        .iter()
        .map(|p| {
            let (t, o) = optimal(&pairs, p);
            let n = o.normalised(p);
            (p.name.to_string(), t, o, n)
        })
        .collect();
    let standard = nab[0].1;
    let files = series
        .iter()
        .zip(&pairs)
        .map(|(s, (f, sc))| {
            let o = score_file(f, sc, standard, &STANDARD);
            FileFigures {
                file: s.name.clone(),
                rows: s.len(),
                windows: o.windows,
                detected: o.detected,
                false_positives: o.false_positives,
                raw: o.raw,
            }
        })
        .collect();
    let labelled: Vec<(&[bool], &[f64])> = series
        .iter()
        .zip(scores)
        .map(|(s, v)| (&s.labels[..], &v[..]))
        .collect();
    Figures {
        detector: detector.to_string(),
        at_nab_threshold: at_threshold(&labelled, standard),
        nab,
        best_f1: best_f1(&labelled),
        files,
    }
}

/// The summary table: one row per detector.
pub fn table(all: &[Figures]) -> String {
    let mut s = String::from(
        "| detector | NAB standard | NAB low FP | NAB low FN | threshold (standard) | windows detected | FP | precision | recall | F1 | range recall | best F1 (threshold) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in all {
        let (_, t, o, _) = &f.nab[0];
        let (a, b) = (&f.at_nab_threshold, &f.best_f1);
        s += &format!(
            "| {} | {:.1} | {:.1} | {:.1} | {} | {}/{} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} ({}) |\n",
            f.detector,
            f.nab_score("standard"),
            f.nab_score("reward_low_FP"),
            f.nab_score("reward_low_FN"),
            threshold_text(*t),
            o.detected,
            o.windows,
            o.false_positives,
            a.precision,
            a.recall,
            a.f1,
            a.range_recall,
            b.f1,
            threshold_text(b.threshold)
        );
    }
    s
}

/// Per-file NAB figures (standard profile, at the set's optimal threshold).
pub fn file_table(f: &Figures) -> String {
    let mut s = format!(
        "| {} file | rows | windows | detected | false positives | raw NAB |\n|---|---:|---:|---:|---:|---:|\n",
        f.detector
    );
    for r in &f.files {
        s += &format!(
            "| {} | {} | {} | {} | {} | {:.3} |\n",
            r.file, r.rows, r.windows, r.detected, r.false_positives, r.raw
        );
    }
    s
}

/// A threshold for display: enough digits to tell thresholds near 1 apart.
pub fn threshold_text(t: f64) -> String {
    if t.is_infinite() {
        "none".into()
    } else if t > 0.99 && t < 1.0 {
        format!("1 − {:.2e}", 1.0 - t)
    } else {
        format!("{t:.4}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windowed_gaussian_scores_a_spike() {
        let r: Vec<(i64, f64)> = (0..500)
            .map(|i| (i, if i == 400 { 50.0 } else { (i % 7) as f64 }))
            .collect();
        let s = windowed_gaussian(&r, 6400, 100);
        assert!(s[400] > 0.999 && s[399] < 0.99);
    }
}
