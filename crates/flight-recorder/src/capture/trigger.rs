//! Triggers and the rate limit: what asks for a dump, how concurrent and too frequent requests
//! are folded into one file, and the writing of a file (one at a time).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::record::sync::lock;

/// What asked for a triggered dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TriggerKind {
    /// The application called [`dump_now`](super::dump_now).
    Application,
    /// A poll ran longer than `slow_poll_threshold`.
    SlowPoll,
    /// A thread panicked.
    Panic,
    /// The process received the dump signal (`SIGUSR2` by default).
    Signal,
    /// A rule of [`RuleSettings`](super::RuleSettings) fired on a watched runtime: the
    /// header's `rule` detail names it.
    Rule,
}

impl TriggerKind {
    /// The trigger's name, as written in files (`application`, `slow_poll`, `panic`, `signal`,
    /// `rule`).
    pub fn name(self) -> &'static str {
        match self {
            TriggerKind::Application => "application",
            TriggerKind::SlowPoll => "slow_poll",
            TriggerKind::Panic => "panic",
            TriggerKind::Signal => "signal",
            TriggerKind::Rule => "rule",
        }
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What became of a request for a triggered dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DumpOutcome {
    /// A file was written, at this path.
    Written(PathBuf),
    /// Another triggered dump was being written; this request is folded into it (and counted in
    /// the next file's `suppressed_triggers`).
    Coalesced,
    /// The previous triggered dump began less than `min_dump_interval` ago; this request is
    /// counted in the next file's `suppressed_triggers`.
    RateLimited {
        /// How long until a trigger would write again.
        retry_after: Duration,
    },
}

/// A request for a triggered dump.
pub(crate) struct Trigger {
    pub kind: TriggerKind,
    pub reason: String,
    pub tag: String,
    /// Details beyond the trigger's name (the slow poll's task, the panic's message, …).
    pub details: Vec<(String, String)>,
}

impl Trigger {
    /// One line for the trace's log: `kind: reason (name=value, …)`, the reason left out when it
    /// is the kind's name.
    pub(crate) fn describe(&self) -> String {
        let mut line = self.kind.name().to_string();
        if self.reason != self.kind.name() {
            line.push_str(": ");
            line.push_str(&self.reason);
        }
        if !self.details.is_empty() {
            let details: Vec<String> = self
                .details
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect();
            line.push_str(&format!(" ({})", details.join(", ")));
        }
        line
    }
}

/// The rate limit of triggered dumps: one in progress at a time, and a minimum interval between
/// the starts of two.
pub(crate) struct RateLimiter {
    state: Mutex<LimiterState>,
    idle: Condvar,
}

#[derive(Default)]
struct LimiterState {
    in_progress: bool,
    last_start: Option<Instant>,
    /// Suppressed requests not yet reported in a file, by trigger.
    pending: BTreeMap<TriggerKind, u64>,
    /// All suppressed requests since capture started.
    total: u64,
}

/// The right to write one triggered dump; released on drop.
pub(crate) struct Permit<'a>(&'a RateLimiter);

impl RateLimiter {
    pub(crate) fn new() -> RateLimiter {
        RateLimiter {
            state: Mutex::new(LimiterState::default()),
            idle: Condvar::new(),
        }
    }

    /// Grants a dump, or says why not (and counts the request).
    pub(crate) fn admit(
        &self,
        kind: TriggerKind,
        min_interval: Duration,
    ) -> Result<Permit<'_>, DumpOutcome> {
        let mut state = lock(&self.state);
        let now = Instant::now();
        let refusal = if state.in_progress {
            Some(DumpOutcome::Coalesced)
        } else {
            state
                .last_start
                .map(|last| now.saturating_duration_since(last))
                .filter(|&since| since < min_interval)
                .map(|since| DumpOutcome::RateLimited {
                    retry_after: min_interval - since,
                })
        };
        if let Some(refusal) = refusal {
            *state.pending.entry(kind).or_default() += 1;
            state.total += 1;
            return Err(refusal);
        }
        state.in_progress = true;
        state.last_start = Some(now);
        Ok(Permit(self))
    }

    /// Waits until no triggered dump is in progress, at most `timeout`.
    pub(crate) fn wait_idle(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.state);
        while state.in_progress {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            state = wait_timeout(&self.idle, state, left);
        }
    }

    /// Takes the counts of suppressed requests to report in a file.
    pub(crate) fn take_pending(&self) -> BTreeMap<TriggerKind, u64> {
        std::mem::take(&mut lock(&self.state).pending)
    }

    /// Puts back counts taken for a file that could not be written.
    pub(crate) fn restore_pending(&self, counts: BTreeMap<TriggerKind, u64>) {
        let mut state = lock(&self.state);
        for (kind, n) in counts {
            *state.pending.entry(kind).or_default() += n;
        }
    }

    /// Suppressed requests since capture started.
    pub(crate) fn total_suppressed(&self) -> u64 {
        lock(&self.state).total
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).in_progress = false;
        self.0.idle.notify_all();
    }
}

/// The one file being written at a time (the flight recorder writes one snapshot at a time; a
/// periodic file and a triggered one wait for each other rather than fail).
pub(crate) struct WriterSlot {
    busy: Mutex<bool>,
    free: Condvar,
}

/// The writer slot, held; released on drop.
pub(crate) struct WriterGuard<'a>(&'a WriterSlot);

impl WriterSlot {
    pub(crate) fn new() -> WriterSlot {
        WriterSlot {
            busy: Mutex::new(false),
            free: Condvar::new(),
        }
    }

    /// Takes the slot, waiting at most `timeout` (`None`: as long as it takes).
    pub(crate) fn acquire(&self, timeout: Option<Duration>) -> Option<WriterGuard<'_>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut busy = lock(&self.busy);
        while *busy {
            busy = match deadline {
                None => self.free.wait(busy).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    wait_timeout(&self.free, busy, left)
                }
            };
        }
        *busy = true;
        Some(WriterGuard(self))
    }
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        *lock(&self.0.busy) = false;
        self.0.free.notify_one();
    }
}

fn wait_timeout<'a, T>(
    condvar: &Condvar,
    guard: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    match condvar.wait_timeout(guard, timeout) {
        Ok((guard, _)) => guard,
        Err(poisoned) => poisoned.into_inner().0,
    }
}

thread_local! {
    /// Set while this thread writes a capture file, so that a panic inside the write does not
    /// ask for another one (and wait for itself).
    static IN_DUMP: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as writing a capture file until dropped.
pub(crate) struct InDump(bool);

impl InDump {
    pub(crate) fn enter() -> InDump {
        InDump(IN_DUMP.try_with(|flag| flag.replace(true)).unwrap_or(true))
    }
}

impl Drop for InDump {
    fn drop(&mut self) {
        let previous = self.0;
        let _ = IN_DUMP.try_with(|flag| flag.set(previous));
    }
}

/// Whether the calling thread is writing a capture file.
pub(crate) fn in_dump() -> bool {
    IN_DUMP.try_with(Cell::get).unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_request_coalesces_and_a_soon_one_is_rate_limited() {
        let limiter = RateLimiter::new();
        let interval = Duration::from_secs(10);
        let permit = limiter.admit(TriggerKind::Signal, interval).unwrap();
        assert_eq!(
            limiter.admit(TriggerKind::Panic, interval).err(),
            Some(DumpOutcome::Coalesced)
        );
        drop(permit);
        match limiter.admit(TriggerKind::Panic, interval) {
            Err(DumpOutcome::RateLimited { retry_after }) => {
                assert!(retry_after > Duration::from_secs(9))
            }
            _ => panic!("not rate limited"),
        }
        assert_eq!(limiter.total_suppressed(), 2);
        let pending = limiter.take_pending();
        assert_eq!(pending.get(&TriggerKind::Panic), Some(&2));
        assert!(limiter.take_pending().is_empty());
        limiter.restore_pending(pending);
        assert_eq!(limiter.take_pending().get(&TriggerKind::Panic), Some(&2));
        // With no minimum interval, the next one goes.
        assert!(limiter.admit(TriggerKind::Panic, Duration::ZERO).is_ok());
    }

    #[test]
    fn the_writer_slot_times_out_while_held() {
        let slot = WriterSlot::new();
        let guard = slot.acquire(None).unwrap();
        assert!(slot.acquire(Some(Duration::from_millis(20))).is_none());
        drop(guard);
        assert!(slot.acquire(Some(Duration::from_millis(20))).is_some());
    }

    #[test]
    fn in_dump_nests() {
        assert!(!in_dump());
        let outer = InDump::enter();
        let inner = InDump::enter();
        drop(inner);
        assert!(in_dump());
        drop(outer);
        assert!(!in_dump());
    }
}
