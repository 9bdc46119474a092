//! Stack capture on Linux: thread slots, the signal handler and the requester.
//!
//! # The protocol
//!
//! Every registered thread owns a [`Slot`], allocated once and never freed (a slot is reused by a
//! later thread once its owner has exited). A slot holds the owner's tid, its stack bounds, the
//! request number wanted (`request`), the number of the last reply (`reply`) and the frames.
//!
//! A requester (any thread):
//!
//! 1. takes the slot's requester lock (the handler never takes it), checks that the slot still
//!    belongs to the handle's registration;
//! 2. takes a request number `n`, unique in the process, and stores it in `request`;
//! 3. queues the signal to the thread with `rt_tgsigqueueinfo`, with `si_code = SI_QUEUE`, our
//!    pid and a value tagging `n`;
//! 4. waits until `reply == n` or the deadline; on time, copies the frames; then clears
//!    `request` and releases the lock.
//!
//! The handler, on the target thread, answers only a signal that carries our tag and our pid; any
//! other delivery of the signal goes to the handler installed before ours. It finds its slot by
//! its tid, and writes the frames only if `request == n`: a signal for a request that timed out
//! carries an older number and is dropped. It publishes with `reply = n` (release).
//!
//! Why the frames are never read while written: a handler writes only if `request` held its
//! number when it started; `request` changes only under the requester lock; handlers of one
//! thread never run at once (the signal is blocked while its handler runs) and run in the order
//! the signals were queued. A requester reads only after it has seen `reply == n` for its own `n`,
//! and only until it clears `request`. The handler of a request that timed out may still be
//! writing when the next request is made; the next reply comes from a handler that runs after it
//! on the same thread, and the next requester reads only after that reply.
//!
//! A thread unregisters in a thread-local destructor, under the same lock: after that the handler
//! no longer finds a slot for its tid, and a handle to the old registration gets
//! [`StackError::Gone`].

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::modules::{self, Code};
use super::signal::{errno, keeping_errno, thread_exists, ChainedHandler};
use super::walk::{walk, Regs};
use super::{Frame, FrameKind, Module, Stack, StackError, ThreadHandle, MAX_FRAMES};

/// The most threads registered at once.
const MAX_SLOTS: usize = 4096;

/// The high 16 bits of the value our signals carry; the low 48 bits are the request number.
const TAG: u64 = 0xF1A6 << 48;
const NUMBER_MASK: u64 = (1 << 48) - 1;

/// The size of an alternate signal stack installed for a thread that has none.
const ALT_STACK_SIZE: usize = 64 << 10;

struct Slot {
    /// The owner's tid; 0 while the slot is free.
    tid: AtomicI32,
    /// Bumped at every registration and unregistration.
    generation: AtomicU64,
    stack_lo: AtomicUsize,
    stack_hi: AtomicUsize,
    /// The request number being waited for; 0 for none.
    request: AtomicU64,
    /// The number of the last request answered.
    reply: AtomicU64,
    len: AtomicUsize,
    truncated: AtomicBool,
    frames: [AtomicUsize; MAX_FRAMES],
    kinds: [AtomicU8; MAX_FRAMES],
    /// Serializes requesters to this thread, and unregistration. Never taken by the handler.
    requester: Mutex<()>,
}

impl Slot {
    fn new() -> Slot {
        Slot {
            tid: AtomicI32::new(0),
            generation: AtomicU64::new(0),
            stack_lo: AtomicUsize::new(0),
            stack_hi: AtomicUsize::new(0),
            request: AtomicU64::new(0),
            reply: AtomicU64::new(0),
            len: AtomicUsize::new(0),
            truncated: AtomicBool::new(false),
            frames: [const { AtomicUsize::new(0) }; MAX_FRAMES],
            kinds: [const { AtomicU8::new(0) }; MAX_FRAMES],
            requester: Mutex::new(()),
        }
    }
}

/// The slots, allocated on demand and never freed; the handler scans `..SLOT_COUNT`.
static SLOTS: [AtomicUsize; MAX_SLOTS] = [const { AtomicUsize::new(0) }; MAX_SLOTS];
static SLOT_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Serializes registrations (never taken by the handler).
static REGISTRY: Mutex<()> = Mutex::new(());

/// The next request number.
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// The signal chosen with `set_signal`, 0 for the default.
static CHOSEN_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// The signal installed, 0 before installation.
static INSTALLED_SIGNAL: AtomicI32 = AtomicI32::new(0);
/// Serializes installation.
static INSTALL: Mutex<()> = Mutex::new(());

/// Our handler and the action installed for the signal before it.
static HANDLER: ChainedHandler = ChainedHandler::new(handler);

fn slot(index: usize) -> Option<&'static Slot> {
    let ptr = SLOTS.get(index)?.load(Ordering::Acquire) as *const Slot;
    // SAFETY: a non-null entry comes from `Box::leak` and is never freed.
    unsafe { ptr.as_ref() }
}

pub(super) fn gettid() -> i32 {
    // SAFETY: gettid has no arguments and cannot fail; async-signal-safe.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

pub(super) fn default_signal() -> i32 {
    libc::SIGRTMIN() + 4
}

pub(super) fn signal() -> i32 {
    match INSTALLED_SIGNAL.load(Ordering::Acquire) {
        0 => match CHOSEN_SIGNAL.load(Ordering::Acquire) {
            0 => default_signal(),
            s => s,
        },
        s => s,
    }
}

pub(super) fn is_installed() -> bool {
    INSTALLED_SIGNAL.load(Ordering::Acquire) != 0
}

pub(super) fn set_signal(signal: i32) -> Result<(), StackError> {
    if !(libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&signal) {
        return Err(StackError::InvalidSignal(signal));
    }
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    match INSTALLED_SIGNAL.load(Ordering::Acquire) {
        0 => {
            CHOSEN_SIGNAL.store(signal, Ordering::Release);
            Ok(())
        }
        s if s == signal => Ok(()),
        _ => Err(StackError::InvalidSignal(signal)),
    }
}

/// Installs the handler once; returns the signal.
fn install() -> Result<i32, StackError> {
    let installed = INSTALLED_SIGNAL.load(Ordering::Acquire);
    if installed != 0 {
        return Ok(installed);
    }
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let installed = INSTALLED_SIGNAL.load(Ordering::Acquire);
    if installed != 0 {
        return Ok(installed);
    }
    let signal = signal();
    modules::refresh_code_ranges();
    HANDLER.install(signal).map_err(StackError::SignalInstall)?;
    INSTALLED_SIGNAL.store(signal, Ordering::Release);
    Ok(signal)
}

/// The signal handler. Async-signal-safe: atomics, `gettid`/`getpid`, bounded reads.
extern "C" fn handler(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
    // SAFETY: `info` and `context` come from the kernel for an SA_SIGINFO handler (or from a
    // chained caller passing them on); both are checked for null before use.
    keeping_errno(|| unsafe {
        match our_request(info) {
            Some(number) => answer(number, context),
            None => HANDLER.chain(signal, info, context),
        }
    });
}

/// The request number if the signal was queued by this process with our tag.
///
/// # Safety
///
/// `info` must be null or point to a valid `siginfo_t`.
unsafe fn our_request(info: *const libc::siginfo_t) -> Option<u64> {
    // SAFETY: per the function contract.
    let info = unsafe { info.as_ref()? };
    if info.si_code != libc::SI_QUEUE {
        return None;
    }
    // SAFETY: for SI_QUEUE the kernel fills the `_rt` member (pid, uid, value).
    let (pid, value) = unsafe { (info.si_pid(), info.si_value().sival_ptr as usize as u64) };
    // SAFETY: getpid is async-signal-safe.
    if pid != unsafe { libc::getpid() } || value & !NUMBER_MASK != TAG {
        return None;
    }
    Some(value & NUMBER_MASK)
}

/// Walks the interrupted thread's stack into its slot, if request `number` is still wanted.
///
/// # Safety
///
/// `context` must be null or the `ucontext_t` the kernel gave the handler.
unsafe fn answer(number: u64, context: *mut libc::c_void) {
    let tid = gettid();
    let count = SLOT_COUNT.load(Ordering::Acquire).min(MAX_SLOTS);
    let Some(slot) = (0..count)
        .filter_map(slot)
        .find(|s| s.tid.load(Ordering::Acquire) == tid)
    else {
        return;
    };
    if slot.request.load(Ordering::Acquire) != number {
        return;
    }
    let lo = slot.stack_lo.load(Ordering::Relaxed);
    let hi = slot.stack_hi.load(Ordering::Relaxed);
    let mut len = 0usize;
    // SAFETY: `[lo, hi)` is this thread's own stack, registered by this thread, and we are
    // running on this thread (per the function contract, `context` is its handler's).
    let walked = unsafe {
        walk_context(context, lo, hi, |address, kind| {
            if len == MAX_FRAMES {
                return false;
            }
            slot.frames[len].store(address, Ordering::Relaxed);
            slot.kinds[len].store(kind_code(kind), Ordering::Relaxed);
            len += 1;
            true
        })
    };
    let Some(truncated) = walked else {
        return;
    };
    slot.len.store(len, Ordering::Relaxed);
    slot.truncated.store(truncated, Ordering::Relaxed);
    slot.reply.store(number, Ordering::Release);
}

/// Walks the stack of the context a signal handler interrupted, with the handler's thread's
/// stack bounds `[lo, hi)`, calling `emit` for every frame (see [`walk`]); `None` when `context`
/// is null. Async-signal-safe: the walk of stuck-worker stacks and of CPU samples.
///
/// # Safety
///
/// Must run in a signal handler on the interrupted thread: `context` must be null or the
/// `ucontext_t` the kernel gave that handler, and `[lo, hi)` the bounds this thread registered
/// (its own stack, which stays mapped while it runs; when the interrupted stack pointer lies in
/// it, everything from there to `hi` is mapped — for the main thread, the kernel maps its stack
/// from the lowest stack pointer up — and `walk` reads nothing otherwise).
pub(super) unsafe fn walk_context(
    context: *mut libc::c_void,
    lo: usize,
    hi: usize,
    emit: impl FnMut(usize, FrameKind) -> bool,
) -> Option<bool> {
    // SAFETY: per the function contract.
    let regs = unsafe { registers(context) }?;
    // SAFETY: per the function contract.
    Some(unsafe { walk(regs, lo, hi, &Code, emit) })
}

fn kind_code(kind: FrameKind) -> u8 {
    match kind {
        FrameKind::Pc => 0,
        FrameKind::Scanned => 1,
        FrameKind::FramePointer => 2,
    }
}

fn kind_of(code: u8) -> FrameKind {
    match code {
        0 => FrameKind::Pc,
        1 => FrameKind::Scanned,
        _ => FrameKind::FramePointer,
    }
}

/// The pc, stack pointer, frame pointer and link register of the interrupted context.
///
/// # Safety
///
/// `context` must be null or a valid `ucontext_t`.
#[cfg(target_arch = "x86_64")]
unsafe fn registers(context: *mut libc::c_void) -> Option<Regs> {
    // SAFETY: per the function contract.
    let context = unsafe { context.cast::<libc::ucontext_t>().as_ref()? };
    let gregs = &context.uc_mcontext.gregs;
    Some(Regs {
        pc: gregs[libc::REG_RIP as usize] as usize,
        sp: gregs[libc::REG_RSP as usize] as usize,
        fp: gregs[libc::REG_RBP as usize] as usize,
        lr: 0,
    })
}

/// The pc, stack pointer, frame pointer and link register of the interrupted context.
///
/// # Safety
///
/// `context` must be null or a valid `ucontext_t`.
#[cfg(target_arch = "aarch64")]
unsafe fn registers(context: *mut libc::c_void) -> Option<Regs> {
    // SAFETY: per the function contract.
    let context = unsafe { context.cast::<libc::ucontext_t>().as_ref()? };
    let m = &context.uc_mcontext;
    Some(Regs {
        pc: m.pc as usize,
        sp: m.sp as usize,
        fp: m.regs[29] as usize,
        lr: m.regs[30] as usize,
    })
}

/// The calling thread's registration; its destructor unregisters.
struct Registration {
    handle: Cell<Option<ThreadHandle>>,
    /// An alternate signal stack we installed: (mapping, length).
    alt_stack: Cell<Option<(usize, usize)>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            if let Some(slot) = slot(handle.slot as usize) {
                let _guard = slot.requester.lock().unwrap_or_else(|e| e.into_inner());
                slot.tid.store(0, Ordering::Release);
                slot.request.store(0, Ordering::Release);
                slot.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
        if let Some((base, len)) = self.alt_stack.take() {
            // SAFETY: if the thread's alternate stack is still ours, disable it before unmapping
            // it (we are not running on it: this is not a signal handler). If someone replaced
            // it, it is theirs now and ours is left mapped.
            unsafe {
                let mut current: libc::stack_t = std::mem::zeroed();
                if libc::sigaltstack(std::ptr::null(), &mut current) == 0
                    && current.ss_sp as usize == base + page_size()
                {
                    let disable = libc::stack_t {
                        ss_sp: std::ptr::null_mut(),
                        ss_flags: libc::SS_DISABLE,
                        ss_size: 0,
                    };
                    if libc::sigaltstack(&disable, std::ptr::null_mut()) == 0 {
                        libc::munmap(base as *mut libc::c_void, len);
                    }
                }
            }
        }
    }
}

thread_local! {
    static REGISTRATION: Registration = const {
        Registration { handle: Cell::new(None), alt_stack: Cell::new(None) }
    };
}

/// The calling thread's registration, checked against its tid (a child after `fork` inherits its
/// parent's thread-locals, and with them a handle to the parent's thread).
pub(super) fn current_thread_handle() -> Option<ThreadHandle> {
    let handle = REGISTRATION.try_with(|r| r.handle.get()).ok().flatten()?;
    (handle.tid == gettid()).then_some(handle)
}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as usize
    } else {
        4096
    }
}

/// The calling thread's stack, `[lo, hi)`.
pub(super) fn stack_bounds() -> Result<(usize, usize), StackError> {
    // SAFETY: the attribute object is initialized by pthread_getattr_np and destroyed after use;
    // the out-pointers are valid.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let rc = libc::pthread_getattr_np(libc::pthread_self(), &mut attr);
        if rc != 0 {
            return Err(StackError::Registration(rc));
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 {
            return Err(StackError::Registration(rc));
        }
        let lo = addr as usize;
        Ok((lo, lo.saturating_add(size)))
    }
}

/// Installs an alternate signal stack if the thread has none; returns the mapping to free.
fn ensure_alt_stack() -> Result<Option<(usize, usize)>, StackError> {
    // SAFETY: sigaltstack with valid pointers; the mapping is fresh, its lowest page made a guard
    // page, and it stays mapped until the registration's destructor disables it.
    unsafe {
        let mut current: libc::stack_t = std::mem::zeroed();
        if libc::sigaltstack(std::ptr::null(), &mut current) != 0 {
            return Err(StackError::Registration(errno()));
        }
        if current.ss_flags & libc::SS_DISABLE == 0 {
            return Ok(None);
        }
        let page = page_size();
        let len = ALT_STACK_SIZE + page;
        let base = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
            -1,
            0,
        );
        if base == libc::MAP_FAILED {
            return Err(StackError::Registration(errno()));
        }
        libc::mprotect(base, page, libc::PROT_NONE);
        let stack = libc::stack_t {
            ss_sp: base.cast::<u8>().add(page).cast(),
            ss_flags: 0,
            ss_size: ALT_STACK_SIZE,
        };
        if libc::sigaltstack(&stack, std::ptr::null_mut()) != 0 {
            let e = errno();
            libc::munmap(base, len);
            return Err(StackError::Registration(e));
        }
        Ok(Some((base as usize, len)))
    }
}

pub(super) fn register_current_thread() -> Result<ThreadHandle, StackError> {
    // A handle from before a `fork` names the parent's thread: then the thread registers again.
    if let Some(handle) = current_thread_handle() {
        return Ok(handle);
    }
    let tid = gettid();
    install()?;
    let (lo, hi) = stack_bounds()?;
    let alt_stack = ensure_alt_stack()?;
    let registered = REGISTRATION.try_with(|registration| {
        if registration.alt_stack.get().is_none() {
            registration.alt_stack.set(alt_stack);
        }
        let handle = take_slot(tid, lo, hi)?;
        registration.handle.set(Some(handle));
        Ok(handle)
    });
    // New modules may have been loaded since the handler was installed.
    modules::refresh_code_ranges();
    match registered {
        Ok(result) => result,
        Err(_) => {
            // The thread-local is being destroyed: undo the alternate stack.
            if let Some((base, len)) = alt_stack {
                let disable = libc::stack_t {
                    ss_sp: std::ptr::null_mut(),
                    ss_flags: libc::SS_DISABLE,
                    ss_size: 0,
                };
                // SAFETY: not running on that stack; disabled before it is unmapped.
                unsafe {
                    if libc::sigaltstack(&disable, std::ptr::null_mut()) == 0 {
                        libc::munmap(base as *mut libc::c_void, len);
                    }
                }
            }
            Err(StackError::ThreadExiting)
        }
    }
}

/// Finds a free slot (or a new one) and gives it to `tid`.
fn take_slot(tid: i32, lo: usize, hi: usize) -> Result<ThreadHandle, StackError> {
    let _registry = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    let count = SLOT_COUNT.load(Ordering::Acquire);
    // A slot still naming this tid belonged to a thread that exited without its destructor:
    // release it, so that the handler finds only the new one.
    for index in 0..count {
        if let Some(s) = slot(index) {
            if s.tid.load(Ordering::Acquire) == tid {
                let _guard = s.requester.lock().unwrap_or_else(|e| e.into_inner());
                s.tid.store(0, Ordering::Release);
                s.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
    let found = (0..count).find(|&i| slot(i).is_some_and(|s| s.tid.load(Ordering::Acquire) == 0));
    let index = match found {
        Some(index) => index,
        None if count < MAX_SLOTS => {
            let new: &'static Slot = Box::leak(Box::new(Slot::new()));
            SLOTS[count].store(new as *const Slot as usize, Ordering::Release);
            SLOT_COUNT.store(count + 1, Ordering::Release);
            count
        }
        None => return Err(StackError::TooManyThreads),
    };
    let Some(s) = slot(index) else {
        return Err(StackError::TooManyThreads);
    };
    let _guard = s.requester.lock().unwrap_or_else(|e| e.into_inner());
    s.stack_lo.store(lo, Ordering::Relaxed);
    s.stack_hi.store(hi, Ordering::Relaxed);
    s.request.store(0, Ordering::Relaxed);
    s.reply.store(0, Ordering::Relaxed);
    let generation = s.generation.fetch_add(1, Ordering::AcqRel) + 1;
    // Published last: the handler only uses a slot once it finds its tid there.
    s.tid.store(tid, Ordering::Release);
    Ok(ThreadHandle {
        slot: index as u32,
        generation,
        tid,
    })
}

/// The kernel's `siginfo_t` for `rt_tgsigqueueinfo` with `SI_QUEUE` (64-bit layout).
#[repr(C)]
struct QueueInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _pad: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u64; 12],
}

const _: () = assert!(std::mem::size_of::<QueueInfo>() == 128);

/// Queues the signal with request `number` to thread `tid` of this process.
fn send(signal: i32, tid: i32, number: u64) -> Result<(), i32> {
    // SAFETY: getpid and getuid cannot fail.
    let (pid, uid) = unsafe { (libc::getpid(), libc::getuid()) };
    let info = QueueInfo {
        signo: signal,
        errno: 0,
        code: libc::SI_QUEUE,
        _pad: 0,
        pid,
        uid,
        value: TAG | number,
        _rest: [0; 12],
    };
    // SAFETY: `info` is a complete siginfo_t (128 bytes) for the duration of the call; a process
    // may queue any negative si_code to its own threads.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_tgsigqueueinfo,
            pid,
            tid,
            signal,
            &info as *const QueueInfo,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

pub(super) fn capture_thread_stack(
    thread: &ThreadHandle,
    deadline: Instant,
) -> Result<Stack, StackError> {
    let signal = install()?;
    let slot = slot(thread.slot as usize).ok_or(StackError::Gone)?;
    let _guard = slot.requester.lock().unwrap_or_else(|e| e.into_inner());
    if slot.generation.load(Ordering::Acquire) != thread.generation
        || slot.tid.load(Ordering::Acquire) != thread.tid
    {
        return Err(StackError::Gone);
    }
    let number = loop {
        let n = NEXT_REQUEST.fetch_add(1, Ordering::Relaxed) & NUMBER_MASK;
        if n != 0 {
            break n;
        }
    };
    slot.request.store(number, Ordering::SeqCst);
    if let Err(e) = send(signal, thread.tid, number) {
        slot.request.store(0, Ordering::SeqCst);
        return Err(if e == libc::ESRCH {
            StackError::Gone
        } else {
            StackError::Send(e)
        });
    }
    let result = wait(slot, thread, number, deadline);
    slot.request.store(0, Ordering::SeqCst);
    result
}

/// Waits for the reply to `number`: spins briefly, then sleeps in growing steps.
fn wait(
    slot: &Slot,
    thread: &ThreadHandle,
    number: u64,
    deadline: Instant,
) -> Result<Stack, StackError> {
    let mut spins = 0u32;
    let mut pause = Duration::from_micros(20);
    loop {
        if slot.reply.load(Ordering::Acquire) == number {
            let len = slot.len.load(Ordering::Relaxed).min(MAX_FRAMES);
            let frames = (0..len)
                .map(|i| Frame {
                    address: slot.frames[i].load(Ordering::Relaxed),
                    kind: kind_of(slot.kinds[i].load(Ordering::Relaxed)),
                })
                .collect();
            return Ok(Stack {
                tid: thread.tid,
                frames,
                truncated: slot.truncated.load(Ordering::Relaxed),
            });
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(if thread_exists(thread.tid) {
                StackError::Timeout
            } else {
                StackError::Gone
            });
        }
        if spins < 200 {
            spins += 1;
            std::hint::spin_loop();
            continue;
        }
        if !thread_exists(thread.tid) {
            return Err(StackError::Gone);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(1));
    }
}

pub(super) fn loaded_modules() -> Vec<Module> {
    modules::loaded_modules()
}

/// Readies the walk of a fatal signal's stack ([`walk_fatal`]): reads the executable segments of
/// the loaded modules (not async-signal-safe, so done beforehand).
pub(super) fn prepare_fatal_walk() {
    modules::refresh_code_ranges();
}

/// Walks the stack of the context a fatal signal interrupted, on the thread that took it, to
/// `emit` (until it returns false); returns the number of frames it took. Async-signal-safe, like the capture handler's walk.
///
/// # Safety
///
/// `context` must be null or the `ucontext_t` the kernel gave the handler; `[lo, hi)` must be
/// the calling thread's stack (or empty: then only the pc is taken).
pub(super) unsafe fn walk_fatal(
    context: *mut libc::c_void,
    lo: usize,
    hi: usize,
    mut emit: impl FnMut(u64) -> bool,
) -> usize {
    // SAFETY: per the function contract.
    let Some(regs) = (unsafe { registers(context) }) else {
        return 0;
    };
    let mut len = 0usize;
    // SAFETY: `[lo, hi)` is this thread's own stack and we run on this thread; `walk` reads only
    // above the interrupted stack pointer when it lies in that range.
    unsafe {
        walk(regs, lo, hi, &Code, |address, _kind| {
            if !emit(address as u64) {
                return false;
            }
            len += 1;
            true
        })
    };
    len
}

/// The calling thread's stack bounds, `[lo, hi)`, for [`walk_fatal`].
pub(super) fn current_stack_bounds() -> Option<(usize, usize)> {
    stack_bounds().ok()
}
