//! Parsing and validating a request line into a route, before anything reaches the dataflow.
//!
//! Invariants: a pure function of the method, the URL and the [`Catalog`]; every malformed
//! or out-of-range input is an [`RequestError`] with a 4xx status and a message naming the
//! parameter — never a panic; numeric limits are capped so no request can ask for unbounded
//! work or output.

use crate::config::Config;
use crate::detect::Severity;
use crate::event::DeviceId;
use crate::features::{window_name, FeatureLayout};
use crate::query::Query;

/// Largest `limit` (anomalies, history) and `k` (top) a request may ask for.
pub const MAX_LIMIT: usize = 10_000;
/// Largest `offset` of a paged listing (a page is read from the first offset + limit).
pub const MAX_OFFSET: usize = 100_000;
/// Longest device id accepted in a path.
pub const MAX_DEVICE_BYTES: usize = 1024;

/// What the server knows to validate requests with.
#[derive(Clone, Debug)]
pub struct Catalog {
    pub features: FeatureLayout,
    /// Tumbling windows: (name, ms), ascending.
    pub tumbling: Vec<(String, u64)>,
    /// Names of the enabled detectors.
    pub detectors: Vec<String>,
    /// The model registry folder (`GET /models`).
    pub registry: std::path::PathBuf,
    /// Whether `POST /models/retrain` promotes by default (`model.auto_promote`).
    pub auto_promote: bool,
}

impl Catalog {
    pub fn new(config: &Config) -> Self {
        let detectors = crate::detect::enabled(config)
            .map(|list| list.iter().map(|(d, _)| d.name().to_string()).collect())
            .unwrap_or_default();
        Catalog {
            features: FeatureLayout::new(config),
            tumbling: config
                .windows
                .tumbling
                .iter()
                .map(|w| (window_name(w.0), w.0))
                .collect(),
            detectors,
            registry: config.model.registry.clone(),
            auto_promote: config.model.auto_promote,
        }
    }
}

/// Where a request goes.
#[derive(Clone, Debug, PartialEq)]
pub enum Route {
    Query(Query),
    Health,
    Metrics,
    /// The feature names (in vector order) and the tumbling windows.
    Features,
    /// The model registry's versions.
    Models,
    /// One model version, whole.
    Model(u64),
    /// The process's recent anomaly episodes, open and closed (the dashboard's timeline).
    Episodes(EpisodeFilter),
}

/// Which episodes `GET /episodes` lists.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EpisodeFilter {
    pub detector: Option<String>,
    pub device: Option<DeviceId>,
    pub min_severity: Option<Severity>,
    /// Only the open ones.
    pub open: bool,
    /// Only episodes still open at or ending after this (ms).
    pub since_ms: Option<i64>,
    pub offset: usize,
    pub limit: usize,
}

/// A request that cannot be answered as asked.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub status: u16,
    pub message: String,
}

fn bad(message: impl Into<String>) -> RequestError {
    RequestError {
        status: 400,
        message: message.into(),
    }
}

/// Parses `method` and `url` (path and query string, as on the request line).
pub fn parse(method: &str, url: &str, catalog: &Catalog) -> Result<Route, RequestError> {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let params = parse_params(query)?;
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect::<Result<_, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let route = match segments.as_slice() {
        ["health"] => Route::Health,
        ["metrics"] => Route::Metrics,
        ["features"] => Route::Features,
        ["devices", id] => {
            check_params(&params, &[])?;
            Route::Query(Query::Device { device: device_id(id)? })
        }
        ["devices", id, "history"] => {
            check_params(&params, &["window", "from", "to", "limit"])?;
            let window_ms = match param(&params, "window") {
                None => catalog.tumbling.first().map(|(_, ms)| *ms).ok_or_else(|| bad("no tumbling windows are configured"))?,
                Some(w) => catalog
                    .tumbling
                    .iter()
                    .find(|(name, _)| name == w)
                    .map(|(_, ms)| *ms)
                    .ok_or_else(|| {
                        let names: Vec<&str> = catalog.tumbling.iter().map(|(n, _)| n.as_str()).collect();
                        bad(format!("window `{w}` is not a tumbling window; use one of: {}", names.join(", ")))
                    })?,
            };
            let from_ms = opt_i64(&params, "from")?;
            let to_ms = opt_i64(&params, "to")?;
            if let (Some(f), Some(t)) = (from_ms, to_ms) {
                if f > t {
                    return Err(bad(format!("from ({f}) is after to ({t})")));
                }
            }
            Route::Query(Query::History {
                device: device_id(id)?,
                window_ms,
                from_ms,
                to_ms,
                limit: limit(&params, "limit", 1_000)?,
            })
        }
        ["anomalies"] => {
            check_params(&params, &["detector", "since", "severity", "offset", "limit"])?;
            let detector = match param(&params, "detector") {
                None => None,
                Some(d) if catalog.detectors.iter().any(|n| n == d) => Some(d.to_string()),
                Some(d) => {
                    return Err(bad(format!(
                        "detector `{d}` is not enabled; enabled: {}",
                        catalog.detectors.join(", ")
                    )))
                }
            };
            let min_severity = match param(&params, "severity") {
                None => None,
                Some(s) => Some(severity(s)?),
            };
            Route::Query(Query::Anomalies {
                detector,
                since_ms: opt_i64(&params, "since")?,
                min_severity,
                offset: offset(&params)?,
                limit: limit(&params, "limit", 100)?,
            })
        }
        ["episodes"] => {
            check_params(&params, &["detector", "device", "severity", "open", "since", "offset", "limit"])?;
            Route::Episodes(EpisodeFilter {
                detector: param(&params, "detector").map(str::to_string),
                device: param(&params, "device").map(device_id).transpose()?,
                min_severity: param(&params, "severity").map(severity).transpose()?,
                open: match param(&params, "open") {
                    None | Some("false") => false,
                    Some("true") => true,
                    Some(other) => return Err(bad(format!("open `{other}`: use true or false"))),
                },
                since_ms: opt_i64(&params, "since")?,
                offset: offset(&params)?,
                limit: limit(&params, "limit", 100)?,
            })
        }
        ["models"] => {
            check_params(&params, &[])?;
            Route::Models
        }
        ["models", "retrain"] => {
            check_params(&params, &["promote"])?;
            let promote = match param(&params, "promote") {
                None => catalog.auto_promote,
                Some("true") => true,
                Some("false") => false,
                Some(other) => return Err(bad(format!("promote `{other}`: use true or false"))),
            };
            Route::Query(Query::Retrain { promote })
        }
        ["models", version] => {
            check_params(&params, &[])?;
            let v = version
                .trim_start_matches('v')
                .parse::<u64>()
                .map_err(|_| bad(format!("model version `{version}`: a number, e.g. /models/3")))?;
            Route::Model(v)
        }
        ["top"] => {
            check_params(&params, &["feature", "k"])?;
            let name = param(&params, "feature").ok_or_else(|| bad("missing parameter `feature` (see /features)"))?;
            let feature = catalog
                .features
                .index_of(name)
                .ok_or_else(|| bad(format!("unknown feature `{name}` (see /features for the names)")))?;
            Route::Query(Query::Top {
                feature,
                k: limit(&params, "k", 10)?,
            })
        }
        _ => {
            return Err(RequestError {
                status: 404,
                message: format!(
                    "no such endpoint `{path}`; try / (the dashboard), /devices/ID, /devices/ID/history, /anomalies, /episodes, /top?feature=F, /features, /models, POST /models/retrain, /health, /metrics"
                ),
            })
        }
    };
    let post = matches!(route, Route::Query(Query::Retrain { .. }));
    let allowed = if post {
        method == "POST"
    } else {
        method == "GET" || method == "HEAD"
    };
    if !allowed {
        return Err(RequestError {
            status: 405,
            message: format!(
                "method {method} is not allowed here; use {}",
                if post { "POST" } else { "GET" }
            ),
        });
    }
    Ok(route)
}

/// A severity name: the lowest severity a listing shows.
pub fn severity(text: &str) -> Result<Severity, RequestError> {
    [Severity::Low, Severity::Medium, Severity::High, Severity::Critical]
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| bad(format!("severity `{text}`: use low, medium, high or critical")))
}

/// `offset` (default 0), at most [`MAX_OFFSET`].
pub fn offset(params: &Params) -> Result<usize, RequestError> {
    match param(params, "offset") {
        None => Ok(0),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n <= MAX_OFFSET => Ok(n),
            _ => Err(bad(format!(
                "parameter `offset`: `{v}` is not a number from 0 to {MAX_OFFSET}"
            ))),
        },
    }
}

fn device_id(text: &str) -> Result<DeviceId, RequestError> {
    if text.is_empty() || text.len() > MAX_DEVICE_BYTES {
        return Err(bad(format!("a device id has 1 to {MAX_DEVICE_BYTES} bytes")));
    }
    Ok(DeviceId::from(text))
}

pub type Params = Vec<(String, String)>;

fn parse_params(query: &str) -> Result<Params, RequestError> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(&k.replace('+', " "))?;
        let v = percent_decode(&v.replace('+', " "))?;
        if out.iter().any(|(seen, _): &(String, String)| *seen == k) {
            return Err(bad(format!("parameter `{k}` given twice")));
        }
        out.push((k, v));
    }
    Ok(out)
}

fn check_params(params: &Params, allowed: &[&str]) -> Result<(), RequestError> {
    for (k, _) in params {
        if !allowed.contains(&k.as_str()) {
            return Err(bad(if allowed.is_empty() {
                format!("unknown parameter `{k}`: this endpoint takes none")
            } else {
                format!("unknown parameter `{k}`; this endpoint takes: {}", allowed.join(", "))
            }));
        }
    }
    Ok(())
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn opt_i64(params: &Params, name: &str) -> Result<Option<i64>, RequestError> {
    match param(params, name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| bad(format!("parameter `{name}`: `{v}` is not a time in epoch milliseconds"))),
    }
}

fn limit(params: &Params, name: &str, default: usize) -> Result<usize, RequestError> {
    match param(params, name) {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad(format!(
                "parameter `{name}`: `{v}` is not a number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

/// Decodes `%XX` escapes; the result must be UTF-8.
pub fn percent_decode(text: &str) -> Result<String, RequestError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| bad(format!("bad percent escape in `{text}`")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad("the request is not UTF-8 after percent decoding"))
}

/// Encodes a path segment (device ids in URLs).
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::new(&Config::from_toml("").unwrap())
    }

    #[test]
    fn routes() {
        let c = catalog();
        assert_eq!(parse("GET", "/health", &c), Ok(Route::Health));
        assert_eq!(
            parse("GET", "/devices/vm%2D1", &c),
            Ok(Route::Query(Query::Device { device: "vm-1".into() }))
        );
        assert!(matches!(
            parse("GET", "/devices/a/history?window=1m&from=5&to=10", &c),
            Ok(Route::Query(Query::History {
                window_ms: 60_000,
                from_ms: Some(5),
                to_ms: Some(10),
                ..
            }))
        ));
        assert!(matches!(
            parse("GET", "/top?feature=events_1m&k=3", &c),
            Ok(Route::Query(Query::Top { feature: 0, k: 3 }))
        ));
    }

    #[test]
    fn listings_page_and_filter_by_severity() {
        let c = catalog();
        assert_eq!(
            parse("GET", "/anomalies?severity=high&offset=3&limit=2", &c),
            Ok(Route::Query(Query::Anomalies {
                detector: None,
                since_ms: None,
                min_severity: Some(Severity::High),
                offset: 3,
                limit: 2,
            }))
        );
        assert_eq!(
            parse("GET", "/episodes?device=vm-1&open=true&severity=critical", &c),
            Ok(Route::Episodes(EpisodeFilter {
                device: Some("vm-1".into()),
                open: true,
                min_severity: Some(Severity::Critical),
                limit: 100,
                ..Default::default()
            }))
        );
        for bad in [
            "/anomalies?severity=urgent",
            "/anomalies?offset=-1",
            "/anomalies?offset=100001",
            "/episodes?open=yes",
            "/episodes?colour=red",
        ] {
            assert_eq!(parse("GET", bad, &c).map_err(|e| e.status), Err(400), "{bad}");
        }
    }

    #[test]
    fn bad_requests_are_4xx() {
        let c = catalog();
        for (url, status) in [
            ("/nope", 404),
            ("/devices", 404),
            ("/devices/a/b/c", 404),
            ("/devices/a?x=1", 400),
            ("/devices/%zz", 400),
            ("/devices/%ff", 400),
            ("/devices/a/history?window=7m", 400),
            ("/devices/a/history?from=abc", 400),
            ("/devices/a/history?from=9&to=1", 400),
            ("/top", 400),
            ("/top?feature=nope", 400),
            ("/top?feature=events_1m&k=0", 400),
            ("/top?feature=events_1m&k=99999999999999999999999", 400),
            ("/top?feature=events_1m&feature=events_1m", 400),
            ("/anomalies?detector=nope", 400),
            ("/anomalies?limit=-1", 400),
        ] {
            let e = parse("GET", url, &c).expect_err(url);
            assert_eq!(e.status, status, "{url}: {}", e.message);
        }
        assert_eq!(parse("POST", "/health", &c).unwrap_err().status, 405);
    }

    #[test]
    fn percent_round_trip() {
        let id = "vm 1/ä%";
        assert_eq!(percent_decode(&percent_encode(id)).unwrap(), id);
    }
}
