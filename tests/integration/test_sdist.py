"""An install from the source distribution works like one from the checkout: the bundled default (scripts/,
a symlink in the checkout that an sdist does not keep) is in the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO


def run(argv: list[str | Path], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("EDGE_", "VIRTUAL_ENV"))}
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=600, check=False)


def venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=120)
    return path / "bin"


def test_an_install_from_the_sdist_checks_and_runs_the_bundled_default(tmp_path: Path) -> None:
    """`python -m build --sdist`, then `pip install` of that tarball into a fresh virtualenv: `edge-metrics check`
    lists the bundled nodes.conf's nodes and `run --once` runs it (it said `bundled/nodes.conf: cannot read`)."""
    tools = venv(tmp_path / "tools")
    assert run([tools / "pip", "install", "--quiet", "build"], cwd=tmp_path).returncode == 0
    # Built from outside the checkout: its build/ directory would shadow the `build` module.
    built = run([tools / "python", "-m", "build", "--sdist", "--outdir", tmp_path / "dist", REPO], cwd=tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")

    installed = venv(tmp_path / "installed")
    pip = run([installed / "pip", "install", "--quiet", sdist], cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-3000:]
    check = run([installed / "edge-metrics", "check"], cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "bupt-a: space_server every 10s" in check.stdout
    assert "edge_metrics/bundled/nodes.conf" in check.stdout
    # A node without sensors: the bundled default loads and the collector writes its own metrics.
    once = run([installed / "edge-metrics", "run", "--once", "--node-name", "gateway-7", "--output", "-"], cwd=tmp_path)
    assert once.returncode == 0, once.stderr
    assert "edge_collector_config_last_reload_successful 1" in once.stdout
