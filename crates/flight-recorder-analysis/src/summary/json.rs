//! The summary as JSON.

use flight_recorder_format::time::{format_utc_micros, format_utc_millis};
use serde_json::{json, Value};

use super::*;
use crate::histogram::display_labels;

impl Summary {
    /// The summary as JSON. The keys are stable:
    ///
    /// ```text
    /// {
    ///   "path": string | null,
    ///   "file": { "mode", "reason", "tag", "program", "service", "host", "cmdline",
    ///             "recorder_version", "program_version", "clock_source": string,
    ///             "details": [ { "name", "value": string } ] (the header's details, in order,
    ///                          all of them: `trigger`, the trigger's own, `suppressed.KIND`),
    ///             "pid", "min_age_ns", "max_bytes", "chunk_size",
    ///             "suppressed_triggers": number },
    ///   "complete": bool,
    ///   "error": string | null,
    ///   "window": { "start_ns", "end_ns", "duration_ns": number,
    ///               "start", "end": string (RFC 3339 UTC, milliseconds) } | null,
    ///   "events": { "total": number, "by_kind": { kind name: number } },
    ///   "threads": [ { "id": number, "os_tid": number | null, "name": string, "events": number } ],
    ///   "size": { "file_bytes", "chunks", "event_bytes": number,
    ///             "event_bytes_per_event", "file_bytes_per_event": number | null },
    ///   "dropped": { "chunks", "bytes": number },
    ///   "options": { "long_poll_ns", "top", "max_slices", "logs", "reorder_events": number },
    ///   "runtimes": [ { "id", "name", "workers", "blocking", "other" } ],
    ///   "tasks": { "tasks", "spawned", "ended", "alive_at_end", "polls", "run_ns",
    ///              "sched_wait_ns", "idle_ns": number },
    ///   "locations": [ { "location": string, "tasks", "alive_at_end", "polls", "total_ns",
    ///                    "run_ns", "sched_wait_ns", "idle_ns", "longest_poll_ns": number,
    ///                    "sched_latency", "poll_duration": LATENCY } ],
    ///   "sched_latency": LATENCY,
    ///   "long_polls": { "threshold_ns", "count", "total_ns": number,
    ///                   "top": [ { "task", "location", "thread", "thread_name", "start_ns",
    ///                              "start", "duration_ns", "result", "annotations": [string] } ] },
    ///   "utilization": { "start_ns", "slice_ns", "slices": number,
    ///                    "threads": [ { "thread", "name", "basis", "busy_ns", "polling_ns",
    ///                                   "polls", "busy_share": number,
    ///                                   "busy_per_slice_ns": [number] } ] },
    ///   "user_tasks", "regions": [ { "name", "count", "unfinished",
    ///                                "latency": PERCENTILES,
    ///                                "slowest": [ { "id", "thread", "start_ns", "duration_ns",
    ///                                               "unfinished" } ] } ],
    ///   "logs": { "total", "by_category": { category: number },
    ///             "recent": [ { "time_ns", "time", "thread", "category", "user_task", "message" } ] },
    ///   "counters": [ { "name", "samples", "min", "max", "last" } ],
    ///   "edges": { "poll_ends_without_start", "polls_open_at_end", "region_ends_without_begin",
    ///              "regions_open_at_end", "regions_too_deep", "user_task_ends_without_begin",
    ///              "user_tasks_open_at_end", "tasks_alive_at_end": number },
    ///   "late_events": number,
    ///   "diagnosis": DIAGNOSIS (the findings and the slowest requests' waits: see
    ///                `Diagnosis::to_json`),
    ///   "other_stacks": [STACK],     (only when the file has stacks outside polls)
    ///   "cpu": [ { "location", "samples", "app_frame": string | null,
    ///              "functions": [ { "function", "location", "self", "total" } ],
    ///              "folded": [ { "stack", "samples" } ] } ],   (only with CPU samples)
    ///   "unrecorded_tasks": string   (only when a runtime's tasks were not recorded)
    /// }
    /// (each long poll of "top" also has "stacks": [STACK] when stacks were taken during it)
    /// STACK := { "time_ns", "time", "thread", "task", "cause", "stack", "truncated",
    ///            "frames": [ { "address", "module", "offset", "function", "file", "line",
    ///                          "inlined", "library" } ] }
    /// LATENCY := { "count", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns", "unknown": number,
    ///              "histogram": [ { "bucket": string, "count": number } ] }
    /// PERCENTILES := { "count", "p50_ns", "p90_ns", "p99_ns", "max_ns", "mean_ns": number }
    /// ```
    ///
    /// Times are nanoseconds since the Unix epoch; `threads` is ordered by id. Two kinds of one
    /// name (possible only in a hand-made file) add up under that name in `by_kind`.
    pub fn to_json(&self) -> Value {
        let h = &self.header;
        let mut by_kind = serde_json::Map::new();
        for k in &self.kinds {
            let total = by_kind.get(&k.name).and_then(Value::as_u64).unwrap_or(0) + k.count;
            by_kind.insert(k.name.clone(), json!(total));
        }
        let window = self.window.map(|w| {
            json!({
                "start_ns": w.start_ns,
                "end_ns": w.end_ns,
                "duration_ns": w.duration_ns(),
                "start": format_utc_millis(w.start_ns),
                "end": format_utc_millis(w.end_ns),
            })
        });
        let threads: Vec<Value> = self
            .threads
            .iter()
            .map(|t| {
                json!({
                    "id": t.id,
                    "os_tid": t.os_tid,
                    "name": t.name,
                    "events": t.events,
                })
            })
            .collect();
        let span = self.window.map_or(1, |w| w.duration_ns().max(1));
        let t = &self.tasks;
        let o = &self.options;
        let e = &self.edges;
        let mut categories = serde_json::Map::new();
        for (c, n) in &self.logs.by_category {
            categories.insert(c.clone(), json!(n));
        }
        let mut summary = json!({
            "path": self.path,
            "file": {
                "mode": h.mode,
                "reason": h.reason,
                "tag": h.tag,
                "program": h.program,
                "service": h.service_name(),
                "pid": h.pid,
                "host": h.host,
                "cmdline": h.cmdline,
                "recorder_version": h.recorder_version,
                "program_version": h.program_version,
                "details": h.details.iter().map(|(name, value)| json!({
                    "name": name,
                    "value": value,
                })).collect::<Vec<_>>(),
                "suppressed_triggers": h.suppressed_triggers,
                "clock_source": h.clock.source,
                "min_age_ns": h.min_age_ns,
                "max_bytes": h.max_bytes,
                "chunk_size": h.chunk_size,
            },
            "complete": self.complete,
            "error": self.error,
            "window": window,
            "events": {
                "total": self.events,
                "by_kind": by_kind,
            },
            "threads": threads,
            "size": {
                "file_bytes": self.file_bytes,
                "chunks": self.chunks,
                "event_bytes": self.event_bytes,
                "event_bytes_per_event": self.event_bytes_per_event(),
                "file_bytes_per_event": self.file_bytes_per_event(),
            },
            "dropped": {
                "chunks": self.dropped.chunks,
                "bytes": self.dropped.bytes,
            },
            "options": {
                "long_poll_ns": o.long_poll_ns,
                "top": o.top,
                "max_slices": o.max_slices,
                "logs": o.logs,
                "reorder_events": o.merge.reorder_events,
            },
            "runtimes": self.runtimes.iter().map(|r| json!({
                "id": r.id,
                "name": r.name,
                "workers": r.workers,
                "blocking": r.blocking,
                "other": r.other,
            })).collect::<Vec<_>>(),
            "tasks": {
                "tasks": t.tasks,
                "spawned": t.spawned,
                "ended": t.ended,
                "alive_at_end": t.alive_at_end,
                "polls": t.polls,
                "run_ns": t.run_ns,
                "sched_wait_ns": t.sched_wait_ns,
                "idle_ns": t.idle_ns,
            },
            "locations": self.locations.iter().map(|l| json!({
                "location": l.location,
                "tasks": l.tasks,
                "alive_at_end": l.alive_at_end,
                "polls": l.polls,
                "total_ns": l.total_ns,
                "run_ns": l.run_ns,
                "sched_wait_ns": l.sched_wait_ns,
                "idle_ns": l.idle_ns,
                "longest_poll_ns": l.longest_poll_ns,
                "sched_latency": latency_json(&l.sched_latency),
                "poll_duration": latency_json(&l.poll_duration),
            })).collect::<Vec<_>>(),
            "sched_latency": latency_json(&self.sched_latency),
            "long_polls": {
                "threshold_ns": self.long_polls.threshold_ns,
                "count": self.long_polls.count,
                "total_ns": self.long_polls.total_ns,
                "top": self.long_polls.top.iter().map(|p| with_stacks(json!({
                    "task": p.task,
                    "location": p.location,
                    "thread": p.thread,
                    "thread_name": p.thread_name,
                    "start_ns": p.start_ns,
                    "start": format_utc_micros(p.start_ns),
                    "duration_ns": p.duration_ns,
                    "result": p.result,
                    "annotations": p.annotations,
                }), &p.stacks)).collect::<Vec<_>>(),
            },
            "utilization": {
                "start_ns": self.utilization.start_ns,
                "slice_ns": self.utilization.slice_ns,
                "slices": self.utilization.slices,
                "threads": self.utilization.threads.iter().map(|u| json!({
                    "thread": u.thread,
                    "name": u.name,
                    "basis": u.basis,
                    "busy_ns": u.busy_ns,
                    "polling_ns": u.polling_ns,
                    "polls": u.polls,
                    "busy_share": u.busy_ns as f64 / span as f64,
                    "busy_per_slice_ns": u.busy_per_slice,
                })).collect::<Vec<_>>(),
            },
            "user_tasks": self.user_tasks.iter().map(group_json).collect::<Vec<_>>(),
            "regions": self.regions.iter().map(group_json).collect::<Vec<_>>(),
            "logs": {
                "total": self.logs.total,
                "by_category": categories,
                "recent": self.logs.recent.iter().map(|l| json!({
                    "time_ns": l.time_ns,
                    "time": format_utc_micros(l.time_ns),
                    "thread": l.thread,
                    "category": l.category,
                    "user_task": l.user_task,
                    "message": l.message,
                })).collect::<Vec<_>>(),
            },
            "counters": self.counters.iter().map(|c| json!({
                "name": c.name,
                "samples": c.samples,
                "min": c.min,
                "max": c.max,
                "last": c.last,
            })).collect::<Vec<_>>(),
            "edges": {
                "poll_ends_without_start": e.poll_ends_without_start,
                "polls_open_at_end": e.polls_open_at_end,
                "region_ends_without_begin": e.region_ends_without_begin,
                "regions_open_at_end": e.regions_open_at_end,
                "regions_too_deep": e.regions_too_deep,
                "user_task_ends_without_begin": e.user_task_ends_without_begin,
                "user_tasks_open_at_end": e.user_tasks_open_at_end,
                "tasks_alive_at_end": e.tasks_alive_at_end,
            },
            "late_events": self.late_events,
            "diagnosis": self.diagnosis.to_json(),
        });
        // Keys of stacks and samples only when the file has some: the JSON of a file without
        // them is unchanged.
        if let Value::Object(map) = &mut summary {
            if !self.other_stacks.is_empty() {
                let stacks: Vec<Value> = self.other_stacks.iter().map(stack_json).collect();
                map.insert("other_stacks".to_string(), json!(stacks));
            }
            if !self.cpu.is_empty() {
                map.insert("cpu".to_string(), cpu_json(&self.cpu));
            }
            if let Some(note) = self.unrecorded_tasks_note() {
                map.insert("unrecorded_tasks".to_string(), json!(note));
            }
        }
        summary
    }
}

fn with_stacks(mut poll: Value, stacks: &[ThreadStack]) -> Value {
    if !stacks.is_empty() {
        if let Value::Object(map) = &mut poll {
            let stacks: Vec<Value> = stacks.iter().map(stack_json).collect();
            map.insert("stacks".to_string(), json!(stacks));
        }
    }
    poll
}

/// A stack: its frames innermost first, each function of a frame (inlined ones first) a
/// separate entry.
pub(crate) fn stack_json(s: &ThreadStack) -> Value {
    let mut frames = Vec::new();
    for f in &s.frames {
        let module = f.module.as_deref().unwrap_or("");
        if f.functions.is_empty() {
            frames.push(json!({
                "address": f.address,
                "module": module,
                "offset": f.offset,
                "function": null,
                "file": null,
                "line": null,
                "inlined": false,
                "library": true,
            }));
        }
        let n = f.functions.len();
        for (i, sym) in f.functions.iter().enumerate() {
            frames.push(json!({
                "address": f.address,
                "module": module,
                "offset": f.offset,
                "function": (!sym.function.is_empty()).then_some(&sym.function),
                "file": (!sym.file.is_empty()).then(|| crate::symbols::short_path(&sym.file)),
                "line": (sym.line != 0).then_some(sym.line),
                "inlined": i + 1 < n,
                "library": crate::symbols::library_of(sym).is_some(),
            }));
        }
    }
    json!({
        "time_ns": s.time_ns,
        "time": format_utc_micros(s.time_ns),
        "thread": s.thread,
        "task": s.task,
        "cause": s.cause,
        "stack": s.stack,
        "truncated": s.looks_truncated(),
        "frames": frames,
    })
}

fn cpu_json(cpu: &[CpuLocation]) -> Value {
    json!(cpu.iter().map(|c| json!({
        "location": c.location,
        "samples": c.samples,
        "app_frame": c.app_frame,
        "functions": c.functions.iter().map(|f| json!({
            "function": f.function,
            "location": f.location,
            "self": f.self_samples,
            "total": f.total_samples,
        })).collect::<Vec<_>>(),
        "folded": c.folded.iter().map(|(stack, n)| json!({"stack": stack, "samples": n})).collect::<Vec<_>>(),
    })).collect::<Vec<_>>())
}

fn percentiles_json(p: &Percentiles) -> Value {
    json!({
        "count": p.count,
        "p50_ns": p.p50,
        "p90_ns": p.p90,
        "p99_ns": p.p99,
        "max_ns": p.max,
        "mean_ns": p.mean,
    })
}

fn latency_json(l: &Latency) -> Value {
    let mut value = percentiles_json(&l.percentiles);
    value["unknown"] = json!(l.unknown);
    value["histogram"] = display_labels()
        .into_iter()
        .zip(&l.histogram)
        .map(|(bucket, n)| json!({"bucket": bucket, "count": n}))
        .collect();
    value
}

fn group_json(g: &SpanGroup) -> Value {
    json!({
        "name": g.name,
        "count": g.count,
        "unfinished": g.unfinished,
        "latency": percentiles_json(&g.latency),
        "slowest": g.slowest.iter().map(|s| json!({
            "id": s.id,
            "thread": s.thread,
            "start_ns": s.start_ns,
            "duration_ns": s.duration_ns,
            "unfinished": s.unfinished,
        })).collect::<Vec<_>>(),
    })
}
