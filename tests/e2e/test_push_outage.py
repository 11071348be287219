"""Push mode through outages: of the centre, of vmagent, of the collector itself, and a full spool.

Time is compressed as in test_outage.py (`--storage.tsdb.min-block-duration=1m`: an in-order window of 30 s), so a
60 s outage sends the backlog through the centre's out-of-order path, as a production outage of more than an hour
would; the test asserts that it did.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.counter import read_prints, write_counter_config
from testbed.exposition import metric_sum
from testbed.pipeline import Pipeline
from testbed.push import collector_self_metrics, collector_stamps, samples_at_centre, start_push_collector
from tests.e2e.test_push import COUNTER, assert_nothing_skipped_by_vmagent, wait_for_all_stamps
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

COMPRESSED_TIME = ["--storage.tsdb.min-block-duration=1m"]
# Twice the in-order window, and past the steps below (the last at 55 s): every step happens with the centre down.
OUTAGE_SECONDS = 60


class TestEveryRunOnce:
    def test_every_run_is_one_sample_at_its_time_across_outages_and_restarts(
        self, pipeline: Callable[..., Pipeline], tmp_path: Path
    ) -> None:
        """The centre is down for a minute; meanwhile vmagent is stopped and, while it is down, the collector is
        restarted (its on-disk spool carries the readings over). Afterwards the centre holds exactly one sample per
        run, at the timestamp the collector logged for that run, and every value the script printed."""
        stack = pipeline(node="push-outage", prometheus_args=COMPRESSED_TIME)
        stack.start_infrastructure()
        config = write_counter_config(stack.scripts_dir, node="push-outage", interval="1s")
        clock, spool = tmp_path / "clock", tmp_path / "spool"
        start_push_collector(stack.node, config, clock_file=clock, spool_dir=spool)
        wait_until(lambda: len(samples_at_centre(stack.central, COUNTER.format(node="push-outage"))) >= 3,
                   timeout=60, interval=0.5, what="pushed readings at the centre")

        steps: list[str] = []

        def during(elapsed: float) -> None:
            # 40 s in: vmagent stops; 45 s: the collector restarts; 55 s: vmagent is back.
            if elapsed >= 40 and "vmagent stopped" not in steps:
                stack.stop_vmagent()
                steps.append("vmagent stopped")
            elif elapsed >= 45 and "collector restarted" not in steps:
                assert stack.node.collector is not None
                stack.procs.stop(stack.node.collector)
                steps.append("collector stopped")
                spooled = collector_self_metrics(stack.node)["edge_collector_push_spooled_samples"]
                assert spooled > 0 and list(spool.glob("*.push")), "nothing spooled on disk at the collector's stop"
                start_push_collector(stack.node, config, clock_file=clock, spool_dir=spool)
                steps.append("collector restarted")
            elif elapsed >= 55 and "vmagent started" not in steps:
                stack.start_vmagent()
                steps.append("vmagent started")

        stack.outage(at_least=OUTAGE_SECONDS, during=during)
        assert steps == ["vmagent stopped", "collector stopped", "collector restarted", "vmagent started"]
        stack.wait_drained(timeout=180)
        runs = len(read_prints(stack.scripts_dir))
        wait_until(lambda: len(read_prints(stack.scripts_dir)) >= runs + 3, timeout=30, what="runs after the outage")
        metrics = collector_self_metrics(stack.node)
        assert metrics['edge_collector_push_errors_total{cause="connect"}'] > 0, "vmagent's stop was not felt"
        assert stack.node.collector is not None
        stack.procs.stop(stack.node.collector)
        samples = wait_for_all_stamps(stack, stack.node, timeout=180)

        prints = read_prints(stack.scripts_dir)
        stamps = collector_stamps(stack.node)
        print(f"{len(prints)} runs, {len(samples)} samples at the centre; outage steps {steps}")
        assert len(stamps) == len(prints)
        assert [t for t, _ in samples] == stamps, "samples at the centre differ from the runs the collector stamped"
        assert [int(v) for _, v in samples] == [p.value for p in prints], "a value is missing or doubled"
        out_of_order = metric_sum(stack.central.metrics(), "prometheus_tsdb_head_out_of_order_samples_appended_total")
        assert out_of_order > 0, "the backlog did not take the out-of-order path the test means to exercise"
        assert_nothing_skipped_by_vmagent(stack.node)
        assert not list(spool.glob("*.push")), "the spool was not emptied"


class TestSpoolFull:
    def test_oldest_readings_dropped_counted_and_logged_the_rest_arrive_in_order(
        self, pipeline: Callable[..., Pipeline], tmp_path: Path
    ) -> None:
        """vmagent is down and the spool holds a few runs: the oldest go first (counted in
        edge_collector_push_dropped_samples_total{reason="spool_full"}, logged); when vmagent is back, the newest
        runs arrive, in order, at their time."""
        stack = pipeline(node="spool-full")
        stack.start_infrastructure()
        stack.stop_vmagent()
        config = write_counter_config(stack.scripts_dir, node="spool-full", interval="1s")
        start_push_collector(stack.node, config, clock_file=tmp_path / "clock", spool_dir=tmp_path / "spool",
                             extra_args=["--spool-max-bytes", "200"])
        wait_until(lambda: collector_self_metrics(stack.node).get(
            'edge_collector_push_dropped_samples_total{reason="spool_full"}', 0) >= 3,
            timeout=60, what="three readings dropped from the full spool")
        metrics = collector_self_metrics(stack.node)
        assert 0 < metrics["edge_collector_push_spooled_bytes"] <= 200
        assert "spool full: the oldest readings were dropped" in (stack.node.workdir / "collector.log").read_text()

        stack.start_vmagent()
        wait_until(lambda: collector_self_metrics(stack.node)["edge_collector_push_spooled_samples"] == 0,
                   timeout=60, what="the spool pushed to vmagent once it is back")
        assert stack.node.collector is not None
        stack.procs.stop(stack.node.collector)
        dropped = int(collector_self_metrics(stack.node)[
            'edge_collector_push_dropped_samples_total{reason="spool_full"}'])
        stamps = collector_stamps(stack.node)
        wait_until(lambda: len(samples_at_centre(stack.central, COUNTER.format(node="spool-full")))
                   >= len(stamps) - dropped, timeout=60, interval=0.5, what="the kept readings at the centre")
        at_centre = samples_at_centre(stack.central, COUNTER.format(node="spool-full"))
        assert [t for t, _ in at_centre] == stamps[dropped:]
        assert_nothing_skipped_by_vmagent(stack.node)
