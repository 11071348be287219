"""What push mode costs the collector: CPU per run and resident memory, textfile path vs push to a real vmagent.

    .venv/bin/python -m bench.push_cost [--runs 400] [--interval-ms 50]

The 20-line script of collector_bench.py; CPU is the daemon's own scheduler time (children excluded) over
`--runs` runs after 20 warm-up runs, divided by the runs; RSS is VmRSS at the end. Figures: docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.procfs import own_cpu_ns, status_kib
from bench.workload import Daemon, echo_lines, write_config, write_script
from testbed.poll import wait_until

REPO = Path(__file__).resolve().parents[1]


def components() -> dict[str, str]:
    lines = (REPO / ".cache" / "components" / "env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(workdir: Path, env: dict[str, str], runs: int, interval_ms: int) -> tuple[float, float]:
    """(ms of the collector's own CPU per run, VmRSS MiB at the end)."""
    workdir.mkdir(parents=True)
    (workdir / "textfile").mkdir()
    write_script(workdir, "sensors", echo_lines(20))
    write_config(workdir, f"sensors:{interval_ms}ms")
    with Daemon(workdir, env=env) as daemon:
        start_runs = daemon.wait_runs("sensors", 20, timeout=60)
        start_cpu = own_cpu_ns(daemon.pid)
        end_runs = daemon.wait_runs("sensors", start_runs + runs, timeout=runs * interval_ms / 1000 * 4 + 60)
        cpu = own_cpu_ns(daemon.pid) - start_cpu
        rss = status_kib(daemon.pid, "VmRSS") / 1024
    return cpu / 1e6 / (end_runs - start_runs), rss


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=400, help="runs measured per mode (400)")
    parser.add_argument("--interval-ms", type=int, default=50, help="script interval (50)")
    parser.add_argument("--baseline-src", type=Path, metavar="DIR",
                        help="also measure the textfile path with the collector from DIR (e.g. the src/ of a "
                        "`git worktree add /tmp/base <commit>`), through PYTHONPATH")
    args = parser.parse_args(argv)
    if args.baseline_src is not None and not (args.baseline_src / "edge_metrics").is_dir():
        parser.error(f"--baseline-src: {args.baseline_src}/edge_metrics does not exist (see docs/performance.md)")
    with tempfile.TemporaryDirectory(prefix="push-cost-") as temp:
        root = Path(temp)
        port = free_port()
        vmagent = subprocess.Popen(
            [components()["VMAGENT_BIN"], f"-httpListenAddr=127.0.0.1:{port}", "-remoteWrite.url=http://127.0.0.1:1/",
             f"-remoteWrite.tmpDataPath={root / 'queue'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        try:
            wait_until(lambda: _answers(port), timeout=30, what="vmagent")
            url = f"http://127.0.0.1:{port}/api/v1/import/prometheus"
            modes: dict[str, dict[str, str]] = {}
            if args.baseline_src is not None:
                modes[f"textfile path, collector from {args.baseline_src}"] = {"PYTHONPATH": str(args.baseline_src)}
            modes |= {
                "textfile path": {},
                "push mode, vmagent answering": {"EDGE_PUSH_URL": url, "EDGE_CLOCK_CHECK": "none"},
                "push mode, spool on disk (vmagent down)": {
                    "EDGE_PUSH_URL": f"http://127.0.0.1:{free_port()}/x", "EDGE_CLOCK_CHECK": "none",
                    "EDGE_SPOOL_DIR": str(root / "spool"), "EDGE_SPOOL_MAX_BYTES": "1MiB",
                },
            }
            print(f"| mode ({args.runs} runs of a 20-line script at {args.interval_ms} ms) "
                  "| own CPU per run (ms) | VmRSS (MiB) |\n| --- | --- | --- |")
            for index, (name, env) in enumerate(modes.items()):
                cpu, rss = measure(root / f"mode{index}", env, args.runs, args.interval_ms)
                print(f"| {name} | {cpu:.3f} | {rss:.2f} |", flush=True)
        finally:
            os.killpg(vmagent.pid, 15)
            vmagent.wait(timeout=30)
    return 0


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        time.sleep(0.05)
        return False


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
