"""Families -> Prometheus text exposition (format 0.0.4) that node_exporter 1.5's textfile collector accepts whole.

No timestamps (one timestamp makes node_exporter drop the file), one HELP and TYPE per family, label values escaped,
families sorted by name and series by labels so an unchanged reading renders the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from edge_metrics.samples import Family, Labels

Block = tuple[str, str]
"""A family's name and its rendered lines (HELP, TYPE, series), without the final newline."""


def render(families: Iterable[Family], rendered: Iterable[Block] = ()) -> str:
    """The exposition of `families`, plus blocks already rendered elsewhere (the self-metrics), merged in by name."""
    lines: list[str] = []
    append = lines.append
    pending = sorted(rendered, key=_first)
    merged = 0  # pending[:merged] are in `lines`
    helps: dict[str, str] = {}  # escaped once per distinct help text: many families share their script's
    for family in sorted(families, key=_name):
        samples = family.samples
        if not samples:
            continue
        name = family.name
        while merged < len(pending) and pending[merged][0] < name:
            append(pending[merged][1])
            merged += 1
        help_text = helps.get(family.help)
        if help_text is None:
            help_text = helps[family.help] = escape_help(family.help)
        append(f"# HELP {name} {help_text}\n# TYPE {name} {family.type}")
        if len(samples) == 1:  # the common case: no sorting
            append(f"{name}{_render_labels(samples[0].labels)} {format_value(samples[0].value)}")
            continue
        series = sorted(((_render_labels(s.labels), s.value) for s in samples), key=_first)
        lines.extend(f"{name}{labels} {format_value(value)}" for labels, value in series)
    lines.extend(block for _, block in pending[merged:])
    append("")
    return "\n".join(lines)


def _name(family: Family) -> str:
    return family.name


def _first(pair: tuple[str, object]) -> str:
    return pair[0]


def format_value(value: float) -> str:
    # float(): an int is a valid float to the type checker but has no is_integer() before Python 3.12.
    value = float(value)
    if value.is_integer():  # never true for NaN or an infinity
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def render_labels(labels: Labels) -> str:
    """`{a="1",b="2"}` sorted by name, or "" (push mode renders its lines with this too)."""
    return _render_labels(labels)


def _render_labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sorted(labels))
    return "{" + inner + "}"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
