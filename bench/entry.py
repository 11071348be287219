"""What every benchmark's entry point does alike: the load average its tables are read against, SIGTERM ending
the run through its finally blocks (so that every process it started is stopped), and how long the run took."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import NoReturn


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as the docs' tables quote them."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def stop_on_sigterm() -> None:
    signal.signal(signal.SIGTERM, _exit)


def _exit(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # the finally blocks stop every process


def run(main: Callable[[Sequence[str]], int]) -> NoReturn:
    """`main` on the command line's arguments; then how long it took, and its exit code."""
    started = time.monotonic()
    code = main(sys.argv[1:])
    print(f"# took {time.monotonic() - started:.0f} s")
    sys.exit(code)
