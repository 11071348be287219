"""The edge clock: is it synchronised (adjtimex, read-only), what time is it, and did it just step.

A reading is stamped with the wall clock only when the kernel says that clock is synchronised; the time since
boot (CLOCK_BOOTTIME, which keeps counting through a suspend) is what a held reading keeps until then
(docs/time.md). `EDGE_CLOCK_TEST_FILE` replaces the kernel's answer, for tests only.
"""

from __future__ import annotations

import ctypes  # adjtimex(2); costs less memory than a subprocess or a dependency
import os
import time

from edge_metrics.samples import Value

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Final

    from edge_metrics.log import Logger

TEST_FILE_ENV = "EDGE_CLOCK_TEST_FILE"
# A wall clock before this (2025-01-01 UTC) is wrong whatever adjtimex says: a board that booted at 1970 or at
# the date of its image, before NTP. systemd keeps a similar floor (its build time).
CLOCK_FLOOR = 1_735_689_600.0
STEP_SECONDS = 1.0  # a change of (wall - boot time) beyond this between two reads is a step, not a slew
SLEW_RATE = 0.0005  # the kernel slews at most 500 ppm: a longer gap between reads may drift that much more

_STA_UNSYNC = 0x0040
_TIME_ERROR = 5


class ClockReading(Value):
    """The clock as the collector saw it at one moment."""

    __slots__ = ("boot", "esterror", "maxerror", "synchronized", "wall")
    wall: Final[float]  # Unix time, seconds
    boot: Final[float]  # seconds since boot (CLOCK_BOOTTIME)
    synchronized: Final[bool]  # the kernel's verdict, and the wall clock past CLOCK_FLOOR
    esterror: Final[float]  # the kernel's estimated error, seconds
    maxerror: Final[float]  # the kernel's maximum error, seconds

    def __init__(self, wall: float, boot: float, synchronized: bool, esterror: float, maxerror: float) -> None:
        self.wall = wall
        self.boot = boot
        self.synchronized = synchronized
        self.esterror = esterror
        self.maxerror = maxerror


def read_clock(*, trust_unsynchronized: bool = False) -> ClockReading:
    """The kernel clock now; from the file named by EDGE_CLOCK_TEST_FILE when that is set (tests only).

    `trust_unsynchronized` (--clock-check none): for hosts whose clock is kept right by something that does not
    tell the kernel (a hypervisor's time sync): the wall clock counts as synchronised once past CLOCK_FLOOR."""
    boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    wall = time.time()
    test_file = os.environ.get(TEST_FILE_ENV)
    if test_file:
        synchronized, offset, esterror, maxerror = _test_clock(test_file)
        wall += offset
    else:
        synchronized, esterror, maxerror = adjtimex()
    return ClockReading(wall, boot, (synchronized or trust_unsynchronized) and wall >= CLOCK_FLOOR, esterror, maxerror)


def adjtimex() -> tuple[bool, float, float]:
    """(synchronised, estimated error s, maximum error s) from adjtimex(2) with modes=0: reads only, no privilege."""
    timex = _Timex()  # modes=0: nothing is changed
    state = _adjtimex(timex)
    if state < 0:
        return False, 0.0, 0.0
    synchronized = state != _TIME_ERROR and not timex.status & _STA_UNSYNC
    return bool(synchronized), timex.esterror / 1e6, timex.maxerror / 1e6


def _test_clock(path: str) -> tuple[bool, float, float, float]:
    """`synchronized=0|1`, `offset_seconds=S` (added to the wall clock), `esterror_seconds=S`, `maxerror_seconds=S`,
    one per line; what is missing keeps its default (synchronised, no offset, no error). Unreadable: unsynchronised."""
    values = {"synchronized": "1", "offset_seconds": "0", "esterror_seconds": "0", "maxerror_seconds": "0"}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition("=")
                if key.strip() in values:
                    values[key.strip()] = value.strip()
        return (
            values["synchronized"] == "1",
            float(values["offset_seconds"]),
            float(values["esterror_seconds"]),
            float(values["maxerror_seconds"]),
        )
    except (OSError, ValueError):
        return False, 0.0, 0.0, 0.0


class Timekeeper:
    """Reads the clock for the collector and notices steps of the wall clock and changes of synchronisation."""

    def __init__(self, log: Logger, source: Callable[[], ClockReading] = read_clock) -> None:
        self.log = log
        self.source = source
        self.steps = 0
        self.last: ClockReading | None = None

    def read(self) -> ClockReading:
        now = self.source()
        last = self.last
        self.last = now
        if last is None:
            if not now.synchronized:
                self.log.warning("clock not synchronised", wall=_iso(now.wall), maxerror_seconds=now.maxerror)
            return now
        step = (now.wall - now.boot) - (last.wall - last.boot)
        if abs(step) > STEP_SECONDS + SLEW_RATE * (now.boot - last.boot):
            self.steps += 1
            self.log.warning("wall clock stepped", by_seconds=f"{step:+.3f}", now=_iso(now.wall),
                             synchronized=int(now.synchronized))
        if now.synchronized != last.synchronized:
            if now.synchronized:
                self.log.info("clock synchronised", wall=_iso(now.wall), esterror_seconds=now.esterror)
            else:
                self.log.warning("clock no longer synchronised", wall=_iso(now.wall), maxerror_seconds=now.maxerror)
        return now


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class _Timex(ctypes.Structure):
    """struct timex as <sys/timex.h> lays it out on Linux (natural alignment pads after the ints)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long), ("time_usec", ctypes.c_long), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("reserved", ctypes.c_int * 11),
    ]


_libc: list[ctypes.CDLL] = []  # loaded at the first adjtimex() call


def _adjtimex(timex: _Timex) -> int:
    if not _libc:
        _libc.append(ctypes.CDLL(None, use_errno=True))
    return int(_libc[0].adjtimex(ctypes.byref(timex)))
