"""The compatibility job (bookworm's Prometheus 2.42 and vmagent 1.79, the COMPAT_* components): a known
failure of Prometheus < 2.50: a sample older than the out-of-order window is answered with HTTP 500
instead of 400, so vmagent retries that block forever and everything queued behind it waits. A 10 s
window (instead of 1d) and compressed time make it quick to reproduce. Prometheus >= 2.50 answers 400
(vmagent drops the block; EdgeVmagentRemoteWriteRejected), which test_clock_centre.py covers."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
import yaml

from testbed.counter import read_prints
from testbed.exposition import metric_sum
from testbed.paths import PROMETHEUS_DIR
from testbed.pipeline import Pipeline
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.compat]


def alert_expression(name: str) -> str:
    groups = yaml.safe_load((PROMETHEUS_DIR / "rules" / "edge-alerts.yml").read_text())["groups"]
    return next(rule["expr"] for group in groups for rule in group["rules"] if rule.get("alert") == name)


class TestSampleOlderThanTheWindow:
    def test_block_is_retried_forever_and_the_alert_catches_it(self, pipeline: Callable[..., Pipeline]) -> None:
        """After an outage longer than the window, the centre answers vmagent's oldest block with 500
        "too old sample"; vmagent keeps retrying it, newer samples pile up behind it, and the
        EdgeVmagentRemoteWrite5xx expression, evaluated at the centre, names the node."""
        # direct to Prometheus: the test is Prometheus 2.42's own 500 to vmagent, which the gate would answer
        stack = pipeline(
            enforce_node=False,
            node="bupt-a",
            compat=True,
            out_of_order_window="10s",
            prometheus_args=["--storage.tsdb.min-block-duration=1m"],
        )
        stack.start_infrastructure()
        stack.start_counter_collector(interval="1s")
        wait_until(lambda: stack.counter_values_at_centre(), timeout=30, what="values at the centre")

        stack.outage(at_least=35)
        back = time.time()

        def answered_500() -> bool:
            return metric_sum(stack.node.vmagent_metrics(), "vmagent_remotewrite_requests_total", status_code="500") > 0

        wait_until(answered_500, timeout=90, interval=0.5, what="vmagent receiving HTTP 500")
        # vmagent counts the answer before it logs it: wait for the line too.
        def logged() -> str | None:
            text = (stack.node.workdir / "vmagent.log").read_text()
            return text if "too old sample" in text else None

        log = wait_until(logged, timeout=30, what="vmagent logging the 500")
        assert "500" in log
        assert metric_sum(stack.central.metrics(), "prometheus_tsdb_too_old_samples_total") > 0

        # The alert's expression, as the centre evaluates it from vmagent's pulled /metrics.
        firing = wait_until(
            lambda: stack.central.query(alert_expression("EdgeVmagentRemoteWrite5xx")),
            timeout=15,
            what="EdgeVmagentRemoteWrite5xx expression true",
        )
        assert {series["metric"]["node"] for series in firing} == {"bupt-a"}

        # Held up: nothing printed since the centre came back has arrived, and nothing was dropped.
        time.sleep(3)
        printed_since = [p.value for p in read_prints(stack.scripts_dir) if p.at > back]
        at_centre = stack.counter_values_at_centre()
        metrics = stack.node.vmagent_metrics()
        print(
            f"printed since the centre returned: {len(printed_since)}, of those at the centre: "
            f"{len(at_centre & set(printed_since))}; vmagent pending bytes "
            f"{stack.node.pending_bytes():.0f}, 500 answers "
            f"{metric_sum(metrics, 'vmagent_remotewrite_requests_total', status_code='500'):.0f}"
        )
        assert len(printed_since) >= 20
        assert at_centre & set(printed_since) == set()
        assert metric_sum(metrics, "vmagent_remotewrite_packets_dropped_total") == 0
        assert "re-sending the block" in log.split("too old sample")[-1]
