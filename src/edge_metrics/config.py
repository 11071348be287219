"""nodes.conf and the scripts it names -> the plan for one node. Every problem is reported at once as
`file:line: reason`.

A config is accepted as a whole: nodes.conf and the content of every script it names are read together, and
the plan carries that content (the snapshot), so a script changed or broken later never runs until a config
holding it is accepted. Parsing is linear in the size of the file, and the file's size is bounded.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from edge_metrics.durations import DurationError, parse_duration
from edge_metrics.samples import Job, Plan, Value

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

SHEBANG = "#!/bin/bash"
DEFAULT_SCRIPT = "default"  # the seed's word for "no hardware script on this node"
BOM = "\ufeff"
# Far beyond any real file (a ConfigMap holds at most 1 MiB in all): a bigger one is refused before parsing.
MAX_CONFIG_BYTES = 4 << 20
MAX_SCRIPT_BYTES = 1 << 20
# All the scripts' content read at one load (held while it is checked, and this node's copied to memory-backed
# /dev/shm, which the pod's memory limit counts): eight times what a ConfigMap can hold.
MAX_TOTAL_SCRIPT_BYTES = 8 << 20
# Problems reported one by one; a file with thousands (a generated line gone wrong) ends with a count.
MAX_PROBLEMS = 100
# Scripts one line may list, and different scripts one nodes.conf may name: far beyond what one ConfigMap holds
# (and the scripts of a node run one after another); past it the line is not parsed, or no script is read.
MAX_SCRIPTS = 1000

_SCRIPT_NAME = re.compile(r"[A-Za-z0-9_-]+")
# Kubernetes node names (DNS subdomains, leniently cased) plus the fnmatch glob characters.
_NODE_PATTERN = re.compile(r"[A-Za-z0-9._*?\[\]!-]+")
_GLOB_CHARS = frozenset("*?[")


class ConfigError(Exception):
    """nodes.conf or a script it names is invalid; `problems` holds one `file:line: reason` per problem."""

    def __init__(self, problems: list[str]) -> None:
        problems = bounded(problems)
        super().__init__("\n".join(problems))
        self.problems = problems


def bounded(problems: list[str]) -> list[str]:
    """The first MAX_PROBLEMS problems, then one line counting the others."""
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more problems"]


class ScriptRef(Value):
    __slots__ = ("interval", "name")
    name: Final[str]
    interval: Final[float]

    def __init__(self, name: str, interval: float) -> None:
        self.name = name
        self.interval = interval


class NodeLine(Value):
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
    __slots__ = ("contents", "entries", "other_problems", "path", "scripts_dir")
    path: Final[Path]
    scripts_dir: Final[Path]
    entries: Final[tuple[NodeLine, ...]]
    other_problems: Final[tuple[str, ...]]  # problems of lines that cannot apply to the node it was loaded for
    contents: Final[Mapping[str, bytes]]  # script name -> the content read with nodes.conf (valid scripts only)

    def __init__(
        self,
        path: Path,
        scripts_dir: Path,
        entries: tuple[NodeLine, ...],
        other_problems: tuple[str, ...] = (),
        contents: Mapping[str, bytes] | None = None,
    ) -> None:
        self.path = path
        self.scripts_dir = scripts_dir
        self.entries = entries
        self.other_problems = other_problems
        self.contents = contents if contents is not None else {}

    def plan_for(self, node: str) -> Plan:
        """An exact name wins; otherwise the first matching glob in file order; otherwise no line (line None)."""
        chosen = choose_entry(self.entries, node)
        if chosen is None:
            return Plan(node=node, jobs=())
        jobs = tuple(
            Job(
                script=ref.name,
                path=script_path(self.scripts_dir, ref.name),
                interval=ref.interval,
                content=self.contents.get(ref.name, b""),
            )
            for ref in chosen.scripts
        )
        return Plan(node=node, jobs=jobs, line=chosen.line, pattern=chosen.node)


def choose_entry(entries: Sequence[NodeLine], node: str) -> NodeLine | None:
    chosen = next((e for e in entries if not e.is_glob and e.node == node), None)
    if chosen is None:
        chosen = next((e for e in entries if e.is_glob and fnmatch.fnmatchcase(node, e.node)), None)
    return chosen


class Inspection(Value):
    """What reading nodes.conf and its scripts found: the valid entries, every problem, the scripts' content."""

    __slots__ = ("contents", "entries", "problems")
    entries: Final[list[NodeLine]]
    problems: Final[list[Problem]]
    contents: Final[dict[str, bytes]]

    def __init__(self, entries: list[NodeLine], problems: list[Problem], contents: dict[str, bytes]) -> None:
        self.entries = entries
        self.problems = problems
        self.contents = contents


def script_path(scripts_dir: Path, name: str) -> Path:
    return scripts_dir / f"{name}.sh"


def load_config(path: Path, *, scripts_dir: Path, default_interval: float, node: str | None = None) -> NodesConfig:
    """Read and validate nodes.conf and the content of every script it names (kept in the config: the snapshot).

    With `node`, a problem on a line that cannot apply to that node (another node's missing script) does not
    reject the config: it is kept in `other_problems`, so one forgotten script does not stop every node. A node
    that no line selects is a problem of its own (see `unmatched_problem`).
    """
    found = inspect_config(path, scripts_dir=scripts_dir, default_interval=default_interval)
    problems = list(found.problems)
    if node is not None and found.entries:
        unmatched = unmatched_problem(path, found.entries, node)
        if unmatched is not None:
            problems.append(Problem(unmatched, None))
    if any(node is None or problem.concerns(node) for problem in problems):
        raise ConfigError([problem.text for problem in problems])  # rejected: every problem at once, as always
    others = tuple(bounded([problem.text for problem in problems]))
    return NodesConfig(
        path=path, scripts_dir=scripts_dir, entries=tuple(found.entries), other_problems=others, contents=found.contents
    )


def unmatched_problem(path: Path, entries: Sequence[NodeLine], node: str) -> str | None:
    """Why a node that no line selects is refused, with the closest names: a node left out by mistake (a line
    renamed, deleted, misspelt) would otherwise stop every reading with nothing to alert on. Running nothing is
    said on purpose with `NODE=default` (or `*=default`)."""
    if choose_entry(entries, node) is not None:
        return None
    import difflib  # only for this message: the collector does not pay for it otherwise

    names = [entry.node for entry in entries]
    close = difflib.get_close_matches(node, names, n=3, cutoff=0.5)
    hint = f" (closest: {', '.join(close)})" if close else ""
    return (f"{path}: node {node!r} matches no line{hint}, so it would run no script and export no reading; "
            f"add a line for it, or `{node}=default` (or `*=default` as the last line) if it is meant to run none")


def inspect_config(path: Path, *, scripts_dir: Path, default_interval: float) -> Inspection:
    """The valid entries of nodes.conf, every problem of the file and of the scripts it names, and the content of
    every valid script. A kubelet ConfigMap volume is read from one `..data` payload, so nodes.conf and the
    scripts come from the same update even while the kubelet swaps `..data`."""
    config_file, read_dir = pinned_paths(path, scripts_dir)
    try:
        with config_file.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        return Inspection([], [Problem(f"{path}: cannot read: {_reason(error)}", None)], {})
    if len(data) > MAX_CONFIG_BYTES:
        reason = f"larger than {MAX_CONFIG_BYTES >> 20} MiB (a ConfigMap holds at most 1 MiB): not a nodes.conf"
        return Inspection([], [Problem(f"{path}: {reason}", None)], {})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return Inspection([], [Problem(f"{path}:{line}: cannot read: not UTF-8 text ({error.reason})", None)], {})
    entries, problems = parse_config(text, source=str(path), default_interval=default_interval)
    if not entries and not problems:
        problems.append(Problem(
            f"{path}: no node lines (empty, or only comments): every node would run no script; list the nodes, "
            f"or write `*=default` if no node is meant to run one", None))
    contents, script_problems = _read_scripts(entries, path, scripts_dir, read_dir)
    problems.extend(script_problems)
    return Inspection(entries, problems, contents)


def pinned_paths(config_path: Path, scripts_dir: Path) -> tuple[Path, Path]:
    """Where to read nodes.conf and the scripts from. In a ConfigMap volume, `<dir>/<key>` resolves through the
    `..data` symlink at each open, so reading the keys one by one during a swap could mix two updates; reading
    them inside the payload `..data` points to at the start gives one update (the kubelet replaces a payload,
    it never changes one). A payload removed meanwhile reads as missing files: the caller's retry settles it."""
    try:
        payload = os.readlink(scripts_dir / "..data")
    except OSError:
        return config_path, scripts_dir
    read_dir = scripts_dir / payload
    same_volume = os.path.abspath(config_path.parent) == os.path.abspath(scripts_dir)
    return (read_dir / config_path.name if same_volume else config_path), read_dir


def parse_config(text: str, *, source: str, default_interval: float) -> tuple[list[NodeLine], list[Problem]]:
    """Entries and `source:line: reason` problems of nodes.conf text; no file system access."""
    entries: list[NodeLine] = []
    problems: list[Problem] = []
    first_line_of: dict[str, int] = {}
    # A BOM (Windows editors) is no content; CRLF line endings are stripped with the other whitespace. Lines are
    # split at "\n" only, so line numbers are the ones an editor shows.
    for number, raw in enumerate(text.removeprefix(BOM).split("\n"), start=1):
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
            entries.append(NodeLine(line=number, node=node, scripts=scripts))
    return entries, problems


def _parse_spec(spec: str, default_interval: float) -> tuple[tuple[ScriptRef, ...], list[str]]:
    if not spec:
        return (), ["missing script name after '='"]
    listed = spec.count(",") + 1
    if listed > MAX_SCRIPTS:
        return (), [f"lists {listed} scripts, more than the {MAX_SCRIPTS} one config may have (a generated line "
                    "gone wrong?)"]
    items = [item.strip() for item in spec.split(",")]
    if items == [DEFAULT_SCRIPT]:
        return (), []
    refs: list[ScriptRef] = []
    problems: list[str] = []
    # Sets and dicts, not scans of `refs`: a line may list very many scripts, and parsing stays linear.
    seen: set[str] = set()
    durations: dict[str, float] = {}
    for item in items:
        name, colon, interval_text = item.partition(":")
        name, interval_text = name.rstrip(), interval_text.lstrip()
        if name == DEFAULT_SCRIPT:
            problems.append("'default' cannot be combined with other scripts")
            continue
        if not _SCRIPT_NAME.fullmatch(name):
            problems.append(f"invalid script name {name!r} (allowed: letters, digits, '_' and '-'; no paths)")
            continue
        if name in seen:
            problems.append(f"script {name!r} listed twice")
            continue
        seen.add(name)
        interval = default_interval
        if colon:
            if interval_text not in durations:
                try:
                    durations[interval_text] = parse_duration(interval_text)
                except DurationError as error:
                    problems.append(f"script {name!r}: {error}")
                    continue
            interval = durations[interval_text]
        refs.append(ScriptRef(name=name, interval=interval))
    return tuple(refs), problems


def _read_scripts(
    entries: list[NodeLine], config_path: Path, scripts_dir: Path, read_dir: Path
) -> tuple[dict[str, bytes], list[Problem]]:
    """The content of every named script that is valid, and a problem on each line naming an invalid one. Paths
    are strings here: a line may name very many scripts, and a Path per name cost more than the reads."""
    named = len({ref.name for entry in entries for ref in entry.scripts})
    if named > MAX_SCRIPTS:
        return {}, [Problem(f"{config_path}: names {named} different scripts, more than the {MAX_SCRIPTS} one "
                            "config may have: not a nodes.conf (a generated line gone wrong?)", None)]
    contents: dict[str, bytes] = {}
    verdicts: dict[str, str | None] = {}
    listing = _Listing(read_dir)
    shown_dir, read_from = os.fspath(scripts_dir), os.fspath(read_dir)
    problems: list[Problem] = []
    total = 0
    for entry in entries:
        for ref in entry.scripts:
            if ref.name not in verdicts:
                content, verdicts[ref.name] = _read_script(read_from, shown_dir, ref.name, listing)
                total += len(content or b"")
                if total > MAX_TOTAL_SCRIPT_BYTES:
                    content, verdicts[ref.name] = None, (f"{os.path.join(shown_dir, ref.name + '.sh')}: the scripts "
                                                         f"named total more than {MAX_TOTAL_SCRIPT_BYTES >> 20} MiB")
                if content is not None:
                    contents[ref.name] = content
            problem = verdicts[ref.name]
            if problem is not None:
                problems.append(Problem(f"{config_path}:{entry.line}: script {ref.name!r}: {problem}", entry.node))
    return contents, problems


def _read_script(read_dir: str, scripts_dir: str, name: str, listing: _Listing) -> tuple[bytes | None, str | None]:
    shown = os.path.join(scripts_dir, f"{name}.sh")
    try:
        fd = os.open(os.path.join(read_dir, f"{name}.sh"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None, f"{shown} does not exist" + listing.did_you_mean(name)
    except OSError as error:
        return None, f"{shown}: cannot read: {_reason(error)}"
    try:
        data = _read_at_most(fd, MAX_SCRIPT_BYTES + 1)
    except OSError as error:
        return None, f"{shown}: cannot read: {_reason(error)}"
    finally:
        os.close(fd)
    problem = script_problem(data, shown)
    return (data, None) if problem is None else (None, problem)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks = []
    size = 0
    while size < limit:
        chunk = os.read(fd, limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def script_problem(data: bytes, path: Path | str) -> str | None:
    """Why the content `data` of the script `path` is refused, or None. bash runs a CRLF script up to a confusing
    "unexpected end of file" (a `then\r` is no `then`): it is refused here with the line and the fix, rather than
    run with the CRs stripped, so the collector runs exactly what `bash FILE` on the node and `edge-metrics check`
    in CI see."""
    if len(data) > MAX_SCRIPT_BYTES:
        return f"{path}: larger than {MAX_SCRIPT_BYTES >> 20} MiB: not a collector script"
    nul = data.find(b"\0")
    if nul >= 0:
        return f"{path}:{_line_of(data, nul)}: a NUL byte: a binary file, not a bash script"
    if data.startswith(BOM.encode()):
        return f"{path}:1: starts with a UTF-8 byte order mark: save it without one (first line {SHEBANG})"
    crlf = data.find(b"\r\n")
    if crlf < 0 and data.endswith(b"\r"):
        crlf = len(data) - 1
    if crlf >= 0:
        count = data.count(b"\r\n") + data.endswith(b"\r")
        return (f"{path}:{_line_of(data, crlf)}: Windows line endings (CRLF, {count} lines), which bash misreads "
                f"(\"unexpected end of file\", \"$'\\r': command not found\"); convert the file: "
                f"sed -i 's/\\r$//' {path} (or dos2unix {path})")
    if data.split(b"\n", 1)[0].rstrip() != SHEBANG.encode():
        return f"{path}:1: first line must be {SHEBANG}"
    return None


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


class _Listing:
    """The scripts directory's `*.sh` names, listed once, for "did you mean" hints on a bounded number of them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.names: list[str] | None = None
        self.hints = 0

    def did_you_mean(self, name: str) -> str:
        import difflib  # only when a script is missing: the collector does not pay for it otherwise

        self.hints += 1
        if self.hints > MAX_PROBLEMS:
            return ""
        if self.names is None:
            try:
                self.names = [entry[:-3] for entry in os.listdir(self.directory) if entry.endswith(".sh")]
            except OSError:
                self.names = []
        close = difflib.get_close_matches(name, self.names, n=3, cutoff=0.6)
        return f" (did you mean {' or '.join(repr(close_name) for close_name in close)}?)" if close else ""


def _reason(error: Exception) -> str:
    return error.strerror if isinstance(error, OSError) and error.strerror else str(error)
