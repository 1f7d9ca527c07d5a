//! The query dataflow: one per worker, built before the main dataflow and handed handles
//! on its arrangements' traces once that is built ([`Queries::attach`]); the reads
//! themselves are in [`super::reader`].
//!
//! Shape: two inputs of [`QueryMsg`] at tick `T` — point queries, exchanged by the device's
//! key hash (the very placement `arrange_by_key` uses, so they land on the worker that owns
//! the device), and listings, broadcast to every worker — feed one reader operator, which
//! reads its worker's shard of the features / anomalies / history traces at exactly the
//! message's time `T` and sends a [`Reply`] exchanged back to the origin worker.
//!
//! Invariants: a query is sent at a tick the main dataflow has completed on every worker
//! (`complete - 1`, and the completed frontier is global), so every owner's trace holds all
//! updates at or before it; the reader's trace handles compact only to the reader's input
//! frontier, so no query can arrive for a time that was compacted away, and they release
//! everything once the query inputs close. Every worker advances its query inputs each
//! step; every worker takes the queries of its own inbox of the [`Hub`] and is their origin.
//! What a worker answers on its own (its own devices, in-process listings) never enters
//! this dataflow ([`super::poll`], [`super::gather`]): it is read from the worker's shard
//! through handles of its own, at a tick this dataflow could read too, so the answer is the
//! one the reader operator would give, sooner. The query dataflow is built before the main one, so every
//! worker step runs it first, and the replies' sink answers a query as soon as its last part
//! arrives: a hop waits for the end of the current step, not for another step of ingestion.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use differential_dataflow::hashable::Hashable;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::vec::input::Input;
use timely::dataflow::operators::vec::{Broadcast, Map};
use timely::dataflow::operators::{Capability, Concat, Exchange};
use timely::dataflow::InputHandleVec;

use super::poll::Local;
use super::reader::{QueryTraces, Reader};
use super::render::Renderer;
use super::{Hub, Part, Query, QueryMsg, Reply};
use crate::config::Config;
use crate::features::FeatureLayout;

/// A query the origin waits on.
struct Waiting {
    query: Query,
    reply: super::AnswerTo,
    tick: u64,
    expected: usize,
    parts: Vec<Part>,
    sent: Instant,
}

/// The queries a worker sent into the dataflow and waits on. Shared with the replies'
/// sink operator, which answers a query as soon as its last part arrives, within the step.
struct Outstanding {
    waiting: HashMap<u64, Waiting>,
    renderer: Rc<Renderer>,
    retrain: Arc<super::models::RetrainSpec>,
}

impl Outstanding {
    /// Files a part; answers its query when it was the last one.
    fn receive(&mut self, reply: Reply) {
        tracing::trace!(seq = reply.seq, tick = reply.tick, "a part of an answer");
        let Some(w) = self.waiting.get_mut(&reply.seq) else {
            return;
        };
        debug_assert_eq!(reply.tick, w.tick);
        w.parts.push(reply.part);
        if w.parts.len() < w.expected {
            return;
        }
        if let Some(w) = self.waiting.remove(&reply.seq) {
            if let Query::Retrain { promote } = w.query {
                // Training takes seconds: off the worker's thread.
                super::models::retrain_in_background(self.retrain.clone(), w.tick, promote, w.parts, w.reply);
            } else {
                let answer = self.renderer.render(&w.query, w.tick, w.parts);
                w.reply.send(answer);
            }
        }
    }
}

/// The query side of one worker.
struct Engine {
    point: InputHandleVec<u64, QueryMsg>,
    wide: InputHandleVec<u64, QueryMsg>,
    outstanding: Rc<RefCell<Outstanding>>,
    hub: Arc<Hub>,
    /// What the worker answers on its own (also from inside a step: [`super::poll`]).
    local: Rc<RefCell<Local>>,
    /// The query dataflow's reader (filled by [`Queries::attach`]).
    reader: Rc<RefCell<Option<Reader>>>,
    next_seq: u64,
    index: u64,
    peers: usize,
    layout: Arc<FeatureLayout>,
    tick_ms: i64,
    timeout: Duration,
}

impl Drop for Engine {
    fn drop(&mut self) {
        Local::uninstall(&self.local);
    }
}

/// A worker's query engine (inert when the run does not serve).
pub struct Queries {
    engine: Option<Engine>,
}

impl Queries {
    /// No queries (`--serve off`, library runs).
    pub fn none() -> Self {
        Queries { engine: None }
    }

    /// Builds the query dataflow on this worker. `hub`: the process's server; `traces`:
    /// handles on the main dataflow's arrangements (both None when not serving).
    pub fn new(worker: &mut timely::worker::Worker, hub: Option<Arc<Hub>>, config: &Config) -> Self {
        let Some(hub) = hub else {
            return Queries::none();
        };
        let index = worker.index() as u64;
        let peers = worker.peers();
        let layout = Arc::new(FeatureLayout::new(config));
        let renderer = Rc::new(Renderer::new(config, layout.clone()));
        let local_index = worker.index().saturating_sub(hub.placement().first);
        let local = Rc::new(RefCell::new(Local::new(
            hub.take_receiver(worker.index()),
            renderer.clone(),
            (worker.index(), peers),
            (hub.ticks.clone(), local_index),
        )));
        let outstanding = Rc::new(RefCell::new(Outstanding {
            waiting: HashMap::new(),
            renderer,
            retrain: Arc::new(super::models::RetrainSpec::new(config, &layout)),
        }));
        let sink = outstanding.clone();
        // Filled by `attach` once the main dataflow is built (before the worker first steps).
        let reader: Rc<RefCell<Option<Reader>>> = Rc::new(RefCell::new(None));
        let attach_reader = reader.clone();
        // Queries that arrived before the reader (none should: kept, not dropped).
        let mut early: Vec<(Capability<u64>, Vec<QueryMsg>)> = Vec::new();
        let (point, wide) = worker.dataflow::<u64, _, _>(|scope| {
            let (point, point_stream) = scope.new_input::<QueryMsg>();
            let (wide, wide_stream) = scope.new_input::<QueryMsg>();
            point_stream
                // An operator between the input and the exchange: fed straight from an input
                // handle, the exchange did not deliver to other workers until the next epoch.
                .map(|m| m)
                .exchange(|m: &QueryMsg| m.query.device().map_or(0, |d| d.hashed()))
                .concat(wide_stream.broadcast())
                .unary_frontier::<CapacityContainerBuilder<Vec<Reply>>, _, _, _>(
                    Pipeline,
                    "QueryRead",
                    move |_cap, _info| {
                        move |(input, frontier), output| {
                            let mut reader = reader.borrow_mut();
                            let Some(reader) = reader.as_mut() else {
                                input.for_each(|cap, data| {
                                    if let Some(cap) = cap.retain_least(0) {
                                        early.push((cap, std::mem::take(data)));
                                    }
                                });
                                return;
                            };
                            for (cap, mut data) in early.drain(..) {
                                let at = *cap.time();
                                let mut session = output.session(&cap);
                                for msg in data.drain(..) {
                                    session.give(reader.reply(msg, at));
                                }
                            }
                            input.for_each(|cap, data| {
                                let at = cap.least().copied().unwrap_or_default();
                                let mut session = output.session(&cap);
                                for msg in data.drain(..) {
                                    session.give(reader.reply(msg, at));
                                }
                            });
                            reader.compact(frontier.frontier());
                        }
                    },
                )
                .exchange(|r: &Reply| r.origin)
                .sink(Pipeline, "QueryReplies", move |(input, _frontier)| {
                    let mut outstanding = sink.borrow_mut();
                    input.for_each(|_cap, data| {
                        for reply in data.drain(..) {
                            outstanding.receive(reply);
                        }
                    });
                });
            (point, wide)
        });
        Local::install(&local);
        Queries {
            engine: Some(Engine {
                point,
                wide,
                outstanding,
                local,
                reader: attach_reader,
                next_seq: 0,
                index,
                peers,
                layout: layout.clone(),
                tick_ms: config.tick_ms() as i64,
                timeout: config.server.timeout.as_duration(),
                hub,
            }),
        }
    }

    /// Hands the query dataflow the main dataflow's arrangements; call right after building
    /// the main dataflow, before the worker steps. (The query dataflow is built first so
    /// that each worker step runs it before the main dataflow: a query's hops wait for the
    /// end of a step, not for another whole step of ingestion.)
    pub fn attach(&mut self, traces: Option<QueryTraces>) {
        let (Some(e), Some(traces)) = (self.engine.as_mut(), traces) else {
            return;
        };
        let own = Reader::new(traces.clone(), e.layout.clone(), e.tick_ms);
        let lister = Reader::new(traces.clone(), e.layout.clone(), e.tick_ms);
        e.local.borrow_mut().attach(own, lister);
        *e.reader.borrow_mut() = Some(Reader::new(traces, e.layout.clone(), e.tick_ms));
    }

    /// Whether this run serves queries.
    pub fn enabled(&self) -> bool {
        self.engine.is_some()
    }

    /// Whether queries are arriving at this process now (see [`Hub::recently_queried`]).
    pub fn busy(&self) -> bool {
        self.engine.as_ref().is_some_and(|e| e.hub.recently_queried())
    }

    /// Advances the query inputs to the last complete tick (`complete` is the main
    /// dataflow's frontier: every tick below it is final), sends the queries that arrived
    /// and hands out the answers that are complete. Call often; it does not step the worker.
    pub fn step(&mut self, complete: u64) {
        let Some(e) = self.engine.as_mut() else { return };
        if complete > 0 && complete != u64::MAX {
            let t = complete - 1;
            if t > *e.point.time() {
                e.point.advance_to(t);
                e.wide.advance_to(t);
            }
        }
        let tick = *e.point.time();
        let mut local = e.local.borrow_mut();
        local.advance((complete > 0).then_some(tick));
        // Answers what the worker can on its own; the rest crosses the query dataflow.
        let deferred = local.take_deferred();
        drop(local);
        // The parts of listings that wait (read with the worker's state borrowed no more).
        super::poll::poll();
        let mut sent = false;
        for p in deferred {
            let seq = e.next_seq;
            e.next_seq += 1;
            let msg = QueryMsg {
                origin: e.index,
                seq,
                query: p.query.clone(),
            };
            let expected = if p.query.device().is_some() {
                e.point.send(msg);
                1
            } else {
                e.wide.send(msg);
                e.peers
            };
            sent = true;
            tracing::trace!(seq, tick, expected, "query sent");
            e.outstanding.borrow_mut().waiting.insert(
                seq,
                Waiting {
                    query: p.query,
                    reply: p.reply,
                    tick,
                    expected,
                    parts: Vec::new(),
                    sent: Instant::now(),
                },
            );
        }
        if sent {
            e.point.flush();
            e.wide.flush();
        }
        // Queries some worker never answered (a process gone): their clients had a 503.
        let limit = e.timeout * 2;
        let mut outstanding = e.outstanding.borrow_mut();
        if !outstanding.waiting.is_empty() {
            outstanding.waiting.retain(|_, w| w.sent.elapsed() < limit);
        }
    }

    /// After the input is done: keeps answering at `complete` until the hub is stopped,
    /// then closes the query inputs. Returns at once when the run does not serve.
    pub fn serve_until_stopped(mut self, worker: &mut timely::worker::Worker, complete: u64) {
        if let Some(e) = self.engine.as_ref() {
            e.hub.set_input_done();
            e.hub
                .metrics
                .frontier_tick
                .fetch_max(complete, std::sync::atomic::Ordering::Relaxed);
        }
        while self.engine.as_ref().is_some_and(|e| !e.hub.stopping()) {
            self.step(complete);
            worker.step_or_park(Some(Duration::from_millis(50)));
        }
        self.step(complete);
        self.engine = None;
    }
}
