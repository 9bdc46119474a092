"""Tests of the overhead study's arithmetic and reports (bench/run.py), without running it.

    python3 -m unittest discover -s bench -p 'test_*.py'
"""

import os
import statistics
import sys
import unittest
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402


def sample(value, trace_bytes=0, seconds=None, snapshot_seconds=0.0, cpu=None):
    return {"value": value, "trace_bytes": trace_bytes,
            "seconds": value if seconds is None else seconds, "snapshot_seconds": snapshot_seconds,
            "cpu": value if cpu is None else cpu}


class Args:
    intervals = False
    rounds = 3
    http_secs = 2
    connections = 16
    size = "small"


class LargeArgs(Args):
    connections = 64
    size = "large"


INFO = {"date": "2026-11-22 00:00 UTC", "cpus": 2, "cpu": "cpu", "kernel": "k", "rustc": "rustc",
        "go": "go1.27.3", "wrk": "wrk 4.1.0"}


class Summarize(unittest.TestCase):
    def test_time_ratios_are_paired_per_round_against_the_own_languages_baseline(self):
        # Round 2 ran on a slow machine: both configurations took twice as long. Pairing per
        # round keeps the ratio at 1.5; comparing medians alone would not.
        samples = {"spawn": {
            "none": [sample(1.0), sample(2.0), sample(1.0)],
            "fr-flight": [sample(1.5), sample(3.0), sample(1.5)],
            "go-none": [sample(4.0), sample(4.0), sample(4.0)],
            "go-flight": [sample(8.0), sample(6.0), sample(4.0)],
        }}
        rows = run.summarize(samples)["spawn"]
        self.assertAlmostEqual(rows["fr-flight"]["paired_ratio"], 1.5)
        self.assertEqual(rows["fr-flight"]["ratios"], [1.5, 1.5, 1.5])
        self.assertAlmostEqual(rows["go-flight"]["paired_ratio"], 1.5)
        self.assertAlmostEqual(rows["none"]["paired_ratio"], 1.0)

    def test_http_ratio_is_lost_throughput_and_cpu_per_request(self):
        samples = {"http": {
            "none": [sample(100_000.0, seconds=5.0, cpu=10e-6), sample(90_000.0, seconds=5.0, cpu=20e-6)],
            "fr-flight": [sample(99_000.0, trace_bytes=5_000_000, seconds=5.0, cpu=10.1e-6),
                          sample(89_100.0, trace_bytes=5_000_000, seconds=5.0, cpu=20.2e-6)],
        }}
        rows = run.summarize(samples)["http"]
        self.assertAlmostEqual(rows["fr-flight"]["paired_ratio"], 100_000 / 99_000)
        self.assertAlmostEqual(rows["fr-flight"]["cpu_ratio"], 1.01)
        self.assertAlmostEqual(rows["fr-flight"]["trace_mb_per_s"], 1.0)


class Interval(unittest.TestCase):
    def test_bootstrap_interval_brackets_the_median_and_narrows_with_more_rounds(self):
        few = [1.00, 1.04, 0.97, 1.02, 1.01]
        many = few * 8
        low, high = run.bootstrap_interval(few)
        self.assertLessEqual(low, statistics.median(few))
        self.assertGreaterEqual(high, statistics.median(few))
        low_many, high_many = run.bootstrap_interval(many)
        self.assertLessEqual(high_many - low_many, high - low)
        self.assertEqual(run.bootstrap_interval(few), (low, high))


class Reports(unittest.TestCase):
    def rows(self):
        return run.summarize({
            "yield": {
                "none": [sample(0.05)] * 3,
                "fr-flight": [sample(0.06, trace_bytes=3_000_000, snapshot_seconds=0.001)] * 3,
                "console": [sample(0.5)] * 3,
            },
            "http": {
                "none": [sample(100_000.0, seconds=5.0)] * 3,
                "fr-flight": [sample(99_500.0, seconds=5.0)] * 3,
                "console": [sample(60_000.0, seconds=5.0)] * 3,
            },
        })

    def test_markdown_lists_every_ratio_and_measure(self):
        text = run.markdown(self.rows(), INFO, Args())
        self.assertIn("| yield-heavy (100 tasks × 5k yields) | 1.20× | 10.00× |", text)
        self.assertIn("| HTTP server (wrk, 16 connections) | 1.01× | 1.67× |", text)
        self.assertIn("60.0 ms", text)
        # The CPU table follows the slowdown table, in the same columns.
        cpu_table = text.split("CPU time against")[1]
        self.assertIn("| yield-heavy (100 tasks × 5k yields) | 1.20× | 10.00× |", cpu_table)
        self.assertIn("99,500 req/s", text)
        self.assertIn("3.0 MB in 1.0 ms", text)

    def test_markdown_names_the_sizes_and_the_load_it_ran(self):
        text = run.markdown(self.rows(), INFO, LargeArgs())
        self.assertIn("| yield-heavy (1,000 tasks × 10k yields) | 1.20× | 10.00× |", text)
        self.assertIn("| HTTP server (wrk, 64 connections) | 1.01× | 1.67× |", text)
        self.assertIn("`wrk -t1 -c64`", text)
        self.assertIn("large sizes", text)
        self.assertNotIn("5k yields", text)

    def test_commands_pass_the_size_to_both_languages(self):
        binaries = ("/bin/rust", "/bin/go")
        self.assertEqual(
            run.command(binaries, "yield", "fr-spawn", "/tmp", "large"),
            ["/bin/rust", "--workload", "yield", "--config", "fr-spawn", "--size", "large",
             "--trace-dir", "/tmp"])
        self.assertEqual(
            run.command(binaries, "pingpong", "go-flight", "/tmp", "large"),
            ["/bin/go", "-workload", "pingpong", "-config", "go-flight", "-size", "large",
             "-trace-dir", "/tmp"])

    def test_svg_is_well_formed_with_one_bar_per_ratio(self):
        svg = run.svg_chart(self.rows())
        root = ET.fromstring(svg)
        ns = "{http://www.w3.org/2000/svg}"
        titles = [t.text for t in root.iter(ns + "title")]
        self.assertEqual(len(titles), 4)
        self.assertIn("console-subscriber: 10.00×", titles)
        # Bars stand on the 1× line and grow upward with the ratio.
        bars = {t.text: r for r in root.iter(ns + "rect") for t in r.iter(ns + "title")}
        console = bars["console-subscriber: 10.00×"]
        flight = bars["flight-recorder: flight recorder: 1.20×"]
        self.assertGreater(float(console.get("height")), float(flight.get("height")))
        self.assertAlmostEqual(float(console.get("y")) + float(console.get("height")),
                               float(flight.get("y")) + float(flight.get("height")), places=0)


if __name__ == "__main__":
    unittest.main()
