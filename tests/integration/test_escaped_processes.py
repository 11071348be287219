"""Processes that leave the script's process group (`setsid cmd &`, `setsid -f`, a double fork, job control,
a loop that ignores SIGTERM) are killed at the end of every run and at a timeout: the collector is their child
subreaper, counts them and names them in one log line."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.helpers import Processes, wait_until
from tests.integration.support import (
    leftovers,
    make_setup,
    read_metrics,
    run_once,
    script_value,
    start_collector,
    value,
)

KILLED = "edge_collector_script_processes_killed_total"
# Each route starts a process that outlives the script unless the collector ends it. `: @MARKER@` keeps bash -c
# from exec'ing its last command, so the marker stays in a live command line (the environment carries it too).
ESCAPES = {
    "setsid-background": "setsid bash -c 'sleep 300; : @MARKER@' &",
    "setsid-fork": "setsid -f bash -c 'sleep 300; : @MARKER@'",
    "double-fork": "( setsid bash -c 'sleep 300; : @MARKER@' & )",
    "job-control": "set -m; bash -c 'sleep 300; : @MARKER@' & set +m",
    "loop-ignoring-sigterm": "setsid bash -c \"trap '' TERM; while :; do sleep 0.2; done; : @MARKER@\" &",
    "daemonized-ignoring-sigterm": "( ( exec setsid -f bash -c \"trap '' HUP TERM; sleep 300; : @MARKER@\" ) & )",
}


def escape_script(route: str, *, then: str = "exit 0") -> str:
    return f"""
        echo reading=1
        {ESCAPES[route]}
        sleep 0.1   # let the escapee get away before the script ends
        {then}
        """


class TestEscapedProcesses:
    @pytest.mark.parametrize("route", list(ESCAPES))
    def test_once_kills_what_escaped(self, tmp_path: Path, route: str) -> None:
        """--once: when the script exits 0, what escaped its group is killed before the collector exits; the run
        still succeeds, the count is in the file and one log line names the commands."""
        setup = make_setup(tmp_path, "node-1=escape\n", {"escape": escape_script(route)})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        assert leftovers(setup) == [], "a process outlived the run"
        samples = read_metrics(setup.output)
        assert value(samples, "edge_collector_script_success", script="escape") == 1
        assert (value(samples, KILLED, script="escape") or 0) >= 1
        lines = [line for line in result.stderr.splitlines() if "killed processes the script left running" in line]
        assert len(lines) == 1, result.stderr
        assert "script=escape" in lines[0] and "sleep" in lines[0], lines[0]

    @pytest.mark.parametrize("route", ["setsid-background", "setsid-fork", "loop-ignoring-sigterm"])
    def test_timeout_kills_what_escaped(self, tmp_path: Path, route: str) -> None:
        """At a timeout, what escaped the script's group is killed with the group (after the grace for processes
        ignoring SIGTERM)."""
        setup = make_setup(tmp_path, "node-1=escape\n", {"escape": escape_script(route, then="sleep 300")})
        result = run_once(setup, "--timeout", "700ms")
        assert result.returncode == 1, result.stderr
        assert leftovers(setup) == [], "a process outlived the timeout"
        samples = read_metrics(setup.output)
        assert value(samples, "edge_collector_script_timeouts_total", script="escape") == 1
        assert value(samples, "edge_collector_script_exit_code", script="escape") == 128 + signal.SIGTERM
        assert (value(samples, KILLED, script="escape") or 0) >= 1

    @pytest.mark.parametrize("route", list(ESCAPES))
    def test_daemon_never_piles_up_orphans(self, tmp_path: Path, procs: Processes, route: str) -> None:
        """In daemon mode over several runs nothing accumulates: between runs no process of the script is alive,
        and every run's escapees are counted."""
        setup = make_setup(tmp_path, "node-1=escape:700ms\n", {"escape": escape_script(route)})
        collector = start_collector(procs, setup)
        wait_until(lambda: (script_value(setup.output, "edge_collector_script_runs_total", "escape") or 0) >= 5,
                   timeout=30, what="five runs")
        # Runs are short; the poll finds a moment between two of them. Before the fix, orphans only piled up.
        wait_until(lambda: leftovers(setup) == [], timeout=10, what="no process of the script between runs")
        samples = read_metrics(setup.output)
        runs = value(samples, "edge_collector_script_runs_total", script="escape") or 0
        assert (value(samples, KILLED, script="escape") or 0) >= runs
        assert value(samples, "edge_collector_script_success", script="escape") == 1
        assert len(setup.log_lines("killed processes the script left running")) >= runs
        assert collector.poll() is None

    def test_clean_script_kills_nothing(self, tmp_path: Path) -> None:
        """A script that leaves nothing behind exports the counter at 0 and logs no kill."""
        setup = make_setup(tmp_path, "node-1=clean\n", {"clean": "echo reading=1\nsleep 0.05 &\nwait\n"})
        result = run_once(setup)
        assert result.returncode == 0, result.stderr
        assert value(read_metrics(setup.output), KILLED, script="clean") == 0
        assert "killed processes" not in result.stderr
