"""Queue overflow is not silent: vmagent (1.145) whose disk queue reaches -remoteWrite.maxDiskUsagePerURL
during an outage of the centre drops its oldest blocks. The centre cannot scrape vmagent meanwhile, so
vm_persistentqueue_bytes_dropped_total reaches it in one jump, in its first sample after the outage;
EdgeVmagentQueueDropping fires anyway (its rule compares with the value an hour ago, absent counting as 0)."""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.centre import Centre
from testbed.exposition import metric_sum
from testbed.node import Node
from tests.helpers import COMPONENTS_ENV, Processes, wait_until

pytestmark = pytest.mark.e2e

NODE = "full-queue"
# vmagent rounds any smaller value up to its minimum, 512 MiB (it logs "rounding ... to the minimum
# supported value: 536871040"); asking for 1 MiB gets the smallest queue it can have.
SMALLEST_QUEUE = "1MiB"


@pytest.fixture
def stack(procs: Processes, tmp_path: Path) -> Iterator[tuple[Centre, Node]]:
    if not COMPONENTS_ENV.exists():
        pytest.fail("run `make components` first (make test does)")
    centre = Centre(procs, tmp_path, nodes=[NODE])
    node = centre.node(
        NODE, tmp_path / NODE, scrape_interval="1s", vmagent_flags={"-remoteWrite.maxDiskUsagePerURL": SMALLEST_QUEUE}
    )
    yield centre, node
    # Half a gigabyte of queue: gone with the test, not kept in pytest's last three temp dirs.
    procs.cleanup()
    shutil.rmtree(node.queue_dir, ignore_errors=True)


def fill(node: Node) -> float:
    """Readings that do not compress (random label values) through vmagent's import API, until vmagent
    drops queued data; returns the bytes it dropped."""

    def dropped() -> float:
        return metric_sum(node.vmagent_metrics(), "vm_persistentqueue_bytes_dropped_total")

    def push_batch() -> float:
        body = "".join(f'e2e_fill{{r="{os.urandom(64).hex()}"}} 1\n' for _ in range(150_000)).encode()
        request = urllib.request.Request(
            f"http://{node.vmagent_address}/api/v1/import/prometheus", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 204
        return dropped()

    return wait_until(push_batch, timeout=300, interval=0, what="vmagent dropping queued data")


class TestQueueOverflow:
    def test_a_drop_during_an_outage_alerts_when_the_centre_is_back(self, stack: tuple[Centre, Node]) -> None:
        """Centre down, queue overflowing: vmagent drops its oldest blocks. When the centre is back, its first
        sample of the drop counter already holds the whole drop, and EdgeVmagentQueueDropping names the node."""
        centre, node = stack
        central = centre.central  # the outage stops Prometheus; vmauth in front of it stays up
        centre.start()
        node.start_vmagent()
        selector = f'vm_persistentqueue_bytes_dropped_total{{node="{NODE}"}}'
        wait_until(lambda: central.query(selector), timeout=60, what="the drop counter at the centre")
        assert float(central.query(selector)[0]["value"][1]) == 0

        central.stop()
        dropped = fill(node)
        assert dropped > 0
        central.start()

        firing = wait_until(
            lambda: [a for a in central.alerts() if a["labels"]["alertname"] == "EdgeVmagentQueueDropping"],
            timeout=60,
            what="EdgeVmagentQueueDropping firing",
        )
        assert [a["labels"]["node"] for a in firing] == [NODE]
        # The jump: the samples before the outage are 0, the first one after it is the whole drop.
        values = [v for _, v in central.raw_samples(selector, "10m")]
        first_after = next(v for v in values if v > 0)
        assert values[0] == 0 and first_after >= dropped
        print(f"dropped {dropped:.0f} bytes; first sample after the outage {first_after:.0f}")
