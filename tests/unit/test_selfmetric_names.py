"""Every `edge_collector_*` name that the alert and recording rules, the dashboards, the runbooks, the other
docs and the manifests use is a family the collector exports (selfmetrics.FAMILIES, the one declaration of
them), so a misspelt or renamed self-metric fails here instead of an alert that never fires or a panel that
shows "No data".

The names come from the files themselves: everything under deploy/ (the mixin and the rules, dashboards and
operator objects generated from it, the chart, the manifests), docs/ and README.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_metrics.selfmetrics import FAMILIES, PREFIX

REPO = Path(__file__).resolve().parents[2]
# A self-metric name; one that ends in `_` is a prefix (`edge_collector_*`, `__name__!~"edge_collector_.+"`).
NAME = re.compile(r"(?<![\w:])" + re.escape(PREFIX) + r"\w*")
RULES = REPO / "deploy" / "prometheus" / "rules"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"
# What the alerts on a node's collector read: the extraction must find at least these in the rules.
ALERT_FAMILIES = {
    "edge_collector_script_success",
    "edge_collector_last_write_timestamp_seconds",
    "edge_collector_push_dropped_samples_total",
    "edge_collector_clock_synchronized",
}


def searched_files() -> Iterator[Path]:
    for path in sorted((REPO / "deploy").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            yield path
    yield from sorted((REPO / "docs").glob("*.md"))
    yield REPO / "README.md"


def used_names() -> dict[str, list[str]]:
    """Each `edge_collector_*` name used, and every `file:line` that uses it."""
    used: dict[str, list[str]] = {}
    for path in searched_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # an image or another binary file
        for number, line in enumerate(text.splitlines(), start=1):
            for name in NAME.findall(line):
                used.setdefault(name, []).append(f"{path.relative_to(REPO)}:{number}")
    return used


USED = used_names()


def where(directory: Path) -> set[str]:
    """The names used in the files of `directory`."""
    return {name for name, places in USED.items()
            if any((REPO / place.rsplit(":", 1)[0]).is_relative_to(directory) for place in places)}


class TestSelfMetricNames:
    def test_extraction_finds_the_names_the_rules_and_dashboards_read(self) -> None:
        """The extraction sees the families the alerts are built on, and names in the dashboards and the runbooks
        (else the next test proves nothing)."""
        assert where(RULES) >= ALERT_FAMILIES, sorted(where(RULES))
        assert len(where(DASHBOARDS) - {PREFIX}) >= 10, sorted(where(DASHBOARDS))
        assert any(place.startswith("docs/runbooks") for places in USED.values() for place in places)

    @pytest.mark.parametrize("name", sorted(USED))
    def test_every_name_used_is_exported(self, name: str) -> None:
        """Each name is a family in selfmetrics.FAMILIES (a prefix: the start of one)."""
        if name.endswith("_"):
            assert any(family.startswith(name) for family in FAMILIES), f"{USED[name][0]}: no family starts with {name}"
        else:
            assert name in FAMILIES, f"{name}, used at {', '.join(USED[name])}, is not a family the collector exports"
