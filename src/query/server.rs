//! The HTTP side: routes, answers and metrics over the [`super::http`] transport.
//!
//! Invariants: a handler never touches dataflow state — it parses, validates, hands a
//! [`Query`](super::Query) to the [`Hub`] and waits on its own reply channel with a timeout
//! (503 with a JSON error when it runs out); `/health` and `/metrics` read only the
//! process's atomics. Every response is JSON (or Prometheus text for `/metrics`); every
//! error has a 4xx/5xx status and a JSON body; a panic in a handler is caught and answered
//! with a 500, so no client input takes the server down. Latency is measured from the
//! moment a handler holds the request to the moment its answer is ready.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde_json::json;

use super::http::{HttpReply, HttpServer};
use super::request::{self, Catalog, Route};
use super::{Answer, Hub, PendingQuery, WorkerPlacement};
use crate::config::Config;
use crate::decode::RejectReason;
use crate::model::Registry;
use crate::output::metrics::{Metrics, ENDPOINTS, LATENCY_BUCKETS_S};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot serve on {addr}: {message}")]
    Start { addr: SocketAddr, message: String },
}

/// A running server: its hub and connection threads. [`Server::shutdown`] stops them.
pub struct Server {
    pub hub: Arc<Hub>,
    http: HttpServer,
}

impl Server {
    /// Binds `addr` (port 0: any free port; see [`Server::addr`]) and starts the handlers
    /// for the workers `placement` says run in this process.
    pub fn start(
        addr: SocketAddr,
        config: &Config,
        metrics: Arc<Metrics>,
        placement: WorkerPlacement,
    ) -> Result<Server, ServerError> {
        let listener = std::net::TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let hub = Hub::new(metrics, config.tick_ms(), bound, placement);
        let catalog = Catalog::new(config);
        let timeout = config.server.timeout.as_duration();
        let started = Instant::now();
        let for_handler = hub.clone();
        let handler = move |method: &str, url: &str| answer(method, url, &for_handler, &catalog, timeout, started);
        let http = HttpServer::start(listener, config.server.threads, Box::new(handler), hub.metrics.clone()).map_err(
            |e| ServerError::Start {
                addr,
                message: format!("starting the connection threads: {e}"),
            },
        )?;
        tracing::info!(addr = %bound, "serving queries on http://{bound}");
        Ok(Server { hub, http })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.hub.addr
    }

    /// Stops taking requests and joins the connection threads.
    pub fn shutdown(self) {
        self.hub.stop();
        self.http.stop();
    }
}

/// Answers one request and counts it in the metrics; a panic while answering is a 500 (the
/// engine goes on). Latency runs from the parsed request to the answer ready to write.
fn answer(method: &str, url: &str, hub: &Hub, catalog: &Catalog, timeout: Duration, started: Instant) -> HttpReply {
    let at = Instant::now();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle(method, url, hub, catalog, timeout, started)
    }));
    let (endpoint, answer, content_type) = outcome.unwrap_or_else(|_| {
        (
            6,
            Answer::error(500, "internal error while answering; the engine goes on", &[]),
            "application/json",
        )
    });
    hub.metrics.query_answered(endpoint, answer.status, at.elapsed());
    HttpReply {
        status: answer.status,
        content_type,
        body: answer.body,
    }
}

/// Answers one request: (endpoint index for metrics, answer, content type).
fn handle(
    method: &str,
    url: &str,
    hub: &Hub,
    catalog: &Catalog,
    timeout: Duration,
    started: Instant,
) -> (usize, Answer, &'static str) {
    const JSON: &str = "application/json";
    let route = match request::parse(method, url, catalog) {
        Ok(r) => r,
        Err(e) => return (6, Answer::error(e.status, &e.message, &[]), JSON),
    };
    match route {
        Route::Health => (4, health(hub, started), JSON),
        Route::Metrics => (
            5,
            Answer {
                status: 200,
                body: prometheus(hub),
            },
            "text/plain; version=0.0.4",
        ),
        Route::Features => {
            let body = json!({
                "as_of_ms": frontier_ms(hub),
                "features": catalog.features.describe().iter().map(|(n, d)| json!({"name": n, "description": d})).collect::<Vec<_>>(),
                "tumbling_windows": catalog.tumbling.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                "detectors": catalog.detectors,
            });
            (7, Answer::json(200, &body), JSON)
        }
        Route::Models => (8, super::models::list(&Registry::new(&catalog.registry)), JSON),
        Route::Model(v) => (8, super::models::show(&Registry::new(&catalog.registry), v), JSON),
        Route::Query(query) => {
            let endpoint = query.endpoint();
            let retrain = matches!(query, super::Query::Retrain { .. });
            if retrain && hub.retraining.swap(true, std::sync::atomic::Ordering::SeqCst) {
                return (
                    endpoint,
                    Answer::error(
                        409,
                        "a retraining is already running on this process; try again when it is done",
                        &[],
                    ),
                    JSON,
                );
            }
            let (endpoint, answer) = ask(hub, query, if retrain { RETRAIN_TIMEOUT } else { timeout });
            if retrain {
                hub.retraining.store(false, std::sync::atomic::Ordering::SeqCst);
            }
            (endpoint, answer, JSON)
        }
    }
}

/// How long `POST /models/retrain` waits for training before answering 503.
pub const RETRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Hands `query` to the dataflow and waits for its answer.
fn ask(hub: &Hub, query: super::Query, timeout: Duration) -> (usize, Answer) {
    let endpoint = query.endpoint();
    let (tx, rx) = mpsc::sync_channel(1);
    if !hub.submit(PendingQuery { query, reply: tx }) {
        return (
            endpoint,
            Answer::error(503, "the engine is not taking queries (shutting down)", &[]),
        );
    }
    let answer = rx.recv_timeout(timeout).unwrap_or_else(|_| {
        Answer::error(
            503,
            &format!(
                "no answer within {} ms; the engine is busy or a worker is gone",
                timeout.as_millis()
            ),
            &[],
        )
    });
    (endpoint, answer)
}

/// The completed frontier as inclusive event time (ms), None before any tick completes.
fn frontier_ms(hub: &Hub) -> Option<i64> {
    let tick = hub.metrics.frontier_tick.load(Relaxed);
    (tick > 0).then(|| hub.tick_end_ms(tick - 1))
}

fn health(hub: &Hub, started: Instant) -> Answer {
    let m = &hub.metrics;
    let frontier = frontier_ms(hub);
    let max_event = m.max_event_ms.load(Relaxed);
    let max_event = (max_event > 0).then_some(max_event as i64);
    let lag = match (frontier, max_event) {
        (Some(f), Some(e)) => Some((e - f).max(0)),
        _ => None,
    };
    let elapsed = started.elapsed().as_secs_f64();
    let read = m.read.load(Relaxed);
    let body = json!({
        "status": "ok",
        "phase": if hub.input_done() { "input done, serving" } else { "ingesting" },
        "as_of_ms": frontier,
        "frontier_tick": m.frontier_tick.load(Relaxed),
        "max_event_time_ms": max_event,
        "event_time_lag_ms": lag,
        "events_read": read,
        "events_accepted": m.accepted.load(Relaxed),
        "events_rejected": m.rejected_total(),
        "events_per_s": if elapsed > 0.0 { read as f64 / elapsed } else { 0.0 },
        "uptime_s": elapsed,
        "addr": hub.addr.to_string(),
    });
    Answer::json(200, &body)
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The Prometheus text exposition of the process's metrics.
pub fn prometheus(hub: &Hub) -> String {
    let m = &hub.metrics;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let one = |v: u64| vec![(String::new(), v as f64)];
    metric(
        "vigil_events_read_total",
        "counter",
        "Records read.",
        &one(m.read.load(Relaxed)),
    );
    metric(
        "vigil_events_accepted_total",
        "counter",
        "Records accepted as events.",
        &one(m.accepted.load(Relaxed)),
    );
    let rejects: Vec<(String, f64)> = RejectReason::ALL
        .iter()
        .map(|r| {
            (
                format!("{{reason=\"{}\"}}", r.as_str()),
                m.rejected[r.index()].load(Relaxed) as f64,
            )
        })
        .collect();
    metric(
        "vigil_events_rejected_total",
        "counter",
        "Records rejected, by reason.",
        &rejects,
    );
    let late_rejected = m.rejected[RejectReason::Late.index()].load(Relaxed);
    let corrected = m.late_corrected.load(Relaxed);
    metric(
        "vigil_events_late_total",
        "counter",
        "Late records (rejected as late or applied as corrections).",
        &one(late_rejected + corrected),
    );
    metric(
        "vigil_events_late_corrected_total",
        "counter",
        "Late records applied at the watermark.",
        &one(corrected),
    );
    let frontier = frontier_ms(hub).unwrap_or(0);
    let max_event = m.max_event_ms.load(Relaxed) as i64;
    metric(
        "vigil_frontier_event_time_ms",
        "gauge",
        "Event time (ms, inclusive) every output and query answer is complete through.",
        &[(String::new(), frontier as f64)],
    );
    metric(
        "vigil_max_event_time_ms",
        "gauge",
        "Highest event time seen (ms).",
        &[(String::new(), max_event as f64)],
    );
    metric(
        "vigil_frontier_lag_ms",
        "gauge",
        "Event-time lag of the frontier behind the highest event time seen (ms).",
        &[(String::new(), (max_event - frontier).max(0) as f64)],
    );
    let by_detector = m.anomalies_by_detector.lock().map(|g| g.clone()).unwrap_or_default();
    let lab = |d: &str| format!("{{detector=\"{}\"}}", escape_label(d));
    metric(
        "vigil_anomalies_opened_total",
        "counter",
        "Anomaly episodes opened, by detector.",
        &by_detector
            .iter()
            .map(|(d, (o, _))| (lab(d), *o as f64))
            .collect::<Vec<_>>(),
    );
    metric(
        "vigil_anomalies_closed_total",
        "counter",
        "Anomaly episodes closed, by detector.",
        &by_detector
            .iter()
            .map(|(d, (_, c))| (lab(d), *c as f64))
            .collect::<Vec<_>>(),
    );
    metric(
        "vigil_anomalies_open",
        "gauge",
        "Anomaly episodes open, by detector.",
        &by_detector
            .iter()
            .map(|(d, (o, c))| (lab(d), o.saturating_sub(*c) as f64))
            .collect::<Vec<_>>(),
    );
    let mut answered = Vec::new();
    for (i, e) in ENDPOINTS.iter().enumerate() {
        for (j, class) in ["2xx", "4xx", "5xx"].iter().enumerate() {
            answered.push((
                format!("{{endpoint=\"{e}\",code=\"{class}\"}}"),
                m.queries[i][j].load(Relaxed) as f64,
            ));
        }
    }
    let c = &m.connections;
    metric(
        "vigil_http_connections_total",
        "counter",
        "Connections the query server accepted.",
        &one(c.accepted.load(Relaxed)),
    );
    metric(
        "vigil_queries_total",
        "counter",
        "Query server answers, by endpoint and status class.",
        &answered,
    );
    let h = &m.query_latency;
    let _ = writeln!(
        out,
        "# HELP vigil_query_duration_seconds Query latency, request read to answer ready.\n# TYPE vigil_query_duration_seconds histogram"
    );
    let mut cumulative = 0u64;
    for (i, b) in LATENCY_BUCKETS_S.iter().enumerate() {
        cumulative += h.buckets[i].load(Relaxed);
        let _ = writeln!(out, "vigil_query_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}");
    }
    cumulative += h.buckets[LATENCY_BUCKETS_S.len()].load(Relaxed);
    let _ = writeln!(out, "vigil_query_duration_seconds_bucket{{le=\"+Inf\"}} {cumulative}");
    let _ = writeln!(
        out,
        "vigil_query_duration_seconds_sum {}",
        h.sum_us.load(Relaxed) as f64 / 1e6
    );
    let _ = writeln!(out, "vigil_query_duration_seconds_count {}", h.count.load(Relaxed));
    out
}
