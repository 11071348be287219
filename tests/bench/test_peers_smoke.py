"""bench/peers (`make bench-peers`) still runs end to end with every approach: no timing is asserted, only
that each table is printed with a row per approach, so the comparison cannot silently rot."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from bench.peers.agents import PEERS_ENV, TITLES
from tests.helpers import REPO, Processes

TINY = ["--interval", "0.2", "--runs", "5", "--warmup", "2", "--growth-runs", "20", "--growth-interval", "0.05",
        "--big-runs", "1", "--big-interval", "1"]
NUMBER = r"\d+\.\d+"


class TestPeersSmoke:
    def test_prints_every_approach_in_every_table(self, procs: Processes, tmp_path: Path) -> None:
        """With tiny counts the benchmark exits 0 and prints the peers table (a row per approach with its CPU,
        memory, runs and stored readings), the collector's growth table and its targets as ratios. How many
        runs fit in the tiny window is a timing, so it is not asserted."""
        assert PEERS_ENV.exists(), f"{PEERS_ENV} missing: `make test` fetches the peers (make peer-components)"
        log = tmp_path / "bench.log"
        proc = procs.start([sys.executable, "-m", "bench.peers", *TINY], cwd=REPO, log=log)
        assert proc.wait(timeout=240) == 0, log.read_text()
        output = log.read_text()
        assert "Traceback" not in output, output
        peers = _section(output, "Peers")
        for title in TITLES.values():
            row = re.search(rf"^\| {re.escape(title)}(?:\s+\| {NUMBER}){{4}}\s+\| (\d+)/\d+"
                            rf"\s+\| (\d+)/(\d+) \(\d+ %\)", peers, re.M)
            assert row is not None, f"no full row for {title} in:\n{peers}"
        growth = _section(output, "Growth")
        targets = _section(output, "Targets")
        for title in (TITLES["edge-push"], TITLES["edge-textfile"]):
            assert re.search(rf"^\| {re.escape(title)}\s+\| \d+\s+\|", growth, re.M), growth
            for target in ("own CPU per run <= collectd's", "steady RSS <= 12 MiB", "first run <= 300 ms",
                           "no growth over"):
                assert re.search(rf"^\| {re.escape(title)}\s+\| {re.escape(target)}.*\| (PASS|MISS)\s*\|$", targets,
                                 re.M), f"no {target} for {title} in:\n{targets}"
        assert re.search(r"^\d+ MISS; load average at the end", output, re.M), output


def _section(output: str, title: str) -> str:
    match = re.search(rf"^## {title}.*?(?=^## |\Z)", output, re.M | re.S)
    assert match is not None, f"no {title} table in:\n{output}"
    return match.group(0)


class TestProfileSmoke:
    def test_prints_the_memory_and_start_up_profiles(self, procs: Processes, tmp_path: Path) -> None:
        """bench/peers/profile.py (the profile behind the misses) prints its memory steps and start-up rows."""
        log = tmp_path / "profile.log"
        proc = procs.start([sys.executable, "-m", "bench.peers.profile", "--trials", "1"], cwd=REPO, log=log)
        assert proc.wait(timeout=120) == 0, log.read_text()
        output = log.read_text()
        assert re.search(rf"^\| interpreter \+ site \(bare `python`\)\s+\| {NUMBER}", output, re.M), output
        assert re.search(rf"^\| edge_metrics\.daemon .*\| {NUMBER}\s+\| \+{NUMBER}", output, re.M), output
        assert re.search(r"^\| `edge-metrics run`: process start -> first run\s+\| \d+\s+\| \d+", output, re.M), output
