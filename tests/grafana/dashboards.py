"""The committed dashboards as the tests see them: their panels, queries and template variables."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

from tests.helpers import REPO

GRAFANA_DIR = REPO / "deploy" / "grafana"
DASHBOARD_DIR = GRAFANA_DIR / "dashboards"
GENERATOR = GRAFANA_DIR / "generate.py"
DASHBOARD_FILES = sorted(DASHBOARD_DIR.glob("*.json"))

# What Grafana puts in for its built-in variables when a test runs a query itself. The e2e stack
# scrapes every second, so a minute holds plenty of samples for rate(); $__range is the default
# dashboard period, which is longer than any test runs (increase() over it sees the whole test).
GRAFANA_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "6h"}


class Target(NamedTuple):
    dashboard: str  # file name
    panel: str  # panel title
    ref: str
    expr: str
    legend: str


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def targets(path: Path) -> list[Target]:
    return [
        Target(path.name, panel["title"], target["refId"], target["expr"], target.get("legendFormat", ""))
        for panel in panels(load(path))
        for target in panel.get("targets", [])
    ]


def all_targets() -> list[Target]:
    return [target for path in DASHBOARD_FILES for target in targets(path)]


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with $name and ${name} replaced as Grafana does; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)
