"""Alerts reach someone: the central Prometheus (3.5) evaluates deploy/prometheus/rules, sends to Alertmanager
(deploy/alertmanager/alertmanager.yml), which posts to a webhook receiver the test runs on loopback. Only
the durations are shortened in the test copies (a `for:` and Alertmanager's group timings)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed.alertmanager import Alertmanager
from testbed.certs import Pki
from testbed.exposition import metric_sum
from testbed.paths import CLUSTER
from testbed.pipeline import Pipeline
from testbed.webhook import WebhookReceiver, webhook_receiver
from tests.helpers import Processes, wait_until

pytestmark = pytest.mark.e2e

FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def alertmanager(procs: Processes, tmp_path: Path, webhook: WebhookReceiver) -> Alertmanager:
    """Alertmanager alone, with make-certs credentials of its own."""
    pki = Pki(tmp_path / "pki")
    pki.make(nodes=["bupt-a"])
    manager = Alertmanager(procs, tmp_path / "alertmanager", webhook_url=webhook.url, timings=FAST, pki=pki)
    manager.start()
    return manager


def alertmanager_of(stack: Pipeline, procs: Processes, webhook: WebhookReceiver) -> Alertmanager:
    """Alertmanager with the centre's credentials (its certificate and users come from the same
    make-certs run), the centre's Prometheus sending to it as prometheus.yml ships."""
    manager = Alertmanager(
        procs, stack.workdir / "alertmanager", webhook_url=webhook.url, timings=FAST, pki=stack.pki
    )
    stack.central.send_alerts_to(manager.address)
    manager.start()
    return manager


def write_flaky_script(directory: Path, node: str) -> tuple[Path, Path]:
    """nodes.conf running `flaky` every second; the script fails while the returned flag file exists."""
    directory.mkdir(parents=True, exist_ok=True)
    flag = directory / "broken"
    (directory / "flaky.sh").write_text(
        f'#!/bin/bash\nif [[ -e {str(flag)!r} ]]; then echo "sensor not answering" >&2; exit 1; fi\necho "e2e_ok=1"\n'
    )
    config = directory / "nodes.conf"
    config.write_text(f"{node}=flaky:1s\n")
    return config, flag


class TestAlertDelivery:
    def test_a_firing_alert_and_its_resolution_reach_the_webhook(
        self, pipeline: Callable[..., Pipeline], procs: Processes, webhook: WebhookReceiver
    ) -> None:
        """A script that starts failing on a node raises EdgeScriptFailing at the centre; the webhook gets
        it firing, with the node, the script and the summary, then resolved once the script succeeds.
        Prometheus reaches Alertmanager as shipped: TLS verified with the CA, its own user."""
        stack = pipeline(node="bupt-a")
        alertmanager = alertmanager_of(stack, procs, webhook)
        stack.central.set_rule_durations("EdgeScriptFailing", **{"for": "2s"})
        stack.start_infrastructure()
        active = wait_until(
            lambda: stack.central.api("alertmanagers")["activeAlertmanagers"], timeout=30, what="an Alertmanager"
        )
        assert [am["url"] for am in active] == [f"https://{alertmanager.address}/api/v2/alerts"]

        config, flag = write_flaky_script(stack.scripts_dir, "bupt-a")
        flag.touch()
        stack.node.start_collector(config=config)
        labels = {"alertname": "EdgeScriptFailing", "node": "bupt-a", "script": "flaky"}
        firing = wait_until(lambda: webhook.alerts("firing", **labels), timeout=90, what="firing alert at the webhook")
        assert firing[0]["annotations"]["summary"] == "Script flaky fails on node bupt-a"
        assert firing[0]["labels"]["severity"] == "warning"
        assert webhook.alerts("resolved", **labels) == []

        flag.unlink()
        resolved = wait_until(
            lambda: webhook.alerts("resolved", **labels), timeout=90, what="resolved alert at the webhook"
        )
        assert resolved[0]["endsAt"] >= firing[0]["startsAt"]
        # Grouped by alert name and node (its cluster and name), as deploy/alertmanager routes them.
        groups = {tuple(sorted(n["groupLabels"].items())) for n in webhook.notifications}
        assert (("alertname", "EdgeScriptFailing"), ("cluster", CLUSTER), ("node", "bupt-a")) in groups
        # Nothing the centre meant to send was dropped (it was, with no Alertmanager configured), and
        # none of its sends failed (a wrong CA or password would count here).
        metrics = stack.central.metrics()
        assert metric_sum(metrics, "prometheus_notifications_dropped_total") == 0
        assert metric_sum(metrics, "prometheus_notifications_errors_total") == 0


class TestRouting:
    def post_alerts(self, manager: Alertmanager, alerts: list[dict[str, dict[str, str]]]) -> None:
        status, body = manager.request("POST", "/api/v2/alerts", alerts)
        assert status == 200, body

    def test_a_silent_node_inhibits_its_per_script_alerts_but_not_the_vmagent_ones(
        self, alertmanager: Alertmanager, webhook: WebhookReceiver
    ) -> None:
        """While EdgeNodeSilent fires for a node, that node's script alerts are suppressed (they only repeat
        it); its vmagent alerts, which say why it is silent, and other nodes' alerts are delivered."""
        self.post_alerts(
            alertmanager,
            [
                {"labels": {"alertname": "EdgeNodeSilent", "node": "a", "severity": "critical"}},
                {"labels": {"alertname": "EdgeScriptFailing", "node": "a", "script": "s", "severity": "warning"}},
                {"labels": {"alertname": "EdgeVmagentQueueDropping", "node": "a", "severity": "critical"}},
                {"labels": {"alertname": "EdgeScriptFailing", "node": "b", "script": "s", "severity": "warning"}},
            ],
        )
        wait_until(lambda: len(webhook.alerts("firing")) >= 3, timeout=30, what="three notifications")
        delivered = {(a["labels"]["alertname"], a["labels"]["node"]) for a in webhook.alerts("firing")}
        assert delivered == {("EdgeNodeSilent", "a"), ("EdgeVmagentQueueDropping", "a"), ("EdgeScriptFailing", "b")}
        states = {(a["labels"]["alertname"], a["labels"]["node"]): a["status"]["state"] for a in alertmanager.alerts()}
        assert states[("EdgeScriptFailing", "a")] == "suppressed"


class TestNodeExporterTextfileAlerts:
    def test_a_bad_file_and_a_stale_file_are_alerted_at_the_centre(self, pipeline: Callable[..., Pipeline]) -> None:
        """Another writer's bad .prom file (node_textfile_scrape_error) and a collector file no longer
        rewritten (its mtime, vs the scrape time) raise EdgeTextfileScrapeError and EdgeTextfileStale for
        the node, with the real node_exporter and vmagent; the shipped expressions, `for:` shortened."""
        stack = pipeline(node="bupt-a")
        for alert in ("EdgeTextfileScrapeError", "EdgeTextfileStale"):
            stack.central.set_rule_durations(alert, **{"for": "1s"})
        written = stack.node.textfile_dir / "custom_metrics.prom"
        written.write_text("# HELP edge_collector_info x\n# TYPE edge_collector_info gauge\nedge_collector_info 1\n")
        ten_minutes_ago = time.time() - 600
        os.utime(written, (ten_minutes_ago, ten_minutes_ago))
        (stack.node.textfile_dir / "other-writer.prom").write_text("this is not exposition format\n")
        stack.start_infrastructure()

        def firing() -> set[str]:
            return {
                a["labels"]["alertname"]
                for a in stack.central.alerts()
                if a["labels"].get("node") == "bupt-a" and a["labels"]["alertname"].startswith("EdgeTextfile")
            }

        assert wait_until(lambda: firing() == {"EdgeTextfileScrapeError", "EdgeTextfileStale"}, timeout=60)
