//! Listings (`/top`, `/anomalies`) that one process answers on its own, when every worker
//! of the cluster runs in it: the HTTP thread hands each local worker a [`Gather`], each
//! reads its shard at the gather's tick from inside its next [`super::poll`], and the worker
//! adding the last part renders the answer. No trip through the query dataflow, whose hops
//! each wait for the end of a worker step.
//!
//! Invariants: a gather's tick is one every local worker can still read: [`ReadTicks`]
//! chooses it, under one lock, as the latest tick any worker reads at (complete on every
//! worker, since the completed frontier is global, and at or past every worker's
//! compaction), and no worker lets its handles compact past a tick a gather still reads at.
//! A gather's tick is released when the gather is dropped, that is once every worker has
//! read its part (or dropped its inbox). The parts are merged in worker-independent orders,
//! so the answer equals the query dataflow's at that tick.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::render::Renderer;
use super::{Answer, AnswerTo, Part, Query};

/// The ticks the local workers read at, and the ticks open gathers read at.
#[derive(Default)]
pub struct ReadTicks {
    inner: Mutex<TicksInner>,
}

#[derive(Default)]
struct TicksInner {
    /// Per local worker: the tick it reads point queries at (None: none complete yet).
    workers: Vec<Option<u64>>,
    /// Open gathers by tick.
    open: BTreeMap<u64, usize>,
}

impl ReadTicks {
    pub fn new(workers: usize) -> Self {
        ReadTicks {
            inner: Mutex::new(TicksInner {
                workers: vec![None; workers],
                open: BTreeMap::new(),
            }),
        }
    }

    /// Local worker `worker` reads at `tick` from now on; returns how far its handles may
    /// compact (not past an open gather's tick).
    pub fn advance(&self, worker: usize, tick: u64) -> u64 {
        let Ok(mut inner) = self.inner.lock() else {
            return 0;
        };
        if let Some(w) = inner.workers.get_mut(worker) {
            *w = Some(tick);
        }
        inner.open.keys().next().map_or(tick, |&open| open.min(tick))
    }

    /// Opens a gather: the tick it reads at (None until every local worker has a tick).
    fn open(&self) -> Option<u64> {
        let mut inner = self.inner.lock().ok()?;
        let mut latest = 0;
        for w in &inner.workers {
            latest = latest.max((*w)?);
        }
        *inner.open.entry(latest).or_insert(0) += 1;
        Some(latest)
    }

    fn close(&self, tick: u64) {
        if let Ok(mut inner) = self.inner.lock() {
            if let Some(n) = inner.open.get_mut(&tick) {
                *n -= 1;
                if *n == 0 {
                    inner.open.remove(&tick);
                }
            }
        }
    }
}

/// A listing every local worker reads its part of.
pub struct Gather {
    pub query: Query,
    pub tick: u64,
    reply: AnswerTo,
    parts: Mutex<Vec<Part>>,
    expected: usize,
    ticks: Arc<ReadTicks>,
}

impl Gather {
    /// A gather over `workers` parts, at a tick every local worker can read (None: no tick
    /// is complete on every worker yet).
    pub fn open(query: &Query, reply: &AnswerTo, workers: usize, ticks: &Arc<ReadTicks>) -> Option<Arc<Self>> {
        let tick = ticks.open()?;
        Some(Arc::new(Gather {
            query: query.clone(),
            tick,
            reply: reply.clone(),
            parts: Mutex::new(Vec::with_capacity(workers)),
            expected: workers,
            ticks: ticks.clone(),
        }))
    }

    /// Adds one worker's part; the last one renders the answer and sends it.
    pub fn add(&self, part: Part, renderer: &Renderer) {
        let Ok(mut parts) = self.parts.lock() else { return };
        parts.push(part);
        if parts.len() == self.expected {
            let parts = std::mem::take(&mut *parts);
            self.reply.send(renderer.render(&self.query, self.tick, parts));
        }
    }

    /// Answers with an error instead (a worker cannot read; the first error wins).
    pub fn fail(&self, answer: Answer) {
        self.reply.send(answer);
    }
}

impl Drop for Gather {
    fn drop(&mut self) {
        self.ticks.close(self.tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gather_reads_at_the_latest_tick_and_holds_compaction_until_dropped() {
        let ticks = Arc::new(ReadTicks::new(2));
        let (tx, rx) = AnswerTo::channel();
        let query = Query::Top { feature: 0, k: 1 };
        assert!(Gather::open(&query, &tx, 2, &ticks).is_none(), "no tick yet");
        assert_eq!(ticks.advance(0, 5), 5);
        assert!(Gather::open(&query, &tx, 2, &ticks).is_none(), "one worker has none");
        assert_eq!(ticks.advance(1, 7), 7);
        let gather = Gather::open(&query, &tx, 2, &ticks).expect("both have ticks");
        assert_eq!(gather.tick, 7, "the latest: at or past every worker's compaction");
        assert_eq!(ticks.advance(0, 9), 7, "held at the open gather's tick");
        let renderer = Renderer::new(
            &crate::config::Config::default(),
            Arc::new(crate::features::FeatureLayout::new(&crate::config::Config::default())),
        );
        gather.add(Part::Top(vec![]), &renderer);
        assert!(rx.try_recv().is_err(), "one part of two");
        gather.add(Part::Top(vec![]), &renderer);
        assert_eq!(rx.try_recv().expect("answered").status, 200);
        drop(gather);
        assert_eq!(ticks.advance(0, 9), 9, "released");
    }
}
