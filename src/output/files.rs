//! File outputs: each worker writes sorted part files, merged into the final files when the
//! run ends.
//!
//! Invariants: every part file is sorted by its key (`key \t json` lines): windows by
//! (window end, length, device), rejects by (source, line), features by device. The final
//! files are the k-way merge of the parts, so their content and order do not depend on the
//! number of workers. Part files live in `OUT/.parts/` and are removed after the merge, or
//! when the run fails. A final file is written under a temporary name (`OUT/.NAME.tmp`) and
//! renamed when it is complete, so a file with its final name is always whole. Every write
//! error names the file it concerns (once, with the OS message once).
//!
//! A run refuses an output folder that already holds anything but `.parts/` ([`prepare`]),
//! unless forced: it then removes the outputs of the earlier run first (`windows.jsonl`, ...,
//! `snapshots/`), so no file of another run is left beside this run's. With a Kafka input
//! that resumes from committed offsets, the outputs an earlier run already wrote (window rows
//! ending at or before the resume tick, snapshots and anomaly changes before it, rejects of
//! records it had read) are not written again: every row written is complete.

use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{SinkFactory, WorkerSink};
use crate::decode::Reject;
use crate::detect::{Anomaly, EventScore};
use crate::event::DeviceId;
use crate::features::{write_feature_row, FeatureLayout};
use crate::source::kafka::KafkaShared;
use crate::window::{DeviceState, WindowRow};

/// The final file names inside the output folder.
pub const WINDOWS_FILE: &str = "windows.jsonl";
pub const REJECTS_FILE: &str = "rejects.jsonl";
pub const FEATURES_FILE: &str = "features.jsonl";
pub const ANOMALIES_FILE: &str = "anomalies.jsonl";
pub const SCORES_FILE: &str = "scores.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const SNAPSHOTS_DIR: &str = "snapshots";
const PARTS: &str = ".parts";

/// The files and folders a run writes into its output folder (what `--force` replaces).
pub const OUTPUTS: [&str; 7] = [
    WINDOWS_FILE,
    REJECTS_FILE,
    FEATURES_FILE,
    ANOMALIES_FILE,
    SCORES_FILE,
    SUMMARY_FILE,
    SNAPSHOTS_DIR,
];

/// An output folder that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    #[error(
        "output folder {path} is not empty (it holds {shown}): a run would mix its files with \
         another run's; choose an empty or new folder with --out, or pass --force to replace \
         vigil's outputs in it"
    )]
    NotEmpty { path: PathBuf, shown: String },
    #[error("output folder {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// An I/O error that names its file: `PATH: OS message`.
pub fn io_at(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// One open part file.
struct Part {
    path: PathBuf,
    w: BufWriter<File>,
}

/// Writes one worker's part files.
pub struct FileSink {
    dir: PathBuf,
    worker: usize,
    tick_ms: i64,
    layout: Arc<FeatureLayout>,
    /// Whether per-event scores are written (`--scores-out`, `[output] scores`).
    write_scores: bool,
    /// A Kafka input's shared state: what an earlier run already wrote, when resuming.
    kafka: Option<Arc<KafkaShared>>,
    windows: Option<Part>,
    rejects: Option<Part>,
    anomalies: Option<Part>,
    scores: Option<Part>,
    error: Option<std::io::Error>,
    /// Reused line buffer.
    line: Vec<u8>,
}

impl FileSink {
    /// A factory for the sinks of a run writing into `out_dir`. The final feature snapshot goes
    /// to `features.jsonl`; periodic ones to `snapshots/features-<ms>.jsonl`; per-event scores
    /// to `scores.jsonl` only when `write_scores`. `kafka`: the Kafka input's shared state,
    /// for a run that may resume.
    pub fn factory(
        out_dir: &Path,
        tick_ms: u64,
        layout: FeatureLayout,
        write_scores: bool,
        kafka: Option<Arc<KafkaShared>>,
    ) -> SinkFactory {
        let dir = out_dir.join(PARTS);
        let layout = Arc::new(layout);
        Arc::new(move |worker| {
            Box::new(FileSink {
                dir: dir.clone(),
                worker,
                tick_ms: tick_ms as i64,
                layout: layout.clone(),
                write_scores,
                kafka: kafka.clone(),
                windows: None,
                rejects: None,
                anomalies: None,
                scores: None,
                error: None,
                line: Vec::with_capacity(512),
            }) as Box<dyn WorkerSink>
        })
    }

    fn open(&mut self, name: &str) -> Option<Part> {
        let path = self.dir.join(format!("{name}-{:04}.part", self.worker));
        match File::create(&path) {
            Ok(f) => Some(Part {
                path,
                w: BufWriter::with_capacity(1 << 20, f),
            }),
            Err(e) => {
                self.keep(&path, e);
                None
            }
        }
    }

    /// Keeps the first error, naming its file.
    fn keep(&mut self, path: &Path, e: std::io::Error) {
        if self.error.is_none() {
            self.error = Some(io_at(path, e));
        }
    }

    /// The tick below which an earlier run of a resumed Kafka input wrote every output.
    fn resume_tick(&self) -> u64 {
        self.kafka
            .as_ref()
            .and_then(|s| s.resume())
            .map_or(0, |r| r.complete_tick)
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
        let resume_ms = self.resume_tick() as i64 * self.tick_ms;
        let mut line = std::mem::take(&mut self.line);
        for row in rows {
            if row.window_end_ms <= resume_ms {
                continue; // written by the run this one resumes
            }
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
            if let Err(e) = w.w.write_all(&line) {
                self.keep(&w.path, e);
                break;
            }
        }
        self.line = line;
        self.windows = Some(w);
    }

    fn reject(&mut self, reject: Reject) {
        if already_read(self.kafka.as_deref(), &reject) {
            return; // written by the run this one resumes
        }
        if self.rejects.is_none() {
            self.rejects = self.open("rejects");
        }
        let Some(mut w) = self.rejects.take() else { return };
        let json = serde_json::to_string(&reject).unwrap_or_default();
        let line = format!("{}\u{1f}{:020}\t{json}\n", key_text(&reject.source), reject.line);
        if let Err(e) = w.w.write_all(line.as_bytes()) {
            self.keep(&w.path, e);
        }
        self.rejects = Some(w);
    }

    fn features(&mut self, as_of_tick: u64, last: bool, states: &[(DeviceId, DeviceState)]) {
        if !last && as_of_tick < self.resume_tick() {
            return; // written by the run this one resumes
        }
        let as_of_ms = (as_of_tick as i64 + 1) * self.tick_ms - 1;
        let name = if last {
            "features".to_string()
        } else {
            format!("snapshot-{as_of_ms}")
        };
        let Some(mut w) = self.open(&name) else { return };
        let mut sorted: Vec<&(DeviceId, DeviceState)> = states.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        let mut row = Vec::with_capacity(2048);
        for (device, state) in sorted {
            row.clear();
            write_feature_row(&self.layout, device, as_of_ms, state, &mut row);
            row.push(b'\n');
            let written = write!(w.w, "{}\t", key_text(device)).and_then(|()| w.w.write_all(&row));
            if let Err(e) = written {
                self.keep(&w.path, e);
                break;
            }
        }
        if let Err(e) = w.w.flush() {
            self.keep(&w.path, e);
        }
    }

    fn anomalies(&mut self, changes: &[(Anomaly, u64, isize)]) {
        if self.anomalies.is_none() {
            self.anomalies = self.open("anomalies");
        }
        let Some(mut w) = self.anomalies.take() else { return };
        let resume = self.resume_tick();
        let mut sorted: Vec<&(Anomaly, u64, isize)> = changes.iter().filter(|c| c.1 >= resume).collect();
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
                if let Err(e) = writeln!(w.w, "{key}\t{}", a.to_json(op, at_ms, self.tick_ms as u64)) {
                    self.keep(&w.path, e);
                }
            }
        }
        self.anomalies = Some(w);
    }

    fn wants_scores(&self) -> bool {
        self.write_scores
    }

    fn scores(&mut self, scores: &[EventScore]) {
        if !self.write_scores {
            return;
        }
        if self.scores.is_none() {
            self.scores = self.open("scores");
        }
        let Some(mut w) = self.scores.take() else { return };
        let mut sorted: Vec<&EventScore> = scores.iter().collect();
        sorted.sort_by(|a, b| (a.ts_ms, &a.device, &a.detector).cmp(&(b.ts_ms, &b.device, &b.detector)));
        for s in sorted {
            let key = format!("{:020}{}\u{1f}{}", s.ts_ms, key_text(&s.device), key_text(&s.detector));
            let row = serde_json::json!({"ts": s.ts_ms, "device_id": s.device.as_str(), "detector": s.detector.as_str(), "score": s.score});
            if let Err(e) = writeln!(w.w, "{key}\t{row}") {
                self.keep(&w.path, e);
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
            if let Err(e) = w.w.flush() {
                self.error.get_or_insert(io_at(&w.path, e));
            }
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Whether a reject is of a record an earlier run (that this resumed Kafka run continues)
/// had already read, and so wrote.
fn already_read(kafka: Option<&KafkaShared>, reject: &Reject) -> bool {
    let Some(resume) = kafka.and_then(|s| s.resume()) else {
        return false;
    };
    let Some((topic, partition)) = reject
        .source
        .strip_prefix("kafka:")
        .and_then(|s| s.rsplit_once('/'))
        .and_then(|(t, p)| Some((t, p.parse::<i32>().ok()?)))
    else {
        return false;
    };
    let read = resume
        .read_through
        .get(&(topic.to_string(), partition))
        .copied()
        .unwrap_or(0);
    (reject.line as i64) < read
}

/// Prepares the output folder: creates it and its parts folder. The `leader` (process 0, or
/// the only process) first checks that the folder holds nothing but `.parts/` — unless
/// `force`, when it removes the outputs an earlier run wrote there ([`OUTPUTS`] and their
/// temporary files) — and clears parts left by an earlier run. Other processes of a cluster
/// cannot write before process 0 has prepared: timely connects them first.
pub fn prepare(out_dir: &Path, leader: bool, force: bool) -> Result<(), OutDirError> {
    let io = |source| OutDirError::Io {
        path: out_dir.to_path_buf(),
        source,
    };
    if leader {
        let mut found: Vec<String> = match std::fs::read_dir(out_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name != PARTS)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        found.sort();
        if !found.is_empty() && !force {
            let mut shown = found.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
            if found.len() > 3 {
                shown.push_str(&format!(" and {} more", found.len() - 3));
            }
            return Err(OutDirError::NotEmpty {
                path: out_dir.to_path_buf(),
                shown,
            });
        }
        for name in &found {
            let ours = OUTPUTS.contains(&name.as_str()) || (name.starts_with('.') && name.ends_with(TMP_SUFFIX));
            if !ours {
                continue;
            }
            let path = out_dir.join(name);
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| io(io_at(&path, e)))?;
        }
        let parts = out_dir.join(PARTS);
        if parts.exists() {
            std::fs::remove_dir_all(&parts).map_err(|e| io(io_at(&parts, e)))?;
        }
    }
    let parts = out_dir.join(PARTS);
    std::fs::create_dir_all(&parts).map_err(|e| io(io_at(&parts, e)))?;
    Ok(())
}

/// Removes the parts folder (after a failed run: nothing is left filling the disk).
pub fn discard_parts(out_dir: &Path) {
    let parts = out_dir.join(PARTS);
    if let Err(e) = std::fs::remove_dir_all(&parts) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(path = %parts.display(), error = %e, "cannot remove the part files");
        }
    }
}

/// The suffix of a final file while it is written (`OUT/.windows.jsonl.tmp`).
const TMP_SUFFIX: &str = ".tmp";

/// Writes `target` through a temporary file beside it, renamed to `target` once `write`
/// succeeded and the data is flushed; on failure the temporary file is removed and the error
/// names `target`.
pub fn write_atomically<T>(
    target: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = target.with_file_name(format!(".{name}{TMP_SUFFIX}"));
    let result = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        let value = write(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, target)?;
        Ok(value)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_at(target, e)
    })
}

/// Merges the workers' parts into the final files (`scores`: also `scores.jsonl`, empty when
/// no detector scored); returns the number of lines per file. The parts folder is removed,
/// also when a merge fails.
pub fn merge(out_dir: &Path, scores: bool) -> std::io::Result<Vec<(String, u64)>> {
    let result = merge_parts(out_dir, scores);
    discard_parts(out_dir);
    result
}

fn merge_parts(out_dir: &Path, scores: bool) -> std::io::Result<Vec<(String, u64)>> {
    let parts_dir = out_dir.join(PARTS);
    let mut groups: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for entry in std::fs::read_dir(&parts_dir).map_err(|e| io_at(&parts_dir, e))? {
        let path = entry.map_err(|e| io_at(&parts_dir, e))?.path();
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
    if scores {
        groups.entry("scores".to_string()).or_default();
    }
    for (group, parts) in groups {
        let target = if let Some(ms) = group.strip_prefix("snapshot-") {
            let dir = out_dir.join(SNAPSHOTS_DIR);
            std::fs::create_dir_all(&dir).map_err(|e| io_at(&dir, e))?;
            dir.join(format!("features-{ms}.jsonl"))
        } else {
            out_dir.join(format!("{group}.jsonl"))
        };
        let n = write_atomically(&target, |out| merge_sorted(&parts, out))?;
        written.push((target.display().to_string(), n));
    }
    Ok(written)
}

/// The k-way merge of sorted part files into `out` (without their sort keys).
fn merge_sorted(parts: &[PathBuf], out: &mut impl Write) -> std::io::Result<u64> {
    let mut readers: Vec<BufReader<File>> = parts
        .iter()
        .map(|p| File::open(p).map(BufReader::new).map_err(|e| io_at(p, e)))
        .collect::<Result<_, _>>()?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::WindowStats;

    /// `/dev/full` fails every write with ENOSPC: a real "disk full" without filling a disk.
    fn full_disk_at(path: &Path) -> bool {
        Path::new("/dev/full").exists() && std::os::unix::fs::symlink("/dev/full", path).is_ok()
    }

    fn count(text: &str, needle: &str) -> usize {
        text.matches(needle).count()
    }

    #[test]
    fn a_full_disk_while_merging_names_the_file_and_leaves_neither_it_nor_the_parts() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        prepare(out, true, false).unwrap();
        std::fs::write(out.join(PARTS).join("windows-0000.part"), "k\t{\"a\":1}\n").unwrap();
        if !full_disk_at(&out.join(".windows.jsonl.tmp")) {
            return; // no /dev/full here
        }
        let e = merge(out, false).unwrap_err().to_string();
        let target = out.join(WINDOWS_FILE).display().to_string();
        assert!(e.starts_with(&target), "{e}");
        assert_eq!(count(&e, "No space left on device"), 1, "{e}");
        assert!(!out.join(WINDOWS_FILE).exists(), "no half-written windows.jsonl");
        assert!(!out.join(".windows.jsonl.tmp").exists(), "temporary file removed");
        assert!(!out.join(PARTS).exists(), "parts removed");
        // The files merged before the failure are whole (written under their final name only
        // once complete).
        assert_eq!(std::fs::read_to_string(out.join(ANOMALIES_FILE)).unwrap(), "");
    }

    #[test]
    fn a_full_disk_while_writing_parts_names_the_part_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        prepare(out, true, false).unwrap();
        if !full_disk_at(&out.join(PARTS).join("windows-0000.part")) {
            return;
        }
        let mut sink = (FileSink::factory(out, 1000, FeatureLayout::new(&Default::default()), false, None))(0);
        let row = WindowRow {
            window_end_ms: 60_000,
            window_len_ms: 60_000,
            device: "vm-1".into(),
            window_start_ms: 0,
            stats: WindowStats::default(),
        };
        sink.rows(&[row.clone(), row]);
        let e = sink.finish().unwrap_err().to_string();
        assert!(e.contains("windows-0000.part: "), "{e}");
        assert_eq!(count(&e, "No space left on device"), 1, "{e}");
    }

    #[test]
    fn writes_are_atomic_and_leave_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(SUMMARY_FILE);
        write_atomically(&target, |w| w.write_all(b"{}\n")).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "{}\n");
        let e = write_atomically(&target, |_| Err::<(), _>(std::io::Error::other("injected")))
            .unwrap_err()
            .to_string();
        assert_eq!(e, format!("{}: injected", target.display()));
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "{}\n",
            "the whole file stays"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SUMMARY_FILE)]);
    }

    #[test]
    fn a_non_empty_folder_is_refused_unless_forced_and_forcing_replaces_only_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        prepare(out, true, false).unwrap();
        // Parts of an interrupted run alone do not make a folder non-empty.
        std::fs::write(out.join(PARTS).join("windows-0000.part"), "x").unwrap();
        prepare(out, true, false).unwrap();
        assert_eq!(
            std::fs::read_dir(out.join(PARTS)).unwrap().count(),
            0,
            "old parts cleared"
        );
        std::fs::write(out.join(WINDOWS_FILE), "old\n").unwrap();
        std::fs::create_dir_all(out.join(SNAPSHOTS_DIR)).unwrap();
        std::fs::write(out.join(SNAPSHOTS_DIR).join("features-1.jsonl"), "old\n").unwrap();
        std::fs::write(out.join("notes.txt"), "mine\n").unwrap();
        let e = prepare(out, true, false).unwrap_err();
        assert!(matches!(e, OutDirError::NotEmpty { .. }), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("notes.txt, snapshots, windows.jsonl") && text.contains("--force"),
            "{text}"
        );
        assert!(out.join(WINDOWS_FILE).exists(), "nothing removed without --force");
        // Another process of a cluster does not check (process 0 does).
        prepare(out, false, false).unwrap();
        prepare(out, true, true).unwrap();
        assert!(!out.join(WINDOWS_FILE).exists() && !out.join(SNAPSHOTS_DIR).exists());
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "mine\n");
    }
}
