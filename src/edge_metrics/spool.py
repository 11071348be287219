"""Readings waiting for the node-local vmagent: a bounded FIFO, on disk when a directory is given.

One entry per run: the run's lines in Prometheus text with their millisecond timestamp, in a file named
`<sequence>-<timestamp ms>-<samples>.push` (everything the queue needs to know without reading it), written by
temp file + fsync + rename so a crash leaves either the whole entry or none. Entries are sent and removed oldest
first; when a new one does not fit, the oldest go (counted, logged). An entry sent again after an ambiguous failure
is the same bytes: the same series, timestamp and value, which Prometheus stores once.
"""

from __future__ import annotations

import os
from collections import deque
from pathlib import Path

from edge_metrics.samples import Value
from edge_metrics.textfile import WriteError, write_atomically

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

    from edge_metrics.log import Logger

SUFFIX = ".push"
_SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}


def parse_size(text: str) -> int:
    """`65536`, `500KB`, `64MiB`, `1GiB` -> bytes; ValueError naming what is wrong."""
    number = text.rstrip("BKMGikb")
    unit = text[len(number) :]
    if unit not in _SIZE_UNITS or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"invalid size {text!r} (expected e.g. 1048576, 500KB, 64MiB, 1GiB)")
    return int(number) * _SIZE_UNITS[unit]


class Entry(Value):
    __slots__ = ("data", "name", "samples", "size", "timestamp_ms")
    name: Final[str]  # file name in the spool directory ("" in memory)
    timestamp_ms: Final[int]
    samples: Final[int]
    size: Final[int]
    data: Final[bytes | None]  # None: on disk

    def __init__(self, name: str, timestamp_ms: int, samples: int, size: int, data: bytes | None) -> None:
        self.name = name
        self.timestamp_ms = timestamp_ms
        self.samples = samples
        self.size = size
        self.data = data


class Spool:
    """FIFO of entries bounded by `max_bytes`; survives a restart of the collector when `directory` is set."""

    def __init__(self, directory: str | None, max_bytes: int, log: Logger) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.log = log
        self.entries: deque[Entry] = deque()
        self.bytes = 0
        self.samples = 0
        self.dropped_samples = 0  # oldest entries dropped to make room
        self.next_sequence = 0
        if directory is not None:
            self._recover(directory)

    def append(self, timestamp_ms: int, samples: int, data: bytes) -> None:
        """Queue one run's lines, in memory until persist(); the oldest entries go when they do not fit."""
        self._make_room(len(data))
        sequence = self.next_sequence
        self.next_sequence += 1
        name = f"{sequence:016d}-{timestamp_ms}-{samples}{SUFFIX}"
        self.entries.append(Entry(name, timestamp_ms, samples, len(data), data))
        self.bytes += len(data)
        self.samples += samples

    def persist(self) -> None:
        """Write the entries still in memory to the directory. Called only when vmagent did not take them at once,
        so a healthy node does not write its SD card after every run."""
        if self.directory is None:
            return
        entries = self.entries
        start = len(entries)
        while start and entries[start - 1].data is not None:  # the unwritten entries are the newest ones
            start -= 1
        for index in range(start, len(entries)):
            entry = entries[index]
            assert entry.data is not None
            try:
                write_atomically(Path(self.directory, entry.name), entry.data.decode())
            except WriteError as error:
                # The disk refused (full, read-only): keep them in memory rather than lose them; still bounded.
                self.log.error("cannot write to the spool; keeping the readings in memory", reason=str(error))
                return
            self.entries[index] = Entry(entry.name, entry.timestamp_ms, entry.samples, entry.size, None)

    def read(self, entry: Entry) -> bytes | None:
        """The entry's bytes; None (logged) when its file is gone or unreadable."""
        if entry.data is not None:
            return entry.data
        assert self.directory is not None
        try:
            with open(os.path.join(self.directory, entry.name), "rb") as handle:
                return handle.read()
        except OSError as error:
            self.log.error("spooled readings unreadable", file=entry.name, reason=error.strerror)
            return None

    def remove(self, entry: Entry) -> None:
        """Take the oldest entry off the queue (sent, or dropped by the caller)."""
        assert self.entries and self.entries[0] is entry, "entries leave in order"
        self.entries.popleft()
        self.bytes -= entry.size
        self.samples -= entry.samples
        if entry.data is None and self.directory is not None:  # on disk
            try:
                os.unlink(os.path.join(self.directory, entry.name))
            except FileNotFoundError:
                pass
            except OSError as error:
                self.log.error("cannot remove a sent spool file", file=entry.name, reason=error.strerror)

    def _make_room(self, size: int) -> None:
        dropped_samples = dropped_entries = 0
        while self.entries and self.bytes + size > self.max_bytes:
            entry = self.entries[0]
            self.remove(entry)
            dropped_samples += entry.samples
            dropped_entries += 1
        if dropped_entries:
            self.dropped_samples += dropped_samples
            self.log.warning("spool full: the oldest readings were dropped", samples=dropped_samples,
                             runs=dropped_entries, max_bytes=self.max_bytes)

    def _recover(self, directory: str) -> None:
        """Pick up what an earlier collector left, in order; remove its half-written temp files."""
        try:
            os.makedirs(directory, exist_ok=True)
            names = sorted(os.listdir(directory))
        except OSError as error:
            self.log.error("cannot use the spool directory; spooling in memory", path=directory,
                           reason=error.strerror)
            self.directory = None
            return
        for name in names:
            path = os.path.join(directory, name)
            parts = name[: -len(SUFFIX)].split("-") if name.endswith(SUFFIX) else []
            if len(parts) != 3 or not all(part.isdigit() for part in parts):
                if ".tmp." in name:
                    os.unlink(path)
                continue
            try:
                size = os.stat(path).st_size
            except OSError:
                continue
            self.entries.append(Entry(name, int(parts[1]), int(parts[2]), size, None))
            self.bytes += size
            self.samples += int(parts[2])
            self.next_sequence = int(parts[0]) + 1
        if self.entries:
            self.log.info("spooled readings from before the restart", samples=self.samples, bytes=self.bytes,
                          path=directory)
