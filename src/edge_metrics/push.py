"""Push mode: each run's readings go to the node-local vmagent with the time they were read.

record() -> spooled (on disk before the run counts as taken; held, with their boot time, while the clock is not
synchronised) -> stamped -> sent by the sender thread, beside the schedule, oldest first. Taking readings never
waits on the network: the daemon's loop only records and wakes the sender. vmagent's /api/v1/import/prometheus
takes Prometheus text with millisecond timestamps and puts it on its disk queue like its own scrapes
(docs/time.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from edge_metrics.httppost import ERROR_CAUSES, SEND_TIMEOUT, Endpoint, PushError, parse_url, post
from edge_metrics.render import header, render_labels, sample_line, stamp_lines
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
TIMEOUT_MAX = 60.0  # a late answer lengthens the next attempt's deadline up to this, so a slow vmagent is not
# sent the same batch again and again
HELD_CHECK_SECONDS = 1.0  # how often held readings look at the clock again between runs
HOLD_LIMIT_SAMPLES = 50_000  # readings held while the clock is not synchronised
STOP_GRACE = 0.5  # seconds the sender gets at shutdown to finish the request it is in
# Every reason of edge_collector_push_dropped_samples_total; the spool counts its own (SPOOL_DROP_REASONS).
DROP_REASONS = ("spool_full", "clock_hold_limit", "clock_step", "rejected", "damaged", "held_reboot",
                "unsaved_at_exit")
SPOOL_DROP_REASONS = ("spool_full", "damaged", "held_reboot")

Post = Callable[[Endpoint, bytes, float], int]


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
    """One run's samples in Prometheus text, one series line each, still without a timestamp (stamp_lines adds
    it); the HELP and TYPE the script declared go before the first line of their family."""
    lines: list[str] = []
    undescribed = dict(metadata) if metadata else None  # declarations whose header is not written yet
    for s in samples:
        declared = undescribed.pop(s.name, None) if undescribed else None
        if declared is not None and (declared.help is not None or declared.type is not None):
            lines.append(header(s.name, declared.help, declared.type))
        lines.append(sample_line(s.name, render_labels(s.labels), s.value))
    lines.append("")
    return "\n".join(lines).encode()


def _boot_time() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)  # the clock of ClockReading.boot


class Pusher:
    """Holds, stamps, spools and sends readings; its counters are the edge_collector_push_* self-metrics.

    The daemon's thread calls record() and tick(); the sender thread (start()) calls drain(). One lock guards
    the spool and the counters; no network call is made while it is held."""

    def __init__(self, endpoint: Endpoint, spool: Spool, timekeeper: Timekeeper, log: Logger, *,
                 hold_limit: int = HOLD_LIMIT_SAMPLES, send: Post = post,
                 boot_clock: Callable[[], float] = _boot_time) -> None:
        self.endpoint = endpoint
        self.spool = spool
        self.timekeeper = timekeeper
        self.log = log
        self.hold_limit = hold_limit
        self.send = send
        self.boot_clock = boot_clock
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = False
        self.thread: threading.Thread | None = None
        self.sent_samples = 0
        self.resent_samples = 0  # sent again after an attempt that went out but got no answer in time
        self.unanswered: set[str] = set()  # entries of such attempts, by file name
        self.in_flight: frozenset[str] = frozenset()  # the batch being sent, by file name: never dropped for room
        self.last_success: float | None = None
        self.errors = dict.fromkeys(ERROR_CAUSES, 0)
        self.dropped = {reason: 0 for reason in DROP_REASONS if reason not in SPOOL_DROP_REASONS}
        self.backoff = RETRY_MIN
        self.timeout = SEND_TIMEOUT
        self.failed_attempts = 0  # in a row, since the last success
        self.last_stamp: dict[str, int] = {}  # per script: two runs never share a millisecond
        self.clock: ClockReading | None = None  # the daemon's last reading, for the sender's idea of now

    @property
    def held_samples(self) -> int:
        return self.spool.held_samples

    def dropped_by_reason(self) -> dict[str, int]:
        """edge_collector_push_dropped_samples_total: the pusher's reasons and the spool's."""
        spool = self.spool
        return {**self.dropped, "spool_full": spool.dropped_samples, "damaged": spool.damaged_samples,
                "held_reboot": spool.reboot_samples}

    # -- readings in (the daemon's thread) -------------------------------------------------------------------

    def record(self, script: str, samples: tuple[Sample, ...], started: ClockReading,
               metadata: Mapping[str, Metadata] | None = None) -> bool:
        """A run's readings, with the clock as it was when the run started (the reading's time). True when they
        are on disk (or the spool is in memory by choice); False: the disk refused them, they wait in memory."""
        if not samples:
            return True
        lines = render_lines(samples, metadata)
        with self.lock:
            if started.synchronized and not self.spool.held_samples:
                durable = self._stamp(script, len(samples), lines, started.wall, held_for=0.0)
            else:
                if not self.spool.held_samples:
                    self.log.warning("clock not synchronised: holding readings until it is", script=script,
                                     limit_samples=self.hold_limit)
                durable = self.spool.append(script, 0, len(samples), lines, boot_ms=round(started.boot * 1000),
                                            keep=self.in_flight)
                self._bound_held()
        self.wake.set()
        return durable

    def _bound_held(self) -> None:
        while self.spool.held_samples > self.hold_limit:
            oldest = next(entry for entry in self.spool.entries if entry.held)
            self.spool.remove(oldest)
            self.dropped["clock_hold_limit"] += oldest.samples
            self.log.warning("clock still not synchronised: held readings over the limit dropped",
                             script=oldest.script, samples=oldest.samples, limit=self.hold_limit)

    def _stamp(self, script: str, samples: int, lines: bytes, wall: float, *, held_for: float,
               held: Entry | None = None) -> bool:
        timestamp_ms = int(wall * 1000)
        previous = self.last_stamp.get(script)
        if previous is not None and timestamp_ms <= previous and timestamp_ms > previous - 1000:
            # Two runs within one millisecond (or a sub-second slew back): a second value at the same time would be
            # refused by Prometheus as a conflicting duplicate.
            timestamp_ms = previous + 1
        self.last_stamp[script] = timestamp_ms
        stamped = stamp_lines(lines, timestamp_ms)
        durable = True
        if held is None:
            durable = self.spool.append(script, timestamp_ms, samples, stamped, keep=self.in_flight)
        else:
            self.spool.replace(held, timestamp_ms, stamped)
        self.log.debug("readings stamped", script=script, timestamp_ms=timestamp_ms, samples=samples,
                       held_seconds=f"{held_for:.3f}")
        return durable

    def tick(self) -> None:
        """The daemon's look at the clock: stamp held readings once it is synchronised, drop readings stamped
        ahead of a clock that stepped back, and let the sender know what time it is."""
        now = self.timekeeper.read()
        with self.lock:
            self.clock = now
            if self.spool.held_samples and now.synchronized:
                self._release_held(now)
            self._drop_future(now.wall * 1000)
            if self.spool.disk_refused:
                self.spool.persist()  # what a full disk refused earlier, again
        if self.spool.entries:
            self.wake.set()

    def _release_held(self, now: ClockReading) -> None:
        """The clock is synchronised: each held run gets wall time now minus the time since it ran."""
        held = [entry for entry in self.spool.entries if entry.held]
        for entry in held:
            lines = self.spool.read(entry)
            if lines is None:
                self.spool.remove(entry)
                continue
            since = now.boot - entry.boot_ms / 1000
            self._stamp(entry.script, entry.samples, lines, now.wall - since, held_for=since, held=entry)
        self.log.info("clock synchronised: held readings stamped", runs=len(held))

    def next_check(self) -> float | None:
        """Seconds until tick() has something to do (held readings to look at again), or None."""
        return HELD_CHECK_SECONDS if self.spool.held_samples or self.spool.disk_refused else None

    # -- readings out (the sender) ---------------------------------------------------------------------------

    def start(self) -> None:
        """Send beside the schedule, in a thread of its own."""
        self.tick()  # the sender's idea of now comes from the daemon's clock (never ahead of it, never behind)
        self.thread = threading.Thread(target=self._sender, name="push", daemon=True)
        self.thread.start()

    def _sender(self) -> None:
        while not self.stopping:
            delay = self.drain()
            if delay is None:
                self.wake.wait()  # until the next run is recorded
                self.wake.clear()
            else:
                self._back_off(delay)

    def _back_off(self, delay: float) -> None:
        # Runs recorded meanwhile do not cut the wait short: an attempt per run would re-read the whole backlog
        # from disk at every run of an outage. Only stop() does.
        until = self.boot_clock() + delay
        while not self.stopping and (left := until - self.boot_clock()) > 0:
            self.wake.wait(left)
            self.wake.clear()

    def drain(self, *, until: float | None = None) -> float | None:
        """Send what is queued, oldest first, until nothing is left (None) or vmagent does not answer (the
        seconds to back off); with `until` (boot time), no attempt runs past it."""
        while not self.stopping or until is not None:
            with self.lock:
                now_ms = self._now_ms()
                self._drop_future(now_ms)
                batch, parts = self._next_batch(now_ms)
                self.in_flight = frozenset(entry.name for entry in batch)
            try:
                if not batch:
                    return None
                timeout = self.timeout
                if until is not None:
                    timeout = min(timeout, until - self.boot_clock())
                    if timeout <= 0:
                        return 0.0
                error = self._send(batch, parts, timeout)
            finally:
                with self.lock:
                    self.in_flight = frozenset()
            if error is not None:
                return self._failed(error)
        return None

    def _send(self, batch: list[Entry], parts: list[bytes], timeout: float) -> PushError | None:
        """POST the batch; a 4xx is split down to single runs, so only what vmagent refuses is dropped."""
        started = self.boot_clock()
        try:
            self.send(self.endpoint, b"".join(parts), timeout)
        except PushError as raised:
            # Returned, an exception keeps its traceback's frames, and through them this batch, alive in a
            # reference cycle until the cyclic collector runs: memory grew with every attempt of an outage.
            error = raised.with_traceback(None)
            error.__context__ = None
            with self.lock:
                self.errors[error.cause] += 1
                if error.cause != "http_4xx":
                    if error.sent:
                        self.unanswered.update(entry.name for entry in batch)
                    return error
                if len(batch) == 1:
                    self._drop(batch, "rejected")
                    self.log.error("vmagent refused readings; dropped", reason=str(error), samples=_count(batch),
                                   script=batch[0].script)
                    return None
            half = len(batch) // 2
            return self._send(batch[:half], parts[:half], timeout) or self._send(batch[half:], parts[half:], timeout)
        elapsed = self.boot_clock() - started
        with self.lock:
            for entry in batch:
                if self._at_head(entry):  # not dropped meanwhile (a full spool)
                    self.spool.remove(entry)
                    self.sent_samples += entry.samples
                if entry.name in self.unanswered:
                    self.unanswered.discard(entry.name)
                    self.resent_samples += entry.samples
            self.last_success = self.clock.wall + (self.boot_clock() - self.clock.boot) if self.clock else time.time()
            if self.failed_attempts:
                self.log.info("pushing readings again", failed_attempts=self.failed_attempts,
                              spooled_samples=self.spool.samples)
            self.failed_attempts = 0
            self.backoff = RETRY_MIN
            # A slow answer keeps the longer deadline it earned; a quick one brings it back down.
            self.timeout = max(SEND_TIMEOUT, min(self.timeout, 4 * elapsed))
        return None

    def _failed(self, error: PushError) -> float:
        with self.lock:
            delay = self.backoff
            if error.cause == "timeout" and error.sent:
                self.timeout = min(self.timeout * 2, TIMEOUT_MAX)  # late, not absent: wait longer next time
            # The first failure of a streak is a warning; the retries (every RETRY_MAX at most) only at debug.
            log = self.log.warning if self.failed_attempts == 0 else self.log.debug
            log("cannot push readings; kept in the spool", cause=error.cause, reason=str(error),
                spooled_samples=self.spool.samples, retry_in=f"{delay:g}s")
            self.failed_attempts += 1
            self.backoff = min(self.backoff * 2, RETRY_MAX)
        return delay

    def _now_ms(self) -> float:
        clock = self.clock
        if clock is None:
            return time.time() * 1000
        return (clock.wall + self.boot_clock() - clock.boot) * 1000

    def _next_batch(self, now_ms: float) -> tuple[list[Entry], list[bytes]]:
        """The oldest entries, up to BATCH_BYTES, stopping before a held one or one stamped ahead of the clock."""
        batch: list[Entry] = []
        parts: list[bytes] = []
        size = 0
        entries = self.spool.entries
        while len(batch) < len(entries):
            entry = entries[len(batch)]  # a deque indexes cheaply near its head
            if entry.held or entry.timestamp_ms > now_ms or (batch and size + entry.size > BATCH_BYTES):
                break
            data = self.spool.read(entry)
            if data is None:  # damaged: set aside and counted by the spool
                self.spool.remove(entry)
                continue
            batch.append(entry)
            parts.append(data)
            size += len(data)
        return batch, parts

    def _drop_future(self, now_ms: float) -> None:
        future = []
        entries = self.spool.entries
        while entries and not entries[0].held and entries[0].timestamp_ms > now_ms:
            future.append(entries[0])
            self.spool.remove(entries[0])
        if future:
            self.dropped["clock_step"] += _count(future)
            self.log.warning("readings stamped ahead of the clock (it stepped back since): dropped",
                             samples=_count(future), ahead_seconds=f"{(future[-1].timestamp_ms - now_ms) / 1000:.3f}")

    def _drop(self, batch: list[Entry], reason: str) -> None:
        for entry in batch:
            if self._at_head(entry):
                self.spool.remove(entry)
                self.dropped[reason] += entry.samples

    def _at_head(self, entry: Entry) -> bool:
        # A batch is taken from the head and only the head is ever dropped: an entry of it is either still first
        # in line or gone.
        entries = self.spool.entries
        return bool(entries) and entries[0] is entry

    # -- shutdown --------------------------------------------------------------------------------------------

    def stop(self, *, grace: float = STOP_GRACE) -> None:
        """At shutdown, within `grace`: the sender's last attempt; what is not on disk is said, and counted."""
        until = self.boot_clock() + grace
        self.tick()
        self.stopping = True
        self.wake.set()
        if self.thread is not None:
            self.thread.join(max(0.0, until - self.boot_clock()))
        if self.thread is None or not self.thread.is_alive():
            # The last runs, sent here within what is left of the grace; not while the sender is still in a
            # request (vmagent hung), which would send the same readings twice.
            self.drain(until=until)
        with self.lock:
            unsaved = self.spool.persist()
            held = self.spool.held_samples if self.spool.directory is None else 0
            if unsaved:
                self.dropped["unsaved_at_exit"] += unsaved
                where = "--spool-dir keeps them across a restart" if self.spool.directory is None else \
                    "the spool's disk refused them"
                self.log.warning("readings not pushed are lost with this collector", samples=unsaved, held=held,
                                 hint=where)
            elif self.spool.samples:
                self.log.info("readings kept in the spool for the next start", samples=self.spool.samples,
                              held=self.spool.held_samples)


def _count(entries: list[Entry]) -> int:
    return sum([entry.samples for entry in entries])
