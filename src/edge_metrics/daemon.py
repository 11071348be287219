"""The daemon: signals, and the loop of named steps that node.py's Collector provides.

config -> schedule -> run -> parse -> render -> write is the Collector's; here is only when each step runs and how
a signal ends or redirects the loop.
"""

from __future__ import annotations

import os
import select
import signal
from collections.abc import Callable

from edge_metrics.node import Collector, Settings, Stop, tune_gc
from edge_metrics.runner import drain_wakeup

__all__ = ["Collector", "Settings", "Wakeup", "serve", "tune_gc"]


def serve(collector: Collector, *, sleep: Callable[[Wakeup, float], None] | None = None) -> int:
    """Run until SIGTERM or SIGINT; `sleep` replaces the wait between steps (tests drive a fake clock with it)."""
    with Wakeup() as wake:
        collector.start()
        try:
            while not wake.stop.requested:
                collector.reload(hup=wake.take_hup())
                if collector.run_next_due(wake.stop) is not None:
                    continue  # straight to whatever else is due
                collector.hand_over()
                collector.heartbeat()
                collector.last_ran = None
                (sleep or Wakeup.wait)(wake, collector.next_wake() - collector.clock())
            collector.log.info("stopping", signal="SIGTERM/SIGINT")
        finally:
            collector.finish()  # the last push, the spool persisted, the file: also when a step raised
    return 0


class Wakeup:
    """SIGTERM/SIGINT (stop) and SIGHUP (reload) as flags plus a byte on a pipe, so a wait or a run in progress
    ends at once; the previous handlers and wakeup fd are restored on exit."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.stop = Stop(self.read_fd)
        self.hup = False
        self.previous: list[object] = []
        self.previous_fd = -1

    def __enter__(self) -> Wakeup:
        self.previous_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.previous = [signal.getsignal(signum) for signum in self.SIGNALS]
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in zip(self.SIGNALS, self.previous, strict=True):
            signal.signal(signum, handler)  # type: ignore[arg-type]  # what getsignal returned
        signal.set_wakeup_fd(self.previous_fd)
        os.close(self.read_fd)
        os.close(self.write_fd)

    def _on_stop(self, _signum: int, _frame: object) -> None:
        self.stop.requested = True

    def _on_hup(self, _signum: int, _frame: object) -> None:
        self.hup = True

    def take_hup(self) -> bool:
        hup, self.hup = self.hup, False
        return hup

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, waking early when a signal arrives (its byte lands on the pipe)."""
        if seconds > 0 and select.select([self.read_fd], [], [], seconds)[0]:
            drain_wakeup(self.read_fd)
