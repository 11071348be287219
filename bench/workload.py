"""The benchmark's inputs (scripts, nodes.conf, script output) and the collector daemon under measurement."""

from __future__ import annotations

import compileall
import contextlib
import importlib.util
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from testbed.poll import wait_until

NODE = "bench"


def write_script(directory: Path, name: str, body: str) -> Path:
    """A collector script `<name>.sh` (first line `#!/bin/bash`, as the collector requires)."""
    path = directory / f"{name}.sh"
    path.write_text("#!/bin/bash\n" + body)
    return path


def echo_lines(count: int) -> str:
    """Script body printing `count` readings, the way a sensor script does: one builtin echo per reading."""
    return "".join(f"echo sensor_{i:02d}={20 + i}.{i % 10}5\n" for i in range(count))


def output_lines(count: int) -> bytes:
    """`count` lines of script output: mostly plain readings, one in ten with labels (the slower parse path)."""
    lines = []
    for i in range(count):
        if i % 10 == 9:
            lines.append(f'temperature{{zone="z{i}",sensor="hdc1080"}}={20 + i % 50}.{i % 7}')
        else:
            lines.append(f"sensor_{i}={i % 1000}.{i % 9}5")
    return ("\n".join(lines) + "\n").encode()


def write_config(directory: Path, entries: str) -> Path:
    path = directory / "nodes.conf"
    path.write_text(f"{NODE}={entries}\n")
    return path


def collector_command() -> list[str]:
    """The installed console script, exactly what the DaemonSet runs, with its modules compiled as the image
    ships them (tools/build-image.sh runs compileall): where PYTHONDONTWRITEBYTECODE is set, as on this
    machine, an editable install would otherwise compile every module at each start, which inflates both the
    start-up and the resident memory of the process measured."""
    script = Path(sys.executable).with_name("edge-metrics")
    if not script.exists():
        raise SystemExit(f"{script} not found: run the benchmark with the virtualenv's python (make bench)")
    spec = importlib.util.find_spec("edge_metrics")
    if spec is not None and spec.submodule_search_locations:
        for package in spec.submodule_search_locations:
            compileall.compile_dir(package, quiet=1)
    return [str(script)]


class Daemon:
    """`edge-metrics run` in its own process group; always killed with its group on exit."""

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None, textfile_dir: Path | None = None) -> None:
        self.config = workdir / "nodes.conf"
        self.output = (textfile_dir or workdir / "textfile") / "custom_metrics.prom"
        self.log = workdir / "collector.log"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        self.output.parent.mkdir(parents=True, exist_ok=True)  # the collector creates no directory
        argv = [
            *collector_command(), "run", "--config", str(self.config), "--node-name", NODE,
            "--output", str(self.output), "--log-level", "warning",
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        return self.proc

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def runs(self, script: str) -> int:
        """The collector's own count of runs of `script`, from the file it wrote (0 before the first write)."""
        try:
            text = self.output.read_text()
        except FileNotFoundError:
            return 0
        match = re.search(rf'^edge_collector_script_runs_total\{{script="{script}"\}} (\d+)$', text, re.M)
        return int(match.group(1)) if match else 0

    def wait_runs(self, script: str, count: int, *, timeout: float) -> int:
        # Polled every 10 ms: the benchmarks align their samples on a run.
        return wait_until(lambda: self._alive() and self.runs(script) >= count and self.runs(script),
                          timeout=timeout, interval=0.01, what=f"{count} runs of {script}", log=self.log, retry_on=())

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the collector exited with {self.proc.returncode}:\n{self.log.read_text()}")
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # a script's grandchild must not outlive the benchmark
        self.proc = None

    def __enter__(self) -> Daemon:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def tmpfs_dir() -> Path | None:
    """/dev/shm when it is a tmpfs: where the DaemonSet's textfile volume (emptyDir, medium: Memory) lives."""
    try:
        with open("/proc/mounts") as mounts:
            if any(line.split()[1:3] == ["/dev/shm", "tmpfs"] for line in mounts):
                return Path("/dev/shm")
    except OSError:
        pass
    return None


def filesystem(path: Path) -> str:
    """The type of the file system holding `path` (longest matching mount point in /proc/mounts)."""
    best, kind = "", "?"
    resolved = str(path.resolve())
    with open("/proc/mounts") as mounts:
        for line in mounts:
            point, fstype = line.split()[1:3]
            if (resolved == point or resolved.startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
                best, kind = point, fstype
    return kind
