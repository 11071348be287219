"""Atomic, durable replacement of the metrics file, so node_exporter never reads a partial one.

The temp file sits beside the target (rename is only atomic within one file system) and is named
`<file>.tmp.<pid>`: node_exporter reads only `*.prom`, so it never sees the temp file.
"""

from __future__ import annotations

import os
from pathlib import Path

_FILE_MODE = 0o644  # node_exporter runs as an unprivileged user and must be able to read it


class WriteError(Exception):
    """The metrics file could not be replaced; the previous file is intact."""


def temp_path(target: Path) -> Path:
    return Path(_temp_name(os.fspath(target)))


def _temp_name(target: str) -> str:
    return f"{target}.tmp.{os.getpid()}"


def write_atomically(target: Path, content: str) -> None:
    """Write `content` to a temp file, fsync it, rename it over `target`, fsync the directory."""
    # Plain strings from here on: this runs after every script run, and pathlib operations (with_name, parent)
    # cost more of it than the file system calls of a small file on tmpfs (bench/collector_bench.py).
    target_name = os.fspath(target)
    temp = _temp_name(target_name)
    data = content.encode("utf-8")
    try:
        fd = _create_exclusive(temp)
    except FileExistsError:
        # Ours from an earlier failed attempt of this very process (same pid): safe to replace.
        _unlink_quietly(temp)
        try:
            fd = _create_exclusive(temp)
        except OSError as error:
            raise WriteError(f"{temp}: {error.strerror}") from error
    except OSError as error:
        raise WriteError(f"{temp}: {error.strerror}") from error
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


def remove_stale_temp_files(target: Path) -> list[Path]:
    """Remove temp files that a killed collector left beside `target`; return what was removed."""
    removed: list[Path] = []
    prefix = f"{target.name}.tmp."
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith(prefix) and entry.is_file(follow_symlinks=False):
            path = Path(entry.path)
            if _unlink_quietly(path):
                removed.append(path)
    return removed


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
