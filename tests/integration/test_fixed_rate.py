"""Runs start on a fixed-rate grid (t0 + k*interval), whatever the script's own duration; overruns skip ticks."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import Processes, wait_until
from tests.integration.support import make_setup, read_metrics, read_starts, start_collector, value

TOLERANCE = 0.12  # seconds: process start-up jitter on a loaded 2-core machine


def offsets(times: list[float]) -> list[float]:
    return [round(t - times[0], 3) for t in times]


class TestFixedRate:
    def test_a_slow_script_still_starts_every_interval(self, tmp_path: Path, procs: Processes) -> None:
        """A 0.3 s script on a 1 s interval starts every 1 s (not every 1.3 s), without drift."""
        starts = tmp_path / "starts"
        setup = make_setup(tmp_path, "node-1=slow:1s\n", {"slow": f"date +%s.%N >> {starts}\nsleep 0.3\necho v=1\n"})
        start_collector(procs, setup)
        wait_until(lambda: len(read_starts(starts)) >= 5, timeout=8, what="five runs")
        times = read_starts(starts)[:5]
        late = [(k, offset) for k, offset in enumerate(offsets(times)) if abs(offset - k) > TOLERANCE]
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
