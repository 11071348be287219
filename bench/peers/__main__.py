"""`make bench-peers` / `python -m bench.peers`: edge-metrics beside its peers, on one machine in one run.

The same 20-reading script at the same interval, run by edge-metrics in push mode (to a real vmagent) and on
the textfile path (node_exporter), collectd's exec plugin with write_prometheus, script_exporter scraped at
the interval, and the plain shell loop (bench/shell_loop.sh); a real Prometheus on the loopback receives
them all. Three phases, each with every approach running at once: the steady window (CPU per run, RSS,
runs achieved, readings stored, first run), a fast-interval run of the collector for growth, and a script
printing just under 1 MiB. Prints the tables of docs/performance.md; exits 0 whatever the figures (1 with
--strict if a target is missed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.entry import load_average, run, stop_on_sigterm
from bench.peers.agents import APPROACHES
from bench.peers.measure import Phase, run_phase
from bench.peers.report import growth_table, peers_table, targets_table
from bench.peers.scripts import BIG_BYTES, big_readings, big_script, sensor_script
from bench.workload import tmpfs_dir
from tests.helpers import processes


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.peers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=1.0, help="the script's interval, seconds (1)")
    parser.add_argument("--runs", type=int, default=240, help="intervals in the steady window (240)")
    parser.add_argument("--warmup", type=int, default=10, help="runs of each approach before a window opens (10)")
    parser.add_argument("--growth-runs", type=int, default=10000, help="runs of the fast-interval phase (10000)")
    parser.add_argument("--growth-interval", type=float, default=0.01, help="its interval, seconds (0.01)")
    parser.add_argument("--big-runs", type=int, default=5, help="runs of the 1 MiB script measured (5)")
    parser.add_argument("--big-interval", type=float, default=5.0, help="its interval, seconds (5)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep it (logs, configs)")
    parser.add_argument("--strict", action="store_true", help="exit 1 if a target is missed")
    return parser.parse_args(argv)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    print(f"# bench/peers, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {load_average()}, "
          f"{os.cpu_count()} CPUs")
    sensors = Phase(args.interval, args.warmup, args.runs,
                    lambda d, fmt, log: sensor_script(d / "sensors.sh", fmt, log), {})
    growth = Phase(args.growth_interval, max(args.warmup, args.growth_runs // 10), args.growth_runs,
                   lambda d, fmt, log: sensor_script(d / "sensors.sh", fmt, log), {}, count_runs=True)
    big = Phase(args.big_interval, 1, args.big_runs,
                lambda d, fmt, log: big_script(d / "big.sh", fmt, log, d / "big.out"), {"EDGE_MAX_SERIES": "100000"})
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as temp, processes() as procs:
        root = args.keep or Path(temp)
        root.mkdir(parents=True, exist_ok=True)
        root.chmod(0o755)  # collectd runs the script as nobody, who must reach it
        shm = tmpfs_dir() or root
        textfiles = Path(tempfile.mkdtemp(prefix="bench-peers-", dir=shm))
        try:
            steady = run_phase(procs, root / "steady", textfiles / "steady", APPROACHES, sensors,
                               count_delivered=True)
            print(f"# steady window done, load average {load_average()}", flush=True)
            edge = tuple(a for a in APPROACHES if a.name.startswith("edge-"))
            grown = run_phase(procs, root / "growth", textfiles / "growth", edge, growth, count_delivered=False)
            print(f"# growth run done, load average {load_average()}", flush=True)
            large = run_phase(procs, root / "big", textfiles / "big", APPROACHES, big, count_delivered=False)
            sizes = {a.name: big_readings(root / "big" / a.name / "big.out") for a in APPROACHES}
        finally:
            procs.cleanup()  # before the files they write go
            shutil.rmtree(textfiles, ignore_errors=True)
    print(f"\n## Peers: the same 20-reading script every {args.interval:g} s, {args.runs} intervals, all at once\n")
    print(peers_table(steady, {f.name: f for f in large}))
    print(f"\nOwn CPU: utime+stime of the approach's process (all its threads) over the window, divided by the runs it "
          "started in it; its children (the script) are not in it. The shell loop's figure is the loop shell with its "
          "children (sed, mv, the script) minus the script alone (bare `bash script`, paced beside them). Readings in "
          "Prometheus: runs of the window whose reading 0 (the run's start time) is stored. 1 MiB output: a script "
          f"printing {BIG_BYTES} bytes every {args.big_interval:g} s ("
          + ", ".join(f"{name} {count} lines" for name, count in sizes.items()) + "), edge-metrics with "
          "--max-series 100000 so that it keeps all of them.")
    print(f"\n## Growth: {args.growth_runs} runs at {args.growth_interval * 1000:g} ms\n")
    print(growth_table(grown))
    targets, misses = targets_table(steady, grown)
    print("\n## Targets (issue 22), as ratios measured/limit in this run\n")
    print(targets)
    print(f"\n{misses} MISS; load average at the end {load_average()}")
    return 1 if args.strict and misses else 0


if __name__ == "__main__":
    run(main)
