"""A healthy pipeline as shipped pages no one (a collector that loses readings pages someone: test_loss_pages.py).

The topology, flags, rules (with their shipped `for:`) and Alertmanager routing are those of deploy/, as
testbed/ builds them; the collector runs the bundled nodes.conf for node bupt-a under the I2C
simulator with the DaemonSet's environment (push mode, spool). Alerts are read where a person gets them: the
centre's /api/v1/alerts and the webhook Alertmanager posts to.

Why a few minutes suffice for rules whose `for:` is longer (up to 30 m): an alert can page only after its
condition held for its whole `for:`, and while it holds the alert is pending in /api/v1/alerts. The test
requires that no alert is ever pending or firing (polled throughout), so no `for:` can elapse; the run lasts
past EdgeNodeSilent's windows (a target listed 3 minutes, silent 3 minutes), the longest a healthy start could
trip, and past the 5 minute windows of the push alerts.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_metrics.clock import adjtimex
from testbed.alertmanager import Alertmanager
from testbed.exposition import metric_sum
from testbed.paths import DEPLOY, EDGE_METRICS
from testbed.pipeline import Pipeline
from testbed.push import collector_self_metrics, push_url, set_clock
from testbed.webhook import WebhookReceiver, webhook_receiver
from tests.helpers import REPO, SIM_LIB, Processes, wait_until

pytestmark = pytest.mark.e2e

DAEMONSET = DEPLOY / "kubernetes" / "edge" / "daemonset.yaml"
SPACE_SERVER_MODEL = REPO / "scripts" / "models" / "space_server.yaml"
# Routed to the dead man's switch, not to a person; firing all the time by design.
WATCHDOG = "EdgeAlertingWatchdog"
# What the clock of this machine decides for itself: excepted only while the kernel says it is unsynchronised.
CLOCK_ALERTS = ("EdgeClock", "EdgeCollectorClock")
HEALTHY_FOR = 330.0  # seconds of steady state watched (see the module's docstring)
# Alertmanager's group timings shortened so that what fires near the end still reaches the webhook.
FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


def sidecar_env(**paths: str) -> dict[str, str]:
    """The metric-sidecar's environment as the DaemonSet sets it, with this test's paths and addresses."""
    daemonset = yaml.safe_load(DAEMONSET.read_text())
    (sidecar,) = (c for c in daemonset["spec"]["template"]["spec"]["containers"] if c["name"] == "metric-sidecar")
    env = {e["name"]: str(e["value"]) for e in sidecar["env"] if "value" in e}
    unknown = set(paths) - set(env)
    assert not unknown, f"not set by {DAEMONSET}: {sorted(unknown)}"
    return {**env, **paths}


def clock_unsynchronised() -> bool:
    synchronised, _, _ = adjtimex()
    return not synchronised


def paging(alerts: list[dict[str, Any]], *, clock_excepted: bool) -> list[str]:
    """The alerts among `alerts` that would reach a person."""
    found = []
    for alert in alerts:
        name = alert["labels"]["alertname"]
        if name == WATCHDOG or (clock_excepted and name.startswith(CLOCK_ALERTS)):
            continue
        found.append(f"{name} {alert.get('state', alert.get('status'))} {alert['labels']}")
    return found


class TestHealthyPipeline:
    @pytest.mark.timeout(HEALTHY_FOR + 400)
    def test_a_healthy_node_pages_no_one_for_minutes(
        self, pipeline: Callable[..., Pipeline], procs: Processes, tmp_path: Path, webhook: WebhookReceiver
    ) -> None:
        """bupt-a as shipped, readings flowing for over five minutes: no alert is pending or firing at the centre
        and the webhook gets no notification, the clock alerts excepted only while this machine's kernel clock
        is unsynchronised (the collector is then given a synchronised clock, so that its readings flow)."""
        assert SIM_LIB.exists(), "run `make sim` first (make test does)"
        stack = pipeline(node="bupt-a")
        # Alertmanager with the centre's credentials, as the Deployment runs it (TLS, its users).
        alertmanager = Alertmanager(procs, tmp_path / "alertmanager", webhook_url=webhook.url, timings=FAST,
                                    pki=stack.pki)
        stack.central.send_alerts_to(alertmanager.address)
        alertmanager.start()
        stack.start_infrastructure()
        wait_until(lambda: stack.central.api("alertmanagers")["activeAlertmanagers"], timeout=30,
                   what="the centre's Alertmanager")

        clock_excepted = clock_unsynchronised()
        env = sidecar_env(
            EDGE_CONFIG=str(REPO / "scripts" / "nodes.conf"),
            EDGE_OUTPUT=str(stack.node.textfile_dir / "custom_metrics.prom"),
            EDGE_PUSH_URL=push_url(stack.node),
            EDGE_SPOOL_DIR=str(tmp_path / "spool"),
        )
        env.update(NODE_NAME="bupt-a", EDGE_I2C_SIM_LIB=str(SIM_LIB))
        if clock_excepted:
            clock = tmp_path / "clock"
            set_clock(clock, synchronized=True)
            env["EDGE_CLOCK_TEST_FILE"] = str(clock)
        stack.node.collector = procs.start(
            [str(EDGE_METRICS), "simulate", "--model", str(SPACE_SERVER_MODEL), "--", str(EDGE_METRICS), "run"],
            env={**os.environ, **env}, log=stack.node.workdir / "collector.log",
        )
        readings = 'edge_temperature{node="bupt-a"}'
        wait_until(lambda: stack.central.query(readings), timeout=120, interval=1, what="bupt-a's readings")

        seen: list[str] = []
        started = time.monotonic()
        while not seen and time.monotonic() - started < HEALTHY_FOR:
            seen = paging(stack.central.api("alerts")["alerts"], clock_excepted=clock_excepted)
            time.sleep(2)
        notified = paging(webhook.alerts("firing"), clock_excepted=clock_excepted)
        assert (seen, notified) == ([], []), f"pending or firing: {seen}; notified: {notified}"

        # It was a healthy run: a reading of every run of the last five minutes is at the centre, none dropped.
        self_metrics = collector_self_metrics(stack.node)
        assert metric_sum(self_metrics, "edge_collector_push_dropped_samples_total") == 0
        runs = stack.central.query(f'count_over_time({readings}[5m])')
        assert runs and min(float(r["value"][1]) for r in runs) >= 5 * 60 / 10 - 2, runs
