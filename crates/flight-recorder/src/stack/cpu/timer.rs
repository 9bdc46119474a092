//! The CPU-time timer source, used when `perf_event_open` is refused: a POSIX timer per sampled
//! thread on that thread's CPU-time clock, which queues a real-time signal to that thread
//! (`SIGEV_THREAD_ID`) every `1/hz` of CPU time it uses. The handler walks the stack with the
//! stack module's walker into a ring set aside for that thread; the sampler thread drains it.
//!
//! The handler is async-signal-safe: it reads atomics, calls `gettid` and `clock_gettime`
//! (both async-signal-safe), walks the stack with bounds-checked reads, and writes into the
//! ring; no allocation, no lock, no unwinder. It saves and restores `errno`. A signal that is not
//! one of our timers' (another `si_code`, another value) goes to the handler installed before.
//!
//! Each ring has one writer (the handler, on its thread: handlers of one signal never nest) and
//! one reader (the sampler thread): `head` counts entries written, `tail` entries read; the
//! handler writes entry `head % RING_ENTRIES` only while `head - tail < RING_ENTRIES`, and
//! publishes it with a release store of `head`. When the ring is full the sample is counted lost.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::super::linux::{gettid, walk_context};
use super::super::signal::{errno, keeping_errno, thread_exists, ChainedHandler};

/// Samples a ring holds: at 1,000 Hz the sampler (every 20 ms) finds at most about 20.
pub(crate) const RING_ENTRIES: usize = 32;
/// Frames kept per sample (a deeper stack keeps its innermost frames).
pub(crate) const RING_FRAMES: usize = 64;

/// The most rings (threads sampled at once, over the process's life: a ring is reused once its
/// thread has exited).
const MAX_RINGS: usize = 1024;

/// The high 16 bits of the timers' signal value; the low bits are the ring's index.
const TAG: u64 = 0xC9A5 << 48;
const INDEX_MASK: u64 = (1 << 48) - 1;

/// The real-time signal of CPU-time timers: `SIGRTMIN() + 5`, next to the stack-capture signal
/// (`SIGRTMIN() + 4`), away from the dump signal (`SIGUSR2` by default) and from the first
/// real-time signals, which libraries take most often.
pub(crate) fn timer_signal() -> i32 {
    libc::SIGRTMIN() + 5
}

struct Ring {
    /// The thread writing it; 0 while free.
    tid: AtomicI32,
    stack_lo: AtomicUsize,
    stack_hi: AtomicUsize,
    head: AtomicU64,
    tail: AtomicU64,
    lost: AtomicU64,
    times: [AtomicU64; RING_ENTRIES],
    lens: [AtomicU32; RING_ENTRIES],
    frames: [[AtomicU64; RING_FRAMES]; RING_ENTRIES],
}

impl Ring {
    fn new() -> Ring {
        Ring {
            tid: AtomicI32::new(0),
            stack_lo: AtomicUsize::new(0),
            stack_hi: AtomicUsize::new(0),
            head: AtomicU64::new(0),
            tail: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            times: [const { AtomicU64::new(0) }; RING_ENTRIES],
            lens: [const { AtomicU32::new(0) }; RING_ENTRIES],
            frames: [const { [const { AtomicU64::new(0) }; RING_FRAMES] }; RING_ENTRIES],
        }
    }
}

/// The rings, allocated on demand and never freed.
static RINGS: [AtomicUsize; MAX_RINGS] = [const { AtomicUsize::new(0) }; MAX_RINGS];
static RING_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Serializes ring assignment and the handler's installation (never taken by the handler).
static ASSIGN: Mutex<bool> = Mutex::new(false);

/// Our handler and the action installed for the signal before it.
static HANDLER: ChainedHandler = ChainedHandler::new(handler);

fn ring(index: usize) -> Option<&'static Ring> {
    let ptr = RINGS.get(index)?.load(Ordering::Acquire) as *const Ring;
    // SAFETY: a non-null entry comes from `Box::leak` and is never freed.
    unsafe { ptr.as_ref() }
}

/// Installs the handler once. `Err(errno)` if `sigaction` fails.
fn install() -> Result<(), i32> {
    let mut installed = ASSIGN.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return Ok(());
    }
    super::super::modules::refresh_code_ranges();
    HANDLER.install(timer_signal())?;
    *installed = true;
    Ok(())
}

/// The ring of `tid` (the one it had, or a free one), set up with its stack bounds.
fn assign_ring(tid: i32, stack_lo: usize, stack_hi: usize) -> Option<usize> {
    let _guard = ASSIGN.lock().unwrap_or_else(|e| e.into_inner());
    let count = RING_COUNT.load(Ordering::Acquire);
    if let Some(index) =
        (0..count).find(|&i| ring(i).is_some_and(|r| r.tid.load(Ordering::Acquire) == tid))
    {
        return Some(index);
    }
    // A ring is reused only once its thread has exited, so that no handler still writes it.
    let free = (0..count).find(|&i| {
        ring(i).is_some_and(|r| {
            let owner = r.tid.load(Ordering::Acquire);
            owner == 0 || !thread_exists(owner)
        })
    });
    let index = match free {
        Some(index) => index,
        None if count < MAX_RINGS => {
            let new: &'static Ring = Box::leak(Box::new(Ring::new()));
            RINGS[count].store(new as *const Ring as usize, Ordering::Release);
            RING_COUNT.store(count + 1, Ordering::Release);
            count
        }
        None => return None,
    };
    let r = ring(index)?;
    r.tid.store(0, Ordering::Release);
    r.stack_lo.store(stack_lo, Ordering::Relaxed);
    r.stack_hi.store(stack_hi, Ordering::Relaxed);
    r.head.store(0, Ordering::Relaxed);
    r.tail.store(0, Ordering::Relaxed);
    r.lost.store(0, Ordering::Relaxed);
    // Published last: the handler writes only into a ring that names its tid.
    r.tid.store(tid, Ordering::Release);
    Some(index)
}

/// The signal handler. Async-signal-safe: atomics, `gettid`, `clock_gettime`, bounded reads.
extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: `info` and `context` come from the kernel for an SA_SIGINFO handler (or from a
    // chained caller passing them on); both are checked for null before use.
    keeping_errno(|| unsafe {
        match our_ring(info) {
            Some(index) => take_sample(index, context),
            None => HANDLER.chain(signal, info, context),
        }
    });
}

/// The ring index if the signal comes from one of our timers.
///
/// # Safety
///
/// `info` must be null or point to a valid `siginfo_t`.
unsafe fn our_ring(info: *const libc::siginfo_t) -> Option<usize> {
    // SAFETY: per the function contract.
    let info = unsafe { info.as_ref()? };
    if info.si_code != libc::SI_TIMER {
        return None;
    }
    // SAFETY: for SI_TIMER the kernel fills the timer member, whose value sits where `_rt`'s
    // does (after the timer id and overrun count, in the same place as pid and uid).
    let value = unsafe { info.si_value().sival_ptr as usize as u64 };
    if value & !INDEX_MASK != TAG {
        return None;
    }
    Some((value & INDEX_MASK) as usize)
}

/// Walks the interrupted stack into ring `index`, if it belongs to this thread and has room.
///
/// # Safety
///
/// Must run in the handler: `context` null or the handler's `ucontext_t`.
unsafe fn take_sample(index: usize, context: *mut libc::c_void) {
    let Some(ring) = ring(index) else {
        return;
    };
    if ring.tid.load(Ordering::Acquire) != gettid() {
        return;
    }
    let head = ring.head.load(Ordering::Relaxed);
    let tail = ring.tail.load(Ordering::Acquire);
    if head.wrapping_sub(tail) >= RING_ENTRIES as u64 {
        ring.lost.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let entry = (head % RING_ENTRIES as u64) as usize;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime is async-signal-safe; `ts` is valid.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let lo = ring.stack_lo.load(Ordering::Relaxed);
    let hi = ring.stack_hi.load(Ordering::Relaxed);
    let frames = &ring.frames[entry];
    let mut len = 0usize;
    // SAFETY: we are the handler on the ring's thread (its tid matched), `[lo, hi)` are the
    // stack bounds that thread noted for itself, and `context` is the handler's.
    let walked = unsafe {
        walk_context(context, lo, hi, |address, _kind| {
            if len == RING_FRAMES {
                return false;
            }
            frames[len].store(address as u64, Ordering::Relaxed);
            len += 1;
            true
        })
    };
    if walked.is_none() || len == 0 {
        return;
    }
    ring.times[entry].store(
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
        Ordering::Relaxed,
    );
    ring.lens[entry].store(len as u32, Ordering::Relaxed);
    ring.head.store(head.wrapping_add(1), Ordering::Release);
}

/// One sampled thread: its timer and its ring.
pub(crate) struct TimerThread {
    pub(crate) tid: i32,
    timer: libc::timer_t,
    ring: usize,
}

// SAFETY: the timer id is a process-wide handle, used by one thread at a time (the sampler's).
unsafe impl Send for TimerThread {}

impl TimerThread {
    /// Starts a timer on thread `tid`'s CPU-time clock `cpu_clock`, firing every `1/hz` of CPU
    /// time, delivered to that thread. `Err(errno)` on failure.
    pub(crate) fn open(
        tid: i32,
        cpu_clock: libc::clockid_t,
        stack_lo: usize,
        stack_hi: usize,
        hz: u32,
    ) -> Result<TimerThread, i32> {
        install()?;
        let ring = assign_ring(tid, stack_lo, stack_hi).ok_or(libc::ENOSPC)?;
        // SAFETY: a zeroed sigevent is valid; the fields set are those SIGEV_THREAD_ID reads.
        let mut event: libc::sigevent = unsafe { std::mem::zeroed() };
        event.sigev_notify = libc::SIGEV_THREAD_ID;
        event.sigev_signo = timer_signal();
        event.sigev_notify_thread_id = tid;
        event.sigev_value = libc::sigval {
            sival_ptr: (TAG | ring as u64) as usize as *mut libc::c_void,
        };
        let mut timer: libc::timer_t = std::ptr::null_mut();
        // SAFETY: valid pointers; the timer is deleted in `Drop`.
        if unsafe { libc::timer_create(cpu_clock, &mut event, &mut timer) } != 0 {
            return Err(errno());
        }
        let period_ns = (1_000_000_000 / u64::from(hz.max(1))) as libc::c_long;
        let period = libc::timespec {
            tv_sec: (period_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: period_ns % 1_000_000_000,
        };
        let spec = libc::itimerspec {
            it_interval: period,
            it_value: period,
        };
        // SAFETY: `timer` was just created; valid pointers.
        if unsafe { libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()) } != 0 {
            let e = errno();
            // SAFETY: deleted once.
            unsafe { libc::timer_delete(timer) };
            return Err(e);
        }
        Ok(TimerThread { tid, timer, ring })
    }

    /// Reads the samples in the ring: each goes to `sample(tid, monotonic_ns, frames)`; returns
    /// the samples lost since the last call because the ring was full.
    pub(crate) fn drain(
        &mut self,
        frames: &mut Vec<u64>,
        sample: &mut dyn FnMut(i32, u64, &[u64]),
    ) -> u64 {
        let Some(ring) = ring(self.ring) else {
            return 0;
        };
        if ring.tid.load(Ordering::Acquire) != self.tid {
            return 0;
        }
        let head = ring.head.load(Ordering::Acquire);
        let mut tail = ring.tail.load(Ordering::Relaxed);
        while tail != head {
            let entry = (tail % RING_ENTRIES as u64) as usize;
            let len = (ring.lens[entry].load(Ordering::Relaxed) as usize).min(RING_FRAMES);
            frames.clear();
            frames.extend(
                ring.frames[entry][..len]
                    .iter()
                    .map(|f| f.load(Ordering::Relaxed)),
            );
            let time = ring.times[entry].load(Ordering::Relaxed);
            tail = tail.wrapping_add(1);
            // The entry is read: the handler may reuse it.
            ring.tail.store(tail, Ordering::Release);
            sample(self.tid, time, frames);
        }
        ring.lost.swap(0, Ordering::Relaxed)
    }
}

impl Drop for TimerThread {
    fn drop(&mut self) {
        // SAFETY: the timer is ours and deleted once. A signal already queued may still be
        // delivered: the handler then writes into the ring, which stays this thread's until the
        // thread has exited.
        unsafe { libc::timer_delete(self.timer) };
    }
}
