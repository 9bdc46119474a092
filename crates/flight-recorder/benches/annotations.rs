//! The cost of annotations: a region begin and end, a log, a user task; and of a `tracing` span
//! enter + exit and an event through this crate's layer, next to `tracing` with no subscriber,
//! a bare `registry()`, and `registry()` with `tracing-chrome`'s layer, in the same process.
//!
//! The layer's own cost is printed in recorded events: (layer − bare `registry()`) divided by the
//! cost of one recorded event (a `region_begin` through `raw::record`, the kind and arguments the
//! layer records on a span's entry), from many short blocks of the three interleaved (the median
//! block of each, so that blocks a busy machine slowed down do not count).
//!
//! Run with `cargo bench -p flight-recorder --bench annotations` (`BENCH_ROUNDS`, default 11;
//! `BENCH_ITERS`, default 500000; `BENCH_BLOCKS`, default 2001 blocks of `BENCH_BLOCK`, default
//! 5000, operations for the layer's cost in events).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use flight_recorder::raw::{self, EventKind};
use flight_recorder::{FlightRecorder, FlightRecorderConfig, UserTask};
use tracing::dispatcher::{self, Dispatch};
use tracing_subscriber::prelude::*;

use common::{env_or, median};

fn per_op(iters: u64, work: impl FnOnce()) -> f64 {
    let start = Instant::now();
    work();
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// Span enter + exit under `dispatch`, ns per pair.
fn span_enter_exit(dispatch: &Dispatch, iters: u64) -> f64 {
    dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!("bench_span");
        per_op(iters, || {
            for _ in 0..iters {
                let _entered = span.enter();
                black_box(&span);
            }
        })
    })
}

/// The layer's cost over a bare registry, in recorded events: span enter + exit under `registry`
/// and under `ours`, and one recorded event, in `blocks` interleaved blocks of `block`
/// operations; the median block of each. Returns (registry ns, layer ns, event ns).
fn layer_in_events(
    registry: &Dispatch,
    ours: &Dispatch,
    name: u64,
    blocks: usize,
    block: u64,
) -> (f64, f64, f64) {
    let (mut bare, mut layer, mut event) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..blocks {
        bare.push(span_enter_exit(registry, block));
        layer.push(span_enter_exit(ours, block));
        event.push(per_op(block, || {
            for i in 0..block {
                raw::record(EventKind::RegionBegin, &[name, black_box(i & 1) + 1]);
            }
        }));
    }
    (median(bare), median(layer), median(event))
}

/// One `info!` event with a field inside a span under `dispatch`, ns per event.
fn event(dispatch: &Dispatch, iters: u64) -> f64 {
    dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!("bench_span");
        let _entered = span.enter();
        per_op(iters, || {
            for i in 0..iters {
                tracing::info!(request = i, "handled");
            }
        })
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("annotations: bench");
        return;
    }
    let rounds = env_or("BENCH_ROUNDS", 11) as usize;
    let iters = env_or("BENCH_ITERS", 500_000);
    let fr = FlightRecorder::new(FlightRecorderConfig {
        min_age: Duration::from_secs(10),
        max_bytes: 64 << 20,
        ..Default::default()
    });
    fr.start().expect("start");

    let chrome_dir = tempfile::tempdir().unwrap();
    let (chrome_layer, _chrome_guard) = tracing_chrome::ChromeLayerBuilder::new()
        .file(chrome_dir.path().join("chrome.json"))
        .build();
    let none = Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let registry = Dispatch::new(tracing_subscriber::registry());
    let ours = Dispatch::new(
        tracing_subscriber::registry().with(flight_recorder::tracing::FlightRecorderLayer::new()),
    );
    let chrome = Dispatch::new(tracing_subscriber::registry().with(chrome_layer));

    let mut rows: Vec<(&str, Vec<f64>)> = [
        "region begin + end",
        "log (16-byte message)",
        "user task begin + end",
        "one recorded event (raw region_begin)",
        "span enter + exit, no subscriber",
        "span enter + exit, registry()",
        "span enter + exit, registry() + this layer",
        "span enter + exit, registry() + tracing-chrome",
        "event, registry()",
        "event, registry() + this layer",
        "event, registry() + tracing-chrome",
    ]
    .into_iter()
    .map(|name| (name, Vec::new()))
    .collect();
    let name = raw::intern_str("bench_span");
    for _ in 0..rounds {
        let samples = [
            per_op(iters, || {
                for _ in 0..iters {
                    let _region = flight_recorder::region("bench_region");
                }
            }),
            per_op(iters, || {
                for _ in 0..iters {
                    flight_recorder::log("bench", "request handled");
                }
            }),
            per_op(iters, || {
                for _ in 0..iters {
                    UserTask::new("bench_task").end();
                }
            }),
            per_op(iters, || {
                for i in 0..iters {
                    raw::record(EventKind::RegionBegin, &[name, black_box(i & 1) + 1]);
                }
            }),
            span_enter_exit(&none, iters),
            span_enter_exit(&registry, iters),
            span_enter_exit(&ours, iters),
            span_enter_exit(&chrome, iters / 10),
            event(&registry, iters),
            event(&ours, iters),
            event(&chrome, iters / 10),
        ];
        // tracing-chrome writes its file from a thread of its own: let it finish before the next
        // round, so that it does not take a core from the next measurements.
        std::thread::sleep(Duration::from_millis(100));
        for (row, sample) in rows.iter_mut().zip(samples) {
            row.1.push(sample);
        }
    }
    let (bare, layer, event) = layer_in_events(
        &registry,
        &ours,
        name,
        env_or("BENCH_BLOCKS", 2001) as usize,
        env_or("BENCH_BLOCK", 5000),
    );
    fr.stop();
    // The paired figure: each round's (layer − registry()) / one event, then their median.
    let per_round: Vec<f64> = (0..rounds)
        .map(|r| (rows[6].1[r] - rows[5].1[r]) / rows[3].1[r])
        .collect();
    let paired = median(per_round);
    let medians: Vec<(&str, f64)> = rows.into_iter().map(|(n, v)| (n, median(v))).collect();
    let registry_span = medians[5].1;
    let registry_event = medians[8].1;
    println!("annotations: median of {rounds} rounds x {iters} operations (tracing-chrome: {} operations), flight recorder on", iters / 10);
    println!("{:<48} {:>9} {:>14}", "operation", "ns", "vs registry()");
    for (i, (name, ns)) in medians.iter().enumerate() {
        let ratio = match i {
            4..=7 => format!("{:.2}x", ns / registry_span),
            8..=10 => format!("{:.2}x", ns / registry_event),
            _ => String::new(),
        };
        println!("{name:<48} {ns:>9.1} {ratio:>14}");
    }
    let one_event = medians[3].1;
    let layer_span = medians[6].1;
    println!(
        "span enter + exit: the layer costs {:.1} ns over registry() = {:.2} recorded events ({:.1} ns each); median of the rounds' ratios {:.2}*",
        layer_span - registry_span,
        (layer_span - registry_span) / one_event,
        one_event,
        paired
    );
    println!(
        "in interleaved blocks: registry() {bare:.1} ns, + this layer {layer:.1} ns, one event {event:.1} ns: the layer costs {:.1} ns = {:.2} recorded events",
        layer - bare,
        (layer - bare) / event
    );
}
