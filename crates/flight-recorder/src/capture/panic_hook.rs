//! The panic trigger: a panic hook that writes a `panic` dump on the panicking thread before the
//! program unwinds or aborts, then calls the hook that was installed before it.
//!
//! The hook is installed once per process, the first time capture starts with `panic` on, and
//! stays: it does nothing while capture is stopped or `panic` is off. The rate limit applies; a
//! panicking thread whose request is folded into a dump in progress waits for that dump (at most
//! 5 s), so that the file is complete before the program goes on. A panic during a dump on the
//! same thread writes nothing more (no recursion, no waiting for itself).

use std::panic::PanicHookInfo;
use std::sync::Once;

use super::trigger::in_dump;
use super::{active_for_panic, report_error, Trigger, TriggerKind, BOUNDED_WAIT};

/// The longest panic message kept in the file's details.
const MAX_MESSAGE: usize = 1024;

static INSTALLED: Once = Once::new();

/// Installs the hook, chaining the current one (once per process).
pub(super) fn install() {
    if std::thread::panicking() {
        // `take_hook` and `set_hook` panic on a panicking thread.
        report_error(
            "installing the panic hook",
            &"called while the thread is panicking; panics will not write dumps",
        );
        return;
    }
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            on_panic(info);
            previous(info);
        }));
    });
}

fn on_panic(info: &PanicHookInfo<'_>) {
    if in_dump() {
        return;
    }
    let Some(capture) = active_for_panic() else {
        return;
    };
    if !capture.settings().panic {
        return;
    }
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
        .unwrap_or_default();
    let thread = std::thread::current();
    let trigger = Trigger {
        kind: TriggerKind::Panic,
        reason: "panic".into(),
        tag: "panic".into(),
        details: vec![
            ("message".into(), truncate(message, MAX_MESSAGE).to_string()),
            ("location".into(), location),
            (
                "thread_name".into(),
                thread.name().unwrap_or_default().to_string(),
            ),
        ],
    };
    // Errors are reported by the write.
    let _ = capture.trigger(trigger, Some(BOUNDED_WAIT));
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
