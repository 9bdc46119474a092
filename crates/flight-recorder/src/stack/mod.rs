//! Stacks of other threads of this process, captured while they run.
//!
//! A thread that may be sampled calls [`register_current_thread`] once. Another thread (a
//! watchdog) then calls [`capture_thread_stack`] with the returned [`ThreadHandle`]: it queues a
//! real-time signal to that thread, tagged with a request number, and waits for the reply. The
//! signal handler runs on the target thread, reads the interrupted pc, stack pointer and frame
//! pointer from its `ucontext`, walks the frame-pointer chain and writes the return addresses into
//! a reply slot set aside for that thread when it registered.
//!
//! Why the handler is safe to run anywhere in the program:
//!
//! - it allocates nothing, takes no lock, records no event and never calls an unwinder: it reads
//!   atomics, makes async-signal-safe system calls (`gettid`, `getpid`) and reads memory;
//! - every stack read is bounds-checked against the range the thread registered
//!   (`pthread_getattr_np`), above the interrupted stack pointer, aligned, and frame addresses must
//!   strictly increase; code is read only inside executable segments of modules that can no longer
//!   be unloaded. A fault is never caught and recovered from: nothing is read that could fault;
//! - it saves and restores `errno`, runs on an alternate signal stack (`SA_ONSTACK`, installed at
//!   registration when the thread has none) and chains signals that are not ours to the handler
//!   installed before.
//!
//! The signal protocol (request numbers, late replies, thread exit) is described in
//! `docs/STACKS.md` and in the Linux implementation's comments. Resolving addresses to functions
//! is not done here: [`loaded_modules`] gives what a symbolizer needs (paths, load biases, build
//! ids), and symbolization happens later, off the program's threads.
//!
//! Linux on x86_64 and aarch64 only; elsewhere every function returns
//! [`StackError::Unsupported`].
//!
//! ```
//! use std::time::{Duration, Instant};
//! use flight_recorder::stack::{capture_thread_stack, register_current_thread, StackError};
//!
//! // Here the main thread registers, and another thread captures its stack while the main
//! // thread waits for it.
//! match register_current_thread() {
//!     Ok(main) => {
//!         let deadline = Instant::now() + Duration::from_secs(5);
//!         let stack = std::thread::spawn(move || capture_thread_stack(&main, deadline))
//!             .join()
//!             .expect("the capturing thread")?;
//!         // The pc, inside `pthread_join`, and its callers.
//!         assert!(stack.frames.len() > 1, "{stack:?}");
//!     }
//!     Err(StackError::Unsupported) => {}
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::path::PathBuf;

pub(crate) mod cpu;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod linux;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod modules;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod signal;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
mod unsupported;
#[cfg(any(
    test,
    all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )
))]
mod walk;

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
use linux as imp;
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
use unsupported as imp;

/// The most frames one capture returns; a deeper stack is cut and marked truncated.
pub const MAX_FRAMES: usize = 128;

/// A registered thread: what [`capture_thread_stack`] needs to reach it.
///
/// A handle names one registration. Once its thread has exited (and its slot has been reused by
/// another thread), a capture through the handle returns [`StackError::Gone`], never the stack of
/// another thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(
    not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )),
    allow(dead_code)
)]
pub struct ThreadHandle {
    pub(crate) slot: u32,
    pub(crate) generation: u64,
    pub(crate) tid: i32,
}

impl ThreadHandle {
    /// The thread's kernel id (`gettid`).
    pub fn tid(&self) -> i32 {
        self.tid
    }
}

/// How a frame's address was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// The interrupted program counter: the instruction the thread was executing.
    Pc,
    /// A return address found by scanning the stack between the interrupted stack pointer and
    /// the first frame record, or between two records: the caller of a function that keeps no
    /// frame pointer (glibc's system call wrappers, code built without frame pointers). It
    /// pointed into an executable segment, just after a call instruction, but may still be a
    /// stale value left on the stack.
    Scanned,
    /// A return address read from the frame-pointer chain.
    FramePointer,
}

/// One frame of a captured stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The program counter ([`FrameKind::Pc`]) or a return address.
    pub address: usize,
    /// How the address was found.
    pub kind: FrameKind,
}

impl Frame {
    /// The address to look up in debug information: a return address points after its call
    /// instruction (possibly into the next line or function), so the byte before it is used.
    pub fn lookup_address(&self) -> usize {
        match self.kind {
            FrameKind::Pc => self.address,
            FrameKind::Scanned | FrameKind::FramePointer => self.address.saturating_sub(1),
        }
    }
}

/// A captured stack, innermost frame first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stack {
    /// The thread's kernel id.
    pub tid: i32,
    /// The frames, innermost first; at most [`MAX_FRAMES`].
    pub frames: Vec<Frame>,
    /// Whether the walk stopped because the reply slot was full.
    pub truncated: bool,
}

/// Why a stack could not be captured or a thread registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StackError {
    /// Stacks are not captured on this platform.
    Unsupported,
    /// The thread behind the handle has exited (or was never registered under that handle).
    Gone,
    /// The thread did not answer before the deadline (it blocks the signal, is stopped, or the
    /// machine is overloaded). Its reply, if it comes later, is dropped.
    Timeout,
    /// The signal handler could not be installed (`errno`).
    SignalInstall(i32),
    /// The signal is not a real-time signal, or stacks already use another one.
    InvalidSignal(i32),
    /// The signal could not be queued to the thread (`errno`, e.g. `EAGAIN` when the queue of
    /// pending signals is full).
    Send(i32),
    /// The thread's stack bounds or alternate signal stack could not be set up (`errno` or the
    /// pthread error code).
    Registration(i32),
    /// Every slot is taken by a live thread.
    TooManyThreads,
    /// The thread is exiting: its registration can no longer be kept.
    ThreadExiting,
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StackError::Unsupported => write!(f, "stack capture is not supported on this platform"),
            StackError::Gone => write!(f, "the thread has exited"),
            StackError::Timeout => write!(f, "the thread did not answer before the deadline"),
            StackError::SignalInstall(e) => {
                write!(
                    f,
                    "the stack signal handler could not be installed (errno {e})"
                )
            }
            StackError::InvalidSignal(s) => write!(
                f,
                "signal {s} cannot be used for stacks (a real-time signal is needed, and it \
                 cannot change once installed)"
            ),
            StackError::Send(e) => write!(f, "the stack signal could not be sent (errno {e})"),
            StackError::Registration(e) => {
                write!(
                    f,
                    "the thread could not be registered for stacks (error {e})"
                )
            }
            StackError::TooManyThreads => write!(f, "too many threads registered for stacks"),
            StackError::ThreadExiting => write!(f, "the thread is exiting"),
        }
    }
}

impl std::error::Error for StackError {}

/// A module (the executable, a shared library, the vDSO) mapped into this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// Its file; the executable's own path for the main program. The vDSO has no file: its path is
    /// its name (`linux-vdso.so.1`).
    pub path: PathBuf,
    /// The lowest address of its loaded segments.
    pub start: usize,
    /// One past the highest address of its loaded segments.
    pub end: usize,
    /// What was added to the file's virtual addresses when it was loaded: a file address is
    /// `address - load_bias`.
    pub load_bias: usize,
    /// Its GNU build id (`NT_GNU_BUILD_ID`), if it has one.
    pub build_id: Option<Vec<u8>>,
    /// Its executable segments, as `(start, end)` address ranges.
    pub executable: Vec<(usize, usize)>,
}

/// Registers the calling thread so that other threads can capture its stack.
///
/// Records its kernel id and stack bounds, sets its reply slot aside and installs an alternate
/// signal stack if the thread has none. Cheap after the first call, which returns the same handle
/// every time. The registration ends when the thread exits. Installs the signal handler on first
/// use (see [`set_signal`]).
pub fn register_current_thread() -> Result<ThreadHandle, StackError> {
    imp::register_current_thread()
}

/// The calling thread's handle if it is registered.
pub fn current_thread_handle() -> Option<ThreadHandle> {
    imp::current_thread_handle()
}

/// Captures the stack of a registered thread, waiting for its reply until `deadline`.
///
/// Safe to call from any number of threads at once, for the same or different targets: requests
/// to one thread are served one at a time. A thread may capture its own stack. Never panics;
/// every failure is an error.
pub fn capture_thread_stack(
    thread: &ThreadHandle,
    deadline: std::time::Instant,
) -> Result<Stack, StackError> {
    imp::capture_thread_stack(thread, deadline)
}

/// Chooses the signal used for captures. Must be called before the first registration or
/// capture (which install the handler); afterwards only the signal already in use is accepted.
///
/// The signal must be a real-time signal (`SIGRTMIN()..=SIGRTMAX()`): those are queued, so a
/// late request and a new one are delivered as two signals. The default is
/// [`default_signal`].
pub fn set_signal(signal: i32) -> Result<(), StackError> {
    imp::set_signal(signal)
}

/// The signal used for captures: the one set with [`set_signal`], else [`default_signal`].
pub fn signal() -> i32 {
    imp::signal()
}

/// The default signal, `SIGRTMIN() + 4`.
///
/// glibc keeps two real-time signals below `SIGRTMIN()` for itself; libraries that take one for
/// their own use most often take `SIGRTMIN()` itself or the first ones after it, so stacks keep a
/// few out of their way.
pub fn default_signal() -> i32 {
    imp::default_signal()
}

/// Whether the signal handler is installed (after the first registration or capture).
pub fn is_installed() -> bool {
    imp::is_installed()
}

/// The modules mapped into this process now, the main executable first. Not for signal handlers
/// (it allocates); for a symbolizer, later.
pub fn loaded_modules() -> Vec<Module> {
    imp::loaded_modules()
}

/// Readies [`walk_fatal`] (reads the loaded modules' executable segments).
pub(crate) fn prepare_fatal_walk() {
    imp::prepare_fatal_walk();
}

/// Walks the stack interrupted by a fatal signal, from its handler: the return addresses,
/// innermost first, to `emit` until it returns false; returns how many it took.
/// Async-signal-safe.
///
/// # Safety
///
/// `context` must be null or the `ucontext_t` the kernel gave the handler; `[lo, hi)` the calling
/// thread's stack as [`current_stack_bounds`] gave it (or empty).
pub(crate) unsafe fn walk_fatal(
    context: *mut libc::c_void,
    lo: usize,
    hi: usize,
    emit: impl FnMut(u64) -> bool,
) -> usize {
    // SAFETY: per the function contract.
    unsafe { imp::walk_fatal(context, lo, hi, emit) }
}

/// The calling thread's stack bounds `[lo, hi)`.
pub(crate) fn current_stack_bounds() -> Option<(usize, usize)> {
    imp::current_stack_bounds()
}
