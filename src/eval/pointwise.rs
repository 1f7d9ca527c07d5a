//! Point-wise and event-wise figures for per-row scores of labelled series: a row is predicted
//! anomalous when its score is at least the threshold.
//!
//! Point-wise: precision = predicted rows that are labelled / predicted rows; recall =
//! labelled rows predicted / labelled rows; F1 their harmonic mean (0 when both are 0).
//! Event-wise (range) recall: labelled ranges (maximal runs of labelled rows) with at least one
//! predicted row / ranges. [`best_f1`] finds the threshold with the highest point-wise F1 over
//! all files (one sweep over the sorted scores).
//!
//! Invariants: pure functions; figures over several files pool their rows and ranges.

use serde::Serialize;

use super::series::ranges;

/// Point-wise and range figures at one threshold.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PointFigures {
    pub threshold: f64,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub ranges: usize,
    pub ranges_detected: usize,
    pub range_recall: f64,
}

fn f1(p: f64, r: f64) -> f64 {
    if p + r > 0.0 {
        2.0 * p * r / (p + r)
    } else {
        0.0
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The figures of `files` (labels, scores) at `threshold`.
pub fn at_threshold(files: &[(&[bool], &[f64])], threshold: f64) -> PointFigures {
    let mut f = PointFigures {
        threshold,
        ..Default::default()
    };
    for (labels, scores) in files {
        for (&l, &s) in labels.iter().zip(scores.iter()) {
            match (l, s >= threshold) {
                (true, true) => f.tp += 1,
                (false, true) => f.fp += 1,
                (true, false) => f.fn_ += 1,
                _ => {}
            }
        }
        for (b, e) in ranges(labels) {
            f.ranges += 1;
            if scores[b..=e].iter().any(|&s| s >= threshold) {
                f.ranges_detected += 1;
            }
        }
    }
    f.precision = ratio(f.tp, f.tp + f.fp);
    f.recall = ratio(f.tp, f.tp + f.fn_);
    f.f1 = f1(f.precision, f.recall);
    f.range_recall = ratio(f.ranges_detected, f.ranges);
    f
}

/// The threshold with the highest point-wise F1 over `files`, and the figures there.
pub fn best_f1(files: &[(&[bool], &[f64])]) -> PointFigures {
    let mut rows: Vec<(f64, bool)> = files
        .iter()
        .flat_map(|(l, s)| s.iter().copied().zip(l.iter().copied()))
        .filter(|(s, _)| !s.is_nan())
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = rows.iter().filter(|r| r.1).count();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut best = (f64::INFINITY, 0.0);
    let mut j = 0;
    while j < rows.len() {
        let t = rows[j].0;
        while j < rows.len() && rows[j].0 == t {
            if rows[j].1 {
                tp += 1;
            } else {
                fp += 1;
            }
            j += 1;
        }
        let score = f1(ratio(tp, tp + fp), ratio(tp, positives));
        if score > best.1 {
            best = (t, score);
        }
    }
    at_threshold(files, best.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// By hand: labels 0 0 1 1 1 0 0 1 (ranges [2,4] and [7,7]), scores at threshold 0.5
    /// predict rows 1, 3, 4: tp 2 (rows 3, 4), fp 1 (row 1), fn 2 (rows 2, 7);
    /// precision 2/3, recall 2/4, F1 = 2·(2/3)(1/2)/(2/3 + 1/2) = 4/7; range recall 1/2.
    #[test]
    fn figures_by_hand() {
        let labels = [false, false, true, true, true, false, false, true];
        let scores = [0.1, 0.6, 0.2, 0.9, 0.5, 0.0, 0.3, 0.4];
        let f = at_threshold(&[(&labels[..], &scores[..])], 0.5);
        assert_eq!((f.tp, f.fp, f.fn_), (2, 1, 2));
        assert!((f.precision - 2.0 / 3.0).abs() < 1e-12 && f.recall == 0.5);
        assert!((f.f1 - 4.0 / 7.0).abs() < 1e-12);
        assert_eq!((f.ranges, f.ranges_detected), (2, 1));
        // Best F1: threshold 0.2 predicts rows 1, 2, 3, 4, 6(0.3), 7(0.4): tp 4, fp 2,
        // P = 4/6, R = 1, F1 = 0.8 — better than 0.9 (F1 0.4) or 0.5 (4/7).
        let b = best_f1(&[(&labels[..], &scores[..])]);
        assert_eq!(b.threshold, 0.2);
        assert!((b.f1 - 0.8).abs() < 1e-12);
        assert_eq!(b.range_recall, 1.0);
    }
}
