"""Push mode: each run's readings go to the node-local vmagent with the time they were read.

record() -> (held while the clock is not synchronised) -> stamped -> sent at once, or spooled when vmagent does
not answer -> flush() sends the spool in order. vmagent's /api/v1/import/prometheus takes Prometheus text with
millisecond timestamps and puts it on its disk queue like its own scrapes (docs/time.md).
"""

from __future__ import annotations

import time
from collections import deque

from edge_metrics.httppost import ERROR_CAUSES, Endpoint, PushError, parse_url, post
from edge_metrics.render import escape_help, format_value, render_labels
from edge_metrics.samples import Sample, Value

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Final

    from edge_metrics.clock import ClockReading, Timekeeper
    from edge_metrics.log import Logger
    from edge_metrics.samples import Metadata
    from edge_metrics.spool import Entry, Spool

BATCH_BYTES = 256 * 1024  # one POST carries up to this much of a backlog
RETRY_MIN, RETRY_MAX = 1.0, 8.0  # back-off between attempts while vmagent does not answer, seconds
HELD_CHECK_SECONDS = 1.0  # how often held readings look at the clock again between runs
HOLD_LIMIT_SAMPLES = 50_000  # readings held in memory while the clock is not synchronised (~50 bytes each)
DROP_REASONS = ("spool_full", "clock_hold_limit", "clock_step", "rejected")


class PushSettings(Value):
    """--push-url, --spool-dir, --spool-max-bytes."""

    __slots__ = ("spool_dir", "spool_max_bytes", "url")
    url: Final[str]
    spool_dir: Final[str | None]  # None: the spool is in memory and lost with the collector
    spool_max_bytes: Final[int]

    def __init__(self, url: str, spool_dir: str | None, spool_max_bytes: int) -> None:
        self.url = url
        self.spool_dir = spool_dir
        self.spool_max_bytes = spool_max_bytes


def make_pusher(settings: PushSettings, timekeeper: Timekeeper, log: Logger) -> Pusher:
    from edge_metrics.spool import Spool

    log.info("push mode: readings go to vmagent with their own time", url=settings.url,
             spool=settings.spool_dir or "memory", spool_max_bytes=settings.spool_max_bytes)
    spool = Spool(settings.spool_dir, settings.spool_max_bytes, log)
    return Pusher(parse_url(settings.url), spool, timekeeper, log)


def render_lines(samples: tuple[Sample, ...], metadata: Mapping[str, Metadata] | None = None) -> bytes:
    """One run's samples in Prometheus text, one `series value` line each, still without a timestamp; the HELP
    and TYPE the script declared go before the first line of their family."""
    if not metadata:
        return "".join([f"{s.name}{render_labels(s.labels)} {format_value(s.value)}\n" for s in samples]).encode()
    lines: list[str] = []
    described: set[str] = set()
    for s in samples:
        declared = metadata.get(s.name)
        if declared is not None and s.name not in described:
            described.add(s.name)
            if declared.help is not None:
                lines.append(f"# HELP {s.name} {escape_help(declared.help)}\n")
            if declared.type is not None:
                lines.append(f"# TYPE {s.name} {declared.type}\n")
        lines.append(f"{s.name}{render_labels(s.labels)} {format_value(s.value)}\n")
    return "".join(lines).encode()


def stamp_lines(lines: bytes, timestamp_ms: int) -> bytes:
    """Every series line with the run's millisecond timestamp: a 13-digit number (CLOCK_FLOOR), never a small
    integer, which vmagent would take as seconds. A label value cannot hold a raw newline (it is escaped), so a
    line that starts with `#` is a HELP or TYPE line, which takes none."""
    if not lines.startswith(b"#") and b"\n#" not in lines:
        return lines.replace(b"\n", b" %d\n" % timestamp_ms)
    stamp = b" %d" % timestamp_ms
    return b"".join(line + b"\n" if line.startswith(b"#") else line + stamp + b"\n"
                    for line in lines.split(b"\n")[:-1])


class _Held(Value):
    """A run's readings kept, rendered (a few dozen bytes a sample), until the clock can stamp them."""

    __slots__ = ("boot", "lines", "samples", "script")
    script: Final[str]
    boot: Final[float]  # CLOCK_BOOTTIME when the run started
    samples: Final[int]
    lines: Final[bytes]  # render_lines()

    def __init__(self, script: str, boot: float, samples: int, lines: bytes) -> None:
        self.script = script
        self.boot = boot
        self.samples = samples
        self.lines = lines


class Pusher:
    """Holds, stamps, sends and spools readings; its counters are the edge_collector_push_* self-metrics."""

    def __init__(self, endpoint: Endpoint, spool: Spool, timekeeper: Timekeeper, log: Logger,
                 *, hold_limit: int = HOLD_LIMIT_SAMPLES) -> None:
        self.endpoint = endpoint
        self.spool = spool
        self.timekeeper = timekeeper
        self.log = log
        self.hold_limit = hold_limit
        self.held: deque[_Held] = deque()
        self.held_samples = 0
        self.sent_samples = 0
        self.last_success: float | None = None
        self.errors = dict.fromkeys(ERROR_CAUSES, 0)
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.retry_at = 0.0  # boot time of the next attempt while vmagent does not answer
        self.backoff = RETRY_MIN
        self.failed_attempts = 0  # in a row, since the last success
        self.last_stamp: dict[str, int] = {}  # per script: two runs never share a millisecond

    # -- readings in ---------------------------------------------------------------------------------------

    def record(self, script: str, samples: tuple[Sample, ...], started: ClockReading,
               metadata: Mapping[str, Metadata] | None = None) -> None:
        """A run's readings, with the clock as it was when the run started (the reading's time)."""
        if not samples:
            return
        lines = render_lines(samples, metadata)
        if started.synchronized and not self.held:
            self._stamp(script, len(samples), lines, started.wall, held_for=0.0)
            return
        if not self.held:
            self.log.warning("clock not synchronised: holding readings until it is", script=script,
                             limit_samples=self.hold_limit)
        self.held.append(_Held(script, started.boot, len(samples), lines))
        self.held_samples += len(samples)
        while self.held_samples > self.hold_limit:
            oldest = self.held.popleft()
            self.held_samples -= oldest.samples
            self.dropped["clock_hold_limit"] += oldest.samples
            self.log.warning("clock still not synchronised: held readings over the limit dropped",
                             script=oldest.script, samples=oldest.samples, limit=self.hold_limit)

    def _release_held(self, now: ClockReading) -> None:
        """The clock is synchronised: each held run gets wall time now minus the time since it ran."""
        held, self.held, self.held_samples = self.held, deque(), 0
        for run in held:
            self._stamp(run.script, run.samples, run.lines, now.wall - (now.boot - run.boot),
                        held_for=now.boot - run.boot)
        self.log.info("clock synchronised: held readings stamped", runs=len(held))

    def _stamp(self, script: str, samples: int, lines: bytes, wall: float, *, held_for: float) -> None:
        timestamp_ms = int(wall * 1000)
        previous = self.last_stamp.get(script)
        if previous is not None and timestamp_ms <= previous and timestamp_ms > previous - 1000:
            # Two runs within one millisecond (or a sub-second slew back): a second value at the same time would be
            # refused by Prometheus as a conflicting duplicate.
            timestamp_ms = previous + 1
        self.last_stamp[script] = timestamp_ms
        self.log.debug("readings stamped", script=script, timestamp_ms=timestamp_ms, samples=samples,
                       held_seconds=f"{held_for:.3f}")
        self.spool.append(timestamp_ms, samples, stamp_lines(lines, timestamp_ms))

    # -- readings out --------------------------------------------------------------------------------------

    def due(self) -> bool:
        """Whether flush() has something to try now (readings waiting, the back-off over)."""
        return bool(self.spool.entries or self.held) and _boot_time() >= self.retry_at

    def retry_in(self) -> float | None:
        """Seconds until flush() has something to try (a back-off, or held readings to re-check), or None."""
        if self.spool.entries:
            return max(0.0, self.retry_at - _boot_time())
        return HELD_CHECK_SECONDS if self.held else None

    def stop(self) -> None:
        """At shutdown: one last attempt; say what is lost (held readings, an in-memory spool)."""
        self.flush(force=True)
        lost = self.held_samples + (self.spool.samples if self.spool.directory is None else 0)
        if lost:
            self.log.warning("readings not pushed are lost with this collector", samples=lost,
                             held=self.held_samples, hint="--spool-dir keeps the spooled ones across a restart")
        elif self.spool.samples:
            self.log.info("readings kept in the spool for the next start", samples=self.spool.samples)

    def flush(self, *, force: bool = False) -> None:
        """Send what is queued, oldest first, until vmagent stops answering; back off after a failure. What is
        left goes to disk."""
        try:
            self._send_queued(force=force)
        finally:
            if self.spool.entries:
                self.spool.persist()

    def _send_queued(self, *, force: bool) -> None:
        now = self.timekeeper.read()
        if self.held and now.synchronized:
            self._release_held(now)
        now_ms = now.wall * 1000
        self._drop_future(now_ms)  # at every look, back-off or not: the spool's gauges must not count them
        if not force and now.boot < self.retry_at:
            return
        while True:
            self._drop_future(now_ms)
            batch, body = self._next_batch(now_ms)
            if not batch:
                return
            try:
                post(self.endpoint, body)
            except PushError as error:
                self.errors[error.cause] += 1
                if error.cause == "http_4xx":
                    # vmagent refuses these bytes and would refuse them again: drop them, do not wedge the queue.
                    self._drop(batch, "rejected")
                    self.log.error("vmagent refused readings; dropped", reason=str(error), samples=_count(batch))
                    continue
                self.retry_at = now.boot + self.backoff
                # The first failure of a streak is a warning; the retries (every RETRY_MAX at most) only at debug.
                log = self.log.warning if self.failed_attempts == 0 else self.log.debug
                log("cannot push readings; kept in the spool", cause=error.cause, reason=str(error),
                    spooled_samples=self.spool.samples, retry_in=f"{self.backoff:g}s")
                self.failed_attempts += 1
                self.backoff = min(self.backoff * 2, RETRY_MAX)
                return
            for entry in batch:
                self.spool.remove(entry)
            self.sent_samples += _count(batch)
            self.last_success = now.wall
            if self.failed_attempts:
                self.log.info("pushing readings again", failed_attempts=self.failed_attempts,
                              spooled_samples=self.spool.samples)
            self.failed_attempts = 0
            self.backoff = RETRY_MIN
            self.retry_at = 0.0

    def _next_batch(self, now_ms: float) -> tuple[list[Entry], bytes]:
        """The oldest entries, up to BATCH_BYTES, stopping before one stamped ahead of the clock."""
        batch: list[Entry] = []
        parts: list[bytes] = []
        size = 0
        entries = self.spool.entries
        while len(batch) < len(entries):
            entry = entries[len(batch)]  # a deque indexes cheaply near its head
            if entry.timestamp_ms > now_ms or (batch and size + entry.size > BATCH_BYTES):
                break
            data = self.spool.read(entry)
            if data is None:
                if batch:
                    break
                self._drop([entry], "rejected")  # an unreadable head (logged): carry on with the next
                continue
            batch.append(entry)
            parts.append(data)
            size += len(data)
        return batch, b"".join(parts)

    def _drop_future(self, now_ms: float) -> None:
        future = []
        while self.spool.entries and self.spool.entries[0].timestamp_ms > now_ms:
            future.append(self.spool.entries[0])
            self.spool.remove(self.spool.entries[0])
        if future:
            self.dropped["clock_step"] += _count(future)
            self.log.warning("readings stamped ahead of the clock (it stepped back since): dropped",
                             samples=_count(future), ahead_seconds=f"{(future[-1].timestamp_ms - now_ms) / 1000:.3f}")

    def _drop(self, batch: list[Entry], reason: str) -> None:
        for entry in batch:
            self.spool.remove(entry)
        self.dropped[reason] += _count(batch)


def _boot_time() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)  # the clock of ClockReading.boot


def _count(entries: list[Entry]) -> int:
    return sum([entry.samples for entry in entries])
