"""The fleet's backlog rules (deploy/prometheus/rules/edge-fleet.yml) load and pass their promtool tests."""

from __future__ import annotations

import subprocess

import yaml

from tests.e2e.stack import PROMETHEUS_DIR
from tests.helpers import components

RULES = PROMETHEUS_DIR / "rules"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([components()["PROMTOOL_BIN"], *args], cwd=RULES, capture_output=True, text=True)


def test_rules_are_valid_and_loaded_by_the_centre() -> None:
    """promtool accepts the rules, and prometheus.yml loads them."""
    result = promtool("check", "rules", "edge-fleet.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert "rules/edge-fleet.yml" in config["rule_files"]


def test_unit_tests_pass_and_cover_every_alert() -> None:
    """A draining backlog gets its drain time recorded and stays quiet; a growing or too slow one alerts."""
    result = promtool("test", "rules", "edge-fleet.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    rules = yaml.safe_load((RULES / "edge-fleet.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((RULES / "edge-fleet.test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert alerts - tested == set()
