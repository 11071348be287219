"""Per-node limits of the gate: the limits file, and each node's series and rate accounting.

The limits file (`edge-metrics gate --limits`, written by tools/make-certs.sh as gate-limits.conf, the ConfigMap
central-gate-limits) has one line per node, `NODE [series=N] [rate=N] [bytes=N]`; what a line leaves out, and
every node without a line, takes the fleet default (the gate's --max-* flags). `#` starts a comment. A bad line
is reported with its file, line and reason and the node keeps the default: one typo never opens or closes the
centre to the whole fleet.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path

SERIES_WINDOW_SECONDS = 3600.0  # distinct series are counted per clock hour, as vmagent's hourly limit


@dataclass(frozen=True, slots=True)
class Limits:
    series_per_hour: int
    samples_per_second: float
    request_bytes: int


_KEYS = ("series", "rate", "bytes")


def _with(limits: Limits, key: str, value: float) -> Limits:
    if key == "series":
        return Limits(int(value), limits.samples_per_second, limits.request_bytes)
    if key == "rate":
        return Limits(limits.series_per_hour, value, limits.request_bytes)
    return Limits(limits.series_per_hour, limits.samples_per_second, int(value))


@dataclass(frozen=True, slots=True)
class LimitsFile:
    nodes: dict[str, Limits]
    problems: tuple[str, ...]  # `file:line: reason`, one per bad line


def parse_limits(text: str, path: Path, default: Limits) -> LimitsFile:
    nodes: dict[str, Limits] = {}
    problems: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.partition("#")[0].split()
        if not line:
            continue
        node, *settings = line
        limits = default
        try:
            for setting in settings:
                key, sep, value = setting.partition("=")
                if not sep or key not in _KEYS:
                    raise ValueError(f"{setting!r}: expected series=N, rate=N or bytes=N")
                number_value = float(value) if key == "rate" else int(value)
                if not number_value > 0:
                    raise ValueError(f"{setting!r}: must be more than 0")
                limits = _with(limits, key, number_value)
        except ValueError as error:
            reason = str(error)
            if "invalid literal" in reason or "could not convert" in reason:
                reason = f"{setting!r}: not a number"
            problems.append(f"{path}:{number}: {reason}; node {node} keeps the defaults")
            continue
        if node in nodes:
            problems.append(f"{path}:{number}: node {node} listed again; the later line counts")
        nodes[node] = limits
    return LimitsFile(nodes, tuple(problems))


class NodeState:
    """One node's accounting: distinct series in the current hour (bounded by its limit, so memory is too)
    and a token bucket of samples per second holding one second's worth."""

    def __init__(self, limits: Limits, now: float) -> None:
        self.limits = limits
        self.lock = threading.Lock()
        self.series: set[int] = set()
        self.window_start = now - now % SERIES_WINDOW_SECONDS
        self.tokens = limits.samples_per_second
        self.refilled = now

    def take_rate(self, samples: int, now: float) -> float | None:
        """None: admitted (the bucket may go into debt, so a request larger than one second's worth still
        passes once the bucket is full); else the seconds to wait before asking again."""
        with self.lock:
            rate = self.limits.samples_per_second
            self.tokens = min(rate, self.tokens + (now - self.refilled) * rate)
            self.refilled = now
            if self.tokens < min(samples, rate):
                return max(1.0, math.ceil((min(samples, rate) - self.tokens) / rate))
            self.tokens -= samples
            return None

    def admit_series(self, keys: list[int], now: float) -> list[bool]:
        """For each series key: known this hour, or new and within the limit (then remembered)."""
        with self.lock:
            if now - self.window_start >= SERIES_WINDOW_SECONDS:
                self.series = set()
                self.window_start = now - now % SERIES_WINDOW_SECONDS
            known, limit = self.series, self.limits.series_per_hour
            admitted = []
            for key in keys:
                if key in known:
                    admitted.append(True)
                elif len(known) < limit:
                    known.add(key)
                    admitted.append(True)
                else:
                    admitted.append(False)
            return admitted

    def series_count(self) -> int:
        with self.lock:
            return len(self.series)
