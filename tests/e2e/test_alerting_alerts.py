"""Somebody learns that alerts stopped: the central Prometheus (3.5, deploy/prometheus with its rules)
scrapes the real Alertmanager (0.33, closed with TLS and basic auth as its Deployment runs it) and alerts
when the receiver refuses every notification or Alertmanager is gone (deploy/prometheus/rules/
alerting-alerts.yml). Only the alerts' `for:` and Alertmanager's group timings are shortened; the
expressions, scrape jobs and credentials are those shipped. The heartbeat (EdgeAlertingWatchdog), which
always fires and goes to the dead man's switch every minute, is what there is to deliver."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed.alertmanager import Alertmanager
from testbed.centre import Centre
from testbed.exposition import metric_sum, parse_metrics
from testbed.webhook import WebhookReceiver, webhook_receiver
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.e2e

FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
SHORT_FOR = {"for": "5s"}
ALERTS = ("EdgeAlertmanagerNotificationsFailing", "EdgeAlertmanagerDown", "EdgeAlertmanagerUnreachable")
# Prometheus re-sends a firing alert every minute (--rules.alert.resend-delay; the heartbeat that fires at
# its first evaluation, before the Alertmanager is discovered, goes out at the first re-send), and
# Alertmanager retries a failed notification with back-off. A hang bound, not a timing.
BOUND = 300


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


def start_centre(procs: Processes, workdir: Path, webhook: WebhookReceiver) -> tuple[Centre, Alertmanager]:
    """The centre (Prometheus behind vmauth) and Alertmanager with the same make-certs credentials."""
    centre = Centre(procs, workdir, nodes=["bupt-a"])
    manager = Alertmanager(procs, workdir / "alertmanager", webhook_url=webhook.url, timings=FAST, pki=centre.pki)
    centre.central.send_alerts_to(manager.address)
    for alert in ALERTS:
        centre.central.set_rule_durations(alert, **SHORT_FOR)
    manager.start()
    centre.start()
    return centre, manager


def firing(centre: Centre, alert: str) -> list[dict[str, object]]:
    return [a for a in centre.central.alerts() if a["labels"]["alertname"] == alert]


class TestAlertsAboutAlerting:
    def test_a_receiver_answering_500_raises_notifications_failing(
        self, procs: Processes, tmp_path: Path, webhook: WebhookReceiver
    ) -> None:
        """Every notification refused with HTTP 500: nothing is delivered, Alertmanager counts the failures,
        and EdgeAlertmanagerNotificationsFailing fires at the centre for the `alertmanager` job."""
        webhook.status = 500
        started = time.monotonic()
        centre, manager = start_centre(procs, tmp_path, webhook)
        alerts = wait_until(
            lambda: firing(centre, "EdgeAlertmanagerNotificationsFailing"),
            timeout=BOUND,
            interval=1,
            what="EdgeAlertmanagerNotificationsFailing firing at the centre",
        )
        took = time.monotonic() - started
        assert alerts[0]["labels"]["job"] == "alertmanager"  # type: ignore[index]
        failed = metric_sum(parse_metrics(manager.get("/metrics").decode()), "alertmanager_notifications_failed_total")
        assert webhook.refused >= 1 and failed >= 1
        assert webhook.notifications == []
        print(
            f"receiver answering 500: {webhook.refused} notifications refused, 0 delivered, "
            f"alertmanager_notifications_failed_total={failed:.0f}; alert firing {took:.0f} s after start"
        )

    def test_alertmanager_stopped_raises_down_and_unreachable(
        self, procs: Processes, tmp_path: Path, webhook: WebhookReceiver
    ) -> None:
        """The heartbeat arrives while Alertmanager runs; with Alertmanager stopped, the centre's scrape of
        it fails (EdgeAlertmanagerDown) and its sends fail (EdgeAlertmanagerUnreachable, from
        prometheus_notifications_errors_total)."""
        centre, manager = start_centre(procs, tmp_path, webhook)
        wait_until(
            lambda: webhook.alerts("firing", alertname="EdgeAlertingWatchdog"),
            timeout=BOUND,
            interval=0.5,
            what="the heartbeat at the dead man's switch",
        )
        assert firing(centre, "EdgeAlertmanagerDown") == []
        manager.stop()
        stopped = time.monotonic()
        heartbeats = len(webhook.alerts("firing", alertname="EdgeAlertingWatchdog"))
        for alert in ("EdgeAlertmanagerDown", "EdgeAlertmanagerUnreachable"):
            wait_until(
                lambda alert=alert: firing(centre, alert),  # type: ignore[misc]
                timeout=BOUND,
                interval=1,
                what=f"{alert} firing at the centre",
            )
            print(f"Alertmanager stopped: {alert} firing {time.monotonic() - stopped:.0f} s later")
        errors = metric_sum(centre.central.metrics(), "prometheus_notifications_errors_total")
        assert errors >= 1
        assert len(webhook.alerts("firing", alertname="EdgeAlertingWatchdog")) == heartbeats
        print(f"prometheus_notifications_errors_total={errors:.0f}; no heartbeat since the stop")
