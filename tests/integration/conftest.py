from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from tests.integration.support import SESSION_MARKER, marked_processes


@pytest.fixture(autouse=True)
def no_stray_script_processes() -> Iterator[None]:
    """Scripts run in sessions of their own, out of reach of the `procs` fixture's group kill: whatever they left
    running (a test that failed, a collector killed with SIGKILL) is killed after each test."""
    yield
    for pid, _ in marked_processes(SESSION_MARKER):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
