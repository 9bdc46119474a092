//! Observers of the model composed as pairs see every call, in the order the model makes them.

use flight_recorder_test_support as common;

use common::{Ev, TraceBuilder, ORIGIN_TICKS};
use flight_recorder_analysis::drive::drive;
use flight_recorder_analysis::merge::{Ev as MergedEvent, MergeOptions, Names, OrderedEvents};
use flight_recorder_analysis::model::{
    EdgeStats, Note, Observer, OpenRegion, PollBegin, PollEnd, RegionSpan, TaskDone, UserTaskSpan,
};
use flight_recorder_format::{EventKind, TraceReader};

/// Writes down every call it gets.
#[derive(Default)]
struct Log(Vec<String>);

impl Observer for Log {
    fn event(&mut self, _: &dyn Names, ev: &MergedEvent) {
        self.0.push(format!("event {}", ev.kind));
    }
    fn poll_begin(&mut self, _: &dyn Names, poll: &PollBegin) {
        self.0.push(format!("poll_begin {}", poll.task.id));
    }
    fn poll_end(&mut self, _: &dyn Names, poll: &PollEnd, _: &[OpenRegion], _: &[Note]) {
        self.0.push(format!("poll_end {}", poll.task.id));
    }
    fn region_begin(&mut self, _: &dyn Names, region: &OpenRegion) {
        self.0.push(format!("region_begin {}", region.name));
    }
    fn region_end(&mut self, _: &dyn Names, region: &RegionSpan) {
        self.0.push(format!("region_end {}", region.name));
    }
    fn user_task_begin(&mut self, _: &dyn Names, id: u64, _: u64, _: u64, _: u64) {
        self.0.push(format!("user_task_begin {id}"));
    }
    fn user_task_end(&mut self, _: &dyn Names, task: &UserTaskSpan) {
        self.0.push(format!("user_task_end {}", task.id));
    }
    fn task_done(&mut self, _: &dyn Names, task: &TaskDone) {
        self.0.push(format!("task_done {}", task.task.id));
    }
    fn busy(&mut self, thread: u64, start: u64, end: u64) {
        self.0.push(format!("busy {thread} {start} {end}"));
    }
    fn finish(&mut self, _: &dyn Names, window: Option<(u64, u64)>, _: &EdgeStats) {
        self.0.push(format!("finish {window:?}"));
    }
}

fn trace() -> Vec<u8> {
    let mut b = TraceBuilder::standard(
        &[(1, "handle_request"), (2, "request")],
        &[(1, "src/main.rs", 10, 5)],
        &[(1, 101, "worker")],
    );
    b.chunk(
        1,
        ORIGIN_TICKS + 1_000,
        &[
            Ev::new(EventKind::RuntimeThread, 0, &[1, 0]),
            Ev::new(EventKind::WorkerUnpark, 1, &[]),
            Ev::new(EventKind::UserTaskBegin, 1, &[7, 0, 2]),
            Ev::new(EventKind::TaskSpawn, 1, &[1, 1, 0]),
            Ev::new(EventKind::PollStart, 10, &[1]),
            Ev::new(EventKind::RegionBegin, 3, &[1, 7]),
            Ev::new(EventKind::RegionEnd, 5, &[1, 7]),
            Ev::new(EventKind::PollEnd, 5, &[1, 1]),
            Ev::new(EventKind::UserTaskEnd, 1, &[7]),
            Ev::new(EventKind::WorkerPark, 1, &[]),
        ],
    );
    b.finish()
}

fn run<O: Observer>(observer: &mut O) {
    let bytes = trace();
    let reader = TraceReader::new(&bytes[..]).unwrap();
    let mut events = OrderedEvents::new(reader, MergeOptions::default());
    assert!(drive(&mut events, observer, &mut |_| {}).is_none());
}

#[test]
fn a_pair_passes_every_call_to_both_in_order() {
    let mut alone = Log::default();
    run(&mut alone);
    assert!(alone.0.len() > 12, "{:?}", alone.0);

    let mut pair = (Log::default(), (Log::default(), Log::default()));
    run(&mut pair);
    assert_eq!(pair.0 .0, alone.0);
    assert_eq!(pair.1 .0 .0, alone.0);
    assert_eq!(pair.1 .1 .0, alone.0);
}
