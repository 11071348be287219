"""The settings that make alerting and credential changes take effect (issue 18): vmauth re-reads its users
within the bound docs/security.md states, the heartbeat has a destination, Prometheus reaches Alertmanager
with TLS and its user, and a VictoriaMetrics centre stores its own metrics for EdgeCentreIgnoresRows."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from edge_metrics.durations import parse_duration
from testbed.flags import read_flags
from testbed.paths import ALERTMANAGER_CONFIG, PROMETHEUS_DIR, VMAUTH_FLAGS
from tests.helpers import REPO, RULES, rules_in

SECURITY_DOC = REPO / "docs" / "security.md"
VICTORIA_FLAGS = REPO / "deploy" / "victoria-metrics" / "victoria-metrics.flags"


def flags(path: Path) -> dict[str, str]:
    return dict(flag.partition("=")[::2] for flag in read_flags(path, {}))


class TestRevocationBound:
    def test_vmauth_rereads_its_users_within_the_documented_bound(self) -> None:
        """-configCheckInterval is on (vmauth's default is never) and docs/security.md states its value."""
        interval = flags(VMAUTH_FLAGS)["-configCheckInterval"]
        assert 0 < parse_duration(interval) <= 30
        assert f"-configCheckInterval={interval}" in SECURITY_DOC.read_text()


class TestHeartbeat:
    def test_the_watchdog_goes_to_a_dead_mans_switch_url(self) -> None:
        """EdgeAlertingWatchdog exists, always fires, and its route ends at a webhook (no resolved
        messages) re-sent every minute."""
        watchdog = [r for r in rules_in(RULES / "centre-alerts.yml") if r.get("alert") == "EdgeAlertingWatchdog"]
        assert [r["expr"].strip() for r in watchdog] == ["vector(1)"]
        config = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
        route = next(r for r in config["route"]["routes"] if r["matchers"] == ['alertname="EdgeAlertingWatchdog"'])
        assert parse_duration(route["repeat_interval"]) <= 60
        receiver = next(r for r in config["receivers"] if r["name"] == route["receiver"])
        [hook] = receiver["webhook_configs"]
        assert re.match(r"https://", hook["url"]) and hook["send_resolved"] is False


class TestPrometheusToAlertmanager:
    def test_alerts_and_the_scrape_use_tls_and_the_prometheus_user(self) -> None:
        config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        jobs = [job for job in config["scrape_configs"] if job["job_name"] == "alertmanager"]
        assert len(jobs) == 1
        for section in [*config["alerting"]["alertmanagers"], *jobs]:
            assert section["scheme"] == "https"
            assert section["basic_auth"]["username"] == "prometheus"
            assert section["basic_auth"]["password_file"].endswith("/alertmanager-prometheus.password")
            assert section["tls_config"]["ca_file"].endswith("/ca.crt")
        assert "rules/alerting-alerts.yml" in config["rule_files"]


class TestVictoriaMetricsSelfScrape:
    def test_its_own_metrics_are_stored_and_ignored_rows_alerted(self) -> None:
        assert parse_duration(flags(VICTORIA_FLAGS)["-selfScrapeInterval"]) <= 60
        alert = next(r for r in rules_in(RULES / "alerting-alerts.yml") if r.get("alert") == "EdgeCentreIgnoresRows")
        assert "vm_rows_ignored_total" in alert["expr"]
