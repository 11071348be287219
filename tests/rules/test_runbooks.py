"""Every alert of every rules file links a runbook section and a dashboard view that exist.

The runbooks are the sections of docs/runbooks.md, the dashboards those of deploy/grafana/dashboards/;
the bases of both links are set once in deploy/mixin/config.yaml and written by deploy/mixin/generate.py
into the rules and into the expectations of their promtool tests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, RULE_FILES, RULES, rules_in

RUNBOOKS = REPO / "docs" / "runbooks.md"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
GENERATOR = REPO / "deploy" / "mixin" / "generate.py"
CONFIG = yaml.safe_load((REPO / "deploy" / "mixin" / "config.yaml").read_text())

# Every rules file, including those added later (edge-security.yml, edge-fleet.yml...); not their tests.
ALERTS = [(name, rule) for name in RULE_FILES for rule in rules_in(RULES / name) if "alert" in rule]
IDS = [f"{name}:{rule['alert']}" for name, rule in ALERTS]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    return {github_anchor(match) for match in re.findall(r"^#+ (.+)$", markdown, re.MULTILINE)}


def dashboard_uids() -> set[str]:
    return {json.loads(path.read_text())["uid"] for path in DASHBOARDS.glob("*.json")}


def test_there_are_alerts_to_check() -> None:
    assert len(ALERTS) >= 20 and {"edge-alerts.yml", "centre-alerts.yml"} <= {name for name, _ in ALERTS}


@pytest.mark.parametrize(("rules", "rule"), ALERTS, ids=IDS)
def test_alert_links_its_runbook_section(rules: str, rule: dict[str, Any]) -> None:
    """runbook_url is the configured base plus the anchor of the section named after the alert, and
    docs/runbooks.md has that section."""
    url = rule["annotations"].get("runbook_url", "")
    base, _, anchor = url.partition("#")
    assert base == CONFIG["runbookURLBase"], f"{rules}: {rule['alert']} runbook_url {url!r}"
    assert anchor == github_anchor(rule["alert"]), f"{rules}: {rule['alert']} runbook_url {url!r}"
    assert anchor in anchors(RUNBOOKS.read_text()), f"docs/runbooks.md has no section `{rule['alert']}`"


@pytest.mark.parametrize(("rules", "rule"), ALERTS, ids=IDS)
def test_alert_links_an_existing_dashboard(rules: str, rule: dict[str, Any]) -> None:
    """dashboard is <grafanaURL>/d/<uid> of a committed dashboard; a node's alert opens that node's view."""
    url = rule["annotations"].get("dashboard", "")
    prefix = CONFIG["grafanaURL"].rstrip("/") + "/d/"
    assert url.startswith(prefix), f"{rules}: {rule['alert']} dashboard {url!r}"
    path, _, query = url.removeprefix(prefix).partition("?")
    assert path in dashboard_uids(), f"{rules}: {rule['alert']} links to unknown dashboard uid {path!r}"
    node = CONFIG["nodeLabel"]
    if f"$labels.{node}" in rule["annotations"]["summary"]:
        # The dashboards' variable is `node` whatever the label is called.
        assert urllib.parse.parse_qs(query) == {"var-node": [f"{{{{ $labels.{node} }}}}"]}, rule["alert"]


def test_every_runbook_section_belongs_to_an_alert() -> None:
    """No section for an alert that was renamed or removed (its old links would point at stale advice)."""
    sections = re.findall(r"^### (.+)$", RUNBOOKS.read_text(), re.MULTILINE)
    assert sorted(sections) == sorted(rule["alert"] for _, rule in ALERTS)


def test_promtool_tests_expect_the_links_of_another_config(tmp_path: Path) -> None:
    """Changing runbookURLBase and grafanaURL and regenerating moves every link, in the rules and in the
    annotations their promtool tests expect (whose comments and layout stay as written)."""
    config = tmp_path / "config.yaml"
    config.write_text(
        (REPO / "deploy" / "mixin" / "config.yaml")
        .read_text()
        .replace(CONFIG["runbookURLBase"], "https://wiki.example/edge")
        .replace(CONFIG["grafanaURL"], "https://grafana.example/")
    )
    rules = tmp_path / "rules"
    rules.mkdir()
    for path in RULES.glob("*.test.yml"):
        (rules / path.name).write_text(path.read_text())
    argv = [sys.executable, str(GENERATOR), "--out", str(rules), "--config", str(config)]
    assert subprocess.run([*argv, "--check"], capture_output=True, timeout=60, check=False).returncode == 1
    assert subprocess.run(argv, capture_output=True, timeout=60, check=False).returncode == 0
    text = (rules / "edge-alerts.yml").read_text() + (rules / "edge-alerts.test.yml").read_text()
    assert CONFIG["runbookURLBase"] not in text and CONFIG["grafanaURL"] not in text
    assert 'runbook_url: "https://wiki.example/edge#edgescriptfailing"' in text
    assert 'dashboard: "https://grafana.example/d/edge-node?var-node=bupt-a"' in text
    test = (rules / "edge-alerts.test.yml").read_text()
    assert test == (RULES / "edge-alerts.test.yml").read_text().replace(
        CONFIG["runbookURLBase"], "https://wiki.example/edge"
    ).replace(CONFIG["grafanaURL"].rstrip("/") + "/", "https://grafana.example/")
