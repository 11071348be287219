"""While vmagent does not answer, a failed attempt must not keep its batch alive: the daemon runs the cyclic
garbage collector rarely (tune_gc), so a batch left in a reference cycle (the error's traceback holding the
sender's frame) stayed in memory at every attempt, and the process grew by up to a batch (256 KiB read back
from the spool) per attempt: 229 MiB after 420 runs at 50 ms in bench/push_cost.py (docs/performance.md)."""

from __future__ import annotations

import gc
import io
import tracemalloc
from pathlib import Path

from edge_metrics.clock import ClockReading, Timekeeper
from edge_metrics.httppost import Endpoint
from edge_metrics.log import Logger
from edge_metrics.push import Pusher
from edge_metrics.samples import Sample
from edge_metrics.spool import Spool
from tests.helpers import free_port

NOW = 1_800_000_000.0
RUNS = 40
ATTEMPTS = 30


class TestOutageMemory:
    def test_failed_attempts_free_their_batch_without_the_cyclic_collector(self, tmp_path: Path) -> None:
        """40 spooled runs, vmagent down: 30 attempts with the cyclic collector off leave less than one batch's
        worth of memory behind (the spool's bodies are read back for every attempt and must go with it)."""
        log = Logger(level="warning", stream=io.StringIO())
        spool = Spool(str(tmp_path), 1 << 20, log)
        clock = ClockReading(NOW + 100, 100.0, True, 0.0, 0.0)
        pusher = Pusher(Endpoint("127.0.0.1", free_port(), "/"), spool, Timekeeper(log, lambda: clock), log)
        samples = tuple(Sample(f"edge_sensor_{i:02d}", (), 20.0 + i) for i in range(20))
        for n in range(RUNS):
            pusher.record("sensors", samples, ClockReading(NOW + n, float(n), True, 0.0, 0.0))
        pusher.tick()
        batch_bytes = sum(entry.size for entry in spool.entries)
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            assert pusher.drain() is not None  # the first attempt's one-off allocations
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(ATTEMPTS):
                assert pusher.drain() is not None, "vmagent is down: every attempt fails"
            left = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
            gc.enable()
        assert pusher.errors["connect"] == ATTEMPTS + 1
        assert left < batch_bytes, f"{ATTEMPTS} failed attempts left {left} bytes (one batch: {batch_bytes})"
