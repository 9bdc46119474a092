//! A self-contained HTML report of a [`Summary`]: one file, no network at view time (inline CSS,
//! inline SVG charts, no script), readable on a laptop screen.
//!
//! Sections (each a `<section id=…>`): `overview` (the facts), `workers` (a timeline of each
//! worker's busy share per time slice), `latency` (the scheduling-latency histogram and
//! percentiles), `long-polls` (the longest polls with their annotations), `locations` (tasks by
//! spawn location, run / scheduling wait / idle as stacked bars), `user-tasks` and `regions`
//! (latency percentiles and the slowest), `logs`; with stacks, the long polls show them, and
//! `cpu` (when the file has CPU samples) holds a flame graph per spawn location.

use std::fmt::Write as _;

use flight_recorder_format::time::{format_utc_micros, format_utc_millis};
use flight_recorder_format::units::format_duration;

use crate::histogram::display_labels;
use crate::summary::{SpanGroup, Summary};

/// Escapes text for HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2430; background: #f5f6f8; }
header { background: #1d2430; color: #fff; padding: 14px 28px; }
header h1 { margin: 0; font-size: 20px; }
header p { margin: 4px 0 0; color: #c5cbd6; }
main { max-width: 1180px; margin: 0 auto; padding: 8px 20px 40px; }
pre.stack { font-size: 12px; margin: 4px 0; white-space: pre; }
.finding { border-left: 5px solid #c9ced8; background: #fff; padding: 6px 12px; margin: 8px 0; }
.finding p { margin: 3px 0; }
.finding.warning { border-color: #e8833a; }
.finding.critical { border-color: #c23b3b; }
.finding .sev { text-transform: uppercase; font-size: 11px; font-weight: 700; }
.finding .advice { color: #2d5d2a; }
pre.waits { font-size: 12px; background: #fff; padding: 6px 12px; }
.flame svg { max-width: 100%; height: auto; }
section { background: #fff; border-radius: 8px; box-shadow: 0 1px 3px rgba(0,0,0,.08); padding: 14px 20px; margin: 16px 0; overflow-x: auto; }
h2 { font-size: 16px; margin: 0 0 10px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #eceef2; vertical-align: top; }
th { color: #5b6475; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; }
.facts dt { color: #5b6475; } .facts dd { margin: 0; }
.note { color: #5b6475; font-size: 12px; }
.warn { color: #a33; }
.ann { color: #5b6475; font-size: 12px; }
svg text { font: 11px system-ui, sans-serif; fill: #1d2430; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; vertical-align: -1px; }
"#;

const RUN: &str = "#3b7dd8";
const WAIT: &str = "#e8833a";
const IDLE: &str = "#c9ced8";

/// The report of `summary` as one HTML page.
pub fn render_html(summary: &Summary) -> String {
    let mut out = String::with_capacity(64 << 10);
    let h = &summary.header;
    let title = format!(
        "flight-recorder report: {} (pid {})",
        if h.program.is_empty() {
            "trace"
        } else {
            &h.program
        },
        h.pid
    );
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = write!(
        out,
        "<header><h1>{}</h1><p>{}</p></header>\n<main>\n",
        escape(&title),
        escape(&match summary.window {
            Some(w) => format!(
                "{} .. {} ({}), written because: {}",
                format_utc_millis(w.start_ns),
                format_utc_millis(w.end_ns),
                format_duration(w.duration_ns()),
                h.reason
            ),
            None => "no events".to_string(),
        })
    );
    findings(&mut out, summary);
    overview(&mut out, summary);
    workers(&mut out, summary);
    latency(&mut out, summary);
    long_polls(&mut out, summary);
    cpu(&mut out, summary);
    locations(&mut out, summary);
    groups(&mut out, "user-tasks", "User tasks", &summary.user_tasks);
    groups(&mut out, "regions", "Regions", &summary.regions);
    logs(&mut out, summary);
    out.push_str("</main></body></html>\n");
    out
}

/// What is wrong, first: one card per finding (severity, kind, summary, why, where, stack, what
/// to do), then the slowest requests' wait breakdown.
fn findings(out: &mut String, s: &Summary) {
    let d = &s.diagnosis;
    out.push_str("<section id=\"findings\"><h2>Findings</h2>");
    if d.findings.is_empty() {
        out.push_str("<p>No finding: nothing the rules look for happened in this window.</p>");
    }
    for f in &d.findings {
        let e = &f.evidence;
        let _ = write!(
            out,
            "<div class=\"finding {sev}\" data-kind=\"{kind}\"><p class=\"headline\">\
             <span class=\"sev\">{sev}</span> <b>{kind}</b>: {summary}</p><p>{why}</p>",
            sev = f.severity.name(),
            kind = f.kind.name(),
            summary = escape(&f.summary),
            why = escape(&f.why),
        );
        if !e.locations.is_empty() {
            let _ = write!(out, "<p>where: {}</p>", escape(&e.locations.join(", ")));
        }
        if !e.stack.is_empty() {
            let _ = write!(
                out,
                "<pre class=\"stack\">{}</pre>",
                escape(&e.stack.join("\n"))
            );
        }
        let _ = write!(out, "<p class=\"advice\">{}</p></div>", escape(&f.advice));
    }
    for limit in &d.limits {
        let _ = write!(out, "<p class=\"ann\">note: {}</p>", escape(limit));
    }
    if !d.waits.is_empty() {
        let mut text = String::new();
        d.render_waits(&mut text);
        let _ = write!(out, "<pre class=\"waits\">{}</pre>", escape(&text));
    }
    out.push_str("</section>\n");
}

fn overview(out: &mut String, s: &Summary) {
    let h = &s.header;
    let mut facts: Vec<(&str, String)> = vec![
        ("file", s.path.clone().unwrap_or_default()),
        ("mode", h.mode.clone()),
        ("reason", h.reason.clone()),
        (
            "program",
            format!("{} (pid {}) on {}", h.program, h.pid, h.host),
        ),
        ("events", s.events.to_string()),
        ("threads", s.threads.len().to_string()),
        (
            "tasks",
            format!(
                "{} ({} ended, {} alive at the end), {} polls",
                s.tasks.tasks, s.tasks.ended, s.tasks.alive_at_end, s.tasks.polls
            ),
        ),
        ("size", format!("{} bytes", s.file_bytes)),
        (
            "dropped",
            if s.dropped.chunks == 0 && s.dropped.bytes == 0 {
                "nothing".to_string()
            } else {
                format!("{} chunks, {} bytes", s.dropped.chunks, s.dropped.bytes)
            },
        ),
    ];
    for rt in &s.runtimes {
        facts.push((
            "runtime",
            format!(
                "{} (id {}): {} workers, {} blocking",
                rt.name,
                rt.id,
                rt.workers.len(),
                rt.blocking.len()
            ),
        ));
    }
    if let Some(error) = &s.error {
        facts.push(("damage", error.clone()));
    }
    out.push_str("<section id=\"overview\"><h2>Overview</h2><dl class=\"facts\">");
    for (k, v) in facts {
        if !v.is_empty() {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(k), escape(&v));
        }
    }
    out.push_str("</dl></section>\n");
}

fn workers(out: &mut String, s: &Summary) {
    let u = &s.utilization;
    out.push_str("<section id=\"workers\"><h2>Worker timeline</h2>");
    let Some(window) = s.window.filter(|_| !u.threads.is_empty() && u.slices > 0) else {
        out.push_str(
            "<p class=\"note\">No worker or polling thread in this trace.</p></section>\n",
        );
        return;
    };
    let _ = write!(
        out,
        "<p class=\"note\">Busy share of each thread per slice of {} (darker: busier; \
         workers count as busy while unparked, other threads while polling).</p>",
        escape(&format_duration(u.slice_ns))
    );
    let label_w = 220.0;
    let chart_w = 820.0;
    let row_h = 22.0;
    let height = row_h * u.threads.len() as f64 + 24.0;
    let cell_w = chart_w / u.slices as f64;
    let _ = write!(
        out,
        "<svg role=\"img\" aria-label=\"worker timeline\" width=\"{}\" height=\"{height}\" \
         viewBox=\"0 0 {} {height}\">",
        label_w + chart_w + 60.0,
        label_w + chart_w + 60.0
    );
    let span = window.duration_ns().max(1) as f64;
    for (i, t) in u.threads.iter().enumerate() {
        let y = i as f64 * row_h;
        let label = if t.name.is_empty() {
            format!("thread {}", t.thread)
        } else {
            format!("{} {}", t.thread, t.name)
        };
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{label_w}\" y=\"{}\" width=\"{chart_w}\" \
             height=\"{}\" fill=\"#eef0f4\"/>",
            y + 15.0,
            escape(&label),
            y + 3.0,
            row_h - 6.0
        );
        for (slot, &busy) in t.busy_per_slice.iter().enumerate() {
            if busy == 0 {
                continue;
            }
            // Saturating: a corrupt file can hold any times (found by fuzzing).
            let start = u
                .start_ns
                .saturating_add((slot as u64).saturating_mul(u.slice_ns));
            let end = start
                .saturating_add(u.slice_ns)
                .min(window.end_ns.max(start.saturating_add(1)));
            let share = (busy as f64 / (end - start).max(1) as f64).min(1.0);
            let _ = write!(
                out,
                "<rect x=\"{:.2}\" y=\"{}\" width=\"{:.2}\" height=\"{}\" fill=\"{RUN}\" \
                 fill-opacity=\"{:.2}\"><title>{:.0}% busy</title></rect>",
                label_w + slot as f64 * cell_w,
                y + 3.0,
                cell_w.max(0.5),
                row_h - 6.0,
                0.15 + 0.85 * share,
                share * 100.0
            );
        }
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\">{:.0}%</text>",
            label_w + chart_w + 6.0,
            y + 15.0,
            t.busy_ns as f64 * 100.0 / span
        );
    }
    let axis_y = row_h * u.threads.len() as f64 + 16.0;
    let _ = write!(
        out,
        "<text x=\"{label_w}\" y=\"{axis_y}\">{}</text><text x=\"{}\" y=\"{axis_y}\" \
         text-anchor=\"end\">+{}</text></svg></section>",
        escape(&format_utc_millis(u.start_ns)),
        label_w + chart_w,
        escape(&format_duration(window.duration_ns()))
    );
}

/// A vertical bar chart of labelled counts.
fn bar_chart(out: &mut String, label: &str, bars: &[(String, u64)], color: &str) {
    let most = bars.iter().map(|b| b.1).max().unwrap_or(0).max(1) as f64;
    let bar_w = 110.0;
    let chart_h = 160.0;
    let width = bar_w * bars.len() as f64 + 20.0;
    let _ = write!(
        out,
        "<svg role=\"img\" aria-label=\"{}\" width=\"{width}\" height=\"{}\" viewBox=\"0 0 \
         {width} {}\">",
        escape(label),
        chart_h + 40.0,
        chart_h + 40.0
    );
    for (i, (name, n)) in bars.iter().enumerate() {
        let h = (*n as f64 / most) * chart_h;
        let x = 10.0 + i as f64 * bar_w;
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{:.1}\" width=\"{}\" height=\"{h:.1}\" fill=\"{color}\">\
             <title>{}: {n}</title></rect><text x=\"{}\" y=\"{:.1}\" text-anchor=\"middle\">{n}\
             </text><text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            chart_h - h + 14.0,
            bar_w - 16.0,
            escape(name),
            x + (bar_w - 16.0) / 2.0,
            chart_h - h + 10.0,
            x + (bar_w - 16.0) / 2.0,
            chart_h + 30.0,
            escape(name)
        );
    }
    out.push_str("</svg>");
}

fn latency(out: &mut String, s: &Summary) {
    let l = &s.sched_latency;
    let p = &l.percentiles;
    out.push_str("<section id=\"latency\"><h2>Scheduling latency (wake or spawn to poll)</h2>");
    if p.count == 0 {
        let _ = write!(
            out,
            "<p class=\"note\">No poll with a known wait ({} polls without a wake seen).</p>\
             </section>",
            l.unknown
        );
        return;
    }
    let _ = write!(
        out,
        "<p>{} polls: p50 <b>{}</b>, p90 <b>{}</b>, p99 <b>{}</b>, max <b>{}</b>{}</p>",
        p.count,
        escape(&format_duration(p.p50)),
        escape(&format_duration(p.p90)),
        escape(&format_duration(p.p99)),
        escape(&format_duration(p.max)),
        if l.unknown > 0 {
            format!(" ({} more polls without a wake seen)", l.unknown)
        } else {
            String::new()
        }
    );
    let bars: Vec<(String, u64)> = display_labels()
        .into_iter()
        .zip(l.histogram.iter().copied())
        .collect();
    bar_chart(out, "scheduling latency histogram", &bars, WAIT);
    out.push_str("</section>\n");
}

fn long_polls(out: &mut String, s: &Summary) {
    let lp = &s.long_polls;
    let _ = write!(
        out,
        "<section id=\"long-polls\"><h2>Long polls (at least {})</h2><p>{} long polls{}</p>",
        escape(&format_duration(lp.threshold_ns)),
        lp.count,
        if lp.count > 0 {
            format!(", {} in total", format_duration(lp.total_ns))
        } else {
            String::new()
        }
    );
    if !lp.top.is_empty() {
        let longest = lp.top[0].duration_ns.max(1) as f64;
        out.push_str(
            "<table><tr><th class=\"n\">duration</th><th></th><th class=\"n\">task</th>\
             <th>location</th><th>thread</th><th>start (UTC)</th><th>result</th></tr>",
        );
        for p in &lp.top {
            let w = p.duration_ns as f64 / longest * 160.0;
            let _ = write!(
                out,
                "<tr><td class=\"n\">{}</td><td><svg width=\"164\" height=\"12\"><rect \
                 width=\"{w:.1}\" height=\"12\" fill=\"{RUN}\"/></svg></td><td class=\"n\">{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&format_duration(p.duration_ns)),
                p.task,
                escape(&p.location),
                escape(&format!("{} {}", p.thread, p.thread_name)),
                escape(&format_utc_micros(p.start_ns)),
                escape(&p.result)
            );
            if !p.annotations.is_empty() {
                let _ = write!(
                    out,
                    "<tr><td></td><td colspan=\"6\" class=\"ann\">during: {}</td></tr>",
                    escape(&p.annotations.join("; "))
                );
            }
            if !p.stacks.is_empty() {
                let mut text = String::new();
                crate::summary::stacks_text::render_stacks(&p.stacks, "", &mut text);
                let _ = write!(
                    out,
                    "<tr><td></td><td colspan=\"6\"><pre class=\"stack\">{}</pre></td></tr>",
                    escape(&text)
                );
            }
        }
        out.push_str("</table>");
    }
    out.push_str("</section>\n");
}

/// Where CPU time went: a flame graph per spawn location (inline SVG, without script), from
/// the CPU samples. Nothing without samples.
fn cpu(out: &mut String, s: &Summary) {
    if s.cpu.is_empty() {
        return;
    }
    let total: u64 = s.cpu.iter().map(|c| c.samples).sum();
    let _ = write!(
        out,
        "<section id=\"cpu\"><h2>Where CPU time went</h2><p>{total} samples, a flame graph \
         per spawn location (callers below, callees above; width = samples)</p>"
    );
    for c in &s.cpu {
        let _ = write!(
            out,
            "<h3>{}: {} samples</h3>",
            escape(&c.location),
            c.samples
        );
        out.push_str(&flame_graph(&c.location, &c.folded));
    }
    out.push_str("</section>\n");
}

/// An inline SVG flame graph of folded stacks (`outer;…;inner`, count), by the `inferno` crate.
pub fn flame_graph(title: &str, folded: &[(String, u64)]) -> String {
    let lines: Vec<String> = folded.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let mut options = inferno::flamegraph::Options::default();
    options.no_javascript = true;
    options.deterministic = true;
    options.hash = true;
    options.title = title.to_string();
    options.count_name = "samples".to_string();
    options.image_width = Some(1100);
    let mut svg = Vec::new();
    match inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
    {
        Ok(()) => {
            let mut svg = String::from_utf8_lossy(&svg).into_owned();
            // No script in the report: inferno keeps a few variables in a script element even
            // without its JavaScript.
            while let (Some(a), Some(b)) = (svg.find("<script"), svg.find("</script>")) {
                if b < a {
                    break;
                }
                svg.replace_range(a..b + "</script>".len(), "");
            }
            // Its `onload` would call the script's missing `init`.
            svg = svg.replace(" onload=\"init(evt)\"", "");
            // Inline: without the XML declaration and doctype.
            let start = svg.find("<svg").unwrap_or(0);
            format!("<div class=\"flame\">{}</div>", &svg[start..])
        }
        Err(e) => format!(
            "<p class=\"note\">No flame graph: {}</p>",
            escape(&e.to_string())
        ),
    }
}

fn locations(out: &mut String, s: &Summary) {
    out.push_str("<section id=\"locations\"><h2>Tasks by spawn location</h2>");
    if s.locations.is_empty() {
        out.push_str("<p class=\"note\">No tasks in this trace.</p></section>\n");
        return;
    }
    let _ = write!(
        out,
        "<p class=\"legend\"><span><i style=\"background:{RUN}\"></i>run</span><span><i \
         style=\"background:{WAIT}\"></i>scheduling wait</span><span><i \
         style=\"background:{IDLE}\"></i>idle</span></p>"
    );
    let top: Vec<_> = s.locations.iter().take(s.options.top.max(1) * 2).collect();
    let most = top.iter().map(|l| l.total_ns).max().unwrap_or(0).max(1) as f64;
    out.push_str(
        "<table><tr><th>location</th><th></th><th class=\"n\">tasks</th><th class=\"n\">polls\
         </th><th class=\"n\">run</th><th class=\"n\">sched wait</th><th class=\"n\">idle</th>\
         <th class=\"n\">longest poll</th><th class=\"n\">sched p99</th></tr>",
    );
    for l in top {
        let scale = 200.0 / most;
        let run = l.run_ns as f64 * scale;
        let wait = l.sched_wait_ns as f64 * scale;
        let idle = l.idle_ns as f64 * scale;
        let _ = write!(
            out,
            "<tr><td>{}</td><td><svg width=\"204\" height=\"12\"><rect width=\"{run:.1}\" \
             height=\"12\" fill=\"{RUN}\"/><rect x=\"{run:.1}\" width=\"{wait:.1}\" height=\"12\" \
             fill=\"{WAIT}\"/><rect x=\"{:.1}\" width=\"{idle:.1}\" height=\"12\" \
             fill=\"{IDLE}\"/></svg></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td \
             class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}\
             </td><td class=\"n\">{}</td></tr>",
            escape(&l.location),
            run + wait,
            l.tasks,
            l.polls,
            escape(&format_duration(l.run_ns)),
            escape(&format_duration(l.sched_wait_ns)),
            escape(&format_duration(l.idle_ns)),
            escape(&format_duration(l.longest_poll_ns)),
            if l.sched_latency.percentiles.count > 0 {
                escape(&format_duration(l.sched_latency.percentiles.p99))
            } else {
                "-".to_string()
            }
        );
    }
    out.push_str("</table></section>\n");
}

fn groups(out: &mut String, id: &str, title: &str, groups: &[SpanGroup]) {
    let _ = write!(out, "<section id=\"{id}\"><h2>{title}</h2>");
    if groups.is_empty() {
        let _ = write!(
            out,
            "<p class=\"note\">No {} in this trace.</p></section>",
            title.to_lowercase()
        );
        return;
    }
    let most = groups
        .iter()
        .map(|g| g.latency.max)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    out.push_str(
        "<table><tr><th>name</th><th class=\"n\">count</th><th class=\"n\">unfinished</th>\
         <th class=\"n\">p50</th><th class=\"n\">p90</th><th class=\"n\">p99</th><th \
         class=\"n\">max</th><th>p50 / p99 / max</th><th>slowest</th></tr>",
    );
    for g in groups {
        let p = &g.latency;
        let bar = |v: u64| v as f64 / most * 200.0;
        let slowest: Vec<String> = g
            .slowest
            .iter()
            .take(3)
            .map(|s| {
                format!(
                    "{}{}{}",
                    if s.id != 0 {
                        format!("#{} ", s.id)
                    } else {
                        String::new()
                    },
                    format_duration(s.duration_ns),
                    if s.unfinished { " (unfinished)" } else { "" }
                )
            })
            .collect();
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><svg \
             width=\"204\" height=\"12\"><rect width=\"{:.1}\" height=\"12\" fill=\"{IDLE}\"/>\
             <rect width=\"{:.1}\" height=\"12\" fill=\"{WAIT}\"/><rect width=\"{:.1}\" \
             height=\"12\" fill=\"{RUN}\"/></svg></td><td>{}</td></tr>",
            escape(&g.name),
            g.count,
            g.unfinished,
            escape(&format_duration(p.p50)),
            escape(&format_duration(p.p90)),
            escape(&format_duration(p.p99)),
            escape(&format_duration(p.max)),
            bar(p.max),
            bar(p.p99),
            bar(p.p50),
            escape(&slowest.join(", "))
        );
    }
    out.push_str("</table></section>\n");
}

fn logs(out: &mut String, s: &Summary) {
    let logs = &s.logs;
    let _ = write!(
        out,
        "<section id=\"logs\"><h2>Logs</h2><p>{} messages</p>",
        logs.total
    );
    if !logs.recent.is_empty() {
        out.push_str(
            "<table><tr><th>time (UTC)</th><th>thread</th><th>category</th><th>message</th></tr>",
        );
        for l in &logs.recent {
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&format_utc_micros(l.time_ns)),
                escape(&format!("{} {}", l.thread, s.thread_name(l.thread))),
                escape(&l.category),
                escape(&l.message)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
