"""Script output (`key=value` and `key{label="v"}=value` lines) -> samples, plus each rejected line and why."""

from __future__ import annotations

import math
import re

from edge_metrics.samples import Labels, Metadata, ParseResult, RejectedLine, Sample
from edge_metrics.selfmetrics import PREFIX as SELF_METRIC_PREFIX

# The common case, a bare `key=<decimal number>`, takes one regex and float(); anything else (NaN/Inf, errors,
# labels) goes through the slower checks below, which give the reasons. Measured in bench/collector_bench.py.
# ASCII-only (\w is [a-zA-Z0-9_], \d is [0-9]): faster, and whatever it misses still reaches the full checks.
_PLAIN = re.compile(r"([a-zA-Z_]\w*)\s*=\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)", re.ASCII)
# A labelled line without escapes or unusual spacing, e.g. `temp{zone="cpu",sensor="a"}=45.2`; the label pairs
# are then read with _LABEL_PAIR. Reserved, repeated or odd label names fall through to the hand parser.
_LABELLED = re.compile(
    r'([a-zA-Z_]\w*)\{( *(?:[a-zA-Z_]\w* *="[^"\\]*" *(?:, *|(?=\})))*)\}[ \t]*=[ \t]*'
    r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)",
    re.ASCII,
)
_LABEL_PAIR = re.compile(r'([a-zA-Z_]\w*) *="([^"\\]*)"', re.ASCII)
_SIMPLE = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*(\S+)\s*")
_NO_LABELS: frozenset[str] = frozenset()
_KEY = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_SPECIAL_VALUES = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}
_isinf = math.isinf
OUT_OF_RANGE = "value out of range (beyond ±1.8e308)"
# `# HELP key text` and `# TYPE key type`, as in Prometheus' text format; any other `#` line is a comment.
_METADATA = re.compile(r"#[ \t]+(HELP|TYPE)(?:[ \t]+(\S*))?(?:[ \t](.*))?", re.ASCII | re.DOTALL)
# The same with a valid key: the common case in one match; _METADATA then only explains what is wrong.
_DECLARED = re.compile(r"#[ \t]+(HELP|TYPE)[ \t]+([a-zA-Z_][a-zA-Z0-9_]*)(?:[ \t](.*))?", re.ASCII | re.DOTALL)
TYPES = ("gauge", "counter")


class LineError(ValueError):
    """One line of script output is invalid; the message is the reason shown to the user."""


def parse_output(data: bytes, *, prefix: str, max_series: int | None = None) -> ParseResult:
    """Parse a script's stdout. Invalid lines are rejected one by one; the valid ones are kept.

    The same name and labels twice: the last value wins and the earlier line is reported as overridden.
    With `max_series`, the first that many distinct series in output order are kept; the lines of any further
    series are only counted (`ParseResult.dropped`), so an output of 100,000 keys costs little memory.
    """
    bound = max_series if max_series is not None else -1
    dropped = 0
    # Series key: the name alone for an unlabelled series (the common case, no tuple to build), else
    # (name, sorted labels). A str never equals a tuple, so the two kinds cannot collide.
    by_series: dict[str | tuple[str, Labels], tuple[int, Sample, str]] = {}
    label_names: dict[str, tuple[frozenset[str], int]] = {}  # family -> label names of its first line
    rejected: list[RejectedLine] = []
    overridden: list[RejectedLine] = []
    declared = _Declarations(prefix)
    for number, text in enumerate(_lines(data), start=1):
        if isinstance(text, bytes):
            rejected.append(RejectedLine(number, text[:200].decode("utf-8", "replace"), "not valid UTF-8"))
            continue
        stripped = text.strip()
        if not stripped:
            continue
        if stripped[0] == "#":
            reason = declared.line(stripped, number, label_names)
            if reason is not None:
                rejected.append(RejectedLine(number, stripped[:200], reason))
            continue
        plain = _PLAIN.fullmatch(stripped)
        if plain is not None and not (name := prefix + plain[1]).startswith(SELF_METRIC_PREFIX):
            number_value = float(plain[2])  # parse_line's fast path, inlined: most lines take it
            if _isinf(number_value):  # `1e309`: the literal `+Inf` takes the slow path
                rejected.append(RejectedLine(number, stripped[:200], OUT_OF_RANGE))
                continue
            sample = Sample(name, (), number_value)
        else:
            try:
                sample = parse_line(stripped, prefix=prefix)
            except LineError as error:
                rejected.append(RejectedLine(number, stripped[:200], str(error)))
                continue
        name, labels = sample.name, sample.labels
        key: str | tuple[str, Labels]
        if labels:
            names = frozenset(label for label, _ in labels)
            key = (name, tuple(sorted(labels)))
        else:
            names = _NO_LABELS
            key = name
        previous = by_series.get(key)
        if previous is None and len(by_series) == bound:
            dropped += 1  # before anything is remembered about it: dropped lines cost no memory
            continue
        if declared.counters and sample.value < 0 and name in declared.counters:
            rejected.append(RejectedLine(number, stripped[:200], f"{name} is a counter: it cannot be negative"))
            continue
        first = label_names.get(name)
        if first is None:
            label_names[name] = (names, number)
        elif first[0] != names:
            reason = f"label names {_names(names)} differ from {_names(first[0])} on line {first[1]}"
            rejected.append(RejectedLine(number, stripped[:200], reason))
            continue
        if previous is not None:
            overridden.append(RejectedLine(previous[0], previous[2][:200], f"overridden by line {number}"))
        by_series[key] = (number, sample, stripped)
    samples = tuple(sample for _, sample, _ in by_series.values())
    return ParseResult(samples=samples, rejected=tuple(rejected), overridden=tuple(overridden), dropped=dropped,
                       metadata=declared.of(label_names))


_UNDECLARED: tuple[str | None, str | None, int, int] = (None, None, 0, 0)


class _Declarations:
    """The HELP and TYPE lines of one output: each key declared once, before its first reading."""

    __slots__ = ("counters", "entries", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        # name -> (help, type, line of the help, line of the type): one dict for both, built and read once each
        self.entries: dict[str, tuple[str | None, str | None, int, int]] = {}
        self.counters: set[str] = set()

    def line(self, line: str, number: int, seen: dict[str, tuple[frozenset[str], int]]) -> str | None:
        """Take a `#` line; the reason it is rejected, or None (declared, or an ordinary comment)."""
        match = _DECLARED.fullmatch(line)
        if match is None:
            return None if _METADATA.fullmatch(line) is None else _declaration_error(line)
        kind, key, text = match[1], match[2], match[3] or ""
        name = self.prefix + key
        if name.startswith(SELF_METRIC_PREFIX):
            return f"metric name {name!r} is reserved for the collector's own metrics"
        first = seen.get(name)
        if first is not None:
            return f"{kind} for {key!r} after its first reading on line {first[1]}: declare it before"
        slot = 0 if kind == "HELP" else 1
        if slot:
            value = text.strip()
            if value not in TYPES:
                return f"TYPE {value!r} for {key!r} is not supported (gauge or counter)"
        else:
            value = _unescape_help(text) if "\\" in text else text
        help_text, type_name, help_line, type_line = self.entries.get(name, _UNDECLARED)
        earlier, earlier_line = (type_name, type_line) if slot else (help_text, help_line)
        if earlier is not None:
            if earlier != value:
                return f"{kind} for {key!r} conflicts with line {earlier_line} ({earlier!r})"
            return None
        self.entries[name] = (help_text, value, help_line, number) if slot else (value, type_name, number, type_line)
        if value == "counter" and slot:
            self.counters.add(name)
        return None

    def of(self, exported: dict[str, tuple[frozenset[str], int]]) -> tuple[Metadata, ...]:
        """One Metadata per declared name that has readings (a declaration alone exports nothing)."""
        return tuple(Metadata(name, entry[0], entry[1]) for name, entry in self.entries.items() if name in exported)


def _declaration_error(line: str) -> str:
    """Why a `# HELP` or `# TYPE` line that names no valid key is rejected."""
    match = _METADATA.fullmatch(line)
    assert match is not None
    kind, key = match[1], match[2] or ""
    if not key:
        return f"{kind} without a key (expected '# {kind} key {'text' if kind == 'HELP' else 'gauge|counter'}')"
    return f"invalid key {key!r} in {kind} (must match [a-zA-Z_][a-zA-Z0-9_]*, no labels)"


def _unescape_help(text: str) -> str:
    """HELP text as Prometheus' text format reads it: `\\` is a backslash and `\n` a newline."""
    if "\\" not in text:
        return text
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1] if m[1] == "\\" else m[0], text)


def _lines(data: bytes) -> list[str] | list[str | bytes]:
    """The lines of `data` decoded, or left as bytes where they are not UTF-8 (they are rejected)."""
    try:
        # One decode of the whole output, not one per line; "\n" never occurs inside a UTF-8 sequence.
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        pass
    lines: list[str | bytes] = []
    for raw in data.split(b"\n"):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            lines.append(raw)
    return lines


def _names(names: frozenset[str]) -> str:
    return "{" + ",".join(sorted(names)) + "}"


def parse_line(line: str, *, prefix: str) -> Sample:
    """One stripped, non-comment line -> Sample; raises LineError with the reason."""
    plain = _PLAIN.fullmatch(line)
    if plain is not None:
        key, value_text = plain.groups()
        name = prefix + key
        if name.startswith(SELF_METRIC_PREFIX):
            raise LineError(f"metric name {name!r} is reserved for the collector's own metrics")
        return Sample(name, (), _finite(value_text))
    labelled = _LABELLED.fullmatch(line)
    if labelled is not None:
        key, pairs, value_text = labelled.groups()
        found: Labels = tuple(_LABEL_PAIR.findall(pairs))
        names = {label for label, _ in found}
        name = prefix + key
        if (len(names) == len(found) and not any(label.startswith("__") for label in names)
                and not name.startswith(SELF_METRIC_PREFIX)):
            return Sample(name, found, _finite(value_text))
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
    return _finite(text)


def _finite(number: str) -> float:
    """A decimal number as a float; one too large for a double (`1e309`) would silently become ±Inf."""
    value = float(number)
    if _isinf(value):
        raise LineError(OUT_OF_RANGE)
    return value


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
    end = line.find('"', position)
    if end >= 0 and line.find("\\", position, end) < 0:
        return line[position:end], end + 1  # no escapes, the usual case: one slice
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
