//! What the stack module's two signal handlers (stack capture and the CPU-time timers) share:
//! installing a handler in front of the one installed before it, passing on the signals that are
//! not ours, and a few system calls.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// An `SA_SIGINFO` handler.
pub(super) type Handler = extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void);

/// Our handler for one signal and the action installed before it, which gets the signals that
/// are not ours.
pub(super) struct ChainedHandler {
    handler: Handler,
    /// The previous action's `sa_sigaction` (0 = default) and flags, stored right after ours is
    /// installed; until then a signal that is not ours is treated as under the default action.
    previous_action: AtomicUsize,
    previous_flags: AtomicI32,
}

impl ChainedHandler {
    /// `handler`, not installed yet.
    pub(super) const fn new(handler: Handler) -> ChainedHandler {
        ChainedHandler {
            handler,
            previous_action: AtomicUsize::new(0),
            previous_flags: AtomicI32::new(0),
        }
    }

    /// Installs the handler for `signal` (`SA_SIGINFO | SA_ONSTACK | SA_RESTART`), keeping the
    /// action it replaces. `Err(errno)` when `sigaction` fails. Callers serialize installation.
    pub(super) fn install(&self, signal: libc::c_int) -> Result<(), i32> {
        // SAFETY: a plain sigaction call with valid pointers. The previous action comes from the
        // same call, so no action installed in between can be missed.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = self.handler as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, &action, &mut previous) != 0 {
                return Err(errno());
            }
            self.previous_flags
                .store(previous.sa_flags, Ordering::Relaxed);
            self.previous_action
                .store(previous.sa_sigaction, Ordering::Release);
        }
        Ok(())
    }

    /// Passes a signal that is not ours to the action installed before ours. A default or
    /// ignored action is ignored: the default action of a real-time signal ends the process,
    /// which no library should do on behalf of another.
    ///
    /// # Safety
    ///
    /// The arguments must be those the kernel gave the handler.
    pub(super) unsafe fn chain(
        &self,
        signal: libc::c_int,
        info: *mut libc::siginfo_t,
        context: *mut libc::c_void,
    ) {
        let action = self.previous_action.load(Ordering::Acquire);
        let flags = self.previous_flags.load(Ordering::Relaxed);
        if action == libc::SIG_DFL
            || action == libc::SIG_IGN
            || action == self.handler as *const () as usize
        {
            return;
        }
        if flags & libc::SA_SIGINFO != 0 {
            // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this
            // signature.
            let f: Handler = unsafe { std::mem::transmute(action) };
            f(signal, info, context);
        } else {
            // SAFETY: installed without SA_SIGINFO: a plain `void (*)(int)` handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(action) };
            f(signal);
        }
    }
}

/// Runs `f` with `errno` saved and restored, as every signal handler must.
#[inline(always)]
pub(super) fn keeping_errno(f: impl FnOnce()) {
    // SAFETY: errno is thread-local; reading it and writing it back is async-signal-safe.
    let saved = unsafe { *libc::__errno_location() };
    f();
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = saved };
}

/// The calling thread's last OS error number.
pub(super) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Whether thread `tid` of this process still exists.
pub(super) fn thread_exists(tid: i32) -> bool {
    // SAFETY: signal 0 only checks that the thread exists.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, 0) };
    rc == 0 || errno() != libc::ESRCH
}
