//! The handler threads: they run the requests that wait for an answer from the engine (a
//! query, a retraining, a read of the model registry) so the event loop never waits.
//!
//! Invariants: at least `min` threads live while the pool runs; a job that finds no idle
//! thread starts another, up to `max`; a thread above `min` idle for [`SPARE_IDLE`] leaves.
//! A job that panics is answered with a 500 (the thread goes on). Every finished job is
//! sent back with its connection's index and generation, and the loop is woken.
//! [`Pool::stop`] lets the running jobs finish, drops the queued ones and joins every thread.

use std::collections::VecDeque;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::head::HttpReply;

/// A thread above the minimum leaves after this long without a job.
const SPARE_IDLE: Duration = Duration::from_secs(30);

/// Work that answers one request.
pub type Work = Box<dyn FnOnce() -> HttpReply + Send>;

/// A request handed to the pool, and where its answer goes.
pub struct Job {
    pub index: usize,
    pub generation: u64,
    pub keep_alive: bool,
    pub head_only: bool,
    pub work: Work,
}

/// Hands one answer back to the event loop from whichever thread has it (an engine worker
/// answering a query), and wakes the loop: no thread waits for the answer meanwhile.
pub struct Responder {
    pub(super) index: usize,
    pub(super) generation: u64,
    pub(super) keep_alive: bool,
    pub(super) head_only: bool,
    pub(super) done: mpsc::Sender<Done>,
    pub(super) waker: Arc<mio::Waker>,
}

impl Responder {
    /// Sends the answer to the loop (dropped there when the connection closed or its
    /// request timed out meanwhile).
    pub fn send(self, reply: HttpReply) {
        let done = Done {
            index: self.index,
            generation: self.generation,
            keep_alive: self.keep_alive,
            head_only: self.head_only,
            reply,
        };
        if self.done.send(done).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// A finished job.
pub struct Done {
    pub index: usize,
    pub generation: u64,
    pub keep_alive: bool,
    pub head_only: bool,
    pub reply: HttpReply,
}

struct State {
    queue: VecDeque<Job>,
    idle: usize,
    live: usize,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    done: Mutex<mpsc::Sender<Done>>,
    waker: Arc<mio::Waker>,
    min: usize,
    max: usize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The handler threads.
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// Starts `min` threads (at most `max` later); finished jobs go to `done`, then `waker`.
    pub fn start(min: usize, max: usize, done: mpsc::Sender<Done>, waker: Arc<mio::Waker>) -> std::io::Result<Pool> {
        let min = min.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                idle: 0,
                live: 0,
                stop: false,
            }),
            ready: Condvar::new(),
            done: Mutex::new(done),
            waker,
            min,
            max: max.max(min),
            threads: Mutex::new(Vec::new()),
        });
        for _ in 0..min {
            if let Ok(mut state) = shared.state.lock() {
                state.live += 1;
            }
            spawn(&shared)?;
        }
        Ok(Pool { shared })
    }

    /// Queues a job; starts a thread when none is idle and the pool may grow.
    pub fn submit(&self, job: Job) {
        let grow = match self.shared.state.lock() {
            Ok(mut state) => {
                state.queue.push_back(job);
                let grow = state.idle < state.queue.len() && state.live < self.shared.max;
                if grow {
                    state.live += 1;
                }
                grow
            }
            Err(_) => return,
        };
        self.shared.ready.notify_one();
        if grow {
            if let Err(e) = spawn(&self.shared) {
                if let Ok(mut state) = self.shared.state.lock() {
                    state.live -= 1;
                }
                tracing::warn!(error = %e, "cannot start another query handler thread");
            }
        }
    }

    /// Lets running jobs finish, drops queued ones, joins the threads.
    pub fn stop(self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.stop = true;
            state.queue.clear();
        }
        self.shared.ready.notify_all();
        let threads: Vec<JoinHandle<()>> = match self.shared.threads.lock() {
            Ok(mut t) => t.drain(..).collect(),
            Err(_) => return,
        };
        for t in threads {
            let _ = t.join();
        }
    }
}

fn spawn(shared: &Arc<Shared>) -> std::io::Result<()> {
    let for_thread = shared.clone();
    let handle = std::thread::Builder::new()
        .name("vigil-http-handler".into())
        .spawn(move || run(&for_thread))?;
    if let Ok(mut t) = shared.threads.lock() {
        t.retain(|h| !h.is_finished());
        t.push(handle);
    }
    Ok(())
}

fn run(shared: &Shared) {
    loop {
        let job = {
            let Ok(mut state) = shared.state.lock() else { return };
            loop {
                if state.stop {
                    state.live -= 1;
                    return;
                }
                if let Some(job) = state.queue.pop_front() {
                    break job;
                }
                state.idle += 1;
                let (next, timeout) = match shared.ready.wait_timeout(state, SPARE_IDLE) {
                    Ok(r) => r,
                    Err(_) => return,
                };
                state = next;
                state.idle -= 1;
                if timeout.timed_out() && state.queue.is_empty() && state.live > shared.min {
                    state.live -= 1;
                    return;
                }
            }
        };
        let work = job.work;
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
            .unwrap_or_else(|_| HttpReply::error(500, "internal error while answering; the engine goes on"));
        let done = Done {
            index: job.index,
            generation: job.generation,
            keep_alive: job.keep_alive,
            head_only: job.head_only,
            reply,
        };
        if let Ok(tx) = shared.done.lock() {
            let _ = tx.send(done);
        }
        let _ = shared.waker.wake();
    }
}
