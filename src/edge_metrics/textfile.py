"""Atomic, durable replacement of a file (the metrics file, the push spool's entries, the simulator's compiled
model), so its reader never sees a partial one.

The temp file sits beside the target (rename is only atomic within one file system) and is named
`<file>.tmp.<pid>.<random>`: node_exporter reads only `*.prom`, so it never sees the temp file. The random part
makes the name unpredictable, so nothing left at a fixed name (in a container the collector is PID 1, so a
name made of the pid alone is always the same) can block writing: the file is created with O_EXCL, and a name
that is taken, by anything, is passed over for a fresh one.
"""

from __future__ import annotations

import os
from pathlib import Path

_FILE_MODE = 0o644  # node_exporter runs as an unprivileged user and must be able to read it
_NAME_ATTEMPTS = 8  # fresh random names tried before giving up; a clash of 48 random bits is never expected


class WriteError(Exception):
    """The metrics file could not be replaced; the previous file is intact."""


def temp_prefix(target: Path | str) -> str:
    """The path of every temp file this process uses for `target`, but for its random end."""
    return f"{os.fspath(target)}.tmp.{os.getpid()}."


def write_atomically(target: Path | str, content: bytes | str) -> None:
    """Write `content` (text as UTF-8) to a temp file, fsync it, rename it over `target`, fsync the directory."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    # Plain strings from here on: this runs after every script run, and pathlib operations (with_name, parent)
    # cost more of it than the file system calls of a small file on tmpfs (bench/collector_bench.py).
    target_name = os.fspath(target)
    for _ in range(_NAME_ATTEMPTS):
        temp = temp_prefix(target_name) + os.urandom(6).hex()
        try:
            fd = _create_exclusive(temp)
            break
        except FileExistsError:
            continue  # something (a file, a directory, a FIFO, a symlink) has this name: never touch it
        except OSError as error:
            raise WriteError(f"{temp}: {error.strerror}") from error
    else:
        raise WriteError(f"{temp}: no free temp file name after {_NAME_ATTEMPTS} attempts")
    try:
        try:
            os.fchmod(fd, _FILE_MODE)  # the umask may have removed read bits
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, target_name)
    except OSError as error:
        _unlink_quietly(temp)
        raise WriteError(f"{target}: {error.strerror}") from error
    _fsync_directory(os.path.dirname(target_name) or ".")


def _create_exclusive(path: str) -> int:
    # O_EXCL|O_NOFOLLOW: never write through a symlink or into a file someone else planted.
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, _FILE_MODE)


def remove_stale_temp_files(target: Path) -> tuple[list[Path], list[Path]]:
    """Remove the temp files that a killed collector left beside `target`.

    Returns what was removed and what has a temp file's name but is not a regular file (a directory, a FIFO, a
    symlink): that was not made by a collector, so it is left alone, for the caller to report.
    """
    removed: list[Path] = []
    foreign: list[Path] = []
    prefix = f"{target.name}.tmp."
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed, foreign
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        path = Path(entry.path)
        if entry.is_file(follow_symlinks=False):
            if _unlink_quietly(path):
                removed.append(path)
        else:
            foreign.append(path)
    return removed, foreign


def _fsync_directory(directory: str) -> None:
    # Makes the rename itself durable across a power cut; not possible on every file system.
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # e.g. some network file systems refuse fsync on directories; the rename already happened
    finally:
        os.close(fd)


def _unlink_quietly(path: Path | str) -> bool:
    """Remove `path`; False if it was already gone or cannot be removed (the caller has nothing better to do)."""
    try:
        os.unlink(path)
        return True
    except OSError:  # FileNotFoundError included
        return False
