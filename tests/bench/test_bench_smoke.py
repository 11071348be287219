"""The benchmark (bench/collector_bench.py, `make bench`) still runs end to end: no timing is asserted here,
only that every measurement produces its table, so the benchmark cannot silently rot."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.helpers import REPO, Processes

TINY = ["--runs", "20", "--cpu-runs", "10", "--cap-runs", "1", "--lines", "500", "--repeats", "1",
        "--startup-trials", "1"]
TITLES = ("CPU per run", "Where a run's CPU goes", "Memory", "Throughput", "Start-up")


class TestBenchmarkSmoke:
    def test_prints_every_table_with_a_verdict(self, procs: Processes, tmp_path: Path) -> None:
        """With tiny counts the benchmark exits 0 and prints the CPU (with its per-step breakdown), memory,
        throughput and start-up tables, each with its target and a PASS/MISS verdict, then the summary line."""
        log = tmp_path / "bench.log"
        proc = procs.start([sys.executable, "-m", "bench.collector_bench", *TINY], cwd=REPO, log=log)
        assert proc.wait(timeout=120) == 0, log.read_text()
        output = log.read_text()
        for title in TITLES:
            assert re.search(rf"^## {title}", output, re.M), f"no {title} table in:\n{output}"
        own_cpu = r"edge-metrics run: its own CPU, scripts excluded, file on [^|]*\| \d+\.\d{3}\s*\|"
        assert re.search(own_cpu, output), output
        assert re.search(r"bare `bash script`[^|]*\| \d+\.\d{3}\s*\|", output), output
        assert re.search(r"steady RSS: max after warm-up\s+\| \d+\.\d{3}\s*\| <= 16 MiB", output), output
        assert re.search(r"parse \+ group \+ render \+ write\s+\| \d+\.\d{3}\s*\| \d+\.\d{3}\s*\|", output), output
        assert re.search(r"sum of the daemon's steps [^|]*\| \d+\.\d{3}\s*\|", output), output
        assert re.search(r"scaled to 100000 lines \(linear\)\s+\| \d+\.\d{3}\s*\|\s*\| <= 1 s", output), output
        assert re.search(r"first run starts .*\| <= 300 ms", output), output
        summary = re.search(r"^(\d+) PASS, (\d+) MISS$", output, re.M)
        assert summary is not None, output
        assert int(summary[1]) + int(summary[2]) == 5  # one verdict per target: CPU, RSS, growth, 100k lines, start-up
        assert "Traceback" not in output
