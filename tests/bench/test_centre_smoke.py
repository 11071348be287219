"""bench/centre (`make bench-centre`) still runs end to end: with `--smoke` it profiles a real node, runs two small
steps, a drain and the extrapolation, and prints every table. No figure is asserted (they are timings and this
machine's), only that each table has its rows, so the capacity measurement cannot silently rot."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, Processes

NUMBER = r"\d+(?:\.\d+)?"


class TestCentreSmoke:
    def test_prints_the_profile_steps_drain_and_extrapolation(self, procs: Processes, tmp_path: Path) -> None:
        """The profile table ends with the node's totals, each step row has its offered and stored rates and the
        processes' CPU, the drain row its samples, and the extrapolation a row for 1000 nodes."""
        if os.geteuid() != 0:
            pytest.skip("bench/centre profiles a node in its own network namespace: ip netns needs root")
        log = tmp_path / "bench.log"
        proc = procs.start([sys.executable, "-m", "bench.centre", "--smoke", "--keep", str(tmp_path / "work")],
                           cwd=REPO, log=log)
        assert proc.wait(timeout=300) == 0, log.read_text()
        output = log.read_text()
        assert "Traceback" not in output, output
        assert re.search(rf"^\| \*\*the node\*\* \| \*\*\d+\*\* \| \| \*\*{NUMBER}\*\* \|", output, re.M), output
        assert re.search(r"^The real node's vmagent over the window: ", output, re.M), output
        steps = re.findall(rf"^\| (\d+) \| (\d+) \| (\d+) \| \d+ \| [^|]+ \|(?: [^|]+ \|){{3}}(?: {NUMBER} \|){{8}}",
                           output, re.M)
        assert steps and steps[0][0] == "2", output
        assert re.search(r"^load average .*; what gave: ", output, re.M), output
        assert re.search(rf"^\| 2 \| \d+ (?:s|min) \| \d+ \| \d+ \| \d+ \| {NUMBER} \|", output, re.M), output
        assert re.search(r"^\| 1000 \| [\d,]+ \| [\d,]+ \| \d+ \| ", output, re.M), output
        assert re.search(r"^# load average at the end", output, re.M), output
