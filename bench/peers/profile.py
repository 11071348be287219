"""`python -m bench.peers.profile`: where the collector's resident memory and start-up go, the profile behind
the misses of docs/performance.md#beside-its-peers-issue-22.

Memory: one fresh interpreter imports, in order, the standard modules the collector needs and then its own,
and prints VmRSS after each step (/proc/self/status), beside a bare interpreter. Start-up: the median of a few
cold starts of a bare interpreter, of one that only imports the collector, and of `edge-metrics run` up to its
first run (the script's $EPOCHREALTIME), all with the collector's modules compiled as the image ships them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.entry import load_average
from bench.peers.report import table
from bench.workload import collector_command
from testbed.poll import wait_until

# (what, the import statement): cumulative, in the order the collector's own imports pull them in.
IMPORT_STEPS = (
    ("re, enum, collections, functools (cli, parse, config)", "import re, enum, collections, functools"),
    ("argparse, gettext (cli: the options)", "import argparse"),
    ("pathlib, fnmatch, urllib.parse, ipaddress (paths, node globs)", "import pathlib, fnmatch"),
    ("select, signal, struct, fcntl (the loop, the runner)", "import select, signal, struct, fcntl"),
    ("ctypes (adjtimex: the clock check)", "import ctypes"),
    ("threading (push: the sender thread)", "import threading"),
    ("_socket, zlib (push: HTTP, the spool's checksums)", "import _socket, zlib"),
    ("edge_metrics.cli and what it imports", "import edge_metrics.cli"),
    ("edge_metrics.daemon (node, push, spool, render, ...)", "import edge_metrics.daemon"),
)
_MEASURE = """
import sys
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
print(rss())
for statement in sys.argv[1:]:
    exec(statement)
    print(rss())
"""


def memory_table(python: str) -> str:
    collector_command()  # compiles the collector's modules
    out = subprocess.run([python, "-c", _MEASURE, *(s for _, s in IMPORT_STEPS)], check=True, capture_output=True,
                         text=True).stdout.split()
    kib = [int(x) for x in out]
    rows = [["interpreter + site (bare `python`)", f"{kib[0] / 1024:.2f}", ""]]
    for (what, _), before, after in zip(IMPORT_STEPS, kib[:-1], kib[1:], strict=True):
        rows.append([what, f"{after / 1024:.2f}", f"+{(after - before) / 1024:.2f}"])
    return table(["step (cumulative)", "VmRSS (MiB)", "step (MiB)"], rows)


def startup_table(python: str, trials: int) -> str:
    command = collector_command()
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as temp:
        root = Path(temp)
        (root / "first.sh").write_text(f"#!/bin/bash\necho $EPOCHREALTIME > {root}/first.txt\necho a=1\n")
        (root / "nodes.conf").write_text("bench=first:60s\n")

        def wall(argv: list[str]) -> float:
            started = time.time()
            subprocess.run(argv, check=True)
            return (time.time() - started) * 1000

        def first_run() -> float:
            mark = root / "first.txt"
            mark.unlink(missing_ok=True)
            started = time.time()
            proc = subprocess.Popen([*command, "run", "--config", str(root / "nodes.conf"), "--node-name", "bench",
                                     "--output", str(root / "out.prom"), "--log-level", "warning"],
                                    env={**os.environ, "EDGE_CLOCK_CHECK": "none"})
            try:
                stamp = wait_until(lambda: mark.exists() and mark.read_text().strip(), timeout=60, what="first run")
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            return (float(stamp) - started) * 1000

        rows = []
        for what, measure in (("bare interpreter (`python -c pass`)", lambda: wall([python, "-c", "pass"])),
                              ("... importing the collector", lambda: wall(
                                  [python, "-c", "import edge_metrics.cli, edge_metrics.daemon"])),
                              ("`edge-metrics run`: process start -> first run", first_run)):
            samples = [measure() for _ in range(trials)]
            rows.append([what, f"{statistics.median(samples):.0f}", f"{min(samples):.0f}"])
    return table([f"start-up, {trials} cold starts", "median (ms)", "best (ms)"], rows)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers.profile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=7, help="cold starts per start-up row (7)")
    args = parser.parse_args(argv)
    print(f"# load average {load_average()}\n")
    print(memory_table(sys.executable))
    print()
    print(startup_table(sys.executable, args.trials))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
