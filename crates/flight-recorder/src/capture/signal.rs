//! The signal trigger: `SIGUSR2` by default. signal-hook's handler only writes to a pipe; a
//! dedicated thread reads it and writes the dump, so nothing but that write happens in the
//! signal handler.
//!
//! When capture stops, the listener is closed and signal-hook unregisters its action; the
//! signal is then ignored rather than given back its default action (which for `SIGUSR2` would
//! end the process).

use std::io;
use std::thread::JoinHandle;

use signal_hook::iterator::{Handle, Signals};

use super::settings::signal_name;
use super::{active, Trigger, TriggerKind};

/// A thread that writes a dump for every delivery of one signal.
pub(super) struct SignalListener {
    handle: Handle,
    thread: JoinHandle<()>,
}

impl SignalListener {
    /// Registers the signal and starts the thread.
    pub(super) fn start(number: i32) -> io::Result<SignalListener> {
        let mut signals = Signals::new([number])?;
        let handle = signals.handle();
        let spawned = std::thread::Builder::new()
            .name("flight-recorder-signal".into())
            .spawn(move || {
                for signal in signals.forever() {
                    let Some(capture) = active() else { continue };
                    let trigger = Trigger {
                        kind: TriggerKind::Signal,
                        reason: "signal".into(),
                        tag: "signal".into(),
                        details: vec![("signal".into(), signal_name(signal))],
                    };
                    // Errors are reported by the write; a suppressed trigger is counted.
                    let _ = capture.trigger(trigger, None);
                }
            });
        match spawned {
            Ok(thread) => Ok(SignalListener { handle, thread }),
            Err(e) => {
                handle.close();
                Err(e)
            }
        }
    }

    /// Unregisters the signal and waits for the thread (and a dump it is writing).
    pub(super) fn stop(self) {
        self.handle.close();
        if self.thread.thread().id() != std::thread::current().id() {
            let _ = self.thread.join();
        }
    }
}
