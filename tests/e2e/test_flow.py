"""Readings flow from a script to the central Prometheus, and node_exporter never sees a torn file."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from testbed.counter import read_prints, write_counter_config
from testbed.exposition import metric_sum
from testbed.pipeline import Pipeline
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


class TestReadingsReachTheCentre:
    def test_printed_value_arrives_with_node_label_in_time(self, pipeline: Callable[..., Pipeline]) -> None:
        """A value a script prints is queryable at the centre, labelled with the node's name, within
        the script interval + the scrape interval + 5 s of being printed."""
        stack = pipeline(node="bupt-a")
        stack.start_infrastructure()
        config = write_counter_config(stack.scripts_dir, node="bupt-a", interval="2s")
        stack.node.start_collector(config=config)

        found = wait_until(
            lambda: stack.central.query('edge_e2e_counter{node="bupt-a",job="node-exporter"} == 1'),
            timeout=30,
            interval=0.1,
            what="the first printed value at the centre",
        )
        arrived = time.time()
        first = read_prints(stack.scripts_dir)[0]
        assert first.value == 1
        latency = arrived - first.at
        assert latency <= 2 + 1 + 5, f"value 1 printed at {first.at:.3f} reached the centre after {latency:.1f}s"
        assert found[0]["metric"]["node"] == "bupt-a"
        # The collector's own health travels the same way.
        assert stack.central.query('edge_collector_script_success{node="bupt-a",script="counter"} == 1')


class TestTextfileUnderLoad:
    def test_no_scrape_error_through_thousands_of_rewrites(self, pipeline: Callable[..., Pipeline]) -> None:
        """node_exporter scraped every 100 ms while the collector rewrites its file thousands of times
        never reports node_textfile_scrape_error 1 and always exports the script's gauge."""
        stack = pipeline(node="busy")
        stack.node.start_node_exporter()
        config = write_counter_config(stack.scripts_dir, node="busy", interval="10ms")
        stack.node.start_collector(config=config)

        scrapes = 0
        errors = []
        runs = 0.0
        deadline = time.monotonic() + 120
        while runs < 2000:
            assert time.monotonic() < deadline, f"only {runs:.0f} rewrites in 120 s"
            metrics = stack.node.node_exporter_metrics()
            scrapes += 1
            runs = metric_sum(metrics, "edge_collector_script_runs_total", script="counter")
            if metrics.get("node_textfile_scrape_error") != 0 or (runs and "edge_e2e_counter" not in metrics):
                errors.append((scrapes, metrics.get("node_textfile_scrape_error")))
            time.sleep(0.1)
        print(f"{runs:.0f} rewrites, {scrapes} scrapes at 100 ms, {len(errors)} with an error")
        assert errors == []
