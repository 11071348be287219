"""The plan's scripts run from private copies of the content accepted with nodes.conf (snapshot.py)."""

from __future__ import annotations

import fcntl
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_metrics.config import ConfigError, load_config
from edge_metrics.runner import RunLimits, run_script
from edge_metrics.samples import Plan
from edge_metrics.snapshot import LOCK, PREFIX, UNLOCKED_GRACE_SECONDS, ScriptSnapshots, SnapshotError

BASH = shutil.which("bash") or "/bin/bash"


@pytest.fixture
def snapshots(tmp_path: Path) -> Iterator[ScriptSnapshots]:
    base = tmp_path / "private"
    base.mkdir()
    store = ScriptSnapshots(bases=[str(base)])
    try:
        yield store
    finally:
        store.close()


def accepted(scripts: Path, text: str, node: str = "n1") -> Plan:
    (scripts / "nodes.conf").write_text(text)
    return load_config(scripts / "nodes.conf", scripts_dir=scripts, default_interval=15, node=node).plan_for(node)


def run(plan: Plan, index: int = 0) -> tuple[str, str, int | None]:
    job = plan.jobs[index]
    result = run_script(job.run_from or job.path, shown_as=job.path, bash=BASH, env={"PATH": os.environ["PATH"]},
                        limits=RunLimits(timeout=10))
    return result.stdout.decode(), result.stderr.decode(), result.exit_code


@pytest.fixture
def scripts(tmp_path: Path) -> Path:
    directory = tmp_path / "scripts"
    directory.mkdir()
    return directory


class TestWhatRuns:
    def test_the_accepted_content_runs_not_the_file_as_it_is_now(self, scripts: Path,
                                                                 snapshots: ScriptSnapshots) -> None:
        """A script rewritten (or broken) after its config was accepted: the accepted content still runs."""
        (scripts / "s.sh").write_text("#!/bin/bash\necho version=1\n")
        plan = snapshots.install(accepted(scripts, "n1=s\n"), scripts)
        (scripts / "s.sh").write_text("#!/bin/bash\necho version=2\n")
        assert run(plan)[0] == "version=1\n"

    def test_what_scripts_rely_on_still_holds(self, scripts: Path, snapshots: ScriptSnapshots) -> None:
        """`$0` and `${BASH_SOURCE[0]}` name one file, `<name>.sh`, whose directory holds the scripts directory's
        other files (live: nodes.conf names no such file), so `source "$(dirname "$0")/lib.sh"` works."""
        (scripts / "lib.sh").write_text("helper() { echo from_lib=1; }\n")
        (scripts / "data").mkdir()
        (scripts / "data" / "table").write_text("7\n")
        (scripts / "s.sh").write_text(
            '#!/bin/bash\n'
            'here=$(dirname "$0")\n'
            'source "$here/lib.sh"\n'
            'helper\n'
            'echo "table=$(cat "$(dirname "${BASH_SOURCE[0]}")/data/table")"\n'
            '[ "$0" = "${BASH_SOURCE[0]}" ] && echo same_file=1\n'
            'echo "name_$(basename "$0" .sh)=1"\n'
        )
        plan = snapshots.install(accepted(scripts, "n1=s\n"), scripts)
        stdout, stderr, code = run(plan)
        assert (stdout, stderr, code) == ("from_lib=1\ntable=7\nsame_file=1\nname_s=1\n", "", 0)

    def test_bash_messages_name_the_real_file(self, scripts: Path, snapshots: ScriptSnapshots) -> None:
        """What bash prints about the script names `<scripts-dir>/<name>.sh`, not the private copy."""
        (scripts / "s.sh").write_text("#!/bin/bash\nno_such_command_here\n")
        plan = snapshots.install(accepted(scripts, "n1=s\n"), scripts)
        _, stderr, code = run(plan)
        assert stderr == f"{scripts / 's.sh'}: line 2: no_such_command_here: command not found\n"
        assert code == 127

    def test_each_job_runs_its_own_copy(self, scripts: Path, snapshots: ScriptSnapshots) -> None:
        (scripts / "a.sh").write_text("#!/bin/bash\necho a=1\n")
        (scripts / "b.sh").write_text("#!/bin/bash\necho b=2\n")
        plan = snapshots.install(accepted(scripts, "n1=a:1s,b:2s\n"), scripts)
        assert [run(plan, 0)[0], run(plan, 1)[0]] == ["a=1\n", "b=2\n"]
        assert all(job.run_from is not None and job.run_from.parent == plan.jobs[0].run_from.parent  # type: ignore[union-attr]
                   for job in plan.jobs)


class TestPrivateDirectory:
    def test_one_generation_is_kept_and_close_removes_all(self, tmp_path: Path, scripts: Path,
                                                         snapshots: ScriptSnapshots) -> None:
        """A new accepted config replaces the previous copies; close() leaves nothing behind."""
        (scripts / "s.sh").write_text("#!/bin/bash\necho v=1\n")
        first = snapshots.install(accepted(scripts, "n1=s\n"), scripts)
        second = snapshots.install(accepted(scripts, "n1=s\n"), scripts)
        assert first.jobs[0].run_from is not None and not first.jobs[0].run_from.exists()
        assert second.jobs[0].run_from is not None and second.jobs[0].run_from.exists()
        assert snapshots.root is not None
        assert sorted(os.listdir(snapshots.root)) == sorted([LOCK, second.jobs[0].run_from.parent.name])
        assert oct(snapshots.root.stat().st_mode & 0o777) == "0o700"
        snapshots.close()
        assert os.listdir(tmp_path / "private") == []

    def test_an_empty_plan_needs_no_directory(self, tmp_path: Path, scripts: Path,
                                              snapshots: ScriptSnapshots) -> None:
        plan = snapshots.install(accepted(scripts, "n1=default\n"), scripts)
        assert plan.jobs == () and os.listdir(tmp_path / "private") == []

    def test_no_writable_place_is_a_config_error_naming_the_fix(self, tmp_path: Path, scripts: Path) -> None:
        """Nowhere to keep the copies: the config cannot run as accepted, so it is rejected (the last good one
        keeps running), with the places tried and the fix."""
        (scripts / "s.sh").write_text("#!/bin/bash\necho v=1\n")
        store = ScriptSnapshots(bases=[str(tmp_path / "missing")])
        with pytest.raises(SnapshotError) as caught:
            store.install(accepted(scripts, "n1=s\n"), scripts)
        assert isinstance(caught.value, ConfigError)
        assert caught.value.problems == [
            f"cannot create a private directory for the scripts' copies ({tmp_path / 'missing'}: No such file or "
            "directory); set TMPDIR to a writable directory"]

    def test_a_killed_collectors_directory_is_removed_at_start(self, tmp_path: Path, scripts: Path,
                                                               snapshots: ScriptSnapshots) -> None:
        """A directory left by a collector that is gone (SIGKILL, power cut: no one holds its lock) is removed; a
        living one's is kept whatever pid its name says, as a collector in another pid namespace sees it (its pid
        there names no process here), and so is one still being created (no lock yet)."""
        base = tmp_path / "private"
        dead = base / f"{PREFIX}1-0a0b"
        living = base / f"{PREFIX}999999999-0a0b"  # above any pid_max here: another pid namespace's
        creating = base / f"{PREFIX}999999998-0a0b"
        abandoned = base / f"{PREFIX}999999997-0a0b"  # killed between its mkdir and its lock, long ago
        for directory in (dead, living, creating, abandoned):
            (directory / "1").mkdir(parents=True)
            (directory / "1" / "s.sh").write_text("#!/bin/bash\n")
        for directory in (dead, living):
            (directory / LOCK).touch()
        os.utime(abandoned, (time.time() - 2 * UNLOCKED_GRACE_SECONDS,) * 2)
        (scripts / "s.sh").write_text("#!/bin/bash\necho v=1\n")
        with (living / LOCK).open() as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            snapshots.install(accepted(scripts, "n1=s\n"), scripts)
        assert not dead.exists() and not abandoned.exists()
        assert living.exists() and creating.exists()

    def test_a_running_collectors_directory_is_locked(self, scripts: Path, snapshots: ScriptSnapshots) -> None:
        """Another collector's look at this one's directory finds it in use for as long as this one runs."""
        (scripts / "s.sh").write_text("#!/bin/bash\necho v=1\n")
        plan = snapshots.install(accepted(scripts, "n1=s\n"), scripts)
        root = plan.jobs[0].run_from.parent.parent  # type: ignore[union-attr]
        with (root / LOCK).open() as lock:
            with pytest.raises(BlockingIOError):
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            snapshots.close()
            assert not root.exists()
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the collector
