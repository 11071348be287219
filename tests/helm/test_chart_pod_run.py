"""The chart's default install, run (tests/k8s/podsim.py emulates the kubelet, as for the kustomize manifests):
no node_exporter in the pod, and still the readings and the collector's health reach the centre with the labels
the rules select, and the rules that read them evaluate for the node."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.helm.chart import template
from tests.helpers import REPO, wait_until
from tests.k8s.test_pod_spec_run import NODE_NAME, Deployment, run_pods

pytestmark = pytest.mark.k8s

MIXIN = yaml.safe_load((REPO / "deploy" / "mixin" / "config.yaml").read_text())
EDGE = MIXIN["edgeSelector"]
# Alerts whose input is node_exporter's own metrics (its textfile collector, its timex collector): without a
# node_exporter of ours they have no data from this pipeline. What covers each instead: docs/kubernetes.md.
NODE_EXPORTER_ALERTS = {"EdgeTextfileScrapeError", "EdgeTextfileStale", "EdgeClockNotSynchronised", "EdgeClockSkew"}

WATCHDOG = "EdgeAlertingWatchdog"  # always firing, by design: proves the alert path works


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    objects = template()
    assert not [c for o in objects if o["kind"] == "DaemonSet"
                for c in o["spec"]["template"]["spec"]["containers"] if c["name"] == "node-exporter"]
    with run_pods(objects, tmp_path_factory.mktemp("node")) as started:
        yield started


def _series(deployment: Deployment, promql: str, what: str) -> list[dict[str, Any]]:
    return wait_until(lambda: deployment.query(promql), timeout=90, interval=1,
                      what=f"{what} at the centre (logs in {deployment.logs})")


class TestWithoutNodeExporter:
    def test_readings_and_health_reach_the_centre(self, deployment: Deployment) -> None:
        readings = _series(deployment, f'{{__name__=~"edge_.+", __name__!~"edge_collector_.+", node="{NODE_NAME}"}}',
                           "a pushed reading")
        assert readings
        up = _series(deployment, f'up{{{EDGE}, node="{NODE_NAME}"}} == 1', "the collector's endpoint scraped")
        assert up[0]["metric"]["job"] == "node-exporter"
        info = _series(deployment, f'edge_collector_info{{{EDGE}, node="{NODE_NAME}"}}', "edge_collector_info")
        assert info[0]["metric"]["node"] == NODE_NAME

    def test_recording_rules_have_the_node(self, deployment: Deployment) -> None:
        age = _series(deployment, f'edge:reading_age_seconds{{node="{NODE_NAME}"}}', "edge:reading_age_seconds")
        assert {s["metric"]["script"] for s in age} == {"space_server"}

    def test_every_alert_reads_series_the_pod_sends(self, deployment: Deployment) -> None:
        """Each edge alert's metric names, except node_exporter's own, exist at the centre for the node; none of
        them fires on a healthy node."""
        rules = json.loads(deployment.central_get("/api/v1/rules"))["data"]["groups"]
        alerts = [rule for group in rules for rule in group["rules"]
                  if rule["type"] == "alerting" and rule["name"] not in NODE_EXPORTER_ALERTS]
        wanted = {f"{rule['name']}: {name}": name for rule in alerts for name in _metric_names(rule["query"])
                  if name.startswith(("edge_collector", "up"))}

        def missing() -> list[str]:
            return [what for what, name in wanted.items() if not deployment.query(f'{name}{{node="{NODE_NAME}"}}')]

        # A family that exists from the first acknowledged push on (the last success's time) reaches the centre
        # with the collector's next write of its file and vmagent's next scrape of it.
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not missing(), timeout=90, interval=2, what="every series an alert reads")
        assert missing() == []
        firing = [rule["name"] for rule in alerts if rule["state"] == "firing" and rule["name"] != WATCHDOG]
        assert firing == []


def _metric_names(query: str) -> set[str]:
    return set(re.findall(r"\b(edge_collector_[a-z_]+|up)\b(?=\s*[{\[)]|\s)", query))
