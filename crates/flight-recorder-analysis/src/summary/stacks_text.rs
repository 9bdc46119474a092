//! Stacks as text: application frames named, runtime and std frames folded.

use std::fmt::Write as _;

use flight_recorder_format::time::format_utc_micros;

use super::{CpuLocation, ThreadStack};
use crate::symbols::{is_library_path, library_of, source_at, ResolvedFrame};

/// One function of a stack, innermost first, as shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Line {
    /// The function, or `module+0xoffset`.
    pub function: String,
    /// `file:line` (short), or empty.
    pub at: String,
    /// Inlined into the next line's function.
    pub inlined: bool,
    /// The library it belongs to; `None` for the application's code.
    pub library: Option<String>,
}

/// The functions of a stack, innermost first, inlined ones expanded.
pub(crate) fn lines(frames: &[ResolvedFrame]) -> Vec<Line> {
    let mut out = Vec::new();
    for frame in frames {
        if frame.functions.is_empty() {
            let module = frame
                .module
                .as_deref()
                .map(|m| m.rsplit('/').next().unwrap_or(m).to_string());
            out.push(Line {
                function: crate::summary::build::raw_frame_name(frame),
                at: String::new(),
                inlined: false,
                library: Some(module.unwrap_or_else(|| "unknown".to_string())),
            });
            continue;
        }
        let n = frame.functions.len();
        for (i, f) in frame.functions.iter().enumerate() {
            out.push(Line {
                function: if f.function.is_empty() {
                    crate::summary::build::raw_frame_name(frame)
                } else {
                    f.function.clone()
                },
                at: source_at(f),
                inlined: i + 1 < n,
                library: library_of(f),
            });
        }
    }
    out
}

/// The first application function of a stack (innermost first), as `function at file:line`.
pub(crate) fn first_app_frame(frames: &[ResolvedFrame]) -> Option<String> {
    lines(frames)
        .into_iter()
        .find(|l| l.library.is_none())
        .map(|l| {
            if l.at.is_empty() {
                l.function
            } else {
                format!("{} at {}", l.function, l.at)
            }
        })
}

/// Whether a spawn location (`file:line:column`) is inside a dependency or the toolchain.
pub(crate) fn location_in_library(location: &str) -> bool {
    if is_library_path(location) || location.starts_with("library/") {
        return true;
    }
    // Shortened: `axum-0.8.9/src/…`.
    let first = location.split('/').next().unwrap_or("");
    location.contains("/src/")
        && first
            .rfind('-')
            .is_some_and(|i| first[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
}

fn fold_text(run: &[&Line]) -> String {
    let mut libs: Vec<&str> = Vec::new();
    for l in run {
        let lib = l.library.as_deref().unwrap_or("?");
        if !libs.contains(&lib) {
            libs.push(lib);
        }
    }
    format!(
        "… {} frame{} in {}",
        run.len(),
        if run.len() == 1 { "" } else { "s" },
        libs.join(", ")
    )
}

/// A stack as lines of text: the innermost function (where the thread was) first, then the
/// application's functions, with the runs of library functions between them folded.
pub(crate) fn render_stack(lines_in: &[Line], indent: &str, out: &mut String) {
    let width = lines_in
        .iter()
        .map(|l| l.function.chars().count() + if l.inlined { 10 } else { 0 })
        .max()
        .unwrap_or(0)
        .min(70);
    let show = |l: &Line, out: &mut String| {
        let name = if l.inlined {
            format!("{} [inlined]", l.function)
        } else {
            l.function.clone()
        };
        let _ = writeln!(out, "{indent}{name:<width$}  {}", l.at);
    };
    let mut i = 0;
    // Application frames first: library frames innermost of the first application frame (a
    // system call under std's `sleep`) fold into one line that names the library function the
    // application called and the innermost one.
    let first_app = lines_in.iter().position(|l| l.library.is_none());
    if let Some(k) = first_app.filter(|&k| k >= 2) {
        let run: Vec<&Line> = lines_in[..k].iter().collect();
        let called = &lines_in[k - 1];
        let _ = writeln!(
            out,
            "{indent}{}: in {}{}, innermost {}",
            fold_text(&run),
            called.function,
            if called.at.is_empty() {
                String::new()
            } else {
                format!(" ({})", called.at)
            },
            lines_in[0].function
        );
        i = k;
    }
    while i < lines_in.len() {
        let l = &lines_in[i];
        if l.library.is_none() || i == 0 {
            show(l, out);
            i += 1;
            continue;
        }
        let start = i;
        while i < lines_in.len() && lines_in[i].library.is_some() {
            i += 1;
        }
        let run: Vec<&Line> = lines_in[start..i].iter().collect();
        if run.len() == 1 && i < lines_in.len() {
            show(run[0], out);
        } else {
            let _ = writeln!(out, "{indent}{}", fold_text(&run));
        }
    }
}

fn cause_name(cause: u64) -> &'static str {
    match cause {
        1 => "slow poll",
        2 => "busy worker, no events",
        3 => "fatal signal",
        _ => "other",
    }
}

/// Several stacks of one thread (a poll's): the first in full, each next one in full when its
/// application frames differ from the one before it ("moved"), else one line.
pub(crate) fn render_stacks(stacks: &[ThreadStack], indent: &str, out: &mut String) {
    let mut previous: Option<Vec<Line>> = None;
    let n = stacks.len();
    for (i, s) in stacks.iter().enumerate() {
        let ls = lines(&s.frames);
        let app: Vec<&Line> = ls.iter().filter(|l| l.library.is_none()).collect();
        let label = if n > 1 {
            format!("stack {}/{n}", i + 1)
        } else {
            "stack".to_string()
        };
        let when = format_utc_micros(s.time_ns);
        if s.stack == 0 {
            let _ = writeln!(out, "{indent}{label} at {when}: the capture failed");
            continue;
        }
        if let Some(prev) = &previous {
            let prev_app: Vec<&Line> = prev.iter().filter(|l| l.library.is_none()).collect();
            if prev_app == app {
                let _ = writeln!(
                    out,
                    "{indent}{label} at {when}: has not moved (same application frames)"
                );
                previous = Some(ls);
                continue;
            }
        }
        let moved = if previous.is_some() { ", moved" } else { "" };
        let _ = writeln!(
            out,
            "{indent}{label} at {when} ({}{moved}), innermost first:",
            cause_name(s.cause)
        );
        render_stack(&ls, &format!("{indent}  "), out);
        if s.looks_truncated() {
            let last = ls.last().map(|l| l.function.as_str()).unwrap_or("");
            let _ = writeln!(
                out,
                "{indent}  (looks truncated: the outermost frame, {last}, is not a thread's \
                 entry; build with -C force-frame-pointers=yes)"
            );
        }
        previous = Some(ls);
    }
}

/// The "where CPU time went" table.
pub(crate) fn render_cpu(cpu: &[CpuLocation], top: usize, out: &mut String) {
    let total: u64 = cpu.iter().map(|c| c.samples).sum();
    let _ = writeln!(out, "\nwhere CPU time went: {total} samples");
    for c in cpu.iter().take(top.max(1)) {
        let _ = writeln!(
            out,
            "  {}: {} samples ({:.1}%)",
            c.location,
            c.samples,
            c.samples as f64 * 100.0 / total.max(1) as f64
        );
        if let Some(app) = c
            .app_frame
            .as_ref()
            .filter(|_| location_in_library(&c.location))
        {
            let _ = writeln!(
                out,
                "    spawned inside a library; application frame: {app}"
            );
        }
        let width = c
            .functions
            .iter()
            .map(|f| f.function.chars().count())
            .max()
            .unwrap_or(0)
            .clamp(8, 70);
        let _ = writeln!(
            out,
            "    {:>6}  {:>6}  {:<width$}  at",
            "self", "total", "function"
        );
        for f in &c.functions {
            let _ = writeln!(
                out,
                "    {:>6}  {:>6}  {:<width$}  {}",
                f.self_samples, f.total_samples, f.function, f.location
            );
        }
    }
}
