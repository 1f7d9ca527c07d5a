//! Labelled series for evaluating per-event detectors: readers for SKAB, UCR and the
//! project's own format, the mapping of a series to vigil events, and of per-event scores
//! back to a series' rows.
//!
//! - `skab`: a `;`-separated CSV with a `datetime` column (`YYYY-MM-DD HH:MM:SS`, UTC), one
//!   column per sensor and the labels `anomaly` (0/1) and `changepoint` (ignored). Each sensor
//!   is a channel; a row is anomalous when `anomaly` is 1 (no `anomaly` column: none is).
//! - `ucr`: `NNN_UCR_Anomaly_NAME_TRAIN_BEGIN_END.txt`, whitespace-separated readings, one
//!   channel; rows `BEGIN..=END` (1-based) are the anomaly. Row `i` (0-based) is dated
//!   [`UCR_EPOCH_MS`] + `i` seconds.
//! - `vigil`: an events CSV with (at least) `ts`, `device_id`, `value` columns (`ts` in epoch
//!   ms or RFC 3339) and the labels `vigil generate --labels` writes: one series per device,
//!   a row is anomalous when a label of its device covers its time `[start, end)`.
//!
//! A channel becomes a device `SERIES.CHANNEL` (`SERIES` alone for one-channel series), where
//! `SERIES` is the file's path below the folder given, `/` and spaces replaced by `-`, without
//! extension (`valve1-0.Pressure`). A row's score is the highest score of its channels at
//! the row's time (the testbed is the device; every sensor may reveal the anomaly).
//!
//! Invariants: files are listed in sorted order; rows keep the file's order; a malformed file
//! is an error naming the file and line.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Where UCR rows are dated from: 2021-01-01T00:00:00Z.
pub const UCR_EPOCH_MS: i64 = 1_609_459_200_000;

/// A labelled input file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SeriesFormat {
    Skab,
    Ucr,
    Vigil,
}

/// A malformed series file.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    #[error("{file}:{line}: {message}")]
    Line { file: String, line: usize, message: String },
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
}

/// One labelled series: its rows' times, one or more channels of readings, a label per row.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub ts_ms: Vec<i64>,
    /// `(device id, readings)`, readings aligned with `ts_ms` (NaN: no reading).
    pub channels: Vec<(String, Vec<f64>)>,
    pub labels: Vec<bool>,
}

impl Series {
    pub fn len(&self) -> usize {
        self.ts_ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts_ms.is_empty()
    }

    /// The labelled anomalies as inclusive row ranges (maximal runs of labelled rows).
    pub fn ranges(&self) -> Vec<(usize, usize)> {
        ranges(&self.labels)
    }

    /// Row scores from per-device scores `(device, ts_ms) → score`: the highest of the row's
    /// channels at the row's time (0 when none).
    pub fn row_scores(&self, scores: &HashMap<(String, i64), f64>) -> Vec<f64> {
        (0..self.len())
            .map(|i| {
                self.channels
                    .iter()
                    .filter_map(|(d, _)| scores.get(&(d.clone(), self.ts_ms[i])).copied())
                    .fold(0.0, f64::max)
            })
            .collect()
    }
}

/// Maximal runs of `true` as inclusive ranges.
pub fn ranges(labels: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &l) in labels.iter().enumerate() {
        match (l, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, labels.len() - 1));
    }
    out
}

/// The files of `paths` (folders searched recursively for `.csv` (skab, vigil) or `.txt`
/// (ucr) files), each with the name of its series, sorted.
pub fn list_files(format: SeriesFormat, paths: &[PathBuf]) -> Result<Vec<(PathBuf, String)>, SeriesError> {
    let ext = if format == SeriesFormat::Ucr { "txt" } else { "csv" };
    let mut out = Vec::new();
    for root in paths {
        if root.is_dir() {
            let mut stack = vec![root.clone()];
            while let Some(dir) = stack.pop() {
                let entries = std::fs::read_dir(&dir).map_err(|source| SeriesError::Io {
                    file: dir.display().to_string(),
                    source,
                })?;
                for e in entries.flatten() {
                    let p = e.path();
                    if p.is_dir() {
                        stack.push(p);
                    } else if p.extension().is_some_and(|x| x == ext) {
                        let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
                        out.push((p.clone(), series_name(&rel)));
                    }
                }
            }
        } else if root.exists() {
            out.push((
                root.clone(),
                series_name(Path::new(root.file_name().unwrap_or_default())),
            ));
        } else {
            return Err(SeriesError::File {
                file: root.display().to_string(),
                message: "no such file or folder".into(),
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn series_name(rel: &Path) -> String {
    rel.with_extension("").to_string_lossy().replace(['/', '\\', ' '], "-")
}

fn io(file: &Path) -> impl Fn(std::io::Error) -> SeriesError + '_ {
    move |source| SeriesError::Io {
        file: file.display().to_string(),
        source,
    }
}

/// The error of a line of `file` (1-based `line`), as the readers report one.
fn line_error(file: &Path) -> impl Fn(usize, String) -> SeriesError + '_ {
    move |line, message| SeriesError::Line {
        file: file.display().to_string(),
        line,
        message,
    }
}

/// Reads a SKAB run.
pub fn read_skab(path: &Path, name: &str, input: impl BufRead) -> Result<Series, SeriesError> {
    let err = line_error(path);
    let mut lines = input.lines();
    let header = lines.next().transpose().map_err(io(path))?.unwrap_or_default();
    let cols: Vec<&str> = header.trim_end().split(';').collect();
    let find = |n: &str| cols.iter().position(|c| *c == n);
    let Some(t) = find("datetime") else {
        return Err(err(
            1,
            "header needs a `datetime` column (SKAB format, `;`-separated)".into(),
        ));
    };
    // Without an `anomaly` column (SKAB's anomaly-free run) every row is normal.
    let a = find("anomaly");
    let skip = [Some(t), a, find("changepoint")];
    let sensors: Vec<usize> = (0..cols.len()).filter(|i| !skip.contains(&Some(*i))).collect();
    let mut s = Series {
        name: name.to_string(),
        ts_ms: Vec::new(),
        channels: sensors
            .iter()
            .map(|&i| (format!("{name}.{}", cols[i].replace(' ', "_")), Vec::new()))
            .collect(),
        labels: Vec::new(),
    };
    for (i, line) in lines.enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.trim_end().split(';').collect();
        if f.len() != cols.len() {
            return Err(err(i + 2, format!("{} fields, the header has {}", f.len(), cols.len())));
        }
        let ts = chrono::NaiveDateTime::parse_from_str(f[t], "%Y-%m-%d %H:%M:%S")
            .map_err(|e| err(i + 2, format!("datetime `{}`: {e}", f[t])))?;
        s.ts_ms.push(ts.and_utc().timestamp_millis());
        let num = |j: usize| {
            f[j].trim()
                .parse::<f64>()
                .map_err(|_| err(i + 2, format!("`{}` in column `{}` is not a number", f[j], cols[j])))
        };
        s.labels.push(match a {
            Some(a) => num(a)? >= 0.5,
            None => false,
        });
        for (c, &j) in sensors.iter().enumerate() {
            s.channels[c].1.push(num(j)?);
        }
    }
    Ok(s)
}

/// Reads a UCR series; its labels come from the file name.
pub fn read_ucr(path: &Path, name: &str, input: impl BufRead) -> Result<Series, SeriesError> {
    let file = path.display().to_string();
    let stem = path.file_stem().unwrap_or_default().to_string_lossy().to_string();
    let parts: Vec<&str> = stem.split('_').collect();
    let bad_name = || SeriesError::File {
        file: file.clone(),
        message: "the name must end in _TRAIN_BEGIN_END (UCR: NNN_UCR_Anomaly_NAME_TRAIN_BEGIN_END.txt)".into(),
    };
    if parts.len() < 3 {
        return Err(bad_name());
    }
    let n = |s: &str| s.parse::<usize>().map_err(|_| bad_name());
    let (begin, end) = (n(parts[parts.len() - 2])?, n(parts[parts.len() - 1])?);
    if begin == 0 || end < begin {
        return Err(bad_name());
    }
    let mut values = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.map_err(io(path))?;
        for tok in line.split_whitespace() {
            values.push(tok.parse::<f64>().map_err(|_| SeriesError::Line {
                file: file.clone(),
                line: i + 1,
                message: format!("`{tok}` is not a number"),
            })?);
        }
    }
    if end > values.len() {
        return Err(SeriesError::File {
            file,
            message: format!("the anomaly ends at row {end}, the file has {} readings", values.len()),
        });
    }
    Ok(Series {
        name: name.to_string(),
        ts_ms: (0..values.len() as i64).map(|i| UCR_EPOCH_MS + i * 1000).collect(),
        labels: (1..=values.len()).map(|r| r >= begin && r <= end).collect(),
        channels: vec![(name.to_string(), values)],
    })
}

/// Reads an events CSV (`ts`, `device_id`, `value` columns) into one series per device,
/// labelled by `labels` (`(device, start_ms, end_ms)`).
pub fn read_vigil(path: &Path, input: impl BufRead, labels: &[(String, i64, i64)]) -> Result<Vec<Series>, SeriesError> {
    let err = line_error(path);
    let mut lines = input.lines();
    let header = lines.next().transpose().map_err(io(path))?.unwrap_or_default();
    let cols: Vec<&str> = header.trim().split(',').map(str::trim).collect();
    let find = |n: &str| cols.iter().position(|c| *c == n);
    let (Some(t), Some(d), Some(v)) = (find("ts"), find("device_id"), find("value")) else {
        return Err(err(1, "header needs `ts`, `device_id` and `value` columns".into()));
    };
    let mut by_device: std::collections::BTreeMap<String, Vec<(i64, f64)>> = Default::default();
    for (i, line) in lines.enumerate() {
        let line = line.map_err(io(path))?;
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |j: usize| f.get(j).copied().unwrap_or("");
        if get(v).is_empty() {
            continue;
        }
        let ts = crate::decode::fields::parse_ts_text(get(t), "ts").map_err(|e| err(i + 2, e.to_string()))?;
        let value = get(v)
            .parse::<f64>()
            .map_err(|_| err(i + 2, format!("value `{}` is not a number", get(v))))?;
        by_device.entry(get(d).to_string()).or_default().push((ts, value));
    }
    Ok(by_device
        .into_iter()
        .map(|(device, mut rows)| {
            rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            let mine: Vec<&(String, i64, i64)> = labels.iter().filter(|l| l.0 == device).collect();
            Series {
                name: device.clone(),
                labels: rows
                    .iter()
                    .map(|(ts, _)| mine.iter().any(|l| *ts >= l.1 && *ts < l.2))
                    .collect(),
                ts_ms: rows.iter().map(|r| r.0).collect(),
                channels: vec![(device, rows.iter().map(|r| r.1).collect())],
            }
        })
        .collect())
}

/// Reads every series of `paths` in `format` (`labels`: for `vigil` only).
pub fn read_all(
    format: SeriesFormat,
    paths: &[PathBuf],
    labels: &[(String, i64, i64)],
) -> Result<Vec<Series>, SeriesError> {
    let mut out = Vec::new();
    for (path, name) in list_files(format, paths)? {
        let f = std::fs::File::open(&path).map_err(io(&path))?;
        let r = std::io::BufReader::new(f);
        match format {
            SeriesFormat::Skab => out.push(read_skab(&path, &name, r)?),
            SeriesFormat::Ucr => out.push(read_ucr(&path, &name, r)?),
            SeriesFormat::Vigil => out.extend(read_vigil(&path, r, labels)?),
        }
    }
    Ok(out)
}

/// Writes the series as vigil events (`ts,device_id,value`), every device's readings, all
/// rows sorted by time (then device), for `vigil run`.
pub fn write_events(series: &[Series], out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut rows: Vec<(i64, &str, f64)> = Vec::new();
    for s in series {
        for (device, values) in &s.channels {
            for (i, &v) in values.iter().enumerate() {
                if !v.is_nan() {
                    rows.push((s.ts_ms[i], device, v));
                }
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)));
    writeln!(out, "ts,device_id,value")?;
    for (ts, d, v) in rows {
        writeln!(out, "{ts},{d},{v}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_skab_and_ucr() {
        let skab =
            "datetime;A;B x;anomaly;changepoint\n2020-03-09 10:14:33;1;2;0.0;0.0\n2020-03-09 10:14:34;1.5;2;1.0;1.0\n";
        let s = read_skab(Path::new("valve1/0.csv"), "valve1-0", skab.as_bytes()).unwrap();
        assert_eq!(s.channels[1].0, "valve1-0.B_x");
        assert_eq!(s.labels, vec![false, true]);
        assert_eq!(s.ts_ms[1] - s.ts_ms[0], 1000);
        let bad = "datetime;A;anomaly\n2020-03-09 10:14:33;x;0\n";
        assert!(read_skab(Path::new("r.csv"), "r", "A;B\n1;2\n".as_bytes()).is_err());
        let e = read_skab(Path::new("r.csv"), "r", bad.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("r.csv:2:") && e.contains("`x`"), "{e}");
        let u = read_ucr(
            Path::new("001_UCR_Anomaly_X_2_3_4.txt"),
            "u",
            "1\n2\n3 4\n5\n".as_bytes(),
        )
        .unwrap();
        assert_eq!(u.labels, vec![false, false, true, true, false]);
        assert_eq!(u.ranges(), vec![(2, 3)]);
        assert!(read_ucr(Path::new("x.txt"), "x", "1\n".as_bytes()).is_err());
    }

    #[test]
    fn reads_vigil_events_with_labels() {
        const T: i64 = 1_700_000_000_000;
        let csv = format!(
            "ts,device_id,value\n{},a,1\n{},a,2\n{},b,\n{},a,3\n",
            T + 2000,
            T + 1000,
            T + 1500,
            T + 3000
        );
        let s = read_vigil(Path::new("e.csv"), csv.as_bytes(), &[("a".into(), T + 2000, T + 3000)]).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].ts_ms, vec![T + 1000, T + 2000, T + 3000]);
        assert_eq!(s[0].labels, vec![false, true, false]);
    }
}
