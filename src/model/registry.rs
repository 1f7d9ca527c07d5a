//! The model registry on disk: one JSON file per version (`model-000001.json`, …) and
//! `index.json` with the active (promoted) version and the promotion history.
//!
//! Invariants: versions are numbered 1, 2, … and a version's file is never rewritten once
//! created (it is claimed with `create_new`, so two trainers never share a number); every
//! write goes to a temporary file in the same folder and is renamed over the target, so a
//! reader sees the old or the new content, never a torn one; `rollback` returns to the
//! version that was active before the current one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Model, ModelError};

const INDEX: &str = "index.json";

/// `index.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// The version the engine scores with.
    pub active: Option<u64>,
    /// Versions in the order they were made active (the last one is `active`).
    pub history: Vec<u64>,
}

/// A registry folder.
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
}

fn io(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Registry {
    /// Opens (without creating) the registry at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Registry { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn bad(&self, message: impl Into<String>) -> ModelError {
        ModelError::Registry {
            path: self.dir.display().to_string(),
            message: message.into(),
        }
    }

    /// The file of a version.
    pub fn path_of(&self, version: u64) -> PathBuf {
        self.dir.join(format!("model-{version:06}.json"))
    }

    /// Every stored version, ascending.
    pub fn versions(&self) -> Result<Vec<u64>, ModelError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(&self.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(v) = name
                .strip_prefix("model-")
                .and_then(|r| r.strip_suffix(".json"))
                .and_then(|v| v.parse().ok())
            {
                out.push(v);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Reads one version.
    pub fn load(&self, version: u64) -> Result<Model, ModelError> {
        let path = self.path_of(version);
        let text = std::fs::read_to_string(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => self.bad(format!("no version {version}")),
            _ => io(&path, e),
        })?;
        serde_json::from_str(&text).map_err(|e| self.bad(format!("{}: {e}", path.display())))
    }

    /// Reads the index (empty when there is none).
    pub fn index(&self) -> Result<Index, ModelError> {
        let path = self.dir.join(INDEX);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| self.bad(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(io(&path, e)),
        }
    }

    /// The active model, if any.
    pub fn active(&self) -> Result<Option<Model>, ModelError> {
        match self.index()?.active {
            Some(v) => self.load(v).map(Some),
            None => Ok(None),
        }
    }

    /// Stores a new version (numbered here; `model.version` is set), optionally making it
    /// active. Returns the stored model.
    pub fn register(&self, mut model: Model, promote: bool) -> Result<Model, ModelError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let mut version = self.versions()?.last().copied().unwrap_or(0) + 1;
        loop {
            let path = self.path_of(version);
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(_) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => version += 1,
                Err(e) => return Err(io(&path, e)),
            }
        }
        model.version = version;
        let text = serde_json::to_string_pretty(&model).map_err(|e| self.bad(e.to_string()))?;
        write_atomic(&self.path_of(version), text.as_bytes())?;
        if promote {
            self.promote(version)?;
        }
        Ok(model)
    }

    /// Makes `version` the active one.
    pub fn promote(&self, version: u64) -> Result<Index, ModelError> {
        self.load(version)?;
        let mut index = self.index()?;
        if index.active != Some(version) {
            index.active = Some(version);
            index.history.push(version);
        }
        self.write_index(&index)?;
        Ok(index)
    }

    /// Returns to the version active before the current one.
    pub fn rollback(&self) -> Result<Index, ModelError> {
        let mut index = self.index()?;
        if index.history.len() < 2 {
            return Err(self.bad("nothing to roll back to (fewer than two promotions)"));
        }
        index.history.pop();
        index.active = index.history.last().copied();
        self.write_index(&index)?;
        Ok(index)
    }

    fn write_index(&self, index: &Index) -> Result<(), ModelError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
        let text = serde_json::to_string_pretty(index).map_err(|e| self.bad(e.to_string()))?;
        write_atomic(&self.dir.join(INDEX), text.as_bytes())
    }
}

/// Writes `path` through a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ModelError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::train::{train, TrainingSet};
    use crate::model::{Frontier, ModelConfig};

    fn model(shift: f64) -> Model {
        let rows = (0..40)
            .map(|i| {
                let x = (i % 2) as f64 * 10.0 + shift + i as f64 * 0.01;
                (format!("d{i:02}").into(), vec![x, -x])
            })
            .collect();
        let set = TrainingSet::new(
            vec!["a".into(), "b".into()],
            rows,
            Frontier {
                tick: None,
                as_of_ms: 1,
            },
        );
        train(
            &set,
            &ModelConfig {
                k: crate::model::KChoice::Fixed(2),
                ..Default::default()
            },
        )
        .unwrap()
    }

    #[test]
    fn register_promote_rollback() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::new(dir.path().join("models"));
        assert_eq!(reg.active().unwrap(), None);
        let m1 = reg.register(model(0.0), true).unwrap();
        let m2 = reg.register(model(5.0), true).unwrap();
        assert_eq!((m1.version, m2.version), (1, 2));
        assert_eq!(reg.versions().unwrap(), vec![1, 2]);
        assert_eq!(reg.active().unwrap().unwrap(), m2);
        reg.promote(1).unwrap();
        assert_eq!(reg.index().unwrap().active, Some(1));
        reg.rollback().unwrap();
        assert_eq!(reg.index().unwrap().active, Some(2));
        assert!(reg.promote(9).is_err());
        let m3 = reg.register(model(1.0), false).unwrap();
        assert_eq!(m3.version, 3);
        assert_eq!(reg.index().unwrap().active, Some(2));
        assert_eq!(reg.load(3).unwrap(), m3);
    }
}
