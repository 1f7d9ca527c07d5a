//! Reading a feature snapshot file (`features.jsonl` or `snapshots/features-<ms>.jsonl`,
//! as `vigil run` writes them) into a [`TrainingSet`].
//!
//! Invariants: every row must state the same `as_of_ms` (a snapshot is one point in time)
//! and every requested feature; values that are not finite numbers read as 0 (the writer
//! never produces them). Rows keep the device order of the training set (sorted by device).

use std::io::BufRead;
use std::path::Path;

use super::{Frontier, ModelError, TrainingSet};

/// Reads the rows of a snapshot file. `features`: the names to read, in vector order (the
/// configured layout); `tick_ms` turns `as_of_ms` back into the snapshot's tick.
pub fn read_snapshot(path: &Path, features: &[String], tick_ms: u64) -> Result<TrainingSet, ModelError> {
    let bad = |line: usize, message: String| ModelError::Snapshot {
        path: format!("{}:{line}", path.display()),
        message,
    };
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let mut rows = Vec::new();
    let mut as_of: Option<i64> = None;
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| bad(n, e.to_string()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&line).map_err(|e| bad(n, format!("not a JSON object: {e}")))?;
        let device = row
            .get("device_id")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad(n, "no device_id".into()))?;
        let row_as_of = row
            .get("as_of_ms")
            .and_then(|v| v.as_i64())
            .ok_or_else(|| bad(n, "no as_of_ms".into()))?;
        match as_of {
            None => as_of = Some(row_as_of),
            Some(a) if a != row_as_of => {
                return Err(bad(
                    n,
                    format!("as_of_ms {row_as_of} differs from the first row's {a}: not one snapshot"),
                ))
            }
            _ => {}
        }
        let mut v = Vec::with_capacity(features.len());
        for name in features {
            let x = row.get(name).ok_or_else(|| {
                bad(
                    n,
                    format!("no feature `{name}` (was the snapshot written with another [windows] config?)"),
                )
            })?;
            v.push(x.as_f64().filter(|x| x.is_finite()).unwrap_or(0.0));
        }
        rows.push((device.into(), v));
    }
    let as_of_ms = as_of.ok_or_else(|| bad(0, "no rows".into()))?;
    let tick = ((as_of_ms + 1) as u64 / tick_ms).checked_sub(1);
    Ok(TrainingSet::new(features.to_vec(), rows, Frontier { tick, as_of_ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_and_rejects_mixed_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        std::fs::write(
            &p,
            "{\"device_id\":\"b\",\"as_of_ms\":1999,\"last_seen_ms\":5,\"x\":2.5,\"y\":1}\n\
             {\"device_id\":\"a\",\"as_of_ms\":1999,\"last_seen_ms\":5,\"x\":1,\"y\":null}\n",
        )
        .unwrap();
        let names = vec!["y".to_string(), "x".to_string()];
        let set = read_snapshot(&p, &names, 1000).unwrap();
        assert_eq!(
            set.frontier,
            Frontier {
                tick: Some(1),
                as_of_ms: 1999
            }
        );
        assert_eq!(set.rows[0], ("a".into(), vec![0.0, 1.0]));
        assert_eq!(set.rows[1], ("b".into(), vec![1.0, 2.5]));
        let err = read_snapshot(&p, &["z".to_string()], 1000).unwrap_err().to_string();
        assert!(err.contains("no feature `z`"), "{err}");
        std::fs::write(
            &p,
            "{\"device_id\":\"b\",\"as_of_ms\":1999,\"x\":1}\n{\"device_id\":\"a\",\"as_of_ms\":2999,\"x\":1}\n",
        )
        .unwrap();
        assert!(read_snapshot(&p, &["x".to_string()], 1000).is_err());
    }
}
