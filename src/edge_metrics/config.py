"""nodes.conf -> the plan for one node. Every problem in the file is reported at once as `file:line: reason`."""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from edge_metrics.durations import DurationError, parse_duration
from edge_metrics.samples import Job, Plan, Value

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

SHEBANG = "#!/bin/bash"
DEFAULT_SCRIPT = "default"  # the seed's word for "no hardware script on this node"

_SCRIPT_NAME = re.compile(r"[A-Za-z0-9_-]+")
# Kubernetes node names (DNS subdomains, leniently cased) plus the fnmatch glob characters.
_NODE_PATTERN = re.compile(r"[A-Za-z0-9._*?\[\]!-]+")
_GLOB_CHARS = frozenset("*?[")


class ConfigError(Exception):
    """nodes.conf or a script it names is invalid; `problems` holds one `file:line: reason` per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ScriptRef(Value):
    __slots__ = ("interval", "name")
    name: Final[str]
    interval: Final[float]

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval


class Entry(Value):
    """One `NODE=SCRIPT[:INTERVAL][,...]` line."""

    __slots__ = ("line", "node", "scripts")
    line: Final[int]
    node: Final[str]
    scripts: Final[tuple[ScriptRef, ...]]  # empty for `default`

    def __init__(self, line: int, node: str, scripts: tuple[ScriptRef, ...]) -> None:
        self.line = line
        self.node = node
        self.scripts = scripts

    @property
    def is_glob(self) -> bool:
        return any(char in _GLOB_CHARS for char in self.node)


class Problem(Value):
    """One `file:line: reason`, and the node pattern of its line (None: the line names no node)."""

    __slots__ = ("pattern", "text")
    text: Final[str]
    pattern: Final[str | None]

    def __init__(self, text: str, pattern: str | None) -> None:
        self.text = text
        self.pattern = pattern

    def concerns(self, node: str) -> bool:
        """Whether the line could be the one chosen for `node`: then the problem is that node's too."""
        return self.pattern is None or self.pattern == node or fnmatch.fnmatchcase(node, self.pattern)


class NodesConfig(Value):
    __slots__ = ("entries", "other_problems", "path", "scripts_dir")
    path: Final[Path]
    scripts_dir: Final[Path]
    entries: Final[tuple[Entry, ...]]
    other_problems: Final[tuple[str, ...]]  # problems of lines that cannot apply to the node it was loaded for

    def __init__(
        self, path: Path, scripts_dir: Path, entries: tuple[Entry, ...], other_problems: tuple[str, ...] = ()
    ) -> None:
        self.path = path
        self.scripts_dir = scripts_dir
        self.entries = entries
        self.other_problems = other_problems

    def plan_for(self, node: str) -> Plan:
        """An exact name wins; otherwise the first matching glob in file order; otherwise `default`."""
        chosen = next((e for e in self.entries if not e.is_glob and e.node == node), None)
        if chosen is None:
            chosen = next((e for e in self.entries if e.is_glob and fnmatch.fnmatchcase(node, e.node)), None)
        if chosen is None:
            return Plan(node=node, jobs=())
        jobs = tuple(
            Job(script=ref.name, path=script_path(self.scripts_dir, ref.name), interval=ref.interval)
            for ref in chosen.scripts
        )
        return Plan(node=node, jobs=jobs, line=chosen.line, pattern=chosen.node)


def script_path(scripts_dir: Path, name: str) -> Path:
    return scripts_dir / f"{name}.sh"


def load_config(path: Path, *, scripts_dir: Path, default_interval: float, node: str | None = None) -> NodesConfig:
    """Read and validate nodes.conf and the first line of every script it names.

    With `node`, a problem on a line that cannot apply to that node (another node's missing script) does not
    reject the config: it is kept in `other_problems`, so one forgotten script does not stop every node.
    """
    entries, problems = inspect_config(path, scripts_dir=scripts_dir, default_interval=default_interval)
    if any(node is None or problem.concerns(node) for problem in problems):
        raise ConfigError([problem.text for problem in problems])  # rejected: every problem at once, as always
    others = tuple(problem.text for problem in problems)
    return NodesConfig(path=path, scripts_dir=scripts_dir, entries=tuple(entries), other_problems=others)


def inspect_config(path: Path, *, scripts_dir: Path, default_interval: float) -> tuple[list[Entry], list[Problem]]:
    """The valid entries of nodes.conf and every problem of the file and of the scripts it names."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [], [Problem(f"{path}: cannot read: {_reason(error)}", None)]
    entries, problems = _parse(text, source=str(path), default_interval=default_interval)
    problems.extend(_check_scripts(entries, path, scripts_dir))
    return entries, problems


def parse_config(text: str, *, source: str, default_interval: float) -> tuple[list[Entry], list[str]]:
    """Entries and `source:line: reason` problems of nodes.conf text; no file system access."""
    entries, problems = _parse(text, source=source, default_interval=default_interval)
    return entries, [problem.text for problem in problems]


def _parse(text: str, *, source: str, default_interval: float) -> tuple[list[Entry], list[Problem]]:
    entries: list[Entry] = []
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{source}:{number}"
        node, sep, spec = (part.strip() for part in line.partition("="))
        if not sep:
            problems.append(Problem(f"{where}: expected NODE=SCRIPT[:INTERVAL], got {line!r}", None))
            continue
        if not node or not _NODE_PATTERN.fullmatch(node):
            problems.append(Problem(f"{where}: invalid node name {node!r}", None))
            continue
        if node in first_line_of:
            problems.append(Problem(f"{where}: duplicate entry for node {node!r} (first on line {first_line_of[node]})",
                                    node))
            continue
        first_line_of[node] = number
        scripts, spec_problems = _parse_spec(spec, default_interval)
        problems.extend(Problem(f"{where}: {problem}", node) for problem in spec_problems)
        if not spec_problems:
            entries.append(Entry(line=number, node=node, scripts=scripts))
    return entries, problems


def _parse_spec(spec: str, default_interval: float) -> tuple[tuple[ScriptRef, ...], list[str]]:
    if not spec:
        return (), ["missing script name after '='"]
    items = [item.strip() for item in spec.split(",")]
    if items == [DEFAULT_SCRIPT]:
        return (), []
    refs: list[ScriptRef] = []
    problems: list[str] = []
    for item in items:
        name, colon, interval_text = (part.strip() for part in item.partition(":"))
        if name == DEFAULT_SCRIPT:
            problems.append("'default' cannot be combined with other scripts")
            continue
        if not _SCRIPT_NAME.fullmatch(name):
            problems.append(f"invalid script name {name!r} (allowed: letters, digits, '_' and '-'; no paths)")
            continue
        if any(ref.name == name for ref in refs):
            problems.append(f"script {name!r} listed twice")
            continue
        interval = default_interval
        if colon:
            try:
                interval = parse_duration(interval_text)
            except DurationError as error:
                problems.append(f"script {name!r}: {error}")
                continue
        refs.append(ScriptRef(name=name, interval=interval))
    return tuple(refs), problems


def _check_scripts(entries: list[Entry], config_path: Path, scripts_dir: Path) -> list[Problem]:
    """Every named script must exist as `<name>.sh` and start with the seed's `#!/bin/bash` line."""
    problems: list[Problem] = []
    checked: dict[str, str | None] = {}
    for entry in entries:
        for ref in entry.scripts:
            if ref.name not in checked:
                checked[ref.name] = _script_problem(script_path(scripts_dir, ref.name))
            problem = checked[ref.name]
            if problem is not None:
                problems.append(Problem(f"{config_path}:{entry.line}: script {ref.name!r}: {problem}", entry.node))
    return problems


def _script_problem(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            first = handle.readline(256).rstrip(b"\r\n")
    except FileNotFoundError:
        return f"{path} does not exist" + _did_you_mean(path)
    except OSError as error:
        return f"{path}: cannot read: {_reason(error)}"
    if first.rstrip() != SHEBANG.encode():
        return f"{path}:1: first line must be {SHEBANG}"
    return None


def _did_you_mean(path: Path) -> str:
    import difflib  # only when a script is missing: the collector does not pay for it otherwise

    try:
        names = [name[:-3] for name in os.listdir(path.parent) if name.endswith(".sh")]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name[:-3], names, n=3, cutoff=0.6)
    return f" (did you mean {' or '.join(repr(name) for name in close)}?)" if close else ""


def _reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)
