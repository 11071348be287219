"""Value types shared by the pipeline steps: no logic beyond construction, no imports of other modules."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

Labels = tuple[tuple[str, str], ...]
"""Label pairs in the order the script printed them; rendering sorts them."""


@dataclass(frozen=True, slots=True)
class Sample:
    """One gauge value: full metric name (prefix included), labels, value."""

    name: str
    labels: Labels
    value: float


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line of script output that did not become a sample, and why."""

    line_number: int
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParseResult:
    samples: tuple[Sample, ...]
    rejected: tuple[RejectedLine, ...]
    # Same name and labels printed again in one run: the later value won; kept to warn about it.
    overridden: tuple[RejectedLine, ...] = ()


@dataclass(frozen=True, slots=True)
class Job:
    """One script scheduled on this node."""

    script: str
    path: Path
    interval: float  # seconds


@dataclass(frozen=True, slots=True)
class Plan:
    """What one node runs, resolved from nodes.conf."""

    node: str
    jobs: tuple[Job, ...]
    # The nodes.conf line that selected this plan; None when no line matched (implicit `default`).
    line: int | None = None
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one script run produced, before parsing."""

    exit_code: int | None  # None: killed by the collector (timeout or shutdown)
    signal: int | None  # the signal that ended the script, if any
    timed_out: bool
    cancelled: bool  # the collector is shutting down
    duration: float  # seconds, monotonic
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    spawn_error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.spawn_error is None


@dataclass(slots=True)
class ScriptStats:
    """Counters and last-run facts for one script; the only mutable state the daemon keeps per script."""

    runs: int = 0
    failures: int = 0
    timeouts: int = 0
    skipped: int = 0
    invalid_lines: int = 0
    truncations: int = 0
    last_success: bool | None = None
    last_exit_code: int | None = None
    last_duration: float | None = None
    last_success_timestamp: float | None = None
    samples: tuple[Sample, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family ready to render: one HELP and TYPE line, then its samples."""

    name: str
    help: str
    type: str  # "gauge" or "counter"
    samples: tuple[Sample, ...]
