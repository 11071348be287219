"""Runs start on a fixed-rate grid (t0 + k*interval), whatever the script's own duration; overruns skip ticks."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from tests.helpers import Processes, wait_until
from tests.integration.support import make_setup, read_metrics, read_starts, start_collector, value

TOLERANCE = 0.12  # seconds: process start-up jitter on a loaded 2-core machine
FORK_DELAY = 0.4  # seconds: the most a loaded machine delays a script's first line; under the slow script's sleep


def offsets(times: list[float]) -> list[float]:
    return [round(t - times[0], 3) for t in times]


class TestFixedRate:
    def test_a_slow_script_still_starts_every_interval(self, tmp_path: Path, procs: Processes) -> None:
        """A 0.5 s script on a 1 s interval starts every 1 s (not every 1.5 s), without drift."""
        starts = tmp_path / "starts"
        setup = make_setup(tmp_path, "node-1=slow:1s\n", {"slow": f"date +%s.%N >> {starts}\nsleep 0.5\necho v=1\n"})
        start_collector(procs, setup)
        wait_until(lambda: len(read_starts(starts)) >= 5, timeout=10, what="five runs")
        times = read_starts(starts)[:5]
        # A start is stamped by the script's own `date`, after the fork: a loaded machine only ever delays it, so
        # the least delayed start places the grid, and each run may be late by less than the script's own length
        # (a schedule that started each run after the last one ended would be late by that much more every run).
        grid = min(t - k for k, t in enumerate(times))
        late = [(k, round(t - k - grid, 3)) for k, t in enumerate(times) if t - k - grid > FORK_DELAY]
        assert late == [], f"runs started at {offsets(times)}: not on the 1 s grid"

    def test_overrun_skips_ticks_and_counts_them(self, tmp_path: Path, procs: Processes) -> None:
        """A 2.5 s script on a 1 s interval: the ticks that pass while it runs are skipped, never queued, so the
        next run starts at the next tick on the grid (3 s) and the skips are counted and logged."""
        starts = tmp_path / "starts"
        setup = make_setup(tmp_path, "node-1=overrun:1s\n", {"overrun": f"date +%s.%N >> {starts}\nsleep 2.5\n"})
        start_collector(procs, setup)
        wait_until(lambda: value(read_metrics(setup.output), "edge_collector_script_runs_total", script="overrun")
                   == 2, timeout=9, what="two finished runs")
        samples = read_metrics(setup.output)
        # Run 1 at 0 s ends at 2.5 s (ticks 1 and 2 skipped); run 2 at 3 s ends at 5.5 s (ticks 4 and 5 skipped).
        assert value(samples, "edge_collector_script_skipped_runs_total", script="overrun") == 4
        times = read_starts(starts)
        assert abs(offsets(times)[1] - 3.0) < TOLERANCE, f"runs started at {offsets(times)}"
        assert len(times) == 2, f"runs started at {offsets(times)}: a skipped tick was run late"
        assert len(setup.log_lines("overran its interval")) == 2


class TestSharedBus:
    def test_scripts_of_one_node_never_overlap(self, tmp_path: Path, procs: Processes) -> None:
        """Two 0.3 s scripts due at the same ticks (they may share an I2C bus) run one after the other."""
        spans = tmp_path / "spans"
        body = f"start=$(date +%s.%N); sleep 0.3; echo \"$start $(date +%s.%N)\" >> {spans}\necho v=1\n"
        setup = make_setup(tmp_path, "node-1=left:500ms,right:500ms\n", {"left": body, "right": body})
        start_collector(procs, setup)
        wait_until(lambda: spans.exists() and len(spans.read_text().splitlines()) >= 6, timeout=8,
                   what="six runs")
        runs = sorted(tuple(map(float, line.split())) for line in spans.read_text().splitlines()[:6])
        overlaps = [(a, b) for a, b in pairwise(runs) if b[0] < a[1]]
        assert overlaps == [], f"runs overlapped: {overlaps}"


class TestIdleNode:
    def test_default_node_writes_health_without_running_anything(self, tmp_path: Path, procs: Processes) -> None:
        """A node on `default` starts no process at all but rewrites its health metrics every default interval,
        so a dashboard can tell an idle node from a dead collector."""
        setup = make_setup(tmp_path, "node-1=default\nother=probe:1s\n", {"probe": "echo v=1\n"})
        collector = start_collector(procs, setup, "--default-interval", "500ms")
        first = wait_until(lambda: value(read_metrics(setup.output), "edge_collector_last_write_timestamp_seconds"),
                           timeout=5, what="the first write")
        later = wait_until(
            lambda: (v := value(read_metrics(setup.output), "edge_collector_last_write_timestamp_seconds")) is not None
            and v >= first + 1.0 and v,
            timeout=5, what="two more heartbeats",
        )
        assert later >= first + 1.0
        children = Path(f"/proc/{collector.pid}/task/{collector.pid}/children").read_text().split()
        assert children == [], "an idle node started processes"
        samples = read_metrics(setup.output)
        assert not [name for name, _ in samples if name.startswith("edge_collector_script_")]
        assert value(samples, "edge_collector_info", node="node-1", version="0.1.0") == 1
        # Idle means idle: little CPU over the ~1.5 s it has been up (utime + stime in clock ticks).
        stat = Path(f"/proc/{collector.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(stat[11]) + int(stat[12]) < 50, "the idle collector is busy"
