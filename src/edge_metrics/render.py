"""Families -> Prometheus text exposition (format 0.0.4) that node_exporter 1.5's textfile collector accepts whole.

The one place that writes the format's lines: a series line `name{labels} value` (sample_line, render_labels),
a family's `# HELP`/`# TYPE` header (header) and, for push mode, the timestamp after the value (stamp_lines).
The textfile, the self-metrics and the readings pushed to vmagent are all written with them.

The textfile has no timestamps (one timestamp makes node_exporter drop the file), one HELP and TYPE per family,
label values escaped, families sorted by name and series by labels so an unchanged reading renders the same bytes.
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
        append(_header(name, help_text, family.type))
        if len(samples) == 1:  # the common case: no sorting
            append(sample_line(name, render_labels(samples[0].labels), samples[0].value))
            continue
        series = sorted(((render_labels(s.labels), s.value) for s in samples), key=_first)
        lines.extend([sample_line(name, labels, value) for labels, value in series])
    lines.extend(block for _, block in pending[merged:])
    append("")
    return "\n".join(lines)


def _name(family: Family) -> str:
    return family.name


def _first(pair: tuple[str, object]) -> str:
    return pair[0]


def sample_line(name: str, labels: str, value: float) -> str:
    """One series line, `name{labels} value`, without its newline; `labels` as render_labels() gives them."""
    return f"{name}{labels} {format_value(value)}"


def header(name: str, help_text: str | None, kind: str | None) -> str:
    """The `# HELP` (escaped) and `# TYPE` lines of family `name`, without the final newline; a part that is None
    is left out (a script may declare one without the other)."""
    return _header(name, None if help_text is None else escape_help(help_text), kind)


def _header(name: str, escaped_help: str | None, kind: str | None) -> str:
    if escaped_help is not None and kind is not None:
        return f"# HELP {name} {escaped_help}\n# TYPE {name} {kind}"
    if escaped_help is not None:
        return f"# HELP {name} {escaped_help}"
    return "" if kind is None else f"# TYPE {name} {kind}"


def stamp_lines(lines: bytes, timestamp_ms: int) -> bytes:
    """Every series line of `lines` (each ending in a newline) with the millisecond timestamp after its value: a
    13-digit number (CLOCK_FLOOR), never a small integer, which vmagent would take as seconds. HELP and TYPE lines
    take none. A label value cannot hold a raw newline (it is escaped), so a header is a line that starts with
    `#`: the series lines before each run of headers are stamped with one replace, the headers copied."""
    stamp = b" %d\n" % timestamp_ms
    text = b"\n" + lines  # so that a header on the first line also follows a newline
    find = text.find
    pieces = []
    start = 1  # the first line not copied yet
    while (at := find(b"\n#", start - 1)) >= 0:
        pieces.append(text[start : at + 1].replace(b"\n", stamp))
        start = at + 1
        while text.startswith(b"#", start):
            start = find(b"\n", start) + 1 or len(text)
        pieces.append(text[at + 1 : start])
    pieces.append(text[start:].replace(b"\n", stamp))
    return b"".join(pieces)


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
    """`{a="1",b="2"}` sorted by name, or ""."""
    if not labels:
        return ""
    inner = ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sorted(labels))
    return "{" + inner + "}"


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
