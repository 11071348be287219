"""The collector's own metric families, always named `edge_collector_*` whatever the script prefix.

Built fresh from the daemon's state at every write, so a script removed from the plan leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from edge_metrics import __version__
from edge_metrics.render import Block, escape_help, escape_label_value, format_value
from edge_metrics.samples import Family, Job, Sample, ScriptStats, Value

TYPE_CHECKING = False  # `typing` for the type checker only (see log.py)
if TYPE_CHECKING:
    from typing import Final

    from edge_metrics.clock import ClockReading

PREFIX = "edge_collector_"


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


# name suffix, type, help, value of the script's stats (None: no sample yet)
_PER_SCRIPT: tuple[tuple[str, str, str, Callable[[ScriptStats, Job], float | None]], ...] = (
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
_GLOBAL: tuple[tuple[str, str, str, Callable[[CollectorHealth], float | None]], ...] = (
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
_INFO = ("info", "gauge", "Collector build and node.")


def self_metric_families(
    jobs: tuple[Job, ...], stats: Mapping[str, ScriptStats], health: CollectorHealth
) -> list[Family]:
    """The self-metrics as families, for `render.render`; the daemon renders the same through SelfMetrics."""
    families: list[Family] = []
    for suffix, kind, help_text, value_of in _PER_SCRIPT:
        samples = []
        for job in jobs:
            value = value_of(stats[job.script], job)
            if value is not None:
                samples.append(Sample(PREFIX + suffix, (("script", job.script),), value))
        families.append(Family(PREFIX + suffix, help_text, kind, tuple(samples)))
    for suffix, kind, help_text, global_value in _GLOBAL:
        value = global_value(health)
        single = (Sample(PREFIX + suffix, (), value),) if value is not None else ()
        families.append(Family(PREFIX + suffix, help_text, kind, single))
    suffix, kind, help_text = _INFO
    labels = (("node", health.node), ("version", __version__))
    families.append(Family(PREFIX + suffix, help_text, kind, (Sample(PREFIX + suffix, labels, 1.0),)))
    return families


class SelfMetrics:
    """The self-metrics rendered straight into blocks for `render.render`, with every header and label
    string prepared once per plan: building ~15 families of samples, then rendering them, cost ~0.2 ms of each
    run's CPU. Renders exactly what `render.render(self_metric_families(...))` renders (a unit test checks)."""

    def __init__(self, jobs: tuple[Job, ...], node: str) -> None:
        # Series sorted by their rendered labels, as render() sorts them.
        labelled = sorted((f'{{script="{escape_label_value(job.script)}"}}', job) for job in jobs)
        self.jobs = jobs
        self.per_script = [
            (PREFIX + suffix, _header(suffix, kind, help_text), value_of, labelled)
            for suffix, kind, help_text, value_of in _PER_SCRIPT
        ]
        self.collector_wide = [
            (PREFIX + suffix, _header(suffix, kind, help_text), value_of)
            for suffix, kind, help_text, value_of in _GLOBAL
        ]
        suffix, kind, help_text = _INFO
        info_labels = f'{{node="{escape_label_value(node)}",version="{escape_label_value(__version__)}"}}'
        self.info = (PREFIX + suffix, f"{_header(suffix, kind, help_text)}\n{PREFIX}{suffix}{info_labels} 1")

    def blocks(self, stats: Mapping[str, ScriptStats], health: CollectorHealth) -> list[Block]:
        blocks: list[Block] = [self.info]
        for name, header, value_of, labelled in self.per_script:
            lines = [header]
            for labels, job in labelled:
                value = value_of(stats[job.script], job)
                if value is not None:
                    lines.append(f"{name}{labels} {format_value(value)}")
            if len(lines) > 1:
                blocks.append((name, "\n".join(lines)))
        for name, header, global_value in self.collector_wide:
            value = global_value(health)
            if value is not None:
                blocks.append((name, f"{header}\n{name} {format_value(value)}"))
        return blocks


def _header(suffix: str, kind: str, help_text: str) -> str:
    name = PREFIX + suffix
    return f"# HELP {name} {escape_help(help_text)}\n# TYPE {name} {kind}"


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


def push_blocks(health: PushHealth) -> list[Block]:
    """The push and clock families, exported in both modes (zeros in textfile mode) so dashboards need no `or`."""
    clock = health.clock
    singles: list[tuple[str, str, str, float | None]] = [
        ("push_enabled", "gauge", "1 in push mode (--push-url), 0 on the textfile path.", float(health.enabled)),
        ("push_samples_total", "counter", "Readings sent to vmagent and acknowledged.", float(health.sent_samples)),
        ("push_resent_samples_total", "counter",
         "Readings sent again after an attempt that went out but was not answered in time (vmagent may have "
         "imported them twice; the centre stores one).", float(health.resent_samples)),
        ("push_spooled_samples", "gauge", "Readings in the spool waiting for vmagent.", float(health.spooled_samples)),
        ("push_spooled_bytes", "gauge", "Bytes in the spool waiting for vmagent.", float(health.spooled_bytes)),
        # The limit beside the level, so that an alert can see the spool fill up before it drops readings.
        ("push_spool_max_bytes", "gauge", "The spool's limit (--spool-max-bytes): beyond it the oldest readings go.",
         None if health.spool_max_bytes is None else float(health.spool_max_bytes)),
        ("push_last_success_timestamp_seconds", "gauge", "Unix time of the last acknowledged push.",
         health.last_success),
        ("clock_synchronized", "gauge",
         "1 if the kernel clock is synchronised (adjtimex) and past the collector's floor date, else 0.",
         float(clock.synchronized)),
        ("clock_estimated_error_seconds", "gauge", "The kernel's estimated clock error (adjtimex esterror).",
         clock.esterror),
        ("clock_max_error_seconds", "gauge", "The kernel's maximum clock error (adjtimex maxerror).", clock.maxerror),
        ("clock_steps_total", "counter", "Steps of the wall clock the collector noticed between two readings.",
         float(health.clock_steps)),
        ("clock_held_samples", "gauge", "Readings held until the clock is synchronised.", float(health.held_samples)),
    ]
    blocks = [(PREFIX + suffix, f"{_header(suffix, kind, help_text)}\n{PREFIX}{suffix} {format_value(value)}")
              for suffix, kind, help_text, value in singles if value is not None]
    for suffix, label, help_text, counts in (
        ("push_dropped_samples_total", "reason", "Readings dropped before vmagent acknowledged them, by reason.",
         health.dropped),
        ("push_errors_total", "cause", "Failed pushes to vmagent, by cause.", health.errors),
    ):
        lines = [_header(suffix, "counter", help_text)]
        lines.extend(f'{PREFIX}{suffix}{{{label}="{key}"}} {value}' for key, value in sorted(counts.items()))
        blocks.append((PREFIX + suffix, "\n".join(lines)))
    return blocks
