//! The history arrangement: closed tumbling rows keyed by device, kept for a bounded span
//! of event time, for `GET /devices/{id}/history`.
//!
//! Invariants: a row enters the collection at the tick its window closes (the last tick
//! inside it), so a read at tick `T` sees exactly the windows with `window_end <= end of T`;
//! it is retracted `history_retention` later, so memory is bounded by the retention, not the
//! length of the run. Rows of periods still open when a bounded input ends (written to
//! `windows.jsonl` as partial) close after `T_end` and are therefore never visible.

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::AsCollection;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;
use timely::dataflow::operators::Probe;
use timely::dataflow::StreamVec;

use crate::config::Config;
use crate::event::DeviceId;
use crate::window::WindowRow;

type HistoryUpdate = ((DeviceId, WindowRow), u64, isize);

/// The arranged history.
pub type HistoryTrace = TraceAgent<ValSpine<DeviceId, WindowRow, u64, isize>>;

/// Arranges the tumbling rows of the main dataflow by device, with retention. The arranged
/// stream joins `probe`, so a tick the main dataflow reports complete is in the history too.
pub fn arrange_history<'s>(
    rows: StreamVec<'s, u64, WindowRow>,
    config: &Config,
    probe: &timely::dataflow::ProbeHandle<u64>,
) -> HistoryTrace {
    let tick_ms = config.tick_ms() as i64;
    let retention = (config.server.history_retention.0 / config.tick_ms()).max(1);
    let arranged = rows
        .unary::<CapacityContainerBuilder<Vec<HistoryUpdate>>, _, _, _>(Pipeline, "HistoryRows", move |_cap, _info| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut session = output.session(&cap);
                    for row in data.drain(..) {
                        let close = ((row.window_end_ms / tick_ms) as u64)
                            .saturating_sub(1)
                            .max(cap.least().copied().unwrap_or_default());
                        let key = row.device.clone();
                        session.give(((key.clone(), row.clone()), close, 1isize));
                        session.give(((key, row), close.saturating_add(retention), -1isize));
                    }
                });
            }
        })
        .as_collection()
        .arrange_by_key_named("history");
    arranged.stream.clone().probe_with(probe);
    arranged.trace
}
