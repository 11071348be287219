"""Families -> Prometheus text exposition (format 0.0.4) that node_exporter 1.5's textfile collector accepts whole.

No timestamps (one timestamp makes node_exporter drop the file), one HELP and TYPE per family, label values escaped,
families sorted by name and series by labels so an unchanged reading renders the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge_metrics.samples import Family, Labels


def render(families: Iterable[Family]) -> str:
    lines: list[str] = []
    for family in sorted(families, key=lambda f: f.name):
        if not family.samples:
            continue
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        series = sorted(((_render_labels(s.labels), s.value) for s in family.samples), key=lambda x: x[0])
        lines.extend(f"{family.name}{labels} {format_value(value)}" for labels, value in series)
    lines.append("")
    return "\n".join(lines)


def format_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    # float(): an int is a valid float to the type checker but has no is_integer() before Python 3.12.
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _render_labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_escape_label_value(value)}"' for name, value in sorted(labels))
    return "{" + inner + "}"


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
