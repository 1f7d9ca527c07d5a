//! `vigil query`: asks a running engine's query server and prints a readable table (or the
//! JSON answer with `--json`).

use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;
use vigil::query::request::percent_encode;

use super::access::AccessArgs;
use super::UsageError;

#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The query server (`vigil run --serve ADDR`): host:port, or https://host:port.
    #[arg(long, global = true, default_value = "127.0.0.1:7070")]
    pub addr: String,
    #[command(flatten)]
    pub access: AccessArgs,
    /// Print the JSON answer as it came.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds to wait for an answer.
    #[arg(long, global = true, default_value_t = 10)]
    pub timeout: u64,
    #[command(subcommand)]
    pub what: What,
}

#[derive(Subcommand, Debug)]
pub enum What {
    /// A device's window stats, feature vector and open anomalies.
    Device { id: String },
    /// A device's closed tumbling windows.
    History {
        id: String,
        /// Tumbling window length, e.g. 1m (default: the first configured).
        #[arg(long)]
        window: Option<String>,
        /// Windows starting at or after this event time (epoch ms).
        #[arg(long)]
        from: Option<i64>,
        /// Windows ending at or before this event time (epoch ms).
        #[arg(long)]
        to: Option<i64>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Open anomalies, most recent first.
    Anomalies {
        #[arg(long)]
        detector: Option<String>,
        /// Detected at or after this event time (epoch ms).
        #[arg(long)]
        since: Option<i64>,
        #[arg(long)]
        limit: Option<usize>,
    },
    /// The devices with the highest value of a feature.
    Top {
        feature: String,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
    },
    /// Frontier, lag and throughput of the engine.
    Health,
    /// Feature names, tumbling windows and detectors.
    Features,
    /// The model registry's versions (the active one marked).
    Models,
}

fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", percent_encode(v))))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

pub fn query(args: QueryArgs) -> anyhow::Result<()> {
    let path = match &args.what {
        What::Device { id } => format!("/devices/{}", percent_encode(id)),
        What::Models => "/models".to_string(),
        What::History {
            id,
            window,
            from,
            to,
            limit,
        } => format!(
            "/devices/{}/history{}",
            percent_encode(id),
            query_string(&[
                ("window", window.clone()),
                ("from", from.map(|v| v.to_string())),
                ("to", to.map(|v| v.to_string())),
                ("limit", limit.map(|v| v.to_string())),
            ])
        ),
        What::Anomalies { detector, since, limit } => format!(
            "/anomalies{}",
            query_string(&[
                ("detector", detector.clone()),
                ("since", since.map(|v| v.to_string())),
                ("limit", limit.map(|v| v.to_string())),
            ])
        ),
        What::Top { feature, k } => format!(
            "/top{}",
            query_string(&[("feature", Some(feature.clone())), ("k", Some(k.to_string()))])
        ),
        What::Health => "/health".to_string(),
        What::Features => "/features".to_string(),
    };
    let response = args
        .access
        .client(&args.addr, Duration::from_secs(args.timeout.max(1)))?
        .get(&path)
        .with_context(|| format!("GET {path}"))?;
    let body = response.json();
    if response.status != 200 {
        let message = body["error"].as_str().unwrap_or(response.body.as_str()).to_string();
        let text = format!("GET {path}: the server answered {}: {message}", response.status);
        // A bad question is a usage error (exit 2); a failing server is not (exit 1).
        return Err(if (400..500).contains(&response.status) {
            UsageError(text).into()
        } else {
            anyhow::anyhow!(text)
        });
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    print!("{}", render(&args.what, &body));
    Ok(())
}

fn num(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.abs() >= 1e6 || (f != 0.0 && f.abs() < 1e-3) => format!("{f:.4e}"),
            (None, Some(f)) => format!("{f:.3}"),
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A left-aligned text table.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0)))
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_string()).collect());
    out += &line(widths.iter().map(|w| "-".repeat(*w)).collect());
    for row in rows {
        out += &line(row.clone());
    }
    out
}

fn as_of(body: &Value) -> String {
    let ms = body["as_of_ms"].as_i64();
    let when = ms
        .and_then(chrono::DateTime::from_timestamp_millis)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "-".into());
    format!("as of {when} ({} ms)\n", ms.map_or("-".into(), |m| m.to_string()))
}

fn anomaly_rows(list: &Value) -> Vec<Vec<String>> {
    list.as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    vec![
                        num(&x["ts_ms"]),
                        num(&x["detector"]),
                        num(&x["device_id"]),
                        num(&x["severity"]),
                        num(&x["score"]),
                        num(&x["reason"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default()
}

const ANOMALY_HEADERS: [&str; 6] = ["ts_ms", "detector", "device", "severity", "score", "reason"];
const STAT_COLUMNS: [&str; 12] = [
    "count",
    "bytes_out",
    "bytes_in",
    "packets",
    "bytes_out_external",
    "distinct_dst",
    "distinct_ports",
    "value_count",
    "value_mean",
    "value_std",
    "value_min",
    "value_max",
];

fn render(what: &What, body: &Value) -> String {
    let mut out = String::new();
    match what {
        What::Device { .. } => {
            out += &format!("device {}  ", num(&body["device_id"]));
            out += &as_of(body);
            out += &format!("last seen {} ms\n\nwindows\n", num(&body["last_seen_ms"]));
            let mut headers = vec!["window"];
            headers.extend(STAT_COLUMNS);
            let rows: Vec<Vec<String>> = body["windows"]
                .as_array()
                .map(|ws| {
                    ws.iter()
                        .map(|w| {
                            let mut r = vec![num(&w["window"])];
                            r.extend(STAT_COLUMNS.iter().map(|c| num(&w[*c])));
                            r
                        })
                        .collect()
                })
                .unwrap_or_default();
            out += &table(&headers, &rows);
            out += "\nfeatures\n";
            let rows: Vec<Vec<String>> = body["features"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| vec![k.clone(), num(v)]).collect())
                .unwrap_or_default();
            // Three name/value pairs per line.
            let mut grid = Vec::new();
            for chunk in rows.chunks(3) {
                grid.push(chunk.iter().flatten().cloned().collect::<Vec<_>>());
            }
            out += &table(&["feature", "value", "feature", "value", "feature", "value"], &grid);
            let m = &body["model"];
            if m.is_null() {
                out += "\nno model score (no active model, or the kmeans detector is off)\n";
            } else {
                out += &format!(
                    "\nmodel v{}: score {}  cluster {}  distance {}  spread {}\n",
                    num(&m["model_version"]),
                    num(&m["score"]),
                    num(&m["cluster"]),
                    num(&m["distance"]),
                    num(&m["spread"])
                );
            }
            let anomalies = anomaly_rows(&body["anomalies"]);
            if anomalies.is_empty() {
                out += "\nno open anomalies\n";
            } else {
                out += "\nopen anomalies\n";
                out += &table(&ANOMALY_HEADERS, &anomalies);
            }
        }
        What::History { .. } => {
            out += &format!("device {}  window {}  ", num(&body["device_id"]), num(&body["window"]));
            out += &as_of(body);
            let mut headers = vec!["window_start_ms", "window_end_ms"];
            headers.extend(STAT_COLUMNS);
            let rows: Vec<Vec<String>> = body["rows"]
                .as_array()
                .map(|rs| {
                    rs.iter()
                        .map(|w| {
                            let mut r = vec![num(&w["window_start_ms"]), num(&w["window_end_ms"])];
                            r.extend(STAT_COLUMNS.iter().map(|c| num(&w[*c])));
                            r
                        })
                        .collect()
                })
                .unwrap_or_default();
            out += &table(&headers, &rows);
        }
        What::Anomalies { .. } => {
            out += &format!("{} open anomalies  ", num(&body["count"]));
            out += &as_of(body);
            out += &table(&ANOMALY_HEADERS, &anomaly_rows(&body["anomalies"]));
        }
        What::Top { .. } => {
            out += &format!("top {} by {}  ", num(&body["k"]), num(&body["feature"]));
            out += &as_of(body);
            let rows: Vec<Vec<String>> = body["devices"]
                .as_array()
                .map(|ds| {
                    ds.iter()
                        .enumerate()
                        .map(|(i, d)| vec![(i + 1).to_string(), num(&d["device_id"]), num(&d["value"])])
                        .collect()
                })
                .unwrap_or_default();
            out += &table(&["rank", "device", "value"], &rows);
        }
        What::Models => {
            let rows: Vec<Vec<String>> = body["models"]
                .as_array()
                .map(|ms| {
                    ms.iter()
                        .map(|m| {
                            vec![
                                if m["active"] == true { "*".into() } else { String::new() },
                                num(&m["version"]),
                                num(&m["k"]),
                                num(&m["metrics"]["devices"]),
                                num(&m["trained_at"]["as_of_ms"]),
                                num(&m["metrics"]["silhouette"]),
                                num(&m["created_ms"]),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            out += &format!("registry {}\n", num(&body["registry"]));
            out += &table(
                &[
                    "active",
                    "version",
                    "k",
                    "devices",
                    "trained_as_of_ms",
                    "silhouette",
                    "created_ms",
                ],
                &rows,
            );
        }
        What::Health | What::Features => {
            if let Some(map) = body.as_object() {
                for (k, v) in map {
                    let text = match v {
                        Value::Array(a) => a
                            .iter()
                            .map(|x| x.get("name").map(num).unwrap_or_else(|| num(x)))
                            .collect::<Vec<_>>()
                            .join(", "),
                        other => num(other),
                    };
                    out += &format!("{k:<20} {text}\n");
                }
            }
        }
    }
    out
}
