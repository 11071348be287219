"""Pipeline: each node's vmagent queue and sends, and the central store's ingestion."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as dashboard_builder
from mixin_config import DASHBOARD_UIDS, NODE_VARIABLE, MixinConfig, Selectors
from panels import Ids, Query, Step, add_panels, label_variable, new_dashboard, sum_rate, timeseries_panel

QUEUE_STEPS = (Step(None, "green"), Step(512 * 1024 * 1024, "orange"), Step(1024 * 1024 * 1024, "red"))
BAD = (Step(None, "green"), Step(0.001, "red"))


def build(config: MixinConfig) -> dashboard_builder.Dashboard:
    s = Selectors.of(config)
    n = s.node
    by = s.per_node
    ids = Ids()
    vm = f'{s.vmagent}, {n}=~"$node"'
    edge = f'{s.edge}, {n}=~"$node"'

    def per_node_rate(metric: str, extra: str = "") -> str:
        return sum_rate(metric, vm, f"{by}{extra}")

    def central_rate(metric: str, matchers: str = "") -> str:
        return sum_rate(metric, s.central + matchers)

    built = new_dashboard(
        config,
        uid=DASHBOARD_UIDS.pipeline,
        title="Edge pipeline",
        description="vmagent on each node (queue, sends, drops, retries) and the central store's ingestion.",
    ).with_variable(
        label_variable(NODE_VARIABLE, f"vmagent_remotewrite_pending_data_bytes{{{s.vmagent}}}", n, multi=True)
    )

    built = built.with_row(dashboard_builder.Row("vmagent on the nodes").id(ids()))
    built = add_panels(
        built,
        [
            timeseries_panel(
                ids,
                "Queue",
                "What vmagent still has to deliver (disk queue and in-memory blocks) and the part on disk; the "
                "disk queue holds at most -remoteWrite.maxDiskUsagePerURL (1 GiB), then the oldest data is dropped.",
                [
                    Query(f"sum by ({by}) (vmagent_remotewrite_pending_data_bytes{{{vm}}})", f"{s.legend} pending"),
                    Query(f"sum by ({by}) (vm_persistentqueue_bytes_pending{{{vm}}})", f"{s.legend} on disk"),
                ],
                unit="bytes",
                steps=QUEUE_STEPS,
            ),
            timeseries_panel(
                ids,
                "Send rate",
                "Bytes per second sent to the centre (a replay after an outage is capped by -remoteWrite.rateLimit).",
                [Query(per_node_rate("vmagent_remotewrite_bytes_sent_total"), s.legend)],
                unit="Bps",
            ),
            timeseries_panel(
                ids,
                "Samples sent",
                "Samples per second in the blocks vmagent sent.",
                [Query(per_node_rate("vmagent_remotewrite_block_size_rows_sum"), s.legend)],
                unit="cps",
            ),
            timeseries_panel(
                ids,
                "Drops",
                "Data thrown away: oldest queue data when the disk queue is full (bytes), blocks the centre "
                "refused for good (HTTP 400/409, samples) and blocks dropped on overload.",
                [
                    Query(per_node_rate("vm_persistentqueue_bytes_dropped_total"), f"{s.legend} queue full"),
                    Query(per_node_rate("vmagent_remotewrite_samples_dropped_total"), f"{s.legend} refused samples"),
                    Query(per_node_rate("vmagent_remotewrite_packets_dropped_total"), f"{s.legend} dropped blocks"),
                ],
                unit="cps",
                steps=BAD,
                overrides=[(".*queue full", "Bps")],
            ),
            timeseries_panel(
                ids,
                "Requests and retries",
                "Remote-write requests per second by HTTP status, and retries of failed sends.",
                [
                    Query(
                        per_node_rate("vmagent_remotewrite_requests_total", ", status_code"),
                        f"{s.legend} {{{{status_code}}}}",
                    ),
                    Query(per_node_rate("vmagent_remotewrite_retries_count_total"), f"{s.legend} retries"),
                ],
                unit="reqps",
            ),
            timeseries_panel(
                ids,
                "Collector push (push mode)",
                "Samples per second the collector pushes to its node-local vmagent, and what waits in its spool.",
                [
                    Query(
                        sum_rate("edge_collector_push_samples_total", edge, by),
                        f"{s.legend} pushed/s",
                    ),
                    Query(
                        f"sum by ({by}) (edge_collector_push_spooled_samples{{{edge}}})",
                        f"{s.legend} spooled",
                    ),
                ],
                unit="short",
            ),
        ],
    )

    built = built.with_row(dashboard_builder.Row("Central store").id(ids()))
    built = add_panels(
        built,
        [
            timeseries_panel(
                ids,
                "Ingestion",
                "Samples per second appended to the central TSDB, and the part that came in out of order (a "
                "vmagent replaying its queue after an outage).",
                [
                    Query(central_rate("prometheus_tsdb_head_samples_appended_total"), "appended"),
                    Query(
                        central_rate("prometheus_tsdb_head_out_of_order_samples_appended_total"),
                        "out of order, accepted",
                    ),
                ],
                unit="cps",
            ),
            timeseries_panel(
                ids,
                "Rejected samples",
                "Samples the centre refused: older than the out-of-order window, out of order where no window "
                "applies, or outside the head's time bounds.",
                [
                    Query(central_rate("prometheus_tsdb_too_old_samples_total"), "too old"),
                    Query(central_rate("prometheus_tsdb_out_of_order_samples_total"), "out of order"),
                    Query(central_rate("prometheus_tsdb_out_of_bound_samples_total"), "out of bounds"),
                ],
                unit="cps",
                steps=BAD,
            ),
            timeseries_panel(
                ids,
                "Remote-write requests",
                "Requests per second to the centre's remote-write receiver by HTTP status.",
                [
                    Query(
                        f'sum by (code) (rate(prometheus_http_requests_total{{{s.central}, handler="/api/v1/write"}}'
                        "[$__rate_interval]))",
                        "{{code}}",
                    )
                ],
                unit="reqps",
            ),
            timeseries_panel(
                ids,
                "Head series",
                "Series in the central TSDB's head block.",
                [Query(f"sum(prometheus_tsdb_head_series{{{s.central}}})", "series")],
                unit="short",
            ),
        ],
    )
    return built
