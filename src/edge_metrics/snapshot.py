"""The scripts of the accepted config, run from private copies: what runs is the content accepted with nodes.conf,
never what `<name>.sh` holds later (an update the collector rejected, a file half rewritten).

Why a private copy in a directory the collector owns, rather than bash reading the content from a pipe or a
memfd: a script runs as `bash FILE` and scripts rely on FILE. `$0` and `${BASH_SOURCE[0]}` name it (in their
messages, and with `dirname` to find the files beside it) and bash's own error messages name it. Read from
`/dev/fd/N`, both would name that descriptor, whose directory holds no sibling; `bash -c CONTENT PATH` keeps `$0`
but leaves BASH_SOURCE empty, shows the whole script in every `ps` line of the script's processes and is bounded
by the kernel's size of one argument. A copy keeps `bash FILE` exactly: each accepted config gets a generation
directory holding a copy of each script of the plan and a symlink to every other entry of the scripts directory,
so `$(dirname "$0")/helper` still reaches the real sibling (live, as nodes.conf names no such file). bash's
messages on stderr name the copy; the runner maps them back to the real path (`run_script(shown_as=)`).

Where: $TMPDIR when set, else /dev/shm (memory: no writes to a node's flash, and writable in a container whose root
filesystem is read-only), else /tmp.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge_metrics.config import ConfigError
from edge_metrics.samples import Job, Plan

PREFIX = "edge-metrics-scripts-"
_OWN_DIR = re.compile(re.escape(PREFIX) + r"(\d+)-")
# A living collector holds an exclusive lock on this file in its directory for as long as it runs. A lock, not the
# pid in the name: a collector in another pid namespace (a container sharing the folder) sees other pids, and
# would take a living collector's directory for a dead one's.
LOCK = ".lock"
# A directory without its lock is being created, or was left by a collector killed in that instant: only the latter
# is old.
UNLOCKED_GRACE_SECONDS = 600.0


class SnapshotError(ConfigError):
    """The private copies could not be written: the config cannot run as accepted, so it is not accepted."""


def default_bases(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    tmpdir = environ.get("TMPDIR")
    return (*([tmpdir] if tmpdir else []), "/dev/shm", "/tmp")


class ScriptSnapshots:
    """The collector's private directory of script copies; one generation per accepted config, the previous one
    removed once the new one is complete (runs are one at a time, between loads)."""

    def __init__(self, *, bases: Sequence[str] | None = None) -> None:
        self.bases = tuple(bases) if bases is not None else default_bases()
        self.root: Path | None = None
        self.lock_fd: int | None = None
        self.generation = 0

    def install(self, plan: Plan, scripts_dir: Path) -> Plan:
        """`plan` with each job running from a private copy of its content; raises SnapshotError."""
        if not plan.jobs:
            self._remove_generations(keep=None)
            return plan
        root = self._root()
        self.generation += 1
        directory = root / str(self.generation)
        try:
            os.mkdir(directory, 0o700)
            for job in plan.jobs:
                _write_copy(directory / f"{job.script}.sh", job.content)
            _link_siblings(directory, scripts_dir, {f"{job.script}.sh" for job in plan.jobs})
        except OSError as error:
            _remove_tree(str(directory))
            raise SnapshotError([f"{directory}: cannot keep a private copy of the scripts of the new config: "
                                 f"{error.strerror or error}"]) from error
        self._remove_generations(keep=directory.name)
        jobs = tuple(
            Job(job.script, job.path, job.interval, job.content, directory / f"{job.script}.sh") for job in plan.jobs
        )
        return Plan(node=plan.node, jobs=jobs, line=plan.line, pattern=plan.pattern)

    def close(self) -> None:
        if self.root is not None:
            _remove_tree(str(self.root))
            self.root = None
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def _root(self) -> Path:
        if self.root is not None:
            return self.root
        failures = []
        for base in self.bases:
            root = Path(base, f"{PREFIX}{os.getpid()}-{os.urandom(6).hex()}")
            try:
                os.mkdir(root, 0o700)  # not tempfile.mkdtemp: its imports cost the long-lived process memory
                # CLOEXEC: a script's process that outlives the collector must not keep its directory alive.
                self.lock_fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX)
            except OSError as error:
                _remove_tree(str(root))
                failures.append(f"{base}: {error.strerror or error}")
                continue
            self.root = root
            _remove_stale(base)
            atexit.register(self.close)
            return root
        raise SnapshotError([f"cannot create a private directory for the scripts' copies ({'; '.join(failures)}); "
                             "set TMPDIR to a writable directory"])

    def _remove_generations(self, *, keep: str | None) -> None:
        if self.root is None:
            return
        for entry in os.listdir(self.root):
            if entry not in (keep, LOCK):
                _remove_tree(os.path.join(self.root, entry))


def _write_copy(path: Path, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o400)
    try:
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def _link_siblings(directory: Path, scripts_dir: Path, copied: set[str]) -> None:
    """A symlink to every entry of the scripts directory that is not one of the copies."""
    source = os.path.abspath(scripts_dir)
    try:
        names = os.listdir(source)
    except OSError:
        return  # the scripts were read, so this is a race with a removal: the copies alone still run
    for name in names:
        if name not in copied:
            os.symlink(os.path.join(source, name), directory / name)


def _remove_stale(base: str) -> None:
    """Directories of earlier collectors that were killed before they could remove theirs: no one holds their lock."""
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for entry in entries:
        if _OWN_DIR.match(entry) is not None and not _in_use(os.path.join(base, entry)):
            _remove_tree(os.path.join(base, entry))


def _in_use(directory: str) -> bool:
    try:
        fd = os.open(os.path.join(directory, LOCK), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        try:
            return time.time() - os.stat(directory).st_mtime < UNLOCKED_GRACE_SECONDS
        except OSError:
            return True
    except OSError:
        return True  # another user's: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True  # held: its collector runs
    finally:
        os.close(fd)  # closing releases a lock this look took
    return False


def _remove_tree(path: str) -> None:
    """Remove a generation (copies and symlinks) or the whole private directory; what cannot go stays."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    _remove_tree(entry.path)
                else:
                    with contextlib.suppress(OSError):  # left behind, it is removed with its directory later
                        os.unlink(entry.path)
        os.rmdir(path)
    except OSError:
        return  # gone already, or not removable now: the next generation's clean-up or the next start retries
