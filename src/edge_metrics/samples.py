"""Value types shared by the pipeline steps: no logic beyond construction, no imports of other modules.

Plain `__slots__` classes rather than dataclasses: `import dataclasses` pulls `inspect` into the long-lived
process, which then stays larger for good, and a frozen dataclass pays an `object.__setattr__` per field on every
construction, once per sample parsed (what both cost is measured in the table of changes in
docs/performance.md). Immutability is the type checker's job (`Final` attributes); `Value` gives the equality,
hash and repr the frozen dataclasses had.
"""

from __future__ import annotations

from pathlib import Path

# `typing` costs the process memory and is needed for annotations only (see log.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

Labels = tuple[tuple[str, str], ...]
"""Label pairs in the order the script printed them; rendering sorts them."""


class Value:
    """Base of the immutable value types: compared, hashed and shown by their fields (their `__slots__`)."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple([getattr(self, name) for name in self.__slots__])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Value)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__name__}({fields})"


class Sample(Value):
    """One gauge value: full metric name (prefix included), labels, value."""

    __slots__ = ("labels", "name", "value")
    name: Final[str]
    labels: Final[Labels]
    value: Final[float]

    def __init__(self, name: str, labels: Labels, value: float) -> None:
        self.name = name
        self.labels = labels
        self.value = value


class RejectedLine(Value):
    """A line of script output that did not become a sample, and why."""

    __slots__ = ("line_number", "reason", "text")
    line_number: Final[int]
    text: Final[str]
    reason: Final[str]

    def __init__(self, line_number: int, text: str, reason: str) -> None:
        self.line_number = line_number
        self.text = text
        self.reason = reason


class Metadata(Value):
    """What a script declared about one of its keys: `# HELP key text` and `# TYPE key gauge|counter`."""

    __slots__ = ("help", "name", "type")
    name: Final[str]  # full metric name, prefix included
    help: Final[str | None]  # None: not declared (the collector's generic help text is used)
    type: Final[str | None]  # "gauge", "counter", or None: not declared (a gauge)

    def __init__(self, name: str, help: str | None, type: str | None) -> None:
        self.name = name
        self.help = help
        self.type = type


class ParseResult(Value):
    __slots__ = ("dropped", "metadata", "overridden", "rejected", "samples")
    samples: Final[tuple[Sample, ...]]
    rejected: Final[tuple[RejectedLine, ...]]
    # Same name and labels printed again in one run: the later value won; kept to warn about it.
    overridden: Final[tuple[RejectedLine, ...]]
    dropped: Final[int]  # lines of series beyond the bound on series per script
    metadata: Final[tuple[Metadata, ...]]  # HELP/TYPE declared for keys that have samples, in output order

    def __init__(
        self,
        samples: tuple[Sample, ...],
        rejected: tuple[RejectedLine, ...],
        overridden: tuple[RejectedLine, ...] = (),
        dropped: int = 0,
        metadata: tuple[Metadata, ...] = (),
    ) -> None:
        self.samples = samples
        self.rejected = rejected
        self.overridden = overridden
        self.dropped = dropped
        self.metadata = metadata


class Job(Value):
    """One script scheduled on this node, with the content accepted with its config (the snapshot)."""

    __slots__ = ("content", "interval", "path", "run_from", "script")
    script: Final[str]
    path: Final[Path]  # `<scripts-dir>/<name>.sh`: what logs and messages name
    interval: Final[float]  # seconds
    content: Final[bytes]  # the script as it was when the config was accepted
    # The private copy of `content` that runs (snapshot.py); None: not installed yet, `path` itself runs.
    run_from: Final[Path | None]

    def __init__(
        self, script: str, path: Path, interval: float, content: bytes = b"", run_from: Path | None = None
    ) -> None:
        self.script = script
        self.path = path
        self.interval = interval
        self.content = content
        self.run_from = run_from

    def __repr__(self) -> str:  # the content stays out of logs and assertion messages
        return (f"Job(script={self.script!r}, path={self.path!r}, interval={self.interval!r}, "
                f"run_from={self.run_from!r})")


class Plan(Value):
    """What one node runs, resolved from nodes.conf."""

    __slots__ = ("jobs", "line", "node", "pattern")
    node: Final[str]
    jobs: Final[tuple[Job, ...]]
    # The nodes.conf line that selected this plan; None when no line matched (implicit `default`).
    line: Final[int | None]
    pattern: Final[str | None]

    def __init__(self, node: str, jobs: tuple[Job, ...], line: int | None = None, pattern: str | None = None) -> None:
        self.node = node
        self.jobs = jobs
        self.line = line
        self.pattern = pattern


class RunResult(Value):
    """What one script run produced, before parsing."""

    __slots__ = (
        "cancelled",
        "duration",
        "exit_code",
        "killed",
        "signal",
        "spawn_error",
        "stderr",
        "stdout",
        "stdout_truncated",
        "timed_out",
    )
    exit_code: Final[int | None]  # None: killed by the collector (timeout or shutdown)
    signal: Final[int | None]  # the signal that ended the script, if any
    timed_out: Final[bool]
    cancelled: Final[bool]  # the collector is shutting down
    duration: Final[float]  # seconds, monotonic
    stdout: Final[bytes]
    stderr: Final[bytes]
    stdout_truncated: Final[bool]
    spawn_error: Final[str | None]
    killed: Final[tuple[str, ...]]  # commands of the processes the script left behind, ended by the collector

    def __init__(
        self,
        exit_code: int | None,
        signal: int | None,
        timed_out: bool,
        cancelled: bool,
        duration: float,
        stdout: bytes,
        stderr: bytes,
        stdout_truncated: bool,
        spawn_error: str | None = None,
        killed: tuple[str, ...] = (),
    ) -> None:
        self.exit_code = exit_code
        self.signal = signal
        self.timed_out = timed_out
        self.cancelled = cancelled
        self.duration = duration
        self.stdout = stdout
        self.stderr = stderr
        self.stdout_truncated = stdout_truncated
        self.spawn_error = spawn_error
        self.killed = killed

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.spawn_error is None


class ScriptStats:
    """Counters and last-run facts for one script; the only mutable state the daemon keeps per script."""

    __slots__ = (
        "failures",
        "invalid_lines",
        "last_duration",
        "last_exit_code",
        "last_success",
        "last_success_timestamp",
        "metadata",
        "processes_killed",
        "runs",
        "samples",
        "series_dropped",
        "skipped",
        "timeouts",
        "truncations",
    )

    def __init__(
        self,
        runs: int = 0,
        failures: int = 0,
        timeouts: int = 0,
        skipped: int = 0,
        invalid_lines: int = 0,
        truncations: int = 0,
        last_success: bool | None = None,
        last_exit_code: int | None = None,
        last_duration: float | None = None,
        last_success_timestamp: float | None = None,
        samples: tuple[Sample, ...] = (),
        series_dropped: int = 0,
        processes_killed: int = 0,
        metadata: dict[str, Metadata] | None = None,
    ) -> None:
        self.runs = runs
        self.failures = failures
        self.timeouts = timeouts
        self.skipped = skipped
        self.invalid_lines = invalid_lines
        self.truncations = truncations
        self.last_success = last_success
        self.last_exit_code = last_exit_code
        self.last_duration = last_duration
        self.last_success_timestamp = last_success_timestamp
        self.samples = samples
        self.series_dropped = series_dropped  # output lines beyond the bound on series
        self.processes_killed = processes_killed  # processes the scripts left behind, killed by the collector
        self.metadata = metadata if metadata is not None else {}  # HELP/TYPE of the last run, by metric name


class Family(Value):
    """A metric family ready to render: one HELP and TYPE line, then its samples."""

    __slots__ = ("help", "name", "samples", "type")
    name: Final[str]
    help: Final[str]
    type: Final[str]  # "gauge" or "counter"
    samples: Final[tuple[Sample, ...]]

    def __init__(self, name: str, help: str, type: str, samples: tuple[Sample, ...]) -> None:
        self.name = name
        self.help = help
        self.type = type
        self.samples = samples
