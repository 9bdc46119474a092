//! Observers of the model composed as pairs see every call, in the order the model makes them.

use flight_recorder_test_support as common;

use common::{Ev, TraceBuilder, ORIGIN_TICKS};
use flight_recorder_analysis::drive::drive;
use flight_recorder_analysis::merge::{Ev as MergedEvent, MergeOptions, Names, OrderedEvents};
use flight_recorder_analysis::model::{
    EdgeStats, Note, Observer, OpenRegion, PollBegin, PollEnd, RegionSpan, TaskDone, TaskWoken,
    UserTaskSpan,
};
use flight_recorder_format::{EventKind, TraceReader};

/// Writes down every call it gets.
#[derive(Default)]
struct Log(Vec<String>);

impl Observer for Log {
    fn event(&mut self, _: &dyn Names, ev: &MergedEvent) {
        self.0.push(format!("event {}", ev.kind));
    }
    fn task_woken(&mut self, _: &dyn Names, woken: &TaskWoken) {
        self.0
            .push(format!("task_woken {} by {}", woken.task, woken.wake.waker));
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
            Ev::new(EventKind::TaskWake, 2, &[2, 1]),
            Ev::new(EventKind::PollEnd, 5, &[1, 1]),
            Ev::new(EventKind::PollStart, 3, &[2]),
            Ev::new(EventKind::PollEnd, 4, &[2, 1]),
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
    assert!(
        alone.0.contains(&"task_woken 2 by 1".to_string()),
        "{:?}",
        alone.0
    );

    let mut pair = (Log::default(), (Log::default(), Log::default()));
    run(&mut pair);
    assert_eq!(pair.0 .0, alone.0);
    assert_eq!(pair.1 .0 .0, alone.0);
    assert_eq!(pair.1 .1 .0, alone.0);
}

/// Checks the model's task indices as each call gives them: one live task per index, the same
/// index from a task's first event to its end, and no index beyond the tasks alive at once.
#[derive(Default)]
struct Indices {
    /// Per index, the task holding it.
    live: Vec<Option<u64>>,
    /// Per task, the index it was first seen with.
    seen: std::collections::HashMap<u64, usize>,
    done: Vec<(u64, usize)>,
    wakes: usize,
}

impl Indices {
    fn holds(&mut self, task: u64, index: usize) {
        if self.live.len() <= index {
            self.live.resize(index + 1, None);
        }
        match self.live[index] {
            Some(holder) => assert_eq!(holder, task, "index {index} given to two live tasks"),
            None => {
                self.live[index] = Some(task);
                self.seen.insert(task, index);
            }
        }
        assert_eq!(
            self.seen[&task], index,
            "task {task} changed index while alive"
        );
    }
}

impl Observer for Indices {
    fn task_woken(&mut self, _: &dyn Names, woken: &TaskWoken) {
        self.wakes += 1;
        self.holds(woken.task, woken.task_index);
    }
    fn poll_begin(&mut self, _: &dyn Names, poll: &PollBegin) {
        self.holds(poll.task.id, poll.task_index);
    }
    fn task_done(&mut self, _: &dyn Names, task: &TaskDone) {
        self.holds(task.task.id, task.task_index);
        self.live[task.task_index] = None;
        self.seen.remove(&task.task.id);
        self.done.push((task.task.id, task.task_index));
    }
}

#[test]
fn task_indices_follow_each_task_from_its_wake_to_its_end_and_are_reused_after() {
    let mut b = TraceBuilder::standard(&[], &[(1, "src/main.rs", 10, 5)], &[(1, 101, "worker")]);
    b.chunk(
        1,
        ORIGIN_TICKS + 1_000,
        &[
            Ev::new(EventKind::TaskSpawn, 1, &[1, 1, 0]),
            Ev::new(EventKind::TaskSpawn, 1, &[2, 1, 0]),
            Ev::new(EventKind::PollStart, 1, &[1]),
            // Task 2 woken twice by task 1, and task 3, never seen, woken from outside a task.
            Ev::new(EventKind::TaskWake, 1, &[2, 1]),
            Ev::new(EventKind::TaskWake, 1, &[2, 1]),
            Ev::new(EventKind::TaskWake, 1, &[3, 0]),
            Ev::new(EventKind::PollEnd, 1, &[1, 1]),
            // Task 1 is done: its index may go to task 4.
            Ev::new(EventKind::TaskSpawn, 1, &[4, 1, 0]),
            Ev::new(EventKind::PollStart, 1, &[2]),
            Ev::new(EventKind::PollEnd, 1, &[2, 0]),
            Ev::new(EventKind::PollStart, 1, &[3]),
            Ev::new(EventKind::TaskWake, 1, &[2, 3]),
            Ev::new(EventKind::PollEnd, 1, &[3, 1]),
            Ev::new(EventKind::PollStart, 1, &[4]),
            Ev::new(EventKind::PollEnd, 1, &[4, 1]),
            Ev::new(EventKind::PollStart, 1, &[2]),
            Ev::new(EventKind::PollEnd, 1, &[2, 1]),
        ],
    );
    let bytes = b.finish();
    let reader = TraceReader::new(&bytes[..]).unwrap();
    let mut events = OrderedEvents::new(reader, MergeOptions::default());
    let mut indices = Indices::default();
    assert!(drive(&mut events, &mut indices, &mut |_| {}).is_none());
    assert_eq!(indices.wakes, 4);
    let mut done = indices.done.clone();
    done.sort_unstable();
    let tasks: Vec<u64> = done.iter().map(|&(task, _)| task).collect();
    assert_eq!(tasks, [1, 2, 3, 4], "every task ends once");
    // At most three tasks are alive at once (1, 2 and 3; then 2, 3 and 4), so three indices do.
    assert!(done.iter().all(|&(_, index)| index < 3), "{done:?}");
    let index = |task: u64| done.iter().find(|d| d.0 == task).unwrap().1;
    assert_eq!(index(4), index(1), "task 4 takes the index task 1 left");
    assert!(indices.live.iter().all(Option::is_none));
}
