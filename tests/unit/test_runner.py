from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_metrics.runner import DEFAULT_PATH, RunLimits, run_script, script_environment
from tests.helpers import write_script


@pytest.fixture
def other_child() -> Iterator[subprocess.Popen[bytes]]:
    """A child the caller of run_script already has, unrelated to any script."""
    proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def script(tmp_path: Path, body: str) -> Path:
    return write_script(tmp_path, "s", body)


class TestSweepSparesTheCallersChildren:
    @pytest.mark.parametrize(("body", "timeout"), [("sleep 30 &\necho a=1\n", 10.0), ("sleep 30\n", 0.3)],
                             ids=["after-exit", "after-timeout"])
    def test_other_children_survive(self, tmp_path: Path, other_child: subprocess.Popen[bytes], body: str,
                                    timeout: float) -> None:
        """The sweep after a run ends what the script left, never a child the caller had before the run."""
        bash = shutil.which("bash")
        assert bash is not None
        result = run_script(script(tmp_path, body), bash=bash, env={"PATH": os.environ["PATH"]},
                            limits=RunLimits(timeout=timeout, kill_grace=0.2))
        assert result.spawn_error is None
        assert other_child.poll() is None, "the caller's own child was killed"


class TestScriptEnvironment:
    def test_fixed_set_plus_listed(self) -> None:
        """Only the inherited variables that are set, the listed ones, and the three the collector sets."""
        environ = {"PATH": "/x", "TZ": "UTC", "SECRET_TOKEN": "t", "HOME": "/root", "SITE": "1", "LC_ALL": "de"}
        env = script_environment(environ, node="n1", timeout=2.5, passed=("SITE", "MISSING"))
        assert env == {"PATH": "/x", "TZ": "UTC", "SITE": "1", "NODE_NAME": "n1", "EDGE_SCRIPT_TIMEOUT": "2.5",
                       "LC_ALL": "C"}

    def test_default_path(self) -> None:
        """Without PATH in the collector's environment the script gets a fixed one, sbin included (i2c-tools)."""
        env = script_environment({}, node="n1", timeout=10)
        assert env["PATH"] == DEFAULT_PATH and "/usr/sbin" in DEFAULT_PATH.split(":")
