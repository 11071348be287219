"""Readings waiting for the node-local vmagent: a bounded FIFO, on disk when a directory is given.

One file per run, `<sequence>.push`, written (temp file, fsync, rename, fsync of the directory) before the run is
counted as taken, so a crash loses at most the run in flight. Each file is framed: a header line

    EMS1 <timestamp ms> <boot ms> <boot id> <samples> <body bytes> <crc32 of the body> <script>

then the body, the run's lines in Prometheus text. A stamped run has its timestamp on every line; a run read
while the clock was unsynchronised has timestamp 0 and the CLOCK_BOOTTIME of its reading with the boot it
belongs to, so it can be stamped after a restart within the same boot (after a reboot its time is unknown:
dropped, counted). A file whose frame does not check, or that is not ours, is moved to `damaged/` once, logged
and counted: it can never spill into its neighbour's lines. Files of the earlier, unframed format
(`<sequence>-<timestamp ms>-<samples>.push`) are still read.

When the disk refuses a write (full, read-only) the entry stays in memory, within MEMORY_MAX_BYTES, and is
written again at the next chance. Entries leave oldest first; when a new one does not fit, the oldest go, never
those the caller names as in flight (the batch being sent).
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from collections.abc import Callable, Collection

from edge_metrics.samples import Value
from edge_metrics.textfile import WriteError, write_atomically

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

    from edge_metrics.log import Logger

SUFFIX = ".push"
MAGIC = b"EMS1"
DAMAGED_DIR = "damaged"
# Readings kept in memory (no --spool-dir, or a disk that refuses writes): the collector container's limit is
# 96Mi and a run at the output cap needs most of it (deploy/kubernetes/edge/daemonset.yaml, docs/time.md).
MEMORY_MAX_BYTES = 16 * 1024 * 1024
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
_HEADER_MAX = 200
_SIZE_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}

Writer = Callable[[str, bytes], None]  # durable write of a whole file (tests inject ENOSPC here)


def parse_size(text: str) -> int:
    """`65536`, `500KB`, `64MiB`, `1GiB` -> bytes; ValueError naming what is wrong."""
    number = text.rstrip("BKMGikb")
    unit = text[len(number) :]
    if unit not in _SIZE_UNITS or not number.isdigit() or int(number) <= 0:
        raise ValueError(f"invalid size {text!r} (expected e.g. 1048576, 500KB, 64MiB, 1GiB)")
    return int(number) * _SIZE_UNITS[unit]


def read_boot_id() -> str:
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as handle:
            return handle.read().strip() or "-"
    except OSError:
        return "-"


class Entry(Value):
    """One run's readings in the queue. `timestamp_ms` 0: held, to be stamped from `boot_ms` once synchronised."""

    __slots__ = ("boot_ms", "data", "name", "samples", "script", "size", "timestamp_ms")
    name: Final[str]  # file name in the spool directory
    script: Final[str]
    timestamp_ms: Final[int]
    boot_ms: Final[int]  # CLOCK_BOOTTIME of the reading, for a held entry
    samples: Final[int]
    size: Final[int]  # body bytes
    data: Final[bytes | None]  # the body while it is not on disk; None: on disk

    def __init__(self, name: str, script: str, timestamp_ms: int, boot_ms: int, samples: int, size: int,
                 data: bytes | None) -> None:
        self.name = name
        self.script = script
        self.timestamp_ms = timestamp_ms
        self.boot_ms = boot_ms
        self.samples = samples
        self.size = size
        self.data = data

    @property
    def held(self) -> bool:
        return self.timestamp_ms == 0


def frame(entry: Entry, body: bytes, boot_id: str) -> bytes:
    header = b"%s %d %d %s %d %d %08x %s\n" % (MAGIC, entry.timestamp_ms, entry.boot_ms, boot_id.encode(),
                                                entry.samples, len(body), zlib.crc32(body), entry.script.encode())
    return header + body


Header = tuple[int, int, str, int, int, int, str]  # timestamp ms, boot ms, boot id, samples, length, crc, script


def _parse_header(line: bytes) -> Header | None:
    parts = line.split(b" ")
    if len(parts) != 8 or parts[0] != MAGIC:
        return None
    try:
        return (int(parts[1]), int(parts[2]), parts[3].decode("ascii"), int(parts[4]), int(parts[5]),
                int(parts[6], 16), parts[7].decode("utf-8"))
    except ValueError:  # UnicodeDecodeError included
        return None


def unframe(data: bytes) -> tuple[Header, bytes] | None:
    """The header fields and the body of a framed file; None when the frame does not check."""
    line, newline, body = data.partition(b"\n")
    header = _parse_header(line) if newline else None
    if header is None or len(body) != header[4] or zlib.crc32(body) != header[5]:
        return None
    if body and not body.endswith(b"\n"):
        return None
    return header, body


class Spool:
    """FIFO of entries bounded by `max_bytes`; survives a restart of the collector when `directory` is set."""

    def __init__(self, directory: str | None, max_bytes: int, log: Logger, *,
                 write: Writer = write_atomically, boot_id: str | None = None,
                 memory_max: int = MEMORY_MAX_BYTES) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.memory_max = memory_max
        self.log = log
        self.write = write
        self.boot_id = boot_id if boot_id is not None else read_boot_id()
        self.entries: deque[Entry] = deque()
        self.bytes = 0
        self.samples = 0
        self.held_samples = 0
        self.memory_bytes = 0  # bodies held in memory
        self.dropped_samples = 0  # oldest entries dropped to make room (spool_full)
        self.damaged_samples = 0  # in files set aside as damaged
        self.reboot_samples = 0  # held readings of an earlier boot (held_reboot)
        self.disk_refused = False  # the last write failed: logged once per streak
        self.next_sequence = 0
        if directory is not None:
            self._recover(directory)

    # -- in ------------------------------------------------------------------------------------------------

    def append(self, script: str, timestamp_ms: int, samples: int, data: bytes, *, boot_ms: int = 0,
               keep: Collection[str] = ()) -> bool:
        """Queue one run's lines (timestamp 0: held, with its boot time); on disk before this returns when a
        directory is set. False when the disk refused it: kept in memory, written again by persist(). The
        entries named in `keep` (the batch in flight) are never dropped to make room."""
        self._make_room(len(data), keep)
        name = f"{self.next_sequence:016d}{SUFFIX}"
        self.next_sequence += 1
        entry = Entry(name, script, timestamp_ms, boot_ms, samples, len(data), data)
        self.entries.append(entry)
        self.bytes += len(data)
        self.samples += samples
        self.held_samples += samples if entry.held else 0
        self.memory_bytes += len(data)
        if self.directory is None:
            return True
        written = self._write(entry, data)
        if written is not None:
            self.entries[-1] = written
        self._bound_memory(keep)
        return written is not None

    def replace(self, old: Entry, timestamp_ms: int, data: bytes) -> None:
        """A held entry stamped: the same file (rename over it), now with its time; never two copies on disk."""
        index = self.entries.index(old)
        new = Entry(old.name, old.script, timestamp_ms, 0, old.samples, len(data), data)
        self.entries[index] = new
        self.bytes += len(data) - old.size
        self.held_samples -= old.samples
        self.memory_bytes += len(data) - (old.size if old.data is not None else 0)
        if self.directory is not None:
            written = self._write(new, data)
            if written is not None:
                self.entries[index] = written

    def persist(self) -> int:
        """Write again what the disk refused earlier; the samples still only in memory afterwards."""
        if self.directory is None:
            return self.unsaved_samples()
        for index, entry in enumerate(list(self.entries)):
            if entry.data is not None:
                written = self._write(entry, entry.data)
                if written is None:
                    break
                self.entries[index] = written
        return self.unsaved_samples()

    def unsaved_samples(self) -> int:
        """Readings a crash now would lose: in memory only (all of them without a directory)."""
        return sum([entry.samples for entry in self.entries if entry.data is not None])

    def _write(self, entry: Entry, body: bytes) -> Entry | None:
        assert self.directory is not None
        try:
            self.write(os.path.join(self.directory, entry.name), frame(entry, body, self.boot_id))
        except (WriteError, OSError) as error:
            if not self.disk_refused:
                self.log.error("cannot write to the spool; keeping the readings in memory", reason=str(error),
                               memory_max_bytes=self.memory_max)
            self.disk_refused = True
            return None
        if self.disk_refused:
            self.log.info("spool writable again", path=self.directory)
            self.disk_refused = False
        self.memory_bytes -= entry.size
        return Entry(entry.name, entry.script, entry.timestamp_ms, entry.boot_ms, entry.samples, entry.size, None)

    # -- out -----------------------------------------------------------------------------------------------

    def read(self, entry: Entry) -> bytes | None:
        """The entry's body; None when its file is damaged or gone (set aside, logged, counted)."""
        if entry.data is not None:
            return entry.data
        assert self.directory is not None
        path = os.path.join(self.directory, entry.name)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            self.log.error("spooled readings unreadable; dropped", file=entry.name, reason=error.strerror)
            self.damaged_samples += entry.samples
            return None
        if "-" in entry.name:  # the earlier, unframed format
            body: bytes | None = data if data and data.endswith(b"\n") else None
        else:
            framed = unframe(data)
            body = framed[1] if framed is not None and framed[0][3] == entry.samples else None
        if body is None:
            self._set_aside(entry.name, entry.samples, "its frame does not check")
        return body

    def remove(self, entry: Entry) -> None:
        """Take an entry off the queue (sent, or dropped by the caller) and its file off the disk."""
        if self.entries[0] is entry:
            self.entries.popleft()
        else:  # a held or in-memory entry dropped from further back
            self.entries.remove(entry)
        self._forget(entry)
        if entry.data is None and self.directory is not None:  # on disk
            try:
                os.unlink(os.path.join(self.directory, entry.name))
            except FileNotFoundError:
                pass
            except OSError as error:
                self.log.error("cannot remove a sent spool file", file=entry.name, reason=error.strerror)

    def _forget(self, entry: Entry) -> None:
        self.bytes -= entry.size
        self.samples -= entry.samples
        self.held_samples -= entry.samples if entry.held else 0
        self.memory_bytes -= entry.size if entry.data is not None else 0

    @property
    def limit(self) -> int:
        """Bytes the spool holds before its oldest readings go: --spool-max-bytes, bounded by memory without a
        directory."""
        return self.max_bytes if self.directory is not None else min(self.max_bytes, self.memory_max)

    def _make_room(self, size: int, keep: Collection[str]) -> None:
        limit = self.limit
        dropped = self._drop_oldest(lambda: self.bytes + size > limit, keep)
        if dropped:
            self.log.warning("spool full: the oldest readings were dropped", samples=dropped[0], runs=dropped[1],
                             max_bytes=limit)

    def _bound_memory(self, keep: Collection[str]) -> None:
        """The disk refused: what stays in memory is bounded by the pod's memory limit, oldest in memory first."""
        dropped = self._drop_oldest(lambda: self.memory_bytes > self.memory_max, keep, in_memory=True)
        if dropped:
            self.log.warning("spool full in memory (the disk refuses writes): the oldest readings were dropped",
                             samples=dropped[0], runs=dropped[1], memory_max_bytes=self.memory_max)

    def _drop_oldest(self, over: Callable[[], bool], keep: Collection[str], *,
                     in_memory: bool = False) -> tuple[int, int] | None:
        samples = runs = 0
        index = 0
        while index < len(self.entries) and over():
            entry = self.entries[index]
            # An entry in flight may be taken by vmagent: dropped and counted it would be a loss that was not one.
            # The spool is over its bound by that batch until the answer comes.
            if (in_memory and entry.data is None) or entry.name in keep:
                index += 1
                continue
            self.remove(entry)
            samples += entry.samples
            runs += 1
        self.dropped_samples += samples
        return (samples, runs) if runs else None

    # -- recovery ------------------------------------------------------------------------------------------

    def _recover(self, directory: str) -> None:
        """Pick up what an earlier collector left, in order; remove its half-written temp files (the run that
        was in flight); set aside what is not ours or does not check."""
        try:
            os.makedirs(directory, exist_ok=True)
            names = sorted(os.listdir(directory))
        except OSError as error:
            self.log.error("cannot use the spool directory; spooling in memory", path=directory,
                           reason=error.strerror)
            self.directory = None
            return
        reboot = 0
        for name in names:
            path = os.path.join(directory, name)
            if name == DAMAGED_DIR:
                continue
            if ".tmp." in name and os.path.isfile(path):
                os.unlink(path)
                continue
            recovered = self._recovered(path, name)
            if recovered is None:
                continue
            entry, earlier_boot = recovered
            if earlier_boot:  # held before a reboot: CLOCK_BOOTTIME started again, its time is unknown
                reboot += entry.samples
                os.unlink(path)
                continue
            self.entries.append(entry)
            self.bytes += entry.size
            self.samples += entry.samples
            self.held_samples += entry.samples if entry.held else 0
        if reboot:
            self.reboot_samples += reboot
            self.log.warning("readings held for an unsynchronised clock before a reboot: their time is unknown, "
                             "dropped", samples=reboot)
        if self.entries:
            self.log.info("spooled readings from before the restart", samples=self.samples, bytes=self.bytes,
                          held_samples=self.held_samples, path=directory)

    def _recovered(self, path: str, name: str) -> tuple[Entry, bool] | None:
        """The entry a file holds and whether it is a held one of an earlier boot; None: set aside."""
        stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else ""
        parts = stem.split("-")
        if len(parts) == 3 and all(part.isdigit() for part in parts) and os.path.isfile(path):
            self.next_sequence = max(self.next_sequence, int(parts[0]) + 1)
            return Entry(name, "", int(parts[1]), 0, int(parts[2]), os.path.getsize(path), None), False
        header = None
        size = 0
        if len(parts) == 1 and stem.isdigit() and os.path.isfile(path):
            self.next_sequence = max(self.next_sequence, int(stem) + 1)
            try:
                with open(path, "rb") as handle:
                    header = _parse_header(handle.readline(_HEADER_MAX).rstrip(b"\n"))
                size = os.path.getsize(path)
            except OSError:
                header = None
        if header is None:
            self._set_aside(name, 0, "not a spool entry of this collector")
            return None
        timestamp_ms, boot_ms, boot_id, samples, length, _, script = header
        if size - length <= 0 or size - length > _HEADER_MAX:
            self._set_aside(name, samples, "its frame does not check")
            return None
        earlier_boot = timestamp_ms == 0 and boot_id != self.boot_id
        return Entry(name, script, timestamp_ms, boot_ms, samples, length, None), earlier_boot

    def _set_aside(self, name: str, samples: int, why: str) -> None:
        """Move a damaged or foreign file to damaged/, once; it is never read again."""
        assert self.directory is not None
        aside = os.path.join(self.directory, DAMAGED_DIR)
        try:
            os.makedirs(aside, exist_ok=True)
            os.rename(os.path.join(self.directory, name), os.path.join(aside, name))
        except OSError as error:
            self.log.error("cannot move a damaged spool file aside", file=name, reason=error.strerror)
        self.damaged_samples += samples
        self.log.error(f"spool file set aside: {why}", file=name, samples=samples, moved_to=aside)
