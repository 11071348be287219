"""HELP and TYPE lines of a script in push mode, through the pipeline as shipped: the node's vmagent takes them
with the readings (none skipped), every reading reaches the central Prometheus once at its run's time, and the
centre keeps no metadata for them (Prometheus' remote-write 1.0 receiver drops it: docs/sensors.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from testbed.counter import read_prints, write_counter_config
from testbed.exposition import metric_sum
from testbed.pipeline import Pipeline
from testbed.push import collector_stamps, samples_at_centre, start_push_collector
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e


def test_described_readings_are_pushed_whole(pipeline: Callable[..., Pipeline], tmp_path: Path) -> None:
    """A counter declared with `# HELP` and `# TYPE`: the node's vmagent counts the metadata and skips no line,
    the centre holds exactly the stamped runs (none lost, none twice), and its /api/v1/metadata has no entry."""
    stack = pipeline(node="described")
    stack.start_infrastructure()
    config = write_counter_config(stack.scripts_dir, node="described", interval="1s")
    script = stack.scripts_dir / "counter.sh"
    body = script.read_text().splitlines(keepends=True)
    script.write_text("".join([body[0], "echo '# HELP e2e_counter Runs of the test script (count).'\n",
                               "echo '# TYPE e2e_counter counter'\n", *body[1:]]))
    collector = start_push_collector(stack.node, config, clock_file=tmp_path / "clock")
    selector = 'edge_e2e_counter{node="described"}'
    wait_until(lambda: len(samples_at_centre(stack.central, selector)) >= 5, timeout=60, interval=0.5,
               what="five pushed readings at the centre")
    stack.procs.stop(collector)
    stamps = collector_stamps(stack.node)
    printed = [p.value for p in read_prints(stack.scripts_dir)]
    at_centre = wait_until(lambda: (s := samples_at_centre(stack.central, selector)) and len(s) >= len(stamps) and s,
                           timeout=30, interval=0.5, what="every stamped run at the centre")
    print(f"taken {len(printed)}, stamped {len(stamps)}, at the centre {len(at_centre)}")
    assert [t for t, _ in at_centre] == stamps  # none lost, none twice, each at its run's time
    assert sorted(int(v) for _, v in at_centre) == printed[:len(stamps)]
    metrics = stack.node.vmagent_metrics()
    # The HELP/TYPE lines were taken as metadata (at least once: runs that go in one POST share theirs).
    assert metric_sum(metrics, "vmagent_metadata_inserted_total", type="prometheus") >= 1
    assert metric_sum(metrics, "vm_rows_invalid_total", type="prometheus") == 0
    assert "edge_e2e_counter" not in stack.central.api("metadata")
