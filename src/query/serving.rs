//! A finished run that goes on answering queries about what it found.
//!
//! Invariants: while a [`Serving`] lives, the workers keep their query dataflows and the
//! HTTP server answers at the run's final frontier; [`Serving::stop`] (or dropping it)
//! stops the server, lets every worker close its query inputs and joins them, so a test or
//! a `--exit-when-done` run never leaves threads behind.

use std::net::SocketAddr;

use super::Server;
use crate::pipeline::RunError;

type Guards = timely::communication::initialize::WorkerGuards<Result<(), RunError>>;

/// The server and the workers still answering.
pub struct Serving {
    server: Option<Server>,
    guards: Option<Guards>,
    addr: SocketAddr,
}

impl std::fmt::Debug for Serving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Serving").field("addr", &self.addr).finish()
    }
}

fn join(guards: Guards) -> Result<(), RunError> {
    for result in guards.join() {
        result.map_err(RunError::Dataflow)??;
    }
    Ok(())
}

impl Serving {
    /// Without a server: joins the workers (they are done) and returns None.
    pub fn start(server: Option<Server>, guards: Guards) -> Result<Option<Serving>, RunError> {
        match server {
            None => join(guards).map(|_| None),
            Some(server) => Ok(Some(Serving {
                addr: server.addr(),
                server: Some(server),
                guards: Some(guards),
            })),
        }
    }

    /// Tells clients (`/health`'s phase) that the run's outputs are written.
    pub fn outputs_written(&self) {
        if let Some(server) = &self.server {
            server.hub.set_outputs_written();
        }
    }

    /// The address the server answers on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process is ended (Ctrl-C) or [`super::Hub::stop`] is called.
    pub fn wait(mut self) -> Result<(), RunError> {
        let result = self.guards.take().map_or(Ok(()), join);
        if let Some(server) = self.server.take() {
            server.shutdown();
        }
        result
    }

    /// Stops serving and joins the workers.
    pub fn stop(mut self) -> Result<(), RunError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), RunError> {
        if let Some(server) = self.server.take() {
            server.hub.stop();
            let result = self.guards.take().map_or(Ok(()), join);
            server.shutdown();
            return result;
        }
        Ok(())
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
