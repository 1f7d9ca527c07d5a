//! Comparing what vigil would post with what a Pinot controller already holds.
//!
//! Invariants: the controller returns configs with its own defaults added (e.g.
//! `aggregateMetrics: false`) and table names suffixed with `_REALTIME`, so "equal" means
//! *every key vigil sets has the same value in the existing config*; keys only the existing
//! config has are ignored. Objects compare key by key, arrays element by element (same
//! length, same order) except lists of named objects (schema field specs), which match by
//! `name` in any order and must hold the same names; scalars compare by value, where a number and its decimal text are equal
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
            Some(e) if self.wanted.is_null() => write!(f, "{}: only in Pinot ({})", self.path, e),
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
        (Value::Array(w), Value::Array(e)) if named(w) && named(e) => {
            // Field specs: matched by name, in any order.
            let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_string();
            for wv in w {
                let p = format!("{path}[name={}]", name(wv));
                match e.iter().find(|ev| name(ev) == name(wv)) {
                    Some(ev) => walk(&p, wv, ev, out),
                    None => out.push(Difference {
                        path: p,
                        wanted: wv.clone(),
                        existing: None,
                    }),
                }
            }
            for ev in e.iter().filter(|ev| !w.iter().any(|wv| name(wv) == name(ev))) {
                out.push(Difference {
                    path: format!("{path}[name={}]", name(ev)),
                    wanted: Value::Null,
                    existing: Some(ev.clone()),
                });
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

/// A non-empty list of objects that all have a `name` (Pinot field specs).
fn named(list: &[Value]) -> bool {
    !list.is_empty() && list.iter().all(|v| v.get("name").is_some_and(Value::is_string))
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

    #[test]
    fn field_specs_match_by_name() {
        let wanted = json!({"f": [{"name": "a", "dataType": "LONG"}, {"name": "b", "dataType": "DOUBLE"}]});
        let same = json!({"f": [{"name": "b", "dataType": "DOUBLE"}, {"name": "a", "dataType": "LONG"}]});
        assert!(differences(&wanted, &same).is_empty());
        let other = json!({"f": [{"name": "a", "dataType": "INT"}, {"name": "c", "dataType": "DOUBLE"}]});
        let paths: Vec<String> = differences(&wanted, &other).into_iter().map(|d| d.path).collect();
        assert_eq!(paths, ["f[name=a].dataType", "f[name=b]", "f[name=c]"]);
    }
}
