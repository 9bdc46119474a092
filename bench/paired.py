#!/usr/bin/env python3
"""Paired timing of two or more builds of a command, on a noisy machine.

    python3 bench/paired.py ROUNDS BIN1,BIN2[,...] ARGS...

Runs every binary once per round with the same ARGS (output discarded), alternating which one
goes first, and prints for each binary its median elapsed and CPU time (user + system, from the
children's rusage) and its elapsed time over the first binary's in the same round: each
round's ratio, sorted, and their median. Within a round the binaries share the machine's state,
so the ratios are steadier than the times.
"""

import resource
import statistics
import subprocess
import sys
import time


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main(argv):
    if len(argv) < 2 or not argv[0].isdigit():
        sys.exit(__doc__)
    rounds, binaries, args = int(argv[0]), argv[1].split(","), argv[2:]
    if len(set(binaries)) != len(binaries):
        sys.exit("paired.py: each binary may be named once (copy a build to compare it with itself)")
    elapsed = {b: [] for b in binaries}
    cpu = {b: [] for b in binaries}
    for r in range(rounds):
        for b in binaries if r % 2 == 0 else binaries[::-1]:
            before, start = cpu_seconds(), time.perf_counter()
            subprocess.run([b] + args, stdout=subprocess.DEVNULL, check=True)
            elapsed[b].append(time.perf_counter() - start)
            cpu[b].append(cpu_seconds() - before)
    first = binaries[0]
    for b in binaries:
        ratios = sorted(x / y for x, y in zip(elapsed[b], elapsed[first]))
        print(
            f"{b}: elapsed median {statistics.median(elapsed[b]):.3f} s, "
            f"CPU median {statistics.median(cpu[b]):.3f} s, over {first}: "
            f"median {statistics.median(ratios):.3f} "
            f"({', '.join(f'{x:.2f}' for x in ratios)})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
