"""A collector that loses readings pages someone: the push alerts fire at the centre from its own counters.

The other half, that a healthy pipeline pages no one, is test_no_false_pages.py (a file of its own: it runs for
minutes on purpose, and `make test` gives each file to one worker).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from testbed.counter import write_counter_config
from testbed.exposition import metric_sum
from testbed.pipeline import Pipeline
from testbed.push import collector_self_metrics, collector_stamps, samples_at_centre, set_clock
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.e2e


@contextmanager
def refusing_endpoint() -> Iterator[str]:
    """An import endpoint on loopback that answers every push 503, as an overloaded vmagent does."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/api/v1/import/prometheus"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class TestLossPages:
    def test_failing_pushes_and_the_readings_dropped_page_someone(
        self, pipeline: Callable[..., Pipeline], procs: Processes, tmp_path: Path
    ) -> None:
        """The node's import endpoint answers 503 to every push while vmagent still carries node_exporter's
        scrape: the collector's readings pile up in a 1 KiB spool and the oldest are dropped. EdgePushFailing
        (its `for:` shortened) and EdgeReadingsDropped (reason spool_full) fire at the centre for the node, from
        the collector's own counters; every reading taken is either still in the spool or counted dropped, and
        none reached the centre."""
        stack = pipeline(node="bupt-a")
        stack.central.set_rule_durations("EdgePushFailing", **{"for": "5s"})
        stack.start_infrastructure()
        config = write_counter_config(tmp_path / "scripts", node="bupt-a", interval="1s")
        with refusing_endpoint() as refusing:
            # Debug logs name each run's stamp; the clock file says synchronised (this machine's may not be).
            set_clock(tmp_path / "clock", synchronized=True)
            stack.node.start_collector(config=config, env={"EDGE_CLOCK_TEST_FILE": str(tmp_path / "clock")},
                                       extra_args=["--push-url", refusing, "--log-level", "debug",
                                                   "--spool-max-bytes", "1KiB"])

            def firing() -> set[str]:
                return {a["labels"]["alertname"] for a in stack.central.alerts()
                        if a["labels"].get("node") == "bupt-a" and a["labels"].get("cluster")}

            wait_until(lambda: {"EdgePushFailing", "EdgeReadingsDropped"} <= firing(), timeout=180, interval=1,
                       what="EdgePushFailing and EdgeReadingsDropped firing for bupt-a")
            (dropped,) = [a for a in stack.central.alerts() if a["labels"]["alertname"] == "EdgeReadingsDropped"]
            assert dropped["labels"]["reason"] == "spool_full"
            self_metrics = collector_self_metrics(stack.node)
        taken = len(collector_stamps(stack.node))
        lost = metric_sum(self_metrics, "edge_collector_push_dropped_samples_total", reason="spool_full")
        waiting = metric_sum(self_metrics, "edge_collector_push_spooled_samples")
        stored = len(samples_at_centre(stack.central, 'edge_e2e_counter{node="bupt-a"}'))
        assert stored == 0 and lost > 0 and waiting > 0
        # The file was written after some of the runs in the log: they are the only ones not yet accounted for.
        assert lost + waiting <= taken, (taken, lost, waiting)
