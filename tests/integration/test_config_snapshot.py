"""The last good config, scripts included: under kubelet-style ConfigMap swaps only content the collector accepted
runs; a rejected script never runs; an empty plan is rejected rather than silencing every per-script metric."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.helpers import Processes, wait_until
from tests.integration.support import ConfigMapVolume, Setup, read_metrics, start_collector, value

GOOD_CONF = "node-1=alpha:100ms\n"
# A duplicate entry for node-1: rejected by nodes.conf alone, while the script beside it is a new version.
BAD_CONF = "node-1=alpha:100ms\nnode-1=alpha:1s\n"


def current(setup: Setup, name: str, **labels: str) -> float | None:
    try:
        return value(read_metrics(setup.output), name, **labels)
    except FileNotFoundError:
        return None


def runs_of(setup: Setup, script: str = "alpha") -> float:
    return current(setup, "edge_collector_script_runs_total", script=script) or 0


def wait_runs(setup: Setup, more: int, *, timeout: float = 10) -> None:
    """Until the script has run `more` more times: the plan kept running meanwhile."""
    start = runs_of(setup)
    wait_until(lambda: runs_of(setup) >= start + more, timeout=timeout, what=f"{more} more runs of alpha")


def recorder(runs: Path, version: str, value_: int) -> str:
    """A script body that records which version ran (one line per run), then prints its reading."""
    return f"echo {version} >> {runs}\necho version={value_}\n"


def versions_run(runs: Path) -> list[str]:
    return runs.read_text().split() if runs.exists() else []


class TestSwapsRunOnlyAcceptedContent:
    def test_no_run_executes_a_rejected_version(self, tmp_path: Path, procs: Processes) -> None:
        """Good and rejected updates alternate, each held until the collector reacted, then churned by the dozen
        the way a fast-changing ConfigMap is: every run is counted by the version that ran. Not one run executes a
        version the collector rejected (before snapshots: 31 of 65 did), while the last good plan keeps running
        and edge_collector_config_last_reload_successful shows each rejection."""
        runs = tmp_path / "runs.log"
        setup = Setup(root=tmp_path)
        volume = ConfigMapVolume(setup.conf_dir)
        volume.publish(GOOD_CONF, {"alpha": recorder(runs, "good-1", 1)})
        collector = start_collector(procs, setup)
        wait_until(lambda: current(setup, "edge_version") == 1, timeout=10, what="the first good version")

        rejected = 0
        for round_ in range(2, 6):
            # Rejected by nodes.conf; the script beside it is new.
            volume.publish(BAD_CONF, {"alpha": recorder(runs, f"bad-conf-{round_}", -round_)})
            wait_until(lambda: current(setup, "edge_collector_config_last_reload_successful") == 0, timeout=10,
                       what="the rejection")
            wait_runs(setup, 3)
            # Rejected by the script's own content (its first line), nodes.conf unchanged.
            volume.publish(GOOD_CONF, {}, raw={"alpha": f"#!/bin/sh\n{recorder(runs, f'bad-script-{round_}', 0)}"
                                                       .encode()})
            wait_runs(setup, 3)
            assert current(setup, "edge_collector_config_last_reload_successful") == 0
            rejected += 2
            volume.publish(GOOD_CONF, {"alpha": recorder(runs, f"good-{round_}", round_)})
            wait_until(lambda r=round_: current(setup, "edge_version") == r, timeout=10,  # type: ignore[misc]
                       what=f"good version {round_}")
            assert current(setup, "edge_collector_config_last_reload_successful") == 1

        # Churn: an update every few tens of milliseconds, good and rejected in turn, then a last good one.
        for churn in range(60):
            bad = churn % 2 == 1
            volume.publish(BAD_CONF if bad else GOOD_CONF,
                           {"alpha": recorder(runs, f"{'bad' if bad else 'good'}-churn-{churn}", 100 + churn)})
            rejected += bad
            time.sleep(0.03)
        volume.publish(GOOD_CONF, {"alpha": recorder(runs, "good-last", 999)})
        wait_until(lambda: current(setup, "edge_version") == 999, timeout=10, what="the last good version")

        ran = versions_run(runs)
        ran_rejected = [version for version in ran if version.startswith("bad")]
        print(f"runs={len(ran)} of rejected versions={len(ran_rejected)} rejected updates={rejected}")
        assert len(ran) > 40, ran
        assert ran_rejected == [], f"{len(ran_rejected)} of {len(ran)} runs executed a rejected version"
        assert setup.log_lines("config rejected; keeping the last good config")
        assert collector.poll() is None


class TestRejectedScriptNeverRuns:
    @pytest.mark.parametrize(("content", "reason"), [
        (b"#!/bin/sh\ntouch @FLAG@\necho version=2\n", "alpha.sh:1: first line must be #!/bin/bash"),
        (b"#!/bin/bash\r\ntouch @FLAG@\r\necho version=2\r\n",
         "alpha.sh:1: Windows line endings (CRLF, 3 lines)"),
    ], ids=["not-bash", "crlf"])
    def test_on_update_the_last_good_content_keeps_running(self, tmp_path: Path, procs: Processes,
                                                           content: bytes, reason: str) -> None:
        """An update whose script is refused: the script the collector accepted keeps running, the refused one
        never runs (its flag file never appears), edge_collector_config_last_reload_successful is 0 and the log
        names the file, the line and the reason (for CRLF, the command that fixes it)."""
        flag = tmp_path / "ran"
        setup = Setup(root=tmp_path)
        volume = ConfigMapVolume(setup.conf_dir)
        volume.publish(GOOD_CONF, {"alpha": "echo version=1\n"})
        collector = start_collector(procs, setup)
        wait_until(lambda: current(setup, "edge_version") == 1, timeout=10, what="the good version")

        volume.publish(GOOD_CONF, {}, raw={"alpha": content.replace(b"@FLAG@", str(flag).encode())})
        wait_until(lambda: current(setup, "edge_collector_config_last_reload_successful") == 0, timeout=10,
                   what="the rejection")
        wait_runs(setup, 5)
        assert not list(tmp_path.glob("ran*")), "the refused script ran"
        assert current(setup, "edge_version") == 1
        assert current(setup, "edge_collector_script_success", script="alpha") == 1
        [line] = setup.log_lines(reason)[:1]
        assert f"{setup.config}:1: script 'alpha': {setup.conf_dir / 'alpha.sh'}:1:" in line and "ERROR" in line
        if b"\r" in content:
            assert f"sed -i 's/\\r$//' {setup.conf_dir / 'alpha.sh'}" in line
        assert collector.poll() is None

    def test_at_start_a_refused_script_never_runs(self, tmp_path: Path, procs: Processes) -> None:
        """No last good config yet: nothing runs, reload_successful is 0, and the CRLF script is named with the
        fix rather than failing at every run with bash's "unexpected end of file"."""
        flag = tmp_path / "ran"
        setup = Setup(root=tmp_path)
        volume = ConfigMapVolume(setup.conf_dir)
        volume.publish(GOOD_CONF, {}, raw={"alpha": f"#!/bin/bash\r\ntouch {flag}\r\nif true; then\r\n  echo v=1\r\n"
                                                    "fi\r\n".encode()})
        collector = start_collector(procs, setup)
        wait_until(lambda: current(setup, "edge_collector_config_last_reload_successful") == 0, timeout=10,
                   what="the rejection")
        time.sleep(1)  # ten intervals of the refused script: time for it to have (wrongly) run
        assert not list(tmp_path.glob("ran*"))
        assert setup.log_lines("Windows line endings") and not setup.log_lines("script failed")
        assert collector.poll() is None


class TestEmptyPlanRejected:
    @pytest.mark.parametrize("text", ["", "# every line commented out\n# node-1=alpha:100ms\n",
                                      "node-2=alpha:100ms\n"], ids=["empty", "comments", "node-left-out"])
    def test_an_update_that_leaves_the_node_nothing_is_rejected(self, tmp_path: Path, procs: Processes,
                                                                text: str) -> None:
        """An update leaving this node no line (empty, comment-only, or its line gone) is rejected: the last good
        plan keeps running and its per-script metrics stay, so a rule can see the rejection
        (edge_collector_config_last_reload_successful 0) and the log says which file and how to fix it."""
        setup = Setup(root=tmp_path)
        volume = ConfigMapVolume(setup.conf_dir)
        volume.publish(GOOD_CONF, {"alpha": "echo version=1\n"})
        collector = start_collector(procs, setup)
        wait_until(lambda: current(setup, "edge_version") == 1, timeout=10, what="the good version")
        volume.publish(text, {"alpha": "echo version=2\n"})
        wait_until(lambda: current(setup, "edge_collector_config_last_reload_successful") == 0, timeout=10,
                   what="the rejection")
        wait_runs(setup, 3)
        assert current(setup, "edge_collector_script_success", script="alpha") == 1
        assert current(setup, "edge_version") == 1
        expected = "matches no line" if text.startswith("node-2") else "no node lines (empty, or only comments)"
        [line] = setup.log_lines(expected)[:1]
        assert line.split(" ERROR ", 1)[1].startswith(f"{setup.config}: ") and "=default" in line
        assert collector.poll() is None

    def test_default_on_purpose_is_accepted(self, tmp_path: Path, procs: Processes) -> None:
        """`node-1=default`: no scripts on purpose, loaded (reload 1) and the script's metrics leave the file."""
        setup = Setup(root=tmp_path)
        volume = ConfigMapVolume(setup.conf_dir)
        volume.publish(GOOD_CONF, {"alpha": "echo version=1\n"})
        collector = start_collector(procs, setup)
        wait_until(lambda: current(setup, "edge_version") == 1, timeout=10, what="the good version")
        volume.publish("node-1=default\n", {})
        wait_until(lambda: current(setup, "edge_version") is None, timeout=10, what="the plan without scripts")
        assert current(setup, "edge_collector_config_last_reload_successful") == 1
        assert collector.poll() is None
