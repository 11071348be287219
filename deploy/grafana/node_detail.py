"""Node detail: one node's readings, its scripts and the collector's own health."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from mixin_config import DASHBOARD_UIDS, NODE_VARIABLE, MixinConfig, Selectors
from panels import (
    OK_WARN_BAD,
    READING_GROUPS,
    READING_UNITS,
    Column,
    Ids,
    Query,
    Step,
    add_panels,
    label_variable,
    new_dashboard,
    stat_panel,
    sum_rate,
    table_panel,
    timeseries_panel,
    value_text,
)

OK = value_text(**{"1": ("ok", "green"), "0": ("FAILED", "red")})
SYNCED = value_text(**{"1": ("synchronized", "green"), "0": ("NOT synchronized", "red")})


def build(config: MixinConfig) -> dashboard_builder.Dashboard:
    s = Selectors.of(config)
    ids = Ids()
    node = f'{s.edge}, {s.node}="$node"'
    age_steps = (
        Step(None, "green"),
        Step(config.reading_age_warning_seconds, "orange"),
        Step(config.reading_age_critical_seconds, "red"),
    )

    def per_script(metric: str) -> str:
        return f"max by (script) ({metric}{{{node}}})"

    def in_range(metric: str, by: str = "script") -> str:
        return sum_rate(metric, node, by, fn="increase", window="$__range")

    def per_second(metric: str, by: str = "script") -> str:
        return sum_rate(metric, node, by)

    def per_minute(metric: str, by: str = "script") -> str:
        return f"{per_second(metric, by)} * 60"

    built = new_dashboard(
        config,
        uid=DASHBOARD_UIDS.node,
        title="Edge node detail",
        description="One edge node: every reading, each script's runs, the collector's health.",
    ).with_variable(label_variable(NODE_VARIABLE, f"edge_collector_info{{{s.edge}}}", s.node, multi=False))

    readings = f'__name__!~"edge_collector_.+", {s.readings}'
    grouped = "|".join(suffix for _, suffix in READING_GROUPS)
    built = built.with_row(dashboard_builder.Row("Readings").id(ids()))
    built = add_panels(
        built,
        [
            timeseries_panel(
                ids,
                title,
                f"Every edge_*_{suffix} reading of the node's scripts (the sensor catalogue's labels: sensor, "
                "device, channel).",
                [Query(f'{{__name__=~"edge_.+_{suffix}", {readings}}}',
                       "{{__name__}} {{sensor}} {{device}} {{channel}}")],
                unit=READING_UNITS[suffix],
                width=8,
            )
            for title, suffix in READING_GROUPS
        ]
        + [
            timeseries_panel(
                ids,
                "Other readings",
                "Every other edge_* reading. A key ending in a unit (_seconds, _bytes, ...) is drawn in that unit "
                "on its own axis.",
                [Query(f'{{__name__=~"edge_.+", __name__!~"edge_.+_({grouped})", {readings}}}')],
                unit="short",
                width=24,
                height=10,
                overrides=[(rf"edge_\w+_{suffix}(\{{.*\}})?", unit) for suffix, unit in READING_UNITS.items()],
            )
        ],
    )

    # Recording rule of deploy/prometheus/rules/edge-recording.yml, shared with EdgeScriptStale.
    since_success = f"max by (script) (edge:reading_age_seconds{{{node}}})"
    built = built.with_row(dashboard_builder.Row("Scripts").id(ids())).with_panel(
        table_panel(
            ids,
            "Scripts",
            "The last run of each script, and what happened in the dashboard's time range. Since last "
            "success: node time of the newest sample minus that of the last successful run.",
            [
                Column("Last run", Query(per_script("edge_collector_script_success"), instant=True), mappings=(OK,)),
                Column(
                    "Exit code", Query(per_script("edge_collector_script_exit_code"), instant=True), steps=OK_WARN_BAD
                ),
                Column("Duration", Query(per_script("edge_collector_script_duration_seconds"), instant=True), unit="s"),
                Column("Interval", Query(per_script("edge_collector_script_interval_seconds"), instant=True), unit="s"),
                Column("Since last success", Query(since_success, instant=True), unit="s", steps=age_steps),
                Column(
                    "Failures", Query(in_range("edge_collector_script_failures_total"), instant=True), steps=OK_WARN_BAD
                ),
                Column(
                    "Timeouts", Query(in_range("edge_collector_script_timeouts_total"), instant=True), steps=OK_WARN_BAD
                ),
                Column(
                    "Skipped runs",
                    Query(in_range("edge_collector_script_skipped_runs_total"), instant=True),
                    steps=(Step(None, "green"), Step(1, "orange")),
                ),
                Column(
                    "Invalid lines",
                    Query(in_range("edge_collector_invalid_lines_total"), instant=True),
                    steps=(Step(None, "green"), Step(1, "orange")),
                ),
            ],
            hide=("Time",),
            height=7,
        )
    )
    built = add_panels(
        built,
        [
            timeseries_panel(
                ids,
                "Script duration",
                "Duration of each script's last run, and its timeout budget shows as the interval.",
                [
                    Query(per_script("edge_collector_script_duration_seconds"), "{{script}}"),
                    Query(per_script("edge_collector_script_interval_seconds"), "{{script}} interval"),
                ],
                unit="s",
                width=8,
            ),
            timeseries_panel(
                ids,
                "Failed runs and timeouts",
                "Runs per minute that exited non-zero or were killed at the timeout.",
                [
                    Query(per_minute("edge_collector_script_failures_total"), "{{script}} failed"),
                    Query(per_minute("edge_collector_script_timeouts_total"), "{{script}} timed out"),
                ],
                unit="opm",
                steps=(Step(None, "green"), Step(0.001, "red")),
                width=8,
            ),
            timeseries_panel(
                ids,
                "Exit code",
                "Exit code of each script's last run; 128+N when ended by signal N (a timeout shows 143 or 137).",
                [Query(per_script("edge_collector_script_exit_code"), "{{script}}")],
                unit="none",
                steps=OK_WARN_BAD,
                width=8,
            ),
        ],
    )

    built = built.with_row(dashboard_builder.Row("Collector").id(ids()))
    built = add_panels(
        built,
        [
            stat_panel(
                ids,
                "Last write",
                "How old the collector's file was at the newest sample (node time): it is rewritten at least every "
                "default interval, so a growing value means the collector hangs or died.",
                Query(
                    f"max(timestamp(edge_collector_last_write_timestamp_seconds{{{node}}})"
                    f" - edge_collector_last_write_timestamp_seconds{{{node}}})"
                ),
                unit="s",
                steps=age_steps,
            ),
            stat_panel(
                ids,
                "Config",
                "Whether the last load of nodes.conf succeeded (an invalid change keeps the last good config).",
                Query(f"min(edge_collector_config_last_reload_successful{{{node}}})"),
                steps=(Step(None, "red"), Step(1, "green")),
                mappings=(OK,),
            ),
            stat_panel(
                ids,
                "File write failures",
                "Failed attempts to replace the textfile in the time range (the old file stays).",
                Query(sum_rate("edge_collector_textfile_write_failures_total", node, fn="increase", window="$__range")),
            ),
            stat_panel(
                ids,
                "Leftover processes killed",
                "Background processes the scripts left behind, killed after their script exited, in the time range.",
                Query(sum_rate("edge_collector_script_processes_killed_total", node, fn="increase", window="$__range")),
                steps=(Step(None, "green"), Step(1, "orange")),
            ),
            stat_panel(
                ids,
                "Series dropped",
                "Series refused in the time range because a script exceeded its series limit.",
                Query(sum_rate("edge_collector_script_series_dropped_total", node, fn="increase", window="$__range")),
            ),
            stat_panel(
                ids,
                "Clock",
                "Whether the node's clock is synchronized; readings are held back while it is not.",
                Query(f"min(edge_collector_clock_synchronized{{{node}}})"),
                steps=(Step(None, "red"), Step(1, "green")),
                mappings=(SYNCED,),
            ),
            timeseries_panel(
                ids,
                "Clock error",
                "The kernel's estimated and maximum error of the node's clock, and readings held back meanwhile.",
                [
                    Query(f"max(edge_collector_clock_estimated_error_seconds{{{node}}})", "estimated error"),
                    Query(f"max(edge_collector_clock_max_error_seconds{{{node}}})", "maximum error"),
                    Query(f"sum(edge_collector_clock_held_samples{{{node}}})", "held samples"),
                    Query(sum_rate("edge_collector_clock_steps_total", node, fn="increase"), "clock steps"),
                ],
                unit="s",
                overrides=[("held samples", "short"), ("clock steps", "short")],
            ),
            timeseries_panel(
                ids,
                "Push to vmagent",
                "Push mode: samples sent to the node-local vmagent per second, and what waits in the collector's "
                "spool; drops by reason and errors by cause.",
                [
                    Query(sum_rate("edge_collector_push_samples_total", node), "pushed/s"),
                    Query(f"sum(edge_collector_push_spooled_samples{{{node}}})", "spooled samples"),
                    Query(per_second("edge_collector_push_dropped_samples_total", "reason"), "dropped/s {{reason}}"),
                    Query(per_second("edge_collector_push_errors_total", "cause"), "errors/s {{cause}}"),
                ],
                unit="short",
            ),
            timeseries_panel(
                ids,
                "Push backlog",
                "Bytes in the collector's spool and the age of its last successful push (node time).",
                [
                    Query(f"sum(edge_collector_push_spooled_bytes{{{node}}})", "spooled bytes"),
                    Query(
                        f"max(timestamp(edge_collector_push_last_success_timestamp_seconds{{{node}}})"
                        f" - edge_collector_push_last_success_timestamp_seconds{{{node}}})",
                        "since last push",
                    ),
                ],
                unit="bytes",
                overrides=[("since last push", "s")],
            ),
        ],
    )
    return built
