//! tokio integration (feature `tokio`, on by default): runtime hooks and an instrumented spawn.
//!
//! ```
//! let mut builder = tokio::runtime::Builder::new_multi_thread();
//! flight_recorder::tokio::instrument(&mut builder);
//! let runtime = builder.worker_threads(2).enable_all().build()?;
//! runtime.block_on(async {
//!     let task = flight_recorder::tokio::spawn(async { /* ... */ });
//!     task.await.unwrap();
//! });
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! What each build records:
//!
//! | | stable tokio | `--cfg tokio_unstable` |
//! |---|---|---|
//! | runtime threads, names, worker park/unpark | [`instrument`] | [`instrument`] |
//! | spawn (location, parent), polls, end of every task | tasks started with [`spawn`] | every task, by [`instrument`] |
//! | wakes, with the waking task | tasks started with [`spawn`] | tasks started with [`spawn`] |
//! | scheduling latency of each poll | from wake → poll | measured by tokio with the `tokio-schedule-latency` feature |
//! | blocking-pool work | [`spawn_blocking`] | [`spawn_blocking`] |
//! | runtime counters | [`record_runtime_metrics`] | [`record_runtime_metrics`], with more counters |
//!
//! `--cfg tokio_unstable` is set in the application's build, e.g. in its `.cargo/config.toml`:
//!
//! ```toml
//! [build]
//! rustflags = ["--cfg", "tokio_unstable"]
//! ```

mod hooks;
mod metrics;
mod spawn;
mod task_id;
pub(crate) mod waker_slot;

pub use hooks::{instrument, Instrumentation};
pub use metrics::{record_runtime_metrics, MetricsSampler};
pub use spawn::{spawn, spawn_blocking, spawn_in, Instrumented};
