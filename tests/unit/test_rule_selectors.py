"""The alert and recording rules select and group with the selectors and labels of deploy/mixin/config.yaml.

The rules files are written by hand (the dashboards are generated from the config); these tests make the
two agree: a changed selector or label name in the config fails here, naming the rule to change.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.helpers import REPO

RULES = REPO / "deploy" / "prometheus" / "rules"
CONFIG = yaml.safe_load((REPO / "deploy" / "mixin" / "config.yaml").read_text())
# The rules files this project's mixin owns; files other engineers add are checked once listed here.
MIXIN_FILES = ["edge-alerts.yml", "centre-alerts.yml", "edge-recording.yml", "edge-fleet.yml"]
RULES_OF = [
    (name, rule)
    for name in MIXIN_FILES
    for group in yaml.safe_load((RULES / name).read_text())["groups"]
    for rule in group["rules"]
]
IDS = [f"{name}:{rule.get('alert') or rule.get('record')}" for name, rule in RULES_OF]

GROUPING = re.compile(r"\b(?:by|on|without|ignoring)\s*\(([^)]*)\)")
JOB_MATCHER = re.compile(r'\bjob\s*=~?\s*"[^"]*"')


@pytest.mark.parametrize(("name", "rule"), RULES_OF, ids=IDS)
def test_job_matchers_are_the_configured_selectors(name: str, rule: dict[str, Any]) -> None:
    """Every `job=...` matcher in an expression is one of edgeSelector, vmagentSelector, centralSelector."""
    selectors = {CONFIG["edgeSelector"], CONFIG["vmagentSelector"], CONFIG["centralSelector"]}
    for matcher in JOB_MATCHER.findall(rule["expr"]):
        assert matcher in selectors, f"{name}: {matcher} is not a selector of deploy/mixin/config.yaml"


@pytest.mark.parametrize(("name", "rule"), RULES_OF, ids=IDS)
def test_aggregations_keep_node_and_cluster(name: str, rule: dict[str, Any]) -> None:
    """Grouping clauses use nodeLabel for the node, and keep clusterLabel beside it, so that one node
    name in two clusters writing to one centre stays two nodes."""
    allowed = {CONFIG["nodeLabel"], CONFIG["clusterLabel"], "job", "instance"}
    for clause in GROUPING.findall(rule["expr"]):
        labels = {label.strip() for label in clause.split(",") if label.strip()}
        assert labels <= allowed, f"{name}: grouping ({clause}) uses labels outside {sorted(allowed)}"
        if CONFIG["nodeLabel"] in labels:
            assert CONFIG["clusterLabel"] in labels, f"{name}: grouping ({clause}) drops {CONFIG['clusterLabel']}"

