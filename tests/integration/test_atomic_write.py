"""node_exporter must never read a partial file: atomic rewrites under a concurrent reader, a full or read-only
disk, and a collector killed mid-write."""

from __future__ import annotations

import json
import os
import random
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_metrics.textfile import write_atomically
from tests.helpers import REPO, Processes, wait_until
from tests.integration.support import (
    ALWAYS_WRITTEN,
    PYTHON,
    Setup,
    clean_env,
    complete_problem,
    make_setup,
    read_metrics,
    script_value,
    start_collector,
    value,
)

SERIES = 300


def versioned(version: int) -> str:
    """A file whose every sample carries `version`: a reader that sees two values saw a mix of two writes."""
    lines = ["# HELP edge_check Test series.", "# TYPE edge_check gauge"]
    lines.extend(f'edge_check{{sensor="{i}",bus="i2c-1"}} {version}' for i in range(SERIES))
    lines.extend(["# TYPE edge_version gauge", f"edge_version {version}", ""])
    return "\n".join(lines)


class Reader:
    """The file_reader process: parses the file in a loop until stopped, then reports what it saw."""

    def __init__(self, procs: Processes, target: Path, mode: str, *names: str) -> None:
        self.stop_file = target.parent / "stop-reader"
        self.proc = procs.start([PYTHON, "-m", "tests.integration.file_reader", target, self.stop_file, mode, *names],
                                cwd=REPO, stdout=subprocess.PIPE, stderr=None)
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"ready\n"

    def report(self) -> dict[str, object]:
        self.stop_file.touch()
        out, _ = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0
        report: dict[str, object] = json.loads(out)
        return report


class TestConcurrentReader:
    def test_10000_rewrites_are_never_seen_partial(self, tmp_path: Path, procs: Processes) -> None:
        """A reader parsing the file while write_atomically replaces it 10,000 times sees only whole files, and
        opens it between renames often enough to see thousands of versions."""
        target = tmp_path / "custom_metrics.prom"
        write_atomically(target, versioned(0))
        reader = Reader(procs, target, "uniform")
        started = time.monotonic()
        for version in range(1, 10_001):
            write_atomically(target, versioned(version))
        took = time.monotonic() - started
        report = reader.report()
        print(f"10,000 atomic rewrites in {took:.1f}s; reader: {report}")
        assert report["torn"] == 0, report["reasons"]
        assert report["missing"] == 0, "the file vanished between renames"
        assert isinstance(report["versions"], int) and report["versions"] >= 500, report
        assert sorted(p.name for p in tmp_path.iterdir()) == ["custom_metrics.prom", "stop-reader"]

    def test_the_reader_does_catch_a_plain_rewrite(self, tmp_path: Path, procs: Processes) -> None:
        """Control for the test above: the same reader against a writer that truncates and writes in place (what
        `script > file` does) reports torn files, so its silence above means something."""
        target = tmp_path / "custom_metrics.prom"
        target.write_text(versioned(0))
        reader = Reader(procs, target, "uniform")
        deadline = time.monotonic() + 1.5
        version = 0
        while time.monotonic() < deadline:
            version += 1
            content = versioned(version)
            with open(target, "w") as handle:
                handle.write(content[: len(content) // 2])
                handle.flush()
                handle.write(content[len(content) // 2 :])
        report = reader.report()
        assert isinstance(report["torn"], int) and report["torn"] > 0, report

    def test_daemon_rewrites_are_never_seen_partial(self, tmp_path: Path, procs: Processes) -> None:
        """The collector rewriting its file every 10 ms for 3 s: the reader sees many versions, all complete."""
        setup = make_setup(tmp_path, "node-1=fast:10ms\n", {"fast": """
            for ((i = 0; i < 300; i++)); do printf 'check{sensor="%d"}=%d\\n' $i $RANDOM; done
            echo zz_last=1
            """})
        collector = start_collector(procs, setup)
        # From the first run on every file holds the script's series (the start-up write has only the health).
        wait_until(lambda: (script_value(setup.output, "edge_collector_script_runs_total", "fast") or 0) >= 1,
                   timeout=5, what="the first run")
        reader = Reader(procs, setup.output, "names", *ALWAYS_WRITTEN, "edge_check", "edge_zz_last")
        time.sleep(3)  # the measurement window, not a readiness wait
        report = reader.report()
        runs = script_value(setup.output, "edge_collector_script_runs_total", "fast")
        assert collector.poll() is None
        print(f"daemon: {runs} runs in ~3s; reader: {report}")
        assert report["torn"] == 0, report["reasons"]
        assert isinstance(report["versions"], int) and report["versions"] >= 50, report


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs mounted for the test (root only), unmounted afterwards even when the test fails."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", mount_point], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", mount_point], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError as error:
            assert error.errno == 28, error  # ENOSPC
    return filler


class TestWriteFailures:
    def test_full_then_read_only_disk(self, tmp_path: Path, tiny_tmpfs: Path, procs: Processes) -> None:
        """A full disk, then a read-only one: the previous file stays complete and unchanged, each failure is
        logged and the collector keeps running; once the disk is usable again the file is rewritten and the
        failures are counted in edge_collector_textfile_write_failures_total."""
        setup = make_setup(tmp_path, "node-1=probe:200ms\n", {"probe": "echo temperature=$RANDOM\n"})
        output = tiny_tmpfs / "custom_metrics.prom"
        collector = start_collector(procs, setup, "--output", str(output))
        wait_until(lambda: (script_value(output, "edge_collector_script_runs_total", "probe") or 0) >= 2,
                   timeout=5, what="two runs")

        def failures_logged(reason: str) -> int:
            return sum(reason in line for line in setup.log_lines("cannot write the metrics file"))

        def stuck_while_failing(reason: str) -> None:
            wait_until(lambda: failures_logged(reason) >= 1, timeout=5, what=f"a write failure: {reason}")
            before = output.read_text()
            logged = failures_logged(reason)
            wait_until(lambda: failures_logged(reason) >= logged + 3, timeout=5, what="more failed writes")
            assert output.read_text() == before, "the file changed while writes were failing"
            assert complete_problem(before) is None, complete_problem(before)
            assert [p.name for p in tiny_tmpfs.iterdir() if ".tmp." in p.name] == [], "a temp file was left"
            assert collector.poll() is None

        filler = fill(tiny_tmpfs)
        stuck_while_failing("No space left on device")
        filler.unlink()
        runs = wait_for_fresh_runs(output, "probe")

        subprocess.run(["mount", "-o", "remount,ro", tiny_tmpfs], check=True)
        try:
            stuck_while_failing("Read-only file system")
        finally:
            subprocess.run(["mount", "-o", "remount,rw", tiny_tmpfs], check=True)
        wait_for_fresh_runs(output, "probe", after=runs)

        samples = read_metrics(output)
        counted = value(samples, "edge_collector_textfile_write_failures_total")
        logged = len(setup.log_lines("cannot write the metrics file"))
        assert counted == logged and logged >= 8, (counted, logged)
        assert collector.poll() is None


def wait_for_fresh_runs(output: Path, script: str, *, after: float = 0) -> float:
    """Wait until the file shows two more runs than `after` (the collector writes again); return the count."""
    return wait_until(
        lambda: (runs := script_value(output, "edge_collector_script_runs_total", script) or 0) >= after + 2 and runs,
        timeout=5, what="the file to be rewritten",
    )


class TestKilledCollector:
    def test_stale_temp_file_is_removed_at_start(self, tmp_path: Path, procs: Processes) -> None:
        """A temp file left by a killed collector is removed when the next one starts, and the start is logged."""
        setup = make_setup(tmp_path, "node-1=probe:1s\n", {"probe": "echo up=1\n"})
        setup.output.parent.mkdir(exist_ok=True)
        stale = setup.output.with_name(setup.output.name + ".tmp.424242")
        stale.write_text("edge_half_writ")
        start_collector(procs, setup)
        wait_until(lambda: not stale.exists(), timeout=5, what="the stale temp file to be removed")
        assert setup.log_lines("removed a temp file")
        wait_until(lambda: value(read_metrics(setup.output), "edge_up") == 1, timeout=5, what="the first run")

    @pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
    def test_nothing_at_a_temp_name_blocks_writing(self, tmp_path: Path, procs: Processes, kind: str) -> None:
        """Something that is not a regular file at the temp names a collector used to use (`.tmp.<pid>`; in a
        container always `.tmp.1`) and at names of the current pattern: every write still succeeds, it is
        logged once with its path at start, and it is left alone."""
        setup = make_setup(tmp_path, "node-1=probe:200ms\n", {"probe": "echo up=1\n"})
        setup.output.parent.mkdir(exist_ok=True)
        victim = tmp_path / "victim"
        victim.write_text("precious")
        def plant(path: Path) -> None:
            if kind == "directory":
                path.mkdir()
            elif kind == "fifo":
                os.mkfifo(path)
            else:
                path.symlink_to(victim)

        at_start = [setup.output.with_name(f"{setup.output.name}.tmp.1"),
                    setup.output.with_name(f"{setup.output.name}.tmp.1.000000000000")]
        for path in at_start:
            plant(path)
        collector = start_collector(procs, setup)
        wait_until(lambda: (script_value(setup.output, "edge_collector_script_runs_total", "probe") or 0) >= 1,
                   timeout=10, what="the first run written")
        # The name the collector used to write to, taken while it runs (in a container: `.tmp.1`).
        own = setup.output.with_name(f"{setup.output.name}.tmp.{collector.pid}")
        plant(own)
        runs = script_value(setup.output, "edge_collector_script_runs_total", "probe") or 0
        wait_until(lambda: (script_value(setup.output, "edge_collector_script_runs_total", "probe") or 0) >= runs + 5,
                   timeout=15, what="five more runs written")
        samples = read_metrics(setup.output)
        assert value(samples, "edge_collector_textfile_write_failures_total") == 0
        assert value(samples, "edge_up") == 1
        assert collector.poll() is None
        assert not setup.log_lines("cannot write the metrics file")
        reported = setup.log_lines("not a regular file at a temp file name")
        assert len(reported) == len(at_start), reported
        assert all(str(path) in "".join(reported) for path in at_start)
        assert all(path.is_symlink() or path.exists() for path in [*at_start, own]), "a blocker was removed"
        assert victim.read_text() == "precious"

    def test_sigkill_mid_write_leaves_a_complete_file(self, tmp_path: Path, procs: Processes) -> None:
        """SIGKILL of a collector rewriting a 300 KB file back to back, half of the time the moment its temp file
        appears (mid-write), half at a random moment: the file is always complete, and the temp files of killed
        collectors are gone once the next one runs."""
        data = tmp_path / "readings"
        data.write_text("".join(f'reading{{sensor="{i}",bus="i2c-1",chip="hdc1080"}}={i}.5\n' for i in range(5000)))
        setup = make_setup(tmp_path, "node-1=big:10ms\n", {"big": f"cat {data}\n"})
        expected = [*ALWAYS_WRITTEN, "edge_reading"]
        rng = random.Random(7)
        left_behind = 0
        for attempt in range(12):
            launched = time.time()
            collector = start_collector(procs, setup)
            wait_until(lambda at=launched: _written_since(setup, at), timeout=5, what="a write by this collector")
            temp_prefix = f"{setup.output.name}.tmp.{collector.pid}."
            if attempt % 2:
                time.sleep(rng.uniform(0, 0.2))  # a random moment inside the rewrite loop
            else:
                wait_until(lambda p=temp_prefix: _temp_files(setup, p), timeout=5, interval=0,
                           what="the collector to be mid-write")
            collector.send_signal(signal.SIGKILL)
            collector.wait(timeout=5)
            text = setup.output.read_text()
            assert complete_problem(text, expected) is None, complete_problem(text, expected)
            left_behind += bool(_temp_files(setup, temp_prefix))
        launched = time.time()
        collector = start_collector(procs, setup)
        wait_until(lambda: _written_since(setup, launched), timeout=5, what="the last collector's first write")
        stale = [p.name for p in setup.output.parent.iterdir() if ".tmp." in p.name
                 and f".tmp.{collector.pid}." not in p.name]
        assert stale == []
        print(f"12 SIGKILLs: {left_behind} left a temp file behind (all removed at the next start)")
        assert left_behind >= 1, "no kill landed mid-write: the cleanup after a real kill was not exercised"
        assert len(setup.log_lines("removed a temp file")) >= left_behind


def _temp_files(setup: Setup, prefix: str) -> list[str]:
    return [p.name for p in setup.output.parent.iterdir() if p.name.startswith(prefix)]


def _written_since(setup: Setup, launched: float) -> bool:
    """True once the file holds a run of a collector started at `launched` (its write time is later)."""
    samples = read_metrics(setup.output)
    written = value(samples, "edge_collector_last_write_timestamp_seconds")
    runs = value(samples, "edge_collector_script_runs_total", script="big")
    return written is not None and written > launched and (runs or 0) >= 1


class TestFileMode:
    def test_world_readable_whatever_the_umask(self, tmp_path: Path) -> None:
        """Under umask 077 the file is still mode 0644: node_exporter runs as an unprivileged user."""
        setup = make_setup(tmp_path, "node-1=probe\n", {"probe": "echo v=1\n"})
        subprocess.run(setup.argv("--once"), env=clean_env(), check=True, timeout=30, capture_output=True,
                       preexec_fn=lambda: os.umask(0o077))
        assert stat.S_IMODE(setup.output.stat().st_mode) == 0o644
        assert sorted(p.name for p in setup.output.parent.iterdir()) == ["custom_metrics.prom"]
