//! Live queries: an embedded HTTP/JSON server answered from the maintained arrangements.
//!
//! How a query travels: an HTTP handler thread ([`server`]) parses and validates the request
//! ([`request`]) and hands the [`Query`] to the [`Hub`], which puts it in the inbox of one
//! worker of the process (the *origin*: for a point query the worker owning the device when
//! it runs in this process, so the query never waits for another worker; for a listing the
//! local workers in turn). A worker answers the point queries about its own devices itself,
//! from its shard, between steps and from inside long operator activations ([`poll`]). When
//! the whole cluster runs in this process, a listing goes to every local worker at once and
//! each adds its part from its next poll ([`gather`]). Everything else — a device of another
//! process, a listing in a multi-process cluster, a retraining — the origin feeds into the
//! query dataflow ([`dataflow`]) at the last complete tick `T`; the dataflow routes a point
//! query to the worker that owns the device (the same key hash the arrangements use) and
//! broadcasts a listing (top-k, anomalies) to every worker; each reads its shard of the
//! arrangements at exactly `T` and sends its part back to the origin, which merges the
//! parts, renders the answer ([`render`]) and hands it to the waiting handler.
//!
//! Invariants: every answer is read at one tick `T` that is complete on every worker (the
//! completed frontier is global), and says so (`as_of_tick`, `as_of_ms`); the query
//! dataflow's handles on the arrangements never let compaction pass a tick a query may still
//! be read at (they follow the query dataflow's frontier); nothing a client sends can panic
//! the engine (parse errors are 4xx answers; a query nobody answers in time is a 503).

pub mod answer_to;
pub mod client;
pub mod dashboard;
pub mod dataflow;
pub mod gather;
pub mod history;
pub mod http;
pub mod models;
pub mod poll;
pub mod reader;
pub mod render;
pub mod request;
pub mod server;
pub mod serving;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::detect::Anomaly;
use crate::event::DeviceId;
use crate::model::rescore::DeviceScore;
use crate::output::metrics::Metrics;
use crate::window::{DeviceWindows, WindowRow};

pub use answer_to::AnswerTo;
pub use dataflow::Queries;
pub use poll::poll;
pub use reader::QueryTraces;
pub use server::{Server, ServerError};
pub use serving::Serving;

/// A question the dataflow answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Query {
    /// The device's window stats, feature vector and open anomalies.
    Device { device: DeviceId },
    /// The device's closed tumbling windows of one length, by window start.
    History {
        device: DeviceId,
        window_ms: u64,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        limit: usize,
    },
    /// Open anomalies, most recent first: of `detector`, at `min_severity` or above, from
    /// `since_ms`; the page of `limit` after skipping `offset`.
    Anomalies {
        detector: Option<String>,
        since_ms: Option<i64>,
        min_severity: Option<crate::detect::Severity>,
        offset: usize,
        limit: usize,
    },
    /// The `k` devices with the highest value of feature number `feature`.
    Top { feature: usize, k: usize },
    /// Train a model on every device's feature vector at the answer's tick, register it
    /// and (with `promote`) make it the active version.
    Retrain { promote: bool },
}

impl Query {
    /// The device a point query is about (None: the query reads every worker's shard).
    pub fn device(&self) -> Option<&DeviceId> {
        match self {
            Query::Device { device } | Query::History { device, .. } => Some(device),
            _ => None,
        }
    }

    /// Index into [`crate::output::metrics::ENDPOINTS`].
    pub fn endpoint(&self) -> usize {
        match self {
            Query::Device { .. } => 0,
            Query::History { .. } => 1,
            Query::Anomalies { .. } => 2,
            Query::Top { .. } => 3,
            Query::Retrain { .. } => 9,
        }
    }
}

/// One worker's part of an answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Part {
    /// The owner's read of a device (None: no such device at `T`) and its open anomalies.
    Device {
        state: Option<Box<DeviceWindows>>,
        anomalies: Vec<Anomaly>,
        /// Its score under the current model (None: no model, or no model-based detector).
        model: Option<DeviceScore>,
    },
    /// The owner's read of a device's history (`known`: the device exists at `T`).
    History { known: bool, rows: Vec<WindowRow> },
    /// A worker's open anomalies matching the filter (at most `limit`, most recent first).
    Anomalies(Vec<Anomaly>),
    /// A worker's local top-k: (device, value), best first.
    Top(Vec<(DeviceId, f64)>),
    /// A worker's shard of the feature store: every device's feature vector.
    Shard(Vec<(DeviceId, Vec<f64>)>),
}

/// A part on its way back to the worker that asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Reply {
    /// Global index of the worker that asked.
    pub origin: u64,
    pub seq: u64,
    /// The tick the part was read at.
    pub tick: u64,
    pub part: Part,
}

/// A query on its way through the dataflow.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QueryMsg {
    pub origin: u64,
    pub seq: u64,
    pub query: Query,
}

/// A rendered answer: HTTP status and JSON body.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Answer {
            status,
            body: value.to_string(),
        }
    }

    /// A JSON error: `{"error": message, "status": status}` plus `extra` fields.
    pub fn error(status: u16, message: &str, extra: &[(&str, serde_json::Value)]) -> Self {
        let mut map = serde_json::Map::new();
        map.insert("error".into(), message.into());
        map.insert("status".into(), status.into());
        for (k, v) in extra {
            map.insert((*k).into(), v.clone());
        }
        Answer::json(status, &serde_json::Value::Object(map))
    }
}

/// A query waiting for its answer.
pub struct PendingQuery {
    pub query: Query,
    pub reply: AnswerTo,
}

/// What a worker finds in its inbox.
pub(crate) enum Work {
    /// A query the worker answers or sends into the query dataflow.
    Query(PendingQuery),
    /// A listing every local worker reads its part of ([`gather`]).
    Part(Arc<gather::Gather>),
}

/// Which workers of the cluster run in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkerPlacement {
    /// Global index of the process's first worker.
    pub first: usize,
    /// Workers in this process.
    pub local: usize,
    /// Workers in the whole cluster.
    pub peers: usize,
}

impl WorkerPlacement {
    /// This process's workers: `workers` per process, in `cluster` (None: a single process).
    /// timely numbers process `p`'s workers from `p * workers`.
    pub fn of(workers: usize, cluster: Option<&crate::cluster::ClusterSpec>) -> Self {
        let workers = workers.max(1);
        match cluster {
            Some(c) => WorkerPlacement {
                first: c.process * workers,
                local: workers,
                peers: c.processes * workers,
            },
            None => WorkerPlacement {
                first: 0,
                local: workers,
                peers: workers,
            },
        }
    }
}

/// The global index of the worker owning `device` among `peers` workers: the placement of
/// the exchange by key hash the arrangements use (timely sends hash `h` to worker
/// `h % peers`).
pub fn owner(device: &DeviceId, peers: usize) -> usize {
    use differential_dataflow::hashable::Hashable;
    (device.hashed() % peers.max(1) as u64) as usize
}

/// The queries waiting for one local worker, and that worker's thread (unparked on arrival).
struct Inbox {
    sender: Mutex<mpsc::Sender<Work>>,
    receiver: Mutex<Option<mpsc::Receiver<Work>>>,
    thread: Mutex<Option<std::thread::Thread>>,
}

impl Inbox {
    fn send(&self, work: Work) -> bool {
        let sent = match self.sender.lock() {
            Ok(s) => s.send(work).is_ok(),
            Err(_) => false,
        };
        self.unpark();
        sent
    }

    fn unpark(&self) {
        if let Ok(thread) = self.thread.lock() {
            if let Some(t) = thread.as_ref() {
                t.unpark();
            }
        }
    }
}

/// What the HTTP threads and the workers of one process share.
pub struct Hub {
    /// One inbox per local worker: a point query goes to the worker owning its device when
    /// that worker is in this process (it then never waits for another worker), a listing
    /// to the local workers in turn.
    inboxes: Vec<Inbox>,
    placement: WorkerPlacement,
    /// The ticks the local workers read at and open gathers hold.
    pub(crate) ticks: Arc<gather::ReadTicks>,
    next_listing: std::sync::atomic::AtomicUsize,
    stop: AtomicBool,
    /// Set once the input is exhausted and the run serves what it found.
    input_done: AtomicBool,
    /// The caller wrote the run's outputs (files merged, summary written).
    outputs_written: AtomicBool,
    /// Set while a `POST /models/retrain` of this process trains.
    pub retraining: AtomicBool,
    /// When the last query arrived (ms since `born`; 0: never).
    last_query_ms: std::sync::atomic::AtomicU64,
    born: std::time::Instant,
    pub metrics: Arc<Metrics>,
    pub tick_ms: u64,
    pub addr: SocketAddr,
}

impl Hub {
    pub fn new(metrics: Arc<Metrics>, tick_ms: u64, addr: SocketAddr, placement: WorkerPlacement) -> Arc<Self> {
        let inboxes: Vec<Inbox> = (0..placement.local.max(1))
            .map(|_| {
                let (sender, receiver) = mpsc::channel();
                Inbox {
                    sender: Mutex::new(sender),
                    receiver: Mutex::new(Some(receiver)),
                    thread: Mutex::new(None),
                }
            })
            .collect();
        Arc::new(Hub {
            ticks: Arc::new(gather::ReadTicks::new(inboxes.len())),
            inboxes,
            placement,
            next_listing: std::sync::atomic::AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            input_done: AtomicBool::new(false),
            outputs_written: AtomicBool::new(false),
            retraining: AtomicBool::new(false),
            last_query_ms: std::sync::atomic::AtomicU64::new(0),
            born: std::time::Instant::now(),
            metrics,
            tick_ms,
            addr,
        })
    }

    /// Whether a query arrived within the last second (workers then step in small pieces).
    pub fn recently_queried(&self) -> bool {
        let last = self.last_query_ms.load(Ordering::Relaxed);
        last > 0 && (self.born.elapsed().as_millis() as u64).saturating_sub(last) < 1_000
    }

    /// The local worker (index into the inboxes) that takes `query`.
    fn inbox_for(&self, query: &Query) -> usize {
        let p = &self.placement;
        let local = self.inboxes.len();
        match query.device().map(|d| owner(d, p.peers)) {
            Some(owner) if (p.first..p.first + local).contains(&owner) => owner - p.first,
            // Owned by another process: any local worker sends it on.
            Some(owner) => owner % local,
            None => self.next_listing.fetch_add(1, Ordering::Relaxed) % local,
        }
    }

    /// Hands a query to the worker that takes it; false when no worker takes queries (any
    /// more).
    pub fn submit(&self, pending: PendingQuery) -> bool {
        let now = (self.born.elapsed().as_millis() as u64).max(1);
        self.last_query_ms.store(now, Ordering::Relaxed);
        // A listing when the whole cluster runs here: every local worker reads its part.
        let listing = matches!(pending.query, Query::Top { .. } | Query::Anomalies { .. });
        if listing && self.placement.peers == self.inboxes.len() {
            let workers = self.inboxes.len();
            if let Some(gather) = gather::Gather::open(&pending.query, &pending.reply, workers, &self.ticks) {
                let mut sent = true;
                for inbox in &self.inboxes {
                    sent &= inbox.send(Work::Part(gather.clone()));
                }
                return sent;
            }
        }
        self.inboxes[self.inbox_for(&pending.query)].send(Work::Query(pending))
    }

    /// Takes the inbox of the worker with global index `worker` (None when it is not a
    /// worker of this process or its inbox was taken).
    pub(crate) fn take_receiver(&self, worker: usize) -> Option<mpsc::Receiver<Work>> {
        let inbox = self.inboxes.get(worker.checked_sub(self.placement.first)?)?;
        let rx = inbox.receiver.lock().ok()?.take()?;
        if let Ok(mut thread) = inbox.thread.lock() {
            *thread = Some(std::thread::current());
        }
        Some(rx)
    }

    /// Asks the workers to stop serving (after a replay) and the HTTP threads to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for inbox in &self.inboxes {
            inbox.unpark();
        }
    }

    /// Which workers run in this process.
    pub fn placement(&self) -> WorkerPlacement {
        self.placement
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    pub fn set_input_done(&self) {
        self.input_done.store(true, Ordering::SeqCst);
    }

    pub fn input_done(&self) -> bool {
        self.input_done.load(Ordering::SeqCst)
    }

    /// The run's outputs are written: `/health` says "input done" only from then on.
    pub fn set_outputs_written(&self) {
        self.outputs_written.store(true, Ordering::SeqCst);
    }

    /// What `/health` reports as the run's phase.
    pub fn phase(&self) -> &'static str {
        match (self.input_done(), self.outputs_written.load(Ordering::SeqCst)) {
            (false, _) => "ingesting",
            (true, false) => "writing outputs",
            (true, true) => "input done, serving",
        }
    }

    /// Event time (ms, inclusive) that everything through tick `tick` covers.
    pub fn tick_end_ms(&self, tick: u64) -> i64 {
        (tick as i64 + 1) * self.tick_ms as i64 - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(placement: WorkerPlacement) -> Arc<Hub> {
        Hub::new(
            Arc::new(Metrics::default()),
            1000,
            "127.0.0.1:1".parse().unwrap(),
            placement,
        )
    }

    #[test]
    fn point_queries_go_to_the_local_owner_and_listings_take_turns() {
        // Process 1 of a 2 × 3 cluster: global workers 3, 4, 5.
        let placement = WorkerPlacement {
            first: 3,
            local: 3,
            peers: 6,
        };
        let hub = hub(placement);
        let mut local_owned = 0;
        for i in 0..200 {
            let device: DeviceId = format!("dev-{i}").into();
            let owner = owner(&device, 6);
            let inbox = hub.inbox_for(&Query::Device { device });
            assert!(inbox < 3);
            if (3..6).contains(&owner) {
                assert_eq!(inbox, owner - 3, "the owner takes its own point queries");
                local_owned += 1;
            }
        }
        assert!(local_owned > 50 && local_owned < 150, "{local_owned}");
        let listing = Query::Top { feature: 0, k: 1 };
        let turns: Vec<usize> = (0..6).map(|_| hub.inbox_for(&listing)).collect();
        assert_eq!(turns, vec![0, 1, 2, 0, 1, 2]);
        // Every local worker has an inbox; a worker of another process has none.
        assert!(hub.take_receiver(2).is_none());
        assert!(hub.take_receiver(4).is_some());
        assert!(hub.take_receiver(4).is_none(), "taken once");
    }
}
