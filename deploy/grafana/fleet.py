"""Fleet overview: every node at a glance, and how many are silent, failing or behind."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from grafana_foundation_sdk.models import dashboard
from mixin_config import CLUSTER_VARIABLE, DASHBOARD_UIDS, NODE_VARIABLE, MixinConfig, Selectors, dashboard_uid
from panels import (
    Column,
    Ids,
    PanelBuilder,
    Query,
    Step,
    add_panels,
    new_dashboard,
    stat_panel,
    sum_rate,
    table_panel,
    timeseries_panel,
    value_text,
)

BACKLOG_STEPS = (Step(None, "green"), Step(1024 * 1024, "orange"), Step(512 * 1024 * 1024, "red"))
DRAIN_STEPS = (Step(None, "green"), Step(300, "orange"), Step(3600, "red"))
SYNCED = value_text(**{"1": ("synchronized", "green"), "0": ("NOT synchronized", "red")})


def build(config: MixinConfig) -> dashboard_builder.Dashboard:
    s = Selectors.of(config)
    n = s.node
    by = s.per_node
    ids = Ids()
    age_steps = (
        Step(None, "green"),
        Step(config.reading_age_warning_seconds, "orange"),
        Step(config.reading_age_critical_seconds, "red"),
    )
    # Centre time minus the collector's last write, over the dashboard's range so a node that fell
    # silent stays in the table with a growing age instead of vanishing after the 5 min lookback.
    reading_age = (
        f"time() - max by ({by}) (max_over_time(edge_collector_last_write_timestamp_seconds{{{s.edge}}}[$__range]))"
    )
    failing_scripts = f"sum by ({by}) (1 - edge_collector_script_success{{{s.edge}}})"
    backlog = f"sum by ({by}) (vmagent_remotewrite_pending_data_bytes{{{s.vmagent}}})"
    # Backlog over the send rate of the last 5 minutes; at least 1 byte/s so a stuck queue shows a huge
    # time instead of no value (and an empty queue shows 0): recording rule of
    # deploy/prometheus/rules/edge-recording.yml.
    drain = f"max by ({by}) (edge:vmagent_time_to_drain_seconds{{{s.vmagent}}})"
    dropped_last_hour = sum_rate("vm_persistentqueue_bytes_dropped_total", s.vmagent, by, fn="increase", window="1h")
    clock = f"min by ({by}) (edge_collector_clock_synchronized{{{s.edge}}})"

    built = new_dashboard(
        config,
        uid=DASHBOARD_UIDS.fleet,
        title="Edge fleet overview",
        description="Every edge node: age of its last reading, failing scripts, clock, vmagent backlog.",
    )
    present = f"group by ({by}) (present_over_time(up{{{s.edge}}}[6h]))"
    recent = f"group by ({by}) (present_over_time(up{{{s.edge}}}[3m]))"
    # The centre's vmagent target list, as EdgeNodeSilent reads it: a node listed for 3 minutes or more.
    listed = (
        f"(group by ({by}) (up{{{s.vmagent}}}) and on ({by}) group by ({by}) (up{{{s.vmagent}}} offset 3m))"
    )
    stats: list[PanelBuilder] = [
        stat_panel(
            ids,
            "Nodes reporting",
            "Nodes whose collector reported in the last 5 minutes.",
            Query(f"count(group by ({by}) (edge_collector_info{{{s.edge}}}))"),
            steps=(Step(None, "blue"),),
        ),
        stat_panel(
            ids,
            "Silent nodes",
            "Nodes listed in the centre's vmagent targets, or that sent samples in the last 6 hours, that sent none "
            "in the last 3 minutes (as the EdgeNodeSilent alert).",
            Query(f"count(({listed} or {present}) unless on ({by}) {recent}) or vector(0)"),
        ),
        stat_panel(
            ids,
            "Nodes with failing scripts",
            "Nodes where the last run of at least one script failed.",
            Query(f"count(({failing_scripts}) > 0) or vector(0)"),
        ),
        stat_panel(
            ids,
            "Nodes behind",
            f"Nodes whose last reading at the centre is older than {config.reading_age_warning_seconds:g} s, or "
            "whose vmagent queue has not been empty once in 5 minutes.",
            Query(
                f"count((time() - max by ({by}) (edge_collector_last_write_timestamp_seconds{{{s.edge}}}) > "
                f"{config.reading_age_warning_seconds:g}) or on ({by}) "
                f"(max by ({by}) (min_over_time(vmagent_remotewrite_pending_data_bytes{{{s.vmagent}}}[5m])) > 0))"
                " or vector(0)"
            ),
        ),
        stat_panel(
            ids,
            "Clocks not synchronized",
            "Nodes whose collector reports an unsynchronized clock (readings are held back until it is).",
            Query(f"count(({clock}) == 0) or vector(0)"),
        ),
        stat_panel(
            ids,
            "Nodes dropping data",
            "Nodes whose vmagent dropped queued data in the last hour because its disk queue was full.",
            Query(f"count({dropped_last_hour} > 0) or vector(0)"),
        ),
    ]
    built = add_panels(built, stats)

    # The row's cluster too, with several clusters: the node's name alone may be another cluster's node.
    row_cluster = ""
    if config.show_multi_cluster:
        row_cluster = f"&var-{CLUSTER_VARIABLE}=${{__data.fields.{config.cluster_label}}}"
    node_link = (
        dashboard_builder.DashboardLink("Node detail")
        .type(dashboard.DashboardLinkType.LINK)
        .url(
            f"/d/{dashboard_uid(config, DASHBOARD_UIDS.node)}"
            f"?var-{NODE_VARIABLE}=${{__value.raw}}&${{__url_time_range}}{row_cluster}"
        )
    )
    built = built.with_panel(
        table_panel(
            ids,
            "Nodes",
            "One row per node; click a node for its detail. Reading age: centre time minus the collector's "
            "last write. Time to drain: vmagent backlog over its send rate of the last 5 minutes.",
            [
                Column("Reading age", Query(reading_age, instant=True), unit="s", steps=age_steps),
                Column(
                    "Failing scripts", Query(failing_scripts, instant=True), steps=(Step(None, "green"), Step(1, "red"))
                ),
                Column("Clock", Query(clock, instant=True), mappings=(SYNCED,)),
                Column("vmagent backlog", Query(backlog, instant=True), unit="bytes", steps=BACKLOG_STEPS),
                Column("Time to drain", Query(drain, instant=True), unit="s", steps=DRAIN_STEPS),
                Column(
                    "Collector spool",
                    Query(f"sum by ({by}) (edge_collector_push_spooled_bytes{{{s.edge}}})", instant=True),
                    unit="bytes",
                    steps=BACKLOG_STEPS,
                ),
            ],
            link_field=n,
            link=node_link,
            height=10,
        )
    )
    graphs: list[PanelBuilder] = [
        timeseries_panel(
            ids,
            "Reading age",
            "Centre time minus each node's last collector write.",
            [Query(f"time() - max by ({by}) (edge_collector_last_write_timestamp_seconds{{{s.edge}}})", s.legend)],
            unit="s",
            steps=age_steps,
        ),
        timeseries_panel(
            ids,
            "Failing scripts",
            "Scripts whose last run failed, per node.",
            [Query(failing_scripts, s.legend)],
            unit="none",
            steps=(Step(None, "green"), Step(1, "red")),
        ),
        timeseries_panel(
            ids,
            "vmagent backlog",
            "Bytes each node's vmagent still has to deliver (disk queue and memory).",
            [Query(backlog, s.legend)],
            unit="bytes",
            steps=BACKLOG_STEPS,
        ),
        timeseries_panel(
            ids,
            "Time to drain",
            "Backlog over the send rate of the last 5 minutes (edge:vmagent_time_to_drain_seconds).",
            [Query(drain, s.legend)],
            unit="s",
            steps=DRAIN_STEPS,
        ),
    ]
    built = add_panels(built, graphs)
    return built
