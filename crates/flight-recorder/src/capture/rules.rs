//! Rule triggers: the diagnosis rules of the offline analysis, evaluated while the program runs,
//! each writing a `rule` dump when its condition has held long enough.
//!
//! - **`sched_delay`**: the scheduling delay of a runtime stays over a threshold for a while.
//!   tokio has no such metric, so a probe measures it: every `probe_interval` one tiny task
//!   (`watcher::sched_probe`) is spawned on the runtime from outside it, and the time from its
//!   spawn to its first poll is its delay. A probe that has not run yet counts as delayed by its age, so a
//!   runtime whose workers are all blocked is seen while it is blocked, not after. One probe is
//!   in flight at a time: a blocked runtime does not pile probes up. What the probe saw is
//!   recorded each tick as the counter `rules.<runtime>.sched_delay_us`.
//! - **`alive_tasks`**: the runtime's `num_alive_tasks` rises by at least `growth` over `over`,
//!   in ten steps none of which falls by more than a tenth of `growth` (a leak, not a burst of
//!   short-lived requests that come and go).
//! - **`blocking_queue`**: tokio's `blocking_queue_depth` stays above zero for a while (the
//!   blocking pool is full and work waits for a thread). The metric needs `--cfg tokio_unstable`;
//!   without it the rule does nothing, which is said once on standard error.
//!
//! The rules are evaluated by one thread per watched runtime ([`watch_runtime`]), from tokio's
//! `RuntimeMetrics` and the probe: nothing is added to the recording path, and the trace window
//! is never read. A rule fires once when its condition has held for its duration, and fires
//! again only after the condition has cleared (a probe on time, the growth stopped, the queue
//! empty); every dump also goes through the rate limit of all triggers (`min_dump_interval`).

// The settings are always built (capture reads them); the evaluators only serve the watcher,
// which needs tokio.
#![cfg_attr(not(feature = "tokio"), allow(dead_code))]

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

use super::env::parse_duration;
use super::settings::duration_text;

/// The shortest probe interval accepted.
pub(crate) const MIN_PROBE_INTERVAL: Duration = Duration::from_millis(1);
/// The longest probe interval accepted.
pub(crate) const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(10);
/// The longest duration a rule may ask its condition to hold.
pub(crate) const MAX_RULE_DURATION: Duration = Duration::from_secs(3600);
/// The steps of the `alive_tasks` window.
const ALIVE_STEPS: u32 = 10;

/// The rule triggers of automatic capture (all off by default), part of
/// [`CaptureSettings`](super::CaptureSettings). They are evaluated for the runtimes given to
/// [`watch_runtime`] while capture runs; `docs/CAPTURE.md` (Rule triggers) has the details.
///
/// ```
/// use flight_recorder::capture::{AliveTasksRule, CaptureSettings, RuleSettings, SchedDelayRule};
/// use std::time::Duration;
///
/// let settings = CaptureSettings {
///     rules: RuleSettings {
///         sched_delay: Some("50ms/1s".parse()?),
///         alive_tasks: Some(AliveTasksRule { growth: 1000, over: Duration::from_secs(10) }),
///         blocking_queue: Some(Duration::from_secs(1)),
///         ..RuleSettings::default()
///     },
///     ..CaptureSettings::default()
/// };
/// assert!(settings.validate().is_ok());
/// assert_eq!(
///     settings.rules.sched_delay,
///     Some(SchedDelayRule {
///         threshold: Duration::from_millis(50),
///         sustained: Duration::from_secs(1),
///     })
/// );
/// # Ok::<(), String>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSettings {
    /// `sched_delay`: scheduling delay over a threshold for a while (`None`, the default: off).
    /// Environment: `FLIGHT_RECORDER_RULE_SCHED_DELAY=50ms/1s`.
    pub sched_delay: Option<SchedDelayRule>,
    /// `alive_tasks`: the number of alive tasks growing steadily (`None`, the default: off).
    /// Environment: `FLIGHT_RECORDER_RULE_ALIVE_TASKS=+1000/10s`.
    pub alive_tasks: Option<AliveTasksRule>,
    /// `blocking_queue`: tokio's blocking queue not empty for this long (`None`, the default:
    /// off; zero fires at the first sample that sees a queue). Needs `--cfg tokio_unstable`;
    /// without it the rule does nothing. Environment: `FLIGHT_RECORDER_RULE_BLOCKING_QUEUE=1s`.
    pub blocking_queue: Option<Duration>,
    /// How often the rules are evaluated and a scheduling-delay probe is spawned (default
    /// 100 ms; 1 ms to 10 s). Environment: `FLIGHT_RECORDER_RULE_PROBE_INTERVAL=100ms`.
    pub probe_interval: Duration,
}

impl Default for RuleSettings {
    fn default() -> Self {
        RuleSettings {
            sched_delay: None,
            alive_tasks: None,
            blocking_queue: None,
            probe_interval: Duration::from_millis(100),
        }
    }
}

/// The `sched_delay` rule: fires when the scheduling delay measured by the probe stays over
/// `threshold` for `sustained`. Written and parsed as `<threshold>/<sustained>`, e.g.
/// `50ms/1s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedDelayRule {
    /// The delay over which the runtime is late (more than zero, at most 1 h).
    pub threshold: Duration,
    /// How long it must stay late (at most 1 h; zero fires at the first late probe).
    pub sustained: Duration,
}

/// The `alive_tasks` rule: fires when `num_alive_tasks` rises by at least `growth` over `over`,
/// nearly monotonically (see [`RuleSettings::alive_tasks`]). Written and parsed as
/// `+<growth>/<over>`, e.g. `+1000/10s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AliveTasksRule {
    /// The growth in alive tasks (at least 1).
    pub growth: u64,
    /// Over how long (at least ten probe intervals, at most 1 h).
    pub over: Duration,
}

impl RuleSettings {
    /// Whether any rule is on.
    pub fn any(&self) -> bool {
        self.sched_delay.is_some() || self.alive_tasks.is_some() || self.blocking_queue.is_some()
    }

    /// Checks the rules; the error names the setting and the value.
    pub(crate) fn validate(&self) -> Result<(), String> {
        let interval = self.probe_interval;
        if !(MIN_PROBE_INTERVAL..=MAX_PROBE_INTERVAL).contains(&interval) {
            return Err(format!(
                "rules.probe_interval must be from 1ms to 10s, not {}",
                duration_text(interval)
            ));
        }
        if let Some(rule) = &self.sched_delay {
            rule.check()
                .map_err(|why| format!("rules.sched_delay: {why}"))?;
        }
        if let Some(rule) = &self.alive_tasks {
            rule.check()
                .map_err(|why| format!("rules.alive_tasks: {why}"))?;
            if rule.over < interval * ALIVE_STEPS {
                return Err(format!(
                    "rules.alive_tasks: {rule} is too short for a probe interval of {}; the \
                     growth is judged in ten steps of at least one interval, so use at least \
                     {}",
                    duration_text(interval),
                    duration_text(interval * ALIVE_STEPS)
                ));
            }
        }
        if let Some(d) = self.blocking_queue {
            if d > MAX_RULE_DURATION {
                return Err(format!(
                    "rules.blocking_queue must be at most 1h, not {}",
                    duration_text(d)
                ));
            }
        }
        Ok(())
    }

    /// The rules that are on, for the start-up line: `rule sched_delay 50ms/1s, …`.
    pub(crate) fn describe(&self) -> Vec<String> {
        let mut rules = Vec::new();
        if let Some(rule) = &self.sched_delay {
            rules.push(format!("rule sched_delay {rule}"));
        }
        if let Some(rule) = &self.alive_tasks {
            rules.push(format!("rule alive_tasks {rule}"));
        }
        if let Some(d) = self.blocking_queue {
            let mut text = format!("rule blocking_queue {}", duration_text(d));
            if !cfg!(tokio_unstable) {
                text.push_str(" (off: needs --cfg tokio_unstable)");
            }
            rules.push(text);
        }
        if !rules.is_empty() {
            let last = rules.len() - 1;
            rules[last].push_str(&format!(
                " (watched runtimes, every {})",
                duration_text(self.probe_interval)
            ));
        }
        rules
    }
}

impl SchedDelayRule {
    fn check(&self) -> Result<(), String> {
        if self.threshold.is_zero() || self.threshold > MAX_RULE_DURATION {
            return Err(format!(
                "the threshold must be more than zero and at most 1h, not {}",
                duration_text(self.threshold)
            ));
        }
        if self.sustained > MAX_RULE_DURATION {
            return Err(format!(
                "the time it must hold must be at most 1h, not {}",
                duration_text(self.sustained)
            ));
        }
        Ok(())
    }
}

impl AliveTasksRule {
    fn check(&self) -> Result<(), String> {
        if self.growth == 0 {
            return Err("the growth must be at least +1".into());
        }
        if self.over.is_zero() || self.over > MAX_RULE_DURATION {
            return Err(format!(
                "the window must be more than zero and at most 1h, not {}",
                duration_text(self.over)
            ));
        }
        Ok(())
    }
}

impl fmt::Display for SchedDelayRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}",
            duration_text(self.threshold),
            duration_text(self.sustained)
        )
    }
}

impl fmt::Display for AliveTasksRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}/{}", self.growth, duration_text(self.over))
    }
}

impl FromStr for SchedDelayRule {
    type Err = String;

    /// `<threshold>/<sustained>`, e.g. `50ms/1s`; the error names the text and shows a valid one.
    fn from_str(v: &str) -> Result<Self, String> {
        let usage = || format!("{v:?} is not <threshold>/<for>; use e.g. 50ms/1s, or off");
        let (threshold, sustained) = v.split_once('/').ok_or_else(usage)?;
        let rule = SchedDelayRule {
            threshold: parse_duration(threshold.trim()).map_err(|_| usage())?,
            sustained: parse_duration(sustained.trim()).map_err(|_| usage())?,
        };
        rule.check().map_err(|why| format!("{v:?}: {why}"))?;
        Ok(rule)
    }
}

impl FromStr for AliveTasksRule {
    type Err = String;

    /// `+<growth>/<over>`, e.g. `+1000/10s` (the `+` may be left out); the error names the text
    /// and shows a valid one.
    fn from_str(v: &str) -> Result<Self, String> {
        let usage = || format!("{v:?} is not +<tasks>/<over>; use e.g. +1000/10s, or off");
        let (growth, over) = v.split_once('/').ok_or_else(usage)?;
        let growth = growth.trim();
        let growth = growth.strip_prefix('+').unwrap_or(growth);
        let rule = AliveTasksRule {
            growth: growth.parse().map_err(|_| usage())?,
            over: parse_duration(over.trim()).map_err(|_| usage())?,
        };
        rule.check().map_err(|why| format!("{v:?}: {why}"))?;
        Ok(rule)
    }
}

/// The scheduling-delay probe's function, as named in dumps (and in stacks): with
/// `--cfg tokio_unstable` its tasks' spawn location is the `watch_runtime` sampler in
/// `capture/rules.rs`.
pub(crate) const PROBE_NAME: &str = "flight_recorder::capture::rules::watcher::sched_probe";

/// A condition that must hold for a while: when it began, the worst value seen since, and
/// whether the rule may fire (it fires once, then waits for the condition to clear).
struct Held<V> {
    since: Option<Instant>,
    max: V,
    armed: bool,
}

/// A rule that fired: how long its condition had held and the worst value seen.
#[derive(Debug, PartialEq)]
struct Fired<V> {
    held: Duration,
    max: V,
}

impl<V: Copy + Ord + Default> Held<V> {
    fn new() -> Self {
        Held {
            since: None,
            max: V::default(),
            armed: true,
        }
    }

    /// The condition holds since `from` (or earlier), with `value`; fires once it has held for
    /// `sustained`, if armed.
    fn bad(
        &mut self,
        from: Instant,
        value: V,
        now: Instant,
        sustained: Duration,
    ) -> Option<Fired<V>> {
        let since = match self.since {
            Some(since) => {
                self.max = self.max.max(value);
                since
            }
            None => {
                self.since = Some(from);
                self.max = value;
                from
            }
        };
        let held = now.saturating_duration_since(since);
        if self.armed && held >= sustained {
            self.armed = false;
            return Some(Fired {
                held,
                max: self.max,
            });
        }
        None
    }

    /// The condition cleared: the rule may fire again.
    fn good(&mut self) {
        self.since = None;
        self.armed = true;
    }
}

/// What the probe said at one tick.
#[derive(Clone, Copy, Debug)]
enum ProbeSeen {
    /// It ran, `delay` after its spawn at `spawned`.
    Ran { spawned: Instant, delay: Duration },
    /// It has not run yet.
    Pending { spawned: Instant },
}

/// The `sched_delay` rule's state.
struct SchedDelayState {
    held: Held<Duration>,
}

impl SchedDelayState {
    fn new() -> Self {
        SchedDelayState { held: Held::new() }
    }

    fn observe(
        &mut self,
        rule: &SchedDelayRule,
        now: Instant,
        seen: ProbeSeen,
    ) -> Option<Fired<Duration>> {
        let (spawned, delay, done) = match seen {
            ProbeSeen::Ran { spawned, delay } => (spawned, delay, true),
            ProbeSeen::Pending { spawned } => {
                (spawned, now.saturating_duration_since(spawned), false)
            }
        };
        if delay > rule.threshold {
            // Late since the moment its delay passed the threshold.
            return self
                .held
                .bad(spawned + rule.threshold, delay, now, rule.sustained);
        }
        if done {
            self.held.good();
        }
        // A pending probe younger than the threshold says nothing yet.
        None
    }
}

/// The `alive_tasks` rule's state: one point per step of the window, oldest first.
struct AliveTasksState {
    points: std::collections::VecDeque<(Instant, u64)>,
    armed: bool,
}

/// An `alive_tasks` rule that fired: the count at the start and the end of the window.
#[derive(Debug, PartialEq)]
struct AliveFired {
    from: u64,
    to: u64,
    span: Duration,
}

impl AliveTasksState {
    fn new() -> Self {
        AliveTasksState {
            points: std::collections::VecDeque::new(),
            armed: true,
        }
    }

    fn observe(&mut self, rule: &AliveTasksRule, now: Instant, alive: u64) -> Option<AliveFired> {
        let step = rule.over / ALIVE_STEPS;
        if let Some(&(last, _)) = self.points.back() {
            // A tick a little early still makes a step (ticks jitter by a few percent).
            if now.saturating_duration_since(last) < step * 9 / 10 {
                return None;
            }
        }
        self.points.push_back((now, alive));
        while self.points.len() > ALIVE_STEPS as usize + 1 {
            self.points.pop_front();
        }
        if self.points.len() <= ALIVE_STEPS as usize {
            return None;
        }
        let (start, from) = self.points[0];
        let to = alive;
        let slack = rule.growth / 10;
        let steady = self
            .points
            .iter()
            .zip(self.points.iter().skip(1))
            .all(|(&(_, a), &(_, b))| b.saturating_add(slack) >= a);
        let rising = to >= from.saturating_add(rule.growth) && steady;
        if !rising {
            self.armed = true;
            return None;
        }
        if !self.armed {
            return None;
        }
        self.armed = false;
        Some(AliveFired {
            from,
            to,
            span: now.saturating_duration_since(start),
        })
    }
}

#[cfg(feature = "tokio")]
pub use watcher::{watch_runtime, RuleWatcher};

#[cfg(feature = "tokio")]
mod watcher {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use tokio::runtime::{Handle, RuntimeMetrics};

    #[cfg(not(tokio_unstable))]
    use super::super::log_line;
    use super::super::{active, report_error, Trigger, TriggerKind};
    use super::{
        duration_text, AliveTasksState, Held, ProbeSeen, RuleSettings, SchedDelayState, PROBE_NAME,
    };
    use crate::raw::{self, EventKind};
    use crate::record::intern::intern_name;
    use flight_recorder_format::units::format_duration;

    /// How long the sampler sleeps between two looks while capture is not running or no rule
    /// is on.
    const IDLE_PERIOD: Duration = Duration::from_millis(250);

    /// Watches a runtime for the rule triggers of automatic capture
    /// ([`RuleSettings`](super::RuleSettings) in the capture settings): one thread, named
    /// `flight-recorder-rules`, evaluates the rules that are on every `probe_interval` while
    /// capture runs, and writes a `rule` dump (trigger `rule`, tag the rule's name, the rule
    /// and what was seen in the header's details, `runtime` = `name`) when one fires. The
    /// settings may change while it runs; it can be started before capture. Dropping the
    /// returned guard stops the thread; it also stops by itself once the runtime shuts down.
    ///
    /// The `sched_delay` rule spawns one tiny task per interval on the runtime (through
    /// `handle`), so with `--cfg tokio_unstable` traces show these probe tasks, spawned in
    /// `flight_recorder`'s `capture/rules.rs`. On a current-thread runtime a probe only runs
    /// while a thread drives the runtime (`block_on`): one left idle on purpose looks blocked.
    /// Each tick of that rule records the delay the probe saw as the counter
    /// `rules.<name>.sched_delay_us`.
    ///
    /// ```
    /// use flight_recorder::capture::{self, CaptureSettings, RuleSettings};
    /// use std::time::Duration;
    ///
    /// # let dir = tempfile::tempdir()?;
    /// let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build()?;
    /// capture::start(CaptureSettings {
    ///     dump_dir: dir.path().to_path_buf(),
    ///     announce: false,
    ///     rules: RuleSettings {
    ///         sched_delay: Some("50ms/1s".parse()?),
    ///         ..RuleSettings::default()
    ///     },
    ///     ..CaptureSettings::default()
    /// })?;
    /// let watcher = capture::watch_runtime(runtime.handle(), "api");
    /// runtime.block_on(async { /* … the service … */ });
    /// drop(watcher); // stops watching
    /// capture::stop();
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn watch_runtime(handle: &Handle, name: &str) -> RuleWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = Sampler {
            handle: handle.clone(),
            metrics: handle.metrics(),
            runtime: name.to_string(),
            stop: Arc::clone(&stop),
            delay_counter: intern_name(&format!("rules.{name}.sched_delay_us")),
        };
        let thread = std::thread::Builder::new()
            .name("flight-recorder-rules".into())
            .spawn(move || sampler.run());
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(e) => {
                report_error(&format!("watching runtime {name} for rules"), &e);
                None
            }
        };
        RuleWatcher { stop, thread }
    }

    /// A runtime watched for rule triggers ([`watch_runtime`]); dropping it stops the watching
    /// thread (after the dump it may be writing).
    #[must_use = "dropping the watcher stops watching the runtime"]
    pub struct RuleWatcher {
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    impl std::fmt::Debug for RuleWatcher {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RuleWatcher")
                .field(
                    "running",
                    &self.thread.as_ref().is_some_and(|t| !t.is_finished()),
                )
                .finish()
        }
    }

    impl Drop for RuleWatcher {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                thread.thread().unpark();
                let _ = thread.join();
            }
        }
    }

    /// Whether the `blocking_queue` rule's absence in this build was said.
    #[cfg(not(tokio_unstable))]
    static BLOCKING_QUEUE_UNAVAILABLE_SAID: AtomicBool = AtomicBool::new(false);

    /// A probe's state: not run yet, run (delay + 1 in nanoseconds), or dropped unrun.
    const PENDING: u64 = 0;
    const DROPPED: u64 = u64::MAX;

    /// The spawned probe, shared with its task.
    struct ProbeSlot {
        spawned: Instant,
        state: AtomicU64,
    }

    /// Held by the probe task; dropping it without running means the runtime shut down.
    struct ProbeGuard(Arc<ProbeSlot>);

    impl ProbeGuard {
        fn ran(&self) {
            let delay = self.0.spawned.elapsed().as_nanos();
            let value = u64::try_from(delay).unwrap_or(DROPPED - 2) + 1;
            self.0
                .state
                .store(value.min(DROPPED - 1), Ordering::Release);
        }
    }

    impl Drop for ProbeGuard {
        fn drop(&mut self) {
            let _ = self.0.state.compare_exchange(
                PENDING,
                DROPPED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }

    /// The scheduling-delay probe: notes when it is first polled, and ends.
    async fn sched_probe(probe: ProbeGuard) {
        probe.ran();
    }

    struct Sampler {
        handle: Handle,
        metrics: RuntimeMetrics,
        runtime: String,
        stop: Arc<AtomicBool>,
        /// The interned name of the `rules.<runtime>.sched_delay_us` counter.
        delay_counter: u64,
    }

    /// The rules' states, kept between ticks while their settings stay the same.
    struct States {
        rules: RuleSettings,
        sched: SchedDelayState,
        alive: AliveTasksState,
        blocking: Held<u64>,
    }

    impl States {
        fn new(rules: RuleSettings) -> Self {
            States {
                rules,
                sched: SchedDelayState::new(),
                alive: AliveTasksState::new(),
                blocking: Held::new(),
            }
        }
    }

    impl Sampler {
        fn run(self) {
            let mut states: Option<States> = None;
            let mut probe: Option<Arc<ProbeSlot>> = None;
            let mut next = Instant::now();
            while !self.stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next {
                    std::thread::park_timeout(next - now);
                    continue;
                }
                let capture = active();
                let rules = capture
                    .as_ref()
                    .map(|c| c.control().settings.rules.clone())
                    .filter(RuleSettings::any);
                let (Some(capture), Some(rules)) = (capture, rules) else {
                    // Nothing to evaluate: a later start begins from fresh states.
                    states = None;
                    probe = None;
                    next = now + IDLE_PERIOD;
                    continue;
                };
                next += rules.probe_interval;
                if next < now {
                    next = now + rules.probe_interval;
                }
                let states = match &mut states {
                    Some(s) if s.rules == rules => s,
                    slot => slot.insert(States::new(rules)),
                };
                let mut fired = Vec::new();
                if let Some(rule) = states.rules.sched_delay {
                    match self.probe(&mut probe, now) {
                        Some(seen) => {
                            self.record_delay(seen, now);
                            if let Some(f) = states.sched.observe(&rule, now, seen) {
                                let interval = states.rules.probe_interval;
                                fired.push(self.sched_delay_trigger(&rule, interval, f));
                            }
                        }
                        // The runtime shut down: nothing more to watch.
                        None => return,
                    }
                } else {
                    probe = None;
                }
                if let Some(rule) = states.rules.alive_tasks {
                    let alive = self.metrics.num_alive_tasks() as u64;
                    if let Some(f) = states.alive.observe(&rule, now, alive) {
                        fired.push(self.alive_tasks_trigger(&rule, f));
                    }
                }
                if let Some(sustained) = states.rules.blocking_queue {
                    if let Some(trigger) = self.blocking_queue(&mut states.blocking, sustained, now)
                    {
                        fired.push(trigger);
                    }
                }
                for trigger in fired {
                    // Refusals (rate limit) are counted by the limiter; write errors are
                    // reported by `write`.
                    let _ = capture.trigger(trigger, None);
                }
            }
        }

        /// Looks at the probe in flight and spawns the next one once it has run. `None` when
        /// the runtime dropped a probe unrun: it shut down.
        fn probe(&self, slot: &mut Option<Arc<ProbeSlot>>, now: Instant) -> Option<ProbeSeen> {
            let seen = match slot {
                Some(probe) => match probe.state.load(Ordering::Acquire) {
                    PENDING => {
                        return Some(ProbeSeen::Pending {
                            spawned: probe.spawned,
                        })
                    }
                    DROPPED => return None,
                    ran => Some(ProbeSeen::Ran {
                        spawned: probe.spawned,
                        delay: Duration::from_nanos(ran - 1),
                    }),
                },
                None => None,
            };
            let next = Arc::new(ProbeSlot {
                spawned: Instant::now(),
                state: AtomicU64::new(PENDING),
            });
            // Detached: the probe ends by itself; its join handle is not needed.
            drop(
                self.handle
                    .spawn(sched_probe(ProbeGuard(Arc::clone(&next)))),
            );
            let spawned = next.spawned;
            *slot = Some(next);
            // The first look has no delay to report yet: the new probe is as young as can be.
            Some(seen.unwrap_or(ProbeSeen::Pending {
                spawned: spawned.min(now),
            }))
        }

        /// Records what the probe saw as a counter, so that a dump shows how the delay grew
        /// before the rule fired: a probe's delay once it ran, its age so far while it waits.
        fn record_delay(&self, seen: ProbeSeen, now: Instant) {
            if !raw::is_running() {
                return;
            }
            let delay = match seen {
                ProbeSeen::Ran { delay, .. } => delay,
                ProbeSeen::Pending { spawned } => now.saturating_duration_since(spawned),
            };
            let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
            raw::record(EventKind::Counter, &[self.delay_counter, micros]);
        }

        fn sched_delay_trigger(
            &self,
            rule: &super::SchedDelayRule,
            probe_interval: Duration,
            fired: super::Fired<Duration>,
        ) -> Trigger {
            let max = fired.max.as_nanos() as u64;
            Trigger {
                kind: TriggerKind::Rule,
                reason: format!(
                    "rule sched_delay: scheduling delay over {} for {} on runtime {}",
                    duration_text(rule.threshold),
                    duration_text(rule.sustained),
                    self.runtime
                ),
                tag: "sched_delay".into(),
                details: vec![
                    ("rule".into(), "sched_delay".into()),
                    ("runtime".into(), self.runtime.clone()),
                    ("threshold".into(), duration_text(rule.threshold)),
                    ("for".into(), duration_text(rule.sustained)),
                    ("observed_max".into(), format_duration(max)),
                    ("observed_max_ms".into(), format!("{:.3}", max as f64 / 1e6)),
                    ("held".into(), format_duration(fired.held.as_nanos() as u64)),
                    ("probe_interval".into(), duration_text(probe_interval)),
                    ("probe".into(), PROBE_NAME.into()),
                ],
            }
        }

        fn alive_tasks_trigger(
            &self,
            rule: &super::AliveTasksRule,
            fired: super::AliveFired,
        ) -> Trigger {
            Trigger {
                kind: TriggerKind::Rule,
                reason: format!(
                    "rule alive_tasks: alive tasks grew by {} (+{} or more over {}) on runtime {}",
                    fired.to - fired.from,
                    rule.growth,
                    duration_text(rule.over),
                    self.runtime
                ),
                tag: "alive_tasks".into(),
                details: vec![
                    ("rule".into(), "alive_tasks".into()),
                    ("runtime".into(), self.runtime.clone()),
                    ("growth".into(), format!("+{}", rule.growth)),
                    ("over".into(), duration_text(rule.over)),
                    (
                        "observed_growth".into(),
                        format!("+{}", fired.to - fired.from),
                    ),
                    ("alive_from".into(), fired.from.to_string()),
                    ("alive_to".into(), fired.to.to_string()),
                    (
                        "observed_over".into(),
                        format_duration(fired.span.as_nanos() as u64),
                    ),
                ],
            }
        }

        #[cfg(tokio_unstable)]
        fn blocking_queue(
            &self,
            held: &mut Held<u64>,
            sustained: Duration,
            now: Instant,
        ) -> Option<Trigger> {
            let depth = self.metrics.blocking_queue_depth() as u64;
            if depth == 0 {
                held.good();
                return None;
            }
            let fired = held.bad(now, depth, now, sustained)?;
            Some(Trigger {
                kind: TriggerKind::Rule,
                reason: format!(
                    "rule blocking_queue: tasks waited for a blocking thread for {} on runtime {}",
                    duration_text(sustained),
                    self.runtime
                ),
                tag: "blocking_queue".into(),
                details: vec![
                    ("rule".into(), "blocking_queue".into()),
                    ("runtime".into(), self.runtime.clone()),
                    ("for".into(), duration_text(sustained)),
                    ("observed_max".into(), fired.max.to_string()),
                    ("held".into(), format_duration(fired.held.as_nanos() as u64)),
                    (
                        "blocking_threads".into(),
                        self.metrics.num_blocking_threads().to_string(),
                    ),
                ],
            })
        }

        /// Without tokio's unstable metrics there is no blocking queue depth: the rule does
        /// nothing, and says so once per process.
        #[cfg(not(tokio_unstable))]
        fn blocking_queue(
            &self,
            _held: &mut Held<u64>,
            _sustained: Duration,
            _now: Instant,
        ) -> Option<Trigger> {
            if !BLOCKING_QUEUE_UNAVAILABLE_SAID.swap(true, Ordering::Relaxed) {
                log_line(
                    "flight-recorder: rule blocking_queue does nothing in this build: tokio's \
                     blocking_queue_depth needs --cfg tokio_unstable (RUSTFLAGS or \
                     .cargo/config.toml)",
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rules_parse_and_print_back() {
        let rule: SchedDelayRule = "50ms/1s".parse().unwrap();
        assert_eq!(
            rule,
            SchedDelayRule {
                threshold: ms(50),
                sustained: Duration::from_secs(1)
            }
        );
        assert_eq!(rule.to_string(), "50ms/1s");
        let rule: AliveTasksRule = "+1000/10s".parse().unwrap();
        assert_eq!(rule.growth, 1000);
        assert_eq!(rule.to_string(), "+1000/10s");
        assert_eq!("500 / 1m".parse::<AliveTasksRule>().unwrap().growth, 500);
        for (bad, says) in [
            ("50ms", "is not <threshold>/<for>"),
            ("fast/1s", "is not <threshold>/<for>"),
            ("0/1s", "more than zero"),
            ("50ms/2h", "at most 1h"),
        ] {
            let error = bad.parse::<SchedDelayRule>().unwrap_err();
            assert!(
                error.contains(&format!("{bad:?}")) && error.contains(says),
                "{error}"
            );
        }
        for (bad, says) in [
            ("+1000", "is not +<tasks>/<over>"),
            ("-5/10s", "is not +<tasks>/<over>"),
            ("+0/10s", "at least +1"),
            ("+10/0", "more than zero"),
        ] {
            let error = bad.parse::<AliveTasksRule>().unwrap_err();
            assert!(
                error.contains(&format!("{bad:?}")) && error.contains(says),
                "{error}"
            );
        }
    }

    #[test]
    fn settings_are_checked() {
        assert!(RuleSettings::default().validate().is_ok());
        assert!(!RuleSettings::default().any());
        let short_window = RuleSettings {
            alive_tasks: Some(AliveTasksRule {
                growth: 10,
                over: ms(500),
            }),
            ..RuleSettings::default()
        };
        let error = short_window.validate().unwrap_err();
        assert!(error.contains("at least 1s"), "{error}");
        let fast_probe = RuleSettings {
            probe_interval: Duration::from_micros(10),
            ..RuleSettings::default()
        };
        assert!(fast_probe
            .validate()
            .unwrap_err()
            .contains("probe_interval"));
        let zero_threshold = RuleSettings {
            sched_delay: Some(SchedDelayRule {
                threshold: Duration::ZERO,
                sustained: ms(1),
            }),
            ..RuleSettings::default()
        };
        assert!(zero_threshold
            .validate()
            .unwrap_err()
            .contains("sched_delay"));
    }

    #[test]
    fn a_late_probe_fires_once_its_lateness_has_held_then_waits_for_a_punctual_one() {
        let rule = SchedDelayRule {
            threshold: ms(50),
            sustained: ms(500),
        };
        let t0 = Instant::now();
        let mut state = SchedDelayState::new();
        // A punctual probe, then one stuck since t0 + 100 ms.
        let punctual = ProbeSeen::Ran {
            spawned: t0,
            delay: Duration::from_micros(30),
        };
        assert_eq!(state.observe(&rule, t0 + ms(100), punctual), None);
        let stuck = ProbeSeen::Pending {
            spawned: t0 + ms(100),
        };
        for tick in 2..=6 {
            assert_eq!(
                state.observe(&rule, t0 + ms(100 * tick), stuck),
                None,
                "{tick}"
            );
        }
        // Late since 150 ms: 500 ms later it fires, with the probe's age as the worst delay.
        let fired = state.observe(&rule, t0 + ms(650), stuck).unwrap();
        assert_eq!(fired.held, ms(500));
        assert_eq!(fired.max, ms(550));
        // Still late: no second firing, even when the probe finally runs late.
        assert_eq!(state.observe(&rule, t0 + ms(2000), stuck), None);
        let ran_late = ProbeSeen::Ran {
            spawned: t0 + ms(100),
            delay: ms(1500),
        };
        assert_eq!(state.observe(&rule, t0 + ms(2100), ran_late), None);
        // A punctual probe clears it; the next lateness fires again.
        let cleared = ProbeSeen::Ran {
            spawned: t0 + ms(2100),
            delay: ms(1),
        };
        assert_eq!(state.observe(&rule, t0 + ms(2200), cleared), None);
        let stuck_again = ProbeSeen::Pending {
            spawned: t0 + ms(2200),
        };
        assert_eq!(state.observe(&rule, t0 + ms(2300), stuck_again), None);
        assert!(state.observe(&rule, t0 + ms(2800), stuck_again).is_some());
    }

    #[test]
    fn a_young_pending_probe_changes_nothing() {
        let rule = SchedDelayRule {
            threshold: ms(50),
            sustained: ms(0),
        };
        let t0 = Instant::now();
        let mut state = SchedDelayState::new();
        let young = ProbeSeen::Pending { spawned: t0 };
        assert_eq!(state.observe(&rule, t0 + ms(10), young), None);
        // Zero `sustained` fires at the first late look.
        assert!(state.observe(&rule, t0 + ms(60), young).is_some());
    }

    #[test]
    fn steady_growth_of_alive_tasks_fires_and_noise_does_not() {
        let rule = AliveTasksRule {
            growth: 1000,
            over: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let second = |n: u64| t0 + Duration::from_secs(n);
        // Requests coming and going: big swings, no trend.
        let mut state = AliveTasksState::new();
        for n in 0..40 {
            let alive = if n % 2 == 0 { 100 } else { 3000 };
            assert_eq!(state.observe(&rule, second(n), alive), None, "{n}");
        }
        // A leak of 150 tasks a second, with small dips: fires once the window is full.
        let mut state = AliveTasksState::new();
        let mut fired = Vec::new();
        for n in 0..30 {
            let alive = 200 + 150 * n - if n % 3 == 0 { 60 } else { 0 };
            if let Some(f) = state.observe(&rule, second(n), alive) {
                fired.push((n, f));
            }
        }
        assert_eq!(fired.len(), 1, "{fired:?}");
        let (n, f) = &fired[0];
        assert_eq!(*n, 10);
        assert_eq!(f.span, Duration::from_secs(10));
        assert!(f.to - f.from >= 1000, "{f:?}");
        // Ticks within a step (less than nine tenths of it) are not points.
        let mut state = AliveTasksState::new();
        for n in 0..90 {
            assert_eq!(state.observe(&rule, t0 + ms(10 * n), 50 * n), None);
        }
        assert_eq!(state.points.len(), 1);
    }

    #[test]
    fn growth_that_stops_rearms_the_rule() {
        let rule = AliveTasksRule {
            growth: 100,
            over: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut state = AliveTasksState::new();
        let mut fired = 0;
        // Growth 0..=20 s, flat until 40 s, growth again.
        for n in 0..60u64 {
            let alive = match n {
                0..=20 => 20 * n,
                21..=40 => 400,
                _ => 400 + 20 * (n - 40),
            };
            if state
                .observe(&rule, t0 + Duration::from_secs(n), alive)
                .is_some()
            {
                fired += 1;
            }
        }
        assert_eq!(fired, 2);
    }

    #[test]
    fn a_sudden_drop_is_not_a_leak() {
        let rule = AliveTasksRule {
            growth: 100,
            over: Duration::from_secs(10),
        };
        let t0 = Instant::now();
        let mut state = AliveTasksState::new();
        for n in 0..=10u64 {
            // Up 40 a second, but 300 tasks end at once in the middle.
            let alive = 1000 + 40 * n - if n >= 5 { 300 } else { 0 };
            assert_eq!(
                state.observe(&rule, t0 + Duration::from_secs(n), alive),
                None
            );
        }
    }
}
