"""Go-style durations (`500ms`, `10s`, `1m30s`, `2h`), as Prometheus and Kubernetes users write them."""

from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


class DurationError(ValueError):
    """The text is not a positive Go-style duration."""


def parse_duration(text: str) -> float:
    """Seconds in `text`; raises DurationError naming what is wrong."""
    if not text:
        raise DurationError("empty duration")
    position = 0
    seconds = 0.0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            raise DurationError(f"invalid duration {text!r} (expected e.g. 500ms, 10s, 1m30s, 2h)")
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if seconds <= 0:
        raise DurationError(f"duration {text!r} must be positive")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of `seconds`, for logs and plans: 90 -> 1m30s, 0.5 -> 500ms."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = ""
    if hours:
        text += f"{int(hours)}h"
    if minutes:
        text += f"{int(minutes)}m"
    if secs or not text:
        text += f"{secs:g}s"
    return text
