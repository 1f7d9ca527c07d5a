//! Where a query's answer goes: a channel a thread waits on, or a callback that hands it
//! straight to the HTTP event loop (no thread waits for a query then).
//!
//! Invariants: the first answer sent wins and later ones are dropped (a gather whose part
//! failed may still try to render); clones share that one destination; sending never
//! blocks the worker that answers; a callback whose every clone is dropped unanswered (the
//! worker holding the query is gone) is called with a 503, as a waiting channel sees its
//! sender disconnect.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use super::Answer;

type Callback = Box<dyn FnOnce(Answer) + Send>;

enum Destination {
    Channel(SyncSender<Answer>),
    Callback(Callback),
}

/// The destination of one query's answer.
#[derive(Clone)]
pub struct AnswerTo {
    destination: Arc<Slot>,
}

struct Slot(Mutex<Option<Destination>>);

impl Slot {
    fn take(&self) -> Option<Destination> {
        match self.0.lock() {
            Ok(mut d) => d.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(Destination::Callback(f)) = self.take() {
            f(Answer::error(
                503,
                "the engine dropped this query unanswered (a worker is gone or shutting down)",
                &[],
            ));
        }
    }
}

impl AnswerTo {
    /// An answer a thread waits for on the returned receiver.
    pub fn channel() -> (AnswerTo, Receiver<Answer>) {
        let (tx, rx) = mpsc::sync_channel(1);
        (AnswerTo::new(Destination::Channel(tx)), rx)
    }

    /// An answer handed to `callback`, on the thread that answers.
    pub fn callback(callback: impl FnOnce(Answer) + Send + 'static) -> AnswerTo {
        AnswerTo::new(Destination::Callback(Box::new(callback)))
    }

    fn new(destination: Destination) -> AnswerTo {
        AnswerTo {
            destination: Arc::new(Slot(Mutex::new(Some(destination)))),
        }
    }

    /// Sends the answer, unless one was sent already.
    pub fn send(&self, answer: Answer) {
        match self.destination.take() {
            Some(Destination::Channel(tx)) => {
                let _ = tx.try_send(answer);
            }
            Some(Destination::Callback(f)) => f(answer),
            None => {}
        }
    }
}

impl std::fmt::Debug for AnswerTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AnswerTo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_answer_wins_through_every_clone() {
        let (to, rx) = AnswerTo::channel();
        let clone = to.clone();
        clone.send(Answer::error(503, "first", &[]));
        to.send(Answer::error(500, "second", &[]));
        assert_eq!(rx.try_recv().expect("answered").status, 503);
        assert!(rx.try_recv().is_err(), "one answer only");

        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let to = AnswerTo::callback(move |a| sink.lock().unwrap().push(a.status));
        to.clone().send(Answer::error(404, "x", &[]));
        to.send(Answer::error(500, "y", &[]));
        assert_eq!(*got.lock().unwrap(), vec![404]);
    }

    #[test]
    fn a_callback_dropped_unanswered_is_told_503() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        let to = AnswerTo::callback(move |a| sink.lock().unwrap().push(a.status));
        let clone = to.clone();
        drop(to);
        assert!(got.lock().unwrap().is_empty(), "a clone still holds it");
        drop(clone);
        assert_eq!(*got.lock().unwrap(), vec![503]);
    }
}
