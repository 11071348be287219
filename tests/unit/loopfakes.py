"""Fakes that drive the daemon's loop in-process: a clock that only moves when told, a runner with canned
durations, a writer that keeps what it was given. No process, no sleep: a test of minutes of schedule runs in
milliseconds."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Callable
from pathlib import Path

from edge_metrics.clock import ClockReading
from edge_metrics.daemon import Wakeup, serve
from edge_metrics.log import Logger
from edge_metrics.node import Collector, Settings
from edge_metrics.push import Pusher
from edge_metrics.runner import RunLimits
from edge_metrics.samples import RunResult
from tests.helpers import write_script

NOW = 1_800_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0  # monotonic and boot time alike

    def __call__(self) -> float:
        return self.now

    def reading(self, synchronized: bool = True) -> ClockReading:
        return ClockReading(NOW + self.now, self.now, synchronized, 0.0, 0.0)


def result(duration: float, stdout: bytes = b"v=1\n", *, cancelled: bool = False) -> RunResult:
    return RunResult(None if cancelled else 0, None, False, cancelled, duration, stdout, b"", False)


class FakeRunner:
    """Each run takes `durations[script]` seconds of the fake clock and prints `v=<n>`; `during` (if set) is
    called in the middle of a run with the run's number, as a signal or a fault would arrive."""

    def __init__(self, clock: FakeClock, durations: dict[str, float]) -> None:
        self.clock = clock
        self.durations = durations
        self.starts: list[tuple[str, float]] = []
        self.during: Callable[[int], None] | None = None

    def __call__(self, path: Path, *, should_cancel: Callable[[], bool], **_: object) -> RunResult:
        script = path.name.removesuffix(".sh")
        self.starts.append((script, self.clock.now))
        duration = self.durations[script]
        if self.during is not None:
            self.during(len(self.starts))
        self.clock.now += duration
        if should_cancel():
            return result(duration, cancelled=True)
        return result(duration, f"v={len(self.starts)}\n".encode())


class FakeWriter:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.writes: list[float] = []
        self.last = ""

    def __call__(self, _target: Path, text: str) -> None:
        self.writes.append(self.clock.now)
        self.last = text


class Loop:
    """One collector on a fake clock, with its config in `root`."""

    def __init__(self, root: Path, nodes_conf: str, durations: dict[str, float], *, default_interval: float = 15.0,
                 pusher: Callable[[Collector], Pusher] | None = None) -> None:
        self.root = root
        (root / "scripts").mkdir(exist_ok=True)
        (root / "nodes.conf").write_text(nodes_conf)
        for script in durations:
            write_script(root / "scripts", script, "echo v=1\n").chmod(0o755)
        self.clock = FakeClock()
        self.runner = FakeRunner(self.clock, durations)
        self.writer = FakeWriter(self.clock)
        self.stream = io.StringIO()
        settings = Settings(config_path=root / "nodes.conf", scripts_dir=root / "scripts", node="node-1",
                            output=root / "out.prom", prefix="edge_", default_interval=default_interval,
                            limits=RunLimits(timeout=10.0), bash="/bin/bash")
        self.collector = Collector(settings, Logger(level="debug", stream=self.stream), clock=self.clock,
                                   wall=lambda: NOW + self.clock.now, runner=self.runner, writer=self.writer,
                                   read_clock_now=self.clock.reading, reap=lambda: None,
                                   subreaper=lambda: None)
        if pusher is not None:
            self.collector.pusher = pusher(self.collector)
        assert self.collector.load(), self.stream.getvalue()
        self.waits: list[float] = []
        self.at: dict[float, Callable[[], None]] = {}  # fake time -> an event (a config update, a signal)

    def serve(self, seconds: float) -> int:
        """serve() for `seconds` of fake time, then SIGTERM; each wait moves the clock instead of sleeping."""
        end = self.clock.now + seconds

        def sleep(wake: Wakeup, delay: float) -> None:
            self.waits.append(delay)
            target = min(self.clock.now + max(delay, 0.0), end)
            for when in sorted(self.at):
                if self.clock.now < when <= target:
                    self.clock.now = when
                    self.at.pop(when)()
                    return
            self.clock.now = target
            if self.clock.now >= end:
                os.kill(os.getpid(), signal.SIGTERM)  # handled by the loop's Wakeup, as from the kubelet

        return serve(self.collector, sleep=sleep)

    def log(self) -> str:
        return self.stream.getvalue()

    def starts(self, script: str) -> list[float]:
        return [round(t - 100.0, 3) for name, t in self.runner.starts if name == script]
