//! Running on several processes: the hostfile, timely's cluster configuration, and the
//! collective steps (barrier, sums) the pipeline needs across all workers.
//!
//! Invariants: process `p` of `n` listens on line `p` of the hostfile (`host:port`, in
//! process order; blank lines and `#` comments ignored); a hostfile with fewer usable lines
//! than processes, or a malformed line, is an error naming the file and line. Worker indices
//! are global (`process * workers + local`), so input ownership and output part names do not
//! depend on how workers are spread over processes.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use timely::dataflow::operators::vec::input::Input;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::ProbeHandle;

/// A problem with the cluster description.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("hostfile {path}: {message}")]
    Hostfile { path: String, message: String },
    #[error("cluster: {0}")]
    Invalid(String),
}

/// Where this process sits in a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSpec {
    /// Number of processes.
    pub processes: usize,
    /// This process's index.
    pub process: usize,
    /// `host:port` of every process, in process order.
    pub addresses: Vec<String>,
    /// How long the processes may take to connect to each other.
    pub connect_timeout: std::time::Duration,
}

impl ClusterSpec {
    /// Reads a hostfile and checks it describes `processes` processes and that `process` is one.
    pub fn from_hostfile(path: &Path, processes: usize, process: usize) -> Result<Self, ClusterError> {
        let text = std::fs::read_to_string(path).map_err(|e| ClusterError::Hostfile {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let addresses = parse_hostfile(&text).map_err(|message| ClusterError::Hostfile {
            path: path.display().to_string(),
            message,
        })?;
        Self::new(addresses, processes, process).map_err(|e| match e {
            ClusterError::Invalid(message) => ClusterError::Hostfile {
                path: path.display().to_string(),
                message,
            },
            other => other,
        })
    }

    /// Checks the numbers against the addresses (only the first `processes` are used).
    pub fn new(mut addresses: Vec<String>, processes: usize, process: usize) -> Result<Self, ClusterError> {
        if processes == 0 {
            return Err(ClusterError::Invalid("-n must be at least 1".into()));
        }
        if process >= processes {
            return Err(ClusterError::Invalid(format!(
                "-p {process} is not a process index of a {processes}-process cluster (0..{})",
                processes - 1
            )));
        }
        if addresses.len() < processes {
            return Err(ClusterError::Invalid(format!(
                "{} address(es) for {processes} processes: one host:port line per process is needed",
                addresses.len()
            )));
        }
        addresses.truncate(processes);
        Ok(ClusterSpec {
            processes,
            process,
            addresses,
            connect_timeout: std::time::Duration::from_secs(60),
        })
    }

    /// Addresses `127.0.0.1:base+i` for a local cluster (tests).
    pub fn local(processes: usize, process: usize, base_port: u16) -> Self {
        ClusterSpec {
            processes,
            process,
            addresses: (0..processes)
                .map(|i| format!("127.0.0.1:{}", base_port as usize + i))
                .collect(),
            connect_timeout: std::time::Duration::from_secs(60),
        }
    }

    /// timely's configuration for this process with `workers` threads.
    pub fn timely_config(&self, workers: usize) -> timely::Config {
        if self.processes == 1 {
            return timely::Config::process(workers);
        }
        timely::Config {
            communication: timely::CommunicationConfig::Cluster {
                threads: workers,
                process: self.process,
                addresses: self.addresses.clone(),
                report: false,
                zerocopy: false,
            },
            worker: timely::WorkerConfig::default(),
        }
    }
}

/// Parses `host:port` lines; blank lines and `#` comments are skipped.
pub fn parse_hostfile(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (host, port) = line
            .rsplit_once(':')
            .ok_or_else(|| format!("line {}: `{line}` is not host:port", i + 1))?;
        if host.is_empty() || port.parse::<u16>().is_err() {
            return Err(format!("line {}: `{line}` is not host:port (port 1..65535)", i + 1));
        }
        out.push(line.to_string());
    }
    Ok(out)
}

/// Hands every worker's `local` to `visit`, on every worker (a collective step: every worker
/// of every process must call it, in the same order): a one-shot dataflow that broadcasts
/// each worker's value to all and steps until all have arrived.
fn broadcast_each<T: timely::ExchangeData + Clone>(
    worker: &mut timely::worker::Worker,
    local: T,
    visit: impl FnMut(&T) + 'static,
) {
    let probe = ProbeHandle::new();
    let mut input = worker.dataflow::<u64, _, _>(|scope| {
        let (input, stream) = scope.new_input::<T>();
        stream.broadcast().inspect(visit).probe_with(&probe);
        input
    });
    input.send(local);
    input.advance_to(1);
    while probe.less_than(&1) {
        worker.step();
    }
    drop(input);
}

/// Element-wise sum of every worker's vector, known to every worker afterwards (a
/// collective step, see [`broadcast_each`]).
pub fn all_sum(worker: &mut timely::worker::Worker, local: Vec<u64>) -> Vec<u64> {
    let total = Rc::new(RefCell::new(vec![0u64; local.len()]));
    let seen = total.clone();
    broadcast_each(worker, local, move |v: &Vec<u64>| {
        for (a, b) in seen.borrow_mut().iter_mut().zip(v) {
            *a += b;
        }
    });
    let result = total.borrow().clone();
    result
}

/// The largest of every worker's value (None when all are None), known to every worker
/// afterwards (a collective step, see [`broadcast_each`]).
pub fn agree_max(worker: &mut timely::worker::Worker, local: Option<u64>) -> Option<u64> {
    let result = Rc::new(std::cell::Cell::new(None::<u64>));
    let seen = result.clone();
    broadcast_each(worker, local, move |v: &Option<u64>| {
        if let Some(v) = *v {
            seen.set(Some(seen.get().map_or(v, |s: u64| s.max(v))));
        }
    });
    result.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostfile_lines() {
        let hosts = parse_hostfile("# cluster\n127.0.0.1:2101\n\nhost-b:2102  # second\n").unwrap();
        assert_eq!(hosts, vec!["127.0.0.1:2101", "host-b:2102"]);
        assert!(parse_hostfile("127.0.0.1\n").unwrap_err().contains("line 1"));
        assert!(parse_hostfile("a:b\n").unwrap_err().contains("line 1"));
        assert!(ClusterSpec::new(hosts.clone(), 3, 0)
            .unwrap_err()
            .to_string()
            .contains("2 address"));
        assert!(ClusterSpec::new(hosts.clone(), 2, 2).is_err());
        assert_eq!(ClusterSpec::new(hosts, 1, 0).unwrap().addresses.len(), 1);
    }
}
