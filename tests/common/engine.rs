//! Running the engine in-process and reading back what it produced, for comparisons with
//! the oracle and golden files.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vigil::config::Config;
use vigil::decode::Format;
use vigil::event::DeviceId;
use vigil::output::{CaptureSink, Captured};
use vigil::pipeline::{run, RunOutcome, RunSpec};
use vigil::source::file::InputSpec;
use vigil::window::{DeviceState, DeviceWindows};

/// Runs the pipeline over in-memory bytes with `workers` threads, capturing everything.
pub fn run_captured(config: &Config, data: &[u8], format: Option<Format>, workers: usize) -> (RunOutcome, Captured) {
    run_serving(config, data, format, workers, None)
}

/// As [`run_captured`], serving queries on `serve`: the outcome's `serving` answers about
/// the finished run until it is stopped or dropped.
pub fn run_serving(
    config: &Config,
    data: &[u8],
    format: Option<Format>,
    workers: usize,
    serve: Option<std::net::SocketAddr>,
) -> (RunOutcome, Captured) {
    let captured = Arc::new(Mutex::new(Captured::default()));
    let outcome = run(RunSpec {
        config: config.clone(),
        input: InputSpec::Memory {
            name: "input".into(),
            data: Arc::new(data.to_vec()),
        },
        format,
        workers,
        sinks: CaptureSink::factory(captured.clone()),
        progress: false,
        cluster: None,
        serve,
    })
    .expect("engine run");
    let captured = std::mem::take(&mut *captured.lock().unwrap());
    (outcome, captured)
}

/// The collection's content at every tick of `ticks` (ascending), from captured changes.
pub fn states_at(
    changes: &[((DeviceId, DeviceState), u64, isize)],
    ticks: &[u64],
) -> Vec<BTreeMap<DeviceId, DeviceWindows>> {
    let mut sorted: Vec<_> = changes.to_vec();
    sorted.sort_by_key(|(_, t, _)| *t);
    let mut acc: BTreeMap<(DeviceId, DeviceState), isize> = BTreeMap::new();
    let mut next = 0;
    let mut out = Vec::new();
    for &t in ticks {
        while next < sorted.len() && sorted[next].1 <= t {
            let (record, _, diff) = &sorted[next];
            let e = acc.entry(record.clone()).or_insert(0);
            *e += diff;
            if *e == 0 {
                acc.remove(record);
            }
            next += 1;
        }
        let mut state = BTreeMap::new();
        for ((device, windows), count) in &acc {
            assert_eq!(*count, 1, "device {device} has multiplicity {count} at tick {t}");
            assert!(
                state.insert(device.clone(), DeviceWindows::clone(windows)).is_none(),
                "device {device} twice at tick {t}"
            );
        }
        out.push(state);
    }
    out
}
