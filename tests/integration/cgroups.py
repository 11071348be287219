"""Memory-limited cgroups the tests create themselves, as the kubelet does for a container with a memory limit:
cgroup v2 (memory.max, memory.events) where its memory controller is available, else the v1 memory controller
(memory.limit_in_bytes, memory.oom_control). Each is removed again at the end, also on failure."""

from __future__ import annotations

import contextlib
import os
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import wait_until

V2_ROOT = Path("/sys/fs/cgroup")
V2_HYBRID_ROOT = Path("/sys/fs/cgroup/unified")
V1_MEMORY_ROOT = Path("/sys/fs/cgroup/memory")


class MemoryCgroup:
    """One cgroup with a memory limit; `wrap(argv)` starts a program inside it."""

    def __init__(self, path: Path, version: int) -> None:
        self.path = path
        self.version = version

    def set_limit(self, limit: int) -> None:
        if self.version == 2:
            (self.path / "memory.max").write_text(str(limit))
            with contextlib.suppress(OSError):  # without swap accounting there is no such file
                (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit))
            with contextlib.suppress(OSError):
                (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run inside the cgroup: a shell moves itself in, then execs the program."""
        procs = shlex.quote(str(self.path / "cgroup.procs"))
        return ["sh", "-c", f'echo $$ > {procs} && exec "$@"', "sh", *argv]

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer killed in this cgroup."""
        events = self.path / ("memory.events" if self.version == 2 else "memory.oom_control")
        for line in events.read_text().splitlines():
            key, _, count = line.partition(" ")
            if key == "oom_kill":
                return int(count)
        raise AssertionError(f"no oom_kill count in {events} (kernel too old to report it)")

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return None

    def pids(self) -> list[int]:
        try:
            return [int(pid) for pid in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []


def memory_hierarchy() -> tuple[Path, int] | str:
    """Where memory-limited cgroups can be made here: (root, version), or why not."""
    for root in (V2_ROOT, V2_HYBRID_ROOT):
        controllers = root / "cgroup.controllers"
        if controllers.exists() and "memory" in controllers.read_text().split():
            problem = _writable(root)
            return (root, 2) if problem is None else f"{root} (cgroup v2): {problem}"
    if (V1_MEMORY_ROOT / "memory.limit_in_bytes").exists():
        problem = _writable(V1_MEMORY_ROOT)
        return (V1_MEMORY_ROOT, 1) if problem is None else f"{V1_MEMORY_ROOT} (cgroup v1): {problem}"
    return "no cgroup memory controller is mounted"


def _writable(root: Path) -> str | None:
    """None if a cgroup can be created under `root` (tried), else why not."""
    probe = root / f"edge-test-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError as error:
        return f"cannot create a cgroup: {error.strerror}"
    probe.rmdir()
    return None


@contextlib.contextmanager
def memory_cgroup(root: Path, version: int, name: str, limit: int) -> Iterator[MemoryCgroup]:
    """A fresh cgroup `<root>/edge-test-<name>-<random>` limited to `limit` bytes; removed at the end (the caller
    stops its processes first; whatever is still in it then is SIGKILLed)."""
    if version == 2:
        subtree = root / "cgroup.subtree_control"
        if "memory" not in subtree.read_text().split():
            subtree.write_text("+memory")
    group = MemoryCgroup(root / f"edge-test-{name}-{uuid.uuid4().hex[:8]}", version)
    group.path.mkdir()
    try:
        group.set_limit(limit)
        yield group
    finally:
        for pid in group.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        wait_until(lambda: not group.pids(), timeout=10, what=f"{group.path} to empty")
        wait_until(lambda: _rmdir(group.path), timeout=10, what=f"{group.path} removed")


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True
