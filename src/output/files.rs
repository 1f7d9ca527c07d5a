//! File outputs: each worker writes sorted part files, merged into the final files when the
//! run ends.
//!
//! Invariants: every part file is sorted by its key (`key \t json` lines): windows by
//! (window end, length, device), rejects by (source, line), features by device. The final
//! files are the k-way merge of the parts, so their content and order do not depend on the
//! number of workers. Part files live in `OUT/.parts/` and are removed after the merge.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{SinkFactory, WorkerSink};
use crate::decode::Reject;
use crate::detect::{Anomaly, EventScore};
use crate::event::DeviceId;
use crate::features::{feature_row, FeatureLayout};
use crate::window::{DeviceState, WindowRow};

/// The final file names inside the output folder.
pub const WINDOWS_FILE: &str = "windows.jsonl";
pub const REJECTS_FILE: &str = "rejects.jsonl";
pub const FEATURES_FILE: &str = "features.jsonl";
pub const ANOMALIES_FILE: &str = "anomalies.jsonl";
pub const SCORES_FILE: &str = "scores.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
const PARTS: &str = ".parts";

/// Writes one worker's part files.
pub struct FileSink {
    dir: PathBuf,
    worker: usize,
    tick_ms: i64,
    layout: Arc<FeatureLayout>,
    windows: Option<BufWriter<File>>,
    rejects: Option<BufWriter<File>>,
    anomalies: Option<BufWriter<File>>,
    scores: Option<BufWriter<File>>,
    error: Option<std::io::Error>,
    /// Reused line buffer.
    line: Vec<u8>,
}

impl FileSink {
    /// A factory for the sinks of a run writing into `out_dir`. The final feature snapshot goes
    /// to `features.jsonl`; periodic ones to `snapshots/features-<ms>.jsonl`.
    pub fn factory(out_dir: &Path, tick_ms: u64, layout: FeatureLayout) -> SinkFactory {
        let dir = out_dir.join(PARTS);
        let layout = Arc::new(layout);
        Arc::new(move |worker| {
            Box::new(FileSink {
                dir: dir.clone(),
                worker,
                tick_ms: tick_ms as i64,
                layout: layout.clone(),
                windows: None,
                rejects: None,
                anomalies: None,
                scores: None,
                error: None,
                line: Vec::with_capacity(512),
            }) as Box<dyn WorkerSink>
        })
    }

    fn open(&mut self, name: &str) -> Option<BufWriter<File>> {
        let path = self.dir.join(format!("{name}-{:04}.part", self.worker));
        match File::create(&path) {
            Ok(f) => Some(BufWriter::with_capacity(1 << 20, f)),
            Err(e) => {
                self.keep(std::io::Error::new(e.kind(), format!("{}: {e}", path.display())));
                None
            }
        }
    }

    fn keep(&mut self, e: std::io::Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

fn key_text(text: &str) -> String {
    text.replace(['\t', '\n'], " ")
}

impl WorkerSink for FileSink {
    fn rows(&mut self, rows: &[WindowRow]) {
        if self.windows.is_none() {
            self.windows = self.open("windows");
        }
        let Some(mut w) = self.windows.take() else { return };
        let mut line = std::mem::take(&mut self.line);
        for row in rows {
            line.clear();
            // The sort prefix (window end, length, device), a tab, the row's JSON.
            let _ = write!(line, "{:020}{:020}", row.window_end_ms, row.window_len_ms);
            if row.device.contains(['\t', '\n']) {
                line.extend_from_slice(key_text(&row.device).as_bytes());
            } else {
                line.extend_from_slice(row.device.as_bytes());
            }
            line.push(b'\t');
            row.write_json(&mut line);
            line.push(b'\n');
            if let Err(e) = w.write_all(&line) {
                self.keep(e);
                break;
            }
        }
        self.line = line;
        self.windows = Some(w);
    }

    fn reject(&mut self, reject: Reject) {
        if self.rejects.is_none() {
            self.rejects = self.open("rejects");
        }
        let Some(mut w) = self.rejects.take() else { return };
        let json = serde_json::to_string(&reject).unwrap_or_default();
        let line = format!("{}\u{1f}{:020}\t{json}\n", key_text(&reject.source), reject.line);
        if let Err(e) = w.write_all(line.as_bytes()) {
            self.keep(e);
        }
        self.rejects = Some(w);
    }

    fn features(&mut self, as_of_tick: u64, last: bool, states: &[(DeviceId, DeviceState)]) {
        let as_of_ms = (as_of_tick as i64 + 1) * self.tick_ms - 1;
        let name = if last {
            "features".to_string()
        } else {
            format!("snapshot-{as_of_ms}")
        };
        let Some(mut w) = self.open(&name) else { return };
        let mut sorted: Vec<&(DeviceId, DeviceState)> = states.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        for (device, state) in sorted {
            let row = feature_row(&self.layout, device, as_of_ms, state);
            if let Err(e) = writeln!(w, "{}\t{row}", key_text(device)) {
                self.keep(e);
                break;
            }
        }
        if let Err(e) = w.flush() {
            self.keep(e);
        }
    }

    fn anomalies(&mut self, changes: &[(Anomaly, u64, isize)]) {
        if self.anomalies.is_none() {
            self.anomalies = self.open("anomalies");
        }
        let Some(mut w) = self.anomalies.take() else { return };
        let mut sorted: Vec<&(Anomaly, u64, isize)> = changes.iter().collect();
        sorted.sort_by(|a, b| (a.1, &a.0.detector, &a.0.device, a.2).cmp(&(b.1, &b.0.detector, &b.0.device, b.2)));
        for (a, t, diff) in sorted {
            let at_ms = *t as i64 * self.tick_ms;
            let op = if *diff > 0 { "insert" } else { "retract" };
            for _ in 0..diff.unsigned_abs() {
                let key = format!(
                    "{at_ms:020}{}\u{1f}{}\u{1f}{op}",
                    key_text(&a.detector),
                    key_text(&a.device)
                );
                if let Err(e) = writeln!(w, "{key}\t{}", a.to_json(op, at_ms, self.tick_ms as u64)) {
                    self.keep(e);
                }
            }
        }
        self.anomalies = Some(w);
    }

    fn scores(&mut self, scores: &[EventScore]) {
        if self.scores.is_none() {
            self.scores = self.open("scores");
        }
        let Some(mut w) = self.scores.take() else { return };
        let mut sorted: Vec<&EventScore> = scores.iter().collect();
        sorted.sort_by(|a, b| (a.ts_ms, &a.device, &a.detector).cmp(&(b.ts_ms, &b.device, &b.detector)));
        for s in sorted {
            let key = format!("{:020}{}\u{1f}{}", s.ts_ms, key_text(&s.device), key_text(&s.detector));
            let row = serde_json::json!({"ts": s.ts_ms, "device_id": s.device.as_str(), "detector": s.detector.as_str(), "score": s.score});
            if let Err(e) = writeln!(w, "{key}\t{row}") {
                self.keep(e);
            }
        }
        self.scores = Some(w);
    }

    fn finish(&mut self) -> std::io::Result<()> {
        for w in [
            self.windows.as_mut(),
            self.rejects.as_mut(),
            self.anomalies.as_mut(),
            self.scores.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            if let Err(e) = w.flush() {
                self.error.get_or_insert(e);
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Prepares the output folder: creates it and its parts folder; the `leader` (process 0,
/// or the only process) also clears parts left by an earlier run. Other processes of a
/// cluster cannot write before process 0 has prepared: timely connects them first.
pub fn prepare(out_dir: &Path, leader: bool) -> std::io::Result<()> {
    let parts = out_dir.join(PARTS);
    if leader && parts.exists() {
        std::fs::remove_dir_all(&parts)?;
    }
    std::fs::create_dir_all(&parts)?;
    Ok(())
}

/// Merges the workers' parts into the final files; returns the number of lines per file.
pub fn merge(out_dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    let parts_dir = out_dir.join(PARTS);
    let mut groups: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for entry in std::fs::read_dir(&parts_dir)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if let Some((group, _)) = name.rsplit_once('-') {
            groups.entry(group.to_string()).or_default().push(path);
        }
    }
    let mut written = Vec::new();
    for required in ["windows", "rejects", "features", "anomalies"] {
        groups.entry(required.to_string()).or_default();
    }
    for (group, parts) in groups {
        let target = if let Some(ms) = group.strip_prefix("snapshot-") {
            std::fs::create_dir_all(out_dir.join("snapshots"))?;
            out_dir.join("snapshots").join(format!("features-{ms}.jsonl"))
        } else {
            out_dir.join(format!("{group}.jsonl"))
        };
        let n = merge_sorted(&parts, &target)?;
        written.push((target.display().to_string(), n));
    }
    std::fs::remove_dir_all(&parts_dir)?;
    Ok(written)
}

fn merge_sorted(parts: &[PathBuf], target: &Path) -> std::io::Result<u64> {
    let mut readers: Vec<BufReader<File>> = parts
        .iter()
        .map(File::open)
        .map(|f| f.map(BufReader::new))
        .collect::<Result<_, _>>()?;
    let mut out = BufWriter::with_capacity(1 << 20, File::create(target)?);
    let mut heap = BinaryHeap::new();
    let mut lines: Vec<String> = vec![String::new(); readers.len()];
    for (i, r) in readers.iter_mut().enumerate() {
        if r.read_line(&mut lines[i])? > 0 {
            heap.push(std::cmp::Reverse((split_key(&lines[i]).to_string(), i)));
        }
    }
    let mut n = 0;
    while let Some(std::cmp::Reverse((_, i))) = heap.pop() {
        let line = std::mem::take(&mut lines[i]);
        let body = line.split_once('\t').map_or(line.as_str(), |(_, b)| b);
        out.write_all(body.as_bytes())?;
        if !body.ends_with('\n') {
            out.write_all(b"\n")?;
        }
        n += 1;
        if readers[i].read_line(&mut lines[i])? > 0 {
            heap.push(std::cmp::Reverse((split_key(&lines[i]).to_string(), i)));
        }
    }
    out.flush()?;
    Ok(n)
}

fn split_key(line: &str) -> &str {
    line.split_once('\t').map_or(line, |(k, _)| k)
}
