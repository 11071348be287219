"""Push mode end to end: every run of a script is one sample at the centre, at the time of the reading.

The real collector pushes to the real vmagent's /api/v1/import/prometheus, which remote-writes to the real
Prometheus; the collector's debug log records the timestamp it gave each run, and the centre must hold exactly
those. The clock comes from EDGE_CLOCK_TEST_FILE: this machine's own may not be synchronised.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_metrics.httppost import parse_url, post
from testbed.counter import read_prints, write_counter_config
from testbed.exposition import metric_sum
from testbed.node import Node
from testbed.paths import CLUSTER
from testbed.pipeline import Pipeline
from testbed.push import (
    collector_self_metrics,
    collector_stamps,
    push_url,
    samples_at_centre,
    set_clock,
    start_push_collector,
)
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.e2e

COUNTER = 'edge_e2e_counter{{node="{node}"}}'


def wait_for_all_stamps(stack: Pipeline, node: Node, *, timeout: float = 60) -> list[tuple[int, float]]:
    """Until the centre holds as many samples as the collector stamped runs; those samples."""

    def complete() -> list[tuple[int, float]] | None:
        stamps = collector_stamps(node)
        samples = samples_at_centre(stack.central, COUNTER.format(node=node.name))
        return samples if stamps and len(samples) >= len(stamps) else None

    return wait_until(complete, timeout=timeout, interval=0.5, what="every stamped run at the centre")


def assert_nothing_skipped_by_vmagent(node: Node) -> None:
    """vmagent's import answers 204 even for lines it skips: its own counters must show none skipped (the tests
    also read every sample back at the centre)."""
    inserted = wait_until(
        lambda: metric_sum(node.vmagent_metrics(), "vmagent_rows_inserted_total", type="prometheus"),
        timeout=15, interval=0.5, what="vmagent counting the imported rows",
    )
    assert inserted > 0
    assert metric_sum(node.vmagent_metrics(), "vm_rows_invalid_total", type="prometheus") == 0


class TestSideBySide:
    def test_push_delivers_every_reading_the_textfile_path_two_thirds(
        self, pipeline: Callable[..., Pipeline], procs: Processes, tmp_path: Path
    ) -> None:
        """A 1 s script with vmagent scraping every 1.5 s (the 10 s script / 15 s scrape of production, scaled):
        in push mode every printed value is at the centre, once, at its run's time; on the textfile path about
        two in three are, at the scrape's time."""
        stack = pipeline(node="textfile-node", scrape_interval="1500ms", other_nodes=["push-node"])
        pushing = stack.centre.node("push-node", tmp_path / "push-node", scrape_interval="1500ms")
        stack.start_infrastructure()
        pushing.start_node_exporter()
        pushing.start_vmagent()
        textfile_dir, push_dir = tmp_path / "textfile-scripts", tmp_path / "push-scripts"
        stack.node.start_collector(config=write_counter_config(textfile_dir, node="textfile-node", interval="1s"))
        start_push_collector(pushing, write_counter_config(push_dir, node="push-node", interval="1s"),
                             clock_file=tmp_path / "clock")
        wait_until(lambda: len(read_prints(push_dir)) >= 30 and len(read_prints(textfile_dir)) >= 30,
                   timeout=120, interval=0.5, what="30 runs of each collector")
        assert stack.node.collector is not None and pushing.collector is not None
        procs.stop(stack.node.collector)
        procs.stop(pushing.collector)
        stack.wait_scraped_after(time.time())  # the last scrape of the textfile node travels too

        pushed = wait_for_all_stamps(stack, pushing)
        push_prints = read_prints(push_dir)
        assert sorted(int(v) for _, v in pushed) == [p.value for p in push_prints]
        assert [t for t, _ in pushed] == collector_stamps(pushing)
        push_ratio = len({int(v) for _, v in pushed}) / len(push_prints)

        textfile_prints = read_prints(textfile_dir)[:-1]  # the last value may have had no scrape before the stop
        at_centre = {int(v) for _, v in samples_at_centre(stack.central, COUNTER.format(node="textfile-node"))}
        textfile_ratio = len(at_centre & {p.value for p in textfile_prints}) / len(textfile_prints)
        print(f"push: {push_ratio:.0%} of {len(push_prints)} readings; "
              f"textfile: {textfile_ratio:.0%} of {len(textfile_prints)}")
        assert push_ratio == 1.0
        assert 0.5 <= textfile_ratio <= 0.8
        assert_nothing_skipped_by_vmagent(pushing)


class TestOnePathOnly:
    def test_readings_reach_the_centre_by_push_only_and_self_metrics_by_scrape(
        self, pipeline: Callable[..., Pipeline], tmp_path: Path
    ) -> None:
        """In push mode the textfile carries only edge_collector_*: the centre never has an edge_* reading series
        from node_exporter's scrape as well as from the push, and the self-metrics still arrive by scrape."""
        stack = pipeline(node="push-only")
        stack.start_infrastructure()
        config = write_counter_config(stack.scripts_dir, node="push-only", interval="1s")
        start_push_collector(stack.node, config, clock_file=tmp_path / "clock")
        wait_until(lambda: len(samples_at_centre(stack.central, COUNTER.format(node="push-only"))) >= 5,
                   timeout=60, interval=0.5, what="five pushed readings at the centre")
        wait_until(lambda: stack.central.query('edge_collector_push_samples_total{node="push-only"} > 0'),
                   timeout=30, what="the push self-metrics scraped at the centre")

        series = stack.central.query('{__name__=~"edge_e2e_.*"}')
        only = {"__name__": "edge_e2e_counter", "node": "push-only", "cluster": CLUSTER}
        assert [s["metric"] for s in series] == [only]
        assert "edge_e2e_counter" not in stack.node.node_exporter_metrics()
        assert stack.central.query('edge_collector_script_success{node="push-only",job="node-exporter"} == 1')
        assert_nothing_skipped_by_vmagent(stack.node)


class TestResend:
    def test_the_same_readings_sent_twice_are_stored_once(self, pipeline: Callable[..., Pipeline]) -> None:
        """Re-sending a spool entry after an ambiguous failure (vmagent took it, the answer was lost) sends the
        same series, timestamp and value again: Prometheus keeps one sample and refuses nothing."""
        stack = pipeline(node="resend")
        stack.start_infrastructure()
        stamp = int(time.time() * 1000) - 5000
        body = f'edge_resend{{sensor="a"}} 42.5 {stamp}\nedge_resend{{sensor="b"}} 7 {stamp}\n'.encode()
        endpoint = parse_url(push_url(stack.node))
        assert post(endpoint, body) == 204
        assert post(endpoint, body) == 204
        wait_until(lambda: metric_sum(stack.node.vmagent_metrics(), "vmagent_rows_inserted_total",
                                      type="prometheus") == 4, timeout=30, what="both posts inserted by vmagent")
        stack.wait_drained()
        wait_until(lambda: len(samples_at_centre(stack.central, "edge_resend")) == 2, timeout=30,
                   what="the readings at the centre")
        time.sleep(3)  # vmagent flushes every second: the second copy has reached the centre by now
        assert samples_at_centre(stack.central, 'edge_resend{sensor="a"}') == [(stamp, 42.5)]
        assert samples_at_centre(stack.central, 'edge_resend{sensor="b"}') == [(stamp, 7.0)]
        vmagent = stack.node.vmagent_metrics()
        assert metric_sum(vmagent, "vmagent_remotewrite_packets_dropped_total") == 0
        assert metric_sum(vmagent, "vmagent_remotewrite_requests_total", status_code="400") == 0
        assert_nothing_skipped_by_vmagent(stack.node)


# Clock faults -----------------------------------------------------------------------------------------------

HELD_FAULTS = {
    # name: (synchronized, offset of the wall clock in seconds; a callable for one that depends on now)
    "unsynchronised": (False, 0.0),
    "rtc_in_local_time_plus_8h": (False, 8 * 3600.0),
    "boot_at_1970_claiming_sync": (True, -time.time() + 10 * 86400),  # the floor date holds it anyway
}


def start_clock_stack(pipeline: Callable[..., Pipeline], tmp_path: Path, node: str,
                      *, synchronized: bool, offset: float) -> tuple[Pipeline, Path]:
    stack = pipeline(node=node)
    stack.start_infrastructure()
    clock = tmp_path / "clock"
    set_clock(clock, synchronized=synchronized, offset=offset)
    config = write_counter_config(stack.scripts_dir, node=node, interval="1s")
    start_push_collector(stack.node, config, clock_file=clock, spool_dir=tmp_path / "spool")
    return stack, clock


def stop_and_collect(stack: Pipeline) -> list[tuple[int, float]]:
    """Stop the collector (it pushes what it still has), then every stamped run from the centre."""
    assert stack.node.collector is not None
    stack.procs.stop(stack.node.collector)
    return wait_for_all_stamps(stack, stack.node)


def assert_each_reading_at_its_time(stack: Pipeline, samples: list[tuple[int, float]]) -> None:
    """Every printed value is at the centre once, at the time its run started: within 0.5 s before the script
    printed it (the run's own duration), never after, and never ahead of the real clock."""
    prints = read_prints(stack.scripts_dir)
    assert sorted(int(v) for _, v in samples) == [p.value for p in prints]
    assert [t for t, _ in samples] == collector_stamps(stack.node)
    printed_at = {p.value: p.at for p in prints}
    for stamp, value in samples:
        lag = printed_at[int(value)] - stamp / 1000
        assert 0 <= lag < 0.5, f"value {value:g} stamped {lag:+.3f} s from when it was printed"
    assert max(t for t, _ in samples) <= time.time() * 1000


class TestClockFaults:
    @pytest.mark.parametrize("fault", sorted(HELD_FAULTS))
    def test_readings_held_until_synchronised_arrive_at_their_time(
        self, pipeline: Callable[..., Pipeline], tmp_path: Path, fault: str
    ) -> None:
        """While the clock is unsynchronised (or before the floor date), nothing is sent and the readings are held
        (edge_collector_clock_held_samples); when NTP synchronises (and steps) the clock, each held reading is
        stamped wall now - time since its run, so it lands at the centre at the time it was read."""
        synchronized, offset = HELD_FAULTS[fault]
        stack, clock = start_clock_stack(pipeline, tmp_path, "clock-held", synchronized=synchronized, offset=offset)
        wait_until(lambda: len(read_prints(stack.scripts_dir)) >= 5, timeout=60, what="five held runs")
        held = wait_until(lambda: collector_self_metrics(stack.node)["edge_collector_clock_held_samples"] >= 4,
                          timeout=10, what="the held readings counted")
        assert held
        metrics = collector_self_metrics(stack.node)
        assert metrics["edge_collector_clock_synchronized"] == 0
        assert metrics["edge_collector_push_samples_total"] == 0
        assert samples_at_centre(stack.central, COUNTER.format(node="clock-held")) == []

        set_clock(clock, synchronized=True)
        runs = len(read_prints(stack.scripts_dir))
        wait_until(lambda: len(read_prints(stack.scripts_dir)) >= runs + 3, timeout=60, what="runs after the sync")
        metrics = collector_self_metrics(stack.node)
        assert metrics["edge_collector_clock_synchronized"] == 1
        assert metrics["edge_collector_clock_held_samples"] == 0
        assert metrics["edge_collector_clock_steps_total"] == (0 if offset == 0 else 1)
        samples = stop_and_collect(stack)
        assert_each_reading_at_its_time(stack, samples)
        assert_nothing_skipped_by_vmagent(stack.node)

    def test_backward_step_drops_what_was_stamped_ahead_and_logs_the_step(
        self, pipeline: Callable[..., Pipeline], tmp_path: Path
    ) -> None:
        """A clock 5 min ahead that the kernel calls synchronised stamps readings 5 min ahead; vmagent is down so
        they wait in the spool. NTP steps the clock back: the step is logged and counted, the spooled readings now
        ahead of the collector's clock are dropped (counted as clock_step), never sent, and the runs after the
        step arrive at their time."""
        stack, clock = start_clock_stack(pipeline, tmp_path, "clock-step", synchronized=True, offset=300.0)
        stack.stop_vmagent()
        # Stamps, not the script's prints: a run prints before it ends and is stamped.
        before = len(collector_stamps(stack.node))
        wait_until(lambda: len(collector_stamps(stack.node)) >= before + 4, timeout=60, what="runs while ahead")
        set_clock(clock, synchronized=True, offset=0.0)
        ahead = [t for t in collector_stamps(stack.node) if t > time.time() * 1000]
        assert len(ahead) >= 4
        stack.start_vmagent()
        runs = len(read_prints(stack.scripts_dir))
        wait_until(lambda: len(read_prints(stack.scripts_dir)) >= runs + 4, timeout=60, what="runs after the step")
        metrics = collector_self_metrics(stack.node)
        assert metrics["edge_collector_clock_steps_total"] == 1
        assert metrics['edge_collector_push_dropped_samples_total{reason="clock_step"}'] >= len(ahead)
        log = (stack.node.workdir / "collector.log").read_text()
        assert "wall clock stepped by_seconds=-300." in log
        assert "readings stamped ahead of the clock (it stepped back since): dropped" in log

        assert stack.node.collector is not None
        stack.procs.stop(stack.node.collector)
        stamps = collector_stamps(stack.node)
        now_ms = time.time() * 1000
        sent = [t for t in stamps if t <= now_ms]
        wait_until(lambda: len(samples_at_centre(stack.central, COUNTER.format(node="clock-step"))) >= len(sent),
                   timeout=60, interval=0.5, what="the runs stamped at a correct time")
        at_centre = samples_at_centre(stack.central, COUNTER.format(node="clock-step"))
        assert max(t for t, _ in at_centre) <= now_ms, "a reading was sent ahead of the collector's clock"
        assert [t for t, _ in at_centre] == [t for t in stamps if t <= now_ms]
        assert_nothing_skipped_by_vmagent(stack.node)
