"""Script output (`key=value` and `key{label="v"}=value` lines) -> samples, plus each rejected line and why."""

from __future__ import annotations

import math
import re

from edge_metrics.samples import Labels, ParseResult, RejectedLine, Sample

SELF_METRIC_PREFIX = "edge_collector_"

# The common case, a bare `key=value`, takes one regex; labelled lines take the slower hand parser.
_SIMPLE = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*(\S+)\s*")
_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SPECIAL_VALUES = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


class LineError(ValueError):
    """One line of script output is invalid; the message is the reason shown to the user."""


def parse_output(data: bytes, *, prefix: str) -> ParseResult:
    """Parse a script's stdout. Invalid lines are rejected one by one; the valid ones are kept.

    The same name and labels twice: the last value wins and the earlier line is reported as overridden.
    """
    by_series: dict[tuple[str, Labels], tuple[int, Sample, str]] = {}
    label_names: dict[str, tuple[frozenset[str], int]] = {}  # family -> label names of its first line
    rejected: list[RejectedLine] = []
    overridden: list[RejectedLine] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            rejected.append(RejectedLine(number, raw[:200].decode("utf-8", "replace"), "not valid UTF-8"))
            continue
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            sample = parse_line(stripped, prefix=prefix)
        except LineError as error:
            rejected.append(RejectedLine(number, stripped[:200], str(error)))
            continue
        names = frozenset(name for name, _ in sample.labels)
        first = label_names.setdefault(sample.name, (names, number))
        if first[0] != names:
            reason = f"label names {_names(names)} differ from {_names(first[0])} on line {first[1]}"
            rejected.append(RejectedLine(number, stripped[:200], reason))
            continue
        key = (sample.name, tuple(sorted(sample.labels)))
        previous = by_series.get(key)
        if previous is not None:
            overridden.append(RejectedLine(previous[0], previous[2], f"overridden by line {number}"))
        by_series[key] = (number, sample, stripped[:200])
    samples = tuple(sample for _, sample, _ in by_series.values())
    return ParseResult(samples=samples, rejected=tuple(rejected), overridden=tuple(overridden))


def _names(names: frozenset[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def parse_line(line: str, *, prefix: str) -> Sample:
    """One stripped, non-comment line -> Sample; raises LineError with the reason."""
    simple = _SIMPLE.fullmatch(line)
    if simple is not None:
        key, value_text = simple.groups()
        labels: Labels = ()
    else:
        key, labels, value_text = _split_labelled(line)
    name = prefix + key
    if name.startswith(SELF_METRIC_PREFIX):
        raise LineError(f"metric name {name!r} is reserved for the collector's own metrics")
    return Sample(name=name, labels=labels, value=parse_value(value_text))


def parse_value(text: str) -> float:
    special = _SPECIAL_VALUES.get(text.lower())
    if special is not None:
        return special
    if not _NUMBER.fullmatch(text):
        raise LineError(f"value {text!r} is not a number")
    return float(text)


def _split_labelled(line: str) -> tuple[str, Labels, str]:
    brace = line.find("{")
    equals = line.find("=")
    if equals < 0:
        raise LineError("expected key=value")
    if brace < 0 or equals < brace:
        key = line[:equals].strip()
        _check_key(key)
        # A valid key with a valid value would have matched the fast path: the value is the problem.
        value = line[equals + 1 :].strip()
        if not value:
            raise LineError(f"missing value for {key!r}")
        raise LineError(f"value {value!r} is not a number")
    key = line[:brace].strip()
    _check_key(key)
    labels, end = _parse_labels(line, brace + 1)
    rest = line[end:].strip()
    if not rest.startswith("="):
        raise LineError("expected '=' after the label set")
    value = rest[1:].strip()
    if not value:
        raise LineError(f"missing value for {key!r}")
    if any(char.isspace() for char in value):
        raise LineError(f"value {value!r} is not a number")
    return key, labels, value


def _check_key(key: str) -> None:
    if not key:
        raise LineError("empty key")
    if not _KEY.fullmatch(key):
        raise LineError(f"invalid key {key!r} (must match [a-zA-Z_][a-zA-Z0-9_]*)")


def _parse_labels(line: str, position: int) -> tuple[Labels, int]:
    """Parse `name="value",...}` starting after `{`; return the labels and the index after `}`."""
    labels: list[tuple[str, str]] = []
    seen: set[str] = set()
    length = len(line)
    while True:
        while position < length and line[position] == " ":
            position += 1
        if position < length and line[position] == "}":
            return tuple(labels), position + 1
        match = _LABEL_NAME.match(line, position)
        if match is None:
            raise LineError(f"invalid label name at column {position + 1}")
        name = match.group()
        if name.startswith("__"):
            raise LineError(f"label name {name!r} is reserved (starts with '__')")
        if name in seen:
            raise LineError(f"label {name!r} given twice")
        seen.add(name)
        position = match.end()
        while position < length and line[position] == " ":
            position += 1
        if line[position : position + 2] != '="':
            raise LineError(f"expected =\"...\" after label {name!r}")
        value, position = _parse_label_value(line, position + 2)
        labels.append((name, value))
        while position < length and line[position] == " ":
            position += 1
        if position < length and line[position] == ",":
            position += 1
        elif position >= length or line[position] != "}":
            raise LineError("expected ',' or '}' in the label set")


def _parse_label_value(line: str, position: int) -> tuple[str, int]:
    """Read an escaped label value up to its closing quote; return it and the index after the quote."""
    chars: list[str] = []
    length = len(line)
    while position < length:
        char = line[position]
        if char == '"':
            return "".join(chars), position + 1
        if char == "\\":
            escaped = _ESCAPES.get(line[position + 1 : position + 2])
            if escaped is None:
                raise LineError(f"invalid escape sequence at column {position + 1} (allowed: \\\\, \\\", \\n)")
            chars.append(escaped)
            position += 2
            continue
        chars.append(char)
        position += 1
    raise LineError("unterminated label value")
