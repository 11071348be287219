"""What each make target sets up on a fresh machine, read from `make --dry-run --always-make TARGET` (every
prerequisite treated as missing): `make run` needs only the collector, the simulator and i2c-tools; `make sim`
also creates the virtualenv docs/simulator.md uses; `make check` is the inner loop; `make test` sets up all."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from tests.helpers import REPO


def fresh_machine_commands(target: str) -> str:
    # As a user would type it, also when the suite itself runs under `make test`: a nested make would add
    # "Entering directory" lines and inherit the outer make's flags.
    env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    result = subprocess.run(["make", "--no-print-directory", "--dry-run", "--always-make", target], cwd=REPO,
                            capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestMakeTargets:
    def test_run_sets_up_only_the_collector_the_simulator_and_i2c_tools(self) -> None:
        commands = fresh_machine_commands("run")
        assert "-m venv .venv" in commands and "'.[simulate]'" in commands
        assert "libi2csim.so" in commands and "i2c-tools" in commands
        for needless in ("fetch-components", "'.[test]'", "pytest", "chromium"):
            assert needless not in commands, needless
        assert "mkdir -p .run/textfile" in commands  # the collector creates no directory itself

    def test_sim_creates_the_virtualenv_it_is_used_with(self) -> None:
        commands = fresh_machine_commands("sim")
        assert "-m venv .venv" in commands and "libi2csim.so" in commands and "i2c-tools" in commands
        assert "fetch-components" not in commands

    def test_check_is_lint_types_and_unit_tests(self) -> None:
        commands = fresh_machine_commands("check").splitlines()
        assert any(line.startswith(".venv/bin/ruff check") for line in commands)
        assert ".venv/bin/mypy" in commands
        assert commands[-1] == ".venv/bin/pytest -q tests/unit"
        assert not any("fetch-components" in line for line in commands), "make check downloads nothing"

    @pytest.mark.parametrize("needed", ["-m venv .venv", "'.[test]'", "fetch-components", "libi2csim.so",
                                        "i2c-tools", "chromium", ".venv/bin/mypy", "tools/build-image.sh", "podman",
                                        "mmdebstrap", "qemu-user-static", "containerd", "gcc-aarch64-linux-gnu"])
    def test_test_still_sets_up_everything(self, needed: str) -> None:
        commands = fresh_machine_commands("test")
        assert needed in commands
        assert commands.splitlines()[-1].startswith(".venv/bin/pytest -n ")  # the whole suite, in parallel workers

    def test_only_test_and_bench_peers_fetch_the_peers(self) -> None:
        """The peers of bench/peers are fetched for `make test` (its smoke run) and `make bench-peers`, never
        by `make components` or `make check`."""
        for target in ("test", "bench-peers"):
            assert "tools/fetch-components.sh peers" in fresh_machine_commands(target), target
        for target in ("components", "check"):
            assert "fetch-components.sh peers" not in fresh_machine_commands(target), target


class TestParallelSetUp:
    """`make test` sets up its prerequisites in parallel (`make -j`): whatever two steps share must not race."""

    def test_test_sets_up_in_parallel(self) -> None:
        assert fresh_machine_commands("test").splitlines()[0].startswith("make -j")

    def test_no_recipe_calls_apt_get_install_itself(self) -> None:
        """apt holds one lock and a second apt-get fails on it: every install queues in tools/host-packages.sh."""
        makefile = (REPO / "Makefile").read_text()
        assert "apt-get install" not in makefile and "apt-get update" not in makefile
        assert "tools/host-packages.sh" in makefile

    def test_installed_packages_need_neither_apt_nor_the_lock(self) -> None:
        result = subprocess.run(["bash", str(REPO / "tools" / "host-packages.sh"), "bash", "coreutils"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

    def test_concurrent_installs_queue_and_install_once(self, tmp_path: Path) -> None:
        """Two callers at once, as under `make -j`: apt runs for one at a time, and the second, once it holds the
        lock, finds the package the first installed (apt-get and dpkg-query stand-ins record what ran)."""
        bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
        bin_dir.mkdir()
        stand_in(bin_dir / "dpkg-query", f'grep -qx "${{@: -1}}" {tmp_path}/installed && echo "install ok installed"')
        stand_in(bin_dir / "apt-get", f"""echo "start $*" >>{log}
            sleep 0.5
            if [ "$1" = install ]; then printf '%s\\n' "${{@:4}}" >>{tmp_path}/installed; fi
            echo "end $*" >>{log}""")
        (tmp_path / "installed").write_text("")
        env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", HOST_PACKAGES_LOCK=str(tmp_path / "lock"))
        callers = [subprocess.Popen(["bash", str(REPO / "tools" / "host-packages.sh"), "strace"], env=env,
                                    stdout=subprocess.PIPE, text=True) for _ in range(2)]
        outputs = [caller.communicate(timeout=60)[0] for caller in callers]
        assert [caller.returncode for caller in callers] == [0, 0]
        assert log.read_text().splitlines() == ["start update -qq", "end update -qq",
                                                "start install -y --no-install-recommends strace",
                                                "end install -y --no-install-recommends strace"]
        assert sorted(outputs) == ["", "make: installing Debian's strace (apt-get, as root)\n"]

    @pytest.mark.parametrize("goals", [("components", "sim"), ("test-setup",)])
    def test_i2c_tools_waits_for_the_components_that_bring_it(self, goals: tuple[str, ...]) -> None:
        """Otherwise, under -j, i2c-tools finds no components yet and installs Debian's i2c-tools on the system."""
        env = {key: value for key, value in os.environ.items() if key not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
        if goals == ("test-setup",):  # the goals test-setup hands its parallel make
            recipe = fresh_machine_commands("test-setup").splitlines()[0]
            goals = tuple(word for word in recipe.split() if not word.startswith("-"))[1:]
        result = subprocess.run(["make", "--no-print-directory", "--question", "--print-data-base", *goals],
                                cwd=REPO, capture_output=True, text=True, timeout=60, check=False, env=env)
        assert "i2c-tools: | .cache/components/.complete" in result.stdout.splitlines()


def stand_in(path: Path, body: str) -> None:
    """An executable bash script at `path` that runs `body` in place of the real program."""
    path.write_text("#!/bin/bash\n" + textwrap.dedent(body).lstrip("\n") + "\n")
    path.chmod(0o755)
