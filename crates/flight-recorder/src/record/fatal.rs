//! The fatal-signal handler: on `SIGSEGV`, `SIGBUS`, `SIGILL`, `SIGFPE` and `SIGABRT` it notes
//! in the ring's fatal area which signal, the faulting address, the crashing thread and its stack,
//! then hands the signal on, so the process dies as it would without us (same signal, same
//! message, same core dump).
//!
//! The handler is async-signal-safe: it takes no lock, allocates nothing and records no event into
//! a chunk. It reads a `OnceLock` (an atomic load), a thread-local without destructor, the
//! registers in the `ucontext`, walks the stack with the stack module's bounded walker, stores
//! atomics into the mapping, and saves and restores `errno`. It runs on the alternate signal stack
//! (`SA_ONSTACK`: std gives the main thread and every thread it spawns one), so a stack overflow
//! is caught too.
//!
//! Chaining: with a handler installed before ours (std's stack-overflow handler for `SIGSEGV` and
//! `SIGBUS`), the previous actions of all five signals are put back (we have noted the death; a
//! signal the previous handler raises, like the `SIGABRT` of std's overflow report, must not
//! land in our handler again on an alternate stack already in use), then that handler is called
//! with the same arguments and decides (std's prints the
//! overflow message and aborts, or restores the default action and returns to re-fault). With the
//! default action before us, it is restored and the signal raised again for this thread: it is
//! blocked while the handler runs and delivered, with the default action, as the handler returns,
//! whether it came from a fault or from `raise`/`abort`. An ignored signal stays ignored.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::record::ring;

/// The signals caught.
pub(crate) const SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGILL,
    libc::SIGFPE,
    libc::SIGABRT,
];

/// The actions installed before ours, written once before ours is installed, read by the handler.
struct Previous(UnsafeCell<[std::mem::MaybeUninit<libc::sigaction>; SIGNALS.len()]>);

// SAFETY: written only by `install`, once, before any handler that reads it is installed (the
// sigaction call that installs it orders the writes before any delivery); read-only afterwards.
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous(UnsafeCell::new(
    [const { std::mem::MaybeUninit::uninit() }; SIGNALS.len()],
));
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// The name of a fatal signal.
pub(crate) fn signal_name(signal: u64) -> String {
    match signal as libc::c_int {
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGILL => "SIGILL".into(),
        libc::SIGFPE => "SIGFPE".into(),
        libc::SIGABRT => "SIGABRT".into(),
        other => format!("signal {other}"),
    }
}

/// Installs the handler for the fatal signals, once per process (when the ring is made).
pub(crate) fn install() {
    if INSTALLED.swap(true, Ordering::AcqRel) {
        return;
    }
    crate::stack::prepare_fatal_walk();
    let previous = PREVIOUS.0.get();
    for (i, &signal) in SIGNALS.iter().enumerate() {
        // SAFETY: plain sigaction calls with valid pointers. The previous action is read first
        // and stored before ours is installed, so the handler never reads an unwritten entry;
        // `install` runs once (the flag above), so nothing else writes `PREVIOUS`.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut old) != 0 {
                continue;
            }
            (*previous)[i].write(old);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: errno is thread-local; saving and restoring it is what every handler must do.
    let saved_errno = unsafe { *libc::__errno_location() };
    // SAFETY: `info` and `context` come from the kernel for an SA_SIGINFO handler.
    unsafe {
        note(signal, info, context);
        chain(signal, info, context);
        *libc::__errno_location() = saved_errno;
    }
}

/// Writes what the signal says into the ring's fatal area (the first fatal signal only; later
/// ones update `last_signal`).
///
/// Not inlined, so that its frame (and the walk's) is gone before the chained handler runs.
///
/// # Safety
///
/// The arguments must be those the kernel gave the handler.
#[inline(never)]
unsafe fn note(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(ring) = ring::ring().filter(|r| r.is_own()) else {
        return;
    };
    let area = ring.fatal();
    area.last_signal.store(signal as u64, Ordering::Relaxed);
    if area
        .state
        .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return;
    }
    // SAFETY: per the function contract; `info` is checked for null.
    let (code, address) = match unsafe { info.as_ref() } {
        // SAFETY: `si_addr` is meaningful for the fault signals; for others it reads the same
        // union's first word, which is only reported.
        Some(info) => (info.si_code as u64, unsafe { info.si_addr() } as u64),
        None => (0, 0),
    };
    // SAFETY: gettid is async-signal-safe.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as u64;
    let (thread, lo, hi) = ring::thread::facts();
    area.signal.store(signal as u64, Ordering::Relaxed);
    area.code.store(code, Ordering::Relaxed);
    area.address.store(address, Ordering::Relaxed);
    area.os_tid.store(tid, Ordering::Relaxed);
    area.thread.store(thread, Ordering::Relaxed);
    area.ticks
        .store(crate::record::clock::now(), Ordering::Relaxed);
    // The frames go straight into the mapping: the alternate stack is small, and a handler
    // chained to (std's overflow report, then its abort) needs what is left of it.
    let mut count = 0usize;
    // SAFETY: `context` is the kernel's; `[lo, hi)` is this thread's stack, noted by this
    // thread when it registered (or empty).
    unsafe {
        crate::stack::walk_fatal(context, lo, hi, |frame| {
            let Some(slot) = area.frames.get(count) else {
                return false;
            };
            slot.store(frame, Ordering::Relaxed);
            count += 1;
            true
        })
    };
    area.frame_count.store(count as u64, Ordering::Relaxed);
    area.state.store(2, Ordering::Release);
}

/// Puts back the actions installed before ours, for every fatal signal. Async-signal-safe.
fn restore_all() {
    let previous = PREVIOUS.0.get();
    for (i, &signal) in SIGNALS.iter().enumerate() {
        // SAFETY: our handler is installed (we run in it), so every entry was written before
        // (an entry whose read failed was not, and neither was our handler for it: skipped).
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == handler as *const () as usize
            {
                libc::sigaction(signal, (*previous)[i].as_ptr(), std::ptr::null_mut());
            }
        }
    }
}

/// Hands the signal to the action installed before ours (see the module's comment).
///
/// # Safety
///
/// The arguments must be those the kernel gave the handler.
unsafe fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let Some(index) = SIGNALS.iter().position(|&s| s == signal) else {
        return;
    };
    // SAFETY: our handler is installed for `signal` only after its previous action was written.
    let previous = unsafe { (*PREVIOUS.0.get())[index].assume_init_ref() };
    let action = previous.sa_sigaction;
    if action == libc::SIG_IGN {
        return;
    }
    if action == libc::SIG_DFL || action == handler as *const () as usize {
        // SAFETY: restoring the default action and raising the signal again for this thread are
        // async-signal-safe; the signal stays blocked until this handler returns.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut default.sa_mask);
            libc::sigaction(signal, &default, std::ptr::null_mut());
            libc::raise(signal);
        }
        return;
    }
    // From here on the previous handler decides, and may raise another fatal signal (std's
    // overflow report aborts): the previous actions of every fatal signal are put back first,
    // so that such a signal is not taken by us again, on an alternate stack already in use.
    restore_all();
    if previous.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this signature.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(action) };
        f(signal, info, context);
    } else {
        // SAFETY: installed without SA_SIGINFO: a plain `void (*)(int)` handler.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(action) };
        f(signal);
    }
}
