"""The board's bill (bench/pod, `make bench-pod`) still runs end to end: with phases of seconds it prints the
pod's table with a row for every container of the DaemonSet, the budget's verdicts, the phases and the profile.
No figure is asserted, only that each is printed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

from tests.helpers import REPO, Processes

DAEMONSET = REPO / "deploy" / "kubernetes" / "edge" / "daemonset.yaml"
TINY = ["--warmup", "1s", "--steady", "3s", "--outage", "3s", "--sample", "500ms", "--drain-timeout", "2m"]
NUMBER = r"\d+\.\d+"


def containers() -> list[str]:
    spec = yaml.safe_load(DAEMONSET.read_text())["spec"]["template"]["spec"]
    return [entry["name"] for entry in spec["containers"]]


class TestPodBillSmoke:
    def test_prints_every_containers_row_beside_the_manifest(self, procs: Processes, tmp_path: Path) -> None:
        """Each container's row carries its requests and limits, steady and peak RSS, CPU, writes and fsyncs; the
        pod's total row, both budget verdicts, every phase for every container and the profile follow."""
        log = tmp_path / "bench.log"
        proc = procs.start([sys.executable, "-m", "bench.pod", *TINY], cwd=REPO, log=log)
        assert proc.wait(timeout=600) == 0, log.read_text()
        output = log.read_text()
        assert "Traceback" not in output, output
        assert re.search(r"^# The board's bill: .* UTC, load average \S+ \S+ \S+", output, re.M), output
        for name in containers():
            row = (rf"^\| {re.escape(name)} +\| \d+m / \d+Mi +\| \d+m / \d+Mi +\| {NUMBER} +\| {NUMBER} +\| "
                   rf"{NUMBER} +\| {NUMBER} +\| \d+ \(\d+\) +\|$")  # fmt: skip
            assert re.search(row, output, re.M), f"no steady row for {name} in:\n{output}"
            for phase in ("steady", "outage", "drain"):
                assert re.search(rf"^\| {phase} +\| \d+ +\| {re.escape(name)} +\|", output, re.M), (phase, output)
        assert re.search(rf"^\| \*\*pod\*\* +\| +\| +\| {NUMBER} +\|", output, re.M), output
        assert re.search(r"^budget RSS: pod .* MiB steady vs 64 MiB: (MET|MISSED)$", output, re.M), output
        assert re.search(r"^budget CPU: pod .* % of one core vs 1 %: (MET|MISSED)$", output, re.M), output
        assert re.search(r"^queued by vmagent at the end of the outage: \d+ KiB; drained in \d+ s$", output, re.M)
        assert "## Where it goes (steady state)" in output, output
        assert re.search(r"programs started per script run \(execve, counted on the twin\) +\| \d+", output), output
