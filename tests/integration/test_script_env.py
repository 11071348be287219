"""What a script's environment holds: a fixed, documented set plus what the user lists, never the rest of the
collector's environment (a token of another tool in the pod must not reach every script)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import EDGE_METRICS, Processes, wait_until
from tests.integration.support import MARKER_VARIABLE, clean_env, make_setup, run_once

# Variables bash itself sets in every script: not the collector's doing.
BASH_OWN = {"PWD", "SHLVL", "_", "OLDPWD"}
SECRET = "s3cr3t-token-value"


def dumped(path: Path) -> dict[str, str]:
    """The environment a script wrote with `env -0 > path`."""
    entries = [entry for entry in path.read_bytes().split(b"\0") if entry]
    pairs = (entry.decode().partition("=") for entry in entries)
    return {name: value for name, _, value in pairs if name not in BASH_OWN}


class TestScriptEnvironment:
    def test_only_the_documented_variables_reach_a_script(self, tmp_path: Path) -> None:
        """With SECRET_TOKEN, HOME, LANG and others in the collector's environment, a script sees exactly PATH (the
        collector's), TZ, LC_ALL=C, NODE_NAME, EDGE_SCRIPT_TIMEOUT and what --script-env lists."""
        env_file = tmp_path / "env"
        setup = make_setup(tmp_path, "node-1=dump\n", {"dump": f"env -0 > {env_file}\necho ok=1\n"})
        result = run_once(setup, "--timeout", "3s", "--script-env", f"SITE_BUS, {MARKER_VARIABLE}", env={
            "SECRET_TOKEN": SECRET, "HOME": "/root", "LANG": "de_DE.UTF-8", "KUBERNETES_SERVICE_HOST": "10.0.0.1",
            "SITE_BUS": "3", "TZ": "Asia/Shanghai", "PATH": "/usr/bin:/bin",
        })
        assert result.returncode == 0, result.stderr
        seen = dumped(env_file)
        assert seen == {
            "PATH": "/usr/bin:/bin", "TZ": "Asia/Shanghai", "LC_ALL": "C", "NODE_NAME": "node-1",
            "EDGE_SCRIPT_TIMEOUT": "3", "SITE_BUS": "3", MARKER_VARIABLE: setup.marker,
        }
        assert SECRET not in env_file.read_text("utf-8", "replace")

    def test_daemon_from_edge_script_env(self, tmp_path: Path, procs: Processes) -> None:
        """The daemon does the same, with the list from EDGE_SCRIPT_ENV; a variable it lists that the collector's
        environment lacks is simply absent; without PATH the script gets a fixed safe one."""
        env_file = tmp_path / "env"
        setup = make_setup(tmp_path, "node-1=dump:1s\n", {"dump": f"/usr/bin/env -0 > {env_file}.new\n"
                                                                  f"/bin/mv {env_file}.new {env_file}\n"})
        environment = {**clean_env(SECRET_TOKEN=SECRET, SITE_BUS="5", EDGE_SCRIPT_ENV="SITE_BUS,NOT_SET"),
                       MARKER_VARIABLE: setup.marker}
        environment.pop("PATH", None)
        environment.pop("TZ", None)
        procs.start([*setup.argv()], env=environment, log=setup.log)
        wait_until(env_file.exists, timeout=10, what="the script's environment")
        assert dumped(env_file) == {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
            "NODE_NAME": "node-1", "EDGE_SCRIPT_TIMEOUT": "10", "SITE_BUS": "5",
        }

    def test_simulator_variables_reach_scripts(self, tmp_path: Path, procs: Processes) -> None:
        """Under `edge-metrics simulate` (LD_PRELOAD and the simulator's variables in the collector's
        environment) they reach the script, so the simulated i2cget answers."""
        del procs  # the collector exits by itself; its processes are cleaned by the autouse fixture
        model = tmp_path / "m.yaml"
        model.write_text("buses:\n  0:\n    devices:\n      0x40:\n        registers:\n          0x00: {value: 0x11}\n")
        setup = make_setup(tmp_path, "node-1=probe\n", {"probe": 'echo "probe=$(( $(i2cget -f -y 0 0x40 0x00) ))"\n'})
        result = subprocess.run(
            [str(EDGE_METRICS), "simulate", "--model", str(model), "--", *setup.argv("--once", "--output", "-")],
            env=clean_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stderr
        assert "\nedge_probe 17\n" in result.stdout


class TestBadScriptEnvOptions:
    @pytest.mark.parametrize(("argv", "env", "named"), [
        (["--script-env", "SITE-BUS"], {}, "--script-env"),
        (["--script-env", "A,1B"], {}, "--script-env"),
        ([], {"EDGE_SCRIPT_ENV": "LC_ALL"}, "--script-env"),
        ([], {"EDGE_SCRIPT_ENV": "NODE_NAME,X"}, "--script-env"),
        (["--max-series", "0"], {}, "--max-series"),
        (["--max-series", "-5"], {}, "--max-series"),
        ([], {"EDGE_MAX_SERIES": "lots"}, "--max-series"),
        ([], {"EDGE_MAX_SERIES": "1e4"}, "--max-series"),
    ])
    def test_one_line_exit_2(self, tmp_path: Path, argv: list[str], env: dict[str, str], named: str) -> None:
        """A bad --script-env / --max-series, or EDGE_SCRIPT_ENV / EDGE_MAX_SERIES, is bad usage: one line naming
        the option, exit 2, nothing run."""
        ran = tmp_path / "ran"
        setup = make_setup(tmp_path, "node-1=probe\n", {"probe": f"touch {ran}\n"})
        result = run_once(setup, *argv, env=env)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.splitlines()) == 1 and named in result.stderr, result.stderr
        assert not ran.exists()
