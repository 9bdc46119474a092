//! The summary as aligned text for people.

use std::fmt::Write as _;

use flight_recorder_format::time::{format_utc_micros, format_utc_millis};
use flight_recorder_format::units::format_duration;

use super::*;
use crate::histogram::display_labels;

impl Summary {
    /// The header's details as one line: the `trigger` detail first, then the others as
    /// `name=value` (the `suppressed.KIND` counts go to the `suppressed` line instead). `None`
    /// without details.
    fn trigger_text(&self) -> Option<String> {
        let details = &self.header.details;
        let trigger: Vec<&str> = details
            .iter()
            .filter(|(k, _)| k == "trigger")
            .map(|(_, v)| v.as_str())
            .collect();
        let others: Vec<String> = details
            .iter()
            .filter(|(k, _)| k != "trigger" && !k.starts_with("suppressed."))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        match (trigger.is_empty(), others.is_empty()) {
            (true, true) => None,
            (true, false) => Some(others.join(", ")),
            (false, true) => Some(trigger.join(", ")),
            (false, false) => Some(format!("{} ({})", trigger.join(", "), others.join(", "))),
        }
    }

    /// `N triggered dumps since the previous file (KIND N, ...)`.
    fn suppressed_text(&self) -> String {
        let kinds: Vec<String> = self
            .header
            .details
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("suppressed.")
                    .map(|kind| format!("{kind} {v}"))
            })
            .collect();
        let mut text = format!(
            "{} triggered dumps suppressed since the previous file",
            self.header.suppressed_triggers
        );
        if !kinds.is_empty() {
            let _ = write!(text, " ({})", kinds.join(", "));
        }
        text
    }

    fn edge_notes(&self) -> Vec<String> {
        let e = &self.edges;
        let mut notes = Vec::new();
        let mut note = |n: u64, what: &str| {
            if n > 0 {
                notes.push(format!("{n} {what}"));
            }
        };
        note(
            e.poll_ends_without_start,
            "poll ends without start (dropped)",
        );
        note(
            e.polls_open_at_end,
            "polls running at the end (closed there)",
        );
        note(
            e.region_ends_without_begin,
            "region ends without begin (dropped)",
        );
        note(
            e.regions_open_at_end,
            "regions open at the end (closed there)",
        );
        note(e.regions_too_deep, "region begins past depth 256 (dropped)");
        note(
            e.user_task_ends_without_begin,
            "user task ends without begin (dropped)",
        );
        note(
            e.user_tasks_open_at_end,
            "user tasks open at the end (closed there)",
        );
        notes
    }

    /// The summary as aligned text for people: facts, then the analyses (tasks by location,
    /// scheduling latency, long polls, worker utilization, user tasks, regions, logs,
    /// counters), then tables of the event kinds and the threads. Ends with a newline.
    pub fn render_text(&self) -> String {
        let h = &self.header;
        let mut facts: Vec<(&str, String)> = Vec::new();
        if let Some(path) = &self.path {
            facts.push(("trace", path.clone()));
        }
        facts.push(("mode", h.mode.clone()));
        facts.push(("reason", h.reason.clone()));
        if !h.tag.is_empty() {
            facts.push(("tag", h.tag.clone()));
        }
        facts.push(("program", format!("{} (pid {})", h.program, h.pid)));
        if h.service_name() != h.program {
            facts.push(("service", h.service_name().to_string()));
        }
        if !h.program_version.is_empty() {
            facts.push(("version", h.program_version.clone()));
        }
        facts.push(("host", h.host.clone()));
        if !h.cmdline.is_empty() {
            facts.push(("command", h.cmdline.clone()));
        }
        facts.push(("recorder", h.recorder_version.clone()));
        if let Some(trigger) = self.trigger_text() {
            facts.push(("trigger", trigger));
        }
        if h.suppressed_triggers != 0 {
            facts.push(("suppressed", self.suppressed_text()));
        }
        facts.push(("clock", h.clock.source.clone()));
        if h.min_age_ns != 0 || h.max_bytes != 0 {
            facts.push((
                "settings",
                format!(
                    "min_age {}, max_bytes {}, chunk_size {}",
                    format_duration(h.min_age_ns),
                    h.max_bytes,
                    h.chunk_size
                ),
            ));
        } else if h.chunk_size != 0 {
            facts.push(("settings", format!("chunk_size {}", h.chunk_size)));
        }
        facts.push((
            "complete",
            if self.complete { "yes" } else { "no" }.to_string(),
        ));
        if let Some(error) = &self.error {
            facts.push(("error", error.clone()));
        }
        match &self.window {
            Some(w) => {
                facts.push((
                    "window",
                    format!(
                        "{} .. {}",
                        format_utc_millis(w.start_ns),
                        format_utc_millis(w.end_ns)
                    ),
                ));
                facts.push(("duration", format_duration(w.duration_ns())));
            }
            None => facts.push(("window", "no events".to_string())),
        }
        facts.push(("events", self.events.to_string()));
        let workers = self
            .utilization
            .threads
            .iter()
            .filter(|t| t.basis == "unparked")
            .count();
        facts.push((
            "threads",
            format!("{} ({workers} with park/unpark)", self.threads.len()),
        ));
        for rt in &self.runtimes {
            let name = if rt.name.is_empty() {
                format!("runtime {}", rt.id)
            } else {
                format!("{} (id {})", rt.name, rt.id)
            };
            facts.push((
                "runtime",
                format!(
                    "{name}: {} workers, {} blocking, {} other threads",
                    rt.workers.len(),
                    rt.blocking.len(),
                    rt.other.len()
                ),
            ));
        }
        if let Some(note) = self.unrecorded_tasks_note() {
            facts.push(("note", note));
        }
        let t = &self.tasks;
        facts.push((
            "tasks",
            format!(
                "{} ({} spawned in the window, {} ended, {} alive at the end), {} polls",
                t.tasks, t.spawned, t.ended, t.alive_at_end, t.polls
            ),
        ));
        facts.push((
            "chunks",
            format!(
                "{} holding {} event bytes{}",
                self.chunks,
                self.event_bytes,
                per_event(self.event_bytes_per_event())
            ),
        ));
        facts.push((
            "file size",
            format!(
                "{} bytes{}",
                self.file_bytes,
                per_event(self.file_bytes_per_event())
            ),
        ));
        facts.push((
            "dropped",
            if self.dropped == Dropped::default() {
                "nothing".to_string()
            } else {
                format!(
                    "{} chunks, {} bytes",
                    self.dropped.chunks, self.dropped.bytes
                )
            },
        ));
        for note in self.edge_notes() {
            facts.push(("edges", note));
        }
        if self.late_events > 0 {
            facts.push((
                "late",
                format!(
                    "{} events out of time order (a thread quiet for longer than the lookahead)",
                    self.late_events
                ),
            ));
        }

        // What is wrong comes first; the file's facts and the tables that show it follow.
        let mut out = String::new();
        self.diagnosis.render_findings(&mut out);
        out.push('\n');
        let key_width = facts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (key, value) in &facts {
            let _ = writeln!(out, "{key:<key_width$}  {value}");
        }

        if !self.diagnosis.waits.is_empty() {
            out.push('\n');
            self.diagnosis.render_waits(&mut out);
        }
        self.render_locations(&mut out);
        self.render_latency(&mut out);
        self.render_long_polls(&mut out);
        if !self.other_stacks.is_empty() {
            let _ = writeln!(out, "\nstacks outside polls: {}", self.other_stacks.len());
            for s in &self.other_stacks {
                let name = self
                    .threads
                    .iter()
                    .find(|t| t.id == s.thread)
                    .map_or("", |t| t.name.as_str());
                let _ = writeln!(out, "  thread {}", thread_label(s.thread, name));
                stacks_text::render_stacks(std::slice::from_ref(s), "    ", &mut out);
            }
        }
        if !self.cpu.is_empty() {
            stacks_text::render_cpu(&self.cpu, self.options.top, &mut out);
        }
        self.render_utilization(&mut out);
        for (title, groups) in [("user tasks", &self.user_tasks), ("regions", &self.regions)] {
            render_groups(&mut out, title, groups, self.options.top);
        }
        self.render_logs(&mut out);
        if !self.counters.is_empty() {
            out.push_str("\ncounters\n");
            let rows: Vec<Vec<String>> = self
                .counters
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.samples.to_string(),
                        c.min.to_string(),
                        c.max.to_string(),
                        c.last.to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["name", "samples", "min", "max", "last"],
                &rows,
                &[false, true, true, true, true],
            );
        }

        if !self.kinds.is_empty() {
            out.push_str("\nevents by kind\n");
            let rows: Vec<Vec<String>> = self
                .kinds
                .iter()
                .map(|k| {
                    vec![
                        k.name.clone(),
                        k.count.to_string(),
                        percent(k.count, self.events),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["kind", "events", "share"],
                &rows,
                &[false, true, true],
            );
        }
        if !self.threads.is_empty() {
            out.push_str("\nthreads\n");
            let rows: Vec<Vec<String>> = self
                .threads
                .iter()
                .map(|t| {
                    vec![
                        t.id.to_string(),
                        t.os_tid
                            .map_or_else(|| "?".to_string(), |tid| tid.to_string()),
                        t.name.clone(),
                        t.events.to_string(),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["id", "os tid", "name", "events"],
                &rows,
                &[true, true, false, true],
            );
        }
        out
    }

    fn render_locations(&self, out: &mut String) {
        if self.locations.is_empty() {
            return;
        }
        let shown = self.locations.len().min(self.options.top.max(1) * 2);
        let _ = writeln!(
            out,
            "\ntasks by spawn location (run + scheduling wait + idle = the tasks' time in the window){}",
            if shown < self.locations.len() {
                format!(", the {shown} with the most run time of {}", self.locations.len())
            } else {
                String::new()
            }
        );
        let rows: Vec<Vec<String>> = self.locations[..shown]
            .iter()
            .map(|l| {
                vec![
                    l.location.clone(),
                    l.tasks.to_string(),
                    l.alive_at_end.to_string(),
                    l.polls.to_string(),
                    format_duration(l.total_ns),
                    format_duration(l.run_ns),
                    format_duration(l.sched_wait_ns),
                    format_duration(l.idle_ns),
                    format_duration(l.longest_poll_ns),
                    if l.sched_latency.percentiles.count > 0 {
                        format_duration(l.sched_latency.percentiles.p99)
                    } else {
                        "-".to_string()
                    },
                ]
            })
            .collect();
        table(
            out,
            &[
                "location",
                "tasks",
                "alive",
                "polls",
                "total",
                "run",
                "sched wait",
                "idle",
                "longest poll",
                "sched p99",
            ],
            &rows,
            &[false, true, true, true, true, true, true, true, true, true],
        );
    }

    fn render_latency(&self, out: &mut String) {
        let l = &self.sched_latency;
        if l.percentiles.count == 0 && l.unknown == 0 {
            return;
        }
        let p = &l.percentiles;
        let _ = writeln!(
            out,
            "\nscheduling latency (wake or spawn to poll): {} polls{}",
            p.count,
            if l.unknown > 0 {
                format!(", {} more with no wake seen", l.unknown)
            } else {
                String::new()
            }
        );
        if p.count == 0 {
            return;
        }
        let _ = writeln!(
            out,
            "  p50 {}  p90 {}  p99 {}  max {}  mean {}",
            format_duration(p.p50),
            format_duration(p.p90),
            format_duration(p.p99),
            format_duration(p.max),
            format_duration(p.mean)
        );
        let most = l.histogram.iter().copied().max().unwrap_or(0).max(1);
        let rows: Vec<Vec<String>> = display_labels()
            .into_iter()
            .zip(&l.histogram)
            .map(|(label, &n)| {
                let bar = (n * 40).div_ceil(most) as usize;
                vec![label, n.to_string(), "#".repeat(bar)]
            })
            .collect();
        table(out, &["wait", "polls", ""], &rows, &[false, true, false]);
        let mut by_location: Vec<&LocationSummary> = self
            .locations
            .iter()
            .filter(|l| l.sched_latency.percentiles.count > 0)
            .collect();
        if by_location.len() > 1 {
            by_location.sort_by(|a, b| {
                b.sched_latency
                    .percentiles
                    .p99
                    .cmp(&a.sched_latency.percentiles.p99)
            });
            by_location.truncate(self.options.top.max(1));
            out.push_str("  by location, the highest p99 first\n");
            let rows: Vec<Vec<String>> = by_location
                .iter()
                .map(|l| {
                    let p = &l.sched_latency.percentiles;
                    vec![
                        l.location.clone(),
                        p.count.to_string(),
                        format_duration(p.p50),
                        format_duration(p.p90),
                        format_duration(p.p99),
                        format_duration(p.max),
                    ]
                })
                .collect();
            let mut text = String::new();
            table(
                &mut text,
                &["location", "polls", "p50", "p90", "p99", "max"],
                &rows,
                &[false, true, true, true, true, true],
            );
            for line in text.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }

    fn render_long_polls(&self, out: &mut String) {
        let lp = &self.long_polls;
        let _ = writeln!(
            out,
            "\nlong polls (at least {}): {}{}",
            format_duration(lp.threshold_ns),
            lp.count,
            if lp.count > 0 {
                format!(", {} in total", format_duration(lp.total_ns))
            } else {
                String::new()
            }
        );
        if lp.top.is_empty() {
            return;
        }
        let rows: Vec<Vec<String>> = lp
            .top
            .iter()
            .map(|p| {
                vec![
                    format_duration(p.duration_ns),
                    p.task.to_string(),
                    p.location.clone(),
                    thread_label(p.thread, &p.thread_name),
                    format_utc_micros(p.start_ns),
                    p.result.clone(),
                ]
            })
            .collect();
        let mut text = String::new();
        table(
            &mut text,
            &["duration", "task", "location", "thread", "start", "result"],
            &rows,
            &[true, true, false, false, false, false],
        );
        let mut lines = text.lines();
        if let Some(header) = lines.next() {
            let _ = writeln!(out, "{header}");
        }
        for (line, poll) in lines.zip(&lp.top) {
            let _ = writeln!(out, "{line}");
            if !poll.annotations.is_empty() {
                let _ = writeln!(out, "      during: {}", poll.annotations.join("; "));
            }
            if poll.stacks.is_empty() {
                continue;
            }
            if stacks_text::location_in_library(&poll.location) {
                if let Some(app) = poll
                    .stacks
                    .iter()
                    .find_map(|s| stacks_text::first_app_frame(&s.frames))
                {
                    let _ = writeln!(
                        out,
                        "      spawned inside a library ({}); application frame: {app}",
                        crate::symbols::short_path(&poll.location)
                    );
                }
            }
            stacks_text::render_stacks(&poll.stacks, "      ", out);
        }
    }

    fn render_utilization(&self, out: &mut String) {
        let u = &self.utilization;
        if u.threads.is_empty() {
            return;
        }
        let Some(window) = self.window else {
            return;
        };
        let span = window.duration_ns().max(1);
        let _ = writeln!(
            out,
            "\nworker utilization (busy share; over time in slices of {} from {})",
            format_duration(u.slice_ns),
            format_utc_millis(u.start_ns)
        );
        let rows: Vec<Vec<String>> = u
            .threads
            .iter()
            .map(|t| {
                vec![
                    thread_label(t.thread, &t.name),
                    t.basis.clone(),
                    format!("{:.1}%", t.busy_ns as f64 * 100.0 / span as f64),
                    format!("{:.1}%", t.polling_ns as f64 * 100.0 / span as f64),
                    t.polls.to_string(),
                    sparkline(&t.busy_per_slice, u, window),
                ]
            })
            .collect();
        table(
            out,
            &[
                "thread",
                "busy when",
                "busy",
                "polling",
                "polls",
                "over time",
            ],
            &rows,
            &[false, false, true, true, true, false],
        );
    }

    fn render_logs(&self, out: &mut String) {
        let logs = &self.logs;
        if logs.total == 0 {
            return;
        }
        let categories: Vec<String> = logs
            .by_category
            .iter()
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let _ = writeln!(
            out,
            "\nlogs: {} messages ({})",
            logs.total,
            categories.join(", ")
        );
        if logs.recent.len() as u64 != logs.total {
            let _ = writeln!(out, "  the latest {}:", logs.recent.len());
        }
        for line in &logs.recent {
            let task = if line.user_task != 0 {
                format!(" [user task {}]", line.user_task)
            } else {
                String::new()
            };
            let _ = writeln!(
                out,
                "  {}  {}  {}{task}: {}",
                format_utc_micros(line.time_ns),
                thread_label(line.thread, self.thread_name(line.thread)),
                line.category,
                line.message
            );
        }
    }
}

fn render_groups(out: &mut String, title: &str, groups: &[SpanGroup], top: usize) {
    if groups.is_empty() {
        return;
    }
    let _ = writeln!(out, "\n{title}");
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            let p = &g.latency;
            let dash = |v: u64| {
                if p.count > 0 {
                    format_duration(v)
                } else {
                    "-".to_string()
                }
            };
            let slowest: Vec<String> = g
                .slowest
                .iter()
                .take(3)
                .map(|s| {
                    let id = if s.id != 0 {
                        format!("#{} ", s.id)
                    } else {
                        String::new()
                    };
                    format!(
                        "{id}{}{}",
                        format_duration(s.duration_ns),
                        if s.unfinished { "+" } else { "" }
                    )
                })
                .collect();
            vec![
                g.name.clone(),
                g.count.to_string(),
                g.unfinished.to_string(),
                dash(p.p50),
                dash(p.p90),
                dash(p.p99),
                dash(p.max),
                slowest.join(", "),
            ]
        })
        .take(top.max(1) * 2)
        .collect();
    table(
        out,
        &[
            "name",
            "count",
            "unfinished",
            "p50",
            "p90",
            "p99",
            "max",
            "slowest (+: unfinished)",
        ],
        &rows,
        &[false, true, true, true, true, true, true, false],
    );
}

fn thread_label(id: u64, name: &str) -> String {
    if name.is_empty() {
        id.to_string()
    } else {
        format!("{id}:{name}")
    }
}

/// Busy share per slice as a line of block characters (a space for an idle slice).
fn sparkline(cells: &[u64], u: &Utilization, window: Window) -> String {
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    cells
        .iter()
        .enumerate()
        .map(|(i, &busy)| {
            let slice_start = u
                .start_ns
                .saturating_add((i as u64).saturating_mul(u.slice_ns));
            let slice_end = slice_start
                .saturating_add(u.slice_ns)
                .min(window.end_ns.max(slice_start.saturating_add(1)));
            let width = (slice_end - slice_start).max(1);
            let share = (busy as f64 / width as f64).min(1.0);
            if busy == 0 {
                ' '
            } else {
                LEVELS[((share * 8.0).ceil() as usize).clamp(1, 8) - 1]
            }
        })
        .collect()
}

fn per_event(ratio: Option<f64>) -> String {
    ratio.map_or_else(String::new, |r| format!(" ({r:.2} bytes/event)"))
}

fn percent(part: u64, total: u64) -> String {
    if total == 0 {
        return String::new();
    }
    format!("{:.1}%", part as f64 * 100.0 / total as f64)
}

/// Appends an indented table with a header row; `right[i]` aligns column `i` to the right.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], right: &[bool]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            // The formatter takes widths up to u16::MAX (a longer one panics); a longer cell is
            // printed whole anyway (found by fuzzing).
            let width = widths[i].min(usize::from(u16::MAX));
            if right[i] {
                let _ = write!(line, "  {cell:>width$}");
            } else {
                let _ = write!(line, "  {cell:<width$}");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut out = String::new();
        let rows = vec![
            vec!["poll_start".to_string(), "7".to_string()],
            vec!["log".to_string(), "12345".to_string()],
        ];
        table(&mut out, &["kind", "events"], &rows, &[false, true]);
        assert_eq!(
            out,
            "  kind        events\n  poll_start       7\n  log          12345\n"
        );
    }
}
