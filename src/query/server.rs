//! The HTTP side: routes, answers, the bearer token and metrics over the [`super::http`]
//! transport.
//!
//! Invariants: a handler never touches dataflow state — it parses, validates and hands a
//! [`Query`](super::Query) to the [`Hub`] from the event loop; the worker that answers sends
//! the answer straight back to the loop (503 with a JSON error when none comes within the
//! timeout), so no thread waits for a query; `/health`, `/metrics`, `/features` and every
//! refusal read only the process's atomics and configuration, so they are answered on the
//! loop at once, whatever the engine or other clients do; a retraining and the model
//! registry's files are answered on a handler thread. Every response is JSON (or
//! Prometheus text for `/metrics`); every error has a 4xx/5xx status and a JSON body
//! `{"error", "status"}`; a panic in a handler is caught and answered with a 500, so no
//! client input takes the server down. With a token configured, every request but
//! `/health` without `Authorization: Bearer <token>` gets a 401 (the token compared in
//! constant time); a non-loopback address is not served without a token unless
//! `[server] insecure` says so. Latency is measured from the parsed request to its answer.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::http::{self, Ask, Dispatch, Head, HttpReply, HttpServer, Limits};
use super::request::{self, Catalog, Route};
use super::{Answer, AnswerTo, Hub, PendingQuery, Query, WorkerPlacement};
use crate::config::{Config, Secret, ServerConfig};
use crate::decode::RejectReason;
use crate::model::Registry;
use crate::output::metrics::{Metrics, COUNTERS, ENDPOINTS, LATENCY_BUCKETS_S};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("cannot serve on {addr}: {message}")]
    Start { addr: SocketAddr, message: String },
    #[error(
        "refusing to serve queries on {addr} without a token: beyond loopback the query port needs \
         [server] token (or the environment variable VIGIL__SERVER__TOKEN), best with TLS \
         ([server] tls_cert and tls_key); serve on 127.0.0.1, or pass --insecure to serve it open anyway"
    )]
    Unguarded { addr: SocketAddr },
    #[error(transparent)]
    Tls(#[from] http::tls::TlsError),
}

/// Whether `addr` may be served with this configuration: a non-loopback address needs a
/// token (or `insecure`); the TLS files, when given, must load. Returns the TLS settings.
pub fn guard(addr: SocketAddr, server: &ServerConfig) -> Result<Option<Arc<rustls::ServerConfig>>, ServerError> {
    if !addr.ip().is_loopback() && server.token.is_none() && !server.insecure {
        return Err(ServerError::Unguarded { addr });
    }
    match (&server.tls_cert, &server.tls_key) {
        (Some(cert), Some(key)) => Ok(Some(http::tls::server_config(cert, key)?)),
        _ => Ok(None),
    }
}

/// A running server: its hub and transport. [`Server::shutdown`] stops them.
pub struct Server {
    pub hub: Arc<Hub>,
    http: HttpServer,
}

/// What the handler needs, shared by the event loop and the handler threads.
struct Context {
    hub: Arc<Hub>,
    catalog: Catalog,
    timeout: Duration,
    started: Instant,
    token: Option<Secret>,
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
        let tls = guard(addr, &config.server)?;
        if !addr.ip().is_loopback() && config.server.token.is_none() {
            tracing::warn!(%addr, "serving queries beyond loopback with no token (--insecure): anyone who reaches the port may query and retrain");
        }
        let listener = std::net::TcpListener::bind(addr).map_err(|source| ServerError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        let hub = Hub::new(metrics, config.tick_ms(), bound, placement);
        let s = &config.server;
        let context = Arc::new(Context {
            hub: hub.clone(),
            catalog: Catalog::new(config),
            timeout: s.timeout.as_duration(),
            started: Instant::now(),
            token: s.token.clone(),
        });
        let limits = Limits {
            max_connections: s.max_connections,
            idle_timeout: s.idle_timeout.as_duration(),
            request_timeout: s.request_timeout.as_duration(),
            handler_threads: s.threads,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let handler = move |head: &Head| route(head, &context);
        let http = HttpServer::start(listener, limits, tls, Arc::new(handler), hub.metrics.clone()).map_err(|e| {
            ServerError::Start {
                addr,
                message: format!("starting the event loop: {e}"),
            }
        })?;
        tracing::info!(
            addr = %bound,
            token = s.token.is_some(),
            max_connections = http.limits().max_connections,
            "serving queries on {scheme}://{bound}"
        );
        Ok(Server { hub, http })
    }

    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.hub.addr
    }

    /// Stops taking requests and joins the transport's threads.
    pub fn shutdown(self) {
        self.hub.stop();
        self.http.stop();
    }
}

const JSON: &str = "application/json";
/// Index of "other" in [`ENDPOINTS`].
const OTHER: usize = 6;
/// Indexes of "episodes" and "dashboard" in [`ENDPOINTS`].
const EPISODES: usize = 10;
const DASHBOARD: usize = 11;

/// Decides how a request is answered; a panic while deciding or answering is a 500 (the
/// engine goes on). Every answer is counted in the metrics.
fn route(head: &Head, ctx: &Arc<Context>) -> Dispatch {
    let at = Instant::now();
    let reply = |(endpoint, answer, content_type): (usize, Answer, &'static str)| {
        ctx.hub.metrics.query_answered(endpoint, answer.status, at.elapsed());
        HttpReply {
            status: answer.status,
            content_type,
            body: answer.body,
        }
    };
    let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| plan(head, ctx)));
    match decided {
        Ok(Plan::Now(answered)) => Dispatch::Now(reply(answered)),
        Ok(Plan::Later(work)) => {
            let ctx = ctx.clone();
            Dispatch::Later(Box::new(move || {
                let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&ctx)))
                    .unwrap_or_else(|_| internal_error());
                ctx.hub
                    .metrics
                    .query_answered(answered.0, answered.1.status, at.elapsed());
                HttpReply {
                    status: answered.1.status,
                    content_type: answered.2,
                    body: answered.1.body,
                }
            }))
        }
        Ok(Plan::Ask(query)) => Dispatch::Ask(ask_engine(query, ctx, at)),
        Err(_) => Dispatch::Now(reply(internal_error())),
    }
}

/// Hands a query to the engine from the event loop; the worker that answers sends the
/// answer straight back to the loop (no thread waits for it).
fn ask_engine(query: Query, ctx: &Arc<Context>, at: Instant) -> Ask {
    let endpoint = query.endpoint();
    let timeout = ctx.timeout;
    let (hub, metrics) = (ctx.hub.clone(), ctx.hub.metrics.clone());
    let answered = move |answer: Answer| {
        metrics.query_answered(endpoint, answer.status, at.elapsed());
        HttpReply {
            status: answer.status,
            content_type: JSON,
            body: answer.body,
        }
    };
    let on_time = answered.clone();
    Ask {
        start: Box::new(move |responder| {
            let reply = AnswerTo::callback(move |answer| responder.send(on_time(answer)));
            if !hub.submit(PendingQuery {
                query,
                reply: reply.clone(),
            }) {
                reply.send(not_taking_queries());
            }
        }),
        timeout,
        timed_out: Box::new(move || answered(no_answer_within(timeout))),
    }
}

fn not_taking_queries() -> Answer {
    Answer::error(503, "the engine is not taking queries (shutting down)", &[])
}

fn no_answer_within(timeout: Duration) -> Answer {
    Answer::error(
        503,
        &format!(
            "no answer within {} ms; the engine is busy or a worker is gone",
            timeout.as_millis()
        ),
        &[],
    )
}

/// (endpoint index for metrics, answer, content type).
type Answered = (usize, Answer, &'static str);

enum Plan {
    Now(Answered),
    /// On a handler thread (the model registry's files, a retraining).
    Later(Box<dyn FnOnce(&Context) -> Answered + Send>),
    /// Asked of the engine from the loop, answered by a worker.
    Ask(Query),
}

fn internal_error() -> Answered {
    (
        OTHER,
        Answer::error(500, "internal error while answering; the engine goes on", &[]),
        JSON,
    )
}

/// Whether the request carries the token: `Authorization: Bearer <token>`, compared in
/// constant time.
fn authorized(authorization: Option<&str>, token: &Secret) -> bool {
    let Some(value) = authorization else { return false };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    let (given, want) = (given.trim().as_bytes(), token.expose().as_bytes());
    scheme.eq_ignore_ascii_case("bearer")
        && given.len() == want.len()
        && given.iter().zip(want).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

/// How a request is answered: at once (counters, refusals), by the engine, or on a handler
/// thread (files, a retraining).
fn plan(head: &Head, ctx: &Context) -> Plan {
    let (method, url, hub) = (head.method.as_str(), head.target.as_str(), &ctx.hub);
    let path = url.split('?').next().unwrap_or_default();
    // The dashboard's page and assets hold no data: served without the token.
    if let Some(asset) = super::dashboard::asset(method, path) {
        let page = Answer {
            status: 200,
            body: asset.body.to_string(),
        };
        return Plan::Now((DASHBOARD, page, asset.content_type));
    }
    if let Some(token) = &ctx.token {
        if path != "/health" && !authorized(head.authorization.as_deref(), token) {
            return Plan::Now((
                OTHER,
                Answer::error(
                    401,
                    "this server needs its token: send Authorization: Bearer <token> (vigil query --token, or VIGIL_TOKEN)",
                    &[],
                ),
                JSON,
            ));
        }
    }
    let route = match request::parse(method, url, &ctx.catalog) {
        Ok(r) => r,
        Err(e) => return Plan::Now((OTHER, Answer::error(e.status, &e.message, &[]), JSON)),
    };
    match route {
        Route::Health => Plan::Now((4, health(hub, ctx.started), JSON)),
        Route::Metrics => Plan::Now((
            5,
            Answer {
                status: 200,
                body: prometheus(hub),
            },
            "text/plain; version=0.0.4",
        )),
        Route::Features => {
            let catalog = &ctx.catalog;
            let body = json!({
                "as_of_ms": frontier_ms(hub),
                "features": catalog.features.describe().iter().map(|(n, d)| json!({"name": n, "description": d})).collect::<Vec<_>>(),
                "tumbling_windows": catalog.tumbling.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
                "detectors": catalog.detectors,
            });
            Plan::Now((7, Answer::json(200, &body), JSON))
        }
        Route::Models => Plan::Later(Box::new(|ctx: &Context| {
            (8, super::models::list(&Registry::new(&ctx.catalog.registry)), JSON)
        })),
        Route::Model(v) => Plan::Later(Box::new(move |ctx: &Context| {
            (8, super::models::show(&Registry::new(&ctx.catalog.registry), v), JSON)
        })),
        Route::Episodes(filter) => Plan::Now((
            EPISODES,
            super::dashboard::episodes::answer(&hub.metrics, &filter, frontier_ms(hub)),
            JSON,
        )),
        Route::Query(query @ Query::Retrain { .. }) => {
            Plan::Later(Box::new(move |ctx: &Context| answer_query(query, ctx)))
        }
        Route::Query(query) => Plan::Ask(query),
    }
}

/// Asks the engine (on a handler thread).
fn answer_query(query: super::Query, ctx: &Context) -> Answered {
    let hub = &ctx.hub;
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
    let (endpoint, answer) = ask(hub, query, if retrain { RETRAIN_TIMEOUT } else { ctx.timeout });
    if retrain {
        hub.retraining.store(false, std::sync::atomic::Ordering::SeqCst);
    }
    (endpoint, answer, JSON)
}

/// How long `POST /models/retrain` waits for training before answering 503.
pub const RETRAIN_TIMEOUT: Duration = Duration::from_secs(600);

/// Hands `query` to the dataflow and waits for its answer.
fn ask(hub: &Hub, query: super::Query, timeout: Duration) -> (usize, Answer) {
    let endpoint = query.endpoint();
    let (reply, rx) = AnswerTo::channel();
    if !hub.submit(PendingQuery { query, reply }) {
        return (endpoint, not_taking_queries());
    }
    let answer = rx.recv_timeout(timeout).unwrap_or_else(|_| no_answer_within(timeout));
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
        "phase": hub.phase(),
        "as_of_ms": frontier,
        "frontier_tick": m.frontier_tick.load(Relaxed),
        "max_event_time_ms": max_event,
        "event_time_lag_ms": lag,
        "events_read": read,
        "events_accepted": m.accepted.load(Relaxed),
        "events_rejected": m.rejected_total(),
        // Records dated too far ahead of their partition's progress: a skewed clock or an
        // attempt to move event time (the clock_skew detector names the devices).
        "events_too_far_ahead": m.rejected[RejectReason::TooFarAhead.index()].load(Relaxed),
        "rejected_by_reason": m.rejected_by_reason(),
        "devices": devices(hub),
        "anomalies_open_by_detector": open_by_detector(m),
        "skipped": m.skipped_total(),
        "skipped_by_type": m.skipped_by_type(),
        "events_per_s": if elapsed > 0.0 { read as f64 / elapsed } else { 0.0 },
        "uptime_s": elapsed,
        "addr": hub.addr.to_string(),
    });
    Answer::json(200, &body)
}

/// Devices this process's workers hold now (at the end of a run: the run's count).
fn devices(hub: &Hub) -> u64 {
    let m = &hub.metrics;
    match m.devices.load(Relaxed) {
        0 => m.devices_live.load(Relaxed),
        done => done,
    }
}

/// Open anomaly episodes by detector (every enabled detector that opened any).
fn open_by_detector(m: &Metrics) -> serde_json::Map<String, serde_json::Value> {
    let by_detector = m.anomalies_by_detector.lock().map(|g| g.clone()).unwrap_or_default();
    by_detector
        .iter()
        .map(|(d, (o, c))| (d.clone(), o.saturating_sub(*c).into()))
        .collect()
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
    for c in COUNTERS.iter().filter(|c| c.exported) {
        metric(c.name, c.kind.as_str(), c.help, &one((c.field)(m).load(Relaxed)));
    }
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
    let skipped: Vec<(String, f64)> = crate::decode::SKIP_KINDS
        .iter()
        .zip(&m.skipped)
        .map(|(k, c)| (format!("{{event_type=\"{k}\"}}"), c.load(Relaxed) as f64))
        .collect();
    metric(
        "vigil_records_skipped_total",
        "counter",
        "Lines that are not records of interest (Suricata event types other than flow and netflow), by event type; not in events read.",
        &skipped,
    );
    let late_rejected = m.rejected[RejectReason::Late.index()].load(Relaxed);
    let corrected = m.late_corrected.load(Relaxed);
    metric(
        "vigil_events_late_total",
        "counter",
        "Late records (rejected as late or applied as corrections).",
        &one(late_rejected + corrected),
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
