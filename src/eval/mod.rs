//! Scoring detectors against ground truth: anomaly episodes (from `anomalies.jsonl`) matched
//! to incident labels (from `vigil generate --labels`).
//!
//! Definitions: an episode is an `insert` of `(detector, device)` up to its `retract` (or the
//! end of the output when never retracted), as `[open_ms, close_ms)` in event time. A detector
//! targets the threat it declares in its own file (`TypedDetector::THREAT`, passed in by the
//! caller from the registry); a label is an instance of the threat of its kind
//! ([`IncidentKind::threat`]). An episode *matches* a label of its threat on the same device
//! when `[open_ms, close_ms)` overlaps `[start_ms, end_ms + grace)`.
//! Per detector: precision = matching episodes / episodes; recall = labels matched by at
//! least one episode / labels of the kind; time-to-detect of a label = open of the first
//! matching episode − label start (0 when the episode was already open), median over the
//! matched labels. Per incident flavour (`detail`): the same recall and time-to-detect. Per
//! benign look-alike (labels of kind `benign`, by `detail`): the episodes that match no
//! incident and overlap one (false positives a reader can put a name on).
//!
//! Invariants: pure functions of their inputs; the report lists detectors and flavours in a
//! fixed order (by name), so two evaluations of the same files print the same table.

pub mod bench;
pub mod nab;
pub mod pointwise;
pub mod series;

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;

use serde::Serialize;

use crate::detect::Threat;
use crate::generate::{IncidentKind, Label};

/// A malformed input file.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One anomaly episode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Episode {
    pub detector: String,
    pub device: String,
    pub open_ms: i64,
    /// None: still open at the end of the output.
    pub close_ms: Option<i64>,
}

/// Reads `anomalies.jsonl` into episodes (inserts paired with the retracts that follow them).
pub fn read_episodes<R: BufRead>(input: R) -> Result<Vec<Episode>, EvalError> {
    #[derive(serde::Deserialize)]
    struct Row {
        op: String,
        at_ms: i64,
        detector: String,
        device_id: String,
    }
    let mut open: HashMap<(String, String), Vec<usize>> = HashMap::new();
    let mut episodes: Vec<Episode> = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row = serde_json::from_str(&line).map_err(|e| EvalError::Line {
            line: i + 1,
            message: e.to_string(),
        })?;
        let key = (row.detector.clone(), row.device_id.clone());
        match row.op.as_str() {
            "insert" => {
                open.entry(key).or_default().push(episodes.len());
                episodes.push(Episode {
                    detector: row.detector,
                    device: row.device_id,
                    open_ms: row.at_ms,
                    close_ms: None,
                });
            }
            "retract" => {
                let stack = open
                    .get_mut(&key)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| EvalError::Line {
                        line: i + 1,
                        message: format!("retract of {}/{} without an open episode", row.detector, row.device_id),
                    })?;
                let idx = stack.remove(0);
                episodes[idx].close_ms = Some(row.at_ms);
            }
            other => {
                return Err(EvalError::Line {
                    line: i + 1,
                    message: format!("unknown op `{other}` (insert or retract)"),
                })
            }
        }
    }
    Ok(episodes)
}

/// Detection figures for one detector, or one detector on one flavour.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    pub episodes: usize,
    pub matching_episodes: usize,
    pub labels: usize,
    pub detected: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub median_ttd_s: Option<f64>,
}

/// False positives on one benign look-alike.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Benign {
    /// Benign labels of this flavour (all devices).
    pub labels: usize,
    /// Of those, the labels some episode of the detector overlaps (matching no incident).
    pub flagged: usize,
    /// Episodes of the detector matching no incident that overlap a label of this flavour.
    pub episodes: usize,
}

/// The evaluation of every detector found in the episodes.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub grace_ms: i64,
    /// Per detector: its target threat and figures.
    pub detectors: BTreeMap<String, (Option<String>, Figures)>,
    /// Per detector and label flavour (`detail`): recall and time-to-detect.
    pub flavours: BTreeMap<(String, String), Figures>,
    /// Per scored detector and benign flavour: what it flagged.
    pub benign: BTreeMap<(String, String), Benign>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn overlaps(e: &Episode, l: &Label, grace_ms: i64) -> bool {
    e.device == l.device && e.open_ms < l.end_ms + grace_ms && e.close_ms.is_none_or(|c| c > l.start_ms)
}

/// Scores `episodes` against `labels`; `detectors` lists the detectors with the threat each
/// targets (from the registry: `vigil::detect::registry()`), reported even without episodes;
/// a detector found only in the episodes is reported, not scored.
pub fn evaluate(labels: &[Label], episodes: &[Episode], grace_ms: i64, detectors: &[(&str, Option<Threat>)]) -> Report {
    let threat_of = |name: &str| detectors.iter().find(|d| d.0 == name).and_then(|d| d.1);
    let mut names: Vec<String> = detectors.iter().map(|s| s.0.to_string()).collect();
    names.extend(episodes.iter().map(|e| e.detector.clone()));
    names.sort();
    names.dedup();
    let mut benign_labels: BTreeMap<&str, usize> = BTreeMap::new();
    for l in labels.iter().filter(|l| l.kind == IncidentKind::Benign) {
        *benign_labels.entry(l.detail.as_str()).or_default() += 1;
    }
    let mut by_device: HashMap<&str, Vec<&Label>> = HashMap::new();
    for l in labels {
        by_device.entry(l.device.as_str()).or_default().push(l);
    }
    let mut report = Report {
        grace_ms,
        ..Default::default()
    };
    for name in names {
        let mine: Vec<&Episode> = episodes.iter().filter(|e| e.detector == name).collect();
        let mut f = Figures {
            episodes: mine.len(),
            ..Default::default()
        };
        let Some(threat) = threat_of(&name) else {
            report.detectors.insert(name, (None, f));
            continue;
        };
        let targets = |l: &Label| l.kind.threat() == Some(threat);
        let (matching, unmatched): (Vec<&Episode>, Vec<&Episode>) = mine.iter().partition(|e| {
            by_device
                .get(e.device.as_str())
                .is_some_and(|ls| ls.iter().any(|l| targets(l) && overlaps(e, l, grace_ms)))
        });
        f.matching_episodes = matching.len();
        for (&detail, &n) in &benign_labels {
            let benign = |l: &&&Label| l.kind == IncidentKind::Benign && l.detail == detail;
            let mut b = Benign {
                labels: n,
                ..Default::default()
            };
            b.episodes = unmatched
                .iter()
                .filter(|e| {
                    by_device
                        .get(e.device.as_str())
                        .is_some_and(|ls| ls.iter().filter(benign).any(|l| overlaps(e, l, grace_ms)))
                })
                .count();
            b.flagged = labels
                .iter()
                .filter(|l| l.kind == IncidentKind::Benign && l.detail == detail)
                .filter(|l| unmatched.iter().any(|e| overlaps(e, l, grace_ms)))
                .count();
            report.benign.insert((name.clone(), detail.to_string()), b);
        }
        let mut ttds = Vec::new();
        let mut per_flavour: BTreeMap<String, (usize, usize, Vec<f64>)> = BTreeMap::new();
        for l in labels.iter().filter(|l| targets(l)) {
            f.labels += 1;
            let entry = per_flavour.entry(l.detail.clone()).or_default();
            entry.0 += 1;
            let first = mine
                .iter()
                .filter(|e| overlaps(e, l, grace_ms))
                .map(|e| e.open_ms)
                .min();
            if let Some(open) = first {
                f.detected += 1;
                entry.1 += 1;
                let ttd = (open - l.start_ms).max(0) as f64 / 1000.0;
                ttds.push(ttd);
                entry.2.push(ttd);
            }
        }
        f.precision = ratio(f.matching_episodes, f.episodes);
        f.recall = ratio(f.detected, f.labels);
        f.f1 = match (f.precision, f.recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            (Some(_), Some(_)) => Some(0.0),
            _ => None,
        };
        f.median_ttd_s = median(ttds);
        for (detail, (n, d, t)) in per_flavour {
            report.flavours.insert(
                (name.clone(), detail),
                Figures {
                    labels: n,
                    detected: d,
                    recall: ratio(d, n),
                    median_ttd_s: median(t),
                    ..Default::default()
                },
            );
        }
        report.detectors.insert(name, (Some(threat.name().to_string()), f));
    }
    report
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("—".to_string(), |x| format!("{x:.digits$}"))
}

impl Report {
    /// The report as a Markdown table (per detector, then per flavour).
    pub fn table(&self) -> String {
        let mut s = String::new();
        s += "| detector | target | labels | detected | episodes | matching | precision | recall | F1 | median TTD (s) |\n";
        s += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
        for (name, (kind, f)) in &self.detectors {
            s += &format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                kind.as_deref().unwrap_or("—"),
                f.labels,
                f.detected,
                f.episodes,
                f.matching_episodes,
                opt(f.precision, 3),
                opt(f.recall, 3),
                opt(f.f1, 3),
                opt(f.median_ttd_s, 0)
            );
        }
        s += "\n| detector | incident flavour | labels | detected | recall | median TTD (s) |\n";
        s += "|---|---|---:|---:|---:|---:|\n";
        for ((name, detail), f) in &self.flavours {
            s += &format!(
                "| {name} | {detail} | {} | {} | {} | {} |\n",
                f.labels,
                f.detected,
                opt(f.recall, 3),
                opt(f.median_ttd_s, 0)
            );
        }
        if !self.benign.is_empty() {
            s += "\n| detector | benign look-alike | labels | flagged | false-positive episodes on it |\n";
            s += "|---|---|---:|---:|---:|\n";
            for ((name, detail), b) in &self.benign {
                s += &format!(
                    "| {name} | {detail} | {} | {} | {} |\n",
                    b.labels, b.flagged, b.episodes
                );
            }
        }
        s
    }

    /// The report as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        let detectors: serde_json::Map<String, serde_json::Value> = self
            .detectors
            .iter()
            .map(|(n, (k, f))| {
                let mut v = serde_json::to_value(f).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("target".into(), serde_json::json!(k));
                }
                (n.clone(), v)
            })
            .collect();
        let flavours: Vec<serde_json::Value> = self
            .flavours
            .iter()
            .map(|((n, d), f)| {
                let mut v = serde_json::to_value(f).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("detector".into(), n.clone().into());
                    m.insert("detail".into(), d.clone().into());
                }
                v
            })
            .collect();
        let benign: Vec<serde_json::Value> = self
            .benign
            .iter()
            .map(|((n, d), b)| {
                let mut v = serde_json::to_value(b).unwrap_or_default();
                if let Some(m) = v.as_object_mut() {
                    m.insert("detector".into(), n.clone().into());
                    m.insert("detail".into(), d.clone().into());
                }
                v
            })
            .collect();
        serde_json::json!({"grace_ms": self.grace_ms, "detectors": detectors, "flavours": flavours, "benign": benign})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(kind: IncidentKind, device: &str, start: i64, end: i64) -> Label {
        Label {
            kind,
            device: device.into(),
            start_ms: start,
            end_ms: end,
            detail: "x".into(),
        }
    }

    #[test]
    fn episodes_pair_inserts_and_retracts() {
        let text = r#"{"op":"insert","at_ms":10,"detector":"silence","device_id":"a"}
{"op":"retract","at_ms":20,"detector":"silence","device_id":"a"}
{"op":"insert","at_ms":30,"detector":"silence","device_id":"a"}
"#;
        let e = read_episodes(text.as_bytes()).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].close_ms, Some(20));
        assert_eq!(e[1].close_ms, None);
        assert!(
            read_episodes(&b"{\"op\":\"retract\",\"at_ms\":1,\"detector\":\"x\",\"device_id\":\"a\"}\n"[..]).is_err()
        );
    }

    #[test]
    fn precision_recall_and_ttd() {
        let labels = vec![
            label(IncidentKind::Silence, "a", 1000, 5000),
            label(IncidentKind::Silence, "b", 1000, 5000),
            label(IncidentKind::Corruption, "c", 1000, 5000),
        ];
        let ep = |d: &str, o, c| Episode {
            detector: "silence".into(),
            device: d.into(),
            open_ms: o,
            close_ms: c,
        };
        // a: detected after 2 s; c: wrong kind (false positive); b: missed; late one within grace.
        let episodes = vec![ep("a", 3000, Some(6000)), ep("c", 2000, None), ep("a", 5500, None)];
        let r = evaluate(&labels, &episodes, 1000, &[("silence", Some(Threat::DenialOfService))]);
        let (kind, f) = &r.detectors["silence"];
        assert_eq!(kind.as_deref(), Some("denial_of_service"));
        assert_eq!((f.episodes, f.matching_episodes, f.labels, f.detected), (3, 2, 2, 1));
        assert_eq!(f.recall, Some(0.5));
        assert_eq!(f.median_ttd_s, Some(2.0));
        assert!(r.table().contains("| silence |"));
    }

    #[test]
    fn benign_look_alikes_name_the_false_positives() {
        let mut backup = label(IncidentKind::Benign, "a", 1000, 5000);
        backup.detail = "backup".into();
        let labels = vec![backup, label(IncidentKind::Exfiltration, "b", 1000, 5000)];
        let ep = |d: &str| Episode {
            detector: "exfiltration".into(),
            device: d.into(),
            open_ms: 2000,
            close_ms: Some(3000),
        };
        let detectors = [("exfiltration", Some(Threat::DataLoss)), ("kmeans", None)];
        let r = evaluate(&labels, &[ep("a"), ep("b")], 0, &detectors);
        let (threat, f) = &r.detectors["exfiltration"];
        assert_eq!(threat.as_deref(), Some("data_loss"));
        assert_eq!((f.episodes, f.matching_episodes, f.detected), (2, 1, 1));
        let b = &r.benign[&("exfiltration".to_string(), "backup".to_string())];
        assert_eq!((b.labels, b.flagged, b.episodes), (1, 1, 1));
        assert_eq!(r.detectors["kmeans"].0, None);
        assert!(r.table().contains("| exfiltration | backup | 1 | 1 | 1 |"));
    }
}
