//! CPU samples of the runtime's threads: where each thread was running, `hz` times per second of
//! the CPU time it used.
//!
//! Two sources, chosen when sampling starts:
//!
//! - **`perf_event_open`** (preferred): a software CPU-clock event per thread, sampling at `hz`
//!   with the thread's user-space call chain and a `CLOCK_MONOTONIC` time (`perf.rs`). The kernel
//!   takes the samples; nothing runs on the sampled threads.
//! - **CPU-time timers** (when `perf_event_open` is refused: `perf_event_paranoid`, seccomp, a
//!   container): a POSIX timer per thread on its CPU-time clock, whose signal makes the thread
//!   walk its own stack into a ring (`timer.rs`), with the walker of stuck-worker stacks.
//!
//! Either way a [`Sampler`] owned by one thread (capture's sampler thread) follows the runtime
//! threads ([`note_runtime_thread`], called by the tokio hooks), and hands the samples it drains
//! to its caller, which records them.

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod perf;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod registry;
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod timer;

/// Which source a sampler uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// `perf_event_open`, one software CPU-clock event per thread.
    PerfEvent,
    /// CPU-time timers and a signal, because `perf_event_open` was refused with this `errno`
    /// (`None`: not tried, the timers were asked for).
    Timers(Option<i32>),
}

impl Source {
    /// How the start-up line names it.
    pub(crate) fn describe(&self) -> String {
        match self {
            Source::PerfEvent => "perf_event".into(),
            Source::Timers(Some(errno)) => format!(
                "cpu-time timers: perf_event_open refused: {}; signal {}",
                std::io::Error::from_raw_os_error(*errno),
                timer_signal().unwrap_or(0)
            ),
            Source::Timers(None) => {
                format!("cpu-time timers; signal {}", timer_signal().unwrap_or(0))
            }
        }
    }
}

/// The signal of the CPU-time timer source (`SIGRTMIN() + 5`), if this platform has one.
pub(crate) fn timer_signal() -> Option<i32> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        Some(timer::timer_signal())
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        None
    }
}

#[cfg_attr(not(feature = "tokio"), allow(dead_code))]
/// Notes the calling thread as a runtime thread to sample (the tokio hooks call it when a
/// runtime thread starts, and when a worker first parks). Cheap after the first call.
pub(crate) fn note_runtime_thread() {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    registry::note_runtime_thread();
}

/// Chooses the source for sampling at `hz`: the timers when `force_timers`, else
/// `perf_event_open` if the kernel lets this process open an event on the calling thread, else
/// the timers. `None` on platforms without CPU samples.
pub(crate) fn choose_source(hz: u32, force_timers: bool) -> Option<Source> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        if force_timers {
            return Some(Source::Timers(None));
        }
        Some(match perf::probe(hz) {
            Ok(()) => Source::PerfEvent,
            Err(errno) => Source::Timers(Some(errno)),
        })
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        let _ = (hz, force_timers);
        None
    }
}

/// One sampled thread.
enum Sampled {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    Perf(perf::PerfThread),
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    Timer(timer::TimerThread),
    /// No source on this platform: never built.
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    #[allow(dead_code)]
    Unsupported(std::convert::Infallible),
}

impl Sampled {
    fn tid(&self) -> i32 {
        match *self {
            #[cfg(all(
                target_os = "linux",
                any(target_arch = "x86_64", target_arch = "aarch64")
            ))]
            Sampled::Perf(ref p) => p.tid,
            #[cfg(all(
                target_os = "linux",
                any(target_arch = "x86_64", target_arch = "aarch64")
            ))]
            Sampled::Timer(ref t) => t.tid,
            #[cfg(not(all(
                target_os = "linux",
                any(target_arch = "x86_64", target_arch = "aarch64")
            )))]
            Sampled::Unsupported(never) => match never {},
        }
    }
}

/// Samples the runtime threads with one source at one rate, from the thread that owns it.
pub(crate) struct Sampler {
    source: Source,
    hz: u32,
    threads: Vec<Sampled>,
    /// Threads that could not be sampled (the event or timer could not be set up), by tid, so
    /// that they are not retried every tick.
    failed: Vec<i32>,
    buffer: Vec<u8>,
    frames: Vec<u64>,
    /// Bytes of ring buffers held.
    ring_bytes: usize,
}

impl Sampler {
    /// A sampler at `hz` with `source`; it samples nothing until [`Sampler::sync_threads`].
    pub(crate) fn new(source: Source, hz: u32) -> Sampler {
        Sampler {
            source,
            hz,
            threads: Vec::new(),
            failed: Vec::new(),
            buffer: Vec::new(),
            frames: Vec::new(),
            ring_bytes: 0,
        }
    }

    /// The source.
    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    /// The rate.
    pub(crate) fn hz(&self) -> u32 {
        self.hz
    }

    /// The threads sampled now.
    pub(crate) fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Starts sampling the runtime threads that started since the last call, and stops sampling
    /// those that exited. Returns the errors (tid, errno) of threads that could not be sampled.
    pub(crate) fn sync_threads(&mut self) -> Vec<(i32, i32)> {
        #[cfg(all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64")
        ))]
        {
            let live = registry::runtime_threads();
            let before = self.threads.len();
            self.threads
                .retain(|s| live.iter().any(|t| t.tid == s.tid()));
            if self.threads.len() != before {
                self.ring_bytes = self.threads.iter().map(ring_bytes).sum();
            }
            self.failed.retain(|tid| live.iter().any(|t| t.tid == *tid));
            let mut errors = Vec::new();
            let new: Vec<_> = live
                .iter()
                .filter(|t| {
                    !self.threads.iter().any(|s| s.tid() == t.tid) && !self.failed.contains(&t.tid)
                })
                .collect();
            if new.is_empty() {
                return errors;
            }
            let pages = perf::data_pages_for(live.len());
            for t in new {
                let opened = match self.source {
                    Source::PerfEvent => {
                        perf::PerfThread::open(t.tid, self.hz, pages).map(Sampled::Perf)
                    }
                    Source::Timers(_) => timer::TimerThread::open(
                        t.tid,
                        t.cpu_clock,
                        t.stack_lo,
                        t.stack_hi,
                        self.hz,
                    )
                    .map(Sampled::Timer),
                };
                match opened {
                    Ok(sampled) => {
                        self.ring_bytes += ring_bytes(&sampled);
                        self.threads.push(sampled);
                    }
                    // The thread exited in between: it leaves the list by itself.
                    Err(libc::ESRCH) => {}
                    Err(e) => {
                        self.failed.push(t.tid);
                        errors.push((t.tid, e));
                    }
                }
            }
            errors
        }
        #[cfg(not(all(
            target_os = "linux",
            any(target_arch = "x86_64", target_arch = "aarch64")
        )))]
        {
            Vec::new()
        }
    }

    /// Bytes of ring buffers held (the perf rings mapped, or the timer rings in use).
    pub(crate) fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// Reads every sample taken since the last call: each goes to `sample(tid, monotonic_ns,
    /// frames)`, frames innermost first (the first is the interrupted pc, the others return
    /// addresses). Returns the samples lost (rings full).
    pub(crate) fn drain(&mut self, sample: &mut dyn FnMut(i32, u64, &[u64])) -> u64 {
        let mut lost = 0;
        for s in &mut self.threads {
            match s {
                #[cfg(all(
                    target_os = "linux",
                    any(target_arch = "x86_64", target_arch = "aarch64")
                ))]
                Sampled::Perf(p) => lost += p.drain(&mut self.buffer, &mut self.frames, sample),
                #[cfg(all(
                    target_os = "linux",
                    any(target_arch = "x86_64", target_arch = "aarch64")
                ))]
                Sampled::Timer(t) => lost += t.drain(&mut self.frames, sample),
                #[cfg(not(all(
                    target_os = "linux",
                    any(target_arch = "x86_64", target_arch = "aarch64")
                )))]
                Sampled::Unsupported(never) => match *never {},
            }
        }
        let _ = sample;
        lost
    }
}

#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn ring_bytes(s: &Sampled) -> usize {
    match s {
        Sampled::Perf(p) => p.ring_bytes(),
        Sampled::Timer(_) => timer::RING_ENTRIES * (timer::RING_FRAMES * 8 + 12),
    }
}
