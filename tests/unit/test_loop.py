"""The daemon's loop driven in-process: fake runner, fake clock, fake writer (tests/unit/loopfakes.py).

What tests/integration/test_fixed_rate.py shows with real processes and tolerances, exactly and in milliseconds.
"""

from __future__ import annotations

import errno
import signal
from pathlib import Path

import pytest

from edge_metrics.clock import Timekeeper
from edge_metrics.httppost import Endpoint, PushError
from edge_metrics.log import Logger
from edge_metrics.node import Collector
from edge_metrics.push import RETRY_MAX, Pusher
from edge_metrics.spool import Spool
from edge_metrics.textfile import WriteError, write_atomically
from tests.unit.loopfakes import Loop


def value(text: str, series: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


class TestSchedule:
    def test_overrun_skips_ticks_counts_and_logs_them(self, tmp_path: Path) -> None:
        """A 2.5 s run on a 1 s interval: runs start at 0 and 3 s (never late, never queued); ticks 1, 2, 4, 5 are
        skipped, counted and logged as overruns."""
        loop = Loop(tmp_path, "node-1=overrun:1s\n", {"overrun": 2.5})
        assert loop.serve(6.0) == 0
        assert loop.starts("overrun") == [0.0, 3.0]
        assert value(loop.writer.last, 'edge_collector_script_skipped_runs_total{script="overrun"}') == 4
        assert loop.log().count("run overran its interval; missed ticks skipped") == 2

    def test_a_run_of_another_script_is_named_as_the_cause_of_its_skips(self, tmp_path: Path) -> None:
        """Two scripts share the node: while the slow one runs (0 to 3.5 s), the quick one's ticks 0, 1, 2 are
        skipped and tick 3 runs late; the log names the other script as the cause."""
        loop = Loop(tmp_path, "node-1=slow:10s,quick:1s\n", {"slow": 3.5, "quick": 0.1})
        loop.serve(5.0)
        assert loop.starts("quick")[:2] == [3.5, 4.0]
        assert "skipped runs: another script's run was still going script=quick skipped=3 other=slow" in loop.log()

    def test_a_late_loop_is_not_blamed_on_another_script(self, tmp_path: Path) -> None:
        """One script; the collector is stopped for 3 s (SIGSTOP, a suspend): the skipped ticks are logged as the
        collector being late, not as another script's run (issue 17)."""
        loop = Loop(tmp_path, "node-1=only:1s\n", {"only": 0.1})
        loop.at[2.5 + 100] = lambda: setattr(loop.clock, "now", loop.clock.now + 3.0)
        loop.serve(8.0)
        log = loop.log()
        assert "another script's run" not in log
        assert "skipped runs: the collector was late for them" in log

    def test_idle_node_writes_its_heartbeat_every_default_interval(self, tmp_path: Path) -> None:
        """A node on `default` runs nothing and rewrites its file every default interval."""
        loop = Loop(tmp_path, "node-1=default\n", {}, default_interval=0.5)
        loop.serve(2.0)
        assert loop.runner.starts == []
        assert [round(t - 100.0, 3) for t in loop.writer.writes] == [0.0, 0.5, 1.0, 1.5, 2.0]


class TestReload:
    def test_a_failed_update_is_retried_after_the_settle_delay_then_reported(self, tmp_path: Path) -> None:
        """An update that does not load is tried again, out loud, 0.3 s later (a ConfigMap swap settling); the
        last good plan keeps running and the failure shows in the self-metrics."""
        loop = Loop(tmp_path, "node-1=probe:1s\n", {"probe": 0.1})
        loop.at[102.2] = lambda: (tmp_path / "nodes.conf").write_text("node-1=missing:1s\n")
        loop.serve(4.0)
        log = loop.log()
        assert log.count("config rejected; keeping the last good config") == 1
        # Seen at the 1 s poll (3.0 s), quietly failed, loaded again and reported 0.3 s later.
        assert 3.3 in [round(t - 100.0, 3) for t in loop.writer.writes]
        assert value(loop.writer.last, "edge_collector_config_last_reload_successful") == 0
        assert loop.starts("probe") == [0.0, 1.0, 2.0, 3.0]

    def test_sighup_reloads_at_once(self, tmp_path: Path) -> None:
        loop = Loop(tmp_path, "node-1=probe:10s\n", {"probe": 0.1})
        loop.at[101.0] = lambda: signal.raise_signal(signal.SIGHUP)
        loop.serve(2.0)
        assert "SIGHUP: reloading the config" in loop.log()


class TestStop:
    def test_sigterm_during_a_run_cancels_it_and_restores_the_handlers(self, tmp_path: Path) -> None:
        """SIGTERM while a script runs: the run is cancelled (not counted), the loop ends, the handlers of before
        are back."""
        before = signal.getsignal(signal.SIGTERM)
        loop = Loop(tmp_path, "node-1=probe:1s\n", {"probe": 0.5})
        loop.runner.during = lambda n: signal.raise_signal(signal.SIGTERM) if n == 3 else None
        assert loop.serve(60.0) == 0
        assert len(loop.runner.starts) == 3
        assert value(loop.writer.last, 'edge_collector_script_runs_total{script="probe"}') == 2
        assert signal.getsignal(signal.SIGTERM) is before
        assert "stopping" in loop.log()

    def test_the_spool_is_persisted_when_a_step_raises(self, tmp_path: Path) -> None:
        """The disk refused the first runs' readings (kept in memory); then a step raises: the loop's `finally`
        still writes them to the spool, and the file says what happened."""
        spool_dir = tmp_path / "spool"
        refusals = [True, True]

        def disk(path: str, data: bytes) -> None:
            if refusals:
                refusals.pop()
                raise WriteError(f"{path}: {errno.errorcode[errno.ENOSPC]}")
            write_atomically(path, data)

        def pusher(collector: Collector) -> Pusher:
            log = collector.log
            spool = Spool(str(spool_dir), 1 << 20, log, write=disk)
            return Pusher(Endpoint("127.0.0.1", 9, "/"), spool, collector.timekeeper, log,
                          send=lambda *_: (_ for _ in ()).throw(PushError("connect", "refused")))

        loop = Loop(tmp_path, "node-1=probe:1s\n", {"probe": 0.1}, pusher=pusher)
        loop.collector.pusher.start = lambda: None  # type: ignore[method-assign]  # no sender thread here

        def boom(n: int) -> None:
            if n == 2:
                raise RuntimeError("a step failed")

        loop.runner.during = boom
        with pytest.raises(RuntimeError):
            loop.serve(10.0)
        assert len(list(spool_dir.glob("*.push"))) == 1  # the first run, refused twice, written at the end
        assert "readings kept in the spool for the next start samples=1" in loop.log()


class TestBackoff:
    def test_backoff_doubles_to_its_cap_and_resets_after_a_success(self) -> None:
        """vmagent down: the sender waits 1, 2, 4, 8, 8 s between attempts; the first success resets it."""
        answers: list[Exception | None] = [PushError("connect", "refused")] * 5 + [None]
        log = Logger(level="debug")
        spool = Spool(None, 1 << 20, log)

        def send(_endpoint: Endpoint, _body: bytes, _timeout: float) -> int:
            answer = answers.pop(0)
            if answer is not None:
                raise answer
            return 204

        from tests.unit.loopfakes import FakeClock

        clock = FakeClock()
        pusher = Pusher(Endpoint("127.0.0.1", 9, "/"), spool, Timekeeper(log, clock.reading), log, send=send,
                        boot_clock=clock)
        spool.append("s", int(clock.reading().wall * 1000), 1, b"x 1 1\n")
        pusher.tick()
        delays = [pusher.drain() for _ in range(6)]
        assert delays == [1.0, 2.0, 4.0, RETRY_MAX, RETRY_MAX, None]
        assert pusher.backoff == 1.0 and pusher.sent_samples == 1
