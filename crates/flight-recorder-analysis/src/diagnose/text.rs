//! The diagnosis as text and as JSON.

use std::fmt::Write as _;

use flight_recorder_format::time::format_utc_millis;
use flight_recorder_format::units::format_duration as dur;
use serde_json::{json, Value};

use super::{Blame, Diagnosis, Finding, RequestWaits};

impl Finding {
    /// The finding as text: a headline, then what it rests on, indented.
    pub fn render_text(&self, number: usize, out: &mut String) {
        let _ = writeln!(
            out,
            "{number}. [{}] {}: {}",
            self.severity.name().to_uppercase(),
            self.kind.name(),
            self.summary
        );
        let e = &self.evidence;
        let pad = "     ";
        let _ = writeln!(out, "{pad}why:   {}", self.why);
        if e.start_ns != 0 || e.end_ns != 0 {
            let _ = writeln!(
                out,
                "{pad}when:  {} to {} ({})",
                format_utc_millis(e.start_ns),
                format_utc_millis(e.end_ns),
                dur(e.end_ns.saturating_sub(e.start_ns))
            );
        }
        if !e.locations.is_empty() {
            let _ = writeln!(out, "{pad}where: {}", e.locations.join(", "));
        }
        if !e.tasks.is_empty() {
            let tasks: Vec<String> = e.tasks.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "{pad}tasks: {}", tasks.join(", "));
        }
        if !e.threads.is_empty() {
            let _ = writeln!(out, "{pad}threads: {}", e.threads.join(", "));
        }
        if !e.stack.is_empty() {
            let _ = writeln!(out, "{pad}stack:");
            for frame in &e.stack {
                let _ = writeln!(out, "{pad}  {frame}");
            }
        }
        let _ = writeln!(out, "{pad}do:    {}", self.advice);
    }

    /// The finding as JSON (see [`Diagnosis::to_json`]).
    pub fn to_json(&self) -> Value {
        let e = &self.evidence;
        let values: serde_json::Map<String, Value> = e
            .values
            .iter()
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect();
        json!({
            "kind": self.kind.name(),
            "severity": self.severity.name(),
            "impact_ns": self.impact_ns,
            "summary": self.summary,
            "why": self.why,
            "advice": self.advice,
            "evidence": {
                "start_ns": e.start_ns,
                "end_ns": e.end_ns,
                "tasks": e.tasks,
                "locations": e.locations,
                "threads": e.threads,
                "stack": e.stack,
                "values": values,
            },
        })
    }
}

fn blame_json(b: &Blame) -> Value {
    json!({ "task": b.task, "location": b.location, "ns": b.ns, "chain": b.chain })
}

impl RequestWaits {
    /// The breakdown as text, indented.
    pub fn render_text(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{} #{}{}: {} from {}{}",
            self.name,
            self.id,
            if self.task == 0 {
                String::new()
            } else {
                format!(" in task {} ({})", self.task, self.location)
            },
            dur(self.duration_ns),
            format_utc_millis(self.start_ns),
            if self.unfinished { ", unfinished" } else { "" }
        );
        let pct = |ns: u64| ns.saturating_mul(100) / self.duration_ns.max(1);
        let line = |out: &mut String, what: &str, ns: u64| {
            let _ = writeln!(out, "    {what:<28} {:>10}  {:>3}%", dur(ns), pct(ns));
        };
        line(out, "running", self.running_ns);
        line(out, "waiting for a worker", self.worker_wait_ns);
        for b in self.worker_holders.iter().take(3) {
            let _ = writeln!(
                out,
                "      held by {} (task {}): {}",
                b.location,
                b.task,
                dur(b.ns)
            );
        }
        let on_tasks: u64 = self
            .task_waits
            .iter()
            .map(|b| b.ns)
            .fold(0, u64::saturating_add);
        line(out, "waiting on other tasks", on_tasks);
        for b in self.task_waits.iter().take(3) {
            let _ = writeln!(out, "      task {} ({}): {}", b.task, b.location, dur(b.ns));
            for link in &b.chain {
                let _ = writeln!(out, "        ← {link}");
            }
        }
        line(out, "in spawn_blocking", self.blocking_ns);
        for b in self.blocking.iter().take(3) {
            let _ = writeln!(out, "      {} (task {}): {}", b.location, b.task, dur(b.ns));
        }
        line(out, "idle, no recorded cause", self.idle_ns);
        if !self.wakes_recorded && self.task != 0 {
            let _ = writeln!(
                out,
                "    (wakes are not recorded for this task: waits on other tasks count as idle)"
            );
        }
    }

    /// The breakdown as JSON (see [`Diagnosis::to_json`]).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "id": self.id,
            "task": self.task,
            "location": self.location,
            "start_ns": self.start_ns,
            "duration_ns": self.duration_ns,
            "unfinished": self.unfinished,
            "running_ns": self.running_ns,
            "worker_wait_ns": self.worker_wait_ns,
            "worker_holders": self.worker_holders.iter().map(blame_json).collect::<Vec<_>>(),
            "task_waits": self.task_waits.iter().map(blame_json).collect::<Vec<_>>(),
            "blocking_ns": self.blocking_ns,
            "blocking": self.blocking.iter().map(blame_json).collect::<Vec<_>>(),
            "idle_ns": self.idle_ns,
            "wakes_recorded": self.wakes_recorded,
        })
    }
}

impl Diagnosis {
    /// The findings as text: `Findings: none above info` or a numbered list, the most severe
    /// first; then the limits of the trace. Info findings are listed after the others.
    pub fn render_findings(&self, out: &mut String) {
        if self.findings.is_empty() {
            let _ = writeln!(out, "Findings: none");
        } else {
            let _ = writeln!(out, "Findings ({}):", self.findings.len());
            for (i, f) in self.findings.iter().enumerate() {
                f.render_text(i + 1, out);
            }
        }
        for limit in &self.limits {
            let _ = writeln!(out, "  note: {limit}");
        }
    }

    /// The slowest requests' breakdown as text (nothing when there are none).
    pub fn render_waits(&self, out: &mut String) {
        if self.waits.is_empty() {
            return;
        }
        let _ = writeln!(out, "Where the slowest user tasks waited:");
        for w in &self.waits {
            let _ = write!(out, "  ");
            w.render_text(out);
        }
    }

    /// The findings, the limits and the breakdowns as text.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        self.render_findings(&mut out);
        if !self.waits.is_empty() {
            out.push('\n');
            self.render_waits(&mut out);
        }
        out
    }

    /// The diagnosis as JSON. The keys are stable:
    ///
    /// ```text
    /// {
    ///   "findings": [ { "kind": string (docs/ANALYSIS.md), "severity": "info" | "warning" | "critical",
    ///                   "impact_ns": number, "summary", "why", "advice": string,
    ///                   "evidence": { "start_ns", "end_ns": number, "tasks": [number],
    ///                                 "locations", "threads", "stack": [string],
    ///                                 "values": { name: number } } } ],
    ///   "waits": [ { "name", "location": string, "id", "task", "start_ns", "duration_ns",
    ///                "running_ns", "worker_wait_ns", "blocking_ns", "idle_ns": number,
    ///                "unfinished", "wakes_recorded": bool,
    ///                "worker_holders", "task_waits", "blocking":
    ///                    [ { "task", "ns": number, "location": string, "chain": [string] } ] } ],
    ///   "limits": [string],
    ///   "options": { "blocking_poll_ns", "sched_delay_ns", "imbalance_ns", "leak_tasks",
    ///                "lost_wake_ns", "blocking_queue_ns", "storm_spawns", "slow_request_ns",
    ///                "waits": number }
    /// }
    /// ```
    pub fn to_json(&self) -> Value {
        let o = &self.options;
        json!({
            "findings": self.findings.iter().map(Finding::to_json).collect::<Vec<_>>(),
            "waits": self.waits.iter().map(RequestWaits::to_json).collect::<Vec<_>>(),
            "limits": self.limits,
            "options": {
                "blocking_poll_ns": o.blocking_poll_ns,
                "sched_delay_ns": o.sched_delay_ns,
                "imbalance_ns": o.imbalance_ns,
                "leak_tasks": o.leak_tasks,
                "lost_wake_ns": o.lost_wake_ns,
                "blocking_queue_ns": o.blocking_queue_ns,
                "storm_spawns": o.storm_spawns,
                "slow_request_ns": o.slow_request_ns,
                "waits": o.waits,
            },
        })
    }
}
