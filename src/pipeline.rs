//! The main job: builds the dataflow on every worker and drives it from a record source.
//!
//! Dataflow per worker: events `(tick, Event)` and the devices of rejected records →
//! `window_stats` (exchanged by device; it also hosts the detectors' per-device logic) →
//! changes arranged by device as the feature store ("features"), closed tumbling rows to the
//! sink. Invariants: every worker reads every record of a file input and tracks the same
//! watermark, but only the record's owner (`record index % readers`) decodes and sends it,
//! so results do not depend on the number of workers; the input time is always the
//! watermark, and no event is sent below it; outputs are final when written.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::input::Input;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use crate::cluster::{agree_max, all_sum, ClusterSpec};
use crate::config::Config;
use crate::decode::Format;
use crate::detect::{self, DetectorContext, WindowLayout};
use crate::event::{DeviceId, Event};
use crate::feature_store::FeatureStore;
use crate::features::FeatureLayout;
use crate::output::metrics::{self, Metrics, Summary};
use crate::output::{SinkFactory, WorkerSink};
use crate::source::file::InputSpec;
use crate::source::{open_input, InputBatch, Poll, SourceError, WorkerInput};
use crate::window::operator::{window_stats, WindowGauges, WindowSpec};

mod progress;
mod stepping;

use progress::Progress;
use stepping::{completed, retrain_due, step_until};

/// A failed run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The error names its file and carries the OS message (shown once, as its source).
    #[error("writing outputs")]
    Output(#[from] std::io::Error),
    #[error("dataflow: {0}")]
    Dataflow(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Cluster(String),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Serve(#[from] crate::query::ServerError),
}

/// Everything a run needs.
pub struct RunSpec {
    pub config: Config,
    pub input: InputSpec,
    /// None: detect per file.
    pub format: Option<Format>,
    pub workers: usize,
    pub sinks: SinkFactory,
    /// Show a progress bar / progress log lines.
    pub progress: bool,
    /// This process's place in a cluster (None: a single process).
    pub cluster: Option<ClusterSpec>,
    /// Serve live queries on this address (None: no server, no query dataflow).
    pub serve: Option<std::net::SocketAddr>,
}

/// What a run reports when its input is done.
#[derive(Debug)]
pub struct RunOutcome {
    /// Totals over every process of the cluster.
    pub summary: Summary,
    /// This process's own counters.
    pub metrics: Arc<Metrics>,
    /// With a server: the workers still answering queries about what the run found, until
    /// [`Serving::wait`] (serve until the process ends) or [`Serving::stop`].
    pub serving: Option<crate::query::Serving>,
}

/// Runs the main job to the end of its input (with a server, the workers go on answering
/// queries: see [`RunOutcome::serving`]).
pub fn run(spec: RunSpec) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let metrics = Arc::new(Metrics::default());
    let workers = spec.workers.max(1);
    let placement = crate::query::WorkerPlacement::of(workers, spec.cluster.as_ref());
    let server = match spec.serve {
        Some(addr) => Some(crate::query::Server::start(
            addr,
            &spec.config,
            metrics.clone(),
            placement,
        )?),
        None => None,
    };
    let hub = server.as_ref().map(|s| s.hub.clone());
    let spec = Arc::new(spec);
    let end_ms = Arc::new(std::sync::Mutex::new(None::<i64>));
    let totals = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<Result<(), RunError>>();
    let shared = (
        spec.clone(),
        metrics.clone(),
        end_ms.clone(),
        totals.clone(),
        hub,
        done_tx,
    );
    let mut timely_config = match &spec.cluster {
        Some(c) => c.timely_config(workers),
        None => timely::Config::process(workers),
    };
    // Arrangements go on merging their batches when they have no new data, so the traces
    // that queries read stay compact (fewer batches to walk per answer).
    differential_dataflow::configure(
        &mut timely_config.worker,
        &differential_dataflow::Config::default().idle_merge_effort(Some(IDLE_MERGE_EFFORT)),
    );
    // timely connects the processes before it returns; a peer that never comes up must
    // end in an error, not a hang.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("vigil-connect".into())
        .spawn(move || {
            let result = timely::execute(timely_config, move |worker| {
                let (spec, metrics, end_ms, totals, hub, done) = &shared;
                let (result, queries, complete) = run_worker(worker, spec, metrics, end_ms, totals, hub.clone());
                if let Err(e) = &result {
                    tracing::error!(worker = worker.index(), error = %e, "worker failed; the run stops");
                }
                let ok = result.is_ok();
                let _ = done.send(result);
                if ok {
                    queries.serve_until_stopped(worker, complete);
                } else {
                    drop(queries);
                }
                while worker.step_or_park(Some(Duration::from_millis(10))) {}
                Ok::<(), RunError>(())
            });
            let _ = tx.send(result);
        })
        .map_err(|e| RunError::Dataflow(e.to_string()))?;
    let connect_timeout = spec
        .cluster
        .as_ref()
        .map_or(Duration::from_secs(60), |c| c.connect_timeout);
    let guards = match rx.recv_timeout(connect_timeout) {
        Ok(result) => result.map_err(RunError::Dataflow)?,
        Err(_) => {
            let peers = spec
                .cluster
                .as_ref()
                .map(|c| c.addresses.join(", "))
                .unwrap_or_default();
            return Err(RunError::Cluster(format!(
                "the cluster's processes did not all connect within {} s (addresses: {peers}); start every process of the hostfile (vigil launch does)",
                connect_timeout.as_secs()
            )));
        }
    };
    // Every local worker reports when its input phase is over (outputs written).
    let mut failed = None;
    for _ in 0..workers {
        match done_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed = Some(e);
                break;
            }
            Err(_) => break, // a worker panicked: joining the guards reports it
        }
    }
    if let Some(e) = failed {
        if let Some(server) = server {
            server.shutdown();
        }
        // The first failure ends the run. The other workers may be waiting on the failed
        // one (an agreement, a frontier) and would never finish: they are not joined but
        // left to the process's exit.
        std::mem::forget(guards);
        return Err(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let end = *end_ms.lock().expect("end lock");
    let total_workers = placement.peers;
    let totals = totals.lock().expect("totals lock").clone();
    let summary = Summary::from_metrics(&metrics::from_snapshot(&totals), total_workers, elapsed, end);
    let serving = crate::query::Serving::start(server, guards)?;
    Ok(RunOutcome {
        summary,
        metrics,
        serving,
    })
}

/// The input phase of one worker: the result, the worker's query engine and the frontier
/// its answers are read at once the input is done.
fn run_worker(
    worker: &mut timely::worker::Worker,
    spec: &RunSpec,
    metrics: &Arc<Metrics>,
    end_ms: &std::sync::Mutex<Option<i64>>,
    totals: &std::sync::Mutex<Vec<u64>>,
    hub: Option<Arc<crate::query::Hub>>,
) -> (Result<(), RunError>, crate::query::Queries, u64) {
    let mut queries = crate::query::Queries::none();
    let mut complete = 0;
    let result = run_input(worker, spec, metrics, end_ms, totals, hub, &mut queries, &mut complete);
    (result, queries, complete)
}

/// Writes the periodic feature snapshots due before `before` (each at its tick, from the
/// store pinned there) and pins the next one.
fn write_due_snapshots(
    next: &mut Option<u64>,
    every: u64,
    before: u64,
    store: &mut FeatureStore,
    sink: &Rc<RefCell<Box<dyn WorkerSink>>>,
    metrics: &Metrics,
) {
    while let Some(s) = next.filter(|&s| s < before) {
        let states = store.read_at(s);
        metrics.features_written.fetch_add(states.len() as u64, Relaxed);
        sink.borrow_mut().features(s, false, &states);
        *next = Some(s + every);
        store.pin(*next);
    }
}

/// The handles of the main dataflow that its driver ([`run_input`]) holds.
struct MainHandles {
    input: VecInput<(u64, Event)>,
    reject_input: VecInput<(DeviceId, u64, u64)>,
    model_input: differential_dataflow::input::InputSession<u64, crate::model::Model, isize>,
    features: crate::feature_store::FeatureTrace,
    /// The store the features trace's handles point into.
    states: Rc<crate::window::StateStore>,
    query_traces: Option<QueryTraceHandles>,
}

/// An input of records sent one by one or in vectors.
type VecInput<D> = timely::dataflow::InputHandle<u64, timely::container::CapacityContainerBuilder<Vec<D>>>;

/// The traces the query dataflow imports: anomalies, history rows, model scores.
type QueryTraceHandles = (
    crate::query::reader::AnomalyTrace,
    crate::query::history::HistoryTrace,
    Option<crate::query::reader::ScoreTrace>,
);

/// Builds the main dataflow: windows (hosting the per-device detectors), the feature
/// arrangement, every detector, the anomaly and score arrangements the queries read, and the
/// sinks; returns the handles its driver holds.
fn build_main_dataflow(
    worker: &mut timely::worker::Worker,
    config: &Config,
    metrics: &Arc<Metrics>,
    hub: Option<&Arc<crate::query::Hub>>,
    sink: &Rc<RefCell<Box<dyn WorkerSink>>>,
    probe: &ProbeHandle<u64>,
    gauges: &Rc<WindowGauges>,
) -> Result<MainHandles, RunError> {
    let states = crate::window::StateStore::new();
    let index = worker.index();
    let wants_changes = sink.borrow().wants_changes();
    let window_spec = WindowSpec::from_config(config);
    worker.dataflow::<u64, _, _>(|scope| {
        let (input, events) = scope.new_input::<(u64, Event)>();
        let (reject_input, rejects) = scope.new_input::<(DeviceId, u64, u64)>();
        let (model_input, models) = crate::model::driver::model_collection(scope);
        let windows = window_stats(events, rejects, window_spec, states.clone(), gauges.clone());
        let (changes, rows) = (windows.changes, windows.rows);
        let history = hub
            .as_ref()
            .map(|_| crate::query::history::arrange_history(rows.clone(), config, probe));
        let row_sink = sink.clone();
        let row_metrics = metrics.clone();
        rows.sink(Pipeline, "WindowRows", move |(input, _frontier)| {
            input.for_each(|_cap, data| {
                row_metrics.window_rows.fetch_add(data.len() as u64, Relaxed);
                row_sink.borrow_mut().rows(data);
            });
        });
        let changes = changes.as_collection();
        let changes = if wants_changes {
            let change_sink = sink.clone();
            let reads_store = sink.borrow().reads_store();
            let states = states.clone();
            let mut read = Vec::new();
            changes.inspect_batch(move |_t, batch| {
                // Read before the arrangement sees the batch: every state in it is in the store.
                if reads_store {
                    change_sink.borrow_mut().store_changes(batch, &states);
                    return;
                }
                read.extend(
                    batch
                        .iter()
                        .map(|((d, s), t, r)| ((states.device_name(*d), states.snapshot(*s)), *t, *r)),
                );
                change_sink.borrow_mut().changes(&read);
                read.clear();
            })
        } else {
            changes
        };
        // The window operator emits each change on the worker that owns its device (it was
        // exchanged by the same key hash the arrangement uses): arranged in place, without a
        // second exchange.
        let arranged = crate::feature_store::arrange(changes.inner);
        arranged.stream.clone().probe_with(probe);

        let ctx = DetectorContext {
            scope,
            arranged: arranged.clone(),
            states: states.clone(),
            per_device: {
                let mut per_device = windows.per_device;
                per_device.want_scores(sink.borrow().wants_scores());
                per_device
            },
            windows: Arc::new(WindowLayout::new(config)),
            features: Arc::new(FeatureLayout::new(config)),
            network: Arc::new(config.network.clone()),
            worker_index: index,
            models,
        };
        let built = detect::build_all(&ctx, config).map_err(|e| RunError::Config(e.to_string()))?;
        let (anomalies, scores) = (built.anomalies, built.scores);
        let anomaly_sink = sink.clone();
        let anomaly_metrics = metrics.clone();
        let tick_ms = config.tick_ms();
        let anomalies = anomalies.inspect_batch(move |_t, batch| {
            for (anomaly, _, diff) in batch {
                anomaly_metrics.anomaly_change(&anomaly.detector, *diff);
            }
            anomaly_metrics.episodes.record(batch, tick_ms);
            anomaly_sink.borrow_mut().anomalies(batch);
        });
        let anomalies = anomalies
            .map(|a| (a.device.clone(), a))
            .arrange_by_key_named("anomalies");
        anomalies.stream.clone().probe_with(probe);
        for stream in scores {
            let score_sink = sink.clone();
            stream.sink(Pipeline, "Scores", move |(input, _frontier)| {
                input.for_each(|_cap, data| score_sink.borrow_mut().scores(data));
            });
        }
        // Served: every device's model score, arranged by device for `GET /devices/{id}`.
        let model_scores = built.model_scores.filter(|_| history.is_some()).map(|scores| {
            let arranged = scores.arrange_by_key_named("model_scores");
            arranged.stream.clone().probe_with(probe);
            arranged.trace
        });
        let query_traces = history.map(|history| (anomalies.trace, history, model_scores));
        Ok::<_, RunError>(MainHandles {
            input,
            reject_input,
            model_input,
            features: arranged.trace,
            states: states.clone(),
            query_traces,
        })
    })
}

/// Drives one worker's run: builds the main dataflow ([`build_main_dataflow`]), then
/// ingests (poll, send, advance), steps the dataflow, writes snapshots, retrains and commits
/// until the input is exhausted, and finishes (final snapshot, drain, totals).
#[allow(clippy::too_many_arguments)]
fn run_input(
    worker: &mut timely::worker::Worker,
    spec: &RunSpec,
    metrics: &Arc<Metrics>,
    end_ms: &std::sync::Mutex<Option<i64>>,
    totals: &std::sync::Mutex<Vec<u64>>,
    hub: Option<Arc<crate::query::Hub>>,
    queries: &mut crate::query::Queries,
    complete_out: &mut u64,
) -> Result<(), RunError> {
    let index = worker.index();
    let peers = worker.peers();
    let config = &spec.config;
    let sink: Rc<RefCell<Box<dyn WorkerSink>>> = Rc::new(RefCell::new((spec.sinks)(index)));
    let probe = ProbeHandle::new();
    let gauges = Rc::new(WindowGauges::default());
    // The query dataflow first: a worker step runs its dataflows in the order they were
    // built, so queries move on before the step's ingestion work, not after it.
    *queries = crate::query::Queries::new(worker, hub.clone(), config);
    let main_dataflow = worker.next_dataflow_index();

    let MainHandles {
        mut input,
        mut reject_input,
        model_input,
        features: trace,
        query_traces,
        states,
    } = build_main_dataflow(worker, config, metrics, hub.as_ref(), &sink, &probe, &gauges)?;
    let mut store = FeatureStore::new(trace, states.clone());
    queries.attach(
        query_traces.map(|(anomalies, history, model_scores)| crate::query::QueryTraces {
            features: store.trace().clone(),
            states: states.clone(),
            anomalies,
            history: Some(history),
            model_scores,
        }),
    );
    // Models: the active one enters the dataflow; retraining on schedule (src/model/driver.rs).
    let mut models = crate::model::driver::ModelDriver::new(worker, config, model_input)?;

    let mut source: Box<dyn WorkerInput> = open_input(&spec.input, spec.format, config, index, peers)?;
    let progress = (spec.progress && index == 0).then(Progress::new);
    let snapshot_every = config.output.snapshot_every.0 / config.tick_ms();
    let mut next_snapshot: Option<u64> = None;
    let mut devices_counted = 0u64;
    let mut batch = InputBatch::default();

    loop {
        // While queried, smaller batches too: decoding one is a pause in answering.
        let batch_records = if config.server.step_events > 0 && queries.busy() {
            config.input.batch_records.min(config.server.step_events * 8)
        } else {
            config.input.batch_records
        };
        let poll = source.poll(batch_records, &mut batch)?;
        metrics.read.fetch_add(std::mem::take(&mut batch.read), Relaxed);
        metrics.accepted.fetch_add(std::mem::take(&mut batch.accepted), Relaxed);
        for (counter, n) in metrics.skipped.iter().zip(std::mem::take(&mut batch.skipped)) {
            if n > 0 {
                counter.fetch_add(n, Relaxed);
            }
        }
        metrics
            .late_corrected
            .fetch_add(std::mem::take(&mut batch.corrected), Relaxed);
        for r in batch.rejects.drain(..) {
            metrics.reject(r.reason);
            sink.borrow_mut().reject(r);
        }
        for (t, device, ahead_ms) in batch.reject_devices.drain(..) {
            reject_input.send((device, t, ahead_ms));
        }
        let sent = batch.events.len();
        if !batch.events.is_empty() {
            if let Some(max) = batch.events.iter().map(|(_, e)| e.ts_ms).max() {
                metrics.max_event_ms.fetch_max(max.max(0) as u64, Relaxed);
            }
            input.send_batch(&mut batch.events);
            batch.events.clear();
        }
        if let Some(t) = source.watermark() {
            retrain_due(
                worker,
                &probe,
                (&mut input, &mut reject_input),
                &mut models,
                &mut store,
                queries,
                t,
            );
            models.poll_registry();
            let from = *input.time();
            if t > from {
                // While queries arrive, event time advances in pieces of about
                // `server.step_events` events, and queries are answered between pieces: a query
                // then waits for one small step of the dataflow, not for a whole batch.
                let step_events = config.server.step_events;
                let pieces = if step_events > 0 && poll != Poll::Exhausted && queries.busy() {
                    ((sent / step_events).max(1) as u64).min(t - from)
                } else {
                    1
                };
                for i in 1..=pieces {
                    let cur = from + (t - from) * i / pieces;
                    input.advance_to(cur);
                    reject_input.advance_to(cur);
                    if i < pieces {
                        step_until(worker, &probe, queries, cur);
                    }
                }
            }
            if next_snapshot.is_none() && snapshot_every > 0 {
                next_snapshot = Some((t / snapshot_every + 1) * snapshot_every - 1);
                store.pin(next_snapshot);
            }
        }
        if poll == Poll::Exhausted {
            break;
        }
        // Keep the dataflow close behind the input: memory stays bounded by the lateness.
        step_until(worker, &probe, queries, *input.time());
        let complete = completed(&probe);
        queries.step(complete);
        write_due_snapshots(&mut next_snapshot, snapshot_every, complete, &mut store, &sink, metrics);
        store.advance(complete);
        metrics.frontier_tick.fetch_max(complete, Relaxed);
        metrics
            .peak_arrangement_updates
            .fetch_max(store.updates() as u64, Relaxed);
        metrics
            .peak_window_events
            .fetch_max(gauges.events.get() as u64, Relaxed);
        // This worker's devices into the process's live count (wrapping: it may fall).
        let devices = gauges.devices.get() as u64;
        metrics
            .devices_live
            .fetch_add(devices.wrapping_sub(devices_counted), Relaxed);
        devices_counted = devices;
        sink.borrow_mut().flush()?;
        source.commit(complete)?;
        if let Some(p) = &progress {
            p.update(source.progress(), metrics);
        }
    }

    // End of input: complete everything through T_end (agreed by all workers), snapshot the
    // features as of T_end, then close the input (open tumbling periods are closed and written).
    let t_end = agree_max(worker, source.end_tick());
    tracing::debug!(worker = index, t_end = ?t_end, "input exhausted");
    if let Some(t_end) = t_end {
        retrain_due(
            worker,
            &probe,
            (&mut input, &mut reject_input),
            &mut models,
            &mut store,
            queries,
            t_end + 1,
        );
        if t_end + 1 > *input.time() {
            input.advance_to(t_end + 1);
            reject_input.advance_to(t_end + 1);
        }
        step_until(worker, &probe, queries, *input.time());
        // Periodic snapshots the last batches passed are still due.
        write_due_snapshots(&mut next_snapshot, snapshot_every, t_end, &mut store, &sink, metrics);
        let states = store.read_at(t_end);
        metrics.features_written.fetch_add(states.len() as u64, Relaxed);
        sink.borrow_mut().features(t_end, true, &states);
        *complete_out = t_end + 1;
        let tick = config.tick_ms() as i64;
        *end_ms.lock().expect("end lock") = Some((t_end as i64 + 1) * tick - 1);
    }
    tracing::debug!(worker = index, "final snapshot written; closing the input");
    drop(input);
    drop(reject_input);
    drop(models);
    // The main dataflow drains; the query dataflow (when serving) goes on answering.
    while worker.installed_dataflows().contains(&main_dataflow) {
        worker.step_or_park(Some(Duration::from_millis(10)));
        queries.step(*complete_out);
    }
    sink.borrow_mut().flush()?;
    source.commit(u64::MAX)?;
    tracing::debug!(worker = index, "dataflow complete");
    metrics.devices.fetch_add(gauges.devices.get() as u64, Relaxed);
    if let Some(p) = progress {
        p.finish();
    }
    let result = sink.borrow_mut().finish();
    // Every worker of every process has written its outputs; the first worker of each
    // process contributes the process's counters to the cluster's totals.
    agree_max(worker, None);
    let local_workers = spec.workers.max(1);
    let contribution = if index % local_workers == 0 {
        metrics::snapshot(metrics)
    } else {
        vec![0; metrics::snapshot(metrics).len()]
    };
    let sums = all_sum(worker, contribution);
    if index % local_workers == 0 {
        *totals.lock().expect("totals lock") = sums;
    }
    result.map_err(RunError::Output)
}

/// Merge work an arrangement does per activation while its trace is not yet one batch (in
/// updates' worth): small enough to keep an activation well under a millisecond.
const IDLE_MERGE_EFFORT: isize = 2048;
