//! The NAB scoring rule (Lavin & Ahmad 2015, "Evaluating Real-time Anomaly Detection
//! Algorithms – the Numenta Anomaly Benchmark") for per-row scores of labelled series.
//!
//! Windows: a file of `n` rows with `k` labelled anomalies gets windows of `W = ⌊0.1·n/k⌋`
//! rows, centred on each anomaly: a labelled range `[b, e]` (rows) becomes `[b − W/2, e + W/2]`
//! (clipped to the file; a point label `b = e` gives NAB's own window); overlapping windows
//! merge. The first `min(⌊0.15·n⌋, 750)` rows are probationary: never scored.
//!
//! A row whose score is at least the threshold is a detection. Per window, only its *first*
//! detection counts, with `A_tp·σ(p)/σ(−1)`, where `p = −(right − i + 1)/(right − left + 1)`
//! and `σ(x) = 2/(1 + e^(5x)) − 1` (`σ(x) = −1` for `x > 3`): 1 at the window's start, about 0
//! at its end. A window without detection costs `−A_fn`. A detection outside every window costs
//! `A_fp·σ((i − right′)/(width′ − 1))` after a window `[left′, right′]` (little right after
//! it, −A_fp far after), `−A_fp` before the first window. A file's raw score is the sum; a set
//! of files is normalised as `100·(raw − null)/(perfect − null)`, `null = −A_fn·windows`
//! (nothing detected), `perfect = A_tp·windows` (every window at its start).
//!
//! Profiles: standard `(A_tp, A_fp, A_fn) = (1, 0.11, 1)`, reward_low_FP `(1, 0.22, 1)`,
//! reward_low_FN `(1, 0.11, 2)`. [`optimal`] finds the threshold that maximises the total over
//! all files, as NAB does, by one sweep over the scores sorted in decreasing order.
//!
//! Invariants: pure functions; the optimal threshold is one of the scores (or +∞: no
//! detection); ties between thresholds go to the higher one.

use serde::Serialize;

/// Costs of one NAB application profile.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Profile {
    pub name: &'static str,
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
}

pub const STANDARD: Profile = Profile {
    name: "standard",
    tp: 1.0,
    fp: 0.11,
    fn_: 1.0,
};
pub const LOW_FP: Profile = Profile {
    name: "reward_low_FP",
    tp: 1.0,
    fp: 0.22,
    fn_: 1.0,
};
pub const LOW_FN: Profile = Profile {
    name: "reward_low_FN",
    tp: 1.0,
    fp: 0.11,
    fn_: 2.0,
};
pub const PROFILES: [Profile; 3] = [STANDARD, LOW_FP, LOW_FN];

/// One file as NAB sees it: its length, windows (inclusive rows) and probationary rows.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct NabFile {
    pub rows: usize,
    pub windows: Vec<(usize, usize)>,
    pub probation: usize,
}

impl NabFile {
    /// The windows of a file of `rows` rows with labelled `ranges` (inclusive, sorted).
    pub fn new(rows: usize, ranges: &[(usize, usize)]) -> Self {
        let mut windows: Vec<(usize, usize)> = Vec::new();
        if !ranges.is_empty() && rows > 0 {
            let w = (0.1 * rows as f64 / ranges.len() as f64).floor() as usize;
            for &(b, e) in ranges {
                let win = (b.saturating_sub(w / 2), (e + w / 2).min(rows - 1));
                match windows.last_mut() {
                    Some(last) if win.0 <= last.1 + 1 => last.1 = last.1.max(win.1),
                    _ => windows.push(win),
                }
            }
        }
        NabFile {
            rows,
            windows,
            probation: ((0.15 * rows as f64).floor() as usize).min(750),
        }
    }

    /// What a detection at row `i` is worth: `Some(window index, reward)` inside a window,
    /// `None` with the (negative) false-positive value outside.
    fn value(&self, i: usize, p: &Profile) -> Result<(usize, f64), f64> {
        let mut prev: Option<(usize, usize)> = None;
        for (k, &(l, r)) in self.windows.iter().enumerate() {
            if i < l {
                break;
            }
            if i <= r {
                let pos = -((r - i + 1) as f64) / ((r - l + 1) as f64);
                return Ok((k, p.tp * sigma(pos) / sigma(-1.0)));
            }
            prev = Some((l, r));
        }
        Err(match prev {
            None => -p.fp,
            Some((l, r)) => {
                let width = (r - l + 1) as f64;
                p.fp * sigma((i - r) as f64 / (width - 1.0).max(1.0))
            }
        })
    }
}

/// NAB's scaled sigmoid.
pub fn sigma(x: f64) -> f64 {
    if x > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * x).exp()) - 1.0
    }
}

/// A file's (or a set's) outcome at one threshold.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NabOutcome {
    pub windows: usize,
    pub detected: usize,
    pub false_positives: usize,
    pub raw: f64,
}

impl NabOutcome {
    /// `100·(raw − null)/(perfect − null)` for these windows under `p`.
    pub fn normalised(&self, p: &Profile) -> f64 {
        let null = -p.fn_ * self.windows as f64;
        let perfect = p.tp * self.windows as f64;
        if perfect == null {
            return 0.0;
        }
        100.0 * (self.raw - null) / (perfect - null)
    }

    fn add(&mut self, o: &NabOutcome) {
        self.windows += o.windows;
        self.detected += o.detected;
        self.false_positives += o.false_positives;
        self.raw += o.raw;
    }
}

/// A file's outcome when rows with `score >= threshold` are detections.
pub fn score_file(file: &NabFile, scores: &[f64], threshold: f64, p: &Profile) -> NabOutcome {
    let mut first = vec![None::<f64>; file.windows.len()];
    let mut out = NabOutcome {
        windows: file.windows.len(),
        ..Default::default()
    };
    for (i, &s) in scores.iter().enumerate().skip(file.probation) {
        if s < threshold {
            continue;
        }
        match file.value(i, p) {
            Ok((k, v)) => {
                first[k].get_or_insert(v);
            }
            Err(v) => {
                out.false_positives += 1;
                out.raw += v;
            }
        }
    }
    for f in first {
        match f {
            Some(v) => {
                out.detected += 1;
                out.raw += v;
            }
            None => out.raw -= p.fn_,
        }
    }
    out
}

/// The threshold maximising the total raw score over `files` (each with its row scores), and
/// the total there. `+∞` when detecting nothing is best.
pub fn optimal(files: &[(&NabFile, &[f64])], p: &Profile) -> (f64, NabOutcome) {
    // Every scored row, highest score first.
    let mut rows: Vec<(f64, usize, usize)> = Vec::new();
    for (f, (file, scores)) in files.iter().enumerate() {
        for (i, &s) in scores.iter().enumerate().skip(file.probation) {
            if !s.is_nan() {
                rows.push((s, f, i));
            }
        }
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    // Per window: the row index and value of its earliest detection so far.
    let mut first: Vec<Vec<Option<(usize, f64)>>> = files.iter().map(|(f, _)| vec![None; f.windows.len()]).collect();
    let windows: usize = files.iter().map(|(f, _)| f.windows.len()).sum();
    let mut raw = -p.fn_ * windows as f64;
    let mut best = (f64::INFINITY, raw);
    let mut j = 0;
    while j < rows.len() {
        let threshold = rows[j].0;
        while j < rows.len() && rows[j].0 == threshold {
            let (_, f, i) = rows[j];
            match files[f].0.value(i, p) {
                Ok((k, v)) => match first[f][k] {
                    None => {
                        raw += p.fn_ + v;
                        first[f][k] = Some((i, v));
                    }
                    Some((at, old)) if i < at => {
                        raw += v - old;
                        first[f][k] = Some((i, v));
                    }
                    _ => {}
                },
                Err(v) => raw += v,
            }
            j += 1;
        }
        if raw > best.1 + 1e-12 {
            best = (threshold, raw);
        }
    }
    let mut total = NabOutcome::default();
    for (file, scores) in files {
        total.add(&score_file(file, scores, best.0, p));
    }
    (best.0, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_probation() {
        // 100 rows, one anomaly at rows 50..=51: W = 10, window [45, 56]; probation 15 rows.
        let f = NabFile::new(100, &[(50, 51)]);
        assert_eq!(f.windows, vec![(45, 56)]);
        assert_eq!(f.probation, 15);
        // Two close anomalies merge.
        let g = NabFile::new(100, &[(20, 20), (22, 22)]);
        assert_eq!(g.windows, vec![(18, 24)]);
        assert_eq!(NabFile::new(20_000, &[(10_000, 10_000)]).probation, 750);
    }

    /// Worked by hand: 100 rows, window [45, 56] (12 rows), standard profile.
    /// - A detection at row 45 (the window's first row): p = −12/12 = −1, reward
    ///   σ(−1)/σ(−1) = 1. Perfect: raw 1, null −1, normalised 100.
    /// - Detections at rows 51 and 53: only 51 counts, p = −(56 − 51 + 1)/12 = −0.5,
    ///   σ(−0.5) = 2/(1 + e^(−2.5)) − 1 = 0.848284, reward 0.848284/0.986614 = 0.859793.
    /// - Plus a detection at row 10 (probationary: ignored) and one at row 30 (before any
    ///   window: −0.11) and one at row 67: after the window, p = (67 − 56)/(12 − 1) = 1,
    ///   σ(1) = 2/(1 + e^5) − 1 = −0.986614, cost 0.11·0.986614 = 0.108528.
    ///   raw = 0.859793 − 0.11 − 0.108528 = 0.641265; normalised 100·(0.641265 + 1)/2 = 82.0632.
    /// - Nothing detected: raw −1, normalised 0.
    #[test]
    fn a_small_case_by_hand() {
        let f = NabFile::new(100, &[(50, 51)]);
        let mut scores = vec![0.0; 100];
        scores[45] = 1.0;
        let o = score_file(&f, &scores, 0.5, &STANDARD);
        assert!((o.raw - 1.0).abs() < 1e-12 && (o.normalised(&STANDARD) - 100.0).abs() < 1e-9);
        let mut scores = vec![0.0; 100];
        for i in [10, 30, 51, 53, 67] {
            scores[i] = 0.9;
        }
        let o = score_file(&f, &scores, 0.5, &STANDARD);
        assert_eq!((o.detected, o.false_positives), (1, 2));
        assert!((o.raw - 0.641265).abs() < 1e-5, "{}", o.raw);
        assert!((o.normalised(&STANDARD) - 82.0632).abs() < 1e-3);
        let none = score_file(&f, &scores, 0.95, &STANDARD);
        assert_eq!(none.normalised(&STANDARD), 0.0);
    }

    #[test]
    fn the_optimal_threshold_skips_costly_false_positives() {
        // Row 30 (outside) scores 0.9, row 50 (inside) 0.8, row 70 (outside) 0.7.
        let f = NabFile::new(100, &[(50, 51)]);
        let mut s = vec![0.0; 100];
        s[30] = 0.9;
        s[50] = 0.8;
        s[70] = 0.7;
        let (t, o) = optimal(&[(&f, &s[..])], &STANDARD);
        // 0.9 alone: −1.11; 0.8: −0.11 + reward; 0.7: one more cost. Best: 0.8.
        assert_eq!(t, 0.8);
        assert_eq!((o.detected, o.false_positives), (1, 1));
        let direct = score_file(&f, &s, 0.8, &STANDARD);
        assert!((o.raw - direct.raw).abs() < 1e-12);
        // Only a false positive: best to detect nothing.
        let mut s = vec![0.0; 100];
        s[30] = 0.9;
        let (t, o) = optimal(&[(&f, &s[..])], &STANDARD);
        assert!(t.is_infinite() && o.raw == -1.0);
    }
}
