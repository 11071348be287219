from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests import cpu_report, schedule
from tests.helpers import Processes, processes

# A suite started in the background of a non-interactive shell (`nohup make test &`) inherits SIGINT
# ignored, and so would every program it starts: bash cannot even trap a signal ignored on entry, so the
# demo's Ctrl-C test would see Ctrl-C do nothing. With a handler here, children start with the default,
# as from a terminal.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(cpu_report, "cpu_report")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """Under `--dist loadfile` (make test), the costliest files go out first (tests/schedule.py)."""
    return schedule.make_scheduler(config, log) if config.getvalue("dist") == "loadfile" else None


@pytest.fixture
def procs() -> Iterator[Processes]:
    """Real processes, each in its own process group, all killed at teardown even when the test fails."""
    with processes() as group:
        yield group
