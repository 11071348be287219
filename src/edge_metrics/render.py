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


def render(families: Iterable[Family]) -> str:
    return join_blocks(render_blocks(families))


def render_blocks(families: Iterable[Family]) -> list[Block]:
    """Each family with samples rendered on its own; `join_blocks` puts them in order."""
    blocks: list[Block] = []
    append = blocks.append
    helps: dict[str, str] = {}  # escaped once per distinct help text: many families share their script's
    for family in families:
        samples = family.samples
        if not samples:
            continue
        name = family.name
        help_text = helps.get(family.help)
        if help_text is None:
            help_text = helps[family.help] = escape_help(family.help)
        header = f"# HELP {name} {help_text}\n# TYPE {name} {family.type}"
        if len(samples) == 1:  # the common case: no sorting
            sample = samples[0]
            append((name, f"{header}\n{name}{_render_labels(sample.labels)} {format_value(sample.value)}"))
            continue
        series = sorted(((_render_labels(s.labels), s.value) for s in samples), key=_first)
        lines = "\n".join([f"{name}{labels} {format_value(value)}" for labels, value in series])
        append((name, f"{header}\n{lines}"))
    return blocks


def join_blocks(blocks: list[Block]) -> str:
    """The exposition: blocks sorted by family name (names are unique), each line ending in a newline."""
    if not blocks:
        return ""
    blocks.sort(key=_first)
    return "\n".join([block for _, block in blocks]) + "\n"


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


def _render_labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sorted(labels))
    return "{" + inner + "}"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
