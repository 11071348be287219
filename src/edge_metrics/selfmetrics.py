"""The collector's own metric families, always named `edge_collector_*` whatever the script prefix.

The one declaration of their names (PREFIX and the tables below, collected in FAMILIES): the code that emits them
reads the tables, and tests/unit/test_selfmetric_names.py checks that every `edge_collector_*` name the rules,
dashboards, runbooks and manifests use is one of them. Built fresh from the daemon's state at every write, so a
script removed from the plan leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edge_metrics import __version__
from edge_metrics.render import Block, header, render_labels, sample_line
from edge_metrics.samples import Job, ScriptStats, Value

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

    from edge_metrics.clock import ClockReading

PREFIX = "edge_collector_"
"""Reserved for the collector's own families: a script's reading under it is rejected (parse.py, cli.py)."""


class CollectorHealth(Value):
    __slots__ = ("credentials_missing", "node", "other_nodes_problems", "reload_success_timestamp",
                 "reload_successful", "write_failures", "write_timestamp")
    node: Final[str]
    write_failures: Final[int]
    reload_successful: Final[bool]
    reload_success_timestamp: Final[float | None]
    write_timestamp: Final[float]
    other_nodes_problems: Final[int]
    credentials_missing: Final[bool | None]  # None: not checked (no --credential-files)

    def __init__(
        self,
        node: str,
        write_failures: int,
        reload_successful: bool,
        reload_success_timestamp: float | None,
        write_timestamp: float,
        other_nodes_problems: int = 0,
        credentials_missing: bool | None = None,
    ) -> None:
        self.node = node
        self.write_failures = write_failures
        self.reload_successful = reload_successful
        self.reload_success_timestamp = reload_success_timestamp
        self.write_timestamp = write_timestamp
        self.other_nodes_problems = other_nodes_problems
        self.credentials_missing = credentials_missing


# Per script (label `script`): name suffix, type, help, value of the script's stats (None: no sample yet).
PER_SCRIPT: tuple[tuple[str, str, str, Callable[[ScriptStats, Job], float | None]], ...] = (
    ("script_success", "gauge", "1 if the script's last run exited 0 within its timeout, else 0.",
     lambda s, _: None if s.last_success is None else float(s.last_success)),
    ("script_exit_code", "gauge", "Exit code of the script's last run (128+N when ended by signal N).",
     lambda s, _: None if s.last_exit_code is None else float(s.last_exit_code)),
    ("script_duration_seconds", "gauge", "Wall-clock duration of the script's last run.",
     lambda s, _: s.last_duration),
    ("script_last_success_timestamp_seconds", "gauge",
     "Unix time the script last ran successfully; stops moving when readings go stale.",
     lambda s, _: s.last_success_timestamp),
    ("script_interval_seconds", "gauge", "Configured run interval of the script.",
     lambda _, job: job.interval),
    ("script_runs_total", "counter", "Runs of the script since the collector started.",
     lambda s, _: float(s.runs)),
    ("script_failures_total", "counter", "Runs that exited non-zero, timed out or could not start.",
     lambda s, _: float(s.failures)),
    ("script_timeouts_total", "counter", "Runs killed because they exceeded the timeout.",
     lambda s, _: float(s.timeouts)),
    ("script_skipped_runs_total", "counter",
     "Scheduled runs skipped because the previous run (or another script's) was still going.",
     lambda s, _: float(s.skipped)),
    ("invalid_lines_total", "counter", "Lines of script output rejected as invalid.",
     lambda s, _: float(s.invalid_lines)),
    ("script_output_truncated_total", "counter", "Runs whose stdout exceeded the output cap.",
     lambda s, _: float(s.truncations)),
    ("script_series_dropped_total", "counter",
     "Output lines dropped because the script printed more series than --max-series allows.",
     lambda s, _: float(s.series_dropped)),
    ("script_processes_killed_total", "counter",
     "Processes the script left running (in its process group or escaped from it) that the collector killed.",
     lambda s, _: float(s.processes_killed)),
)


# The collector-wide families: name suffix, type, help, value (None: no sample yet). `info` is apart: it has labels.
COLLECTOR_WIDE: tuple[tuple[str, str, str, Callable[[CollectorHealth], float | None]], ...] = (
    ("textfile_write_failures_total", "counter", "Failed attempts to replace the metrics file.",
     lambda h: float(h.write_failures)),
    ("config_last_reload_successful", "gauge", "1 if the last load of nodes.conf and the scripts succeeded.",
     lambda h: float(h.reload_successful)),
    ("last_write_timestamp_seconds", "gauge",
     "Unix time this file was written; the collector rewrites it at least every default interval.",
     lambda h: h.write_timestamp),
    ("config_last_reload_success_timestamp_seconds", "gauge",
     "Unix time of the last successful load of nodes.conf.",
     lambda h: h.reload_success_timestamp),
    ("config_other_nodes_problems", "gauge",
     "Problems of the loaded nodes.conf in lines that apply only to other nodes (a missing script...); "
     "this node runs regardless.",
     lambda h: float(h.other_nodes_problems)),
    ("node_credentials_missing", "gauge",
     "1 while a file the node's vmagent writes to the centre with (--credential-files) is missing or empty: "
     "it queues every reading on disk until they are placed.",
     lambda h: None if h.credentials_missing is None else float(h.credentials_missing)),
)
INFO = ("info", "gauge", "Collector build and node.")


class SelfMetrics:
    """The self-metrics rendered straight into blocks for `render.render`, with every header and label string
    prepared once per plan rather than built as families of samples at every write (what that saves is in the
    table of docs/performance.md). Renders exactly what `render.render` renders for the same families (a unit
    test checks)."""

    def __init__(self, jobs: tuple[Job, ...], node: str) -> None:
        # Series sorted by their rendered labels, as render() sorts them.
        labelled = sorted((render_labels((("script", job.script),)), job) for job in jobs)
        self.jobs = jobs
        self.per_script = [
            (PREFIX + suffix, header(PREFIX + suffix, help_text, kind), value_of, labelled)
            for suffix, kind, help_text, value_of in PER_SCRIPT
        ]
        self.collector_wide = [
            (PREFIX + suffix, header(PREFIX + suffix, help_text, kind), value_of)
            for suffix, kind, help_text, value_of in COLLECTOR_WIDE
        ]
        suffix, kind, help_text = INFO
        name = PREFIX + suffix
        labels = render_labels((("node", node), ("version", __version__)))
        self.info = (name, f"{header(name, help_text, kind)}\n{sample_line(name, labels, 1)}")

    def blocks(self, stats: Mapping[str, ScriptStats], health: CollectorHealth) -> list[Block]:
        blocks: list[Block] = [self.info]
        for name, head, value_of, labelled in self.per_script:
            lines = [head]
            for labels, job in labelled:
                value = value_of(stats[job.script], job)
                if value is not None:
                    lines.append(sample_line(name, labels, value))
            if len(lines) > 1:
                blocks.append((name, "\n".join(lines)))
        for name, head, global_value in self.collector_wide:
            value = global_value(health)
            if value is not None:
                blocks.append((name, f"{head}\n{sample_line(name, '', value)}"))
        return blocks


class PushHealth(Value):
    """Push mode and clock state for the edge_collector_push_* and edge_collector_clock_* families."""

    __slots__ = ("clock", "clock_steps", "dropped", "enabled", "errors", "held_samples", "last_success",
                 "resent_samples", "sent_samples", "spool_max_bytes", "spooled_bytes", "spooled_samples")
    enabled: Final[bool]
    sent_samples: Final[int]
    spooled_samples: Final[int]
    spooled_bytes: Final[int]
    dropped: Final[Mapping[str, int]]  # reason -> samples
    errors: Final[Mapping[str, int]]  # cause -> failed POSTs
    last_success: Final[float | None]
    clock: Final[ClockReading]
    clock_steps: Final[int]
    held_samples: Final[int]
    resent_samples: Final[int]
    spool_max_bytes: Final[int | None]  # --spool-max-bytes; None on the textfile path

    def __init__(self, enabled: bool, sent_samples: int, spooled_samples: int, spooled_bytes: int,
                 dropped: Mapping[str, int], errors: Mapping[str, int], last_success: float | None,
                 clock: ClockReading, clock_steps: int, held_samples: int, *, resent_samples: int = 0,
                 spool_max_bytes: int | None = None) -> None:
        self.enabled = enabled
        self.sent_samples = sent_samples
        self.spooled_samples = spooled_samples
        self.spooled_bytes = spooled_bytes
        self.dropped = dropped
        self.errors = errors
        self.last_success = last_success
        self.clock = clock
        self.clock_steps = clock_steps
        self.held_samples = held_samples
        self.resent_samples = resent_samples
        self.spool_max_bytes = spool_max_bytes


# The push and clock families, exported in both modes: name suffix, type, help, value (None: no sample).
PUSH: tuple[tuple[str, str, str, Callable[[PushHealth], float | None]], ...] = (
    ("push_enabled", "gauge", "1 in push mode (--push-url), 0 on the textfile path.", lambda h: float(h.enabled)),
    ("push_samples_total", "counter", "Readings sent to vmagent and acknowledged.", lambda h: float(h.sent_samples)),
    ("push_resent_samples_total", "counter",
     "Readings sent again after an attempt that went out but was not answered in time (vmagent may have "
     "imported them twice; the centre stores one).", lambda h: float(h.resent_samples)),
    ("push_spooled_samples", "gauge", "Readings in the spool waiting for vmagent.",
     lambda h: float(h.spooled_samples)),
    ("push_spooled_bytes", "gauge", "Bytes in the spool waiting for vmagent.", lambda h: float(h.spooled_bytes)),
    # The limit beside the level, so that an alert can see the spool fill up before it drops readings.
    ("push_spool_max_bytes", "gauge", "The spool's limit (--spool-max-bytes): beyond it the oldest readings go.",
     lambda h: None if h.spool_max_bytes is None else float(h.spool_max_bytes)),
    ("push_last_success_timestamp_seconds", "gauge", "Unix time of the last acknowledged push.",
     lambda h: h.last_success),
    ("clock_synchronized", "gauge",
     "1 if the kernel clock is synchronised (adjtimex) and past the collector's floor date, else 0.",
     lambda h: float(h.clock.synchronized)),
    ("clock_estimated_error_seconds", "gauge", "The kernel's estimated clock error (adjtimex esterror).",
     lambda h: h.clock.esterror),
    ("clock_max_error_seconds", "gauge", "The kernel's maximum clock error (adjtimex maxerror).",
     lambda h: h.clock.maxerror),
    ("clock_steps_total", "counter", "Steps of the wall clock the collector noticed between two readings.",
     lambda h: float(h.clock_steps)),
    ("clock_held_samples", "gauge", "Readings held until the clock is synchronised.",
     lambda h: float(h.held_samples)),
)
# Counters by one label: name suffix, label, help, the counts by label value.
PUSH_BY_LABEL: tuple[tuple[str, str, str, Callable[[PushHealth], Mapping[str, int]]], ...] = (
    ("push_dropped_samples_total", "reason", "Readings dropped before vmagent acknowledged them, by reason.",
     lambda h: h.dropped),
    ("push_errors_total", "cause", "Failed pushes to vmagent, by cause.", lambda h: h.errors),
)

FAMILIES: frozenset[str] = frozenset(
    PREFIX + suffix for suffix in (*(row[0] for row in PER_SCRIPT), *(row[0] for row in COLLECTOR_WIDE), INFO[0],
                                   *(row[0] for row in PUSH), *(row[0] for row in PUSH_BY_LABEL))
)
"""The name of every family the collector exports about itself (a counter's with its `_total`)."""


def push_blocks(health: PushHealth) -> list[Block]:
    """The push and clock families, exported in both modes (zeros in textfile mode) so dashboards need no `or`."""
    blocks: list[Block] = []
    for suffix, kind, help_text, value_of in PUSH:
        value = value_of(health)
        if value is not None:
            name = PREFIX + suffix
            blocks.append((name, f"{header(name, help_text, kind)}\n{sample_line(name, '', value)}"))
    for suffix, label, help_text, counts_of in PUSH_BY_LABEL:
        name = PREFIX + suffix
        lines = [header(name, help_text, "counter")]
        lines.extend(sample_line(name, render_labels(((label, key),)), value)
                     for key, value in sorted(counts_of(health).items()))
        blocks.append((name, "\n".join(lines)))
    return blocks
