"""`pip install .` into a fresh virtualenv gives a working `edge-metrics simulate`: the preload library is built
at first use from the C sources in the package, and a missing compiler or missing i2c-tools is said plainly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, SIM_LIB, components

pytestmark = pytest.mark.sim


class Installed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "venv" / "bin"

    def run(self, *argv: str | Path, path: list[Path], cache: str, extra_env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("EDGE_", "VIRTUAL_ENV", "CC", "LD_"))}
        env.update(PATH=os.pathsep.join(map(str, [self.bin, *path])), XDG_CACHE_HOME=str(self.root / cache),
                   HOME=str(self.root), **(extra_env or {}))
        return subprocess.run([str(a) for a in argv], env=env, cwd=self.root, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """A fresh virtualenv with `pip install '<checkout>[simulate]'` (a real, non-editable install)."""
    root = tmp_path_factory.mktemp("installed")
    subprocess.run([sys.executable, "-m", "venv", str(root / "venv")], check=True, timeout=120)
    pip = subprocess.run([str(root / "venv" / "bin" / "pip"), "install", "--quiet", f"{REPO}[simulate]"],
                         capture_output=True, text=True, timeout=600, check=False)
    assert pip.returncode == 0, pip.stderr[-3000:]
    yield Installed(root)


def only(tmp: Path, *programs: str) -> Path:
    """A directory holding just `programs` (symlinks to the system's): a PATH without a C compiler."""
    directory = tmp / "only-bin"
    directory.mkdir(exist_ok=True)
    for program in programs:
        link = directory / program
        if not link.exists():
            link.symlink_to(next(Path(d, program) for d in ("/usr/bin", "/bin") if Path(d, program).exists()))
    return directory


class TestInstalledSimulate:
    def test_runs_the_bundled_default_under_the_simulator(self, installed: Installed) -> None:
        """`edge-metrics simulate -- edge-metrics run --once --output -` from the installed package: the
        library is built into $XDG_CACHE_HOME/edge-metrics and the simulated readings come out."""
        tools = components()
        model = REPO / "scripts" / "models" / "space_server.yaml"
        result = installed.run(
            "edge-metrics", "simulate", "--model", model, "--", "edge-metrics", "run", "--once", "--output", "-",
            "--node-name", "bupt-a", path=[Path(tools["I2C_TOOLS_DIR"]), Path("/usr/bin"), Path("/bin")],
            cache="cache", extra_env={"LD_LIBRARY_PATH": tools["I2C_LIBRARY_PATH"]})
        assert result.returncode == 0, result.stderr
        assert re.search(r"^edge_temperature [0-9.]+$", result.stdout, re.M), result.stdout
        assert [p.name for p in (installed.root / "cache" / "edge-metrics").glob("libi2csim-*.so")], "no library"
        assert "warning" not in result.stderr

    def test_no_c_compiler_is_one_clear_line(self, installed: Installed) -> None:
        """Without a compiler (and no library built yet): one line saying so and what to do, exit 1."""
        bin_dir = only(installed.root, "bash", "true")
        result = installed.run("edge-metrics", "simulate", "--model", REPO / "scripts" / "models" / "space_server.yaml",
                               "--", "true", path=[bin_dir], cache="empty-cache")
        assert result.returncode == 1
        lines = result.stderr.splitlines()
        assert any("no C compiler found" in line and "EDGE_I2C_SIM_LIB" in line for line in lines), result.stderr
        assert "Traceback" not in result.stderr

    def test_missing_i2c_tools_are_named(self, installed: Installed) -> None:
        """No i2cget on PATH: the command still runs (smbus2 needs none), with a warning naming i2c-tools."""
        bin_dir = only(installed.root, "bash", "true")
        result = installed.run("edge-metrics", "simulate", "--model", REPO / "scripts" / "models" / "space_server.yaml",
                               "--", "true", path=[bin_dir], cache="cache",
                               extra_env={"EDGE_I2C_SIM_LIB": str(SIM_LIB)})
        assert result.returncode == 0, result.stderr
        assert "i2c-tools are not installed" in result.stderr and "apt-get install i2c-tools" in result.stderr

    def test_the_help_example_model_is_valid(self, installed: Installed, tmp_path: Path) -> None:
        """The model printed by `simulate --help` passes `simulate --check`."""
        help_text = installed.run("edge-metrics", "simulate", "--help", path=[], cache="cache").stdout
        block = help_text.split("example model", 1)[1].split("\n\n", 1)[0].split("\n", 1)[1]
        model = tmp_path / "model.yaml"
        model.write_text("\n".join(line[2:] for line in block.splitlines()) + "\n")
        checked = installed.run("edge-metrics", "simulate", "--model", model, "--check", path=[], cache="cache")
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.splitlines() == ["bus 0: 1 device(s)", "  0x40 hdc1080: 1 register(s)"]
