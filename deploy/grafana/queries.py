"""Reading the generated dashboards back: their panels, queries and Grafana's template variables.

Used by render.py (pictures from a live Prometheus) and by the tests that run every query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboards"

# What Grafana puts in for its built-in variables, for a query run outside Grafana over the
# dashboards' default period. $__rate_interval: Grafana's max(4 x scrape interval, interval +
# scrape interval) for the 15 s scrape interval the datasource is provisioned with.
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


def dashboard_files(directory: Path = DASHBOARD_DIR) -> list[Path]:
    return sorted(directory.glob("*.json"))


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


_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """`expr` with $name and ${name} replaced as Grafana does; an unknown variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for ${name} in {expr!r}")
        return values[name]

    return _VARIABLE.sub(replace, expr)
