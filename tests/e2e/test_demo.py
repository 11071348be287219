"""`make demo` shows simulated readings at the central Prometheus and Ctrl-C leaves nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests.e2e.stack import Pki, PrometheusAPI
from tests.helpers import REPO, SIM_LIB, Processes, wait_until

pytestmark = pytest.mark.e2e


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


class TestDemo:
    def test_readings_at_the_centre_and_ctrl_c_stops_everything(self, procs: Processes, tmp_path: Path) -> None:
        """The demo prints the centre's URL once simulated readings of the bundled default node have
        arrived there; SIGINT (Ctrl-C) ends it with status 0 and no process of it is left."""
        assert SIM_LIB.exists(), "run `make sim` first (make test does)"
        run_dir = tmp_path / "demo"
        log = tmp_path / "demo.log"
        demo = procs.start(
            ["bash", str(REPO / "tools" / "demo.sh")],
            env={**os.environ, "EDGE_DEMO_DIR": str(run_dir)},
            log=log,
        )
        wait_until(lambda: "Press Ctrl-C" in log.read_text(), timeout=180, interval=0.5, what="the demo's banner")
        banner = log.read_text()
        # Secure by default (docs/security.md): TLS, and the admin password make-certs wrote.
        url = re.search(r"Central Prometheus:\s+(https://127\.0\.0\.1:\d+)", banner)
        assert url, banner
        assert "edge_temperature" in banner
        assert f"password in {run_dir}/pki/admin.password" in banner
        readings = PrometheusAPI(url.group(1), Pki(run_dir / "pki")).query(
            'edge_temperature{node="bupt-a",job="node-exporter"}'
        )
        assert readings and 0 < float(readings[0]["value"][1]) < 100
        assert len(processes_mentioning(str(run_dir))) >= 6  # with vmauth and the central vmagent

        os.kill(demo.pid, signal.SIGINT)
        try:
            code = demo.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"demo still running 30 s after Ctrl-C:\n{log.read_text()[-2000:]}")
        assert code == 0, log.read_text()[-2000:]
        assert processes_mentioning(str(run_dir)) == []
        assert "nothing left running" in log.read_text()
