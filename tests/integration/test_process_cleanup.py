"""Scripts that hang or leave processes behind: the collector ends their whole process group and stays on time."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.helpers import Processes, wait_until
from tests.integration.support import (
    complete_problem,
    leftovers,
    make_setup,
    read_metrics,
    read_starts,
    run_once,
    script_value,
    start_collector,
    value,
)

# A background grandchild that holds the script's stdout open for 5 minutes; `: @MARKER@` keeps bash -c from
# exec'ing sleep, so the marker stays in a live command line that the test can look for in /proc.
GRANDCHILD = "bash -c 'sleep 300; : @MARKER@' &"


class TestHungScript:
    def test_timeout_kills_the_group_and_the_next_run_is_on_time(self, tmp_path: Path, procs: Processes) -> None:
        """A script stuck in `sleep 300` with a `sleep 300 &` grandchild is killed at its timeout with everything
        it started; the next run starts on the fixed-rate schedule and the timeout is in the file."""
        starts = tmp_path / "starts"
        setup = make_setup(tmp_path, "node-1=hang:2s\n", {"hang": f"""
            date +%s.%N >> {starts}
            echo started=1
            {GRANDCHILD}
            sleep 300
            """})
        collector = start_collector(procs, setup, "--timeout", "500ms")

        for run in (1, 2):
            wait_until(lambda run=run: (script_value(setup.output, "edge_collector_script_timeouts_total", "hang")
                                        or 0) >= run, timeout=5, what=f"timeout number {run} in the file")
            # The file is written right after the group was killed; the next run is >1 s away.
            assert leftovers(setup) == [], f"processes left after timeout {run}"
        samples = read_metrics(setup.output)
        assert value(samples, "edge_collector_script_success", script="hang") == 0
        assert value(samples, "edge_collector_script_exit_code", script="hang") == 128 + signal.SIGTERM
        assert value(samples, "edge_started") == 1, "what the script printed before it hung is exported"
        assert collector.poll() is None

        times = read_starts(starts)
        assert len(times) >= 2
        assert abs((times[1] - times[0]) - 2.0) < 0.2, f"runs started at {times}: the second is not on time"
        assert len(setup.log_lines("script timed out")) >= 2

    def test_processes_ignoring_sigterm_are_killed_after_the_grace(self, tmp_path: Path) -> None:
        """A script and a grandchild that ignore SIGTERM are SIGKILLed after the grace period: the run ends as a
        timeout with exit code 137 and nothing survives."""
        setup = make_setup(tmp_path, "node-1=stubborn\n", {"stubborn": """
            trap '' TERM
            echo got=1
            bash -c "trap '' TERM; sleep 300; : @MARKER@" &
            sleep 300
            """})
        started = time.monotonic()
        result = run_once(setup, "--timeout", "500ms")
        elapsed = time.monotonic() - started
        assert result.returncode == 1
        assert elapsed < 4, f"--once took {elapsed:.1f}s"
        samples = read_metrics(setup.output)
        assert value(samples, "edge_collector_script_exit_code", script="stubborn") == 128 + signal.SIGKILL
        assert value(samples, "edge_collector_script_timeouts_total", script="stubborn") == 1
        assert value(samples, "edge_got") == 1
        assert wait_until(lambda: leftovers(setup) == [], timeout=1, what="no process left")

    def test_background_job_of_a_finished_script_is_ended(self, tmp_path: Path) -> None:
        """A script that exits 0 but leaves a background job holding stdout does not make the collector wait for
        it: the run succeeds at once and the job is gone."""
        setup = make_setup(tmp_path, "node-1=bg\n", {"bg": f"""
            echo reading=7
            {GRANDCHILD}
            exit 0
            """})
        started = time.monotonic()
        result = run_once(setup)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert elapsed < 5, f"--once took {elapsed:.1f}s: it waited for the background job"
        samples = read_metrics(setup.output)
        assert value(samples, "edge_reading") == 7
        assert value(samples, "edge_collector_script_success", script="bg") == 1
        assert leftovers(setup) == []


class TestShutdown:
    @pytest.mark.parametrize(
        ("sig", "trap"),
        [(signal.SIGTERM, ""), (signal.SIGINT, ""), (signal.SIGTERM, "trap '' TERM")],
        ids=["sigterm", "sigint", "sigterm-script-ignores-it"],
    )
    def test_stop_during_a_long_run(self, tmp_path: Path, procs: Processes, sig: int, trap: str) -> None:
        """SIGTERM/SIGINT while a script runs: the collector exits 0 within 1 s, even when the script ignores
        SIGTERM, ends the script and its grandchildren, and leaves a complete metrics file."""
        running = tmp_path / "running"
        setup = make_setup(tmp_path, "node-1=long:1m\n", {"long": f"""
            {trap}
            echo partial=1
            {GRANDCHILD}
            touch {running}
            sleep 60
            """})
        collector = start_collector(procs, setup, "--timeout", "30s")
        wait_until(running.exists, timeout=5, what="the long script to start")
        wait_until(lambda: len(leftovers(setup)) >= 3, timeout=5, what="the script, its sleep and its grandchild")

        sent = time.monotonic()
        collector.send_signal(sig)
        code = collector.wait(timeout=5)
        took = time.monotonic() - sent
        assert took < 1.0, f"exit took {took:.2f}s after {signal.Signals(sig).name}"
        assert code == 0
        assert wait_until(lambda: leftovers(setup) == [], timeout=1, what="no script process left")
        text = setup.output.read_text()
        assert complete_problem(text) is None, complete_problem(text)
        assert setup.log_lines("stopping")
