"""One line per event on stderr: local time with its UTC offset (honours TZ), level, message, key=value fields.

Deliberately not the stdlib `logging` package: this runs on small boards and the collector needs one handler,
one format and no configuration; the whole module costs less memory than importing `logging`.
"""

from __future__ import annotations

import sys
import time

# `typing` costs the long-lived process resident memory and is needed for annotations only; mypy treats a
# name TYPE_CHECKING as true whatever it is bound to (bench/collector_bench.py measures the RSS; the table of
# changes in docs/performance.md has the figure).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TextIO

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    def __init__(
        self, *, level: str = "info", json_format: bool = False, stream: TextIO | None = None, progress: bool = False
    ) -> None:
        self.threshold = LEVELS[level]
        self.json_format = json_format
        self.stream = stream if stream is not None else sys.stderr
        # Someone watching a terminal sees each run; a pod's log keeps only what needs attention.
        self.progress_level = "info" if progress else "debug"

    def progress(self, message: str, **fields: object) -> None:
        """Routine progress (a successful run): info on a terminal, debug otherwise."""
        if self.threshold <= LEVELS[self.progress_level]:
            self._emit(self.progress_level, message, fields)

    def debug(self, message: str, **fields: object) -> None:
        if self.threshold <= 10:
            self._emit("debug", message, fields)

    def info(self, message: str, **fields: object) -> None:
        if self.threshold <= 20:
            self._emit("info", message, fields)

    def warning(self, message: str, **fields: object) -> None:
        if self.threshold <= 30:
            self._emit("warning", message, fields)

    def error(self, message: str, **fields: object) -> None:
        self._emit("error", message, fields)

    def _emit(self, level: str, message: str, fields: dict[str, object]) -> None:
        stamp = local_timestamp(time.time())
        if self.json_format:
            import json  # only paid for by users who ask for JSON

            record = {"time": stamp, "level": level, "msg": message, **{k: _jsonable(v) for k, v in fields.items()}}
            line = json.dumps(record, ensure_ascii=False)
        else:
            parts = [stamp, level.upper(), message]
            parts.extend(f"{key}={_quote(value)}" for key, value in fields.items())
            line = " ".join(parts)
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or full stderr must not stop the collector


def local_timestamp(epoch: float) -> str:
    """ISO 8601 in the local time zone with milliseconds and a `+08:00`-style offset."""
    local = time.localtime(epoch)
    offset = local.tm_gmtoff or 0
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    millis = int(epoch % 1 * 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{millis:03d}{sign}{hours:02d}:{minutes:02d}"


def _quote(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\n\\') and text.isprintable():
        return text
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    if not escaped.isprintable():
        # Script output lands here: a raw CR or terminal escape would forge or garble lines in `kubectl logs`.
        escaped = "".join(char if char.isprintable() else _escape_control(char) for char in escaped)
    return f'"{escaped}"'


def _escape_control(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _jsonable(value: object) -> object:
    return value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
