//! Diagnosis: what is wrong in a trace, why we think so, and where to look.
//!
//! A set of rules reads the same single pass as the summary (one more [`Observer`] of the model,
//! with memory bounded by the live tasks and threads) and turns what it saw into
//! [`Finding`]s, each with a kind, a severity scored by its impact on the window, the evidence
//! (time range, tasks, spawn locations, threads, stacks, figures) and a one-line explanation with
//! what to do. The findings open the summary's text, JSON and HTML report, and
//! `flight-recorder diagnose` prints them alone.
//!
//! For the slowest user tasks (a request, a `tracing` span), [`RequestWaits`] breaks their time
//! down into running, waiting for a worker (and which tasks held the workers), waiting on
//! another task (following recorded wakes back to the task that woke it, as a chain), blocked in
//! `spawn_blocking`, and idle with no recorded cause.
//!
//! The kinds and their names (part of the JSON interface, see docs/ANALYSIS.md):
//! [`FindingKind`].
//!
//! [`Observer`]: crate::model::Observer

use std::fmt;

mod imbalance;
mod observe;
mod rules;
mod text;
mod waits;
mod workers;

pub(crate) use observe::DiagnosisStats;
pub(crate) use rules::diagnose;

/// The thresholds of the rules. Every one has a default that flags what hurts a service and
/// stays quiet on a healthy one; the command line can set each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiagnoseOptions {
    /// A poll on a worker at least this long blocks it (`blocking_poll`; default 10 ms).
    pub blocking_poll_ns: u64,
    /// A task runnable this long before it is polled waited for a worker (`scheduling_delay`;
    /// default 10 ms).
    pub sched_delay_ns: u64,
    /// One worker busy while another idles for this long is an imbalance (`imbalance`;
    /// default 500 ms).
    pub imbalance_ns: u64,
    /// Tasks of one spawn location spawned in the window and still alive at its end, at least
    /// (`task_leak`; default 100).
    pub leak_tasks: u64,
    /// A task woken and not polled this long while a worker went idle lost its wake
    /// (`lost_wake`; default 1 s).
    pub lost_wake_ns: u64,
    /// `spawn_blocking` work queued this long waited for the pool (`blocking_pool_saturated`;
    /// default 10 ms).
    pub blocking_queue_ns: u64,
    /// Spawns within 100 ms that make a storm (`spawn_storm`; default 1,000).
    pub storm_spawns: u64,
    /// A user task or span at least this long, and an outlier in its group, is a slow request
    /// (`slow_request`; default 100 ms).
    pub slow_request_ns: u64,
    /// How many of the slowest user tasks get a wait breakdown (default 5).
    pub waits: usize,
}

impl Default for DiagnoseOptions {
    fn default() -> Self {
        DiagnoseOptions {
            blocking_poll_ns: 10_000_000,
            sched_delay_ns: 10_000_000,
            imbalance_ns: 500_000_000,
            leak_tasks: 100,
            lost_wake_ns: 1_000_000_000,
            blocking_queue_ns: 10_000_000,
            storm_spawns: 1_000,
            slow_request_ns: 100_000_000,
            waits: 5,
        }
    }
}

/// What a finding is about. The names ([`FindingKind::name`]) are stable: they are the `kind`
/// of the JSON output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingKind {
    /// A poll held a worker (a long poll), with the stack when recorded.
    BlockingPoll,
    /// Tasks waited for a worker: wake (or spawn) to poll.
    SchedulingDelay,
    /// One worker busy while another idled or parked, for a sustained period.
    Imbalance,
    /// The alive tasks of one spawn location grew through the window without ending.
    TaskLeak,
    /// A task can never be woken (its poll returned pending without keeping its waker), or was
    /// woken and never polled although a worker was free.
    LostWake,
    /// `spawn_blocking` work queued behind a full blocking pool.
    BlockingPoolSaturated,
    /// A burst of spawns that pushed up the other tasks' scheduling latency.
    SpawnStorm,
    /// A user task or span whose duration is an outlier, with its wait breakdown.
    SlowRequest,
}

impl FindingKind {
    /// Every kind, in the order of this enum.
    pub const ALL: [FindingKind; 8] = [
        FindingKind::BlockingPoll,
        FindingKind::SchedulingDelay,
        FindingKind::Imbalance,
        FindingKind::TaskLeak,
        FindingKind::LostWake,
        FindingKind::BlockingPoolSaturated,
        FindingKind::SpawnStorm,
        FindingKind::SlowRequest,
    ];

    /// The kind's name: `blocking_poll`, `scheduling_delay`, `imbalance`, `task_leak`,
    /// `lost_wake`, `blocking_pool_saturated`, `spawn_storm`, `slow_request`.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::BlockingPoll => "blocking_poll",
            FindingKind::SchedulingDelay => "scheduling_delay",
            FindingKind::Imbalance => "imbalance",
            FindingKind::TaskLeak => "task_leak",
            FindingKind::LostWake => "lost_wake",
            FindingKind::BlockingPoolSaturated => "blocking_pool_saturated",
            FindingKind::SpawnStorm => "spawn_storm",
            FindingKind::SlowRequest => "slow_request",
        }
    }

    /// The kind with this name.
    pub fn from_name(name: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How much a finding matters, scored by its impact on the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; nothing hurts yet.
    Info,
    /// Something hurts: requests or tasks were delayed.
    Warning,
    /// The program lost much of its capacity, or work is stuck.
    Critical,
}

impl Severity {
    /// `info`, `warning` or `critical`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity with this name.
    pub fn from_name(name: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|s| s.name() == name)
    }

    /// One level lower (info stays info).
    fn lower(self) -> Severity {
        match self {
            Severity::Critical => Severity::Warning,
            _ => Severity::Info,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a finding rests on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The time range concerned, Unix ns.
    pub start_ns: u64,
    /// The end of the time range, Unix ns.
    pub end_ns: u64,
    /// The tasks concerned (runtime ids), the most important first; at most 10.
    pub tasks: Vec<u64>,
    /// Their spawn locations (`file:line:column`), the most important first.
    pub locations: Vec<String>,
    /// The threads concerned, by name (or `thread N`).
    pub threads: Vec<String>,
    /// A stack recorded there, innermost frame first (`function at file:line`).
    pub stack: Vec<String>,
    /// The figures, by name: names ending in `_ns` are durations in nanoseconds, the others
    /// counts.
    pub values: Vec<(String, u64)>,
}

impl Evidence {
    /// The figure named `name`, if any.
    pub fn value(&self, name: &str) -> Option<u64> {
        self.values.iter().find(|(n, _)| n == name).map(|(_, v)| *v)
    }
}

/// One thing wrong in the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// How much it matters.
    pub severity: Severity,
    /// The score within a severity: time lost (worker time, or delay summed over the tasks
    /// and requests it hit), ns.
    pub impact_ns: u64,
    /// One line: what happened, where.
    pub summary: String,
    /// Why we think so: the figures behind it, in a sentence.
    pub why: String,
    /// What to do.
    pub advice: String,
    /// The evidence.
    pub evidence: Evidence,
}

/// Time a request spent on one cause (a task, a spawn location).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blame {
    /// The task (runtime id; 0 when several).
    pub task: u64,
    /// Its spawn location (`unknown` when not seen).
    pub location: String,
    /// The time, ns.
    pub ns: u64,
    /// For a wait on another task: what had woken that task for the poll in which it woke this
    /// one, and what had woken that one (at most 2 links), e.g. `task 12 (src/db.rs:40:9) had
    /// been woken by a timer, I/O or from outside the runtime`.
    pub chain: Vec<String>,
}

/// Where a slow request's time went: running + waiting for a worker + waiting on other tasks +
/// blocked in `spawn_blocking` + idle = its duration (the parts before its task's first
/// recorded event are counted as idle).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestWaits {
    /// The user task's (or span's) name.
    pub name: String,
    /// Its id.
    pub id: u64,
    /// The async task it ran in (0: it began outside any poll, and no breakdown is possible).
    pub task: u64,
    /// That task's spawn location.
    pub location: String,
    /// When it began, Unix ns.
    pub start_ns: u64,
    /// How long it lasted, ns (up to the window's end when unfinished).
    pub duration_ns: u64,
    /// Still open at the window's end.
    pub unfinished: bool,
    /// Inside polls of its task, ns.
    pub running_ns: u64,
    /// Runnable, waiting for a worker, ns.
    pub worker_wait_ns: u64,
    /// The tasks that held the workers meanwhile, by spawn location, the most first.
    pub worker_holders: Vec<Blame>,
    /// Waiting for other tasks to wake it (recorded wakes), by waking task, the most first.
    pub task_waits: Vec<Blame>,
    /// Waiting for `spawn_blocking` work (woken from a blocking-pool thread), ns.
    pub blocking_ns: u64,
    /// The blocking work waited on, by spawn location.
    pub blocking: Vec<Blame>,
    /// Idle with no recorded cause (woken by a timer, I/O or from outside the runtime, or no
    /// wake recorded), ns.
    pub idle_ns: u64,
    /// Whether its task's wakes were recorded (the instrumented spawn); without them, waits on
    /// other tasks cannot be told from idle time.
    pub wakes_recorded: bool,
}

/// The findings of a trace and the breakdown of its slowest requests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// The settings.
    pub options: DiagnoseOptions,
    /// The findings, the most severe first, then by impact.
    pub findings: Vec<Finding>,
    /// The slowest user tasks, slowest first, with their wait breakdown.
    pub waits: Vec<RequestWaits>,
    /// What the trace lacks for some rules (e.g. no wakes recorded), one sentence each.
    pub limits: Vec<String>,
}

impl Diagnosis {
    /// The most severe finding, if any.
    pub fn top(&self) -> Option<&Finding> {
        self.findings.first()
    }

    /// The highest severity found, `None` without findings.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// The findings of this kind.
    pub fn of_kind(&self, kind: FindingKind) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.kind == kind)
    }

    /// Sorts the findings: the most severe first, then the most impact.
    fn rank(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(b.impact_ns.cmp(&a.impact_ns))
                .then(a.kind.cmp(&b.kind))
        });
    }
}
