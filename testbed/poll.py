"""Waiting for a condition with a deadline: the one poll of the tests, the benchmarks and the demo."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
    log: Path | None = None,
    retry_on: tuple[type[Exception], ...] = (Exception,),
) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds. A probe that
    raises one of `retry_on` counts as not yet (a service may refuse connections while it starts; a benchmark
    passes `()` so that a dead daemon ends the wait at once); the last error and, with `log`, that file's text
    (the program's own account) go into the TimeoutError."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except retry_on as error:
            last_error = error
        if time.monotonic() > deadline:
            detail = f"\n{log.read_text()}" if log is not None and log.exists() else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_error!r}){detail}")
        time.sleep(interval)
