//! A worker answers the point queries about devices it owns itself, from its own shard, and
//! does so not only between steps but also from inside long operator activations: the
//! window operator, the per-device detectors, the detectors' maps over every state change
//! and the model scoring call [`poll`] between items, so such a query waits for the next
//! item, not for the end of the step. The parts of listings gathered in-process
//! ([`super::gather`]) are read in the same polls, with a reader of their own, and a long
//! listing polls in turn, so point queries do not wait for it either.
//!
//! Invariants: a query is read at the tick the worker last advanced its query inputs to
//! ([`Local::tick`]), which the main dataflow has completed on every worker and which the
//! readers' trace handles never compact past; moving on in the middle of a step does not
//! change either, so the answer is the one the query dataflow would give at that tick. A
//! query [`poll`] cannot answer (a device of another worker, a listing in a multi-process
//! cluster, a retraining) is kept, in arrival order, for the worker's next
//! [`super::Queries::step`]; nothing is dropped.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use super::gather::{Gather, ReadTicks};
use super::reader::Reader;
use super::render::Renderer;
use super::{Answer, PendingQuery, Work};

thread_local! {
    /// The queries of the worker running on this thread (None: it does not serve).
    static LOCAL: RefCell<Option<Rc<RefCell<Local>>>> = const { RefCell::new(None) };
}

/// Answers the waiting point queries this worker owns, then reads the parts of listings
/// ([`super::gather`]) that wait for it. Cheap when nothing waits (a thread-local read and
/// an empty channel); call between items of long work. A listing's read calls it in turn,
/// so point queries are answered in the middle of a listing too.
pub fn poll() {
    let Some(local) = LOCAL.with(|l| l.try_borrow().ok().and_then(|l| l.clone())) else {
        return;
    };
    loop {
        let part = {
            // Borrowed already: this is a poll from inside a step's own query work.
            let Ok(mut local) = local.try_borrow_mut() else { return };
            local.poll();
            local.next_part()
        };
        let Some((gather, mut lister, renderer)) = part else {
            return;
        };
        gather.add(lister.answer(&gather.query, gather.tick), &renderer);
        match local.try_borrow_mut() {
            Ok(mut local) => local.lister = Some(lister),
            Err(_) => return,
        }
    }
}

/// How many items of each kind a long loop handles between two calls of [`poll`]: a few
/// microseconds of work each.
pub mod every {
    /// Devices (a detector's or the scoring's step for one device).
    pub const DEVICES: usize = 8;
    /// Input records decoded.
    pub const RECORDS: usize = 64;
    /// Trace entries read (listings, snapshots).
    pub const ENTRIES: usize = 512;
}

/// Calls [`poll`] once every `every` items; `done` counts the items done so far.
pub fn poll_every(done: usize, every: usize) {
    if done % every == every - 1 {
        poll();
    }
}

/// `logic` calling [`poll`] once every [`every::DEVICES`] records: for a detector's map over
/// every state change, which differential runs as one long activation per batch.
pub fn polling<A, B>(mut logic: impl FnMut(A) -> B) -> impl FnMut(A) -> B {
    let mut done = 0usize;
    move |record| {
        poll_every(done, every::DEVICES);
        done = done.wrapping_add(1);
        logic(record)
    }
}

/// The answer to a query that arrives before the main dataflow is built.
fn starting() -> Answer {
    Answer::error(503, "the engine is starting; try again", &[])
}

/// The part of a worker's query engine that answers on its own.
pub(super) struct Local {
    requests: Option<Receiver<Work>>,
    /// Queries taken from the inbox that go through the query dataflow, in arrival order.
    deferred: VecDeque<PendingQuery>,
    /// This worker's shard, through handles of its own (None until the main dataflow is
    /// built): the query dataflow's reader may be in the middle of a listing when a poll
    /// comes.
    reader: Option<Reader>,
    /// The same shard through other handles, for the parts of listings: out of its place
    /// while a part is read, so the polls inside that read answer point queries with
    /// `reader` and leave further parts waiting.
    lister: Option<Reader>,
    /// Parts of listings waiting for `lister`, in arrival order.
    parts: VecDeque<Arc<Gather>>,
    renderer: Rc<Renderer>,
    /// The tick queries are read at (None: no tick is complete yet).
    tick: Option<u64>,
    index: usize,
    peers: usize,
    /// The process's read ticks, and this worker's index among the local workers.
    ticks: Arc<ReadTicks>,
    local_index: usize,
}

impl Local {
    pub fn new(
        requests: Option<Receiver<Work>>,
        renderer: Rc<Renderer>,
        (index, peers): (usize, usize),
        (ticks, local_index): (Arc<ReadTicks>, usize),
    ) -> Self {
        Local {
            ticks,
            local_index,
            requests,
            deferred: VecDeque::new(),
            reader: None,
            lister: None,
            parts: VecDeque::new(),
            renderer,
            tick: None,
            index,
            peers,
        }
    }

    /// Hands over the readers (point queries, listings), once the main dataflow is built.
    pub fn attach(&mut self, reader: Reader, lister: Reader) {
        self.reader = Some(reader);
        self.lister = Some(lister);
    }

    /// Reads at `tick` from now on (None: no tick is complete yet); the reader's handles let
    /// the traces compact up to it.
    pub fn advance(&mut self, tick: Option<u64>) {
        if tick == self.tick {
            return;
        }
        self.tick = tick;
        if let Some(t) = tick {
            // Not past a tick an open gather still reads at.
            let upto = self.ticks.advance(self.local_index, t);
            let upto = [upto];
            for r in [self.reader.as_mut(), self.lister.as_mut()].into_iter().flatten() {
                r.compact(timely::progress::frontier::AntichainRef::new(&upto));
            }
        }
    }

    /// Makes `local` the one [`poll`] answers on this thread, until [`Local::uninstall`].
    pub fn install(local: &Rc<RefCell<Local>>) {
        LOCAL.with(|l| *l.borrow_mut() = Some(local.clone()));
    }

    /// Undoes [`Local::install`] of `local` (not of another one installed since).
    pub fn uninstall(local: &Rc<RefCell<Local>>) {
        LOCAL.with(|l| {
            if let Ok(mut l) = l.try_borrow_mut() {
                if l.as_ref().is_some_and(|installed| Rc::ptr_eq(installed, local)) {
                    *l = None;
                }
            }
        });
    }

    /// Answers what arrived and it can answer; keeps the rest for [`Local::take_deferred`].
    pub fn poll(&mut self) {
        let Some(rx) = self.requests.take() else { return };
        while let Ok(work) = rx.try_recv() {
            match work {
                Work::Query(p) => {
                    if let Some(p) = self.answer(p) {
                        self.deferred.push_back(p);
                    }
                }
                Work::Part(gather) if self.reader.is_none() => gather.fail(starting()),
                Work::Part(gather) => self.parts.push_back(gather),
            }
        }
        self.requests = Some(rx);
    }

    /// The oldest waiting part of a listing with the reader for it (taken out until it is
    /// put back), and the renderer; None while the reader is out or nothing waits.
    fn next_part(&mut self) -> Option<(Arc<Gather>, Reader, Rc<Renderer>)> {
        if self.parts.is_empty() {
            return None;
        }
        let lister = self.lister.take()?;
        let gather = self.parts.pop_front().expect("not empty");
        Some((gather, lister, self.renderer.clone()))
    }

    /// The queries for the query dataflow, oldest first (after a last [`Local::poll`]).
    pub fn take_deferred(&mut self) -> VecDeque<PendingQuery> {
        self.poll();
        std::mem::take(&mut self.deferred)
    }

    /// Answers `p` when this worker can on its own (returns it otherwise): a 503 before any
    /// tick is complete, a point query about a device this worker owns from its shard.
    fn answer(&mut self, p: PendingQuery) -> Option<PendingQuery> {
        let Some(tick) = self.tick else {
            p.reply.send(Answer::error(
                503,
                "no event time is complete yet; try again once data has arrived",
                &[],
            ));
            return None;
        };
        let owned = p
            .query
            .device()
            .is_some_and(|d| super::owner(d, self.peers) == self.index);
        if !owned {
            return Some(p);
        }
        let Some(reader) = self.reader.as_mut() else {
            p.reply.send(starting());
            return None;
        };
        let part = reader.answer(&p.query, tick);
        p.reply.send(self.renderer.render(&p.query, tick, vec![part]));
        None
    }
}
