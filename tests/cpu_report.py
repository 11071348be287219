"""CPU-seconds beside wall seconds, per test file and for the run: whether more workers would pay.

Most of the suite waits (outages, restarts, `for:` durations), so workers overlap the waits; but on two cores a
run whose files together need about as many CPU-seconds as the cores give in its wall time cannot go faster
with more workers, only slower (timeouts). The terminal summary says which of the two a run was, and the files
that need the most CPU. Each worker counts its own CPU and that of the processes it started and waited for
(getrusage: a daemon a test starts and reaps is counted, a process left to init is not), so the figures are a
lower bound. Under xdist (`pytest -n N`, as `make test` runs) the workers send their counts to the controller at
the end, which prints them.
"""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from collections.abc import Generator
from typing import Any

import pytest

SHOWN_FILES = 12
_cpu: defaultdict[str, float] = defaultdict(float)  # file -> CPU-seconds, in this process
_wall: defaultdict[str, float] = defaultdict(float)  # file -> wall seconds
_workers_cpu: list[float] = []  # under xdist: each worker's CPU-seconds in all, collection and fixtures included
_started = time.monotonic()
_load_at_start = os.getloadavg()[0]


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    cpu, wall = _cpu_seconds(), time.monotonic()
    try:
        return (yield)
    finally:
        file = item.nodeid.split("::", 1)[0]
        _cpu[file] += _cpu_seconds() - cpu
        _wall[file] += time.monotonic() - wall


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller adds the counts up
        workeroutput["cpu_report"] = {"cpu": dict(_cpu), "wall": dict(_wall), "total": _cpu_seconds()}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    report = getattr(node, "workeroutput", {}).get("cpu_report")
    if report:
        for file, seconds in report["cpu"].items():
            _cpu[file] += seconds
        for file, seconds in report["wall"].items():
            _wall[file] += seconds
        _workers_cpu.append(report["total"])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not _workers_cpu:  # only under xdist (`make test`): the inner loop's output stays short
        return
    wall = time.monotonic() - _started
    cpu = sum(_workers_cpu)
    write = terminalreporter.write_line
    terminalreporter.section("CPU-seconds (tests/cpu_report.py)")
    write(f"{cpu:.0f} CPU-s in {wall:.0f} s wall: {cpu / wall:.2f} of {os.cpu_count()} cores busy on average "
          f"(load average {_load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)")
    for file, seconds in sorted(_cpu.items(), key=lambda item: -item[1])[:SHOWN_FILES]:
        write(f"{seconds:8.1f} CPU-s {_wall[file]:8.1f} s wall  {file}")
