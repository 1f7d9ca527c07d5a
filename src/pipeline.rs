//! The main job: builds the dataflow on every worker and drives it from a record source.
//!
//! Dataflow per worker: events `(tick, Event)` → `window_stats` (exchanged by device) →
//! changes arranged by device as the feature store ("features"), closed tumbling rows to the
//! sink. Invariants: every worker reads every record of a file input and tracks the same
//! watermark, but only the record's owner (`record index % readers`) decodes and sends it,
//! so results do not depend on the number of workers; the input time is always the
//! watermark, and no event is sent below it; outputs are final when written.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::AsCollection;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::input::Input;
use timely::dataflow::operators::Probe;
use timely::dataflow::ProbeHandle;

use crate::config::Config;
use crate::decode::{DecodeError, Format, Reject, RejectReason};
use crate::event::Event;
use crate::feature_store::FeatureStore;
use crate::output::metrics::{Metrics, Summary};
use crate::output::{SinkFactory, WorkerSink};
use crate::source::file::{InputSpec, RecordReader};
use crate::source::watermark::{Placement, Watermark};
use crate::source::SourceError;
use crate::window::operator::{window_stats, WindowSpec};

/// A failed run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("writing outputs: {0}")]
    Output(#[from] std::io::Error),
    #[error("dataflow: {0}")]
    Dataflow(String),
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
}

/// What a run reports when it ends.
#[derive(Debug)]
pub struct RunOutcome {
    pub summary: Summary,
    pub metrics: Arc<Metrics>,
}

/// Runs the main job to the end of its input.
pub fn run(spec: RunSpec) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let metrics = Arc::new(Metrics::default());
    let workers = spec.workers.max(1);
    let spec = Arc::new(spec);
    let end_ms = Arc::new(std::sync::Mutex::new(None::<i64>));
    let shared = (spec.clone(), metrics.clone(), end_ms.clone());
    let guards = timely::execute(timely::Config::process(workers), move |worker| {
        let (spec, metrics, end_ms) = &shared;
        run_worker(worker, spec, metrics, end_ms)
    })
    .map_err(RunError::Dataflow)?;
    for result in guards.join() {
        result.map_err(RunError::Dataflow)??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let end = *end_ms.lock().expect("end lock");
    let summary = Summary::from_metrics(&metrics, workers, elapsed, end);
    Ok(RunOutcome { summary, metrics })
}

fn run_worker(
    worker: &mut timely::worker::Worker,
    spec: &RunSpec,
    metrics: &Arc<Metrics>,
    end_ms: &std::sync::Mutex<Option<i64>>,
) -> Result<(), RunError> {
    let index = worker.index();
    let peers = worker.peers();
    let config = &spec.config;
    let sink: Rc<RefCell<Box<dyn WorkerSink>>> = Rc::new(RefCell::new((spec.sinks)(index)));
    let wants_changes = sink.borrow().wants_changes();
    let probe = ProbeHandle::new();
    let device_count = Rc::new(Cell::new(0usize));
    let window_spec = WindowSpec::from_config(config);

    let (mut input, trace) = worker.dataflow::<u64, _, _>(|scope| {
        let (input, events) = scope.new_input::<(u64, Event)>();
        let (changes, rows) = window_stats(events, window_spec, device_count.clone());
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
            changes.inspect_batch(move |_t, batch| change_sink.borrow_mut().changes(batch))
        } else {
            changes
        };
        let arranged = changes.arrange_by_key_named("features");
        arranged.stream.clone().probe_with(&probe);
        (input, arranged.trace)
    });
    let mut store = FeatureStore::new(trace);

    // Who reads what: a file input is read by every worker (each decodes its share);
    // stdin only by worker 0.
    let (mut reader, readers, reader_index) = match &spec.input {
        InputSpec::Stdin if index != 0 => (RecordReader::empty(), 1, 0),
        InputSpec::Stdin => (RecordReader::new(&spec.input, spec.format, config.input.max_record_bytes, Arc::new(AtomicU64::new(0))), 1, 0),
        other => (RecordReader::new(other, spec.format, config.input.max_record_bytes, Arc::new(AtomicU64::new(0))), peers as u64, index as u64),
    };
    let progress = (spec.progress && index == 0).then(|| Progress::new(spec.input.total_bytes()));

    let mut watermark = Watermark::new(config);
    let mut record_index: u64 = 0;
    let mut batch: Vec<(u64, Event)> = Vec::with_capacity(config.input.batch_records);
    let raw_limit = config.output.reject_raw_bytes;
    let snapshot_every = config.output.snapshot_every.0 / config.tick_ms();
    let mut next_snapshot: Option<u64> = None;
    let (mut read, mut accepted, mut corrected) = (0u64, 0u64, 0u64);
    let mut rejects: Vec<Reject> = Vec::new();

    loop {
        let more = reader.next_batch(config.input.batch_records, |record| {
            let owner = record_index % readers == reader_index;
            record_index += 1;
            let peeked = record.decoder.peek_ts(record.bytes);
            if owner {
                read += 1;
                match record.decoder.decode(record.bytes) {
                    Err(e) => rejects.push(Reject::new(record.source, record.line, e, record.bytes, raw_limit)),
                    Ok(event) => match watermark.classify(event.ts_ms) {
                        Placement::OnTime(t) => {
                            accepted += 1;
                            batch.push((t, event));
                        }
                        Placement::Corrected(t) => {
                            accepted += 1;
                            corrected += 1;
                            batch.push((t, event));
                        }
                        Placement::Late => {
                            let max = watermark.max_ts().unwrap_or(event.ts_ms);
                            let e = DecodeError::new(
                                RejectReason::Late,
                                format!(
                                    "ts {} is {} ms behind the highest time seen ({max}); allowed lateness is {} ms",
                                    event.ts_ms,
                                    max - event.ts_ms,
                                    config.time.lateness.0
                                ),
                            );
                            rejects.push(Reject::new(record.source, record.line, e, record.bytes, raw_limit));
                        }
                    },
                }
            }
            if let Some(ts) = peeked {
                watermark.observe(ts);
            }
        })?;
        metrics.read.fetch_add(std::mem::take(&mut read), Relaxed);
        metrics.accepted.fetch_add(std::mem::take(&mut accepted), Relaxed);
        metrics.late_corrected.fetch_add(std::mem::take(&mut corrected), Relaxed);
        for r in rejects.drain(..) {
            metrics.reject(r.reason);
            sink.borrow_mut().reject(r);
        }
        if !batch.is_empty() {
            input.send_batch(&mut batch);
        }
        if let Some(t) = watermark.tick() {
            if t > *input.time() {
                input.advance_to(t);
            }
            if next_snapshot.is_none() && snapshot_every > 0 {
                next_snapshot = Some((t / snapshot_every + 1) * snapshot_every - 1);
                store.pin(next_snapshot);
            }
        }
        if let Some(m) = watermark.max_ts() {
            metrics.max_event_ms.fetch_max(m.max(0) as u64, Relaxed);
        }
        if !more {
            break;
        }
        // Keep the dataflow close behind the input: memory stays bounded by the lateness.
        worker.step();
        while probe.less_than(input.time()) {
            worker.step();
        }
        let complete = probe.with_frontier(|f| f.first().copied()).unwrap_or(u64::MAX);
        while let Some(s) = next_snapshot.filter(|&s| s < complete) {
            let states = store.read_at(s);
            metrics.features_written.fetch_add(states.len() as u64, Relaxed);
            sink.borrow_mut().features(s, false, &states);
            next_snapshot = Some(s + snapshot_every);
            store.pin(next_snapshot);
        }
        store.advance(complete);
        metrics.frontier_tick.fetch_max(complete, Relaxed);
        if let Some(p) = &progress {
            p.update(&reader_bytes(&reader), metrics);
        }
    }

    // End of input: complete everything through T_end, snapshot the features as of T_end,
    // then close the input (open tumbling periods are closed and written).
    tracing::debug!(worker = index, t_end = ?watermark.end_tick(), "input exhausted");
    if let Some(t_end) = watermark.end_tick() {
        store.pin(Some(t_end));
        if t_end + 1 > *input.time() {
            input.advance_to(t_end + 1);
        }
        while probe.less_than(input.time()) {
            worker.step();
        }
        let states = store.read_at(t_end);
        metrics.features_written.fetch_add(states.len() as u64, Relaxed);
        sink.borrow_mut().features(t_end, true, &states);
        if index == 0 {
            let tick = config.tick_ms() as i64;
            *end_ms.lock().expect("end lock") = Some((t_end as i64 + 1) * tick - 1);
        }
    }
    tracing::debug!(worker = index, "final snapshot written; closing the input");
    drop(input);
    while worker.step_or_park(Some(Duration::from_millis(10))) {}
    tracing::debug!(worker = index, "dataflow complete");
    metrics.devices.fetch_add(device_count.get() as u64, Relaxed);
    if let Some(p) = progress {
        p.finish();
    }
    let result = sink.borrow_mut().finish();
    result.map_err(RunError::Output)
}

fn reader_bytes(_reader: &RecordReader) -> u64 {
    0
}

/// Progress on a terminal (a bar) or in the log (a line every 10 s).
struct Progress {
    bar: indicatif::ProgressBar,
    started: Instant,
    last_log: Cell<Instant>,
}

impl Progress {
    fn new(total_bytes: Option<u64>) -> Self {
        let bar = indicatif::ProgressBar::with_draw_target(total_bytes, indicatif::ProgressDrawTarget::stderr());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        Progress {
            bar,
            started: Instant::now(),
            last_log: Cell::new(Instant::now()),
        }
    }

    fn update(&self, _bytes: &u64, metrics: &Metrics) {
        let read = metrics.read.load(Relaxed);
        let rate = read as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        let msg = format!("{read} events, {} rejected, {rate:.0} events/s", metrics.rejected_total());
        if self.bar.is_hidden() {
            if self.last_log.get().elapsed() >= Duration::from_secs(10) {
                self.last_log.set(Instant::now());
                tracing::info!(events = read, rejected = metrics.rejected_total(), rate = rate as u64, "progress");
            }
        } else {
            self.bar.set_message(msg);
            self.bar.tick();
        }
    }

    fn finish(self) {
        self.bar.finish_and_clear();
    }
}
