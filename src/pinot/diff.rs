//! Comparing what vigil would post with what a Pinot controller already holds.
//!
//! Invariants: the controller returns configs with its own defaults added (e.g.
//! `aggregateMetrics: false`) and table names suffixed with `_REALTIME`, so "equal" means
//! *every key vigil sets has the same value in the existing config*; keys only the existing
//! config has are ignored. Objects compare key by key, arrays element by element (same
//! length, same order), scalars by value, where a number and its decimal text are equal
//! (Pinot stores some numbers as strings). The result lists the JSON paths that differ, so
//! a conflict can be reported key by key.

use serde_json::Value;

/// One differing key: its path (`tableIndexConfig.streamConfigs.stream.kafka.topic.name`),
/// the value vigil wants and the one that exists (`None`: the key is missing).
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    pub path: String,
    pub wanted: Value,
    pub existing: Option<Value>,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.existing {
            Some(e) => write!(f, "{}: Pinot has {}, vigil wants {}", self.path, e, self.wanted),
            None => write!(f, "{}: missing in Pinot, vigil wants {}", self.path, self.wanted),
        }
    }
}

/// The keys of `wanted` whose values `existing` does not have.
pub fn differences(wanted: &Value, existing: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    walk("", wanted, existing, &mut out);
    out
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(path: &str, wanted: &Value, existing: &Value, out: &mut Vec<Difference>) {
    match (wanted, existing) {
        (Value::Object(w), Value::Object(e)) => {
            for (key, wv) in w {
                let p = join(path, key);
                match e.get(key) {
                    Some(ev) => walk(&p, wv, ev, out),
                    None if wv.is_null() => {}
                    None => out.push(Difference {
                        path: p,
                        wanted: wv.clone(),
                        existing: None,
                    }),
                }
            }
        }
        (Value::Array(w), Value::Array(e)) if w.len() == e.len() => {
            for (i, (wv, ev)) in w.iter().zip(e).enumerate() {
                walk(&format!("{path}[{i}]"), wv, ev, out);
            }
        }
        (w, e) if scalar_eq(w, e) => {}
        (w, e) => out.push(Difference {
            path: path.to_string(),
            wanted: w.clone(),
            existing: Some(e.clone()),
        }),
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::String(s)) | (Value::String(s), Value::Number(x)) => {
            s.parse::<f64>().ok() == x.as_f64()
        }
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extra_keys_in_pinot_are_ignored() {
        let wanted = json!({"a": 1, "b": {"c": "x", "l": [1, {"k": 2}]}});
        let existing = json!({"a": 1, "z": true, "b": {"c": "x", "d": 0, "l": [1, {"k": 2, "m": 3}]}});
        assert!(differences(&wanted, &existing).is_empty());
    }

    #[test]
    fn differing_and_missing_keys_are_named() {
        let wanted = json!({"a": 1, "b": {"c": "x", "n": "y"}, "l": [1, 2]});
        let existing = json!({"a": "1", "b": {"c": "other"}, "l": [1]});
        let d = differences(&wanted, &existing);
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["b.c", "b.n", "l"]);
        assert_eq!(d[1].existing, None);
        assert!(d[0].to_string().contains("Pinot has \"other\""), "{}", d[0]);
    }
}
