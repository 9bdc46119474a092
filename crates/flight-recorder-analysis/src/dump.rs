//! Events as lines of text, in file order:
//!
//! ```text
//! 2026-11-22T02:35:36.001Z      +0.000000ms  1:main                  task_spawn task=1 location=src/main.rs:10:5 parent=0
//! 2026-11-22T02:35:36.001Z      +0.000010ms  1:main                  poll_start task=1
//! 2026-11-22T02:35:36.001Z      +0.000013ms  1:main                  region_begin name="handle_request"
//! 2026-11-22T02:35:36.002Z      +1.000213ms  1:main                  log category="http" message="GET /"
//! ```
//!
//! Each line has the event's UTC date with milliseconds, its offset from the first event of the
//! file (negative when a later chunk holds earlier events), its thread (id and name), its kind's
//! name and its arguments, named for the kinds this version of the format defines, with string
//! and location ids resolved through the file's tables.

use std::fmt::Write as _;
use std::io::Read;

use flight_recorder_format::time::format_utc_millis;
use flight_recorder_format::{args, Event, EventKind, TraceReader};

use crate::symbols::{source_at, Symbolizer};

/// Formats events as lines, measuring offsets from the first event it formats.
#[derive(Debug, Default)]
pub struct Dumper {
    origin_ns: Option<u64>,
    symbolizer: Option<Symbolizer>,
}

impl Dumper {
    /// A dumper that has seen no event yet.
    pub fn new() -> Dumper {
        Dumper::default()
    }

    /// The line for `event` (without a newline), read from `reader` (whose tables resolve the
    /// thread's name and the event's string and location ids).
    pub fn line<R: Read>(&mut self, reader: &TraceReader<R>, event: &Event) -> String {
        let origin = *self.origin_ns.get_or_insert(event.time_ns);
        let thread = match reader.threads().get(&event.thread) {
            Some(info) if !info.name.is_empty() => format!("{}:{}", event.thread, info.name),
            _ => event.thread.to_string(),
        };
        format!(
            "{} {:>15}  {thread:<22} {}",
            format_utc_millis(event.time_ns),
            format_offset(event.time_ns, origin),
            describe(reader, event)
        )
    }
}

impl Dumper {
    /// For a `thread_stack` or `cpu_sample` event, its stack's frames, one line each, innermost
    /// first: `#N 0xADDRESS FUNCTION FILE:LINE (MODULE+0xOFFSET)`, with `[inlined]` on functions
    /// inlined into the next line's. Names come from the file's Symbols table, else from the
    /// binaries on this machine when their build ids match; empty for other events.
    pub fn stack_lines<R: Read>(&mut self, reader: &TraceReader<R>, event: &Event) -> Vec<String> {
        let stack = match event.kind() {
            Some(EventKind::ThreadStack) if event.arg_count == 4 => {
                event.args_as::<args::ThreadStack>().stack
            }
            Some(EventKind::CpuSample) if event.arg_count == 4 => {
                event.args_as::<args::CpuSample>().stack
            }
            _ => return Vec::new(),
        };
        let tables = reader.tables();
        let Some(addresses) = tables.stack(stack) else {
            return Vec::new();
        };
        let symbolizer = self
            .symbolizer
            .get_or_insert_with(Symbolizer::with_default_binaries);
        let frames = symbolizer.resolve_stack(tables, addresses);
        let mut out = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            let module = crate::summary::raw_frame_name(f);
            if f.functions.is_empty() {
                out.push(format!("#{i} {:#x} {module}", f.address));
                continue;
            }
            let n = f.functions.len();
            for (j, sym) in f.functions.iter().enumerate() {
                let mut line = format!("#{i} {:#x} ", f.address);
                line.push_str(if sym.function.is_empty() {
                    "?"
                } else {
                    &sym.function
                });
                if j + 1 < n {
                    line.push_str(" [inlined]");
                }
                if !sym.file.is_empty() {
                    let _ = write!(line, " {}", source_at(sym));
                }
                let _ = write!(line, " ({module})");
                out.push(line);
            }
        }
        out
    }
}

/// The event's kind name and arguments, e.g. `poll_start task=42` or
/// `log category="http" message="GET /"`.
///
/// Kinds this version of the format defines get named arguments; other kinds (from a later
/// version, named by the file's kinds table) show their raw arguments `arg0=… arg1=…` and
/// payload.
pub fn describe<R: Read>(reader: &TraceReader<R>, event: &Event) -> String {
    let info = reader.kind_info(event.kind_byte);
    let mut out = info.map_or_else(|| format!("kind_{}", event.kind_byte), |i| i.name.clone());
    let has_payload = info.is_some_and(|i| i.has_payload);
    // Named arguments only when the file lays the kind out as this version does.
    let known = event.kind().filter(|kind| {
        kind.arg_count() == usize::from(event.arg_count) && kind.has_payload() == has_payload
    });
    let string = |id: u64| match reader.string(id) {
        Some(text) => format!("{text:?}"),
        None => format!("#{id}"),
    };
    let user_task = |id: u64| {
        if id == 0 {
            String::new()
        } else {
            format!(" user_task={id}")
        }
    };
    let _ = match known {
        Some(EventKind::ThreadStart)
        | Some(EventKind::ThreadExit)
        | Some(EventKind::WorkerPark)
        | Some(EventKind::WorkerUnpark) => Ok(()),
        Some(EventKind::RegionBegin) => {
            let args::RegionBegin { name, user_task: u } = event.args_as();
            write!(out, " name={}{}", string(name), user_task(u))
        }
        Some(EventKind::RegionEnd) => {
            let args::RegionEnd { name, user_task: u } = event.args_as();
            write!(out, " name={}{}", string(name), user_task(u))
        }
        Some(EventKind::Mark) => {
            let args::Mark { name, user_task: u } = event.args_as();
            write!(out, " name={}{}", string(name), user_task(u))
        }
        Some(EventKind::Log) => {
            let args::Log {
                category,
                user_task: u,
            } = event.args_as();
            write!(
                out,
                " category={}{} message={:?}",
                string(category),
                user_task(u),
                String::from_utf8_lossy(&event.payload)
            )
        }
        Some(EventKind::UserTaskBegin) => {
            let args::UserTaskBegin {
                user_task,
                parent,
                name,
            } = event.args_as();
            write!(
                out,
                " user_task={user_task} parent={parent} name={}",
                string(name)
            )
        }
        Some(EventKind::UserTaskEnd) => {
            let args::UserTaskEnd { user_task } = event.args_as();
            write!(out, " user_task={user_task}")
        }
        Some(EventKind::Counter) => {
            let args::Counter { name, value } = event.args_as();
            write!(out, " name={} value={value}", string(name))
        }
        Some(EventKind::RuntimeThread) => {
            let args::RuntimeThread { runtime, role } = event.args_as();
            let role = match role {
                0 => "worker".to_string(),
                1 => "blocking".to_string(),
                2 => "other".to_string(),
                other => other.to_string(),
            };
            write!(out, " runtime={runtime} role={role}")
        }
        Some(EventKind::RuntimeName) => {
            let args::RuntimeName { runtime, name } = event.args_as();
            write!(out, " runtime={runtime} name={}", string(name))
        }
        Some(EventKind::PendingWithoutWaker) => {
            let args::PendingWithoutWaker { task } = event.args_as();
            write!(out, " task={task}")
        }
        Some(EventKind::PollStartScheduled) => {
            let args::PollStartScheduled { task, scheduled_ns } = event.args_as();
            write!(
                out,
                " task={task} scheduled_for={:.3}us",
                scheduled_ns as f64 / 1e3
            )
        }
        Some(EventKind::TaskSpawn) => {
            let args::TaskSpawn {
                task,
                location,
                parent,
            } = event.args_as();
            let location = match (location, reader.location(location)) {
                (0, _) => "?".to_string(),
                (_, Some(l)) => format!("{}:{}:{}", l.file, l.line, l.column),
                (id, None) => format!("#{id}"),
            };
            write!(out, " task={task} location={location} parent={parent}")
        }
        Some(EventKind::PollStart) => {
            let args::PollStart { task } = event.args_as();
            write!(out, " task={task}")
        }
        Some(EventKind::TaskTerminate) => {
            let args::TaskTerminate { task } = event.args_as();
            write!(out, " task={task}")
        }
        Some(EventKind::PollEnd) => {
            let args::PollEnd { task, result } = event.args_as();
            let result = match result {
                0 => "pending".to_string(),
                1 => "ready".to_string(),
                2 => "unreported".to_string(),
                other => other.to_string(),
            };
            write!(out, " task={task} result={result}")
        }
        Some(EventKind::TaskWake) => {
            let args::TaskWake { task, waker } = event.args_as();
            write!(out, " task={task} waker={waker}")
        }
        Some(kind @ (EventKind::ThreadStack | EventKind::CpuSample)) => {
            for (name, i) in kind.arg_names().iter().zip(0..) {
                let _ = write!(out, " {name}={}", event.arg(i));
            }
            Ok(())
        }
        None => {
            for i in 0..usize::from(event.arg_count) {
                let _ = write!(out, " arg{i}={}", event.arg(i));
            }
            if has_payload {
                let _ = write!(
                    out,
                    " payload={:?}",
                    String::from_utf8_lossy(&event.payload)
                );
            }
            Ok(())
        }
    };
    out
}

/// `+12.345678ms`: the signed offset of `time_ns` from `origin_ns`, in milliseconds to the
/// nanosecond.
fn format_offset(time_ns: u64, origin_ns: u64) -> String {
    let (sign, ns) = if time_ns >= origin_ns {
        ('+', time_ns - origin_ns)
    } else {
        ('-', origin_ns - time_ns)
    };
    format!("{sign}{}.{:06}ms", ns / 1_000_000, ns % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_signed_milliseconds_to_the_nanosecond() {
        assert_eq!(format_offset(5, 5), "+0.000000ms");
        assert_eq!(format_offset(12_345_678, 0), "+12.345678ms");
        assert_eq!(format_offset(0, 1_000_000_001), "-1000.000001ms");
        assert_eq!(format_offset(u64::MAX, 0), "+18446744073709.551615ms");
    }
}
