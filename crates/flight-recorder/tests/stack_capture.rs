//! Stack capture of other threads (`flight_recorder::stack`), with real threads, blocking calls
//! and child processes.
#![cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]

use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use flight_recorder::stack::{
    capture_thread_stack, register_current_thread, FrameKind, Stack, StackError, ThreadHandle,
};

/// One resolved frame: a function, maybe inlined into the next one.
#[derive(Debug)]
struct Resolved {
    /// How the frame's address was found.
    kind: FrameKind,
    name: String,
    file: Option<String>,
    line: Option<u32>,
}

/// Resolves every frame of a stack (inlined frames included, innermost first).
fn resolve(stack: &Stack) -> Vec<Resolved> {
    let mut out = Vec::new();
    for frame in &stack.frames {
        let mut found = false;
        backtrace::resolve(frame.lookup_address() as *mut std::ffi::c_void, |symbol| {
            found = true;
            out.push(Resolved {
                kind: frame.kind,
                name: symbol
                    .name()
                    .map(|n| format!("{n:#}"))
                    .unwrap_or_else(|| "?".into()),
                file: symbol.filename().map(|p| p.display().to_string()),
                line: symbol.lineno(),
            });
        });
        if !found {
            out.push(Resolved {
                kind: frame.kind,
                name: format!("{:#x}", frame.address),
                file: None,
                line: None,
            });
        }
    }
    out
}

fn show(stack: &Stack) -> String {
    let resolved = resolve(stack);
    let kinds: Vec<_> = stack.frames.iter().map(|f| f.kind).collect();
    let mut text = format!("tid {} kinds {:?}\n", stack.tid, kinds);
    for r in resolved {
        text.push_str(&format!(
            "    {:?} {} ({}:{})\n",
            r.kind,
            r.name,
            r.file.as_deref().unwrap_or("?"),
            r.line.unwrap_or(0)
        ));
    }
    text
}

/// Captures until a resolved frame names `function` with a source line (the thread may not be
/// inside it yet, and a sampled instruction may be one the compiler gave no line, line 0);
/// returns that frame and the stack.
fn capture_until(thread: &ThreadHandle, function: &str) -> (Resolved, Stack) {
    let mut last = String::new();
    for _ in 0..200 {
        let stack =
            capture_thread_stack(thread, Instant::now() + Duration::from_secs(5)).expect("capture");
        assert_eq!(stack.tid, thread.tid());
        assert_eq!(stack.frames[0].kind, FrameKind::Pc);
        let found = resolve(&stack)
            .into_iter()
            .find(|r| r.name.ends_with(function) && r.line.is_some_and(|l| l > 0));
        if let Some(found) = found {
            eprintln!("{function} (found as {:?}):\n{}", found.kind, show(&stack));
            return (found, stack);
        }
        last = show(&stack);
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no capture named {function}; the last one:\n{last}");
}

fn assert_located(found: &Resolved) {
    let file = found.file.as_deref().unwrap_or("");
    assert!(file.ends_with("stack_capture.rs"), "{found:?}");
    assert!(found.line.is_some_and(|l| l > 0), "{found:?}");
}

/// Starts a registered thread running `body`, and returns its handle once it is about to run.
fn spawn_registered<F: FnOnce() + Send + 'static>(
    body: F,
) -> (ThreadHandle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel();
    let join = std::thread::spawn(move || {
        tx.send(register_current_thread().expect("register"))
            .unwrap();
        body();
    });
    (rx.recv().unwrap(), join)
}

#[inline(never)]
fn stuck_in_sleep(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[inline(never)]
fn stuck_spinning(stop: &AtomicBool) -> u64 {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n = std::hint::black_box(n.wrapping_mul(31).wrapping_add(7));
    }
    n
}

#[inline(never)]
fn stuck_in_pipe_read(file: &mut std::fs::File) -> std::io::Result<usize> {
    let mut buf = [0u8; 1];
    file.read(&mut buf)
}

#[inline(never)]
fn stuck_on_mutex(mutex: &Mutex<u32>) -> u32 {
    *mutex.lock().unwrap()
}

#[test]
fn a_sleeping_thread() {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (thread, join) = spawn_registered(move || stuck_in_sleep(&s));
    std::thread::sleep(Duration::from_millis(50));
    let (found, _) = capture_until(&thread, "stuck_in_sleep");
    assert_located(&found);
    stop.store(true, Ordering::Relaxed);
    join.join().unwrap();
}

#[test]
fn a_spinning_thread() {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (thread, join) = spawn_registered(move || {
        std::hint::black_box(stuck_spinning(&s));
    });
    let (found, _) = capture_until(&thread, "stuck_spinning");
    assert_located(&found);
    stop.store(true, Ordering::Relaxed);
    join.join().unwrap();
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: fresh descriptors, each owned by one File.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}

#[test]
fn a_thread_blocked_reading_a_pipe() {
    let (mut reader, mut writer) = pipe();
    let (done_tx, done_rx) = mpsc::channel();
    let (thread, join) = spawn_registered(move || {
        done_tx.send(stuck_in_pipe_read(&mut reader)).unwrap();
    });
    std::thread::sleep(Duration::from_millis(50));
    let (found, _) = capture_until(&thread, "stuck_in_pipe_read");
    assert_located(&found);
    // The read was restarted (SA_RESTART): it returns the byte, not `Interrupted`.
    writer.write_all(b"x").unwrap();
    assert_eq!(done_rx.recv().unwrap().unwrap(), 1);
    join.join().unwrap();
}

#[test]
fn a_thread_waiting_on_a_mutex() {
    let mutex = Arc::new(Mutex::new(7u32));
    let guard = mutex.lock().unwrap();
    let m = mutex.clone();
    let (thread, join) = spawn_registered(move || {
        assert_eq!(stuck_on_mutex(&m), 8);
    });
    std::thread::sleep(Duration::from_millis(50));
    let (found, _) = capture_until(&thread, "stuck_on_mutex");
    assert_located(&found);
    let mut guard = guard;
    *guard = 8;
    drop(guard);
    join.join().unwrap();
}

#[inline(never)]
fn capture_myself(thread: &ThreadHandle) -> Stack {
    capture_thread_stack(thread, Instant::now() + Duration::from_secs(5)).unwrap()
}

#[test]
fn a_thread_captures_itself() {
    let thread = register_current_thread().unwrap();
    assert_eq!(register_current_thread().unwrap(), thread, "idempotent");
    let stack = capture_myself(&thread);
    let names: Vec<_> = resolve(&stack).into_iter().map(|r| r.name).collect();
    assert!(
        names.iter().any(|n| n.ends_with("capture_myself")),
        "{}",
        show(&stack)
    );
}

#[test]
fn an_exited_thread_is_gone() {
    let thread = std::thread::spawn(|| register_current_thread().unwrap())
        .join()
        .unwrap();
    let started = Instant::now();
    let result = capture_thread_stack(&thread, Instant::now() + Duration::from_secs(5));
    assert_eq!(result, Err(StackError::Gone));
    assert!(started.elapsed() < Duration::from_secs(1));
    // Its slot is reused by a new thread; the old handle still names the old thread.
    let (tx, rx) = mpsc::channel::<()>();
    let (other, join) = spawn_registered(move || {
        let _ = rx.recv();
    });
    assert_ne!(other, thread);
    assert_eq!(
        capture_thread_stack(&thread, Instant::now() + Duration::from_secs(5)),
        Err(StackError::Gone)
    );
    assert!(capture_thread_stack(&other, Instant::now() + Duration::from_secs(5)).is_ok());
    tx.send(()).unwrap();
    join.join().unwrap();
}

#[test]
fn the_signal_cannot_change_once_installed() {
    register_current_thread().unwrap();
    let signal = flight_recorder::stack::signal();
    assert!(flight_recorder::stack::is_installed());
    assert_eq!(flight_recorder::stack::set_signal(signal), Ok(()));
    assert_eq!(
        flight_recorder::stack::set_signal(signal + 1),
        Err(StackError::InvalidSignal(signal + 1))
    );
    assert_eq!(
        flight_recorder::stack::set_signal(libc::SIGUSR1),
        Err(StackError::InvalidSignal(libc::SIGUSR1))
    );
    assert_eq!(signal, flight_recorder::stack::default_signal());
    assert_eq!(signal, libc::SIGRTMIN() + 4);
}

#[test]
fn a_foreign_signal_without_an_earlier_handler_is_ignored() {
    // No handler was installed for the signal before ours in this process: a signal that is not
    // ours (here from pthread_kill) is ignored rather than ending the process.
    register_current_thread().unwrap();
    // SAFETY: a signal to this thread, whose handler is installed.
    let rc = unsafe { libc::pthread_kill(libc::pthread_self(), flight_recorder::stack::signal()) };
    assert_eq!(rc, 0);
}

#[test]
fn concurrent_requesters_to_the_same_and_different_threads() {
    let stop = Arc::new(AtomicBool::new(false));
    let targets: Vec<_> = (0..2)
        .map(|_| {
            let s = stop.clone();
            spawn_registered(move || {
                std::hint::black_box(stuck_spinning(&s));
            })
        })
        .collect();
    let handles: Vec<ThreadHandle> = targets.iter().map(|(h, _)| *h).collect();
    let requesters: Vec<_> = (0..4)
        .map(|r| {
            let handles = handles.clone();
            std::thread::spawn(move || {
                for i in 0..150 {
                    let target = &handles[(r + i) % handles.len()];
                    let stack =
                        capture_thread_stack(target, Instant::now() + Duration::from_secs(5))
                            .expect("capture");
                    assert_eq!(stack.tid, target.tid());
                    assert!(!stack.frames.is_empty() && stack.frames[0].address != 0);
                }
            })
        })
        .collect();
    for r in requesters {
        r.join().unwrap();
    }
    // Every target still answers with its own stack.
    for h in &handles {
        capture_until(h, "stuck_spinning");
    }
    stop.store(true, Ordering::Relaxed);
    for (_, join) in targets {
        join.join().unwrap();
    }
}

/// What the documentation says an application may notice: a socket read with a timeout
/// (`SO_RCVTIMEO`) is not restarted by `SA_RESTART` and hands `Interrupted` to the caller, while
/// `read_exact` retries it.
#[test]
fn a_socket_read_with_a_timeout_sees_interrupted() {
    let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let interrupted = Arc::new(AtomicUsize::new(0));
    let seen = interrupted.clone();
    let (thread, join) = spawn_registered(move || {
        let mut theirs = theirs;
        theirs
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 4];
        // Plain reads until the first byte arrives.
        loop {
            match theirs.read(&mut buf[..1]) {
                Ok(1) => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
                other => panic!("{other:?}"),
            }
        }
        // read_exact retries `Interrupted`.
        theirs.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"abcd");
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while interrupted.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the read was never interrupted");
        std::thread::sleep(Duration::from_millis(20));
        capture_thread_stack(&thread, Instant::now() + Duration::from_secs(5)).unwrap();
    }
    ours.write_all(b"x").unwrap();
    // Now blocked in read_exact: interrupt it a few times, then feed it.
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(10));
        capture_thread_stack(&thread, Instant::now() + Duration::from_secs(5)).unwrap();
    }
    ours.write_all(b"ab").unwrap();
    std::thread::sleep(Duration::from_millis(10));
    capture_thread_stack(&thread, Instant::now() + Duration::from_secs(5)).unwrap();
    ours.write_all(b"cd").unwrap();
    join.join().unwrap();
}

/// The environment variable that makes [`chain_child`] run.
const CHAIN_CHILD: &str = "FLIGHT_RECORDER_STACK_CHAIN_CHILD";

static EARLIER_HANDLER_CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn earlier_handler(
    _signal: libc::c_int,
    _info: *mut libc::siginfo_t,
    _context: *mut libc::c_void,
) {
    EARLIER_HANDLER_CALLS.fetch_add(1, Ordering::SeqCst);
}

fn wait_for_calls(expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while EARLIER_HANDLER_CALLS.load(Ordering::SeqCst) < expected {
        assert!(
            Instant::now() < deadline,
            "the earlier handler was not called"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(EARLIER_HANDLER_CALLS.load(Ordering::SeqCst), expected);
}

/// In the child process of [`an_earlier_handler_still_gets_its_signals`]: installs a handler
/// for the stack signal before stacks do, then checks that it still gets the signals that are
/// not ours and never ours. In a normal test run, does nothing.
#[test]
fn chain_child() {
    if std::env::var_os(CHAIN_CHILD).is_none() {
        return;
    }
    let signal = flight_recorder::stack::signal();
    assert!(!flight_recorder::stack::is_installed());
    // SAFETY: installs a handler that only increments an atomic.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = earlier_handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
    }
    let me = register_current_thread().unwrap();
    // SAFETY: signals to this process and thread; both handlers are installed.
    unsafe {
        assert_eq!(libc::pthread_kill(libc::pthread_self(), signal), 0);
        wait_for_calls(1);
        assert_eq!(
            libc::sigqueue(
                libc::getpid(),
                signal,
                libc::sigval {
                    sival_ptr: 7 as *mut _
                }
            ),
            0
        );
        wait_for_calls(2);
        assert_eq!(libc::kill(libc::getpid(), signal), 0);
        wait_for_calls(3);
    }
    // Captures of this thread and another one: answered by stacks, never passed on.
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (other, join) = spawn_registered(move || {
        std::hint::black_box(stuck_spinning(&s));
    });
    for _ in 0..20 {
        capture_thread_stack(&me, Instant::now() + Duration::from_secs(5)).unwrap();
        capture_thread_stack(&other, Instant::now() + Duration::from_secs(5)).unwrap();
    }
    // The same from another thread, which resolves this one's stack.
    let from_other = std::thread::spawn(move || {
        capture_thread_stack(&me, Instant::now() + Duration::from_secs(5)).unwrap()
    })
    .join()
    .unwrap();
    let names: Vec<_> = resolve(&from_other).into_iter().map(|r| r.name).collect();
    assert!(
        names.iter().any(|n| n.ends_with("chain_child")),
        "{}",
        show(&from_other)
    );
    stop.store(true, Ordering::Relaxed);
    join.join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(EARLIER_HANDLER_CALLS.load(Ordering::SeqCst), 3);
    // SAFETY: getpid cannot fail.
    let main_thread = me.tid() == unsafe { libc::getpid() };
    println!("chain child: ok (on the main thread: {main_thread})");
}

#[test]
fn an_earlier_handler_still_gets_its_signals() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new(exe)
        .args(["--exact", "chain_child", "--nocapture", "--test-threads=1"])
        .env(CHAIN_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("chain child: ok"),
        "{:?}\n{stdout}\n{stderr}",
        output.status
    );
    eprintln!(
        "{}",
        stdout
            .lines()
            .find(|l| l.contains("chain child"))
            .unwrap_or("")
    );
}

fn set_signal_blocked(blocked: bool) {
    // SAFETY: changes this thread's signal mask only.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, flight_recorder::stack::signal());
        let how = if blocked {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        assert_eq!(libc::pthread_sigmask(how, &set, std::ptr::null_mut()), 0);
    }
}

/// A thread that blocks the signal cannot answer: the capture times out. Its late reply, when it
/// unblocks the signal, is dropped, and the next capture gets a fresh stack.
#[test]
fn a_late_reply_is_dropped() {
    let (unblock_tx, unblock_rx) = mpsc::channel::<()>();
    let (unblocked_tx, unblocked_rx) = mpsc::channel::<()>();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (thread, join) = spawn_registered(move || {
        set_signal_blocked(true);
        unblock_rx.recv().unwrap();
        // The pending signal is delivered here, for a request that has timed out.
        set_signal_blocked(false);
        unblocked_tx.send(()).unwrap();
        std::hint::black_box(stuck_spinning(&s));
    });
    // Let the thread block the signal (it does so before waiting on the channel).
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let result = capture_thread_stack(&thread, Instant::now() + Duration::from_millis(100));
    assert_eq!(result, Err(StackError::Timeout));
    assert!(started.elapsed() >= Duration::from_millis(100));
    unblock_tx.send(()).unwrap();
    unblocked_rx.recv().unwrap();
    // The late reply did not count: the next capture sees the thread where it is now.
    capture_until(&thread, "stuck_spinning");
    stop.store(true, Ordering::Relaxed);
    join.join().unwrap();
}
