//! Runtime hooks: one call instruments a `tokio::runtime::Builder`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::runtime::Builder;

use crate::capture::workers;
use crate::engine::global;
use crate::raw::{self, EventKind};
use crate::record::intern::intern_name;

/// The role of a runtime thread in the trace: a worker (it parks and unparks).
pub(crate) const ROLE_WORKER: u64 = 0;
/// The role of a runtime thread in the trace: a blocking-pool thread (or a worker not seen
/// parking yet).
pub(crate) const ROLE_BLOCKING: u64 = 1;

static NEXT_RUNTIME: AtomicU64 = AtomicU64::new(1);

type ThreadHook = Arc<dyn Fn() + Send + Sync>;
#[cfg(tokio_unstable)]
type TaskHook = Arc<dyn Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync>;

/// Instruments a tokio runtime, optionally with a name and hooks of the application's own that
/// run after the recorder's (tokio keeps one callback per hook, so hooks set on the builder
/// after [`Instrumentation::apply`] replace the recorder's, and hooks set before are replaced by
/// it: pass yours here).
///
/// ```
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// builder.enable_all();
/// flight_recorder::tokio::Instrumentation::new()
///     .name("api")
///     .on_thread_start(|| { /* the application's own hook */ })
///     .apply(&mut builder);
/// let runtime = builder.build()?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// What is recorded: each runtime thread tagged with the runtime's id and name, worker park and
/// unpark; and with `--cfg tokio_unstable`, every task's spawn (id, spawn location, parent
/// task), poll start and end, and termination; with the `tokio-schedule-latency` feature too,
/// the time each poll waited since the task was scheduled.
#[derive(Default)]
#[must_use = "call `apply` to instrument a builder"]
pub struct Instrumentation {
    name: Option<String>,
    thread_start: Option<ThreadHook>,
    thread_stop: Option<ThreadHook>,
    thread_park: Option<ThreadHook>,
    thread_unpark: Option<ThreadHook>,
    #[cfg(tokio_unstable)]
    task_spawn: Option<TaskHook>,
    #[cfg(tokio_unstable)]
    task_terminate: Option<TaskHook>,
    #[cfg(tokio_unstable)]
    before_poll: Option<TaskHook>,
    #[cfg(tokio_unstable)]
    after_poll: Option<TaskHook>,
}

/// Instruments `builder` with default settings (the runtime is named `runtime-<n>`); see
/// [`Instrumentation`].
///
/// ```
/// let mut builder = tokio::runtime::Builder::new_current_thread();
/// flight_recorder::tokio::instrument(&mut builder);
/// let runtime = builder.enable_all().build()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn instrument(builder: &mut Builder) -> &mut Builder {
    Instrumentation::new().apply(builder)
}

macro_rules! chain_setter {
    ($(#[$doc:meta])* $name:ident, $field:ident) => {
        $(#[$doc])*
        pub fn $name(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
            self.$field = Some(Arc::new(f));
            self
        }
    };
}

#[cfg(tokio_unstable)]
macro_rules! chain_task_setter {
    ($(#[$doc:meta])* $name:ident, $field:ident) => {
        $(#[$doc])*
        pub fn $name(
            mut self,
            f: impl Fn(&tokio::runtime::TaskMeta<'_>) + Send + Sync + 'static,
        ) -> Self {
            self.$field = Some(Arc::new(f));
            self
        }
    };
}

impl Instrumentation {
    /// Default instrumentation: no name, no hooks of the application's.
    pub fn new() -> Instrumentation {
        Instrumentation::default()
    }

    /// Names the runtime in traces (several runtimes in one process are told apart by name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    chain_setter!(
        /// An application hook to run on every runtime thread's start, after the recorder's.
        on_thread_start,
        thread_start
    );
    chain_setter!(
        /// An application hook to run on every runtime thread's stop.
        on_thread_stop,
        thread_stop
    );
    chain_setter!(
        /// An application hook to run before a worker parks, after the recorder's.
        on_thread_park,
        thread_park
    );
    chain_setter!(
        /// An application hook to run after a worker unparks, after the recorder's.
        on_thread_unpark,
        thread_unpark
    );

    #[cfg(tokio_unstable)]
    chain_task_setter!(
        /// An application hook to run on every task spawn, after the recorder's.
        on_task_spawn,
        task_spawn
    );
    #[cfg(tokio_unstable)]
    chain_task_setter!(
        /// An application hook to run on every task's termination, after the recorder's.
        on_task_terminate,
        task_terminate
    );
    #[cfg(tokio_unstable)]
    chain_task_setter!(
        /// An application hook to run before every task poll, after the recorder's.
        on_before_task_poll,
        before_poll
    );
    #[cfg(tokio_unstable)]
    chain_task_setter!(
        /// An application hook to run after every task poll, after the recorder's.
        on_after_task_poll,
        after_poll
    );

    /// Sets the hooks on `builder`.
    pub fn apply(self, builder: &mut Builder) -> &mut Builder {
        let runtime = NEXT_RUNTIME.fetch_add(1, Ordering::Relaxed);
        let name = self.name.unwrap_or_else(|| format!("runtime-{runtime}"));
        let name = intern_name(&name);

        let user = self.thread_start;
        builder.on_thread_start(move || {
            global::set_runtime(runtime, ROLE_BLOCKING, name);
            crate::stack::cpu::note_runtime_thread();
            // While capture wants stacks: the watchdog may capture this thread's stack.
            workers::register_current_thread();
            if let Some(f) = &user {
                f();
            }
        });
        if let Some(user) = self.thread_stop {
            builder.on_thread_stop(move || user());
        }
        let user = self.thread_park;
        builder.on_thread_park(move || {
            // A thread that parks is a worker; the thread running a current-thread runtime's
            // `block_on` is tagged here too (it was not started by the runtime).
            if global::runtime() != (runtime, ROLE_WORKER, name) {
                global::set_runtime(runtime, ROLE_WORKER, name);
                crate::stack::cpu::note_runtime_thread();
            }
            raw::record(EventKind::WorkerPark, &[]);
            workers::parking();
            if let Some(f) = &user {
                f();
            }
        });
        let user = self.thread_unpark;
        builder.on_thread_unpark(move || {
            raw::record(EventKind::WorkerUnpark, &[]);
            workers::unparked();
            if let Some(f) = &user {
                f();
            }
        });

        #[cfg(tokio_unstable)]
        {
            use super::task_id::{current_task, task_id};
            use crate::record::intern::intern_location;

            let user = self.task_spawn;
            builder.on_task_spawn(move |meta| {
                if raw::is_running() {
                    let location = intern_location(meta.spawned_at());
                    raw::record(
                        EventKind::TaskSpawn,
                        &[task_id(meta.id()), location, current_task()],
                    );
                }
                if let Some(f) = &user {
                    f(meta);
                }
            });
            // The poll hooks run twice per poll: without an application hook, they are the
            // recorder's functions alone, with no test of an `Option` and nothing to do after
            // the event (so nothing kept in registers across it).
            match self.before_poll {
                Some(user) => builder.on_before_task_poll(move |meta| {
                    poll_start(meta);
                    user(meta);
                }),
                None => builder.on_before_task_poll(poll_start),
            };
            match self.after_poll {
                Some(user) => builder.on_after_task_poll(move |meta| {
                    poll_end(meta);
                    user(meta);
                }),
                None => builder.on_after_task_poll(poll_end),
            };
            let user = self.task_terminate;
            builder.on_task_terminate(move |meta| {
                raw::record(EventKind::TaskTerminate, &[task_id(meta.id())]);
                if let Some(f) = &user {
                    f(meta);
                }
            });
            #[cfg(feature = "tokio-schedule-latency")]
            builder.track_task_schedule_latency();
        }
        builder
    }
}

#[cfg(tokio_unstable)]
#[inline]
fn poll_end(meta: &tokio::runtime::TaskMeta<'_>) {
    raw::poll_end_unreported(super::task_id::task_id(meta.id()));
}

#[cfg(tokio_unstable)]
#[inline]
fn poll_start(meta: &tokio::runtime::TaskMeta<'_>) {
    let task = super::task_id::task_id(meta.id());
    #[cfg(feature = "tokio-schedule-latency")]
    if let Some(latency) = meta.schedule_latency() {
        raw::poll_start_scheduled(task, latency.as_nanos().min(u128::from(u64::MAX)) as u64);
        return;
    }
    raw::poll_start(task);
}
